/* tests/test_seq_review.c — Seq whose halves run in its neighbours'
 * processes (README, "Seq runs in its neighbours' processes"), driven as
 * a user would drive it: a source that answers requests, the item in
 * hand, stops and failures next to a hosted reorder, the pool, the limits
 * a numbered record must keep, a graph run by a stage, a Seq the program
 * numbers in an event loop.  Each case is what a review of that change
 * found (shown failing before its fix) or tried and found to hold.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

/* Join succeeded, nothing left behind; destroys g. */
static void expect_success(mpx_graph_t *g)
{
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "error: %s", mpx_graph_error(g));
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- a source that answers requests ------------------------------------- *
 * A server's shape: the source waits in mpx_poll for a request on a pipe,
 * puts it, and waits again; the program writes the next request only once
 * it has the reply to the last.  Behind workers of capacity 1 every put
 * leaves at once in a batch of its own, so the source never pauses inside
 * a put: a Seq numbered in its process must still let each reply out. */

typedef struct requests_args {
    int fd;
} requests_args_t;

static int requests_setup(mpx_stage_t *st)
{
    const requests_args_t *a = mpx_args(st);
    for (;;) {
        struct pollfd p = {a->fd, POLLIN, 0};
        int rc = mpx_poll(st, &p, 1, -1);
        if (rc < 0)
            return rc;
        int64_t v;
        ssize_t got = read(a->fd, &v, sizeof v);
        if (got != (ssize_t)sizeof v)
            return mpx_fail(st, "reading a request: %zd", got);
        if (v < 0)
            return mpx_stop(st);
        rc = mpx_put_i64(st, v);
        if (rc != 0)
            return rc;
    }
}
static const mpx_stage_def_t Requests = {.name = "requests", .args_size = sizeof(requests_args_t),
                                         .setup = requests_setup};

static void serve_requests(bool stage_after)
{
    enum { N = 40 };
    int fds[2];
    REQUIRE(pipe(fds) == 0, "pipe");
    mpx_node_t *workers = mpx_as(2, &Inc, NULL);
    REQUIRE(workers && mpx_node_set_capacity(workers, 1, 0) == 0, "workers");
    mpx_graph_t *g = stage_after ? MPX_EZ(mpx_stage(&Requests, &(requests_args_t){fds[0]}),
                                          mpx_seq(workers), mpx_stage(&Inc, NULL))
                                 : MPX_EZ(mpx_stage(&Requests, &(requests_args_t){fds[0]}),
                                          mpx_seq(workers));
    REQUIRE(g, "graph");
    /* Start returns once the source reached its first put: the first
     * request is there before. */
    int64_t k = 0;
    REQUIRE(write(fds[1], &k, sizeof k) == (ssize_t)sizeof k, "write");
    REQUIRE(mpx_graph_start(g) == 0, "start: %s", mpx_graph_error(g));
    for (; k < N; k++) {
        if (k > 0)
            REQUIRE(write(fds[1], &k, sizeof k) == (ssize_t)sizeof k, "write");
        mpx_item_t *it;
        /* A guard against a hang, not a measure of time. */
        int rc = mpx_graph_poll(g, 20000, &it);
        if (rc != 1) {
            CHECK(0, "no reply to request %" PRId64 ": %s", k,
                  rc == MPX_ETIMEDOUT ? "none in 20 s" : mpx_strerror(rc));
            break;
        }
        CHECK_EQ(mpx_item_i64(it), k + 1 + stage_after);
    }
    int64_t end = -1;
    REQUIRE(write(fds[1], &end, sizeof end) == (ssize_t)sizeof end, "write");
    if (k < N) {
        CHECK_EQ(mpx_graph_stop(g), 0);
        int jrc = mpx_graph_join(g);
        CHECK(jrc == 0 || jrc == MPX_ESTOPPED, "join: %s", mpx_strerror(jrc));
        expect_clean(g);
        mpx_node_destroy(&g);
    } else {
        CHECK(mpx_graph_next(g) == NULL, "an output after the last reply");
        expect_success(g);
    }
    close(fds[0]);
    close(fds[1]);
}

static void source_answers_requests_through_seq_at_the_end(void) { serve_requests(false); }
static void source_answers_requests_through_seq_in_stages(void) { serve_requests(true); }

/* ---- stages ------------------------------------------------------------- */

/* Passes items after sleeping `*(int *)args` microseconds: the work. */
static int nap_process(mpx_stage_t *st, mpx_item_t *it)
{
    int us = *(const int *)mpx_args(st);
    if (us > 0)
        usleep((unsigned)us);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Nap = {.name = "nap", .args_size = sizeof(int),
                                    .process = nap_process};

/* Keeps every item and puts them all, with their meta, in teardown. */
typedef struct hold_state {
    mpx_item_t **v;
    size_t n, cap;
} hold_state_t;
static int hold_process(mpx_stage_t *st, mpx_item_t *it)
{
    hold_state_t *h = mpx_state(st);
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        mpx_item_t **v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return mpx_fail(st, "out of memory");
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n] = mpx_item_dup(it);
    return h->v[h->n++] ? 0 : mpx_fail(st, "dup");
}
static int hold_teardown(mpx_stage_t *st)
{
    hold_state_t *h = mpx_state(st);
    int rc = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (rc == 0)
            rc = mpx_meta_load(st, h->v[i]);
        if (rc == 0)
            rc = mpx_put_item(st, h->v[i]);
        mpx_item_free(&h->v[i]);
    }
    free(h->v);
    return rc;
}
static const mpx_stage_def_t Hold = {.name = "hold", .state_size = sizeof(hold_state_t),
                                     .process = hold_process, .teardown = hold_teardown};

/* ---- the item in hand behind a hosted reorder --------------------------- *
 * The stage after a Seq gets its input from the reorder, several items per
 * mark, long after they arrived.  Its per-item timeout and the number its
 * errors give an item are those of each item handed to it: the Seq before
 * it holds everything (Hold) until its end, when the whole input comes
 * at once. */

static void hosted_reorder_times_each_item_alone(void)
{
    enum { N = 30 };
    /* 50 ms per item, 1 s allowed: 30 items take longer together. */
    mpx_node_t *host = mpx_stage(&Nap, &(int){50000});
    REQUIRE(host && mpx_node_set_timeout(host, 1000) == 0, "host");
    mpx_graph_t *g = MPX_EZ(range_node(0, N), mpx_seq(mpx_stage(&Hold, NULL)), host);
    REQUIRE(g, "graph");
    CHECK_EQ(mpx_graph_instance_count(g), 3);
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        CHECK_EQ(mpx_item_i64(it), k);
        k++;
    }
    CHECK_EQ(k, N);
    expect_success(g);
}

static int64_t head_n;
static int head_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t *seen = mpx_state(st);
    int rc = mpx_put_item(st, it);
    if (rc == 0 && ++*seen >= head_n)
        rc = mpx_stop(st);
    return rc;
}
static const mpx_stage_def_t Head = {.name = "head", .state_size = sizeof(int64_t),
                                     .process = head_process};

static void read_in_order(mpx_graph_t *g, int64_t n, const char *what)
{
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        if (mpx_item_i64(it) != k)
            CHECK(0, "%s: output %" PRId64 " is %" PRId64, what, k, mpx_item_i64(it));
        CHECK(mpx_item_meta_count(it) == 1, "%s: %zu meta entries", what, mpx_item_meta_count(it));
        k++;
    }
    CHECK(k == n, "%s: %" PRId64 " outputs, want %" PRId64, what, k, n);
}

/* ---- stops and failures next to a hosted reorder ------------------------ */

/* The stage after the Seq stops (as `head -n` does) in the middle of what
 * a mark released, or the stage after it stops: exactly the first items,
 * in order, and a run that ends well. */
static void hosted_reorder_in_a_stage_that_stops(void)
{
    head_n = 300;
    mpx_graph_t *g = MPX_EZ(range_node(0, 5000), mpx_seq(mpx_as(3, &Nap, &(int){50})),
                            mpx_stage(&Head, NULL));
    REQUIRE(g, "graph");
    CHECK_EQ(mpx_graph_instance_count(g), 5);
    read_in_order(g, 300, "host stops");
    expect_success(g);
    g = MPX_EZ(range_node(0, 5000), mpx_seq(mpx_as(3, &Nap, &(int){50})),
               mpx_stage(&Nap, &(int){0}), mpx_stage(&Head, NULL));
    REQUIRE(g, "graph");
    read_in_order(g, 300, "after the host stops");
    expect_success(g);
}

static int fail77_process(mpx_stage_t *st, mpx_item_t *it)
{
    if (mpx_item_i64(it) == 77)
        return mpx_fail(st, "seventy-seven");
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Fail77 = {.name = "fail77", .process = fail77_process};

static void hosted_reorder_failure_names_the_item(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 5000), mpx_seq(mpx_stage(&Hold, NULL)),
                            mpx_stage(&Fail77, NULL));
    REQUIRE(g, "graph");
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        CHECK_EQ(mpx_item_i64(it), k);
        k++;
    }
    CHECK(k <= 77, "%" PRId64 " outputs", k);
    CHECK(mpx_graph_next(g) == NULL, "next after the end");
    CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
    const char *err = mpx_graph_error(g);
    /* The 78th item the stage was given, with its meta and not Seq's. */
    CHECK(strstr(err, "process failed on item 78 {i: 77}: seventy-seven"), "error: %s", err);
    fprintf(stderr, "(expected) %s\n", err);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Puts n items of 100 KiB through the pool, mpx_alloc'd; value i in the
 * first 8 bytes, meta "i". */
static int big_setup(mpx_stage_t *st)
{
    int64_t n = *(const int64_t *)mpx_args(st);
    for (int64_t i = 0; i < n; i++) {
        size_t size = 100 * 1024;
        uint8_t *b = mpx_alloc(st, size);
        if (!b)
            return mpx_fail(st, "alloc");
        memset(b, (int)(i & 0xff), size);
        memcpy(b, &i, 8);
        int rc = mpx_meta_set_i64(st, "i", i);
        if (rc == 0)
            rc = mpx_put_alloc(st, b, size);
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Big = {.name = "big", .args_size = sizeof(int64_t),
                                    .setup = big_setup};

static void check_big(mpx_graph_t *g, int64_t n, const char *what)
{
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        const uint8_t *d = mpx_item_data(it, 0);
        size_t size = mpx_item_size(it, 0);
        int64_t v = -1;
        if (size == 100 * 1024)
            memcpy(&v, d, 8);
        bool ok = v == k && d[size - 1] == (uint8_t)(k & 0xff) && mpx_item_meta_count(it) == 1;
        if (!ok)
            CHECK(0, "%s: output %" PRId64 " is %" PRId64 " (size %zu)", what, k, v, size);
        k++;
    }
    CHECK(k == n, "%s: %" PRId64 " outputs", what, k);
    mpx_pool_stats_t ps;
    REQUIRE(mpx_graph_pool_stats(g, &ps) == 0, "stats");
    CHECK(ps.blocks_in_use == 0, "%s: %" PRIu64 " blocks in use", what, ps.blocks_in_use);
}

/* ---- the pool ------------------------------------------------------------- *
 * Items of 100 KiB in pool blocks through a Seq whose reorder runs in the
 * program and in a stage, with a pool smaller than what is in flight (the
 * reorder's copies hold blocks too): every item in order with its bytes,
 * and no block in use at the end (ASan: nothing leaked). */

static void pool_items_through_hosted_halves(void)
{
    enum { N = 600 };
    for (int at_end = 0; at_end < 2; at_end++) {
        mpx_node_t *src = mpx_stage(&Big, &(int64_t){N});
        mpx_node_t *ws = mpx_as(3, &Nap, &(int){200});
        mpx_graph_t *g = at_end ? MPX_EZ(src, mpx_seq(ws))
                                : MPX_EZ(src, mpx_seq(ws), mpx_stage(&Nap, &(int){0}));
        REQUIRE(g, "graph");
        REQUIRE(mpx_graph_set_pool(g, 8u << 20) == 0, "pool");
        REQUIRE(mpx_graph_start(g) == 0, "start: %s", mpx_graph_error(g));
        check_big(g, N, at_end ? "at the end" : "in a stage");
        expect_success(g);
    }
}

/* ---- the stage that numbers for a Seq ----------------------------------- */

/* The Seq's number is one more meta entry on what the stage before it
 * puts.  An item that has the most meta entries an item may have (65535)
 * cannot take it: the put is refused, as setting one more key would be,
 * and the stage that put it says why — not the worker that received a
 * record whose count of entries had wrapped round to 0. */
static int full_meta_setup(mpx_stage_t *st)
{
    for (int i = 0; i < 65535; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        int rc = mpx_meta_set_i64(st, key, i);
        if (rc != 0)
            return mpx_fail(st, "meta %d: %s", i, mpx_strerror(rc));
    }
    int rc = mpx_put_i64(st, 1);
    return rc ? rc : mpx_stop(st);
}
static const mpx_stage_def_t FullMeta = {.name = "fullmeta", .setup = full_meta_setup};

static void numbering_an_item_with_the_most_meta_is_refused(void)
{
    for (int at_end = 0; at_end < 2; at_end++) {
        mpx_node_t *src = mpx_stage(&FullMeta, NULL);
        mpx_node_t *seq = mpx_seq(mpx_as(2, &Nap, &(int){0}));
        mpx_graph_t *g = at_end ? MPX_EZ(src, seq) : MPX_EZ(src, seq, mpx_stage(&Nap, &(int){0}));
        REQUIRE(g, "graph");
        CHECK(mpx_graph_next(g) == NULL, "an output");
        CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
        const char *err = mpx_graph_error(g);
        CHECK(strstr(err, "stage 'fullmeta'") && strstr(err, "65535 meta entries"), "error: %s",
              err);
        fprintf(stderr, "(expected) %s\n", err);
        expect_clean(g);
        mpx_node_destroy(&g);
    }
}

/* ---- a graph run by a stage ---------------------------------------------- */

/* A stage that runs a graph of its own (here, once per input) reads that
 * graph's output in its process, where a Seq at the graph's end is put
 * in order.  The items are in the inner graph's pool, not in the pool of
 * the graph the stage belongs to: the reorder's copies must not take
 * them for blocks of the latter. */
static int runner_process(mpx_stage_t *st, mpx_item_t *it)
{
    enum { N = 200 };
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Big, &(int64_t){N}), mpx_seq(mpx_as(2, &Nap, &(int){100})));
    if (!g || mpx_graph_set_pool(g, 8u << 20) != 0)
        return mpx_fail(st, "inner graph");
    int64_t k = 0, wrong = 0;
    mpx_item_t *x;
    while ((x = mpx_graph_next(g))) {
        const uint8_t *d = mpx_item_data(x, 0);
        int64_t v = -1;
        if (mpx_item_size(x, 0) == 100 * 1024)
            memcpy(&v, d, 8);
        wrong += v != k || d[100 * 1024 - 1] != (uint8_t)(k & 0xff);
        k++;
    }
    int rc = mpx_graph_join(g);
    char err[300];
    snprintf(err, sizeof err, "%s", mpx_graph_error(g));
    mpx_node_destroy(&g);
    if (rc != 0 || wrong || k != N)
        return mpx_fail(st, "inner graph: %s (%s), %" PRId64 " outputs, %" PRId64 " wrong",
                        mpx_strerror(rc), err, k, wrong);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Runner = {.name = "runner", .process = runner_process};

static void seq_at_the_end_of_a_graph_a_stage_runs(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 2), mpx_stage(&Runner, NULL));
    REQUIRE(g, "graph");
    REQUIRE(mpx_graph_set_pool(g, 8u << 20) == 0, "pool");
    read_in_order(g, 2, "runner");
    expect_success(g);
}

/* A stage's largest item (mpx_node_set_max_item) is what it puts: parts,
 * its meta and framing.  The Seq's number, which the stage writes on the
 * Seq's behalf, is not part of it: items of exactly the limit go through
 * a Seq as they do without one (the range's are 64 bytes, the least a
 * limit may be). */
static void numbering_does_not_count_against_the_stage_limit(void)
{
    enum { N = 100 };
    for (int at_end = 0; at_end < 2; at_end++) {
        mpx_node_t *src = range_node(0, N);
        REQUIRE(src && mpx_node_set_max_item(src, 64) == 0, "max_item");
        mpx_node_t *seq = mpx_seq(mpx_as(2, &Nap, &(int){0}));
        mpx_graph_t *g = at_end ? MPX_EZ(src, seq) : MPX_EZ(src, seq, mpx_stage(&Nap, &(int){0}));
        REQUIRE(g, "graph");
        read_in_order(g, N, at_end ? "at the end" : "in a stage");
        expect_success(g);
    }
}

/* ---- a Seq the program numbers -------------------------------------------- *
 * A Seq that begins a graph the program feeds is numbered by the
 * program's puts.  An event loop that puts one input and waits on the
 * descriptor for its result, behind workers of capacity 1 (every put
 * leaves at once, in a full batch of one): each result must come, with
 * the Seq's reorder in the program and in the stage after it. */
static void fed_seq_answers_one_input_at_a_time_in_an_event_loop(void)
{
    enum { N = 10 };
    for (int at_end = 0; at_end < 2; at_end++) {
        mpx_node_t *workers = mpx_as(3, &Nap, &(int){1000});
        REQUIRE(workers && mpx_node_set_capacity(workers, 1, 0) == 0, "workers");
        mpx_graph_t *g = at_end ? MPX_EZ(mpx_seq(workers))
                                : MPX_EZ(mpx_seq(workers), mpx_stage(&Nap, &(int){0}));
        REQUIRE(g, "graph");
        REQUIRE(mpx_graph_set_nonblocking(g, true) == 0, "nonblocking");
        int fd = mpx_graph_fd(g);
        REQUIRE(fd >= 0, "fd");
        bool answered = true;
        for (int64_t i = 0; i < N && answered; i++) {
            REQUIRE(mpx_graph_meta_set_i64(g, "i", i) == 0, "meta");
            REQUIRE(mpx_graph_put(g, &i, sizeof i) == 0, "put %" PRId64, i);
            /* The descriptor also wakes for the supervisor's own work, so
             * the guard against a hang is a deadline, not a quiet poll. */
            struct timespec t0, t;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (answered = false; !answered;) {
                clock_gettime(CLOCK_MONOTONIC, &t);
                if (t.tv_sec - t0.tv_sec > 30)
                    break;
                struct pollfd p = {fd, POLLIN, 0};
                if (poll(&p, 1, 1000) != 1)
                    continue;
                int d = mpx_graph_dispatch(g);
                REQUIRE(d > 0, "dispatch: %s", mpx_strerror(d));
                mpx_item_t *it;
                if ((d & MPX_DISPATCH_OUTPUT) && mpx_graph_poll(g, 0, &it) == 1) {
                    CHECK_EQ(mpx_item_i64(it), i);
                    answered = true;
                }
            }
            CHECK(answered, "%s: no result for input %" PRId64,
                  at_end ? "at the end" : "in a stage", i);
        }
        REQUIRE(mpx_graph_close_input(g) == 0, "close");
        REQUIRE(mpx_graph_set_nonblocking(g, false) == 0, "blocking");
        while (mpx_graph_next(g))
            ;
        CHECK_EQ(mpx_graph_join(g), 0);
        expect_clean(g);
        mpx_node_destroy(&g);
    }
}

/* The program adds two meta entries to what it puts in a graph that
 * begins with a Seq: mpx.index and the Seq's number.  Meta of 65534
 * entries (mpx_graph_meta_set allows 65535) leaves room for only one: the
 * put is refused, not sent with a count that wrapped round to 0 for the
 * worker to fail on. */
static void fed_seq_put_with_too_much_meta_is_refused(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_seq(mpx_as(2, &Nap, &(int){0})));
    REQUIRE(g, "graph");
    for (int i = 0; i < 65534; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        REQUIRE(mpx_graph_meta_set_i64(g, key, i) == 0, "meta %d", i);
    }
    int64_t v = 1;
    CHECK_EQ(mpx_graph_put(g, &v, sizeof v), MPX_ERANGE);
    REQUIRE(mpx_graph_close_input(g) == 0, "close");
    CHECK(mpx_graph_next(g) == NULL, "an output");
    expect_success(g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(source_answers_requests_through_seq_at_the_end),
        TEST_CASE(source_answers_requests_through_seq_in_stages),
        TEST_CASE(hosted_reorder_times_each_item_alone),
        TEST_CASE(hosted_reorder_in_a_stage_that_stops),
        TEST_CASE(hosted_reorder_failure_names_the_item),
        TEST_CASE(pool_items_through_hosted_halves),
        TEST_CASE(seq_at_the_end_of_a_graph_a_stage_runs),
        TEST_CASE(numbering_an_item_with_the_most_meta_is_refused),
        TEST_CASE(numbering_does_not_count_against_the_stage_limit),
        TEST_CASE(fed_seq_answers_one_input_at_a_time_in_an_event_loop),
        TEST_CASE(fed_seq_put_with_too_much_meta_is_refused),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
