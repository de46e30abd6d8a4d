/* tests/test_elastic.c — elastic parallel groups (mpx_node_set_elastic):
 * instances that join and leave a running group lose and repeat nothing,
 * keep Seq's order and marks, and leave no process or file behind.  The
 * changes here are scripted (lib/testhook.h, testhook_elastic_script),
 * so that each case sees the joins and leaves it is about whatever the
 * controller would decide; the controller has tests of its own
 * (test_elastic_ctl.c), and one case here lets it act on real processes
 * and checks what the monitor says about it. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"
#include "lib/testhook.h"

/* The stage processes that have taken an item, in memory every process
 * shares (mapped by track_working, before the graph starts; gone with the
 * case's process).  The chaos cases kill only
 * those, as a crash in an item would: a process killed before it was
 * ready, three times in a row in the same slot, is not replaced again
 * (by design: a stage that dies in its setup would otherwise be forked
 * forever), and a chaos run that picked among processes still starting
 * ended its graph so, under AddressSanitizer and load, about one run in
 * six. */
enum { WORKING_MAX = 4096 };
typedef struct working {
    int n;
    pid_t pid[WORKING_MAX];
} working_t;
static working_t *working;

static void mark_working(void)
{
    static pid_t marked; /* a forked process starts with its parent's: not its own pid */
    pid_t me = getpid();
    if (!working || marked == me)
        return;
    marked = me;
    int k = __atomic_fetch_add(&working->n, 1, __ATOMIC_SEQ_CST);
    if (k < WORKING_MAX)
        __atomic_store_n(&working->pid[k], me, __ATOMIC_SEQ_CST);
}

static void track_working(void)
{
    working = mmap(NULL, sizeof *working, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
                   0);
    REQUIRE(working != MAP_FAILED, "mmap: %s", strerror(errno));
}

static bool has_worked(pid_t pid)
{
    if (!working)
        return false;
    int n = __atomic_load_n(&working->n, __ATOMIC_SEQ_CST);
    for (int k = 0; k < n && k < WORKING_MAX; k++)
        if (__atomic_load_n(&working->pid[k], __ATOMIC_SEQ_CST) == pid)
            return true;
    return false;
}

/* Passes the item on after a short sleep (uneven: 0..max_us). */
static int slow_process(mpx_stage_t *st, mpx_item_t *it)
{
    mark_working();
    int max_us = *(const int *)mpx_args(st);
    unsigned us = (unsigned)(test_mix((uint64_t)mpx_item_i64(it)) % (unsigned)(max_us + 1));
    if (us)
        usleep(us);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Slow = {.name = "slow", .args_size = sizeof(int),
                                     .process = slow_process};

/* Puts v % 3 items, 10v .. 10v+2, after a short sleep. */
static int multi_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t v = mpx_item_i64(it);
    usleep((unsigned)(test_mix((uint64_t)v) % 200));
    for (int64_t j = 0; j < v % 3; j++) {
        int rc = mpx_put_i64(st, 10 * v + j);
        if (rc != 0)
            return rc;
    }
    return 0;
}
static const mpx_stage_def_t Multi = {.name = "multi", .process = multi_process};

static void expect_success(mpx_graph_t *g)
{
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "error: %s", mpx_graph_error(g));
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- scripts ------------------------------------------------------------ */

/* Steps through `want` (the group's target size, one entry per tick, -1
 * for group 1's), one instance at a time. */
typedef struct script {
    const int *want; /* per step: target of group 0, then group 1 when two */
    int nsteps, ngroups;
    int step, ticks, every;
    int changes;     /* changes asked for */
    int max_seen[2]; /* most running seen, per group */
    int grows;       /* of those, growths */
} script_t;

static int scripted(void *ctx, int ngroups, const int *running, int *group, int *delta)
{
    script_t *s = ctx;
    for (int k = 0; k < ngroups && k < 2; k++)
        if (running[k] > s->max_seen[k])
            s->max_seen[k] = running[k];
    if (s->step >= s->nsteps)
        return 0;
    if (++s->ticks < s->every)
        return 0;
    for (int k = 0; k < s->ngroups && k < ngroups; k++) {
        int want = s->want[s->step * s->ngroups + k];
        if (running[k] != want) {
            *group = k;
            *delta = running[k] < want ? 1 : -1;
            s->changes++;
            s->grows += *delta > 0;
            s->ticks = 0;
            return 1;
        }
    }
    s->step++;
    s->ticks = 0;
    return 0;
}

static mpx_node_t *elastic(mpx_node_t *n, int min, int max)
{
    REQUIRE(n && mpx_node_set_elastic(n, min, max) == 0, "set elastic");
    return n;
}

/* ---- cases -------------------------------------------------------------- */

/* What came out: each value at most once, in order when `ordered`. */
typedef struct tally {
    char *seen;
    int64_t n, cap, next;
    bool ordered;
    bool redo;     /* an item may come again if it says it was sent again */
    int64_t again; /* ... how many did */
} tally_t;

static void take(tally_t *t, mpx_item_t *it)
{
    int64_t v = mpx_item_i64(it), redo = 0;
    bool again = mpx_item_meta_i64(it, "mpx.redelivered", &redo) == 0 && redo > 0;
    /* seen[v]: 1 once it came, 2 once a copy without mpx.redelivered came.
     * Of the copies of one item, all but one carry it; the one sent again
     * may come first (README, Recovery: it may overtake the original,
     * still queued at a live consumer when the producer that sent it
     * there died). */
    if (t->redo && v >= 0 && v < t->cap && t->seen[v]) {
        CHECK(again || t->seen[v] != 2, "output %" PRId64 " twice, neither redelivered", v);
        if (!again)
            t->seen[v] = 2;
        t->again++;
        return;
    }
    CHECK(v >= 0 && v < t->cap && !t->seen[v], "output %" PRId64 " twice or out of range", v);
    if (t->ordered)
        CHECK(v == t->next, "output %" PRId64 " where %" PRId64 " was due", v, t->next);
    if (v >= 0 && v < t->cap)
        t->seen[v] = again ? 1 : 2;
    t->next = v + 1;
    t->n++;
}

/* Put i into g, taking what comes out (into t) while its input is full. */
static void put_taking(mpx_graph_t *g, int64_t i, tally_t *t)
{
    int rc;
    mpx_item_t *it;
    while ((rc = mpx_graph_put(g, &i, sizeof i)) == MPX_EAGAIN)
        while (mpx_graph_poll(g, 0, &it) == 1)
            take(t, it);
    REQUIRE(rc == 0, "put: %s (%s)", mpx_strerror(rc), mpx_graph_error(g));
}

/* Close g's input and take the rest. */
static void close_taking(mpx_graph_t *g, tally_t *t)
{
    REQUIRE(mpx_graph_close_input(g) == 0, "close");
    mpx_item_t *it;
    while ((it = mpx_graph_next(g)))
        take(t, it);
}

/* The program feeds g until the script has made every change (and at
 * least `least` items), taking outputs as they come, then closes the
 * input and takes the rest: how long the changes take does not matter. */
static int64_t feed_through(mpx_graph_t *g, script_t *s, tally_t *t, int64_t least)
{
    REQUIRE(mpx_graph_start(g) == 0, "start: %s", mpx_graph_error(g));
    int64_t i = 0;
    for (; i < least || s->step < s->nsteps; i++) {
        REQUIRE(i < t->cap, "the script did not finish (step %d of %d)", s->step, s->nsteps);
        put_taking(g, i, t);
    }
    close_taking(g, t);
    return i;
}

enum { CAP = 2000000 };

/* A group of one that grows to four and shrinks to one and back, while
 * items flow: every item comes out once. */
/* Run g, fed by the program, under script s: every put comes out once
 * (in order when `ordered`), and the script asked for at least
 * `changes` changes. */
static void scripted_run(mpx_graph_t *g, script_t *s, bool ordered, int changes)
{
    REQUIRE(testhook_elastic_script(g, scripted, s) == 0, "script");
    REQUIRE(mpx_graph_set_budget(g, 12) == 0, "budget");
    tally_t t = {calloc(CAP, 1), 0, CAP, 0, ordered, false, 0};
    REQUIRE(t.seen, "memory");
    int64_t put = feed_through(g, s, &t, 2000);
    CHECK_EQ(t.n, put);
    CHECK(s->changes >= changes, "only %d changes were made", s->changes);
    free(t.seen);
    expect_success(g);
}

static void grow_and_shrink_lose_nothing(void)
{
    static const int want[] = {4, 1, 3, 2, 4, 1};
    script_t s = {want, 6, 1, 0, 0, 1, 0, {0}, 0};
    scripted_run(MPX_EZ(elastic(mpx_as(1, &Slow, &(int){100}), 1, 4)), &s, false, 14);
    CHECK_EQ(s.max_seen[0], 4);
}

/* Inside a Seq, outputs come in input order while the group changes:
 * the marks that let them out must wait for every path, old and new. */
static void seq_order_while_changing(void)
{
    static const int want[] = {3, 1, 4, 2, 1, 3};
    script_t s = {want, 6, 1, 0, 0, 1, 0, {0}, 0};
    scripted_run(MPX_EZ(mpx_seq(elastic(mpx_as(2, &Slow, &(int){100}), 1, 4))), &s, true, 11);
}

/* The same with a source stage numbering for the Seq (its stamp runs in
 * the source's process), and 0 to 2 outputs per input. */
static void seq_from_a_source(void)
{
    enum { N = 30000 };
    static const int want[] = {3, 1, 4, 2};
    script_t s = {want, 4, 1, 0, 0, 1, 0, {0}, 0};
    mpx_graph_t *g =
        MPX_EZ(range_node(0, N), mpx_seq(elastic(mpx_as(2, &Multi, NULL), 1, 4)));
    REQUIRE(testhook_elastic_script(g, scripted, &s) == 0, "script");
    REQUIRE(mpx_graph_set_budget(g, 12) == 0, "budget");
    int64_t v = 0, j = 0, n = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        while (v % 3 == 0 || j >= v % 3) {
            v++;
            j = 0;
        }
        CHECK(mpx_item_i64(it) == 10 * v + j, "output %" PRId64 ": %" PRId64 ", wanted %" PRId64,
              n, mpx_item_i64(it), 10 * v + j);
        j++;
        n++;
    }
    int64_t want_n = 0;
    for (int64_t x = 0; x < N; x++)
        want_n += x % 3;
    CHECK_EQ(n, want_n);
    expect_success(g);
}

/* Two elastic groups in a row change in turns: the second's producers
 * come and go too. */
static void two_groups_in_a_row(void)
{
    static const int want[] = {3, 1, 1, 3, 2, 2, 4, 1, 1, 4};
    script_t s = {want, 5, 2, 0, 0, 1, 0, {0}, 0};
    scripted_run(MPX_EZ(elastic(mpx_as(1, &Slow, &(int){100}), 1, 4),
                        elastic(mpx_as(1, &Slow, &(int){100}), 1, 4)),
                 &s, false, 16);
}

/* Puts -v. */
static int negate_process(mpx_stage_t *st, mpx_item_t *it)
{
    return mpx_put_i64(st, -mpx_item_i64(it));
}
static const mpx_stage_def_t Negate = {.name = "negate", .process = negate_process};

/* Zip pairs each input's results from an elastic branch and a fixed one,
 * in order, while the elastic branch changes (Zip's marks go through
 * both). */
static void zip_with_an_elastic_branch(void)
{
    static const int want[] = {3, 1, 4, 2};
    script_t s = {want, 4, 1, 0, 0, 1, 0, {0}, 0};
    mpx_graph_t *g = MPX_EZ(MPX_ZIP(elastic(mpx_as(2, &Slow, &(int){100}), 1, 4),
                                    mpx_stage(&Negate, NULL)));
    REQUIRE(testhook_elastic_script(g, scripted, &s) == 0, "script");
    REQUIRE(mpx_graph_set_budget(g, 16) == 0, "budget");
    REQUIRE(mpx_graph_start(g) == 0, "start: %s", mpx_graph_error(g));
    int64_t i = 0, next = 0;
    mpx_item_t *it;
    for (; i < 2000 || s.step < s.nsteps; i++) {
        REQUIRE(i < CAP, "the script did not finish (step %d of %d)", s.step, s.nsteps);
        int rc;
        while ((rc = mpx_graph_put(g, &i, sizeof i)) == MPX_EAGAIN)
            while (mpx_graph_poll(g, 0, &it) == 1) {
                REQUIRE(mpx_item_parts(it) == 2, "%zu parts", mpx_item_parts(it));
                int64_t a, b;
                memcpy(&a, mpx_item_data(it, 0), 8);
                memcpy(&b, mpx_item_data(it, 1), 8);
                CHECK(a == next && b == -next, "pair %" PRId64 ": %" PRId64 ", %" PRId64, next,
                      a, b);
                next++;
            }
        REQUIRE(rc == 0, "put: %s (%s)", mpx_strerror(rc), mpx_graph_error(g));
    }
    REQUIRE(mpx_graph_close_input(g) == 0, "close");
    while ((it = mpx_graph_next(g))) {
        int64_t a, b;
        memcpy(&a, mpx_item_data(it, 0), 8);
        memcpy(&b, mpx_item_data(it, 1), 8);
        CHECK(a == next && b == -next, "pair %" PRId64 ": %" PRId64 ", %" PRId64, next, a, b);
        next++;
    }
    CHECK_EQ(next, i);
    expect_success(g);
}

/* An elastic stage puts odd items into a side graph too: what its
 * instances put there, joined and left, arrives once. */
static int split_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t v = mpx_item_i64(it);
    usleep((unsigned)(test_mix((uint64_t)v) % 100));
    if (v % 2) {
        int rc = mpx_put_to(st, "odd", &v, sizeof v);
        if (rc != 0)
            return rc;
    }
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Split = {.name = "split", .process = split_process};

static int record_process(mpx_stage_t *st, mpx_item_t *it)
{
    FILE *f = *(FILE *const *)mpx_args(st);
    fprintf(f, "%" PRId64 "\n", mpx_item_i64(it));
    return 0;
}
static int record_teardown(mpx_stage_t *st)
{
    return fflush(*(FILE *const *)mpx_args(st)) == 0 ? 0 : -1;
}
static const mpx_stage_def_t Record = {.name = "record", .args_size = sizeof(FILE *),
                                       .process = record_process, .teardown = record_teardown};

static void side_graph_from_an_elastic_stage(void)
{
    static const int want[] = {3, 1, 4, 2};
    script_t s = {want, 4, 1, 0, 0, 1, 0, {0}, 0};
    FILE *f = tmpfile(); /* unlinked already: nothing is left behind */
    REQUIRE(f, "tmpfile");
    mpx_graph_t *g = MPX_EZ(elastic(mpx_as(1, &Split, NULL), 1, 4));
    REQUIRE(mpx_graph_xcut(g, "odd", MPX_EZ(mpx_stage(&Record, &f))) == 0, "xcut");
    REQUIRE(testhook_elastic_script(g, scripted, &s) == 0, "script");
    REQUIRE(mpx_graph_set_budget(g, 12) == 0, "budget");
    tally_t t = {calloc(CAP, 1), 0, CAP, 0, false, false, 0};
    REQUIRE(t.seen, "memory");
    int64_t put = feed_through(g, &s, &t, 2000);
    CHECK_EQ(t.n, put);
    expect_success(g);
    rewind(f);
    memset(t.seen, 0, CAP);
    int64_t v, odd = 0;
    while (fscanf(f, "%" SCNd64, &v) == 1) {
        CHECK(v >= 0 && v < put && v % 2 && !t.seen[v], "side output %" PRId64, v);
        if (v >= 0 && v < CAP)
            t.seen[v] = 1;
        odd++;
    }
    CHECK_EQ(odd, put / 2);
    fclose(f);
    free(t.seen);
}

/* The pool map, elastic (mpx_imap_opts_t.max_workers), decided by the
 * controller itself: results in order, each once, whatever it does. */
static int square_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t v = mpx_item_i64(it);
    for (volatile int k = 0; k < 20000; k++)
        ;
    return mpx_put_i64(st, v * v);
}
static const mpx_stage_def_t Square = {.name = "square", .process = square_process};

static void elastic_pool_map(void)
{
    enum { N = 20000 };
    mpx_imap_t *m;
    mpx_imap_opts_t o = {.ordered = true, .workers = 1, .min_workers = 1, .max_workers = 4};
    REQUIRE(mpx_imap_start(&m, &Square, NULL, &o) == 0, "start");
    int64_t next = 0;
    mpx_item_t *it;
    for (int64_t i = 0; i < N; i++) {
        int rc;
        while ((rc = mpx_imap_put(m, &i, sizeof i)) == MPX_EAGAIN)
            while (mpx_imap_next(m, 0, &it) == 1) {
                CHECK(mpx_item_i64(it) == next * next, "result %" PRId64, next);
                next++;
            }
        REQUIRE(rc == 0, "put: %s", mpx_strerror(rc));
    }
    REQUIRE(mpx_imap_close(m) == 0, "close");
    int rc;
    while ((rc = mpx_imap_next(m, -1, &it)) == 1) {
        CHECK(mpx_item_i64(it) == next * next, "result %" PRId64, next);
        next++;
    }
    CHECK_EQ(next, N);
    CHECK_EQ(mpx_imap_join(m), 0);
    expect_clean(mpx_imap_graph(m));
    mpx_imap_destroy(&m);
    mpx_imap_opts_t bad = {.worker_args = (const void *const[]){NULL}, .workers = 1,
                           .max_workers = 2};
    CHECK_EQ(mpx_imap_start(&m, &Square, NULL, &bad), MPX_EINVAL);
    mpx_imap_opts_t bad2 = {.min_workers = 3, .max_workers = 2};
    CHECK_EQ(mpx_imap_start(&m, &Square, NULL, &bad2), MPX_EINVAL);
}

/* Our live (not zombie) child processes named `comm`: up to `cap` pids
 * into `pids`; returns how many there are (all, even past cap). */
static int children_named(const char *comm, pid_t *pids, int cap)
{
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        char state = 0;
        long ppid = 0;
        if (!open || !close || sscanf(close + 2, "%c %ld", &state, &ppid) != 2 ||
            ppid != getpid() || state == 'Z')
            continue;
        if ((size_t)(close - open - 1) != strlen(comm) || strncmp(open + 1, comm, strlen(comm)))
            continue;
        if (n < cap)
            pids[n] = (pid_t)atol(e->d_name);
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* A live process of ours named `comm` that has taken an item (see
 * `working`), chosen by `pick`, or 0. */
static pid_t child_named(const char *comm, unsigned pick)
{
    pid_t found[64];
    int n = children_named(comm, found, 64), k = 0;
    n = n < 64 ? n : 64;
    for (int j = 0; j < n; j++)
        if (has_worked(found[j]))
            found[k++] = found[j];
    return k ? found[pick % (unsigned)k] : 0;
}

/* SIGKILL one of our processes named `comm` that has taken an item,
 * chosen by the next value of *rnd; 1 when one was killed. */
static int kill_one(const char *comm, uint64_t *rnd)
{
    *rnd = test_mix(*rnd);
    pid_t victim = child_named(comm, (unsigned)*rnd);
    return victim > 0 && kill(victim, SIGKILL) == 0;
}

/* Chaos: SIGKILLs at the workers of a recoverable elastic group while it
 * grows and shrinks.  Every item comes out; one comes out twice only if
 * it was sent again after a death (mpx.redelivered). */
static void kills_while_changing(void)
{
    track_working();
    static const int want[] = {3, 1, 4, 2, 1, 3, 1};
    script_t s = {want, 7, 1, 0, 0, 1, 0, {0}, 0};
    mpx_node_t *w = elastic(mpx_as(2, &Slow, &(int){100}), 1, 4);
    REQUIRE(mpx_node_set_retries(w, 100) == 0, "retries");
    mpx_graph_t *g = MPX_EZ(w);
    REQUIRE(testhook_elastic_script(g, scripted, &s) == 0, "script");
    REQUIRE(mpx_graph_set_budget(g, 12) == 0, "budget");
    REQUIRE(mpx_graph_start(g) == 0, "start: %s", mpx_graph_error(g));
    tally_t t = {calloc(CAP, 1), 0, CAP, 0, false, true, 0};
    REQUIRE(t.seen, "memory");
    int64_t i = 0;
    int kills = 0;
    uint64_t rnd = 12345;
    for (; i < 3000 || s.step < s.nsteps; i++) {
        REQUIRE(i < CAP, "the script did not finish (step %d of %d)", s.step, s.nsteps);
        if (i % 700 == 350 && kills < 12)
            kills += kill_one("slow", &rnd);
        put_taking(g, i, &t);
    }
    close_taking(g, &t);
    CHECK_EQ(t.n, i);
    CHECK(kills >= 3, "only %d kills", kills);
    fprintf(stderr, "%d kills, %" PRId64 " items, %" PRId64 " again, %d changes\n", kills, i,
            t.again, s.changes);
    free(t.seen);
    expect_success(g);
}

/* A leaver that dies on its way out.  The first process of the group to
 * reach teardown (mid-run only a leaver does) kills itself there with
 * SIGKILL (`how` 0), or arms a SIGKILL for the moment it has ended
 * (`how` 1: testhook_crash_when_ended); every later one leaves normally.
 * Counted in memory every process shares. */
typedef struct leaver_death {
    int how;
    int *done; /* 0 until the first teardown */
    int *died; /* when not NULL: set to 1 just before it dies */
} leaver_death_t;
static int dying_teardown(mpx_stage_t *st)
{
    const leaver_death_t *a = mpx_args(st);
    if (__atomic_fetch_add(a->done, 1, __ATOMIC_SEQ_CST) != 0)
        return 0;
    if (a->died)
        __atomic_store_n(a->died, 1, __ATOMIC_SEQ_CST);
    if (a->how == 0)
        raise(SIGKILL);
    return testhook_crash_when_ended(st);
}
static int dying_process(mpx_stage_t *st, mpx_item_t *it)
{
    usleep((unsigned)(test_mix((uint64_t)mpx_item_i64(it)) % 100));
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t DyingLeaver = {.name = "dying", .args_size = sizeof(leaver_death_t),
                                            .process = dying_process,
                                            .teardown = dying_teardown};

/* The group of a recoverable stage shrinks from two to one, and the
 * instance that leaves dies in its teardown, or just after it ended: the
 * change still completes (the script goes on to its next step, which
 * grows the group again and shrinks it once more), and every item comes
 * out, a second time only when it says it was sent again. */
static void leaver_killed_on_its_way_out(void)
{
    for (int how = 0; how < 2; how++) {
        int *done = mmap(NULL, sizeof *done, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                         -1, 0);
        REQUIRE(done != MAP_FAILED, "mmap: %s", strerror(errno));
        *done = 0;
        static const int want[] = {1, 2, 1};
        script_t s = {want, 3, 1, 0, 0, 1, 0, {0}, 0};
        mpx_node_t *w = elastic(mpx_as(2, &DyingLeaver, &(leaver_death_t){how, done, NULL}), 1, 2);
        REQUIRE(mpx_node_set_retries(w, 3) == 0, "retries");
        mpx_graph_t *g = MPX_EZ(w);
        REQUIRE(testhook_elastic_script(g, scripted, &s) == 0, "script");
        tally_t t = {calloc(200000, 1), 0, 200000, 0, false, true, 0};
        REQUIRE(t.seen, "memory");
        int64_t put = feed_through(g, &s, &t, 2000);
        CHECK_EQ(t.n, put);
        CHECK(__atomic_load_n(done, __ATOMIC_SEQ_CST) >= 2, "teardowns: %d", *done);
        CHECK(s.changes >= 3, "only %d changes were made", s.changes);
        free(t.seen);
        expect_success(g);
        munmap(done, sizeof *done);
    }
}

/* Passes items on; the first time it finds *died set (a leaver of the
 * group after it has just killed itself) it stays in this call for 400
 * ms, so that it cannot hear of the replacement, nor connect to it, until
 * the replacement has started and been told to leave. */
static int busy_process(mpx_stage_t *st, mpx_item_t *it)
{
    int *died = *(int *const *)mpx_args(st);
    int one = 1;
    if (__atomic_compare_exchange_n(died, &one, 2, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        usleep(400000);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t BusyFeeder = {.name = "busyfeed", .args_size = sizeof(int *),
                                           .process = busy_process};

/* The replacement of a leaver that died is told to leave as soon as it is
 * ready, before its producer (a stage busy in user code) has connected to
 * it, so that the word it owes the producer cannot go yet.  It must keep
 * waiting on its input while it tries again — a wait that only counted
 * the time and never looked at its sockets never saw the producer
 * connect, and the group never shrank: the run went on until the script
 * gave up. */
static void leaver_replaced_while_its_producer_is_busy(void)
{
    int *shared = mmap(NULL, 2 * sizeof *shared, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(shared != MAP_FAILED, "mmap: %s", strerror(errno));
    shared[0] = shared[1] = 0;
    int *done = &shared[0], *died = &shared[1];
    static const int want[] = {1, 2, 1};
    script_t s = {want, 3, 1, 0, 0, 1, 0, {0}, 0};
    mpx_node_t *w = elastic(mpx_as(2, &DyingLeaver, &(leaver_death_t){0, done, died}), 1, 2);
    REQUIRE(mpx_node_set_retries(w, 3) == 0, "retries");
    mpx_graph_t *g = MPX_EZ(mpx_as(1, &BusyFeeder, &died), w);
    REQUIRE(testhook_elastic_script(g, scripted, &s) == 0, "script");
    tally_t t = {calloc(100000, 1), 0, 100000, 0, false, true, 0};
    REQUIRE(t.seen, "memory");
    int64_t put = feed_through(g, &s, &t, 2000);
    CHECK_EQ(t.n, put);
    CHECK(__atomic_load_n(died, __ATOMIC_SEQ_CST) == 2, "the feeder never waited: %d", *died);
    CHECK(s.changes >= 2, "only %d changes were made", s.changes);
    free(t.seen);
    expect_success(g);
    munmap(shared, 2 * sizeof *shared);
}

/* ---- replacements while the group changes ------------------------------ *
 * A stage next to the group is replaced (SIGKILL) at a chosen moment of a
 * change: the replacement learns of the group's slots from the
 * supervisor's generations (current_gens), not from the change's own
 * messages, which went to the process it replaces. */

/* In memory every process shares: what the test and the stages tell each
 * other. */
typedef struct moment {
    int asked;   /* the script asked for a change (then 2: a feeder sleeps on it) */
    int setup;   /* a joiner is in its setup */
    int leaving; /* a leaver is in its teardown */
} moment_t;

typedef struct moment_script {
    script_t s;
    moment_t *m;
} moment_script_t;

static int moment_scripted(void *ctx, int ngroups, const int *running, int *group, int *delta)
{
    moment_script_t *ms = ctx;
    int rc = scripted(&ms->s, ngroups, running, group, delta);
    if (rc == 1)
        __atomic_store_n(&ms->m->asked, 1, __ATOMIC_SEQ_CST);
    return rc;
}

static moment_t *moment_new(void)
{
    moment_t *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED, "mmap: %s", strerror(errno));
    *m = (moment_t){0};
    return m;
}

/* A joiner (any instance but the first) spends 600 ms in its setup. */
static int long_join_setup(mpx_stage_t *st)
{
    moment_t *m = *(moment_t *const *)mpx_args(st);
    if (mpx_stage_instance(st) > 0) {
        __atomic_store_n(&m->setup, 1, __ATOMIC_SEQ_CST);
        usleep(600000);
    }
    return 0;
}
/* The first instance to reach teardown mid-run (a leaver) stays there for
 * 600 ms. */
static int long_leave_teardown(mpx_stage_t *st)
{
    moment_t *m = *(moment_t *const *)mpx_args(st);
    int zero = 0;
    if (__atomic_compare_exchange_n(&m->leaving, &zero, 1, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST))
        usleep(600000);
    return 0;
}
static const mpx_stage_def_t Member = {.name = "member", .args_size = sizeof(moment_t *),
                                       .setup = long_join_setup, .process = dying_process,
                                       .teardown = long_leave_teardown};
/* Passes items on; once the script has asked for a change it sleeps for
 * 1.5 s in one call, so that it hears of the change only after the test
 * has killed it (its replacement never hears of it from the change). */
static int napping_feed(mpx_stage_t *st, mpx_item_t *it)
{
    moment_t *m = *(moment_t *const *)mpx_args(st);
    int one = 1;
    if (__atomic_compare_exchange_n(&m->asked, &one, 2, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST))
        usleep(1500000);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t NappingFeed = {.name = "feed", .args_size = sizeof(moment_t *),
                                            .process = napping_feed};
static const mpx_stage_def_t Feed = {.name = "feed", .process = dying_process};
static const mpx_stage_def_t After = {.name = "after", .process = dying_process};

static pid_t pid_of(mpx_graph_t *g, size_t i)
{
    mpx_instance_info_t in;
    return mpx_graph_instance_info(g, i, &in) == 0 && !in.exited ? in.pid : 0;
}

/* Feed g until the script is through (at least 2000 items, at most
 * `cap`), and SIGKILL instance `victim` once *when becomes `at`; then
 * every item must come out (a second time only marked), and g end well. */
static void kill_at_moment(mpx_graph_t *g, moment_script_t *ms, const int *when, int at,
                           size_t victim, int64_t cap)
{
    REQUIRE(testhook_elastic_script(g, moment_scripted, ms) == 0, "script");
    REQUIRE(mpx_graph_start(g) == 0, "start: %s", mpx_graph_error(g));
    tally_t t = {calloc((size_t)cap, 1), 0, cap, 0, false, true, 0};
    REQUIRE(t.seen, "memory");
    bool killed = false;
    int64_t i = 0;
    for (; i < 2000 || ms->s.step < ms->s.nsteps || !killed; i++) {
        REQUIRE(i < cap, "the script did not finish (step %d of %d, %s)", ms->s.step,
                ms->s.nsteps, killed ? "killed" : "not killed yet");
        if (!killed && __atomic_load_n(when, __ATOMIC_SEQ_CST) == at) {
            pid_t p = pid_of(g, victim);
            REQUIRE(p > 0 && kill(p, SIGKILL) == 0, "kill instance %zu", victim);
            killed = true;
        }
        put_taking(g, i, &t);
    }
    close_taking(g, &t);
    CHECK_EQ(t.n, i);
    free(t.seen);
    expect_success(g);
}

/* The consumer after the group is replaced while an instance joins (in
 * its setup): the replacement takes the joiner's stream as a new one.  It
 * took it for a stream already ended, and the run failed ("message after
 * end of stream"). */
static void consumer_replaced_during_a_join(void)
{
    moment_t *m = moment_new();
    static const int want[] = {2};
    moment_script_t ms = {{want, 1, 1, 0, 0, 1, 0, {0}, 0}, m};
    mpx_node_t *w = elastic(mpx_as(1, &Member, &m), 1, 2);
    mpx_node_t *after = mpx_as(1, &After, NULL);
    REQUIRE(mpx_node_set_retries(w, 3) == 0 && mpx_node_set_retries(after, 3) == 0, "retries");
    mpx_graph_t *g = MPX_EZ(w, after);
    kill_at_moment(g, &ms, &m->setup, 1, 2, 200000);
    munmap(m, sizeof *m);
}

/* The producer before the group is replaced while an instance joins,
 * before it could hear of the join: the replacement hears of it from the
 * supervisor (it took it for old news, and sent the joiner no notice;
 * the join completed all the same here), and every item comes out.  What
 * the dead producer had sent the running
 * instance waits in its queue while the joiner, idle, takes the copies
 * sent again: those come out first (marked), the originals after. */
static void producer_replaced_during_a_join(void)
{
    moment_t *m = moment_new();
    static const int want[] = {2};
    moment_script_t ms = {{want, 1, 1, 0, 0, 1, 0, {0}, 0}, m};
    mpx_node_t *feed = mpx_as(1, &NappingFeed, &m);
    mpx_node_t *w = elastic(mpx_as(1, &Member, &m), 1, 2);
    REQUIRE(mpx_node_set_retries(feed, 3) == 0 && mpx_node_set_retries(w, 3) == 0, "retries");
    mpx_graph_t *g = MPX_EZ(feed, w);
    kill_at_moment(g, &ms, &m->asked, 2, 0, 200000);
    munmap(m, sizeof *m);
}

/* The producer before the group is replaced while an instance leaves (in
 * its teardown): the replacement never chooses the leaver and sends it
 * only its end of stream.  It chose the leaver as any instance, and what
 * it sent there was never taken: the run hung.  (Copies sent again may
 * overtake originals here too: see producer_replaced_during_a_join.) */
static void producer_replaced_during_a_leave(void)
{
    moment_t *m = moment_new();
    static const int want[] = {2, 1};
    moment_script_t ms = {{want, 2, 1, 0, 0, 1, 0, {0}, 0}, m};
    mpx_node_t *feed = mpx_as(1, &Feed, NULL);
    mpx_node_t *w = elastic(mpx_as(2, &Member, &m), 1, 2);
    REQUIRE(mpx_node_set_retries(feed, 3) == 0 && mpx_node_set_retries(w, 3) == 0, "retries");
    mpx_graph_t *g = MPX_EZ(feed, w);
    kill_at_moment(g, &ms, &m->leaving, 1, 0, 200000);
    munmap(m, sizeof *m);
}

/* Two elastic groups in a row.  The second's instance 1 leaves and stays
 * in its teardown for 600 ms; meanwhile the first's instance 1 is
 * replaced, and the replacement, owing the leaver only its end of stream,
 * later leaves too.  It waited for the leaver to say it took that end,
 * which a leaver whose input has ended never says: the second change
 * never completed. */
static void replaced_producer_leaves_after_its_consumer_left(void)
{
    moment_t *m = moment_new();
    static const int want[] = {2, 2, 2, 1, 1, 1};
    moment_script_t ms = {{want, 3, 2, 0, 0, 1, 0, {0}, 0}, m};
    mpx_node_t *a = elastic(mpx_as(2, &Member, &m), 1, 2);
    mpx_node_t *b = elastic(mpx_as(2, &Member, &m), 1, 2);
    REQUIRE(mpx_node_set_retries(a, 3) == 0 && mpx_node_set_retries(b, 3) == 0, "retries");
    mpx_graph_t *g = MPX_EZ(a, b);
    kill_at_moment(g, &ms, &m->leaving, 1, 1, 200000);
    munmap(m, sizeof *m);
}

/* Chaos next to the group: a recoverable elastic group changes under a
 * script while SIGKILLs hit the group and its neighbours, each one a
 * random few items after a change was asked for (the moments when a
 * replacement meets a join or a leave).  One graph per neighbourhood: a
 * group alone; a stage before it; a stage after it; two groups in a row;
 * the group inside mpx_seq.  Every item comes out (in order through the
 * Seq); of an item that comes out twice one copy is marked; the script
 * finishes (no change stalls); the run ends well.  Random by design (it
 * found the faults the *_replaced_* cases above pin down); once per
 * neighbourhood here, five times with MPX_LONG_TESTS=1. */
typedef enum { NEXT_NONE, NEXT_BEFORE, NEXT_AFTER, NEXT_TWO_GROUPS, NEXT_SEQ, NEXT_KINDS } next_to_t;

static void changes_under_kills_once(next_to_t kind, uint64_t seed)
{
    static const int one[] = {3, 1, 4, 2, 1, 3, 1, 2, 4, 1};
    static const int two[] = {3, 1, 1, 3, 4, 2, 2, 4, 1, 1};
    script_t s = {kind == NEXT_TWO_GROUPS ? two : one, kind == NEXT_TWO_GROUPS ? 5 : 10,
                  kind == NEXT_TWO_GROUPS ? 2 : 1, 0, 0, 1, 0, {0}, 0};
    mpx_node_t *w = elastic(mpx_as(2, &Slow, &(int){100}), 1, 4);
    REQUIRE(mpx_node_set_retries(w, 100) == 0, "retries");
    mpx_node_t *other = NULL;
    if (kind != NEXT_NONE && kind != NEXT_SEQ) {
        other = kind == NEXT_TWO_GROUPS ? elastic(mpx_as(2, &Slow, &(int){100}), 1, 4)
                                        : mpx_as(kind == NEXT_BEFORE ? 1 : 2, &Slow, &(int){20});
        REQUIRE(mpx_node_set_retries(other, 100) == 0, "retries");
    }
    mpx_graph_t *g = kind == NEXT_NONE     ? MPX_EZ(w)
                     : kind == NEXT_SEQ    ? MPX_EZ(mpx_seq(w))
                     : kind == NEXT_BEFORE ? MPX_EZ(other, w)
                                           : MPX_EZ(w, other);
    REQUIRE(testhook_elastic_script(g, scripted, &s) == 0, "script");
    REQUIRE(mpx_graph_set_budget(g, 14) == 0, "budget");
    REQUIRE(mpx_graph_start(g) == 0, "start: %s", mpx_graph_error(g));
    enum { ITEMS_MAX = 400000 };
    tally_t t = {calloc(ITEMS_MAX, 1), 0, ITEMS_MAX, 0, kind == NEXT_SEQ, true, 0};
    REQUIRE(t.seen, "memory");
    size_t n = mpx_graph_instance_count(g);
    int64_t i = 0, kill_at = -1;
    int kills = 0, changes = 0;
    uint64_t rnd = seed;
    for (; i < 3000 || s.step < s.nsteps; i++) {
        REQUIRE(i < ITEMS_MAX, "graph %d: the script did not finish (step %d of %d)", (int)kind,
                s.step, s.nsteps);
        if (s.changes != changes) {
            /* Soon after the change (a few items), or well into it. */
            changes = s.changes;
            rnd = test_mix(rnd);
            kill_at = i + (int64_t)(rnd % ((rnd >> 20) % 2 ? 100 : 1500));
        }
        if (i == kill_at && kills < 40) {
            pid_t alive[32];
            int na = 0;
            for (size_t k = 0; k < n && na < 32; k++) {
                pid_t p = pid_of(g, k);
                if (p > 0)
                    alive[na++] = p;
            }
            rnd = test_mix(rnd);
            if (na > 0 && kill(alive[rnd % (unsigned)na], SIGKILL) == 0)
                kills++;
        }
        put_taking(g, i, &t);
    }
    close_taking(g, &t);
    CHECK_EQ(t.n, i);
    CHECK(kills >= 3, "graph %d: only %d kills", (int)kind, kills);
    fprintf(stderr, "graph %d (seed %" PRIu64 "): %d kills, %" PRId64 " items, %" PRId64
            " again, %d changes\n",
            (int)kind, seed, kills, i, t.again, s.changes);
    free(t.seen);
    expect_success(g);
}

static void changes_under_kills_next_to_the_group(void)
{
    track_working();
    int rounds = harness_long() ? 5 : 1;
    uint64_t seed = (uint64_t)time(NULL) * 2654435761u + (uint64_t)getpid();
    for (int r = 0; r < rounds; r++)
        for (int kind = 0; kind < NEXT_KINDS; kind++)
            changes_under_kills_once((next_to_t)kind, test_mix(seed + (uint64_t)(r * NEXT_KINDS + kind)));
}

/* ---- a process's life in the group ------------------------------------- */

/* Counts, in memory shared by every process: setups run, teardowns run. */
typedef struct lives {
    int setups, teardowns;
} lives_t;

enum { TEARDOWN_BASE = 1000000 };

static int life_setup(mpx_stage_t *st)
{
    lives_t *l = *(lives_t *const *)mpx_args(st);
    __atomic_add_fetch(&l->setups, 1, __ATOMIC_SEQ_CST);
    return 0;
}
static int life_process(mpx_stage_t *st, mpx_item_t *it)
{
    usleep((unsigned)(test_mix((uint64_t)mpx_item_i64(it)) % 100));
    return mpx_put_item(st, it);
}
/* One item of its own per process, numbered by its turn among teardowns. */
static int life_teardown(mpx_stage_t *st)
{
    lives_t *l = *(lives_t *const *)mpx_args(st);
    int k = __atomic_add_fetch(&l->teardowns, 1, __ATOMIC_SEQ_CST);
    return mpx_put_i64(st, TEARDOWN_BASE + k);
}
static const mpx_stage_def_t Life = {.name = "life", .args_size = sizeof(lives_t *),
                                     .setup = life_setup, .process = life_process,
                                     .teardown = life_teardown};

/* Every process of the group runs setup once, and teardown once as it
 * leaves or as the input ends; what teardown puts arrives, also from the
 * instances that left while the others went on. */
static void setup_and_teardown_in_every_process(void)
{
    static const int want[] = {3, 1, 4, 2, 3, 1};
    script_t s = {want, 6, 1, 0, 0, 1, 0, {0}, 0};
    lives_t *l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(l != MAP_FAILED, "mmap");
    mpx_graph_t *g = MPX_EZ(elastic(mpx_as(1, &Life, &l), 1, 4));
    REQUIRE(testhook_elastic_script(g, scripted, &s) == 0, "script");
    REQUIRE(mpx_graph_set_budget(g, 12) == 0, "budget");
    REQUIRE(mpx_graph_start(g) == 0, "start: %s", mpx_graph_error(g));
    tally_t t = {calloc(CAP, 1), 0, CAP, 0, false, false, 0};
    REQUIRE(t.seen, "memory");
    int64_t i = 0, tails = 0;
    char tail_seen[64] = {0};
    mpx_item_t *it;
#define TAKE(it)                                                                    \
    do {                                                                            \
        int64_t v_ = mpx_item_i64(it);                                              \
        if (v_ > TEARDOWN_BASE && v_ < TEARDOWN_BASE + 64) {                        \
            CHECK(!tail_seen[v_ - TEARDOWN_BASE], "teardown item %" PRId64 " twice", \
                  v_ - TEARDOWN_BASE);                                              \
            tail_seen[v_ - TEARDOWN_BASE] = 1;                                      \
            tails++;                                                                \
        } else {                                                                    \
            take(&t, it);                                                           \
        }                                                                           \
    } while (0)
    for (; i < 2000 || s.step < s.nsteps; i++) {
        REQUIRE(i < TEARDOWN_BASE, "the script did not finish (step %d of %d)", s.step,
                s.nsteps);
        int rc;
        while ((rc = mpx_graph_put(g, &i, sizeof i)) == MPX_EAGAIN)
            while (mpx_graph_poll(g, 0, &it) == 1)
                TAKE(it);
        REQUIRE(rc == 0, "put: %s (%s)", mpx_strerror(rc), mpx_graph_error(g));
    }
    REQUIRE(mpx_graph_close_input(g) == 0, "close");
    while ((it = mpx_graph_next(g)))
        TAKE(it);
#undef TAKE
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(t.n, i);
    /* One process to start with, and one more per growth. */
    int processes = 1 + s.grows;
    CHECK(s.grows >= 6, "only %d growths", s.grows);
    CHECK_EQ(l->setups, processes);
    CHECK_EQ(l->teardowns, processes);
    CHECK_EQ(tails, processes);
    fprintf(stderr, "%d processes: %d setups, %d teardowns, %" PRId64 " teardown items\n",
            processes, l->setups, l->teardowns, tails);
    free(t.seen);
    munmap(l, sizeof *l);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "error: %s", mpx_graph_error(g));
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- error policies ------------------------------------------------------ */

/* Fails every item divisible by 7, passes the others on. */
static int picky_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t v = mpx_item_i64(it);
    usleep((unsigned)(test_mix((uint64_t)v) % 100));
    if (v % 7 == 0)
        return mpx_fail(st, "item %lld is a multiple of 7", (long long)v);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Picky = {.name = "picky", .process = picky_process};

/* Under MPX_ON_ERROR_SKIP the group goes on through its changes: every
 * item that does not fail comes out once, the others are counted as
 * failed over the group's instances, whichever process took them. */
static void skip_policy_while_changing(void)
{
    static const int want[] = {3, 1, 4, 2, 1};
    script_t s = {want, 5, 1, 0, 0, 1, 0, {0}, 0};
    mpx_node_t *w = elastic(mpx_as(1, &Picky, NULL), 1, 4);
    REQUIRE(mpx_node_on_error(w, MPX_ON_ERROR_SKIP, NULL) == 0, "skip");
    mpx_graph_t *g = MPX_EZ(w);
    REQUIRE(testhook_elastic_script(g, scripted, &s) == 0, "script");
    REQUIRE(mpx_graph_set_budget(g, 12) == 0, "budget");
    tally_t t = {calloc(CAP, 1), 0, CAP, 0, false, false, 0};
    REQUIRE(t.seen, "memory");
    int64_t put = feed_through(g, &s, &t, 2000);
    CHECK_EQ(mpx_graph_join(g), 0);
    int64_t multiples = (put + 6) / 7; /* 0, 7, 14, ... below put */
    CHECK_EQ(t.n, put - multiples);
    for (int64_t v = 0; v < put; v++)
        if ((v % 7 == 0) == (t.seen[v] != 0)) {
            CHECK(false, "item %" PRId64 " %s", v, t.seen[v] ? "came out" : "is missing");
            break;
        }
    unsigned long long failed = 0;
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) == 0 && strcmp(info.name, "picky") == 0)
            failed += info.items_failed;
    }
    CHECK_EQ(failed, (unsigned long long)multiples);
    CHECK(s.changes >= 8, "only %d changes", s.changes);
    free(t.seen);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "error: %s", mpx_graph_error(g));
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- the controller on real processes ------------------------------------ */

/* A millisecond's sleep per item: the stage is busy all the time without
 * taking a CPU, so that the controller sees a group that limits the graph
 * (its source waits for room) on any machine, however loaded. */
static int nap_process(mpx_stage_t *st, mpx_item_t *it)
{
    mark_working();
    usleep(1000);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Nap = {.name = "nap", .process = nap_process};

/* The first line of `text` that holds every one of the strings, or NULL. */
static const char *line_with(const char *text, const char *a, const char *b, const char *c)
{
    for (const char *l = text; l && *l;) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        char *copy = strndup(l, len);
        bool all = copy && strstr(copy, a) && (!b || strstr(copy, b)) && (!c || strstr(copy, c));
        free(copy);
        if (all)
            return l;
        l = end ? end + 1 : NULL;
    }
    return NULL;
}

static char *slurp(FILE *f)
{
    fflush(f);
    long n = ftell(f);
    REQUIRE(n >= 0, "ftell");
    char *buf = calloc(1, (size_t)n + 1);
    REQUIRE(buf, "memory");
    rewind(f);
    REQUIRE(fread(buf, 1, (size_t)n, f) == (size_t)n, "read back");
    return buf;
}

/* A new instance whose setup takes long (here 1.5 s): its growth is
 * reported as still under way, with what it waits for, after the pending
 * time (here 300 ms, then 600 ms, 1.2 s) on the JSON stream; then it
 * completes as any. */
static int slow_setup(mpx_stage_t *st)
{
    if (mpx_stage_instance(st) > 0)
        usleep(1500000);
    return 0;
}
static const mpx_stage_def_t SlowSetup = {.name = "slowsetup", .setup = slow_setup,
                                          .process = dying_process};

static void change_under_way_is_reported(void)
{
    static const int want[] = {2};
    script_t s = {want, 1, 1, 0, 0, 1, 0, {0}, 0};
    mpx_graph_t *g = MPX_EZ(elastic(mpx_as(1, &SlowSetup, NULL), 1, 2));
    REQUIRE(testhook_elastic_script(g, scripted, &s) == 0, "script");
    REQUIRE(testhook_elastic_pending_ms(g, 300) == 0, "pending");
    FILE *js = tmpfile();
    REQUIRE(js, "tmpfile");
    REQUIRE(mpx_graph_stats_to(g, js) == 0, "stats_to");
    tally_t t = {calloc(200000, 1), 0, 200000, 0, false, false, 0};
    REQUIRE(t.seen, "memory");
    int64_t put = feed_through(g, &s, &t, 2000);
    CHECK_EQ(t.n, put);
    CHECK_EQ(s.max_seen[0], 2);
    expect_success(g);
    char *json = slurp(js);
    const char *pending = line_with(json, "{\"mpx_elastic\": 1, ", "\"action\": \"pending\"",
                                    "\"stage\": \"slowsetup\", ");
    CHECK(pending != NULL, "no pending change of 'slowsetup' on the JSON stream:\n%.3000s", json);
    if (pending) {
        CHECK(strstr(pending, "\"from\": 1, \"to\": 1") != NULL, "not 1 -> 1: %.400s", pending);
        const char *end = strchr(pending, '\n');
        const char *why = strstr(pending, "the growth begun ");
        CHECK(why && (!end || why < end) && strstr(why, "still in its setup"),
              "no reason, or not the setup: %.600s", pending);
    }
    free(json);
    fclose(js);
    free(t.seen);
}

/* The controller itself (no script) on a group of one that limits the
 * graph: it grows it, nothing is lost or repeated, and the decision is
 * on the JSON stream (with the controller's record and figures, on the
 * run's clock), in the snapshots' "elastic" object with the default
 * budget (the processes the graph starts with, plus one per CPU), and on
 * `watch`'s lines. */
static void controller_grows_a_limiting_group_and_says_so(void)
{
    enum { N = 3000 };
    mpx_graph_t *g = MPX_EZ(range_node(0, N), elastic(mpx_as(1, &Nap, NULL), 1, 3));
    FILE *js = tmpfile(), *errs = tmpfile();
    REQUIRE(js && errs, "tmpfile");
    REQUIRE(mpx_graph_stats_to(g, js) == 0, "stats_to");
    REQUIRE(mpx_graph_watch(g, 0) == 0, "watch");
    char *seen = calloc(N, 1);
    REQUIRE(seen, "memory");
    /* watch writes to stderr: into errs for the run (nothing here may
     * fail meanwhile: the harness reports on stderr). */
    fflush(stderr);
    int saved = dup(2);
    REQUIRE(saved >= 0 && dup2(fileno(errs), 2) == 2, "redirect stderr");
    int64_t n = 0, bad = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t v = mpx_item_i64(it);
        if (v < 0 || v >= N || seen[v]++)
            bad++;
        n++;
    }
    int rc = mpx_graph_join(g);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CHECK_EQ(rc, 0);
    CHECK_EQ(n, N);
    CHECK_EQ(bad, 0);

    char *json = slurp(js), *watch = slurp(errs);
    const char *grow = line_with(json, "{\"mpx_elastic\": 1, ", "\"action\": \"grow\"",
                                 "\"stage\": \"nap\", ");
    CHECK(grow != NULL, "no growth of 'nap' on the JSON stream:\n%.3000s", json);
    if (grow) {
        double t = -1, dt = -1;
        const char *d = strstr(grow, "\"decision\": {");
        CHECK(sscanf(grow, "{\"mpx_elastic\": 1, \"t\": %lf", &t) == 1, "no t: %.400s", grow);
        CHECK(d && sscanf(d, "\"decision\": {\"t\": %lf", &dt) == 1, "no decision.t: %.600s",
              grow);
        CHECK(strstr(grow, "\"from\": 1, \"to\": 2") != NULL, "not 1 -> 2: %.400s", grow);
        CHECK(d && strstr(d, "\"figures\": {") && strstr(d, "\"busy_min\": "),
              "no figures in the decision: %.800s", grow);
        /* The CPU time per item is known, and far below the busy time
         * per item of a stage that sleeps for its items. */
        const char *w = d ? strstr(d, "\"work\": ") : NULL;
        const char *c = d ? strstr(d, "\"cpu_work\": ") : NULL;
        double work = -1, cpu_work = -1;
        CHECK(w && c && sscanf(w, "\"work\": %lf", &work) == 1 &&
                  sscanf(c, "\"cpu_work\": %lf", &cpu_work) == 1,
              "no work or cpu_work: %.800s", grow);
        CHECK(cpu_work > 0 && cpu_work < 0.5 * work, "cpu_work %g s, work %g s per item",
              cpu_work, work);
        /* Both on the run's clock (before, the decision's was the
         * machine's monotonic clock: hours, not seconds). */
        CHECK(t >= 0 && dt >= 0 && dt - t < 5 && t - dt < 5, "t %.3f, decision.t %.3f", t, dt);
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    char budget[64];
    snprintf(budget, sizeof budget, "\"elastic\": {\"budget\": %ld, ", 2 + (cpus > 0 ? cpus : 1));
    const char *snap = line_with(json, "\"mpx_stats\"", "\"ended\": true", budget);
    CHECK(snap != NULL, "no final snapshot with %s:\n%.3000s", budget, json);
    if (snap) {
        const char *dec = strstr(snap, "\"decisions\": ");
        unsigned long long decisions = 0;
        CHECK(dec && sscanf(dec, "\"decisions\": %llu", &decisions) == 1 && decisions >= 1,
              "no decisions counted: %.600s", dec ? dec : snap);
    }
    CHECK(line_with(watch, "elastic: stage 'nap' grow, 1 -> 2 instances: ", NULL, NULL) != NULL,
          "watch printed no line for the growth:\n%.3000s", watch);
    free(json);
    free(watch);
    fclose(js);
    fclose(errs);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Slow with a setup of 300 ms: each replacement takes that long to be
 * ready, a window of several of the controller's ticks. */
static int late_setup(mpx_stage_t *st)
{
    (void)st;
    usleep(300 * 1000);
    return 0;
}
static const mpx_stage_def_t SlowStart = {.name = "slow", .args_size = sizeof(int),
                                          .setup = late_setup, .process = slow_process};

/* Passes items on like Slow, under another name. */
static const mpx_stage_def_t Calm = {.name = "calm", .args_size = sizeof(int),
                                     .process = slow_process};

/* A replacement counts against the budget: a fixed recoverable group of
 * two, then an elastic group of one that a script always wants one
 * larger, with a budget of three — full from the start.  The elastic
 * group never grows, also while a killed instance of the first group is
 * being replaced (had the replacement not counted, the growth would take
 * the dead one's place and the replacement come on top: four processes).
 * The first group's setup takes 300 ms, so that each replacement is
 * not ready for several of the controller's ticks.  Nothing is lost
 * meanwhile. */
static void replacement_counts_against_the_budget(void)
{
    track_working();
    static const int want[] = {2};
    script_t s = {want, 1, 1, 0, 0, 1, 0, {0}, 0};
    mpx_node_t *a = mpx_as(2, &SlowStart, &(int){200});
    REQUIRE(a && mpx_node_set_retries(a, 100) == 0, "retries");
    mpx_graph_t *g = MPX_EZ(a, elastic(mpx_as(1, &Calm, &(int){1}), 1, 2));
    REQUIRE(testhook_elastic_script(g, scripted, &s) == 0, "script");
    REQUIRE(mpx_graph_set_budget(g, 3) == 0, "budget");
    REQUIRE(mpx_graph_start(g) == 0, "start: %s", mpx_graph_error(g));
    tally_t t = {calloc(CAP, 1), 0, CAP, 0, false, true, 0};
    REQUIRE(t.seen, "memory");
    enum { N = 4000 };
    int kills = 0, most = 0, samples = 0;
    uint64_t rnd = 777;
    for (int64_t i = 0; i < N; i++) {
        if (i % 400 == 200)
            kills += kill_one("slow", &rnd);
        if (i % 10 == 0) {
            int live = children_named("slow", NULL, 0) + children_named("calm", NULL, 0);
            most = live > most ? live : most;
            samples++;
            if (most > 3)
                fprintf(stderr, "over the budget after %d kills: %d processes\n", kills, most);
            REQUIRE(most <= 3, "%d stage processes alive at once with a budget of 3", most);
        }
        put_taking(g, i, &t);
    }
    close_taking(g, &t);
    CHECK_EQ(t.n, N);
    CHECK(kills >= 5, "only %d kills", kills);
    CHECK(s.max_seen[0] <= 1, "the elastic group ran %d instances with no room in the budget",
          s.max_seen[0]);
    fprintf(stderr, "%d kills, at most %d alive in %d samples, %" PRId64 " again\n", kills, most,
            samples, t.again);
    free(t.seen);
    expect_success(g);
}

/* Chaos under the controller's own changes: a recoverable group of one
 * that limits the graph, grown by the controller (no script); once it
 * runs two instances, SIGKILLs at its instances every so many arrivals.
 * Every item arrives, one arrives twice only if it was sent again. */
static void controller_changes_under_kills(void)
{
    track_working();
    enum { N = 5000 };
    mpx_node_t *w = elastic(mpx_as(1, &Nap, NULL), 1, 3);
    REQUIRE(mpx_node_set_retries(w, 100) == 0, "retries");
    mpx_graph_t *g = MPX_EZ(range_node(0, N), w);
    REQUIRE(mpx_graph_start(g) == 0, "start: %s", mpx_graph_error(g));
    tally_t t = {calloc(N, 1), 0, N, 0, false, true, 0};
    REQUIRE(t.seen, "memory");
    int kills = 0, most = 0;
    int64_t arrivals = 0;
    uint64_t rnd = 4242;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        take(&t, it);
        if (++arrivals % 50 == 0) {
            int live = children_named("nap", NULL, 0);
            most = live > most ? live : most;
        }
        if (most >= 2 && arrivals % 300 == 0 && kills < 10)
            kills += kill_one("nap", &rnd);
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(t.n, N);
    CHECK(most >= 2, "the controller never grew the group (at most %d instance)", most);
    CHECK(kills >= 3, "only %d kills", kills);
    fprintf(stderr, "%d kills, at most %d instances, %" PRId64 " again\n", kills, most, t.again);
    free(t.seen);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "error: %s", mpx_graph_error(g));
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* What the API refuses. */
static void refused_where_it_cannot_work(void)
{
    mpx_node_t *n = mpx_as(2, &Slow, &(int){1});
    CHECK_EQ(mpx_node_set_elastic(n, 0, 4), MPX_EINVAL);
    CHECK_EQ(mpx_node_set_elastic(n, 3, 2), MPX_EINVAL);
    CHECK_EQ(mpx_node_set_elastic(n, 1, MPX_MAX_INSTANCES + 1), MPX_EINVAL);
    CHECK_EQ(mpx_node_set_elastic(NULL, 1, 2), MPX_EINVAL);
    mpx_node_t *b = mpx_by(2, &Slow, &(int){1});
    CHECK_EQ(mpx_node_set_elastic(b, 1, 4), MPX_EINVAL);
    mpx_node_t *src = range_node(0, 10);
    CHECK_EQ(mpx_node_set_elastic(src, 1, 4), MPX_EINVAL);
    mpx_node_t *grp = MPX_P(mpx_stage(&Slow, &(int){1}), mpx_stage(&Slow, &(int){1}));
    CHECK_EQ(mpx_node_set_elastic(grp, 1, 4), MPX_EINVAL);
    mpx_graph_t *g = MPX_EZ(range_node(0, 10), n, b, grp);
    CHECK_EQ(mpx_node_set_elastic(n, 1, 4), 0);
    CHECK_EQ(mpx_graph_set_budget(g, -1), MPX_EINVAL);
    /* A budget below what the graph starts with: 4 fixed + 2 is 6. */
    CHECK_EQ(mpx_graph_set_budget(g, 5), 0);
    CHECK(mpx_graph_start(g) != 0, "started with too small a budget");
    CHECK(mpx_graph_error(g) && strstr(mpx_graph_error(g), "budget"), "error: %s",
          mpx_graph_error(g) ? mpx_graph_error(g) : "(none)");
    mpx_node_destroy(&src);
    mpx_node_destroy(&g);
}

/* Sleeps 6 ms holding a lock that every instance shares: a stage that
 * cannot scale, and whose CPU time per item is a small part of its busy
 * time, so that its growth's check goes by the busy time per item.  What
 * each item costs outside the lock (taking it, putting it on) overlaps
 * with another instance's turn in the lock, so a second instance may
 * gain that much: under AddressSanitizer and load, with 1 ms in the
 * lock, that was +34..107 % and the knee was at two; with 4 ms, rates
 * that jitter under such load passed a third instance's check now and
 * then, and with 10 ms the check came after the run had ended. */
static int locked_process(mpx_stage_t *st, mpx_item_t *it)
{
    pthread_mutex_t *m = mpx_shared_data(*(mpx_shared_t *const *)mpx_args(st));
    if (pthread_mutex_lock(m) != 0)
        return MPX_ESYS;
    usleep(6000);
    pthread_mutex_unlock(m);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Locked = {.name = "locked", .args_size = sizeof(mpx_shared_t *),
                                       .process = locked_process};

/* The "to" of every {"mpx_elastic": 1, ...} line of `json` with
 * `action` for stage `stage`, counted; the largest into *most. */
static int changes_of(const char *json, const char *stage, const char *action, int *most)
{
    char want_stage[64], want_action[64];
    snprintf(want_stage, sizeof want_stage, "\"stage\": \"%s\", ", stage);
    snprintf(want_action, sizeof want_action, "\"action\": \"%s\"", action);
    int n = 0;
    for (const char *l = json; l && *l;) {
        const char *end = strchr(l, '\n');
        const char *found = line_with(l, "{\"mpx_elastic\": 1, ", want_stage, want_action);
        if (!found)
            break;
        const char *to = strstr(found, "\"to\": ");
        int v = 0;
        if (to && sscanf(to, "\"to\": %d", &v) == 1 && most && v > *most)
            *most = v;
        n++;
        end = strchr(found, '\n');
        l = end ? end + 1 : NULL;
    }
    return n;
}

/* The controller on a stage serialised on a lock: it tries a second
 * instance (every instance busy, the source held back) and does not go
 * on to the group's most (4).  On a quiet machine the second instance
 * gives nothing while the busy time per item doubles, and it is undone
 * (1 -> 2 -> 1 in six runs of six, three side by side); under AddressSanitizer with
 * three of these runs on two cores, the second instance gained 16-20 %
 * (what each item costs outside the lock overlaps with the other's turn
 * in it), was kept, and a third was tried as the input ended.  Never is
 * a growth kept because the work changed: with the CPU time alone
 * deciding that (before cpu_share), each was, and a stage sleeping 1 ms
 * under the lock went to 4 in four runs of four. */
static void lock_bound_stage_stops_where_adding_stopped_helping(void)
{
    enum { N = 1000 };
    mpx_shared_t *lock = mpx_shared_new(sizeof(pthread_mutex_t));
    REQUIRE(lock, "mpx_shared_new");
    pthread_mutexattr_t ma;
    REQUIRE(pthread_mutexattr_init(&ma) == 0 &&
                pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) == 0 &&
                pthread_mutex_init(mpx_shared_data(lock), &ma) == 0,
            "process-shared mutex");
    pthread_mutexattr_destroy(&ma);
    mpx_graph_t *g = MPX_EZ(range_node(0, N), elastic(mpx_as(1, &Locked, &lock), 1, 4));
    REQUIRE(mpx_graph_set_budget(g, 6) == 0, "budget");
    FILE *js = tmpfile();
    REQUIRE(js && mpx_graph_stats_to(g, js) == 0, "stats_to");
    tally_t t = {calloc(N, 1), 0, N, 0, false, false, 0};
    REQUIRE(t.seen, "memory");
    mpx_item_t *it;
    while ((it = mpx_graph_next(g)))
        take(&t, it);
    CHECK_EQ(t.n, N);
    char *json = slurp(js);
    int most = 1;
    int grows = changes_of(json, "locked", "grow", &most);
    int undos = changes_of(json, "locked", "undo", NULL);
    /* Its work per item never changes: no growth may be kept on the
     * ground that it did (what the CPU time alone said). */
    const char *misread = line_with(json, "\"stage\": \"locked\", ", "kept locked",
                                    "the work changed");
    CHECK(grows >= 1, "never tried a second instance");
    CHECK(most < 4, "grew to %d, the group's most", most);
    CHECK(!misread, "a growth kept as a change of work: %.600s", misread);
    fprintf(stderr, "%d growth(s), %d undo(s), at most %d instances\n", grows, undos, most);
    if (!(grows >= 1 && most < 4 && !misread)) /* the controller's lines, to see why */
        for (const char *l = json; l && *l;) {
            const char *end = strchr(l, '\n');
            if (strncmp(l, "{\"mpx_elastic\": 1, ", 19) == 0)
                fprintf(stderr, "%.*s\n", (int)(end ? end - l : (long)strlen(l)), l);
            l = end ? end + 1 : NULL;
        }
    free(json);
    fclose(js);
    free(t.seen);
    expect_success(g);
    pthread_mutex_destroy(mpx_shared_data(lock));
    mpx_shared_destroy(&lock);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(grow_and_shrink_lose_nothing),
        TEST_CASE(seq_order_while_changing),
        TEST_CASE(seq_from_a_source),
        TEST_CASE(two_groups_in_a_row),
        TEST_CASE(kills_while_changing),
        TEST_CASE(leaver_killed_on_its_way_out),
        TEST_CASE(leaver_replaced_while_its_producer_is_busy),
        TEST_CASE(consumer_replaced_during_a_join),
        TEST_CASE(producer_replaced_during_a_join),
        TEST_CASE(producer_replaced_during_a_leave),
        TEST_CASE(replaced_producer_leaves_after_its_consumer_left),
        TEST_CASE(changes_under_kills_next_to_the_group),
        TEST_CASE(zip_with_an_elastic_branch),
        TEST_CASE(side_graph_from_an_elastic_stage),
        TEST_CASE(elastic_pool_map),
        TEST_CASE(refused_where_it_cannot_work),
        TEST_CASE(setup_and_teardown_in_every_process),
        TEST_CASE(skip_policy_while_changing),
        TEST_CASE(change_under_way_is_reported),
        TEST_CASE(controller_grows_a_limiting_group_and_says_so),
        TEST_CASE(replacement_counts_against_the_budget),
        TEST_CASE(controller_changes_under_kills),
        TEST_CASE(lock_bound_stage_stops_where_adding_stopped_helping),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
