/* tests/test_seq_review.c — Seq whose halves run in its neighbours'
 * processes (README, "Seq runs in its neighbours' processes"), driven as
 * a user would drive it: a source that answers requests, stops and
 * failures next to a hosted half, the pool, side graphs, the program's
 * ways of reading an ordered end.  Each case is what a review of that
 * change found or tried.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(source_answers_requests_through_seq_at_the_end),
        TEST_CASE(source_answers_requests_through_seq_in_stages),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
