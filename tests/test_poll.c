/* tests/test_poll.c — taking output with a time limit (mpx_graph_poll),
 * signals that interrupt the wait, and a graph run from a program's own
 * event loop through its descriptor (mpx_graph_fd, mpx_graph_dispatch):
 * every item arrives, crashes are handled and per-item timeouts enforced
 * while the program serves only the descriptor, and the descriptor is
 * quiet while nothing is pending.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

/* How long a descriptor may stay quiet while the test expects it to turn
 * readable: only to tell a hang from a slow machine, never to time. */
#define HANG_MS 30000

/* ---- stages ------------------------------------------------------------- */

/* Holds item `id`: the first process to take it sets `started`, then
 * waits for `open`, or, without one, until it is killed.  Any other item,
 * and item `id` once `started` is set, passes. */
typedef struct gate_args {
    mpx_event_t *started, *open;
    int64_t id;
} gate_args_t;

static int gate_process(mpx_stage_t *st, mpx_item_t *it)
{
    const gate_args_t *a = mpx_args(st);
    if (mpx_item_i64(it) == a->id && !mpx_event_is_set(a->started)) {
        if (mpx_event_set(a->started) != 0)
            return mpx_fail(st, "cannot set the event");
        if (!a->open)
            for (;;)
                pause();
        if (mpx_event_wait(a->open, -1) != 1)
            return mpx_fail(st, "waiting for the gate failed");
    }
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Gate = {.name = "gate", .args_size = sizeof(gate_args_t),
                                     .process = gate_process};

/* Fails on item `id`, once `after` is set when there is one. */
typedef struct fail_args {
    int64_t id;
    mpx_event_t *after;
} fail_args_t;

static int fail_process(mpx_stage_t *st, mpx_item_t *it)
{
    const fail_args_t *a = mpx_args(st);
    if (mpx_item_i64(it) == a->id) {
        if (a->after && mpx_event_wait(a->after, -1) != 1)
            return mpx_fail(st, "waiting for the event failed");
        return mpx_fail(st, "item %lld is bad", (long long)mpx_item_i64(it));
    }
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t FailAt = {.name = "failat", .args_size = sizeof(fail_args_t),
                                       .process = fail_process};

static int bad_setup(mpx_stage_t *st) { return mpx_fail(st, "no model file"); }
static const mpx_stage_def_t BadSetup = {.name = "badsetup", .setup = bad_setup};

/* ---- helpers ------------------------------------------------------------ */

typedef struct gate {
    mpx_event_t *started, *open;
} gate_t;

static gate_t gate_new(void)
{
    gate_t gt = {mpx_event_new(), mpx_event_new()};
    REQUIRE(gt.started && gt.open, "events");
    return gt;
}

static void gate_destroy(gate_t *gt)
{
    mpx_event_destroy(&gt->started);
    mpx_event_destroy(&gt->open);
}

static int64_t instance_sum(mpx_graph_t *g, const char *name, bool restarts)
{
    int64_t sum = 0;
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) == 0 && strcmp(info.name, name) == 0)
            sum += restarts ? info.restarts : info.pid;
    }
    return sum;
}

/* Poll the descriptor alone, with no time limit but a hang's. */
static bool fd_readable(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    int n;
    while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    return n == 1;
}

typedef struct served {
    int64_t items, wakeups, idle, out_of_range;
} served_t;

/* Run the graph as an event loop does, through its descriptor only:
 * poll(2) on it, mpx_graph_dispatch, and mpx_graph_poll(g, 0, ...) until
 * MPX_ETIMEDOUT, until dispatch says the graph has ended.  Counts each
 * i64 in seen[0, n). */
static served_t serve_fd(mpx_graph_t *g, int fd, unsigned char *seen, int64_t n)
{
    served_t s = {0};
    for (;;) {
        REQUIRE(fd_readable(fd, HANG_MS), "the descriptor stayed quiet for %d ms", HANG_MS);
        s.wakeups++;
        int rc = mpx_graph_dispatch(g);
        REQUIRE(rc >= 0, "dispatch: %s", mpx_strerror(rc));
        if (rc == 0)
            break;
        REQUIRE(rc == MPX_DISPATCH_OUTPUT || rc == MPX_DISPATCH_IDLE, "dispatch returned %d", rc);
        mpx_item_t *it;
        int got = 0;
        while ((rc = mpx_graph_poll(g, 0, &it)) == 1) {
            int64_t v = mpx_item_i64(it);
            if (v >= 0 && v < n)
                seen[v] += seen[v] < 255;
            else
                s.out_of_range++;
            s.items++;
            got++;
        }
        REQUIRE(rc == MPX_ETIMEDOUT || rc == 0, "poll: %s", mpx_strerror(rc));
        s.idle += got == 0;
    }
    return s;
}

/* Dispatch until the descriptor stays quiet for QUIET_MS.  What was in
 * flight when the case started waiting (a stage's report of its state, a
 * connection its I/O thread had not yet made) may make it readable once
 * or twice more, late under load: each such wake-up must be idle, and
 * they must end.  A descriptor readable after every dispatch is a busy
 * loop, and fails here. */
#define QUIET_MS 200
static void settle(mpx_graph_t *g, int fd)
{
    int rounds = 0;
    while (fd_readable(fd, QUIET_MS)) {
        REQUIRE(++rounds <= 10, "the descriptor is readable after %d dispatches", rounds - 1);
        int rc = mpx_graph_dispatch(g);
        CHECK_EQ(rc, MPX_DISPATCH_IDLE);
    }
}

/* ---- mpx_graph_poll ----------------------------------------------------- */

static void poll_times_out_then_gives_the_item(void)
{
    gate_t gt = gate_new();
    const int64_t n = 100;
    mpx_graph_t *g =
        MPX_EZ(range_node(0, n), mpx_stage(&Gate, &(gate_args_t){gt.started, gt.open, 0}));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    REQUIRE(mpx_event_wait(gt.started, -1) == 1, "the gate never took item 0");
    /* Item 0 is held, and everything else is behind it. */
    mpx_item_t *it = (mpx_item_t *)&it;
    CHECK_EQ(mpx_graph_poll(g, 0, &it), MPX_ETIMEDOUT);
    CHECK(it == NULL, "an item with MPX_ETIMEDOUT");
    CHECK_EQ(mpx_graph_poll(g, 30, &it), MPX_ETIMEDOUT);
    CHECK(!mpx_graph_finished(g), "the graph ended");
    CHECK_EQ(mpx_event_set(gt.open), 0);
    int64_t next = 0;
    int rc;
    while ((rc = mpx_graph_poll(g, -1, &it)) == 1) {
        CHECK_EQ(mpx_item_i64(it), next);
        next++;
    }
    CHECK_EQ(rc, 0);
    CHECK(it == NULL, "an item with the end");
    CHECK_EQ(next, n);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(mpx_graph_poll(g, 0, &it), 0);
    CHECK_EQ(mpx_graph_poll(g, -1, &it), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
    gate_destroy(&gt);
}

static void poll_end_gives_the_outcome(void)
{
    /* A stage fails: poll says the end, join says why. */
    mpx_graph_t *g = MPX_EZ(range_node(0, 50), mpx_stage(&FailAt, &(fail_args_t){20, NULL}));
    mpx_item_t *it;
    int rc;
    int64_t got = 0;
    while ((rc = mpx_graph_poll(g, 10000, &it)) == 1 || rc == MPX_ETIMEDOUT)
        got += rc == 1;
    CHECK_EQ(rc, 0);
    CHECK(got <= 20, "%lld items", (long long)got);
    CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
    CHECK(strstr(mpx_graph_error(g), "item 20 is bad") != NULL, "%s", mpx_graph_error(g));
    CHECK_EQ(mpx_graph_poll(g, 0, &it), 0);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* A start that fails, from poll: its error, then the end. */
    g = MPX_EZ(range_node(0, 5), mpx_stage(&BadSetup, NULL));
    CHECK_EQ(mpx_graph_poll(g, -1, &it), MPX_ESTAGE);
    CHECK_EQ(mpx_graph_poll(g, -1, &it), 0);
    CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
    expect_clean(g);
    mpx_node_destroy(&g);

    g = MPX_EZ(range_node(0, 5), mpx_invalid("not today"));
    CHECK_EQ(mpx_graph_poll(g, -1, &it), MPX_EGRAPH);
    CHECK_EQ(mpx_graph_fd(g), MPX_EGRAPH);
    CHECK_EQ(mpx_graph_dispatch(g), MPX_EGRAPH);
    mpx_node_destroy(&g);

    CHECK_EQ(mpx_graph_poll(NULL, 0, &it), MPX_EINVAL);
    g = range_node(0, 1);
    CHECK_EQ(mpx_graph_poll(g, 0, NULL), MPX_EINVAL);
    CHECK(!mpx_graph_started(g), "started without a place for the item");
    mpx_node_destroy(&g);
    CHECK_EQ(mpx_graph_fd(NULL), MPX_EINVAL);
    CHECK_EQ(mpx_graph_dispatch(NULL), MPX_EINVAL);
    CHECK(strcmp(mpx_strerror(MPX_EINTR), "interrupted by a signal") == 0, "%s",
          mpx_strerror(MPX_EINTR));
}

/* ---- signals ------------------------------------------------------------ */

static volatile sig_atomic_t alarms;
static volatile sig_atomic_t open_after; /* open the gate at this many alarms */
static mpx_event_t *alarm_gate;

/* Counts; after `open_after` alarms it opens the gate (a write to an
 * eventfd, safe in a handler), so that a wait the signals do not end
 * still ends, with an item. */
static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    if (++alarms == open_after && alarm_gate)
        (void)mpx_event_set(alarm_gate);
    errno = saved;
}

/* SIGALRM every 10 ms until stopped: whichever comes while the call
 * waits is the one that interrupts it, so no timing is needed. */
static void alarms_every_10ms(bool on)
{
    struct itimerval t = {{0, on ? 10000 : 0}, {0, on ? 10000 : 0}};
    REQUIRE(setitimer(ITIMER_REAL, &t, NULL) == 0, "setitimer: %s", strerror(errno));
}

static void interrupted_poll(int flags)
{
    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = flags}, old;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGALRM, &sa, &old) == 0, "sigaction");
    gate_t gt = gate_new();
    const int64_t n = 200;
    mpx_graph_t *g =
        MPX_EZ(range_node(0, n), mpx_as(2, &Gate, &(gate_args_t){gt.started, gt.open, 0}));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    /* Everything but item 0 may arrive; item 0 only once the gate opens. */
    unsigned char seen[200] = {0};
    mpx_item_t *it;
    int rc;
    alarms = 0;
    open_after = 300; /* 3 s of alarms: only a poll that ignores them gets that far */
    alarm_gate = gt.open;
    alarms_every_10ms(true);
    while ((rc = mpx_graph_poll(g, -1, &it)) == 1) {
        seen[mpx_item_i64(it)]++;
        CHECK(mpx_item_i64(it) != 0, "item 0 before the gate opened");
    }
    alarms_every_10ms(false);
    CHECK_EQ(rc, MPX_EINTR);
    CHECK(alarms >= 1, "no alarm came");
    CHECK(!mpx_graph_finished(g), "the graph ended");
    REQUIRE(sigaction(SIGALRM, &old, NULL) == 0, "sigaction");
    /* Polling again goes on: nothing lost, nothing twice. */
    CHECK_EQ(mpx_event_set(gt.open), 0);
    while ((rc = mpx_graph_poll(g, -1, &it)) == 1)
        seen[mpx_item_i64(it)]++;
    CHECK_EQ(rc, 0);
    for (int64_t i = 0; i < n; i++)
        CHECK(seen[i] == 1, "item %lld arrived %d times", (long long)i, seen[i]);
    CHECK_EQ(mpx_graph_join(g), 0);
    alarm_gate = NULL;
    expect_clean(g);
    mpx_node_destroy(&g);
    gate_destroy(&gt);
}

static void signal_interrupts_poll(void) { interrupted_poll(0); }

/* signal() in glibc installs handlers this way: poll is interrupted all
 * the same, as poll(2) is. */
static void signal_interrupts_poll_with_sa_restart(void) { interrupted_poll(SA_RESTART); }

static void signal_does_not_end_next(void)
{
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGALRM, &sa, &old) == 0, "sigaction");
    gate_t gt = gate_new();
    mpx_graph_t *g =
        MPX_EZ(range_node(0, 10), mpx_stage(&Gate, &(gate_args_t){gt.started, gt.open, 0}));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    alarms = 0;
    open_after = 5;
    alarm_gate = gt.open;
    alarms_every_10ms(true);
    mpx_item_t *it = mpx_graph_next(g);
    alarms_every_10ms(false);
    REQUIRE(sigaction(SIGALRM, &old, NULL) == 0, "sigaction");
    CHECK(it != NULL && mpx_item_i64(it) == 0, "next did not wait through the signals");
    CHECK(alarms >= 5, "%d alarms", (int)alarms);
    CHECK_EQ(mpx_event_set(gt.open), 0); /* already, unless next failed */
    int64_t count = 0;
    drain_sum(g, &count);
    CHECK_EQ(count, it ? 9 : 10);
    CHECK_EQ(mpx_graph_join(g), 0);
    alarm_gate = NULL;
    expect_clean(g);
    mpx_node_destroy(&g);
    gate_destroy(&gt);
}

/* ---- the descriptor ----------------------------------------------------- */

static void fd_loop_delivers_everything(void)
{
    const int64_t n = 20000;
    mpx_graph_t *g = MPX_EZ(range_node(0, n), mpx_as(2, &Inc, NULL));
    /* Only what the graph does wakes the loop, not the stats' clock. */
    CHECK_EQ(mpx_graph_set_stats_interval(g, 60000), 0);
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "mpx_graph_fd: %s", mpx_strerror(fd));
    CHECK(mpx_graph_started(g), "the descriptor did not start the graph");
    CHECK_EQ(mpx_graph_fd(g), fd);
    unsigned char *seen = calloc((size_t)n + 1, 1);
    REQUIRE(seen, "calloc");
    served_t s = serve_fd(g, fd, seen, n + 1);
    CHECK_EQ(s.items, n);
    CHECK_EQ(s.out_of_range, 0);
    CHECK(seen[0] == 0, "0 arrived");
    for (int64_t v = 1; v <= n; v++)
        CHECK(seen[v] == 1, "%lld arrived %d times", (long long)v, seen[v]);
    CHECK_EQ(mpx_graph_join(g), 0);
    /* The end stays news: readable, and dispatch says so again. */
    CHECK(fd_readable(fd, 0), "the descriptor is quiet after the end");
    CHECK_EQ(mpx_graph_dispatch(g), 0);
    CHECK_EQ(mpx_graph_fd(g), fd);
    printf("%lld items in %lld wake-ups, %lld without output\n", (long long)s.items,
           (long long)s.wakeups, (long long)s.idle);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* An epoll loop that takes one item per wake-up and never calls
 * dispatch: poll(g, 0, ...) does the work as well. */
static void epoll_loop_one_item_per_wakeup(void)
{
    const int64_t n = 5000;
    mpx_graph_t *g = MPX_EZ(range_node(0, n), mpx_as(2, &Inc, NULL));
    CHECK_EQ(mpx_graph_set_stats_interval(g, 60000), 0);
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "mpx_graph_fd: %s", mpx_strerror(fd));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    REQUIRE(ep >= 0, "epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl: %s", strerror(errno));
    unsigned char *seen = calloc((size_t)n + 1, 1);
    REQUIRE(seen, "calloc");
    int64_t got = 0;
    int rc;
    for (;;) {
        int k;
        while ((k = epoll_wait(ep, &ev, 1, HANG_MS)) < 0 && errno == EINTR)
            ;
        REQUIRE(k == 1, "the descriptor stayed quiet for %d ms", HANG_MS);
        mpx_item_t *it;
        rc = mpx_graph_poll(g, 0, &it);
        if (rc == 1) {
            int64_t v = mpx_item_i64(it);
            REQUIRE(v >= 1 && v <= n, "%lld", (long long)v);
            seen[v]++;
            got++;
        } else if (rc == 0) {
            break;
        } else {
            REQUIRE(rc == MPX_ETIMEDOUT, "poll: %s", mpx_strerror(rc));
        }
    }
    CHECK_EQ(got, n);
    for (int64_t v = 1; v <= n; v++)
        CHECK(seen[v] == 1, "%lld arrived %d times", (long long)v, seen[v]);
    CHECK_EQ(mpx_graph_join(g), 0);
    close(ep);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A stage mid-item, nothing else to do: the descriptor is not readable
 * after dispatch (no busy loop), and turns readable once output comes. */
static void fd_quiet_while_nothing_is_pending(void)
{
    gate_t gt = gate_new();
    /* An endless source: one that finished would report it meanwhile. */
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL),
                            mpx_stage(&Gate, &(gate_args_t){gt.started, gt.open, 0}));
    /* Stats snapshots would wake it every interval. */
    CHECK_EQ(mpx_graph_set_stats_interval(g, 60000), 0);
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "mpx_graph_fd: %s", mpx_strerror(fd));
    REQUIRE(mpx_event_wait(gt.started, -1) == 1, "the gate never took item 0");
    settle(g, fd);
    CHECK(!fd_readable(fd, 0), "readable with nothing pending");
    mpx_item_t *it;
    CHECK_EQ(mpx_graph_poll(g, 0, &it), MPX_ETIMEDOUT);
    settle(g, fd);
    CHECK_EQ(mpx_graph_dispatch(g), MPX_DISPATCH_IDLE);
    CHECK(!fd_readable(fd, 0), "readable with nothing pending");
    /* Output wakes it. */
    CHECK_EQ(mpx_event_set(gt.open), 0);
    int64_t got = 0;
    while (got < 100) {
        REQUIRE(fd_readable(fd, HANG_MS), "the descriptor stayed quiet for %d ms", HANG_MS);
        int rc = mpx_graph_dispatch(g);
        REQUIRE(rc == MPX_DISPATCH_OUTPUT || rc == MPX_DISPATCH_IDLE, "dispatch returned %d", rc);
        while (got < 100 && mpx_graph_poll(g, 0, &it) == 1) {
            CHECK_EQ(mpx_item_i64(it), got);
            got++;
        }
    }
    CHECK_EQ(mpx_graph_stop(g), 0);
    CHECK(fd_readable(fd, 0), "the descriptor is quiet after the end");
    CHECK_EQ(mpx_graph_dispatch(g), 0);
    CHECK_EQ(mpx_graph_join(g), MPX_ESTOPPED);
    expect_clean(g);
    mpx_node_destroy(&g);
    gate_destroy(&gt);
}

/* Level-triggered: while output waits, the descriptor stays readable,
 * however often dispatch runs (libzmq's ZMQ_FD, edge-triggered, would be
 * quiet once the socket's commands were processed).  The program holds
 * an item, so nothing takes the rest meanwhile. */
static void fd_readable_while_output_waits(void)
{
    const int64_t n = 100;
    mpx_graph_t *g = MPX_EZ(range_node(0, n));
    CHECK_EQ(mpx_graph_set_stats_interval(g, 60000), 0);
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "mpx_graph_fd: %s", mpx_strerror(fd));
    mpx_item_t *it;
    REQUIRE(mpx_graph_poll(g, -1, &it) == 1 && mpx_item_i64(it) == 0, "no item 0");
    int rc;
    do {
        REQUIRE(fd_readable(fd, HANG_MS), "the descriptor stayed quiet for %d ms", HANG_MS);
        rc = mpx_graph_dispatch(g);
        REQUIRE(rc == MPX_DISPATCH_OUTPUT || rc == MPX_DISPATCH_IDLE, "dispatch returned %d", rc);
    } while (rc != MPX_DISPATCH_OUTPUT);
    for (int k = 0; k < 3; k++) {
        CHECK(fd_readable(fd, 0), "output waits, the descriptor is quiet");
        CHECK_EQ(mpx_graph_dispatch(g), MPX_DISPATCH_OUTPUT);
    }
    CHECK_EQ(mpx_item_i64(it), 0);
    unsigned char seen[100] = {0};
    seen[0] = 1;
    served_t s = serve_fd(g, fd, seen, n);
    CHECK_EQ(s.items, n - 1);
    for (int64_t v = 0; v < n; v++)
        CHECK(seen[v] == 1, "%lld arrived %d times", (long long)v, seen[v]);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A worker killed with SIGKILL while the program was busy elsewhere is
 * handled once it serves the descriptor: the worker is replaced and the
 * item it held is processed again.  One worker, not connected to the
 * parent's output, and stats every minute: only its death can wake the
 * loop. */
static void fd_crash_handled_while_serving_fd(void)
{
    mpx_event_t *started = mpx_event_new();
    REQUIRE(started, "event");
    const int64_t n = 2000;
    mpx_node_t *worker = mpx_stage(&Gate, &(gate_args_t){started, NULL, 0});
    mpx_graph_t *g = MPX_EZ(range_node(0, n), worker, mpx_stage(&Inc, NULL));
    CHECK_EQ(mpx_node_set_retries(worker, 1), 0);
    CHECK_EQ(mpx_graph_set_stats_interval(g, 60000), 0);
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "mpx_graph_fd: %s", mpx_strerror(fd));
    /* Busy elsewhere: in a wait of its own, then a kill. */
    REQUIRE(mpx_event_wait(started, -1) == 1, "the worker never took item 0");
    pid_t pid = (pid_t)instance_sum(g, "gate", false);
    REQUIRE(pid > 0 && kill(pid, SIGKILL) == 0, "kill %ld", (long)pid);
    unsigned char *seen = calloc((size_t)n + 1, 1);
    REQUIRE(seen, "calloc");
    served_t s = serve_fd(g, fd, seen, n + 1);
    CHECK_EQ(mpx_graph_join(g), 0);
    for (int64_t v = 1; v <= n; v++)
        CHECK(seen[v] >= 1, "%lld lost", (long long)v);
    CHECK(s.items >= n && s.out_of_range == 0, "%lld items, %lld out of range",
          (long long)s.items, (long long)s.out_of_range);
    CHECK_EQ(instance_sum(g, "gate", true), 1);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&started);
}

/* The worker hangs on item 0: the per-item timeout kills it while the
 * program only serves the descriptor, and the replacement processes it.
 * Stats every minute: only the timeout's checks can wake the loop. */
static void fd_timeout_enforced_while_serving_fd(void)
{
    mpx_event_t *started = mpx_event_new();
    REQUIRE(started, "event");
    const int64_t n = 500;
    mpx_node_t *worker = mpx_stage(&Gate, &(gate_args_t){started, NULL, 0});
    mpx_graph_t *g = MPX_EZ(range_node(0, n), worker);
    CHECK_EQ(mpx_node_set_retries(worker, 1), 0);
    /* Far above what passing an item on takes, even on a loaded machine
     * (see TIMEOUT_MS in test_faults.c). */
    CHECK_EQ(mpx_node_set_timeout(worker, 3000), 0);
    CHECK_EQ(mpx_graph_set_stats_interval(g, 60000), 0);
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "mpx_graph_fd: %s", mpx_strerror(fd));
    unsigned char *seen = calloc((size_t)n, 1);
    REQUIRE(seen, "calloc");
    served_t s = serve_fd(g, fd, seen, n);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(mpx_event_is_set(started), "item 0 was never held");
    for (int64_t v = 0; v < n; v++)
        CHECK(seen[v] >= 1, "%lld lost", (long long)v);
    CHECK(s.items >= n, "%lld items", (long long)s.items);
    CHECK_EQ(instance_sum(g, "gate", true), 1);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&started);
}

/* The item the program holds stays valid across dispatch, even when
 * dispatch finds the graph failed and ends it (AddressSanitizer would
 * see it freed). */
static void held_item_survives_dispatch(void)
{
    mpx_event_t *held = mpx_event_new();
    REQUIRE(held, "event");
    mpx_graph_t *g =
        MPX_EZ(range_node(0, 100), mpx_stage(&FailAt, &(fail_args_t){10, held}));
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "mpx_graph_fd: %s", mpx_strerror(fd));
    mpx_item_t *it;
    REQUIRE(mpx_graph_poll(g, -1, &it) == 1, "no first item");
    CHECK_EQ(mpx_event_set(held), 0); /* now the stage fails */
    int rc;
    do {
        REQUIRE(fd_readable(fd, HANG_MS), "the descriptor stayed quiet for %d ms", HANG_MS);
        rc = mpx_graph_dispatch(g);
    } while (rc > 0);
    CHECK_EQ(rc, 0);
    CHECK(mpx_graph_finished(g), "dispatch said the end before it");
    int64_t i = -1;
    CHECK_EQ(mpx_item_i64(it), 0);
    CHECK(mpx_item_meta_i64(it, "i", &i) == 0 && i == 0, "meta i %lld", (long long)i);
    CHECK_EQ(mpx_graph_poll(g, 0, &it), 0);
    CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
    CHECK(strstr(mpx_graph_error(g), "item 10 is bad") != NULL, "%s", mpx_graph_error(g));
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&held);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(poll_times_out_then_gives_the_item),
        TEST_CASE(poll_end_gives_the_outcome),
        TEST_CASE(signal_interrupts_poll),
        TEST_CASE(signal_interrupts_poll_with_sa_restart),
        TEST_CASE(signal_does_not_end_next),
        TEST_CASE(fd_loop_delivers_everything),
        TEST_CASE(epoll_loop_one_item_per_wakeup),
        TEST_CASE(fd_quiet_while_nothing_is_pending),
        TEST_CASE(fd_readable_while_output_waits),
        TEST_CASE(fd_crash_handled_while_serving_fd),
        TEST_CASE(fd_timeout_enforced_while_serving_fd),
        TEST_CASE(held_item_survives_dispatch),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
