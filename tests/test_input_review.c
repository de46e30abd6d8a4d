/* tests/test_input_review.c — cases found in a review of the program's
 * input (mpx_graph_put & co.) and of the pool map (mpx/imap.h): each one
 * failed before the fix that came with it, or shows a limit described in
 * the review.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

/* ---- stages ------------------------------------------------------------- */

/* Blocks on item `id` until `open` is set. */
typedef struct gate_args {
    mpx_event_t *open;
    int64_t id;
} gate_args_t;
static int gate_process(mpx_stage_t *st, mpx_item_t *it)
{
    const gate_args_t *a = mpx_args(st);
    /* What it put before goes out before it blocks. */
    if (mpx_item_i64(it) == a->id && (mpx_flush(st) < 0 || mpx_event_wait(a->open, -1) != 1))
        return mpx_fail(st, "waiting for the gate failed");
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Gate = {.name = "gate", .args_size = sizeof(gate_args_t),
                                     .process = gate_process};

/* ---- helpers ------------------------------------------------------------ */

/* Times each input index came out (outputs without one count as bad). */
typedef struct tally {
    int64_t n, nindex, bad;
    int64_t *by_index;
} tally_t;

static void tally_init(tally_t *t, int64_t nindex)
{
    memset(t, 0, sizeof *t);
    t->nindex = nindex;
    t->by_index = calloc((size_t)nindex + 1, sizeof *t->by_index);
    REQUIRE(t->by_index, "out of memory");
}

static void tally_add(tally_t *t, const mpx_item_t *it)
{
    int64_t idx = -1;
    t->n++;
    if (mpx_item_meta_i64(it, "mpx.index", &idx) != 0 || idx < 0 || idx >= t->nindex)
        t->bad++;
    else
        t->by_index[idx]++;
}

/* Indexes that did not come out exactly `times` times. */
static int64_t tally_wrong(const tally_t *t, int64_t times)
{
    int64_t wrong = t->bad;
    for (int64_t i = 0; i < t->nindex; i++)
        wrong += t->by_index[i] != times;
    return wrong;
}

/* ---- cases -------------------------------------------------------------- */

/* While the input's batch waits for credit that only the graph can give
 * (the only stage is stuck on its first item), nothing is for the program:
 * the descriptor stays quiet.  It used to be armed to fire at once (the
 * batch "due" since it could not go), so an event loop spun at full speed
 * for as long as the graph was slower than its input. */
static void descriptor_quiet_while_input_waits(void)
{
    mpx_event_t *open = mpx_event_new();
    REQUIRE(open, "event");
    gate_args_t ga = {open, 0};
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Gate, &ga));
    REQUIRE(mpx_node_set_capacity(g, 1, 0) == 0, "capacity");
    CHECK_EQ(mpx_graph_set_nonblocking(g, true), 0);
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "fd: %s", mpx_strerror(fd));
    int64_t x = 0;
    int rc;
    while ((rc = mpx_graph_put(g, &x, sizeof x)) == 0)
        x++;
    CHECK_EQ(rc, MPX_EAGAIN);
    /* Serve the descriptor as an event loop would, a bounded number of
     * times, putting when told of room: each wake-up must have a reason,
     * and with the stage stuck only a few items can go in. */
    int woken = 0, idle = 0;
    for (int i = 0; i < 20; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) != 1)
            continue;
        woken++;
        rc = mpx_graph_dispatch(g);
        REQUIRE(rc > 0, "dispatch: %d", rc);
        idle += rc == MPX_DISPATCH_IDLE;
        if (rc & MPX_DISPATCH_INPUT)
            while (mpx_graph_put(g, &x, sizeof x) == 0)
                x++;
    }
    CHECK(woken <= 8,
          "the descriptor woke the program %d times of 20 (%d for nothing) while the only "
          "stage was stuck (%lld items in)", woken, idle, (long long)x);
    REQUIRE(mpx_event_set(open) == 0, "open");
    tally_t t;
    tally_init(&t, 1000);
    mpx_item_t *it;
    for (; x < 1000; x++)
        while ((rc = mpx_graph_put(g, &x, sizeof x)) == MPX_EAGAIN)
            if (mpx_graph_poll(g, 100, &it) == 1)
                tally_add(&t, it);
    CHECK_EQ(mpx_graph_close_input(g), 0);
    CHECK_EQ(mpx_graph_set_nonblocking(g, false), 0);
    while ((it = mpx_graph_next(g)))
        tally_add(&t, it);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(tally_wrong(&t, 1), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&open);
    free(t.by_index);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(descriptor_quiet_while_input_waits),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
