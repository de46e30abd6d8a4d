/* tests/test_mistakes.c — what a stage's mistakes cost: a put refused and
 * ignored (in initialize, finalize, setup, process, teardown, mark) fails
 * the run with a message naming the call, instead of losing the item; a
 * put refused because everything downstream stopped still just ends the
 * stage; a callback that returns -1 without mpx_fail() is told so, and
 * one that passes on a put's code has the code and the call named. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"
#include "stages.h"

/* Where a stage drops the result of a put it means to ignore: the result
 * is used (the compiler sees that), the stage goes on regardless. */
static volatile int ignored;

/* One more part than an item may have; all empty. */
#define TOO_MANY_PARTS 65536
static mpx_part_t many_parts[TOO_MANY_PARTS];

/* The graph failed with MPX_ESTAGE and a message holding every string of
 * `want` (NULL-terminated). */
static void expect_stage_error(mpx_graph_t *g, int rc, const char *const *want)
{
    printf("%s\n", mpx_graph_error(g));
    CHECK(rc == MPX_ESTAGE, "returned %d (%s): %s", rc, mpx_strerror(rc), mpx_graph_error(g));
    for (; *want; want++)
        CHECK(strstr(mpx_graph_error(g), *want) != NULL, "message '%s' lacks '%s'",
              mpx_graph_error(g), *want);
}

/* A stage needs setup or process: these pass items on. */
static int pass(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }

/* ---- a put in initialize ------------------------------------------------ */

/* The put functions, by index; each puts one item (or mark). */
static const char *const put_names[] = {
    "mpx_put",      "mpx_put_str", "mpx_put_i64",      "mpx_put_f64",  "mpx_put_parts",
    "mpx_put_item", "mpx_put_to",  "mpx_put_parts_to", "mpx_put_mark",
};
#define NPUTS (sizeof put_names / sizeof *put_names)

static int put_by_index(mpx_stage_t *st, int which)
{
    mpx_part_t part = {"x", 1};
    switch (which) {
    case 0: return mpx_put(st, "x", 1);
    case 1: return mpx_put_str(st, "x");
    case 2: return mpx_put_i64(st, 1);
    case 3: return mpx_put_f64(st, 1.5);
    case 4: return mpx_put_parts(st, &part, 1);
    case 5: return mpx_put_item(st, NULL); /* refused for the place before the item */
    case 6: return mpx_put_to(st, "log", "x", 1);
    case 7: return mpx_put_parts_to(st, "log", &part, 1);
    default: return mpx_put_mark(st, 1);
    }
}

static int finalized;
static void count_final(mpx_stage_t *st)
{
    (void)st;
    finalized++;
}

static int init_ignores_put(mpx_stage_t *st)
{
    ignored = put_by_index(st, *(const int *)mpx_args(st));
    return 0;
}
static const mpx_stage_def_t InitPuts = {.name = "initputs", .args_size = sizeof(int),
                                         .initialize = init_ignores_put, .process = pass,
                                         .finalize = count_final};

/* Every put function, called in initialize and its result ignored: the
 * graph does not start, and the message names the call. */
static void put_in_initialize_fails_start(void)
{
    for (int k = 0; k < (int)NPUTS; k++) {
        finalized = 0;
        mpx_graph_t *g = MPX_EZ(range_node(0, 3), mpx_stage(&InitPuts, &k));
        char call[64];
        snprintf(call, sizeof call, "%s called in initialize", put_names[k]);
        expect_stage_error(g, mpx_graph_start(g),
                           (const char *[]){"stage 'initputs'", "initialize failed: ", call,
                                            "initialize ignored the MPX_ESTATE it returned",
                                            NULL});
        /* Its initialize returned 0: what it took is released. */
        CHECK(finalized == 1, "%s: finalize ran %d times", put_names[k], finalized);
        CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
        CHECK(no_children_left(0), "forked after a put in initialize");
        CHECK_EQ(dir_entries(harness_tmpdir()), 0);
        mpx_node_destroy(&g);
    }
}

static int init_returns_put(mpx_stage_t *st) { return mpx_put_i64(st, 1); }
static const mpx_stage_def_t InitReturnsPut = {.name = "initrc", .initialize = init_returns_put,
                                                .process = pass};

/* The code passed on: the message has both the code and the call. */
static void put_in_initialize_passed_on(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 3), mpx_stage(&InitReturnsPut, NULL));
    expect_stage_error(g, mpx_graph_start(g),
                       (const char *[]){"initialize failed: returned -4 (not allowed in this "
                                        "state) from mpx_put_i64 called in initialize",
                                        NULL});
    CHECK(no_children_left(0), "forked after a failed initialize");
    mpx_node_destroy(&g);
}

/* mpx_run prints the same message and returns the code. */
static void run_put_in_initialize(void *arg)
{
    int *rc = arg;
    int k = 2;
    *rc = mpx_run(MPX_EZ(range_node(0, 3), mpx_stage(&InitPuts, &k)));
}

static void run_reports_put_in_initialize(void)
{
    int rc = 0;
    char *err = capture_stderr(run_put_in_initialize, &rc);
    CHECK_EQ(rc, MPX_ESTAGE);
    CHECK(strstr(err, "mpx_put_i64 called in initialize") != NULL, "stderr: '%s'", err);
    free(err);
    CHECK(no_children_left(0), "forked after a put in initialize");
}

/* ---- a put in finalize -------------------------------------------------- */

static void final_puts(mpx_stage_t *st) { ignored = mpx_put_str(st, "too late"); }
static const mpx_stage_def_t FinalPuts = {.name = "finalputs", .process = pass,
                                          .finalize = final_puts};

/* The items all arrived, then the put in finalize fails the run. */
static void put_in_finalize_fails_run(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 5), mpx_stage(&FinalPuts, NULL));
    int64_t n = 0;
    int64_t sum = drain_sum(g, &n);
    CHECK_EQ(n, 5);
    CHECK_EQ(sum, 10);
    expect_stage_error(g, mpx_graph_join(g),
                       (const char *[]){"stage 'finalputs'", "finalize failed: ",
                                        "mpx_put_str called in finalize", NULL});
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- refused puts ignored in the stage process -------------------------- */

/* Puts 65536 parts on the third item, ignoring the refusal, and passes
 * every item on. */
static int process_ignores_parts(mpx_stage_t *st, mpx_item_t *it)
{
    if (mpx_item_i64(it) == 2)
        ignored = mpx_put_parts(st, many_parts, TOO_MANY_PARTS);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t IgnoresParts = {.name = "toomany",
                                             .process = process_ignores_parts};

static void too_many_parts_ignored_in_process(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 5), mpx_stage(&IgnoresParts, NULL));
    int64_t n = 0;
    drain_sum(g, &n);
    expect_stage_error(g, mpx_graph_join(g),
                       (const char *[]){"stage 'toomany'", "process failed on item 3 ",
                                        "mpx_put_parts: 65536 parts, more than the 65535 an "
                                        "item may have",
                                        "process ignored the MPX_ERANGE it returned", NULL});
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Under MPX_ON_ERROR_SKIP the item with the refused put is the failed
 * one, counted, and the run goes on. */
static void ignored_refusal_follows_error_policy(void)
{
    mpx_node_t *bad = mpx_stage(&IgnoresParts, NULL);
    CHECK_EQ(mpx_node_on_error(bad, MPX_ON_ERROR_SKIP, NULL), 0);
    mpx_graph_t *g = MPX_EZ(range_node(0, 5), bad);
    int64_t n = 0;
    drain_sum(g, &n);
    CHECK_EQ(mpx_graph_join(g), 0);
    uint64_t failed = 0;
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        REQUIRE(mpx_graph_instance_info(g, i, &info) == 0, "instance info %zu", i);
        if (strcmp(info.name, "toomany") == 0)
            failed += info.items_failed;
    }
    CHECK_EQ(failed, 1);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A source that puts to a side graph nobody attached, and goes on. */
static int setup_ignores_put_to(mpx_stage_t *st)
{
    for (int64_t v = 0; v < 10; v++) {
        if (v == 4)
            ignored = mpx_put_to(st, "nosuch", "x", 1);
        int rc = mpx_put_i64(st, v);
        if (rc != 0)
            return rc;
    }
    return 0;
}
static const mpx_stage_def_t IgnoresPutTo = {.name = "putto", .setup = setup_ignores_put_to};

static void put_to_unknown_side_graph_ignored_in_setup(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&IgnoresPutTo, NULL), mpx_stage(&Inc, NULL));
    int64_t n = 0;
    drain_sum(g, &n);
    expect_stage_error(g, mpx_graph_join(g),
                       (const char *[]){"stage 'putto'", "setup failed: ",
                                        "mpx_put_to: no side graph named 'nosuch' serves this "
                                        "stage",
                                        "setup ignored the MPX_EINVAL it returned", NULL});
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* In a side graph, puts into the side graph's own name: there is none
 * there (a side graph does not feed itself). */
static int log_into_itself(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    ignored = mpx_put_to(st, "log", "loop", 4);
    return 0;
}
static const mpx_stage_def_t LogLoop = {.name = "logloop", .process = log_into_itself};

static int log_each(mpx_stage_t *st, mpx_item_t *it)
{
    int rc = mpx_put_to(st, "log", "seen", 4);
    return rc ? rc : mpx_put_item(st, it);
}
static const mpx_stage_def_t LogEach = {.name = "logeach", .process = log_each};

static void side_graph_put_into_itself_ignored(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 5), mpx_stage(&LogEach, NULL));
    CHECK_EQ(mpx_graph_xcut(g, "log", MPX_EZ(mpx_stage(&LogLoop, NULL))), 0);
    int64_t n = 0;
    drain_sum(g, &n);
    expect_stage_error(g, mpx_graph_join(g),
                       (const char *[]){"stage 'logloop'", "process failed on item 1 ",
                                        "mpx_put_to: no side graph named 'log' serves this "
                                        "stage",
                                        NULL});
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Passes items on; at teardown puts an item larger than the node's
 * maximum and ignores the refusal. */
static int teardown_ignores_big(mpx_stage_t *st)
{
    static char big[4096];
    ignored = mpx_put(st, big, sizeof big);
    return 0;
}
static const mpx_stage_def_t IgnoresBig = {.name = "big", .process = pass,
                                           .teardown = teardown_ignores_big};

static void oversized_put_ignored_in_teardown(void)
{
    mpx_node_t *big = mpx_stage(&IgnoresBig, NULL);
    CHECK_EQ(mpx_node_set_max_item(big, 1024), 0);
    mpx_graph_t *g = MPX_EZ(range_node(0, 5), big);
    int64_t n = 0;
    drain_sum(g, &n);
    expect_stage_error(g, mpx_graph_join(g),
                       (const char *[]){"stage 'big'", "teardown failed: mpx_put: an item of ",
                                        "larger than the maximum of 1024",
                                        "teardown ignored the MPX_ERANGE it returned", NULL});
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A source that sends a mark after its items; the stage's mark hook puts
 * too many parts, ignores the refusal, and ends the mark there. */
static int marking_setup(mpx_stage_t *st)
{
    for (int64_t v = 0; v < 3; v++) {
        int rc = mpx_put_i64(st, v);
        if (rc != 0)
            return rc;
    }
    return mpx_put_mark(st, 7);
}
static const mpx_stage_def_t Marking = {.name = "marking", .setup = marking_setup};

static int mark_ignores_parts(mpx_stage_t *st, uint64_t value)
{
    (void)value;
    ignored = mpx_put_parts(st, many_parts, TOO_MANY_PARTS);
    return MPX_MARK_CONSUMED;
}
static const mpx_stage_def_t MarkIgnores = {.name = "markhook", .process = pass,
                                             .mark = mark_ignores_parts};

static void refused_put_ignored_in_mark_hook(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Marking, NULL), mpx_stage(&MarkIgnores, NULL));
    int64_t n = 0;
    drain_sum(g, &n);
    expect_stage_error(g, mpx_graph_join(g),
                       (const char *[]){"stage 'markhook'", "mark failed: mpx_put_parts: 65536",
                                        "mark ignored the MPX_ERANGE it returned", NULL});
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- MPX_ESTOPPED ignored: the stage ends, the run succeeds ------------- */

/* The last code a careless stage ignored, in memory shared with the test. */
static volatile int *last_ignored;

/* Puts until its consumers have stopped without looking at a code, puts
 * once more (refused: everything downstream stopped), returns 0. */
static int careless_setup(mpx_stage_t *st)
{
    int64_t v = 0;
    while (!mpx_stopping(st))
        ignored = mpx_put_i64(st, v++);
    *last_ignored = mpx_put_i64(st, v);
    return 0;
}
static const mpx_stage_def_t Careless = {.name = "careless", .setup = careless_setup};

/* Passes items on, ignoring what the put says. */
static int careless_process(mpx_stage_t *st, mpx_item_t *it)
{
    ignored = mpx_put_item(st, it);
    return 0;
}
static const mpx_stage_def_t CarelessPass = {.name = "carelesspass", .process = careless_process};

/* Takes n items, then stops. */
typedef struct take_state {
    int64_t seen;
} take_state_t;
static int take_process(mpx_stage_t *st, mpx_item_t *it)
{
    take_state_t *s = mpx_state(st);
    int rc = mpx_put_item(st, it);
    if (rc == 0 && ++s->seen == *(const int64_t *)mpx_args(st))
        rc = mpx_stop(st);
    return rc;
}
static const mpx_stage_def_t Take = {.name = "take", .args_size = sizeof(int64_t),
                                     .state_size = sizeof(take_state_t), .process = take_process};

static void stopped_downstream_ignored_ends_stage(void)
{
    last_ignored = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(last_ignored != MAP_FAILED, "mmap");
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Careless, NULL), mpx_stage(&CarelessPass, NULL),
                            mpx_stage(&Take, &(int64_t){3}));
    int64_t n = 0;
    int64_t sum = drain_sum(g, &n);
    CHECK(mpx_graph_join(g) == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(n, 3);
    CHECK_EQ(sum, 0 + 1 + 2);
    CHECK_EQ(*last_ignored, MPX_ESTOPPED);
    expect_clean(g);
    mpx_node_destroy(&g);
    munmap((void *)last_ignored, 4096);
}

/* A side graph whose only stage stops at once: puts into it are dropped
 * (MPX_ESTOPPED, once the stage hears of it), and ignoring that is fine. */
static int stop_at_once(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    return mpx_stop(st);
}
static const mpx_stage_def_t StopAtOnce = {.name = "stopper", .process = stop_at_once};

static int log_carelessly(mpx_stage_t *st, mpx_item_t *it)
{
    ignored = mpx_put_to(st, "log", "seen", 4);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t LogCarelessly = {.name = "logger", .process = log_carelessly};

static void stopped_side_graph_ignored(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 2000), mpx_stage(&LogCarelessly, NULL));
    CHECK_EQ(mpx_graph_xcut(g, "log", MPX_EZ(mpx_stage(&StopAtOnce, NULL))), 0);
    int64_t n = 0;
    int64_t sum = drain_sum(g, &n);
    CHECK(mpx_graph_join(g) == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(n, 2000);
    CHECK_EQ(sum, 1999 * 2000 / 2);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- what a callback returns -------------------------------------------- */

static int minus_one_at_3(mpx_stage_t *st, mpx_item_t *it)
{
    return mpx_item_i64(it) == 3 ? -1 : mpx_put_item(st, it);
}
static const mpx_stage_def_t MinusOne = {.name = "minusone", .process = minus_one_at_3};

/* -1 is MPX_EINVAL too, but a stage that returns it has almost always
 * failed on its own: the message says that mpx_fail() gives one. */
static void minus_one_without_message(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 5), mpx_stage(&MinusOne, NULL));
    int64_t n = 0;
    drain_sum(g, &n);
    int rc = mpx_graph_join(g);
    expect_stage_error(g, rc,
                       (const char *[]){"process failed on item 4 ",
                                        "returned -1 without a message (call mpx_fail() to say "
                                        "why)",
                                        NULL});
    CHECK(strstr(mpx_graph_error(g), "invalid argument") == NULL, "%s", mpx_graph_error(g));
    expect_clean(g);
    mpx_node_destroy(&g);
}

static int setup_minus_one(mpx_stage_t *st)
{
    (void)st;
    return -1;
}
static const mpx_stage_def_t SetupMinusOne = {.name = "setupfails", .setup = setup_minus_one};
static int init_minus_one(mpx_stage_t *st)
{
    (void)st;
    return -1;
}
static const mpx_stage_def_t InitMinusOne = {.name = "initfails", .initialize = init_minus_one,
                                              .process = pass};

static void minus_one_in_setup_and_initialize(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&SetupMinusOne, NULL), mpx_stage(&Inc, NULL));
    expect_stage_error(g, mpx_graph_start(g),
                       (const char *[]){"stage 'setupfails'",
                                        "setup failed: returned -1 without a message (call "
                                        "mpx_fail() to say why)",
                                        NULL});
    expect_clean(g);
    mpx_node_destroy(&g);

    g = MPX_EZ(range_node(0, 3), mpx_stage(&InitMinusOne, NULL));
    expect_stage_error(g, mpx_graph_start(g),
                       (const char *[]){"stage 'initfails'",
                                        "initialize failed: returned -1 without a message (call "
                                        "mpx_fail() to say why)",
                                        NULL});
    CHECK(no_children_left(0), "forked after a failed initialize");
    mpx_node_destroy(&g);
}

/* A put's MPX_ERANGE passed on: the code is named, and the call. */
static int returns_parts(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    return mpx_put_parts(st, many_parts, TOO_MANY_PARTS);
}
static const mpx_stage_def_t ReturnsParts = {.name = "returnsrange", .process = returns_parts};

/* A code of mpx's returned without a put: named as before. */
static int returns_timedout(mpx_stage_t *st, mpx_item_t *it)
{
    (void)st;
    (void)it;
    return MPX_ETIMEDOUT;
}
static const mpx_stage_def_t ReturnsTimedOut = {.name = "timedout", .process = returns_timedout};

static void mpx_codes_are_named(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 3), mpx_stage(&ReturnsParts, NULL));
    int64_t n = 0;
    drain_sum(g, &n);
    expect_stage_error(g, mpx_graph_join(g),
                       (const char *[]){"process failed on item 1 ",
                                        "returned -10 (out of range) from mpx_put_parts: 65536 "
                                        "parts, more than the 65535 an item may have",
                                        NULL});
    expect_clean(g);
    mpx_node_destroy(&g);

    g = MPX_EZ(range_node(0, 3), mpx_stage(&ReturnsTimedOut, NULL));
    drain_sum(g, &n);
    expect_stage_error(g, mpx_graph_join(g),
                       (const char *[]){"process failed on item 1 ", "returned -11 (timed out)",
                                        NULL});
    expect_clean(g);
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(put_in_initialize_fails_start),
        TEST_CASE(put_in_initialize_passed_on),
        TEST_CASE(run_reports_put_in_initialize),
        TEST_CASE(put_in_finalize_fails_run),
        TEST_CASE(too_many_parts_ignored_in_process),
        TEST_CASE(ignored_refusal_follows_error_policy),
        TEST_CASE(put_to_unknown_side_graph_ignored_in_setup),
        TEST_CASE(side_graph_put_into_itself_ignored),
        TEST_CASE(oversized_put_ignored_in_teardown),
        TEST_CASE(refused_put_ignored_in_mark_hook),
        TEST_CASE(stopped_downstream_ignored_ends_stage),
        TEST_CASE(stopped_side_graph_ignored),
        TEST_CASE(minus_one_without_message),
        TEST_CASE(minus_one_in_setup_and_initialize),
        TEST_CASE(mpx_codes_are_named),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
