/* tests/test_chaos.c — a million items through a parallel group of four
 * workers while the parent kills a random worker with SIGKILL each time a
 * fixed number of items has arrived, under a retry policy: every id must
 * arrive at least once, at most one of its arrivals may lack
 * mpx.redelivered, every arrival beyond the first must be explained by a
 * worker the test killed after it had processed that id, and the item a
 * killed worker had in hand must come back with mpx.failures.  Without
 * kills, every id arrives exactly once and none is marked.  Smaller runs
 * do the same to other shapes: two recoverable levels, one process per
 * stage in a chain, and a broadcast with one recoverable branch.
 *
 * The test keeps its own books rather than trusting the library's
 * counters: each worker process claims a slot of a board in shared memory
 * (pid, the id it has in hand, how many items it took), and adds its slot
 * to a bit mask carried in every item it puts, so that each arrival says
 * which processes made it.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

#define N 1000000
#define MAX_WORKERS 64

/* What one worker process wrote about itself; a replacement gets a new
 * slot, so a dead process's slot keeps what it had at its death. */
typedef struct worker {
    _Atomic int32_t pid;
    _Atomic int64_t in_hand; /* the id inside process(), or -1 */
    _Atomic int64_t taken;   /* items it started on */
} worker_t;

typedef struct board {
    _Atomic int32_t n;
    worker_t w[MAX_WORKERS];
} board_t;

typedef struct work_args {
    board_t *board; /* mapped before start, so every process shares it */
    long spins;
} work_args_t;

/* What a worker puts: the id, and one bit per worker process it passed. */
typedef struct payload {
    int64_t id;
    uint64_t path;
} payload_t;

static int work_setup(mpx_stage_t *st)
{
    const work_args_t *a = mpx_args(st);
    int slot = atomic_fetch_add(&a->board->n, 1);
    if (slot >= MAX_WORKERS)
        return mpx_fail(st, "more than %d worker processes", MAX_WORKERS);
    worker_t *w = &a->board->w[slot];
    atomic_store(&w->in_hand, -1);
    atomic_store(&w->pid, (int32_t)getpid());
    *(int *)mpx_state(st) = slot;
    return 0;
}

/* A few microseconds of work per item, so that the workers, not the
 * source or the parent, set the pace and their queues are full. */
static int work_process(mpx_stage_t *st, mpx_item_t *it)
{
    const work_args_t *a = mpx_args(st);
    int slot = *(int *)mpx_state(st);
    worker_t *w = &a->board->w[slot];
    payload_t p = {0};
    size_t size = mpx_item_size(it, 0);
    if (size != 8 && size != sizeof p)
        return mpx_fail(st, "an item of %zu bytes", size);
    memcpy(&p, mpx_item_data(it, 0), size);
    /* Set before anything can leave for this id and cleared only after
     * the put, so this window lies inside the one in which the library
     * counts the item as in hand. */
    atomic_store(&w->in_hand, p.id);
    atomic_fetch_add(&w->taken, 1);
    for (long i = 0; i < a->spins; i++)
        __asm__ volatile("" ::: "memory"); /* a loop the compiler keeps */
    p.path |= 1ull << slot;
    int rc = mpx_put(st, &p, sizeof p);
    atomic_store(&w->in_hand, -1);
    return rc;
}

/* Named "spin": the only stages the test kills. */
static const mpx_stage_def_t Work = {.name = "spin",
                                     .args_size = sizeof(work_args_t),
                                     .state_size = sizeof(int),
                                     .setup = work_setup,
                                     .process = work_process};

/* x -> x + *(int64_t *)args: tells a broadcast's branches apart. */
static int shift_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t v = mpx_item_i64(it) + *(const int64_t *)mpx_args(st);
    return mpx_put(st, &v, sizeof v);
}
static const mpx_stage_def_t Shift = {.name = "shift", .args_size = sizeof(int64_t),
                                      .process = shift_process};

/* The graphs: ids arrive in [0, *ids). */
static mpx_graph_t *one_group(const work_args_t *a, int64_t n, int64_t *ids)
{
    *ids = n;
    mpx_node_t *workers = mpx_as(4, &Work, a);
    mpx_graph_t *g = MPX_EZ(range_node(0, n), workers);
    CHECK_EQ(mpx_node_set_retries(workers, 5), 0);
    return g;
}

static mpx_graph_t *two_levels(const work_args_t *a, int64_t n, int64_t *ids)
{
    *ids = n;
    mpx_graph_t *g = MPX_EZ(range_node(0, n), mpx_as(4, &Work, a), mpx_as(2, &Work, a));
    CHECK_EQ(mpx_node_set_retries(g, 5), 0);
    return g;
}

static mpx_graph_t *chain(const work_args_t *a, int64_t n, int64_t *ids)
{
    *ids = n;
    mpx_graph_t *g =
        MPX_EZ(range_node(0, n), mpx_stage(&Work, a), mpx_stage(&Work, a), mpx_stage(&Work, a));
    CHECK_EQ(mpx_node_set_retries(g, 5), 0);
    return g;
}

/* Ids [0, n) come through the recoverable branch, [n, 2n) through the
 * other, which is never killed. */
static mpx_graph_t *broadcast(const work_args_t *a, int64_t n, int64_t *ids)
{
    *ids = 2 * n;
    mpx_node_t *workers = mpx_as(3, &Work, a);
    mpx_graph_t *g = MPX_EZ(range_node(0, n), MPX_B(workers, mpx_stage(&Shift, &n)));
    CHECK_EQ(mpx_node_set_retries(workers, 5), 0);
    return g;
}

typedef mpx_graph_t *(*shape_fn)(const work_args_t *, int64_t, int64_t *);

typedef struct outcome {
    int64_t ids, total, marked, dups, lost;
    int64_t unmarked_twice; /* ids with more than one arrival without mpx.redelivered */
    int64_t unexplained;    /* ids with more than one arrival through no killed process */
    int64_t held, held_unflagged; /* killed with an id in hand; that id never had mpx.failures */
    long long planned, kills, restarts, resent;
} outcome_t;

/* An arrival after the first of an id, kept until the run ends and the
 * killed processes are known. */
typedef struct extra {
    int64_t id;
    uint64_t path;
} extra_t;

/* Stop pid and wait until it has stopped, so that what it wrote on the
 * board holds still while we decide; false when it is gone.  It stops as
 * soon as it is scheduled: the wait has no limit of its own (the suite's
 * time limit catches a hang). */
static bool freeze(pid_t pid)
{
    if (kill(pid, SIGSTOP) != 0)
        return false;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    for (;;) {
        FILE *f = fopen(path, "r");
        if (!f)
            return false;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        /* "pid (comm) S ...": the command may hold ')' itself. */
        const char *p = strrchr(buf, ')');
        if (!p || p[1] != ' ')
            return false;
        if (p[2] == 'T' || p[2] == 't')
            return true;
        if (p[2] == 'Z' || p[2] == 'X')
            return false;
        sched_yield();
    }
}

/* Kill one working "spin" process not killed before; with `in_hand`,
 * only one stopped inside process(), so that the kill leaves an item in
 * hand.  False when there is none right now (a replacement that took
 * nothing yet does not count). */
static bool kill_one(mpx_graph_t *g, board_t *b, const size_t *victims, size_t nvictims,
                     unsigned *seed, uint64_t *killed, bool in_hand)
{
    size_t start = (size_t)rand_r(seed) % nvictims;
    for (size_t k = 0; k < nvictims; k++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, victims[(start + k) % nvictims], &info) != 0 ||
            info.exited || info.pid <= 0)
            continue;
        int slot = -1, n = atomic_load(&b->n);
        for (int s = (n < MAX_WORKERS ? n : MAX_WORKERS) - 1; s >= 0 && slot < 0; s--)
            if (atomic_load(&b->w[s].pid) == info.pid)
                slot = s;
        /* A process killed before and not yet reaped still has its pid
         * (kill succeeds on it): that would not be another death. */
        if (slot < 0 || (*killed >> slot & 1) || atomic_load(&b->w[slot].taken) == 0)
            continue;
        worker_t *w = &b->w[slot];
        if ((in_hand && atomic_load(&w->in_hand) < 0) || !freeze(info.pid))
            continue;
        if (in_hand && atomic_load(&w->in_hand) < 0) {
            kill(info.pid, SIGCONT);
            continue;
        }
        if (kill(info.pid, SIGKILL) == 0) {
            *killed |= 1ull << slot;
            return true;
        }
    }
    return false;
}

/* Run `shape` with n items; kill `kills` workers, one each time another
 * `last / kills` items have arrived, the last when `last` have. */
static void run(shape_fn shape, int64_t n, int kills, int64_t last, outcome_t *o)
{
    memset(o, 0, sizeof *o);
    board_t *b = mmap(NULL, sizeof *b, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(b != MAP_FAILED, "mmap");
    static const long spins = 4000;
    work_args_t a = {.board = b, .spins = spins};
    int64_t ids;
    mpx_graph_t *g = shape(&a, n, &ids);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    size_t victims[64], nvictims = 0;
    for (size_t i = 0; i < mpx_graph_instance_count(g) && nvictims < 64; i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) == 0 && strcmp(info.name, "spin") == 0)
            victims[nvictims++] = i;
    }
    REQUIRE(nvictims > 0, "nothing to kill");
    /* Per id: arrivals, arrivals without mpx.redelivered (both capped),
     * whether one had mpx.redelivered and mpx.failures, and the path of
     * the first arrival. */
    unsigned char *count = calloc((size_t)ids, 1), *unmarked = calloc((size_t)ids, 1),
                  *failed = calloc((size_t)ids, 1);
    uint64_t *path = calloc((size_t)ids, sizeof *path);
    size_t nextra = 0, extra_cap = 1024;
    extra_t *extra = malloc(extra_cap * sizeof *extra);
    REQUIRE(count && unmarked && failed && path && extra, "out of memory");
    unsigned seed = 12345;
    uint64_t killed = 0;
    int due = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        payload_t p = {0};
        size_t size = mpx_item_size(it, 0);
        REQUIRE(size == 8 || size == sizeof p, "an item of %zu bytes", size);
        memcpy(&p, mpx_item_data(it, 0), size);
        REQUIRE(p.id >= 0 && p.id < ids, "id %lld out of range", (long long)p.id);
        bool redelivered = mpx_item_meta(it, "mpx.redelivered", NULL) != NULL;
        o->marked += redelivered;
        if (!redelivered && unmarked[p.id] < 255)
            unmarked[p.id]++;
        if (redelivered && mpx_item_meta(it, "mpx.failures", NULL))
            failed[p.id] = 1;
        if (count[p.id] == 0) {
            path[p.id] = p.path;
        } else {
            if (nextra == extra_cap) {
                extra_cap *= 2;
                extra_t *e = realloc(extra, extra_cap * sizeof *e);
                REQUIRE(e, "out of memory");
                extra = e;
            }
            extra[nextra++] = (extra_t){p.id, p.path};
        }
        if (count[p.id] < 255)
            count[p.id]++;
        o->total++;
        /* Counting arrivals, not time, sets when each kill is due; one
         * that finds no worker to kill is made at a later arrival.  Every
         * other kill waits for a worker inside process(); the rest land
         * wherever their victim is. */
        while (due < kills && o->total >= last * (due + 1) / kills)
            due++;
        if (o->kills < due &&
            kill_one(g, b, victims, nvictims, &seed, &killed, o->kills % 2 == 0))
            o->kills++;
    }
    int rc = mpx_graph_join(g);
    CHECK_EQ(rc, 0);
    if (rc != 0)
        printf("error: %s\n", mpx_graph_error(g));
    o->planned = kills;
    /* Arrivals through no killed process; one per id is the original. */
    unsigned char *plain = calloc((size_t)ids, 1);
    REQUIRE(plain, "out of memory");
    for (int64_t id = 0; id < ids; id++) {
        if (count[id] == 0)
            o->lost++;
        else if (!(path[id] & killed))
            plain[id] = 1;
        if (count[id] > 1)
            o->dups += count[id] - 1;
        if (unmarked[id] > 1)
            o->unmarked_twice++;
    }
    for (size_t i = 0; i < nextra; i++)
        if (!(extra[i].path & killed) && plain[extra[i].id]++ == 1)
            o->unexplained++;
    /* Every process is gone now: a killed one's slot holds what it had in
     * hand when it died. */
    for (int s = 0; s < atomic_load(&b->n) && s < MAX_WORKERS; s++) {
        int64_t id = atomic_load(&b->w[s].in_hand);
        if (!(killed >> s & 1) || id < 0)
            continue;
        o->held++;
        if (id >= ids || !failed[id]) {
            o->held_unflagged++;
            printf("id %lld was in the hands of killed pid %d but never came back with "
                   "mpx.redelivered and mpx.failures\n",
                   (long long)id, (int)atomic_load(&b->w[s].pid));
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
    free(plain);
    free(extra);
    free(path);
    free(failed);
    free(unmarked);
    free(count);
    expect_clean(g);
    mpx_node_destroy(&g);
    munmap(b, sizeof *b);
}

/* What every run with kills must show. */
static void check_survived(const char *what, const outcome_t *o)
{
    printf("%s: %lld kills (%lld with an item in hand), %lld restarts, %lld items arrived, "
           "%lld marked as sent again, %lld duplicates, %lld items sent again\n",
           what, o->kills, (long long)o->held, o->restarts, (long long)o->total,
           (long long)o->marked, (long long)o->dups, o->resent);
    CHECK(o->kills == o->planned, "%lld kills of the %lld planned: no working worker to kill",
          o->kills, o->planned);
    /* More restarts than kills when a replacement had to be replaced
     * again (one that does not start in time is). */
    CHECK(o->restarts >= o->kills, "%lld restarts for %lld kills", o->restarts, o->kills);
    CHECK_EQ(o->lost, 0);
    /* A sink can tell a duplicate: all but one arrival of an id carry
     * mpx.redelivered. */
    CHECK(o->unmarked_twice == 0, "%lld ids arrived more than once without mpx.redelivered",
          (long long)o->unmarked_twice);
    /* Every duplicate comes from a process that was killed after it had
     * processed the id (by the test's own books). */
    CHECK(o->unexplained == 0,
          "%lld ids arrived more than once through processes that were never killed",
          (long long)o->unexplained);
    CHECK(o->held >= (o->planned + 1) / 2, "%lld kills with an item in hand, %lld planned",
          (long long)o->held, (o->planned + 1) / 2);
    CHECK(o->held_unflagged == 0, "%lld items in hand at a kill came back without mpx.failures",
          (long long)o->held_unflagged);
    /* At least the items in hand at a kill were sent again. */
    CHECK(o->marked > 0, "%lld kills and no arrival carried mpx.redelivered", o->kills);
    CHECK(o->dups <= o->resent, "%lld duplicates but only %lld items sent again",
          (long long)o->dups, o->resent);
}

static void chaos_every_id_at_least_once(void)
{
    outcome_t o;
    /* Kills stop at 90%, while the source still runs, so that every kill
     * leaves queued items to send again (the other shapes go on to the
     * end). */
    run(one_group, N, 9, N * 9 / 10, &o);
    check_survived("one group of 4", &o);
}

static void no_kills_exactly_once(void)
{
    outcome_t o;
    run(one_group, N, 0, 0, &o);
    CHECK_EQ(o.lost, 0);
    CHECK_EQ(o.dups, 0);
    CHECK_EQ(o.total, N);
    CHECK_EQ(o.marked, 0);
    CHECK_EQ(o.restarts, 0);
    CHECK_EQ(o.resent, 0);
}

/* Either level's workers die; a replacement at the first level sends to
 * the second level's current processes.  The last kill comes 1% before
 * the end, when the source may have finished. */
static void chaos_two_levels(void)
{
    outcome_t o;
    run(two_levels, N / 2, 10, N / 2 - N / 200, &o);
    check_survived("4 then 2 workers", &o);
}

/* No siblings: what a dead process held waits for its replacement. */
static void chaos_chain_of_single_processes(void)
{
    outcome_t o;
    run(chain, N / 2, 12, N / 2 - N / 200, &o);
    check_survived("3 single processes in a row", &o);
}

static void chaos_broadcast_branch(void)
{
    outcome_t o;
    run(broadcast, N / 2, 8, N - N / 100, &o);
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
