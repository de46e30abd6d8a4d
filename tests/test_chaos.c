/* tests/test_chaos.c — a million items through a parallel group of four
 * workers while a random worker is killed with SIGKILL about every 100 ms,
 * under a retry policy: every id must arrive at least once, and every id
 * that arrives twice must be one that was sent again after its worker
 * died.  Without kills, every id arrives exactly once.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "stages.h"

#define N 1000000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct outcome {
    int64_t total, dups, lost, dup_unmarked;
    long long kills, restarts, resent;
} outcome_t;

static void run(bool kill_workers, outcome_t *o)
{
    memset(o, 0, sizeof *o);
    /* A few microseconds of work per item, so that the run lasts long
     * enough for tens of kills. */
    long spins = 4000;
    mpx_node_t *workers = mpx_as(4, &Spin, &spins);
    mpx_graph_t *g = MPX_EZ(range_node(0, N), workers);
    CHECK_EQ(mpx_node_set_retries(workers, 5), 0);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    /* Per id: arrivals (low 7 bits, capped) and whether one was marked as
     * sent again (high bit). */
    unsigned char *seen = calloc(N, 1);
    REQUIRE(seen, "out of memory");
    unsigned seed = 12345;
    pid_t killed[5] = {0};
    double next_kill = now_s() + 0.1;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t id = mpx_item_i64(it);
        REQUIRE(id >= 0 && id < N, "id %lld out of range", (long long)id);
        if ((seen[id] & 0x7f) < 0x7f)
            seen[id]++;
        if (mpx_item_meta(it, "mpx.redelivered", NULL))
            seen[id] |= 0x80;
        o->total++;
        /* Kills stop near the end: a worker killed once the source is
         * done has nothing left to lose, and proves nothing more. */
        if (kill_workers && (o->total & 255) == 0 && o->total < N * 9 / 10 &&
            now_s() >= next_kill) {
            next_kill = now_s() + 0.05 + (rand_r(&seed) % 100) / 1000.0;
            size_t victim = 1 + (size_t)(rand_r(&seed) % 4); /* instances 1..4 */
            mpx_instance_info_t info;
            /* A process killed before and not yet reaped still has its
             * pid (kill succeeds on it): that is not another death. */
            if (mpx_graph_instance_info(g, victim, &info) == 0 && !info.exited && info.pid > 0 &&
                info.pid != killed[victim] && kill(info.pid, SIGKILL) == 0) {
                killed[victim] = info.pid;
                o->kills++;
            }
        }
    }
    int rc = mpx_graph_join(g);
    CHECK_EQ(rc, 0);
    if (rc != 0)
        printf("error: %s\n", mpx_graph_error(g));
    for (int64_t id = 0; id < N; id++) {
        int n = seen[id] & 0x7f;
        if (n == 0)
            o->lost++;
        if (n > 1) {
            o->dups += n - 1;
            if (!(seen[id] & 0x80))
                o->dup_unmarked++;
        }
    }
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) == 0) {
            o->restarts += info.restarts;
            o->resent += (long long)info.items_resent;
        }
    }
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void chaos_every_id_at_least_once(void)
{
    outcome_t o;
    run(true, &o);
    printf("%lld kills, %lld restarts, %lld items arrived, %lld duplicates, %lld items sent "
           "again\n",
           o.kills, o.restarts, (long long)o.total, (long long)o.dups, o.resent);
    CHECK(o.kills >= 3, "only %lld kills: the run was too short to test anything", o.kills);
    /* More restarts than kills when a replacement had to be replaced
     * again (one that does not start in time is). */
    CHECK(o.restarts >= o.kills, "%lld restarts for %lld kills", o.restarts, o.kills);
    CHECK_EQ(o.lost, 0);
    CHECK_EQ(o.dup_unmarked, 0);
    CHECK(o.dups <= o.resent, "%lld duplicates but only %lld items sent again",
          (long long)o.dups, o.resent);
    CHECK_EQ(o.total, N + o.dups);
}

static void no_kills_exactly_once(void)
{
    outcome_t o;
    run(false, &o);
    CHECK_EQ(o.lost, 0);
    CHECK_EQ(o.dups, 0);
    CHECK_EQ(o.total, N);
    CHECK_EQ(o.restarts, 0);
    CHECK_EQ(o.resent, 0);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(chaos_every_id_at_least_once),
        TEST_CASE(no_kills_exactly_once),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
