/* tests/test_chaos.c — a million items through a parallel group of four
 * workers while a random worker is killed with SIGKILL about every 100 ms,
 * under a retry policy: every id must arrive at least once, and every id
 * that arrives twice must be one that was sent again after its worker
 * died.  Without kills, every id arrives exactly once.  Smaller runs do
 * the same to other shapes: two recoverable levels, one process per
 * stage in a chain, and a broadcast with one recoverable branch.
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

/* x -> x + *(int64_t *)args: tells a broadcast's branches apart. */
static int shift_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t v = mpx_item_i64(it) + *(const int64_t *)mpx_args(st);
    return mpx_put(st, &v, sizeof v);
}
static const mpx_stage_def_t Shift = {.name = "shift", .args_size = sizeof(int64_t),
                                      .process = shift_process};

/* A few microseconds of work per item, so that a run lasts long enough
 * for several kills. */
static const long spins = 4000;

/* The graphs: the stages named "spin" are recoverable and are the ones
 * killed; ids arrive in [0, *ids). */
static mpx_graph_t *one_group(int64_t n, int64_t *ids)
{
    *ids = n;
    mpx_node_t *workers = mpx_as(4, &Spin, &spins);
    mpx_graph_t *g = MPX_EZ(range_node(0, n), workers);
    CHECK_EQ(mpx_node_set_retries(workers, 5), 0);
    return g;
}

static mpx_graph_t *two_levels(int64_t n, int64_t *ids)
{
    *ids = n;
    mpx_graph_t *g = MPX_EZ(range_node(0, n), mpx_as(4, &Spin, &spins), mpx_as(2, &Spin, &spins));
    CHECK_EQ(mpx_node_set_retries(g, 5), 0);
    return g;
}

static mpx_graph_t *chain(int64_t n, int64_t *ids)
{
    *ids = n;
    mpx_graph_t *g = MPX_EZ(range_node(0, n), mpx_stage(&Spin, &spins), mpx_stage(&Spin, &spins),
                            mpx_stage(&Spin, &spins));
    CHECK_EQ(mpx_node_set_retries(g, 5), 0);
    return g;
}

/* Ids [0, n) come through the recoverable branch, [n, 2n) through the
 * other, which is never killed. */
static mpx_graph_t *broadcast(int64_t n, int64_t *ids)
{
    *ids = 2 * n;
    mpx_node_t *workers = mpx_as(3, &Spin, &spins);
    mpx_graph_t *g = MPX_EZ(range_node(0, n), MPX_B(workers, mpx_stage(&Shift, &n)));
    CHECK_EQ(mpx_node_set_retries(workers, 5), 0);
    return g;
}

typedef struct outcome {
    int64_t ids, total, dups, lost, dup_unmarked;
    long long kills, restarts, resent;
} outcome_t;

/* Run `shape` with n items; with kill_until > 0, kill a random "spin"
 * process every 50-150 ms until that share of the items has arrived. */
static void run(mpx_graph_t *(*shape)(int64_t, int64_t *), int64_t n, double kill_until,
                outcome_t *o)
{
    memset(o, 0, sizeof *o);
    int64_t ids;
    mpx_graph_t *g = shape(n, &ids);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    size_t victims[64], nvictims = 0;
    pid_t killed[64] = {0};
    for (size_t i = 0; i < mpx_graph_instance_count(g) && nvictims < 64; i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) == 0 && strcmp(info.name, "spin") == 0)
            victims[nvictims++] = i;
    }
    REQUIRE(nvictims > 0, "nothing to kill");
    /* Per id: arrivals (low 7 bits, capped) and whether one was marked as
     * sent again (high bit). */
    unsigned char *seen = calloc((size_t)ids, 1);
    REQUIRE(seen, "out of memory");
    unsigned seed = 12345;
    double next_kill = now_s() + 0.1;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t id = mpx_item_i64(it);
        REQUIRE(id >= 0 && id < ids, "id %lld out of range", (long long)id);
        if ((seen[id] & 0x7f) < 0x7f)
            seen[id]++;
        if (mpx_item_meta(it, "mpx.redelivered", NULL))
            seen[id] |= 0x80;
        o->total++;
        if (kill_until > 0 && (o->total & 255) == 0 && o->total < (int64_t)(ids * kill_until) &&
            now_s() >= next_kill) {
            next_kill = now_s() + 0.05 + (rand_r(&seed) % 100) / 1000.0;
            size_t v = (size_t)rand_r(&seed) % nvictims;
            mpx_instance_info_t info;
            /* A process killed before and not yet reaped still has its
             * pid (kill succeeds on it): that is not another death. */
            if (mpx_graph_instance_info(g, victims[v], &info) == 0 && !info.exited &&
                info.pid > 0 && info.pid != killed[v] && kill(info.pid, SIGKILL) == 0) {
                killed[v] = info.pid;
                o->kills++;
            }
        }
    }
    int rc = mpx_graph_join(g);
    CHECK_EQ(rc, 0);
    if (rc != 0)
        printf("error: %s\n", mpx_graph_error(g));
    for (int64_t id = 0; id < ids; id++) {
        int k = seen[id] & 0x7f;
        if (k == 0)
            o->lost++;
        if (k > 1) {
            o->dups += k - 1;
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
    o->ids = ids;
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* What every run with kills must show. */
static void check_survived(const char *what, const outcome_t *o)
{
    printf("%s: %lld kills, %lld restarts, %lld items arrived, %lld duplicates, %lld items "
           "sent again\n",
           what, o->kills, o->restarts, (long long)o->total, (long long)o->dups, o->resent);
    CHECK(o->kills >= 3, "only %lld kills: the run was too short to test anything", o->kills);
    /* More restarts than kills when a replacement had to be replaced
     * again (one that does not start in time is). */
    CHECK(o->restarts >= o->kills, "%lld restarts for %lld kills", o->restarts, o->kills);
    CHECK_EQ(o->lost, 0);
    CHECK_EQ(o->dup_unmarked, 0);
    CHECK(o->dups <= o->resent, "%lld duplicates but only %lld items sent again",
          (long long)o->dups, o->resent);
    CHECK_EQ(o->total, o->ids + o->dups);
}

static void chaos_every_id_at_least_once(void)
{
    outcome_t o;
    /* Kills stop near the end: a worker killed once the source is done
     * has nothing left to lose (the other shapes go on to the end). */
    run(one_group, N, 0.9, &o);
    check_survived("one group of 4", &o);
}

static void no_kills_exactly_once(void)
{
    outcome_t o;
    run(one_group, N, 0, &o);
    CHECK_EQ(o.lost, 0);
    CHECK_EQ(o.dups, 0);
    CHECK_EQ(o.total, N);
    CHECK_EQ(o.restarts, 0);
    CHECK_EQ(o.resent, 0);
}

/* Either level's workers die; a replacement at the first level sends to
 * the second level's current processes. */
static void chaos_two_levels(void)
{
    outcome_t o;
    run(two_levels, N / 2, 1.0, &o);
    check_survived("4 then 2 workers", &o);
}

/* No siblings: what a dead process held waits for its replacement. */
static void chaos_chain_of_single_processes(void)
{
    outcome_t o;
    run(chain, N / 2, 1.0, &o);
    check_survived("3 single processes in a row", &o);
}

static void chaos_broadcast_branch(void)
{
    outcome_t o;
    run(broadcast, N / 2, 1.0, &o);
    check_survived("broadcast to 3 workers and a plain stage", &o);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(chaos_every_id_at_least_once),
        TEST_CASE(no_kills_exactly_once),
        TEST_CASE(chaos_two_levels),
        TEST_CASE(chaos_chain_of_single_processes),
        TEST_CASE(chaos_broadcast_branch),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
