/* tests/test_marks.c — marks travel behind everything put before them,
 * through parallel and broadcast sections; the mark hook sees them in
 * order, may consume them; the idle hook runs when input pauses. */
#define _GNU_SOURCE
#include <string.h>

#include "harness.h"
#include "stages.h"

/* Puts n items, a mark carrying the count so far after every `every`. */
typedef struct marker_args {
    int64_t n, every;
} marker_args_t;

static int marker_setup(mpx_stage_t *st)
{
    const marker_args_t *a = mpx_args(st);
    for (int64_t v = 0; v < a->n; v++) {
        int rc = mpx_put_i64(st, v);
        if (rc == 0 && (v + 1) % a->every == 0)
            rc = mpx_put_mark(st, (uint64_t)(v + 1));
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Marker = {.name = "marker", .args_size = sizeof(marker_args_t),
                                       .setup = marker_setup};

/* Counts items; at each mark checks that `copies` items per input before
 * the mark have all arrived, and reports the mark as an item (-value). */
typedef struct check_state {
    int64_t items;
    uint64_t last;
} check_state_t;

static int check_process(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    check_state_t *s = mpx_state(st);
    s->items++;
    return 0;
}

static int check_mark(mpx_stage_t *st, uint64_t value)
{
    check_state_t *s = mpx_state(st);
    int64_t copies = *(const int64_t *)mpx_args(st);
    if (value <= s->last)
        return mpx_fail(st, "mark %llu after %llu", (unsigned long long)value,
                        (unsigned long long)s->last);
    s->last = value;
    /* Every item put before the mark, and all made from them, is here;
     * items after it may be too. */
    if (s->items < (int64_t)value * copies)
        return mpx_fail(st, "mark %llu arrived after only %lld items", (unsigned long long)value,
                        (long long)s->items);
    return mpx_put_i64(st, -(int64_t)value);
}

static const mpx_stage_def_t Check = {.name = "check", .args_size = sizeof(int64_t),
                                      .state_size = sizeof(check_state_t),
                                      .process = check_process, .mark = check_mark};

static void expect_marks(mpx_graph_t *g, int64_t count)
{
    int64_t marks = 0, last = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t v = mpx_item_i64(it);
        CHECK(v < 0 && -v > last, "mark %lld after %lld", (long long)-v, (long long)last);
        last = -v;
        marks++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(marks, count);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void marks_behind_parallel_work(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Marker, &(marker_args_t){20000, 500}),
                            mpx_as(3, &Spin, &(long){200}),
                            MPX_P(mpx_stage(&Inc, NULL), mpx_as(2, &Inc, NULL)),
                            mpx_stage(&Check, &(int64_t){1}));
    expect_marks(g, 40);
}

static void marks_behind_broadcast(void)
{
    /* Each item arrives twice at check: through inc, and through the
     * serial branch with its parallel group. */
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Marker, &(marker_args_t){6000, 100}),
                            MPX_B(mpx_stage(&Inc, NULL),
                                  MPX_S(mpx_stage(&Inc, NULL),
                                        MPX_P(mpx_as(2, &Spin, &(long){100}), mpx_stage(&Inc, NULL)))),
                            mpx_stage(&Check, &(int64_t){2}));
    expect_marks(g, 60);
}

/* A stage in between that consumes the marks: none reach check. */
static int eat_mark(mpx_stage_t *st, uint64_t value)
{
    (void)st;
    (void)value;
    return MPX_MARK_CONSUMED;
}
static int pass(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }
static const mpx_stage_def_t EaterPass = {.name = "eater", .process = pass, .mark = eat_mark};

static void mark_consumed(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Marker, &(marker_args_t){1000, 10}),
                            mpx_stage(&EaterPass, NULL), mpx_stage(&Check, &(int64_t){1}));
    expect_marks(g, 0);
}

/* ---- idle --------------------------------------------------------------- *
 * The source puts one item, then waits until the consumer's idle hook has
 * run (the consumer sets an event when it runs out of input).  Without
 * idle calls the source would time out and fail the run. */

static mpx_event_t *went_idle;

static int paced_setup(mpx_stage_t *st)
{
    for (int64_t v = 0; v < 20; v++) {
        int rc = mpx_put_i64(st, v);
        if (rc == 0)
            rc = mpx_flush(st);
        if (rc != 0)
            return rc;
        if (mpx_event_wait(went_idle, 20000) != 1)
            return mpx_fail(st, "the consumer never went idle after item %lld", (long long)v);
        mpx_event_clear(went_idle);
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Paced = {.name = "paced", .setup = paced_setup};

static int idler_idle(mpx_stage_t *st)
{
    int64_t *idles = mpx_state(st);
    ++*idles;
    return mpx_event_set(went_idle);
}
static int idler_teardown(mpx_stage_t *st) { return mpx_put_i64(st, *(int64_t *)mpx_state(st)); }
static const mpx_stage_def_t Idler = {.name = "idler", .state_size = sizeof(int64_t),
                                      .process = check_process, .idle = idler_idle,
                                      .teardown = idler_teardown};

static void idle_hook_runs_when_input_pauses(void)
{
    went_idle = mpx_event_new();
    REQUIRE(went_idle, "event");
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Paced, NULL), mpx_stage(&Idler, NULL));
    int64_t n;
    int64_t idles = drain_sum(g, &n);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(n, 1);
    CHECK(idles >= 20, "idle ran %lld times for 20 pauses", (long long)idles);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&went_idle);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(marks_behind_parallel_work),
        TEST_CASE(marks_behind_broadcast),
        TEST_CASE(mark_consumed),
        TEST_CASE(idle_hook_runs_when_input_pauses),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
