/* tests/test_ended.c — a recoverable stage killed once its parent would
 * take it for finished (its blackbox says ended) is replaced by one that
 * only ends its stream again, runs no teardown and takes no item: what it
 * put, in teardown too, must reach the consumer all the same.  The kill
 * comes from a test hook (lib/testhook.h) at that exact instant, while
 * the consumer, slower than the worker, still has a window of the
 * teardown's items unread.  The same for a worker that stopped itself
 * (mpx_stop): its input was confirmed when it closed, and what its
 * teardown puts after that must still be confirmed before it ends. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "lib/testhook.h"

enum { N = 200, TAIL = 400, STOP_AT = 120 };

/* N ids, then a pause before the end of stream: the worker goes idle and
 * confirms all it took, so that nothing taken is left to confirm when
 * its teardown puts. */
static int src_setup(mpx_stage_t *st)
{
    for (int64_t i = 0; i < N; i++) {
        int rc = mpx_put_i64(st, i);
        if (rc != 0)
            return rc;
    }
    usleep(900 * 1000);
    return mpx_stop(st);
}
static const mpx_stage_def_t Src = {.name = "src", .setup = src_setup};

static int pass_process(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }

/* TAIL ids of its own in teardown, then the kill is armed: it fires as
 * the process marks itself ended. */
static int tail_teardown(mpx_stage_t *st)
{
    for (int64_t i = N; i < N + TAIL; i++) {
        int rc = mpx_put_i64(st, i);
        if (rc != 0)
            return rc;
    }
    return testhook_crash_when_ended(st);
}
static const mpx_stage_def_t Tail = {.name = "tail", .process = pass_process,
                                     .teardown = tail_teardown};

/* Passes ids up to STOP_AT, then stops itself: the rest of its input is
 * discarded, and its teardown puts the tail as above. */
static int stopper_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t v = mpx_item_i64(it);
    int rc = mpx_put_item(st, it);
    if (rc == 0 && v == STOP_AT)
        rc = mpx_stop(st);
    return rc;
}
static const mpx_stage_def_t Stopper = {.name = "tail", .process = stopper_process,
                                        .teardown = tail_teardown};

/* Slower than the worker: the worker's last puts are unread in this
 * consumer's socket when it is killed. */
static int slow_process(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    usleep(3000);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Slow = {.name = "slow", .process = slow_process};

/* Runs src -> worker (recoverable) -> slow and checks that exactly the
 * ids below `passed` and the TAIL teardown ids arrive, and that the
 * worker was replaced once (the kill at its end). */
static void run(const mpx_stage_def_t *worker, int passed)
{
    mpx_node_t *w = mpx_stage(worker, NULL);
    REQUIRE(w && mpx_node_set_retries(w, 2) == 0, "recoverable worker");
    mpx_node_t *slow = mpx_stage(&Slow, NULL);
    REQUIRE(slow, "slow consumer");
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Src, NULL), w, slow);
    REQUIRE(g, "graph");
    int seen[N + TAIL] = {0};
    int64_t total = 0, bad = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t v = mpx_item_i64(it);
        if (v >= 0 && v < N + TAIL && (v < passed || v >= N))
            seen[v]++;
        else
            bad++;
        total++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(bad, 0);
    int missing = 0, first = -1;
    for (int i = 0; i < N + TAIL; i++)
        if ((i < passed || i >= N) && !seen[i] && missing++ == 0)
            first = i;
    CHECK(missing == 0, "%d of %d ids never arrived (the first: %d; %d teardown ids)", missing,
          passed + TAIL, first, TAIL);
    uint64_t restarts = 0;
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) == 0 && strcmp(info.name, "tail") == 0)
            restarts += info.restarts;
    }
    CHECK_EQ(restarts, 1);
    printf("%lld arrivals of %d ids, %llu restart(s)\n", (long long)total, passed + TAIL,
           (unsigned long long)restarts);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void teardown_output_survives_a_kill_at_the_end(void) { run(&Tail, N); }

static void stopped_stage_teardown_output_survives_a_kill_at_the_end(void)
{
    run(&Stopper, STOP_AT + 1);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(teardown_output_survives_a_kill_at_the_end),
        TEST_CASE(stopped_stage_teardown_output_survives_a_kill_at_the_end),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
