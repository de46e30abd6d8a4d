/* tests/test_pool_recovery.c — stage processes made by the fork server
 * (lib/forksrv.c) that die holding the pool's lock, in a running graph.
 *
 * The pool's allocation lock is a robust mutex: a holder's death leaves
 * EOWNERDEAD to the next locker, who rebuilds the allocator.  The kernel
 * does that only for a thread that registered its robust list, which a
 * raw clone does not inherit; the fork server registers it again in every
 * replacement it makes (lib/pool.h, "Allocation takes a robust ...").
 * tests/test_pool.c kills processes made by fork() inside the allocator;
 * here the dying processes are the server's.  Without the registration
 * the lock stays held for good: the parent's reclaim and every stage's
 * allocation wait on it, and the run never ends (the watchdog below turns
 * that into a failure that names the cause).
 *
 * The plan: the first process of a recoverable worker kills itself, so
 * its replacement comes from the fork server; that replacement (and, in
 * the loop, each one after it) arms a crash point inside the lock with
 * lib/testhook.h and calls mpx_alloc or mpx_free, dying there.  Then the
 * source, the other worker and the last replacements must still allocate:
 * the run ends, every item arrives intact, and nothing is in use.
 *
 * The test keeps its books in shared memory (a board) rather than asking
 * the library whether a replacement came from the server: the server's
 * memory is the application's as it was when the stages were forked, so
 * a variable the application sets only after mpx_graph_start reads 0 in
 * a server-made process and 1 in one the application forked itself.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "lib/pool.h"
#include "lib/testhook.h"

#define MIB (1024 * 1024)
/* The source gives up (and the run fails) after this many items: a bound
 * on items, so that a plan that cannot come true ends the run. */
#define MAX_ITEMS 20000
/* Items the source still puts, each a new allocation, once every planned
 * death has happened. */
#define TAIL 64
#define MAX_POINTS 32
#define WORKERS 2
/* A first process dies at its KILL_AT-th item (after the start). */
#define KILL_AT 10
/* Seconds after which a run that has not ended is taken as hung: only
 * there to fail with a reason before meson's bare timeout (180 s).  A run
 * takes well under a second here, under ASan too. */
#define WATCHDOG_S 90
#define STR_(x) #x
#define STR(x) STR_(x)

/* In shared memory, mapped before start: what every process did. */
typedef struct board {
    _Atomic int32_t started;        /* the application set graph_started */
    _Atomic int32_t procs[WORKERS]; /* processes each worker instance had */
    _Atomic int32_t next;           /* the next planned crash point to claim */
    _Atomic int32_t not_reached;    /* a process outlived its crash point */
    _Atomic int32_t from_app;       /* replacements the application forked */
    _Atomic int32_t after;          /* items put by replacements with no point left */
    _Atomic int64_t total;          /* items the source put, once it ends */
} board_t;

/* What both stages are told (their args). */
typedef struct trial {
    board_t *board;
    int nkill;   /* worker instances whose first process dies */
    int npoints; /* deaths in the lock, one per server-made replacement */
    int points[MAX_POINTS];
} trial_t;

/* 0 in every process made from the application's memory as it was before
 * mpx_graph_start returned: the first stage processes and the fork server
 * (so every process it makes). */
static volatile int graph_started;

/* ---- items -------------------------------------------------------------- */

/* Size of item v: 64 KiB to 256 KiB, spread by a hash of v. */
static size_t item_size(int64_t v)
{
    uint64_t h = (uint64_t)v * 0x9e3779b97f4a7c15u;
    return 64 * 1024 + (size_t)((h >> 24) % (192 * 1024 + 1));
}

/* A checksum that reads every byte. */
static uint64_t checksum(const unsigned char *d, size_t n)
{
    uint64_t s = 1469598103934665603u;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        s = (s ^ w) * 1099511628211u;
    }
    for (; i < n; i++)
        s = (s ^ d[i]) * 1099511628211u;
    return s;
}

static void fill(unsigned char *d, size_t size, int64_t v)
{
    uint64_t x = (uint64_t)v * 0x2545f4914f6cdd1du + 1;
    for (size_t i = 0; i + 8 <= size; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(d + i, &x, 8);
    }
    memset(d + size - size % 8, (int)v, size % 8);
}

/* ---- the source --------------------------------------------------------- */

/* Every planned death has happened: each death made one more process of
 * its instance, and a replacement that found no crash point left has put
 * an item (so it allocated). */
static bool deaths_done(const trial_t *t)
{
    const board_t *b = t->board;
    int procs = 0;
    for (int i = 0; i < WORKERS; i++)
        procs += atomic_load(&b->procs[i]);
    return atomic_load(&b->next) >= t->npoints && procs >= WORKERS + t->nkill + t->npoints &&
           atomic_load(&b->after) > 0;
}

/* Puts items written in place into pool blocks (meta "v" and "sum")
 * until every planned death has happened, then TAIL more. */
static int src_setup(mpx_stage_t *st)
{
    const trial_t *t = mpx_args(st);
    board_t *b = t->board;
    int64_t v = 0, end = MAX_ITEMS;
    int rc = 0;
    for (; v < end && rc == 0; v++) {
        if (end == MAX_ITEMS && deaths_done(t))
            end = v + TAIL;
        /* What cannot come true any more ends the run at once. */
        if (atomic_load(&b->from_app) > 0) {
            rc = mpx_fail(st, "a replacement was forked by the application, not made by the "
                              "fork server (did the kernel refuse its clone?)");
            break;
        }
        if (atomic_load(&b->not_reached) > 0) {
            rc = mpx_fail(st, "a replacement outlived its crash point");
            break;
        }
        size_t size = item_size(v);
        unsigned char *d = mpx_alloc(st, size);
        if (!d) {
            rc = mpx_fail(st, "mpx_alloc(%zu) gave NULL", size);
            break;
        }
        fill(d, size, v);
        rc = mpx_meta_set_i64(st, "v", v);
        if (rc == 0)
            rc = mpx_meta_set_i64(st, "sum", (int64_t)checksum(d, size));
        if (rc == 0)
            rc = mpx_put_alloc(st, d, size);
        else if (mpx_free(st, d) != 0)
            rc = mpx_fail(st, "mpx_free of a block just allocated failed");
    }
    atomic_store(&b->total, v);
    if (rc == 0 && end == MAX_ITEMS)
        rc = mpx_fail(st, "%d items and the planned deaths have not all happened: %d of %d "
                          "crash points claimed, %d outlived",
                      MAX_ITEMS, (int)atomic_load(&b->next), t->npoints,
                      (int)atomic_load(&b->not_reached));
    return rc;
}
static const mpx_stage_def_t Src = {.name = "src", .args_size = sizeof(trial_t),
                                    .setup = src_setup};

/* ---- the workers -------------------------------------------------------- */

typedef struct work_state {
    int nth;        /* 0: the instance's first process */
    int64_t taken;  /* items taken since the application started the graph */
    bool looked;    /* a replacement has decided whether it dies */
    bool survivor;  /* a server-made replacement that found no point left */
} work_state_t;

static int work_setup(mpx_stage_t *st)
{
    const trial_t *t = mpx_args(st);
    work_state_t *w = mpx_state(st);
    w->nth = atomic_fetch_add(&t->board->procs[mpx_stage_instance(st)], 1);
    return 0;
}

static bool at_free(int point)
{
    return point >= POOL_CRASH_FREE_LOCKED && point <= POOL_CRASH_FREE_UNLOCKED;
}

/* Arm `point` and make the pool call that reaches it: mpx_alloc for an
 * allocator's point, mpx_free of a block of our own for a free's.  Does
 * not return unless the point was not on the way. */
static int die_at(mpx_stage_t *st, int point)
{
    const trial_t *t = mpx_args(st);
    void *blk = NULL;
    if (at_free(point) && !(blk = mpx_alloc(st, 1000)))
        return mpx_fail(st, "mpx_alloc(1000) gave NULL");
    int rc = testhook_pool_crash_at(st, point);
    if (rc != 0)
        return mpx_fail(st, "testhook_pool_crash_at(%d): %s", point, mpx_strerror(rc));
    if (at_free(point))
        rc = mpx_free(st, blk);
    else if ((blk = mpx_alloc(st, 1000)) != NULL)
        rc = mpx_free(st, blk);
    atomic_fetch_add(&t->board->not_reached, 1);
    return mpx_fail(st, "crash point %d was not reached (the call gave %d)", point, rc);
}

/* Copies each item into a new block and puts that, so that every worker
 * allocates; the first process of the first nkill instances dies at its
 * KILL_AT-th item, and each server-made replacement on its first item
 * claims the next planned crash point and dies there.
 *
 * A process that is to die puts no pool item: its copy's checksum goes
 * out as a plain 8-byte item instead.  A pool record from a process that
 * died, read after the supervisor freed its block, fails the run today
 * as "malformed message on an edge" (pool_hold_if answers MPX_EINVAL for
 * a block no longer held, where pool.h promises MPX_ESTOPPED, which the
 * reader would drop as stale): a fault of its own, not this test's
 * subject.  The dying replacements die before they put anything. */
static int work_process(mpx_stage_t *st, mpx_item_t *it)
{
    const trial_t *t = mpx_args(st);
    board_t *b = t->board;
    work_state_t *w = mpx_state(st);
    bool doomed = w->nth == 0 && mpx_stage_instance(st) < t->nkill;
    /* Only after the application noted the start: every replacement is
     * then made after graph_started was set, and tells its origin. */
    if (doomed && atomic_load(&b->started) && ++w->taken == KILL_AT)
        kill(getpid(), SIGKILL);
    if (w->nth > 0 && !w->looked) {
        w->looked = true;
        if (graph_started) {
            atomic_fetch_add(&b->from_app, 1);
        } else {
            int k = atomic_fetch_add(&b->next, 1);
            if (k < t->npoints)
                return die_at(st, t->points[k]);
            w->survivor = true;
        }
    }
    size_t size = mpx_item_size(it, 0);
    unsigned char *d = mpx_alloc(st, size);
    if (!d)
        return mpx_fail(st, "mpx_alloc(%zu) gave NULL", size);
    memcpy(d, mpx_item_data(it, 0), size);
    int rc;
    if (doomed) {
        uint64_t sum = checksum(d, size);
        rc = mpx_free(st, d);
        if (rc != 0)
            return mpx_fail(st, "mpx_free: %s", mpx_strerror(rc));
        return mpx_put(st, &sum, sizeof sum);
    }
    rc = mpx_put_alloc(st, d, size);
    if (rc == 0 && w->survivor)
        atomic_fetch_add(&b->after, 1);
    return rc;
}
static const mpx_stage_def_t Work = {.name = "work",
                                     .args_size = sizeof(trial_t),
                                     .state_size = sizeof(work_state_t),
                                     .setup = work_setup,
                                     .process = work_process};

/* ---- the run ------------------------------------------------------------ */

static void on_watchdog(int sig)
{
    (void)sig;
    static const char msg[] =
        "test_pool_recovery: the run has not ended after " STR(WATCHDOG_S) " s: hung, most "
        "likely on the pool's lock, held by a process that died without its robust list "
        "registered\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0)
        _exit(2);
    _exit(1);
}

/* A worker's copy of item v: the whole item, or the checksum of a copy
 * (from a process that was to die). */
static bool copy_ok(const mpx_item_t *it, int64_t v, int64_t sum)
{
    size_t size = mpx_item_size(it, 0);
    if (size == sizeof(uint64_t)) {
        uint64_t got;
        memcpy(&got, mpx_item_data(it, 0), sizeof got);
        return got == (uint64_t)sum;
    }
    return size == item_size(v) && checksum(mpx_item_data(it, 0), size) == (uint64_t)sum;
}

static void run_trial(trial_t *t)
{
    mpx_shared_t *mem = mpx_shared_new(sizeof(board_t));
    REQUIRE(mem, "mpx_shared_new");
    board_t *b = mpx_shared_data(mem);
    t->board = b;
    int deaths = t->nkill + t->npoints;
    mpx_node_t *w = mpx_as(WORKERS, &Work, t);
    /* One item may be in hand at every death. */
    CHECK_EQ(mpx_node_set_retries(w, deaths), 0);
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Src, t), w);
    /* Everything in flight must fit in the pool with room to spare: with
     * the default capacities (16 MiB an input, pool parts counted) what is
     * queued to the workers and to the parent fills 64 MiB (peaks of 63.7
     * MiB seen), and a worker that then needs a block may wait in
     * mpx_alloc for ever, the blocks being held by items queued to the
     * workers.  8 items an input keep the peak under 8 MiB. */
    CHECK_EQ(mpx_node_set_capacity(g, 8, MPX_DEFAULT_CAPACITY_BYTES), 0);
    CHECK_EQ(mpx_graph_set_pool(g, 64 * MIB), 0);

    struct sigaction sa = {.sa_handler = on_watchdog};
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction");
    alarm(WATCHDOG_S);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    graph_started = 1;
    atomic_store(&b->started, 1);

    unsigned char *seen = calloc(MAX_ITEMS, 1);
    REQUIRE(seen, "out of memory");
    int64_t bad = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t v = -1, sum = 0;
        if (mpx_item_meta_i64(it, "v", &v) != 0 || mpx_item_meta_i64(it, "sum", &sum) != 0 ||
            v < 0 || v >= MAX_ITEMS || mpx_item_parts(it) != 1 || !copy_ok(it, v, sum))
            bad++;
        else if (seen[v] < 255)
            seen[v]++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    alarm(0);
    CHECK(!mpx_graph_error(g)[0], "%s", mpx_graph_error(g));

    /* The plan came true: every crash point was claimed by a process the
     * server made, none was outlived, and every death made a restart. */
    CHECK_EQ(atomic_load(&b->from_app), 0);
    CHECK_EQ(atomic_load(&b->not_reached), 0);
    CHECK(atomic_load(&b->next) >= t->npoints, "%d of %d crash points claimed",
          (int)atomic_load(&b->next), t->npoints);
    CHECK(atomic_load(&b->after) > 0, "no replacement allocated after the deaths");
    int restarts = 0;
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) == 0 && strcmp(info.name, "work") == 0)
            restarts += info.restarts;
    }
    CHECK_EQ(restarts, deaths);

    /* Every item, intact; nothing left in the pool. */
    int64_t total = atomic_load(&b->total), missing = 0;
    CHECK(total > 0 && total <= MAX_ITEMS, "the source put %lld items", (long long)total);
    for (int64_t v = 0; v < total && v < MAX_ITEMS; v++)
        missing += !seen[v];
    CHECK_EQ(bad, 0);
    CHECK_EQ(missing, 0);
    mpx_pool_stats_t s;
    CHECK_EQ(mpx_graph_pool_stats(g, &s), 0);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(s.bytes_in_use, 0);
    printf("%d restarts (%d planned in the pool's lock), %lld items, peak %.1f MiB of %.0f\n",
           restarts, t->npoints, (long long)total, (double)s.peak_bytes / MIB,
           (double)s.capacity / MIB);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_shared_destroy(&mem);
}

/* A worker's first process dies; its replacement, made by the fork
 * server, dies with the allocation lock just taken. */
static void server_replacement_dies_holding_pool_lock(void)
{
    trial_t t = {.nkill = 1, .npoints = 1, .points = {POOL_CRASH_ALLOC_LOCKED}};
    run_trial(&t);
}

/* Both workers' first processes die, then thirty server-made replacements
 * in a row, three at each step of an allocation and of a free that holds
 * the lock, while the source and the other worker go on allocating. */
static void server_replacements_die_at_every_locked_step(void)
{
    static const int locked[] = {
        POOL_CRASH_ALLOC_LOCKED, POOL_CRASH_FREE_LOCKED,   POOL_CRASH_ALLOC_MAPPED,
        POOL_CRASH_FREE_MARKED,  POOL_CRASH_ALLOC_HEADER,  POOL_CRASH_FREE_UNMAPPED,
        POOL_CRASH_ALLOC_HELD,   POOL_CRASH_FREE_COUNTED,  POOL_CRASH_ALLOC_COUNTED,
        POOL_CRASH_FREE_DONE,
    };
    enum { N = sizeof locked / sizeof *locked };
    trial_t t = {.nkill = 2, .npoints = 3 * N};
    for (int k = 0; k < t.npoints; k++)
        t.points[k] = locked[k % N];
    run_trial(&t);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(server_replacement_dies_holding_pool_lock),
        TEST_CASE(server_replacements_die_at_every_locked_step),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
