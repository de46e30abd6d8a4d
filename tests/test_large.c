/* tests/test_large.c — large items passed on by stages that leave them
 * unchanged (they leave in the message they came in, not copied) arrive
 * whole, in order, with their own meta; next to stages that change their
 * meta, put them twice, or take them in parallel and in broadcast. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "stages.h"

#define BIG (200 * 1024)
#define ROUNDS 60

/* Byte k of item v. */
static unsigned char byte_of(int64_t v, size_t k) { return (unsigned char)(v * 31 + k * 7 + k / 4096); }

/* Puts ROUNDS items of BIG bytes, item v with meta "v" = v, and between
 * them a small item (meta "v" = -1) now and then, so that a batch waits
 * when a large one comes. */
static int bigs_setup(mpx_stage_t *st)
{
    static unsigned char block[BIG];
    for (int64_t v = 0; v < ROUNDS; v++) {
        for (size_t k = 0; k < BIG; k++)
            block[k] = byte_of(v, k);
        int rc = mpx_meta_set_i64(st, "v", v);
        if (rc == 0)
            rc = mpx_put(st, block, sizeof block);
        if (rc == 0 && v % 3 == 0)
            rc = mpx_meta_set_i64(st, "v", -1) || mpx_put_i64(st, v);
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Bigs = {.name = "bigs", .setup = bigs_setup};

static int pass(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }
static const mpx_stage_def_t Pass = {.name = "pass", .process = pass};

/* Adds meta "seen" = 1: the item cannot leave as it came. */
static int tag(mpx_stage_t *st, mpx_item_t *it)
{
    int rc = mpx_meta_set_i64(st, "seen", 1);
    return rc ? rc : mpx_put_item(st, it);
}
static const mpx_stage_def_t Tag = {.name = "tag", .process = tag};

/* Clears the meta, then puts the item: it leaves without any. */
static int clear_pass(mpx_stage_t *st, mpx_item_t *it)
{
    mpx_meta_clear(st);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t ClearPass = {.name = "clear", .process = clear_pass};

/* Puts every item twice: once as it came, once more copied. */
static int twice(mpx_stage_t *st, mpx_item_t *it)
{
    int rc = mpx_put_item(st, it);
    return rc ? rc : mpx_put_item(st, it);
}
static const mpx_stage_def_t Twice = {.name = "twice", .process = twice};

typedef struct seen {
    int64_t bigs, smalls, bad, out_of_order, tagged;
    int64_t count[ROUNDS];
} seen_t;

/* Where an item comes in the stream Bigs puts: large item v at 2v, the
 * small one after it (v a multiple of 3) at 2v + 1. */
static int64_t rank_of(int64_t v, bool small) { return 2 * v + small; }

static void take(mpx_graph_t *g, seen_t *s, bool ordered)
{
    memset(s, 0, sizeof *s);
    /* In order means in the order of every put, small items among the
     * large ones: a large item passed on in its own message must not
     * overtake a small one still in the batch before it. */
    int64_t last = -1;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t v = -2, seen = 0;
        size_t n = 0;
        const void *m = mpx_item_meta(it, "v", &n);
        if (m && n == sizeof v)
            memcpy(&v, m, sizeof v);
        m = mpx_item_meta(it, "seen", &n);
        if (m && n == sizeof seen)
            memcpy(&seen, m, sizeof seen);
        s->tagged += seen == 1;
        if (v == -1) {
            int64_t of = -1;
            s->smalls++;
            if (mpx_item_get_i64(it, 0, &of) != 0 || of < 0 || of >= ROUNDS || of % 3 != 0) {
                s->bad++;
                continue;
            }
            s->out_of_order += ordered && rank_of(of, true) < last;
            last = rank_of(of, true);
            continue;
        }
        if (v < 0 || v >= ROUNDS || mpx_item_parts(it) != 1 || mpx_item_size(it, 0) != BIG) {
            s->bad++;
            continue;
        }
        const unsigned char *d = mpx_item_data(it, 0);
        for (size_t k = 0; k < BIG; k++)
            if (d[k] != byte_of(v, k)) {
                s->bad++;
                break;
            }
        s->out_of_order += ordered && rank_of(v, false) < last;
        last = rank_of(v, false);
        s->count[v]++;
        s->bigs++;
    }
}

static void expect_each(const seen_t *s, int64_t times)
{
    CHECK_EQ(s->bad, 0);
    CHECK_EQ(s->bigs, ROUNDS * times);
    CHECK_EQ(s->smalls, (ROUNDS + 2) / 3 * times);
    int64_t wrong = 0;
    for (int v = 0; v < ROUNDS; v++)
        wrong += s->count[v] != times;
    CHECK_EQ(wrong, 0);
}

static void run_and_check(mpx_graph_t *g, seen_t *s, bool ordered)
{
    take(g, s, ordered);
    int rc = mpx_graph_join(g);
    CHECK(rc == 0, "join: %d %s", rc, mpx_graph_error(g));
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A chain of stages that pass large items on unchanged. */
static void passed_on_whole_and_in_order(void)
{
    seen_t s;
    run_and_check(MPX_EZ(mpx_stage(&Bigs, NULL), mpx_stage(&Pass, NULL), mpx_stage(&Pass, NULL),
                         mpx_stage(&Pass, NULL)),
                  &s, true);
    expect_each(&s, 1);
    CHECK_EQ(s.out_of_order, 0);
    CHECK_EQ(s.tagged, 0);
}

/* A stage that changes the meta sends its own record; the next one passes
 * that on as it is. */
static void changed_meta_goes_on(void)
{
    seen_t s;
    run_and_check(MPX_EZ(mpx_stage(&Bigs, NULL), mpx_stage(&Pass, NULL), mpx_stage(&Tag, NULL),
                         mpx_stage(&Pass, NULL)),
                  &s, true);
    expect_each(&s, 1);
    CHECK_EQ(s.out_of_order, 0);
    CHECK_EQ(s.tagged, s.bigs + s.smalls);
}

/* Meta cleared before the put is gone from large items as from small. */
static void cleared_meta_is_gone(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Bigs, NULL), mpx_stage(&ClearPass, NULL));
    int64_t items = 0, with_meta = 0, big = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        items++;
        big += mpx_item_size(it, 0) == BIG;
        with_meta += mpx_item_meta_count(it) != 0;
    }
    int rc = mpx_graph_join(g);
    CHECK(rc == 0, "join: %d %s", rc, mpx_graph_error(g));
    CHECK_EQ(items, ROUNDS + (ROUNDS + 2) / 3);
    CHECK_EQ(big, ROUNDS);
    CHECK_EQ(with_meta, 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* The same item put twice: the second put copies it. */
static void put_twice(void)
{
    seen_t s;
    run_and_check(MPX_EZ(mpx_stage(&Bigs, NULL), mpx_stage(&Twice, NULL), mpx_stage(&Pass, NULL)),
                  &s, true);
    expect_each(&s, 2);
    CHECK_EQ(s.out_of_order, 0);
}

/* Parallel workers and a broadcast of stages that pass items on. */
static void parallel_and_broadcast(void)
{
    seen_t s;
    run_and_check(MPX_EZ(mpx_stage(&Bigs, NULL), mpx_as(3, &Pass, NULL),
                         MPX_B(mpx_stage(&Pass, NULL), mpx_stage(&Pass, NULL))),
                  &s, false);
    expect_each(&s, 2);
}

/* A recoverable stage that passes items on: acknowledged delivery keeps
 * the message it forwarded until its consumer confirms it. */
static void recoverable_pass(void)
{
    mpx_node_t *p = mpx_stage(&Pass, NULL);
    CHECK_EQ(mpx_node_set_retries(p, 1), 0);
    seen_t s;
    run_and_check(MPX_EZ(mpx_stage(&Bigs, NULL), p, mpx_stage(&Pass, NULL)), &s, true);
    expect_each(&s, 1);
    CHECK_EQ(s.out_of_order, 0);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(passed_on_whole_and_in_order),
        TEST_CASE(changed_meta_goes_on),
        TEST_CASE(cleared_meta_is_gone),
        TEST_CASE(put_twice),
        TEST_CASE(parallel_and_broadcast),
        TEST_CASE(recoverable_pass),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
