/* tests/test_wiring.c — manual wiring: a queue and an event made before
 * start, handed to stages through args, used across the forked stages. */
#define _GNU_SOURCE
#include <string.h>

#include "harness.h"
#include "stages.h"

typedef struct wires {
    mpx_queue_t *q;
    mpx_event_t *ev;
} wires_t;

/* For each x, sends x*x through the queue, then passes x on.  The item
 * is flushed at once: the next queue put may wait for the summer, which
 * needs this item to take a message from the queue. */
static int square_to_queue(mpx_stage_t *st, mpx_item_t *it)
{
    const wires_t *w = mpx_args(st);
    int64_t sq = mpx_item_i64(it) * mpx_item_i64(it);
    int rc = mpx_queue_put(w->q, &sq, sizeof sq, 10000);
    if (rc != 0)
        return mpx_fail(st, "queue put: %s", mpx_strerror(rc));
    rc = mpx_put_item(st, it);
    return rc ? rc : mpx_flush(st);
}
static const mpx_stage_def_t Squarer = {.name = "squarer", .args_size = sizeof(wires_t),
                                        .process = square_to_queue};

/* For each item from the edge, takes one message from the queue: the
 * squarer sent it before it put the item, so it is there.  Puts the sum
 * of the messages at teardown, and sets the event. */
typedef struct summer_state {
    int64_t sum;
} summer_state_t;

static int sum_from_queue(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    const wires_t *w = mpx_args(st);
    summer_state_t *s = mpx_state(st);
    int64_t v;
    long n = mpx_queue_get(w->q, &v, sizeof v, 10000);
    if (n != (long)sizeof v)
        return mpx_fail(st, "queue get returned %ld", n);
    s->sum += v;
    return 0;
}
static int summer_teardown(mpx_stage_t *st)
{
    const wires_t *w = mpx_args(st);
    int rc = mpx_event_set(w->ev);
    return rc ? rc : mpx_put_i64(st, ((summer_state_t *)mpx_state(st))->sum);
}
static const mpx_stage_def_t Summer = {.name = "summer", .args_size = sizeof(wires_t),
                                       .state_size = sizeof(summer_state_t),
                                       .process = sum_from_queue, .teardown = summer_teardown};

static void stages_talk_through_a_queue(void)
{
    wires_t w = {mpx_queue_new(4096, sizeof(int64_t)), mpx_event_new()};
    REQUIRE(w.q && w.ev, "wiring");
    CHECK(!mpx_event_is_set(w.ev), "new event is set");
    /* The two stages are not neighbours: Inc stands between them. */
    mpx_graph_t *g = MPX_EZ(range_node(0, 1000), mpx_as(2, &Squarer, &w), mpx_stage(&Inc, NULL),
                            mpx_stage(&Summer, &w));
    int64_t n;
    int64_t sum = drain_sum(g, &n);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(n, 1);
    int64_t want = 0;
    for (int64_t x = 0; x < 1000; x++)
        want += x * x;
    CHECK_EQ(sum, want);
    /* The event a stage set is seen by the parent. */
    CHECK(mpx_event_is_set(w.ev), "event not set");
    CHECK_EQ(mpx_event_wait(w.ev, 0), 1);
    CHECK_EQ(mpx_event_clear(w.ev), 0);
    CHECK(!mpx_event_is_set(w.ev), "event still set after clear");
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_queue_destroy(&w.q);
    mpx_event_destroy(&w.ev);
    CHECK(w.q == NULL && w.ev == NULL, "destroy clears the pointers");
}

static void queue_limits(void)
{
    mpx_queue_t *q = mpx_queue_new(1024, 100);
    REQUIRE(q, "queue");
    char buf[100], big[200] = {0};
    CHECK_EQ(mpx_queue_max_message(q), 100);
    CHECK_EQ(mpx_queue_get(q, buf, sizeof buf, 0), MPX_ETIMEDOUT);
    CHECK_EQ(mpx_queue_get(q, buf, sizeof buf, 20), MPX_ETIMEDOUT);
    CHECK_EQ(mpx_queue_put(q, big, sizeof big, 0), MPX_ERANGE);
    CHECK_EQ(mpx_queue_put(q, "", 0, 0), 0);
    CHECK_EQ(mpx_queue_put(q, "hello", 5, 0), 0);
    CHECK_EQ(mpx_queue_get(q, buf, 10, 0), MPX_EINVAL); /* smaller than max_message */
    CHECK_EQ(mpx_queue_get(q, buf, sizeof buf, 0), 0);   /* an empty message */
    CHECK_EQ(mpx_queue_get(q, buf, sizeof buf, 0), 5);
    CHECK(memcmp(buf, "hello", 5) == 0, "content");
    /* A full queue refuses when told not to wait. */
    int rc = 0, puts = 0;
    while (puts < 100000 && (rc = mpx_queue_put(q, big, 100, 0)) == 0)
        puts++;
    CHECK_EQ(rc, MPX_ETIMEDOUT);
    CHECK(puts > 0, "nothing fit");
    printf("a 1 KiB queue took %d messages of 100 bytes\n", puts);
    CHECK(mpx_queue_new(0, 0) == NULL && mpx_queue_new(10, 20) == NULL, "bad sizes accepted");
    mpx_queue_destroy(&q);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(stages_talk_through_a_queue),
        TEST_CASE(queue_limits),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
