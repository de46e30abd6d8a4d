/* tests/test_builtins_order.c — Batch, Unbatch, Zip and Seq: what a user
 * would check of them, exactly (parts, order, meta, error messages, clean
 * ends), and random Seq and Zip graphs against a single-process
 * evaluation.  The random cases print their seed; MPX_TEST_SEED repeats
 * a run.
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

/* ---- stages ------------------------------------------------------------- */

/* Maps part 0 through a function, keeping the meta. */
typedef struct map_args {
    int64_t (*f)(int64_t);
} map_args_t;

static int map_process(mpx_stage_t *st, mpx_item_t *it)
{
    const map_args_t *a = mpx_args(st);
    return mpx_put_i64(st, a->f(mpx_item_i64(it)));
}
static const mpx_stage_def_t Map = {.name = "map", .args_size = sizeof(map_args_t),
                                    .process = map_process};

static mpx_node_t *map_node(const char *name, int64_t (*f)(int64_t))
{
    mpx_node_t *n = mpx_stage(&Map, &(map_args_t){f});
    if (n)
        CHECK_EQ(mpx_node_set_name(n, name), 0);
    return n;
}

static int64_t square(int64_t x) { return x * x; }
static int64_t negate(int64_t x) { return -x; }
static int64_t triple(int64_t x) { return 3 * x; }
static int64_t plus_1000(int64_t x) { return x + 1000; }

/* Passes the item after sleeping a time that depends on its value, and
 * four times as long in instance 0: workers of very different speeds. */
static int delay_process(mpx_stage_t *st, mpx_item_t *it)
{
    int max_us = *(const int *)mpx_args(st);
    unsigned us = (unsigned)(test_mix((uint64_t)mpx_item_i64(it)) % (unsigned)(max_us + 1));
    if (mpx_stage_instance(st) == 0)
        us *= 4;
    if (us > 0)
        usleep(us);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Delay = {.name = "delay", .args_size = sizeof(int),
                                      .process = delay_process};

/* Puts v % 3 items, 10v, 10v+1, ..., after a delay as Delay's. */
static int multi_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t v = mpx_item_i64(it);
    unsigned us = (unsigned)(test_mix((uint64_t)v) % 300) * (mpx_stage_instance(st) == 0 ? 4 : 1);
    usleep(us);
    for (int64_t j = 0; j < v % 3; j++) {
        int rc = mpx_put_i64(st, 10 * v + j);
        if (rc != 0)
            return rc;
    }
    return 0;
}
static const mpx_stage_def_t Multi = {.name = "multi", .process = multi_process};

static int odd_process(mpx_stage_t *st, mpx_item_t *it)
{
    return mpx_item_i64(it) % 2 ? mpx_put_item(st, it) : 0;
}
static const mpx_stage_def_t Odd = {.name = "odd", .process = odd_process};

static int twice_process(mpx_stage_t *st, mpx_item_t *it)
{
    int rc = mpx_put_item(st, it);
    return rc ? rc : mpx_put_item(st, it);
}
static const mpx_stage_def_t Twice = {.name = "twice", .process = twice_process};

/* Puts {v, -v} as two parts. */
static int pair_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t v = mpx_item_i64(it), w = -v;
    mpx_part_t parts[2] = {{&v, 8}, {&w, 8}};
    return mpx_put_parts(st, parts, 2);
}
static const mpx_stage_def_t Pair = {.name = "pair", .process = pair_process};

/* Sets meta "i" to something else: Zip's output keeps the input's meta. */
static int remeta_process(mpx_stage_t *st, mpx_item_t *it)
{
    int rc = mpx_meta_set_i64(st, "i", -12345);
    if (rc == 0)
        rc = mpx_meta_set_str(st, "branch", "remeta");
    return rc ? rc : mpx_put_i64(st, 7 * mpx_item_i64(it));
}
static const mpx_stage_def_t Remeta = {.name = "remeta", .process = remeta_process};

/* Passes `n` items, then stops: like `head -n`. */
static int head_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t *seen = mpx_state(st);
    int rc = mpx_put_item(st, it);
    if (rc == 0 && ++*seen >= *(const int64_t *)mpx_args(st))
        rc = mpx_stop(st);
    return rc;
}
static const mpx_stage_def_t Head = {.name = "head", .args_size = sizeof(int64_t),
                                     .state_size = sizeof(int64_t), .process = head_process};

/* Passes items; puts -1 in teardown, an item made from no input. */
static int pass_process(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }
static int late_teardown(mpx_stage_t *st) { return mpx_put_i64(st, -1); }
static const mpx_stage_def_t TeardownPut = {.name = "teardown-put", .process = pass_process,
                                            .teardown = late_teardown};

/* ---- checks ------------------------------------------------------------- */

/* Join succeeded, nothing left behind; destroys g. */
static void expect_success(mpx_graph_t *g)
{
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "error: %s", mpx_graph_error(g));
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Join failed with MPX_ESTAGE and a message holding every string given. */
static void expect_failure(mpx_graph_t *g, const char *want1, const char *want2)
{
    while (mpx_graph_next(g))
        ;
    CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
    const char *err = mpx_graph_error(g);
    CHECK(strstr(err, want1) && (!want2 || strstr(err, want2)),
          "error '%s' does not say '%s'%s%s", err, want1, want2 ? " and " : "",
          want2 ? want2 : "");
    fprintf(stderr, "(expected) %s\n", err);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void expect_refused(mpx_node_t *n, const char *want)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 1), n);
    CHECK_EQ(mpx_graph_check(g), MPX_EGRAPH);
    CHECK(strstr(mpx_graph_error(g), want), "refusal '%s' does not say '%s'",
          mpx_graph_error(g), want);
    mpx_node_destroy(&g);
}

static int64_t part_i64(const mpx_item_t *it, size_t i)
{
    int64_t v = INT64_MIN;
    CHECK(mpx_item_get_i64(it, i, &v) == 0, "part %zu is not an int64", i);
    return v;
}

static void check_parts(const mpx_item_t *it, const int64_t *want, size_t n, const char *what)
{
    CHECK(mpx_item_parts(it) == n, "%s: %zu parts, want %zu", what, mpx_item_parts(it), n);
    for (size_t i = 0; i < n && i < mpx_item_parts(it); i++)
        CHECK(part_i64(it, i) == want[i], "%s: part %zu is %" PRId64 ", want %" PRId64, what, i,
              part_i64(it, i), want[i]);
}

/* No key of Zip's or Seq's own is left in an output's meta. */
static void check_no_internal_meta(const mpx_item_t *it)
{
    for (size_t i = 0; i < mpx_item_meta_count(it); i++) {
        const char *key;
        const void *val;
        size_t size;
        REQUIRE(mpx_item_meta_at(it, i, &key, &val, &size) == 0, "meta_at");
        CHECK(strncmp(key, "mpx.", 4) != 0, "internal key %s left in the meta", key);
    }
}

/* ---- Batch and Unbatch -------------------------------------------------- */

static void batch_groups_in_order(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 10), mpx_batch(4));
    static const int64_t want[3][4] = {{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}};
    static const size_t sizes[3] = {4, 4, 2};
    size_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        if (k < 3)
            check_parts(it, want[k], sizes[k], "batch");
        k++;
    }
    CHECK_EQ(k, 3);
    expect_success(g);
}

static void batch_of_one(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 50), mpx_batch(1));
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        check_parts(it, &k, 1, "batch of one");
        k++;
    }
    CHECK_EQ(k, 50);
    expect_success(g);
}

static void batch_larger_than_input(void)
{
    static const int64_t want[] = {0, 1, 2, 3, 4};
    size_t sizes[] = {5, 6, 1000, 65535};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        mpx_graph_t *g = MPX_EZ(range_node(0, 5), mpx_batch(sizes[s]));
        int n = 0;
        mpx_item_t *it;
        while ((it = mpx_graph_next(g))) {
            check_parts(it, want, 5, "short batch");
            n++;
        }
        CHECK(n == 1, "size %zu: %d batches", sizes[s], n);
        expect_success(g);
    }
}

static void batch_meta_of_last_item(void)
{
    /* range_node sets meta "i" to the value. */
    mpx_graph_t *g = MPX_EZ(range_node(0, 7), mpx_batch(3));
    static const int64_t last[] = {2, 5, 6};
    int k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t m = -1;
        CHECK(mpx_item_meta_i64(it, "i", &m) == 0 && k < 3 && m == last[k],
              "batch %d has meta i = %" PRId64, k, m);
        CHECK_EQ(mpx_item_meta_count(it), 1);
        k++;
    }
    CHECK_EQ(k, 3);
    expect_success(g);
}

static void unbatch_restores_items(void)
{
    /* One Batch: the items come back in order, each once, with the meta
     * of their batch. */
    mpx_graph_t *g = MPX_EZ(range_node(0, 1000), mpx_batch(7), mpx_unbatch());
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t m = -1;
        CHECK(mpx_item_parts(it) == 1 && mpx_item_i64(it) == k, "item %" PRId64 " is %" PRId64,
              k, mpx_item_i64(it));
        CHECK(mpx_item_meta_i64(it, "i", &m) == 0 && m == (k / 7 * 7 + 6 < 999 ? k / 7 * 7 + 6 : 999),
              "item %" PRId64 " has meta i = %" PRId64, k, m);
        k++;
    }
    CHECK_EQ(k, 1000);
    expect_success(g);

    /* Three Batches in parallel: the same items, as a multiset. */
    enum { N = 5000 };
    static int seen[N];
    memset(seen, 0, sizeof seen);
    g = MPX_EZ(range_node(0, N), MPX_P(mpx_batch(5), mpx_batch(9), mpx_batch(64)), mpx_unbatch());
    int64_t n = 0;
    while ((it = mpx_graph_next(g))) {
        int64_t v = mpx_item_i64(it);
        CHECK(v >= 0 && v < N, "value %" PRId64, v);
        if (v >= 0 && v < N)
            seen[v]++;
        n++;
    }
    CHECK_EQ(n, N);
    for (int v = 0; v < N; v++)
        CHECK(seen[v] == 1, "value %d came %d times", v, seen[v]);
    expect_success(g);
}

static void batch_flattens_multipart(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(1, 5), mpx_stage(&Pair, NULL), mpx_batch(2));
    static const int64_t want[3][4] = {{1, -1, 2, -2}, {3, -3, 4, -4}, {5, -5}};
    static const size_t sizes[3] = {4, 4, 2};
    int k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        if (k < 3)
            check_parts(it, want[k], sizes[k], "flattened batch");
        k++;
    }
    CHECK_EQ(k, 3);
    expect_success(g);

    /* Unbatch splits a batch of multi-part items into single parts. */
    g = MPX_EZ(range_node(0, 3), mpx_stage(&Pair, NULL), mpx_batch(3), mpx_unbatch());
    static const int64_t flat[] = {0, 0, 1, -1, 2, -2};
    k = 0;
    while ((it = mpx_graph_next(g))) {
        CHECK(k < 6 && mpx_item_i64(it) == flat[k], "unbatched item %d", k);
        k++;
    }
    CHECK_EQ(k, 6);
    expect_success(g);
}

static void bad_arguments_refused(void)
{
    expect_refused(mpx_batch(0), "mpx_batch: size must be 1 to 65535 (got 0)");
    expect_refused(mpx_batch(65536), "mpx_batch: size must be 1 to 65535 (got 65536)");
    expect_refused(mpx_seq(NULL), "mpx_seq: the node is NULL");
    expect_refused(mpx_zip_v(NULL, 0), "mpx_zip: no branches");
    expect_refused(MPX_ZIP(mpx_stage(&Inc, NULL), NULL), "mpx_zip: branch 1 is NULL");

    /* Too many branches: refused; the branches belong to the refused
     * node and go with it. */
    mpx_node_t *many[256];
    for (int i = 0; i < 256; i++)
        many[i] = mpx_stage(&Inc, NULL);
    expect_refused(mpx_zip_v(many, 256), "mpx_zip: 256 branches (a zip takes 1 to 255)");

    mpx_node_t *inc = mpx_stage(&Inc, NULL);
    expect_refused(MPX_ZIP(mpx_stage(&Inc, NULL), inc, inc),
                   "mpx_zip: branches 1 and 2 are the same node");
}

/* ---- Zip ---------------------------------------------------------------- */

static void zip_two_to_four_branches(void)
{
    int64_t (*const fs[4])(int64_t) = {square, negate, triple, plus_1000};
    static const char *const names[4] = {"square", "negate", "triple", "plus_1000"};
    enum { N = 3000 };
    for (size_t nb = 1; nb <= 4; nb++) {
        mpx_node_t *br[4];
        for (size_t b = 0; b < nb; b++)
            br[b] = map_node(names[b], fs[b]);
        mpx_graph_t *g = MPX_EZ(range_node(0, N), mpx_zip_v(br, nb));
        int64_t k = 0;
        mpx_item_t *it;
        while ((it = mpx_graph_next(g))) {
            int64_t want[4], m = -1;
            for (size_t b = 0; b < nb; b++)
                want[b] = fs[b](k);
            check_parts(it, want, nb, "zip");
            CHECK(mpx_item_meta_i64(it, "i", &m) == 0 && m == k, "output %" PRId64 " has meta i = %" PRId64,
                  k, m);
            CHECK_EQ(mpx_item_meta_count(it), 1);
            k++;
        }
        CHECK(k == N, "%zu branches: %" PRId64 " outputs", nb, k);
        expect_success(g);
    }
}

static void zip_keeps_input_meta_and_flattens_parts(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 500),
                            MPX_ZIP(mpx_stage(&Remeta, NULL), mpx_stage(&Pair, NULL),
                                    map_node("square", square)));
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t want[4] = {7 * k, k, -k, k * k}, m = -1;
        check_parts(it, want, 4, "zip of multi-part branches");
        CHECK(mpx_item_meta_i64(it, "i", &m) == 0 && m == k, "meta i = %" PRId64, m);
        CHECK(mpx_item_meta_str(it, "branch") == NULL, "a branch's meta leaked into the output");
        check_no_internal_meta(it);
        k++;
    }
    CHECK_EQ(k, 500);
    expect_success(g);
}

static void zip_parallel_branches_uneven_speeds(void)
{
    enum { N = 2000 };
    mpx_graph_t *g = MPX_EZ(
        range_node(0, N),
        MPX_ZIP(MPX_S(mpx_as(4, &Delay, &(int){400}), map_node("square", square)),
                MPX_P(mpx_as(2, &Delay, &(int){50}),
                      MPX_S(mpx_stage(&Spin, &(long){20000}), mpx_stage(&Delay, &(int){200}))),
                map_node("negate", negate),
                MPX_S(mpx_stage(&Inc, NULL), MPX_P(mpx_stage(&Inc, NULL), mpx_as(3, &Inc, NULL)))));
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t want[4] = {k * k, k, -k, k + 2}, m = -1;
        check_parts(it, want, 4, "zip of parallel branches");
        CHECK(mpx_item_meta_i64(it, "i", &m) == 0 && m == k, "meta i = %" PRId64, m);
        k++;
    }
    CHECK_EQ(k, N);
    expect_success(g);
}

static void zip_filter_branch_fails(void)
{
    /* Many inputs: found at an epoch's mark, while the stream flows. */
    mpx_graph_t *g = MPX_EZ(range_node(0, 5000),
                            MPX_ZIP(mpx_stage(&Inc, NULL), mpx_stage(&Odd, NULL)));
    expect_failure(g, "zip: branch 1 put 0 items for input 0", "exactly one item per input");

    /* The only dropped input is the last one: found at the end (at a
     * pause: zip_fails_at_a_pause). */
    g = MPX_EZ(range_node(1, 2), MPX_ZIP(mpx_stage(&Odd, NULL), mpx_stage(&Inc, NULL)));
    expect_failure(g, "zip: branch 0 put 0 items for input 1", NULL);

    /* A filter behind a parallel group, in the third branch. */
    g = MPX_EZ(range_node(1, 2000),
               MPX_ZIP(mpx_stage(&Inc, NULL), mpx_as(3, &Delay, &(int){100}),
                       MPX_S(mpx_as(2, &Inc, NULL), mpx_stage(&Odd, NULL))));
    expect_failure(g, "zip: branch 2 put 0 items for input 0", NULL);
}

/* Puts the values of *args (-1 ends them) and then keeps its stream
 * open: what Zip finds wrong it must find at this pause, for the end of
 * the stream does not come (Zip never waits forever).  The run's failure
 * stops this stage; the 30 s are a guard against a hang, not a measure. */
static mpx_event_t *never_set;

static int then_pause_setup(mpx_stage_t *st)
{
    for (const int64_t *v = mpx_args(st); *v >= 0; v++) {
        int rc = mpx_put_i64(st, *v);
        if (rc != 0)
            return rc;
    }
    int rc = mpx_flush(st);
    if (rc != 0)
        return rc;
    rc = mpx_event_wait(never_set, 30000);
    return mpx_fail(st, "the run did not fail while the stream paused");
}
static const mpx_stage_def_t ThenPause = {.name = "then-pause", .args_size = 4 * sizeof(int64_t),
                                          .setup = then_pause_setup};

static void zip_fails_at_a_pause(void)
{
    never_set = mpx_event_new();
    REQUIRE(never_set, "event");
    /* A filter drops the last input before the pause. */
    mpx_graph_t *g = MPX_EZ(mpx_stage(&ThenPause, (int64_t[4]){1, 3, 4, -1}),
                            MPX_ZIP(mpx_stage(&Inc, NULL), mpx_stage(&Odd, NULL)));
    expect_failure(g, "zip: branch 1 put 0 items for input 2", NULL);
    /* A branch puts two items for the only input. */
    g = MPX_EZ(mpx_stage(&ThenPause, (int64_t[4]){5, -1, -1, -1}),
               MPX_ZIP(mpx_stage(&Twice, NULL), mpx_stage(&Inc, NULL)));
    expect_failure(g, "zip: branch 0 put 2 items for input 0", NULL);
    mpx_event_destroy(&never_set);
}

static void zip_duplicating_branch_fails(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 5000),
                            MPX_ZIP(mpx_stage(&Inc, NULL), mpx_stage(&Inc, NULL),
                                    mpx_stage(&Twice, NULL)));
    expect_failure(g, "zip: branch 2 put 2 items for input 0", "exactly one item per input");

    /* The only input, and the end right after it (a stream that stays
     * open instead: zip_fails_at_a_pause). */
    g = MPX_EZ(range_node(0, 1), MPX_ZIP(mpx_stage(&Twice, NULL), mpx_stage(&Inc, NULL)));
    expect_failure(g, "zip: branch 0 put 2 items for input 0", NULL);
}

static void zip_teardown_item_fails(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 300),
                            MPX_ZIP(mpx_stage(&Inc, NULL),
                                    MPX_S(mpx_stage(&Inc, NULL), mpx_stage(&TeardownPut, NULL))));
    expect_failure(g, "zip: branch 1 put an item that belongs to no input", "teardown");
}

static void empty_input(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 0), MPX_ZIP(mpx_stage(&Inc, NULL), mpx_stage(&Odd, NULL)));
    CHECK(mpx_graph_next(g) == NULL, "an output of zip from no input");
    expect_success(g);
    g = MPX_EZ(range_node(0, 0), mpx_seq(mpx_as(2, &Inc, NULL)));
    CHECK(mpx_graph_next(g) == NULL, "an output of seq from no input");
    expect_success(g);
}

static void endless_input_stopped_downstream(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL),
                            MPX_ZIP(mpx_stage(&Inc, NULL), mpx_as(2, &Inc, NULL)),
                            mpx_stage(&Head, &(int64_t){10000}));
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t want[2] = {k + 1, k + 1};
        check_parts(it, want, 2, "zip of an endless input");
        k++;
    }
    CHECK_EQ(k, 10000);
    expect_success(g);

    g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_seq(mpx_as(3, &Inc, NULL)),
               mpx_stage(&Head, &(int64_t){10000}));
    k = 0;
    while ((it = mpx_graph_next(g))) {
        CHECK(mpx_item_i64(it) == k + 1, "seq output %" PRId64 " is %" PRId64, k,
              mpx_item_i64(it));
        k++;
    }
    CHECK_EQ(k, 10000);
    expect_success(g);
}

/* ---- Zip with the input ------------------------------------------------ */

/* Puts {v, "item <v>"}: an input of two parts of different sizes. */
static int label_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t v = mpx_item_i64(it);
    char text[32];
    int len = snprintf(text, sizeof text, "item %" PRId64, v);
    mpx_part_t parts[2] = {{&v, 8}, {text, (size_t)len}};
    return mpx_put_parts(st, parts, 2);
}
static const mpx_stage_def_t Label = {.name = "label", .process = label_process};

/* Puts an item of no part (the meta stays the input's). */
static int blank_process(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    return mpx_put_parts(st, NULL, 0);
}
static const mpx_stage_def_t Blank = {.name = "blank", .process = blank_process};

/* Puts the input's meta "i" as an int64. */
static int meta_i_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t i = -1;
    if (mpx_item_meta_i64(it, "i", &i) != 0)
        return mpx_fail(st, "no meta i");
    return mpx_put_i64(st, i);
}
static const mpx_stage_def_t MetaI = {.name = "meta-i", .process = meta_i_process};

static const mpx_stage_def_t Pass = {.name = "pass", .process = pass_process};

static void check_text_part(const mpx_item_t *it, size_t i, const char *want, int64_t k)
{
    size_t n = strlen(want);
    CHECK(mpx_item_parts(it) > i && mpx_item_size(it, i) == n &&
              memcmp(mpx_item_data(it, i), want, n) == 0,
          "output %" PRId64 ": part %zu is not '%s'", k, i, want);
}

/* The input's parts come first, as they were (one, several of different
 * sizes, or none), then the branches', with the input's meta, in order. */
static void zip_with_input_puts_input_first(void)
{
    enum { N = 1000 };
    mpx_graph_t *g = MPX_EZ(range_node(0, N),
                            MPX_ZIP_WITH_INPUT(map_node("square", square), mpx_stage(&Pair, NULL),
                                               mpx_stage(&Remeta, NULL)));
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t want[5] = {k, k * k, k, -k, 7 * k}, m = -1;
        check_parts(it, want, 5, "zip with the input");
        CHECK(mpx_item_meta_i64(it, "i", &m) == 0 && m == k, "meta i = %" PRId64, m);
        CHECK(mpx_item_meta_str(it, "branch") == NULL, "a branch's meta leaked into the output");
        CHECK_EQ(mpx_item_meta_count(it), 1);
        k++;
    }
    CHECK_EQ(k, N);
    expect_success(g);

    /* Two parts in: both come first, the text one intact. */
    g = MPX_EZ(range_node(0, N), mpx_stage(&Label, NULL),
               MPX_ZIP_WITH_INPUT(map_node("negate", negate)));
    k = 0;
    while ((it = mpx_graph_next(g))) {
        char text[32];
        snprintf(text, sizeof text, "item %" PRId64, k);
        CHECK(mpx_item_parts(it) == 3, "output %" PRId64 ": %zu parts", k, mpx_item_parts(it));
        CHECK(part_i64(it, 0) == k, "output %" PRId64 ": part 0 is %" PRId64, k, part_i64(it, 0));
        check_text_part(it, 1, text, k);
        CHECK(part_i64(it, 2) == -k, "output %" PRId64 ": part 2 is %" PRId64, k,
              part_i64(it, 2));
        check_no_internal_meta(it);
        k++;
    }
    CHECK_EQ(k, N);
    expect_success(g);

    /* No part in: nothing comes first. */
    g = MPX_EZ(range_node(0, N), mpx_stage(&Blank, NULL),
               MPX_ZIP_WITH_INPUT(mpx_stage(&MetaI, NULL), mpx_stage(&Blank, NULL)));
    k = 0;
    while ((it = mpx_graph_next(g))) {
        check_parts(it, (int64_t[]){k}, 1, "zip with an input of no part");
        k++;
    }
    CHECK_EQ(k, N);
    expect_success(g);
}

/* What the input costs: no process beyond MPX_ZIP's with the same
 * branches, where an identity branch costs two (itself and its tag). */
static void zip_with_input_adds_no_process(void)
{
    mpx_graph_t *plain = MPX_EZ(range_node(0, 10), MPX_ZIP(map_node("square", square)));
    mpx_graph_t *with = MPX_EZ(range_node(0, 10), MPX_ZIP_WITH_INPUT(map_node("square", square)));
    mpx_graph_t *identity = MPX_EZ(range_node(0, 10),
                                   MPX_ZIP(mpx_stage(&Pass, NULL), map_node("square", square)));
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(with))) {
        check_parts(it, (int64_t[]){k, k * k}, 2, "zip with the input");
        k++;
    }
    CHECK_EQ(k, 10);
    CHECK_EQ(mpx_graph_join(plain), 0);
    CHECK_EQ(mpx_graph_join(identity), 0);
    CHECK_EQ(mpx_graph_instance_count(plain), 6); /* range, stamp, square, tag, manifest, zip */
    CHECK_EQ(mpx_graph_instance_count(with), mpx_graph_instance_count(plain));
    CHECK_EQ(mpx_graph_instance_count(identity), mpx_graph_instance_count(plain) + 2);
    expect_success(with);
    expect_clean(plain);
    mpx_node_destroy(&plain);
    expect_clean(identity);
    mpx_node_destroy(&identity);
}

static void zip_with_input_parallel_branches_in_order(void)
{
    enum { N = 2000 };
    mpx_graph_t *g = MPX_EZ(
        range_node(0, N), mpx_stage(&Pair, NULL),
        MPX_ZIP_WITH_INPUT(MPX_S(mpx_as(4, &Delay, &(int){400}), map_node("square", square)),
                           MPX_P(mpx_as(2, &Delay, &(int){50}), mpx_stage(&Inc, NULL))));
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        /* Inc and Delay put a one-part item made of part 0; Delay passes
         * the pair whole. */
        if (mpx_item_parts(it) == 4)
            check_parts(it, (int64_t[]){k, -k, k * k, k + 1}, 4, "zip with input, Inc");
        else
            check_parts(it, (int64_t[]){k, -k, k * k, k, -k}, 5, "zip with input, Delay");
        int64_t m = -1;
        CHECK(mpx_item_meta_i64(it, "i", &m) == 0 && m == k, "meta i = %" PRId64, m);
        k++;
    }
    CHECK_EQ(k, N);
    expect_success(g);
}

/* Zip's checks hold with the input: the wrong count of items per input
 * fails the run, bad arguments are refused naming the call. */
static void zip_with_input_checks(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 5000),
                            MPX_ZIP_WITH_INPUT(mpx_stage(&Inc, NULL), mpx_stage(&Odd, NULL)));
    expect_failure(g, "zip: branch 1 put 0 items for input 0", "exactly one item per input");
    g = MPX_EZ(range_node(0, 1), MPX_ZIP_WITH_INPUT(mpx_stage(&Twice, NULL)));
    expect_failure(g, "zip: branch 0 put 2 items for input 0", NULL);
    g = MPX_EZ(range_node(0, 300),
               MPX_ZIP_WITH_INPUT(MPX_S(mpx_stage(&Inc, NULL), mpx_stage(&TeardownPut, NULL))));
    expect_failure(g, "zip: branch 0 put an item that belongs to no input", "teardown");

    expect_refused(mpx_zip_with_input_v(NULL, 0), "mpx_zip_with_input: no branches");
    expect_refused(MPX_ZIP_WITH_INPUT(mpx_stage(&Inc, NULL), NULL),
                   "mpx_zip_with_input: branch 1 is NULL");
    mpx_node_t *inc = mpx_stage(&Inc, NULL);
    expect_refused(MPX_ZIP_WITH_INPUT(inc, inc),
                   "mpx_zip_with_input: branches 0 and 1 are the same node");
}

/* Zip in a branch of Zip, Seq in a branch of Zip, Zip inside Seq: each
 * one's marks pass the others' stages and never cross what they hold. */
static void zip_and_seq_nested(void)
{
    enum { N = 3000 };
    mpx_graph_t *g = MPX_EZ(
        range_node(0, N),
        mpx_seq(MPX_P(
            MPX_ZIP(MPX_ZIP(map_node("square", square), mpx_as(2, &Delay, &(int){100})),
                    mpx_seq(mpx_as(3, &Delay, &(int){300})), map_node("negate", negate)),
            MPX_ZIP(MPX_ZIP(map_node("square", square), mpx_stage(&Inc, NULL)),
                    mpx_seq(mpx_as(2, &Inc, NULL)), map_node("negate", negate)))));
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t m = -1;
        /* The two parallel clones differ only in speed and in +1s. */
        CHECK(mpx_item_parts(it) == 4, "%zu parts", mpx_item_parts(it));
        int64_t p1 = part_i64(it, 1), p2 = part_i64(it, 2);
        CHECK(part_i64(it, 0) == k * k && (p1 == k || p1 == k + 1) && p2 == p1 &&
                  part_i64(it, 3) == -k,
              "output %" PRId64 ": %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64, k,
              part_i64(it, 0), p1, p2, part_i64(it, 3));
        CHECK(mpx_item_meta_i64(it, "i", &m) == 0 && m == k, "meta i = %" PRId64, m);
        check_no_internal_meta(it);
        k++;
    }
    CHECK_EQ(k, N);
    expect_success(g);
}

/* ---- Seq ---------------------------------------------------------------- */

static void seq_restores_order_of_uneven_workers(void)
{
    enum { N = 3000 };
    mpx_graph_t *g = MPX_EZ(range_node(0, N), mpx_seq(mpx_as(4, &Delay, &(int){500})));
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t m = -1;
        CHECK(mpx_item_i64(it) == k, "output %" PRId64 " is %" PRId64, k, mpx_item_i64(it));
        CHECK(mpx_item_meta_i64(it, "i", &m) == 0 && m == k, "meta i = %" PRId64, m);
        CHECK_EQ(mpx_item_meta_count(it), 1);
        k++;
    }
    CHECK_EQ(k, N);
    expect_success(g);
}

static void seq_zero_to_two_outputs_per_input(void)
{
    enum { N = 3000 };
    mpx_graph_t *g = MPX_EZ(range_node(0, N), mpx_seq(mpx_as(3, &Multi, NULL)));
    int64_t v = 0, j = 0, n = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        while (v < N && j >= v % 3) {
            v++;
            j = 0;
        }
        CHECK(mpx_item_i64(it) == 10 * v + j, "output %" PRId64 " is %" PRId64 ", want %" PRId64,
              n, mpx_item_i64(it), 10 * v + j);
        j++;
        n++;
    }
    CHECK_EQ(n, N); /* v % 3 summed over 0 .. N-1, N a multiple of 3 */
    expect_success(g);
}

/* What a teardown inside the node puts belongs to no input: it comes
 * after the numbered outputs. */
static void seq_teardown_items_come_last(void)
{
    enum { N = 1000 };
    mpx_graph_t *g = MPX_EZ(range_node(0, N),
                            mpx_seq(MPX_S(mpx_as(3, &Delay, &(int){100}),
                                          mpx_by(2, &TeardownPut, NULL))));
    /* mpx_by: every input twice, in a row. */
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t want = k < 2 * N ? k / 2 : -1;
        CHECK(mpx_item_i64(it) == want, "output %" PRId64 " is %" PRId64 ", want %" PRId64, k,
              mpx_item_i64(it), want);
        k++;
    }
    CHECK_EQ(k, 2 * N + 2);
    expect_success(g);
}

/* Batch keeps items across marks, but a batch carries the number of its
 * last input, so Seq still restores the order around a batched stage. */
static void seq_around_batches(void)
{
    enum { N = 3000 };
    mpx_graph_t *g = MPX_EZ(range_node(0, N),
                            mpx_seq(MPX_S(mpx_batch(10), mpx_as(3, &Delay, &(int){1000}),
                                          mpx_unbatch())));
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        CHECK(mpx_item_i64(it) == k, "output %" PRId64 " is %" PRId64, k, mpx_item_i64(it));
        k++;
    }
    CHECK_EQ(k, N);
    expect_success(g);
}

static void seq_100k_items_through_four_workers(void)
{
    enum { N = 100000 };
    mpx_graph_t *g = MPX_EZ(range_node(0, N), mpx_seq(mpx_as(4, &Inc, NULL)));
    int64_t k = 0, wrong = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        if (mpx_item_i64(it) != k + 1 && wrong++ < 5)
            CHECK(0, "output %" PRId64 " is %" PRId64, k, mpx_item_i64(it));
        k++;
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(k, N);
    expect_success(g);
}

/* The source puts a few items, then waits until the last stage has them
 * all: a Seq that held items until more came (or until the end) would
 * leave the source waiting, and the run would fail. */
static mpx_event_t *received;
enum { PAUSE_ROUNDS = 6, PAUSE_ITEMS = 5 };

static int paused_setup(mpx_stage_t *st)
{
    for (int r = 0; r < PAUSE_ROUNDS; r++) {
        for (int i = 0; i < PAUSE_ITEMS; i++) {
            int rc = mpx_meta_set_i64(st, "i", r * PAUSE_ITEMS + i);
            if (rc == 0)
                rc = mpx_put_i64(st, r * PAUSE_ITEMS + i);
            if (rc != 0)
                return rc;
        }
        int rc = mpx_flush(st);
        if (rc != 0)
            return rc;
        /* A guard against a hang, not a measure of time. */
        if (mpx_event_wait(received, 30000) != 1)
            return mpx_fail(st, "round %d: the items never reached the end", r);
        mpx_event_clear(received);
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Paused = {.name = "paused", .setup = paused_setup};

static int receiver_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t *n = mpx_state(st);
    int rc = mpx_put_item(st, it);
    if (rc == 0 && ++*n % PAUSE_ITEMS == 0)
        rc = mpx_event_set(received);
    return rc;
}
static const mpx_stage_def_t Receiver = {.name = "receiver", .state_size = sizeof(int64_t),
                                         .process = receiver_process};

static void seq_does_not_hold_a_paused_stream(void)
{
    received = mpx_event_new();
    REQUIRE(received, "event");
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Paused, NULL),
                            mpx_seq(mpx_as(3, &Delay, &(int){2000})),
                            MPX_ZIP(mpx_stage(&Inc, NULL), mpx_as(2, &Delay, &(int){1000})),
                            mpx_stage(&Receiver, NULL));
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t want[2] = {k + 1, k};
        check_parts(it, want, 2, "paused stream");
        k++;
    }
    CHECK_EQ(k, PAUSE_ROUNDS * PAUSE_ITEMS);
    expect_success(g);
    mpx_event_destroy(&received);
}

/* ---- marks of the user's own ------------------------------------------- *
 * A mark put upstream still means, downstream of Seq and Zip, that every
 * item put before it has arrived: they hold items, but put them before
 * letting another origin's mark go on. */

static int marker_setup(mpx_stage_t *st)
{
    for (int64_t v = 0; v < 6000; v++) {
        int rc = mpx_put_i64(st, v);
        if (rc == 0 && (v + 1) % 100 == 0)
            rc = mpx_put_mark(st, (uint64_t)(v + 1));
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Marker = {.name = "marker", .setup = marker_setup};

/* At each mark, every item before it is here; reports the mark as an
 * item (-value), and passes the items on. */
static int check_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t *items = mpx_state(st);
    ++*items;
    return mpx_put_item(st, it);
}
static int check_mark(mpx_stage_t *st, uint64_t value)
{
    int64_t *items = mpx_state(st);
    if (*items < (int64_t)value)
        return mpx_fail(st, "mark %llu arrived after only %lld items", (unsigned long long)value,
                        (long long)*items);
    int rc = mpx_put_i64(st, -(int64_t)value);
    return rc ? rc : MPX_MARK_CONSUMED;
}
static const mpx_stage_def_t MarkCheck = {.name = "markcheck", .state_size = sizeof(int64_t),
                                          .process = check_process, .mark = check_mark};

static void user_marks_pass_through(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Marker, NULL), mpx_seq(mpx_as(3, &Delay, &(int){100})),
                            MPX_ZIP(mpx_stage(&Inc, NULL), mpx_as(2, &Delay, &(int){100})),
                            mpx_stage(&MarkCheck, NULL));
    int64_t k = 0, marks = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        if (mpx_item_parts(it) == 1) {
            /* A mark: it comes right after the item that preceded it. */
            CHECK(mpx_item_i64(it) == -k, "mark %" PRId64 " after %" PRId64 " items",
                  -mpx_item_i64(it), k);
            marks++;
            continue;
        }
        int64_t want[2] = {k + 1, k};
        check_parts(it, want, 2, "zip after seq");
        k++;
    }
    CHECK_EQ(k, 6000);
    CHECK_EQ(marks, 60);
    expect_success(g);
}

/* ---- where Seq runs ------------------------------------------------------ *
 * Seq's two halves run in the processes around it: the stage that alone
 * feeds it numbers its own output, and the stage (or the program) that
 * alone takes its output puts it in order.  Only where no such neighbour
 * exists (a parallel group before or after it, a Seq inside a Seq) or
 * where the neighbour is replaced when it dies (a retry or error policy)
 * does a half get a process of its own.  Each case counts the processes
 * a user would see and checks the order. */

/* The graph's output is 0 .. n-1 (plus `add`), in order, each with its
 * meta "i" and nothing else. */
static void expect_in_order(mpx_graph_t *g, int64_t n, int64_t add, const char *what)
{
    int64_t k = 0, wrong = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t m = -1;
        bool ok = mpx_item_i64(it) == k + add && mpx_item_meta_i64(it, "i", &m) == 0 && m == k &&
                  mpx_item_meta_count(it) == 1;
        if (!ok && wrong++ < 3)
            CHECK(0, "%s: output %" PRId64 " is %" PRId64 " with %zu meta entries, i = %" PRId64,
                  what, k, mpx_item_i64(it), mpx_item_meta_count(it), m);
        k++;
    }
    CHECK(k == n, "%s: %" PRId64 " outputs of %" PRId64, what, k, n);
    expect_success(g);
}

static void seq_costs_no_process(void)
{
    enum { N = 2000 };
    mpx_node_t *retried = mpx_stage(&Pass, NULL);
    CHECK_EQ(mpx_node_set_retries(retried, 1), 0);
    struct {
        const char *what;
        mpx_graph_t *g;
        size_t procs; /* source + workers + the rest */
        int64_t add;
    } c[] = {
        {"between two stages",
         MPX_EZ(range_node(0, N), mpx_seq(mpx_as(3, &Delay, &(int){200})), mpx_stage(&Pass, NULL)),
         1 + 3 + 1, 0},
        {"at the end", MPX_EZ(range_node(0, N), mpx_seq(mpx_as(3, &Delay, &(int){200}))), 1 + 3,
         0},
        {"before a stage with retries (the reorder needs its own)",
         MPX_EZ(range_node(0, N), mpx_seq(mpx_as(3, &Delay, &(int){200})), retried),
         1 + 3 + 1 + 1, 0},
        {"inside another Seq (the inner one needs both)",
         MPX_EZ(range_node(0, N), mpx_seq(mpx_seq(mpx_as(3, &Delay, &(int){200})))),
         1 + 1 + 3 + 1, 0},
        {"two in a row around one stage",
         MPX_EZ(range_node(0, N), mpx_seq(mpx_as(2, &Delay, &(int){200})),
                mpx_stage(&Pass, NULL), mpx_seq(mpx_as(2, &Delay, &(int){200}))),
         1 + 2 + 1 + 2, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        REQUIRE(c[i].g, "graph");
        CHECK(mpx_graph_instance_count(c[i].g) == c[i].procs, "%s: %zu processes declared, want %zu",
              c[i].what, mpx_graph_instance_count(c[i].g), c[i].procs);
        REQUIRE(mpx_graph_start(c[i].g) == 0, "start");
        CHECK(mpx_graph_instance_count(c[i].g) == c[i].procs, "%s: %zu processes run, want %zu",
              c[i].what, mpx_graph_instance_count(c[i].g), c[i].procs);
        for (size_t k = 0; k < mpx_graph_instance_count(c[i].g); k++) {
            mpx_instance_info_t info;
            REQUIRE(mpx_graph_instance_info(c[i].g, k, &info) == 0, "info");
            CHECK(strcmp(info.name, "seq") != 0 || i >= 2, "%s: a 'seq' process runs",
                  c[i].what);
        }
        expect_in_order(c[i].g, N, c[i].add, c[i].what);
    }
}

/* A Seq at the start of a graph the program feeds: the program numbers
 * its own puts, and puts the output in order as it reads; the Seq costs
 * no process. */
static void seq_fed_by_the_program(void)
{
    enum { N = 2000 };
    mpx_graph_t *g = MPX_EZ(mpx_seq(mpx_as(3, &Delay, &(int){200})));
    REQUIRE(g, "graph");
    CHECK_EQ(mpx_graph_instance_count(g), 3);
    int64_t k = 0;
    mpx_item_t *it;
    for (int64_t i = 0; i < N;) {
        REQUIRE(mpx_graph_meta_set_i64(g, "i", i) == 0, "meta");
        int rc = mpx_graph_put(g, &i, sizeof i);
        if (rc == 0) {
            i++;
            continue;
        }
        REQUIRE(rc == MPX_EAGAIN, "put: %s", mpx_strerror(rc));
        /* Room comes once the program takes what waits. */
        while ((rc = mpx_graph_poll(g, 0, &it)) == 1) {
            CHECK(mpx_item_i64(it) == k, "output %" PRId64 " is %" PRId64, k, mpx_item_i64(it));
            k++;
        }
        REQUIRE(rc == MPX_ETIMEDOUT, "poll: %s", mpx_strerror(rc));
    }
    REQUIRE(mpx_graph_close_input(g) == 0, "close");
    while ((it = mpx_graph_next(g))) {
        CHECK(mpx_item_i64(it) == k, "output %" PRId64 " is %" PRId64, k, mpx_item_i64(it));
        k++;
    }
    CHECK_EQ(k, N);
    expect_success(g);
}

/* A program that puts a few inputs and then waits for their results
 * gets them: its wait is a pause, which closes the Seq's epoch. */
static void seq_fed_answers_each_round(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_seq(mpx_as(3, &Delay, &(int){1000})));
    REQUIRE(g, "graph");
    int64_t k = 0;
    for (int64_t round = 0; round < PAUSE_ROUNDS; round++) {
        for (int64_t i = round * PAUSE_ITEMS; i < (round + 1) * PAUSE_ITEMS; i++) {
            REQUIRE(mpx_graph_meta_set_i64(g, "i", i) == 0, "meta");
            REQUIRE(mpx_graph_put(g, &i, sizeof i) == 0, "put");
        }
        while (k < (round + 1) * PAUSE_ITEMS) {
            mpx_item_t *it;
            /* A guard against a hang, not a measure of time. */
            int rc = mpx_graph_poll(g, 30000, &it);
            REQUIRE(rc == 1, "round %" PRId64 ": waiting for output %" PRId64 ": %s", round, k,
                    mpx_strerror(rc));
            CHECK(mpx_item_i64(it) == k, "output %" PRId64 " is %" PRId64, k, mpx_item_i64(it));
            k++;
        }
    }
    REQUIRE(mpx_graph_close_input(g) == 0, "close");
    CHECK(mpx_graph_next(g) == NULL, "more output than input");
    expect_success(g);
}

/* An event loop that puts one input at a time and waits on the graph's
 * descriptor for its result: the put, which left at once, is followed
 * by the Seq's mark, with nothing more from the program. */
static void seq_fed_in_an_event_loop(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_seq(mpx_as(3, &Delay, &(int){1000})));
    REQUIRE(g, "graph");
    REQUIRE(mpx_graph_set_nonblocking(g, true) == 0, "nonblocking");
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "fd");
    for (int64_t i = 0; i < 10; i++) {
        REQUIRE(mpx_graph_meta_set_i64(g, "i", i) == 0, "meta");
        REQUIRE(mpx_graph_put(g, &i, sizeof i) == 0, "put %" PRId64, i);
        for (;;) {
            struct pollfd p = {fd, POLLIN, 0};
            /* A guard against a hang, not a measure of time. */
            REQUIRE(poll(&p, 1, 30000) == 1, "no result for input %" PRId64, i);
            int d = mpx_graph_dispatch(g);
            REQUIRE(d > 0, "dispatch: %d", d);
            mpx_item_t *it;
            if ((d & MPX_DISPATCH_OUTPUT) && mpx_graph_poll(g, 0, &it) == 1) {
                CHECK(mpx_item_i64(it) == i, "output %" PRId64 " is %" PRId64, i,
                      mpx_item_i64(it));
                break;
            }
        }
    }
    REQUIRE(mpx_graph_close_input(g) == 0, "close");
    expect_success(g);
}

/* A stage that hosts the numbering and has input marks when its input
 * pauses, and a stage that hosts the reorder lets the outputs out at that
 * mark: the source waits for each round to reach the end. */
static void seq_in_stages_does_not_hold_a_paused_stream(void)
{
    received = mpx_event_new();
    REQUIRE(received, "event");
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Paused, NULL), mpx_stage(&Pass, NULL),
                            mpx_seq(mpx_as(3, &Delay, &(int){2000})),
                            mpx_stage(&Receiver, NULL));
    REQUIRE(g, "graph");
    CHECK_EQ(mpx_graph_instance_count(g), 1 + 1 + 3 + 1);
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        CHECK(mpx_item_i64(it) == k, "output %" PRId64 " is %" PRId64, k, mpx_item_i64(it));
        k++;
    }
    CHECK_EQ(k, PAUSE_ROUNDS * PAUSE_ITEMS);
    expect_success(g);
    mpx_event_destroy(&received);
}

/* A slow source that never flushes: each item leaves at once (it had been
 * quiet), and so must the mark after it, or the item's output would wait
 * for the next input, which waits for that output. */
static int trickle_setup(mpx_stage_t *st)
{
    for (int64_t i = 0; i < PAUSE_ROUNDS; i++) {
        /* Slow, not a synchronisation: the put after a pause is what is
         * tested. */
        usleep(1000);
        int rc = mpx_meta_set_i64(st, "i", i);
        if (rc == 0)
            rc = mpx_put_i64(st, i);
        if (rc != 0)
            return rc;
        /* A guard against a hang, not a measure of time. */
        if (mpx_event_wait(received, 30000) != 1)
            return mpx_fail(st, "item %" PRId64 " never reached the end", i);
        mpx_event_clear(received);
    }
    return 0;
}
static const mpx_stage_def_t Trickle = {.name = "trickle", .setup = trickle_setup};

static int signal_process(mpx_stage_t *st, mpx_item_t *it)
{
    int rc = mpx_put_item(st, it);
    return rc == 0 ? mpx_event_set(received) : rc;
}
static const mpx_stage_def_t Signal = {.name = "signal", .process = signal_process};

static void seq_after_a_slow_source(void)
{
    received = mpx_event_new();
    REQUIRE(received, "event");
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Trickle, NULL), mpx_seq(mpx_as(2, &Delay, &(int){100})),
                            mpx_stage(&Signal, NULL));
    REQUIRE(g, "graph");
    CHECK_EQ(mpx_graph_instance_count(g), 1 + 2 + 1);
    expect_in_order(g, PAUSE_ROUNDS, 0, "slow source");
    mpx_event_destroy(&received);
}

/* Marks of the user's own, passed on by a stage that numbers for the Seq
 * after it, reach a stage that puts the Seq's output in order after every
 * item before them. */
static void user_marks_through_seq_in_stages(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Marker, NULL), mpx_stage(&Pass, NULL),
                            mpx_seq(mpx_as(3, &Delay, &(int){100})), mpx_stage(&MarkCheck, NULL));
    REQUIRE(g, "graph");
    CHECK_EQ(mpx_graph_instance_count(g), 1 + 1 + 3 + 1);
    int64_t k = 0, marks = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        if (mpx_item_i64(it) < 0 || (k > 0 && mpx_item_i64(it) == 0)) {
            CHECK(mpx_item_i64(it) == -k, "mark %" PRId64 " after %" PRId64 " items",
                  -mpx_item_i64(it), k);
            marks++;
            continue;
        }
        CHECK(mpx_item_i64(it) == k, "output %" PRId64 " is %" PRId64, k, mpx_item_i64(it));
        k++;
    }
    CHECK_EQ(k, 6000);
    CHECK_EQ(marks, 60);
    expect_success(g);
}

/* The order the program gets from a Seq at the end is the same when it
 * reads in an event loop, taking one item per wake-up: items the reorder
 * has let out keep the descriptor readable. */
static void seq_at_the_end_in_an_event_loop(void)
{
    enum { N = 3000 };
    mpx_graph_t *g = MPX_EZ(range_node(0, N), mpx_seq(mpx_as(3, &Delay, &(int){300})));
    REQUIRE(g, "graph");
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "fd");
    int64_t k = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        /* A guard against a hang, not a measure of time. */
        REQUIRE(poll(&p, 1, 30000) == 1, "the descriptor stayed quiet after %" PRId64 " items",
                k);
        int d = mpx_graph_dispatch(g);
        REQUIRE(d >= 0, "dispatch: %s", mpx_strerror(d));
        if (d == 0)
            break;
        if (!(d & MPX_DISPATCH_OUTPUT))
            continue;
        mpx_item_t *it;
        int rc = mpx_graph_poll(g, 0, &it);
        if (rc == 1) {
            CHECK(mpx_item_i64(it) == k, "output %" PRId64 " is %" PRId64, k, mpx_item_i64(it));
            k++;
        }
        REQUIRE(rc >= 0 || rc == MPX_ETIMEDOUT, "poll: %s", mpx_strerror(rc));
        if (rc == 0)
            break;
    }
    CHECK_EQ(k, N);
    expect_success(g);
}

/* ---- random graphs ------------------------------------------------------ *
 * Inputs are random values, each with meta "in" = its index.  A stage of
 * function id f maps x to 0..2 outputs (Seq) or exactly one (Zip), by a
 * hash of (f, x), after a random delay.  Seq's output must list the
 * inputs in order, each with exactly the outputs the reference computes
 * (in any order among an input's own outputs, which several stages in
 * the node may reorder); Zip's output must equal the reference exactly. */

typedef struct rfn_args {
    int fid;
    int outputs; /* 1: exactly one output; 0: 0..2 by hash */
    int max_us;
} rfn_args_t;

static int rfn_count(const rfn_args_t *a, int64_t x)
{
    return a->outputs ? 1 : (int)(test_mix((uint64_t)a->fid * 7919u + (uint64_t)x) % 3);
}
static int64_t rfn_value(int fid, int64_t x, int j)
{
    return (int64_t)(test_mix(test_mix((uint64_t)fid) ^ ((uint64_t)x * 31 + (uint64_t)j)) % 1000000);
}

static int rfn_process(mpx_stage_t *st, mpx_item_t *it)
{
    const rfn_args_t *a = mpx_args(st);
    int64_t x = mpx_item_i64(it);
    if (a->max_us > 0) {
        unsigned us = (unsigned)(test_mix((uint64_t)x ^ (uint64_t)a->fid << 40) % (unsigned)a->max_us);
        usleep(us * (mpx_stage_instance(st) == 0 ? 3 : 1));
    }
    for (int j = 0; j < rfn_count(a, x); j++) {
        int rc = mpx_put_i64(st, rfn_value(a->fid, x, j));
        if (rc != 0)
            return rc;
    }
    return 0;
}
static const mpx_stage_def_t Rfn = {.name = "rfn", .args_size = sizeof(rfn_args_t),
                                    .process = rfn_process};

typedef struct rsrc_args {
    const int64_t *values;
    int64_t n;
} rsrc_args_t;

static int rsrc_setup(mpx_stage_t *st)
{
    const rsrc_args_t *a = mpx_args(st);
    for (int64_t i = 0; i < a->n; i++) {
        int rc = mpx_meta_set_i64(st, "in", i);
        if (rc == 0)
            rc = mpx_put_i64(st, a->values[i]);
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Rsrc = {.name = "rsrc", .args_size = sizeof(rsrc_args_t),
                                     .setup = rsrc_setup};

static uint64_t rng_state;
static uint32_t rnd(uint32_t n) { return (uint32_t)((rng_state = test_mix(rng_state)) % n); }

static uint64_t base_seed(void)
{
    static uint64_t seed;
    if (!seed) {
        const char *env = getenv("MPX_TEST_SEED");
        seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) * 2654435761u;
        if (!seed)
            seed = 1;
    }
    return seed;
}

/* A chain of 1..3 stages, each replicated at random; the functions of
 * the chain go to fids[] (*nf of them).  Every instance of a stage
 * computes the same function, so replication changes only speed. */
static mpx_node_t *random_chain(int outputs, int *fids, int *nf, int *procs)
{
    int len = 1 + (int)rnd(3);
    mpx_node_t *nodes[3];
    for (int i = 0; i < len; i++) {
        static int next_fid;
        rfn_args_t a = {++next_fid, outputs, rnd(3) == 0 ? 0 : 50 + (int)rnd(400)};
        fids[(*nf)++] = a.fid;
        int kind = (int)rnd(3);
        if (kind == 0) {
            nodes[i] = mpx_stage(&Rfn, &a);
            *procs += 1;
        } else if (kind == 1) {
            int k = 2 + (int)rnd(3);
            nodes[i] = mpx_as(k, &Rfn, &a);
            *procs += k;
        } else {
            nodes[i] = MPX_P(mpx_stage(&Rfn, &a), mpx_as(2, &Rfn, &a));
            *procs += 3;
        }
    }
    return mpx_serial_v(nodes, (size_t)len);
}

/* What the chain makes of x, appended to out (0..many values). */
static void eval_chain(const int *fids, int nf, int outputs, int64_t x, int64_t *out, size_t *n,
                       size_t cap)
{
    if (nf == 0) {
        REQUIRE(*n < cap, "reference overflow");
        out[(*n)++] = x;
        return;
    }
    rfn_args_t a = {fids[0], outputs, 0};
    for (int j = 0; j < rfn_count(&a, x); j++)
        eval_chain(fids + 1, nf - 1, outputs, rfn_value(fids[0], x, j), out, n, cap);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

typedef struct out_rec {
    int64_t in, v;
} out_rec_t;

static bool random_seq_graph(void)
{
    bool ok = true;
    int64_t n = 1 + (int64_t)rnd(1500);
    int64_t *in = malloc((size_t)n * sizeof *in);
    size_t cap = (size_t)n * 8 + 1, nout = 0;
    out_rec_t *out = malloc(cap * sizeof *out);
    REQUIRE(in && out, "oom");
    for (int64_t i = 0; i < n; i++)
        in[i] = (int64_t)rnd(1000000);
    int fids[3], nf = 0, procs = 0;
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Rsrc, &(rsrc_args_t){in, n}),
                            mpx_seq(random_chain(0, fids, &nf, &procs)));
    /* Small capacities: the marks and held items must not jam the flow. */
    if (rnd(3) == 0)
        CHECK_EQ(mpx_node_set_capacity(g, 1 + rnd(8), 0), 0);
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        out_rec_t r = {-1, mpx_item_i64(it)};
        CHECK(mpx_item_meta_i64(it, "in", &r.in) == 0 && r.in >= 0 && r.in < n,
              "an output without its input's meta");
        check_no_internal_meta(it);
        if (nout > 0 && r.in < out[nout - 1].in) {
            CHECK(ok, "output of input %" PRId64 " after one of input %" PRId64, r.in,
                  out[nout - 1].in);
            ok = false;
        }
        REQUIRE(nout < cap, "more outputs than the node can make");
        out[nout++] = r;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "error: %s", mpx_graph_error(g));
    ok = ok && mpx_graph_join(g) == 0;
    expect_clean(g);
    mpx_node_destroy(&g);

    /* Per input, its outputs (sorted: their order among themselves is
     * free) against the reference's. */
    size_t at = 0;
    for (int64_t k = 0; ok && k < n; k++) {
        int64_t want[64], got[64];
        size_t nw = 0, ng = 0;
        eval_chain(fids, nf, 0, in[k], want, &nw, 64);
        for (; at < nout && out[at].in == k; at++)
            if (ng < 64)
                got[ng++] = out[at].v;
        qsort(want, nw, sizeof *want, cmp_i64);
        qsort(got, ng, sizeof *got, cmp_i64);
        if (ng != nw || memcmp(got, want, nw * sizeof *want) != 0) {
            CHECK(0, "input %" PRId64 ": %zu outputs, want %zu, or other values", k, ng, nw);
            ok = false;
        }
    }
    CHECK(!ok || at == nout, "outputs of unknown inputs");
    free(in);
    free(out);
    return ok && at == nout;
}

static bool random_zip_graph(void)
{
    bool ok = true;
    int64_t n = (int64_t)rnd(1500);
    int64_t *in = malloc(((size_t)n + 1) * sizeof *in);
    REQUIRE(in, "oom");
    for (int64_t i = 0; i < n; i++)
        in[i] = (int64_t)rnd(1000000);
    int nb = 1 + (int)rnd(4), procs = 0;
    int fids[4][3], nf[4] = {0};
    bool seq[4];
    mpx_node_t *br[4];
    for (int b = 0; b < nb; b++) {
        br[b] = random_chain(1, fids[b], &nf[b], &procs);
        /* A Seq inside a branch changes nothing but timing. */
        seq[b] = rnd(3) == 0;
        if (seq[b])
            br[b] = mpx_seq(br[b]);
        if (procs > 14)
            nb = b + 1;
    }
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Rsrc, &(rsrc_args_t){in, n}), mpx_zip_v(br, (size_t)nb));
    if (rnd(3) == 0)
        CHECK_EQ(mpx_node_set_capacity(g, 1 + rnd(8), 0), 0);
    int64_t k = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t want[4], m = -1;
        for (int b = 0; b < nb && k < n; b++) {
            size_t one = 0;
            eval_chain(fids[b], nf[b], 1, in[k], &want[b], &one, 1);
        }
        bool good = k < n && mpx_item_parts(it) == (size_t)nb &&
                    mpx_item_meta_i64(it, "in", &m) == 0 && m == k;
        for (int b = 0; good && b < nb; b++)
            good = part_i64(it, (size_t)b) == want[b];
        if (!good && ok)
            CHECK(0, "zip output %" PRId64 " differs from the reference", k);
        ok = ok && good;
        check_no_internal_meta(it);
        k++;
    }
    CHECK(k == n, "%" PRId64 " outputs for %" PRId64 " inputs", k, n);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "error: %s", mpx_graph_error(g));
    ok = ok && k == n && mpx_graph_join(g) == 0;
    expect_clean(g);
    mpx_node_destroy(&g);
    free(in);
    return ok;
}

static void random_seq_and_zip(void)
{
    uint64_t seed = base_seed();
    fprintf(stderr, "seed %" PRIu64 " (repeat with MPX_TEST_SEED=%" PRIu64 ")\n", seed, seed);
    /* A new seed each run: MPX_LONG_TESTS=1 for more, fewer under ASan. */
    int graphs = harness_long() ? 30 : harness_sanitized() ? 6 : 12;
    for (int i = 0; i < graphs; i++) {
        rng_state = test_mix(seed + (uint64_t)i);
        bool zip = i % 2;
        bool ok = zip ? random_zip_graph() : random_seq_graph();
        if (!ok)
            fprintf(stderr, "graph %d (%s) of seed %" PRIu64 " failed\n", i, zip ? "zip" : "seq",
                    seed);
    }
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(batch_groups_in_order),
        TEST_CASE(batch_of_one),
        TEST_CASE(batch_larger_than_input),
        TEST_CASE(batch_meta_of_last_item),
        TEST_CASE(unbatch_restores_items),
        TEST_CASE(batch_flattens_multipart),
        TEST_CASE(bad_arguments_refused),
        TEST_CASE(zip_two_to_four_branches),
        TEST_CASE(zip_keeps_input_meta_and_flattens_parts),
        TEST_CASE(zip_parallel_branches_uneven_speeds),
        TEST_CASE(zip_filter_branch_fails),
        TEST_CASE(zip_duplicating_branch_fails),
        TEST_CASE(zip_fails_at_a_pause),
        TEST_CASE(zip_teardown_item_fails),
        TEST_CASE(empty_input),
        TEST_CASE(endless_input_stopped_downstream),
        TEST_CASE(zip_and_seq_nested),
        TEST_CASE(zip_with_input_puts_input_first),
        TEST_CASE(zip_with_input_adds_no_process),
        TEST_CASE(zip_with_input_parallel_branches_in_order),
        TEST_CASE(zip_with_input_checks),
        TEST_CASE(seq_restores_order_of_uneven_workers),
        TEST_CASE(seq_zero_to_two_outputs_per_input),
        TEST_CASE(seq_teardown_items_come_last),
        TEST_CASE(seq_around_batches),
        TEST_CASE(seq_100k_items_through_four_workers),
        TEST_CASE(seq_does_not_hold_a_paused_stream),
        TEST_CASE(user_marks_pass_through),
        TEST_CASE(random_seq_and_zip),
        TEST_CASE(seq_costs_no_process),
        TEST_CASE(seq_fed_by_the_program),
        TEST_CASE(seq_fed_answers_each_round),
        TEST_CASE(seq_fed_in_an_event_loop),
        TEST_CASE(seq_in_stages_does_not_hold_a_paused_stream),
        TEST_CASE(seq_after_a_slow_source),
        TEST_CASE(user_marks_through_seq_in_stages),
        TEST_CASE(seq_at_the_end_in_an_event_loop),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
