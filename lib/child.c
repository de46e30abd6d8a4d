/* lib/child.c — one stage process from fork to _exit.
 *
 * Order of life: take the stage's name, arrange to die with the parent,
 * open the control channel and the edges (lib/xport: no zmq context, no
 * thread besides the stage's own), say hello, run setup
 * (whose first put waits for the parent's go, so that no item flows before
 * every stage is set up), process items until every producer has ended,
 * run teardown, send end of stream, report done, and wait to be released:
 * the parent releases a producer only once all its consumers have reported
 * done, so nothing rests on a socket's linger.  A stop from the parent ends the
 * process at once.  The process leaves with _exit so that no atexit
 * handler inherited from the parent runs.
 */
#define _GNU_SOURCE
#include "child.h"
#include "edge_out_inline.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "mpx/error.h"
#include "mpx/monitor.h"
#include "pool.h"
#include "reorder.h"
#include "shared_stage.h"
#include "ticks.h"
#include "wire.h"

/* Read by the signal handler, so it lives outside the heap state: the
 * parent's pid and the runtime directory to remove if the parent dies. */
static pid_t orphan_parent;
static int orphan_pidfd = -1; /* the parent process, to tell its death from a thread's */
static char orphan_dir[256];

/* Remove the runtime directory with nothing but system calls, so that a
 * signal handler may do it.  Every child does this when the parent dies,
 * all at once: a directory read while others unlink from it can skip
 * entries, so each child reads it again until it is gone. */
static void remove_dir_raw(const char *dir)
{
    for (int pass = 0; pass < 100; pass++) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return; /* another child removed it */
        char buf[4096] __attribute__((aligned(8)));
        for (;;) {
            long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
            if (n <= 0)
                break;
            for (long off = 0; off < n;) {
                /* struct linux_dirent64: ino 8, off 8, reclen 2, type 1, name */
                unsigned short reclen;
                memcpy(&reclen, buf + off + 16, sizeof reclen);
                const char *name = buf + off + 19;
                if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
                    unlinkat(fd, name, 0);
                off += reclen;
            }
        }
        close(fd);
        if (rmdir(dir) == 0 || errno == ENOENT)
            return;
    }
}

/* The parent's death is signalled with a real-time signal of its own, so
 * that a SIGTERM from anyone else keeps its ordinary meaning.  The kernel
 * also sends it when the thread that forked us exits while the rest of
 * the parent lives on; only a pidfd of the parent process tells the two
 * apart (it turns readable once the whole process has died, a moment
 * after the signal).  Without pidfds, si_pid names the parent in both
 * cases: then any such signal is taken as the parent's death. */
static int pdeath_signal(void) { return SIGRTMIN + 7; }

static void on_parent_death(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)ctx;
    bool dead;
    if (orphan_pidfd >= 0) {
        struct pollfd p = {orphan_pidfd, POLLIN, 0};
        int n;
        while ((n = poll(&p, 1, 500)) < 0 && errno == EINTR)
            ;
        dead = n > 0;
    } else {
        dead = info->si_pid == orphan_parent || getppid() != orphan_parent;
    }
    if (dead) {
        remove_dir_raw(orphan_dir);
        _exit(128 + SIGTERM);
    }
}

static void take_identity(const child_args_t *a)
{
    char comm[16];
    snprintf(comm, sizeof comm, "%s", a->plan->inst[a->id].name);
    prctl(PR_SET_NAME, comm, 0, 0, 0);

    /* Handlers the application installed mean nothing in a stage process;
     * stage code may install its own in setup. */
    static const int reset[] = {SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD};
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (size_t i = 0; i < sizeof reset / sizeof *reset; i++)
        sigaction(reset[i], &dfl, NULL);
    /* Ctrl-C reaches the whole process group: the parent decides. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGINT, &ign, NULL);
    /* The application may block signals (for a signalfd, say); a stage
     * process must receive its parent's death. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    snprintf(orphan_dir, sizeof orphan_dir, "%s", a->dir);
    orphan_parent = a->parent;
    orphan_pidfd = (int)syscall(SYS_pidfd_open, a->parent, 0);
    struct sigaction sa = {.sa_sigaction = on_parent_death, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    sigaction(pdeath_signal(), &sa, NULL);
    prctl(PR_SET_PDEATHSIG, pdeath_signal(), 0, 0, 0);
    if (getppid() != a->parent) { /* the parent died before prctl took hold */
        remove_dir_raw(orphan_dir);
        _exit(128 + SIGTERM);
    }
    for (int i = 0; i < a->nclose; i++)
        close(a->close_fds[i]);
}

static _Noreturn void leave(child_rt_t *rt, int code);

/* Whether the parent is connected to our control channel, waiting for it
 * if it has not been yet: it connects once it has forked every process,
 * and a hello has nowhere to go before that.  False once a connection
 * the parent made has ended (the parent is gone). */
static bool parent_there(child_rt_t *rt)
{
    for (;;) {
        (void)xport_service(rt->ctl);
        if (xport_has_peer(rt->ctl, EDGE_CTL_PARENT, 1)) {
            rt->parent_seen = true;
            return true;
        }
        if (rt->parent_seen)
            return false;
        struct pollfd p = {xport_fd(rt->ctl), POLLIN, 0};
        (void)poll(&p, 1, 100);
    }
}

static int ctl_send(child_rt_t *rt, wire_type_t type, const void *payload, size_t len)
{
    uint8_t buf[WIRE_HEAD + 4096];
    if (len > sizeof buf - WIRE_HEAD)
        len = sizeof buf - WIRE_HEAD;
    wire_head_put(buf, &(wire_head_t){(uint8_t)type, 0, (uint32_t)rt->id, 0, rt->gen});
    if (len)
        memcpy(buf + WIRE_HEAD, payload, len);
    if (!parent_there(rt) || xport_send_buf(rt->ctl, EDGE_CTL_PARENT, 1, buf, WIRE_HEAD + len) != 0)
        return MPX_ESYS;
    return 0;
}

/* A consumer of ours was replaced: note it now, send again later (at a
 * point where sending is safe: this may run inside a wait for credit). */
static void on_restart(child_rt_t *rt, const uint8_t *buf, size_t n)
{
    wire_restart_t r;
    if (n < WIRE_HEAD + sizeof r) {
        fprintf(stderr, "mpx: stage %s[%d]: ignored a short restart message\n",
                rt->st.pi->name, rt->st.pi->index);
        return;
    }
    memcpy(&r, buf + WIRE_HEAD, sizeof r);
    const char *why = (const char *)buf + WIRE_HEAD + sizeof r;
    int rc = edge_out_restart(rt->out, &r, why, n - WIRE_HEAD - sizeof r);
    if (rc < 0)
        fprintf(stderr, "mpx: stage %s[%d]: after a consumer's restart: %s\n", rt->st.pi->name,
                rt->st.pi->index, mpx_strerror(rc));
    rt->recover_due = true;
    rt->restarts_seen++;
}

/* A consumer of ours joined its elastic group: its notices go at the
 * next point where sending is safe, as a restart's records do. */
static void on_join(child_rt_t *rt, const uint8_t *buf, size_t n)
{
    wire_join_t j;
    if (n < WIRE_HEAD + sizeof j) {
        fprintf(stderr, "mpx: stage %s[%d]: ignored a short join message\n", rt->st.pi->name,
                rt->st.pi->index);
        return;
    }
    memcpy(&j, buf + WIRE_HEAD, sizeof j);
    int rc = edge_out_join(rt->out, j.consumer, j.gen);
    if (rc < 0)
        fprintf(stderr, "mpx: stage %s[%d]: after a consumer joined: %s\n", rt->st.pi->name,
                rt->st.pi->index, mpx_strerror(rc));
    rt->recover_due = true;
    rt->restarts_seen++;
}

/* The longest control message the parent sends (a restart, with why). */
#define CTL_MAX (WIRE_HEAD + sizeof(wire_restart_t) + 512)

static void handle_ctl(child_rt_t *rt)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    for (;;) {
        uint8_t rid[XPORT_RID_MAX];
        size_t rid_len;
        if (xport_recv(rt->ctl, rid, &rid_len, &m) != 0)
            break;
        const uint8_t *buf = zmq_msg_data(&m);
        size_t n = zmq_msg_size(&m);
        wire_head_t h;
        if (n > CTL_MAX || wire_head_get(buf, n, &h) != 0) {
            fprintf(stderr, "mpx: stage %s[%d]: ignored a malformed control message\n",
                    rt->st.pi->name, rt->st.pi->index);
            continue;
        }
        if (h.gen != rt->gen)
            continue; /* meant for the process this one replaces */
        switch (h.type) {
        case WIRE_GO: rt->go = true; break;
        case WIRE_RELEASE: rt->released = true; break;
        case WIRE_STOP: leave(rt, 0);
        case WIRE_RESTART: on_restart(rt, buf, n); break;
        case WIRE_JOIN: on_join(rt, buf, n); break;
        case WIRE_LEAVE:
            if (!rt->leaving && rt->in) {
                rt->leaving = true;
                edge_in_leave(rt->in);
            }
            break;
        default:
            fprintf(stderr, "mpx: stage %s[%d]: ignored control message %u\n",
                    rt->st.pi->name, rt->st.pi->index, h.type);
        }
    }
    zmq_msg_close(&m);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* How long the processes the stage owns have between SIGTERM and
 * SIGKILL: well inside the parent's grace for a stopped stage (300 ms,
 * supervisor.c), so that they are reaped here rather than orphaned when
 * the parent kills this process. */
#define OWNED_GRACE_MS 100

/* Through the pidfd when there is one: a pid the stage reaped without
 * disowning it may name another process by now. */
static void signal_owned(const child_rt_t *rt, int i, int sig)
{
    if (rt->owned_fd[i] >= 0)
        syscall(SYS_pidfd_send_signal, rt->owned_fd[i], sig, NULL, 0);
    else
        kill(rt->owned[i], sig);
}

/* Reap owned process i if it has ended; true once it is gone (reaped
 * here, or no child of ours any more: the stage reaped it itself).  By
 * its pidfd where the kernel waits on one (Linux 5.4), for the same
 * reason as signal_owned. */
static bool reap_owned(const child_rt_t *rt, int i, int flags)
{
    siginfo_t info;
    int rc;
    bool by_fd = rt->owned_fd[i] >= 0;
    for (;;) {
        info.si_pid = 0;
        rc = by_fd ? waitid(P_PIDFD, (id_t)rt->owned_fd[i], &info, WEXITED | flags)
                   : waitid(P_PID, (id_t)rt->owned[i], &info, WEXITED | flags);
        if (rc < 0 && errno == EINVAL && by_fd)
            by_fd = false;
        else if (!(rc < 0 && errno == EINTR))
            break;
    }
    return rc < 0 || info.si_pid != 0;
}

/* The processes the stage owns (mpx_own_child) end before this one, and
 * are reaped here: once this process has gone, whatever it left would be
 * adopted, and stay a zombie, in a process mpx knows nothing of. */
static void end_owned(child_rt_t *rt)
{
    if (!rt || rt->nowned == 0)
        return;
    bool gone[CHILD_OWNED_MAX] = {false};
    for (int i = 0; i < rt->nowned; i++)
        signal_owned(rt, i, SIGTERM);
    uint64_t until = mono_ns() + (uint64_t)OWNED_GRACE_MS * 1000000u;
    for (;;) {
        int left = 0;
        for (int i = 0; i < rt->nowned; i++)
            if (!gone[i])
                left += !(gone[i] = reap_owned(rt, i, WNOHANG));
        if (left == 0)
            break;
        if (mono_ns() >= until) {
            for (int i = 0; i < rt->nowned; i++)
                if (!gone[i]) {
                    signal_owned(rt, i, SIGKILL);
                    reap_owned(rt, i, 0);
                }
            break;
        }
        /* Only at the end of the process, for a moment: a sleep costs
         * less code than a poll on every pidfd, and there may be none. */
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    for (int i = 0; i < rt->nowned; i++)
        if (rt->owned_fd[i] >= 0)
            close(rt->owned_fd[i]);
    rt->nowned = 0;
}

/* Control messages still in this process go before it ends, for a
 * moment at most: the parent reads its channel at every turn, and one
 * that has gone takes the connection with it. */
static void ctl_flush(child_rt_t *rt)
{
    uint64_t until = mono_ns() + 1000000000u;
    while (rt && rt->ctl && xport_flush(rt->ctl) > 0 && mono_ns() < until) {
        struct pollfd p = {xport_fd(rt->ctl), POLLIN, 0};
        (void)poll(&p, 1, 10);
        (void)xport_service(rt->ctl);
    }
}

/* Every way out of a stage process (but the parent's death, handled in a
 * signal handler) comes here.  rt is NULL before it exists. */
static _Noreturn void leave(child_rt_t *rt, int code)
{
    ctl_flush(rt);
    end_owned(rt);
    fflush(stdout);
    fflush(stderr);
    _exit(code);
}

/* Reports waiting in the process beyond this many bytes: a new one is
 * dropped. */
#define REPORT_BACKLOG (64 * 1024)

/* Counters to the parent, for the monitor.  Never blocks: a parent that
 * is not reading (the application is busy between two calls) lets the
 * control channel fill, and a report that finds a backlog is dropped –
 * the next one carries the same counters, newer; so is one made before
 * the parent connected. */
void child_report(child_rt_t *rt)
{
    if (!rt->ctl || !xport_has_peer(rt->ctl, EDGE_CTL_PARENT, 1) ||
        xport_queued(rt->ctl) > REPORT_BACKLOG)
        return;
    int nout = rt->out ? edge_out_peers(rt->out) : 0;
    int nin = rt->in ? edge_in_peers(rt->in) : 0;
    size_t len = WIRE_HEAD + sizeof(wire_stats_t) + 16 * (size_t)(nout + nin);
    uint8_t small[WIRE_HEAD + sizeof(wire_stats_t) + 16 * 16];
    uint8_t *buf = len <= sizeof small ? small : malloc(len);
    if (!buf)
        return;
    uint64_t now = mono_ns();
    /* The CPU time beside the wall time: the elastic controller tells a
     * change of work per item from a core shared with more processes by
     * it (lib/elastic.c).  One system call per report. */
    struct timespec cpu;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) != 0)
        cpu = (struct timespec){0};
    uint64_t out_items = rt->out ? edge_out_items(rt->out) : 0;
    wire_stats_t ws = {
        .state = (uint32_t)rt->state,
        .nout = (uint32_t)nout,
        .nin = (uint32_t)nin,
        .items_in = rt->in ? edge_in_items(rt->in) : 0,
        .items_out = out_items,
        .dropped = rt->in ? edge_in_dropped(rt->in) : 0,
        .now = now,
        .wait_in = rt->wait_in,
        .wait_out = rt->wait_out,
        .progress_done = rt->progress_own ? rt->progress_done : out_items,
        .progress_total = rt->progress_total,
        .failed = rt->failed,
        .cpu = (uint64_t)cpu.tv_sec * 1000000000u + (uint64_t)cpu.tv_nsec,
    };
    wire_head_put(buf, &(wire_head_t){WIRE_STATS, 0, (uint32_t)rt->id, 0, rt->gen});
    memcpy(buf + WIRE_HEAD, &ws, sizeof ws);
    uint8_t *p = buf + WIRE_HEAD + sizeof ws;
    for (int k = 0; k < nout; k++, p += 16) {
        int c;
        uint64_t v[2];
        edge_out_peer(rt->out, k, &c, &v[1]);
        v[0] = (uint64_t)c;
        memcpy(p, v, 16);
    }
    for (int k = 0; k < nin; k++, p += 16) {
        int c;
        uint64_t v[2];
        edge_in_peer(rt->in, k, &c, &v[1]);
        v[0] = (uint64_t)c;
        memcpy(p, v, 16);
    }
    (void)xport_send_buf(rt->ctl, EDGE_CTL_PARENT, 1, buf, len);
    if (buf != small)
        free(buf);
    rt->stats_at = now;
}

static void set_state(child_rt_t *rt, mpx_stage_state_t s)
{
    rt->state = (int)s;
    child_report(rt);
}

static void report_if_due(child_rt_t *rt)
{
    if (rt->stats_ns && mono_ns() - rt->stats_at >= rt->stats_ns)
        child_report(rt);
}

/* Milliseconds a wait may last before the next report is due (-1: no
 * reports). */
static long report_timeout(const child_rt_t *rt, uint64_t now)
{
    if (!rt->stats_ns)
        return -1;
    uint64_t due = rt->stats_at + rt->stats_ns;
    return now >= due ? 0 : (long)((due - now) / 1000000u) + 1;
}

/* Poll items[0] (the control channel, always served) and the rest;
 * return 0 once one of the rest is ready, or, with n == 1, once a control
 * message was handled; 1 once `limit_ms` (-1: none) has passed.  Reports
 * stay on time meanwhile, and the time spent here is added to *waited. */
/* With the edges' endpoints that have bytes their peers' sockets did not
 * take yet, or a connection to make again, added (never "ready": only so
 * that the wait writes them when their peers read).  Every wait of the
 * stage's goes through here, so that none — for credit, for a pool block,
 * for a control message — leaves output unsent that a consumer is waiting
 * for.  Returns the number of items, or -1 when out of memory. */
static int with_unwritten(child_rt_t *rt, zmq_pollitem_t *items, int n, zmq_pollitem_t **all,
                          zmq_pollitem_t *local, int cap)
{
    void *extra[2] = {rt->out && edge_out_unwritten(rt->out) ? edge_out_socket(rt->out) : NULL,
                      rt->in && edge_in_unwritten(rt->in) ? edge_in_socket(rt->in) : NULL};
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++)
            if (extra[k] == items[i].socket)
                extra[k] = NULL;
    if (!extra[0] && !extra[1]) {
        *all = items;
        return n;
    }
    *all = n + 2 <= cap ? local : malloc((size_t)(n + 2) * sizeof **all);
    if (!*all)
        return -1;
    memcpy(*all, items, (size_t)n * sizeof *items);
    int m = n;
    for (int k = 0; k < 2; k++)
        if (extra[k])
            (*all)[m++] = (zmq_pollitem_t){extra[k], 0, 0, 0};
    return m;
}

static int poll_serving(child_rt_t *rt, zmq_pollitem_t *items, int n, uint64_t *waited,
                        long limit_ms)
{
    unsigned restarts = rt->restarts_seen;
    long until = limit_ms >= 0 ? mono_ms() + limit_ms : 0;
    /* The sockets are looked at at least once, also when the limit is 0
     * or has passed: a caller whose work is due again and again (a
     * leaver's word to a producer not connected yet) would otherwise
     * never see the input, nor the connection, that ends it. */
    bool looked = false;
    for (;;) {
        uint64_t t0 = mono_ns();
        if (rt->stats_ns && t0 - rt->stats_at >= rt->stats_ns)
            child_report(rt);
        long timeout = report_timeout(rt, t0);
        if (limit_ms >= 0) {
            long left = until - mono_ms();
            if (left <= 0 && looked)
                return 1;
            left = left < 0 ? 0 : left;
            timeout = timeout < 0 || left < timeout ? left : timeout;
        }
        looked = true;
        zmq_pollitem_t local[8], *all;
        int m = with_unwritten(rt, items, n, &all, local, 8);
        int rc = m < 0 ? -1 : edge_poll(all, m, timeout);
        if (all != items) {
            for (int i = 0; i < n; i++)
                items[i].revents = all[i].revents;
            if (all != local)
                free(all);
        }
        if (m < 0)
            errno = ENOMEM;
        if (waited)
            *waited += mono_ns() - t0;
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            return MPX_ESYS;
        }
        if (rc == 0)
            continue;
        if (items[0].revents)
            handle_ctl(rt);
        /* A consumer's restart ends any wait: credit may have come with
         * it, and the caller may have items to send again. */
        if ((n == 1 && items[0].revents) || rt->restarts_seen != restarts)
            return 0;
        for (int i = 1; i < n; i++)
            if (items[i].revents)
                return 0;
    }
}

/* A stop must reach a stage that never blocks, but reading an empty zmq
 * socket costs a system call: look every few milliseconds. */
#define CTL_TICKS TICKS_US(5000)
/* How often, between items, batches are checked for their age. */
#define TICK_TICKS TICKS_US(10)

static void poll_ctl_at(child_rt_t *rt, uint64_t now);

void child_poll_ctl(child_rt_t *rt) { poll_ctl_at(rt, ticks_now()); }

static void poll_ctl_at(child_rt_t *rt, uint64_t now)
{
    if (now - rt->ctl_at < CTL_TICKS)
        return;
    rt->ctl_at = now;
    handle_ctl(rt);
    report_if_due(rt);
    /* A stage that never runs out of credit still hears that its
     * consumers stopped. */
    if (rt->out) {
        edge_out_poll(rt->out);
        if (edge_out_closed(rt->out, 0))
            rt->st.stop_self = true;
    }
}

static void recover(child_rt_t *rt);

int child_pool_alloc(child_rt_t *rt, size_t size, int wait_ms, uint32_t *blk)
{
    pool_t *pool = rt->plan->pool;
    pool_holder_t me = {(uint32_t)rt->id, rt->gen};
    uint64_t start = 0;
    int rc;
    for (;;) {
        uint32_t seen = pool_frees(pool);
        rc = pool_alloc(pool, me, size, blk);
        if (rc != POOL_FULL)
            break;
        uint64_t now = mono_ns();
        if (!start) {
            start = now;
            /* What waits in our batches holds blocks that only their
             * consumers can free: it goes first. */
            if (rt->out) {
                int frc = edge_out_flush(rt->out);
                if (frc < 0 && frc != MPX_ESTOPPED) {
                    rc = frc;
                    break;
                }
            }
        }
        if (wait_ms >= 0 && now - start >= (uint64_t)wait_ms * 1000000u) {
            rc = MPX_ETIMEDOUT;
            break;
        }
        /* A free wakes us at once; the control channel (a stop) is looked
         * at every few milliseconds meanwhile. */
        (void)pool_wait(pool, seen, 5);
        /* Confirmations free kept copies, and a replaced consumer needs
         * what it held sent again before it can free anything. */
        rt->ctl_at = 0;
        poll_ctl_at(rt, ticks_now());
        if (rt->recover_due)
            recover(rt);
        if (rt->st.stop_self) {
            rc = MPX_ESTOPPED;
            break;
        }
    }
    if (start)
        rt->wait_out += mono_ns() - start;
    return rc;
}

/* Wait for `sock` (NULL: for a control message) while serving the
 * control channel; the time counts as waiting for input or for room. */
static int wait_on(child_rt_t *rt, void *sock, short events, uint64_t *waited)
{
    zmq_pollitem_t items[2] = {{rt->ctl, 0, ZMQ_POLLIN, 0}, {sock, 0, events, 0}};
    return poll_serving(rt, items, sock ? 2 : 1, waited, -1);
}

/* edge_wait_fn: the output waits for credit. */
static int wait_sock(void *owner, void *sock, short events)
{
    child_rt_t *rt = owner;
    return wait_on(rt, sock, events, &rt->wait_out);
}

/* Wait for input, or for a descriptor the stage watches (then its idle
 * hook runs again), serving the control channel meanwhile; 1 when
 * confirmations became due first (edge_in_due_ms), and nothing else
 * happened. */
static int wait_input(child_rt_t *rt)
{
    zmq_pollitem_t items[3 + CHILD_WATCH_MAX] = {{rt->ctl, 0, ZMQ_POLLIN, 0},
                                                 {edge_in_socket(rt->in), 0, ZMQ_POLLIN, 0}};
    int n = 2;
    /* A chained input's confirmations wait on the output's credit. */
    bool settling = edge_in_settling(rt->in);
    /* Kept records that hold pool blocks are let go as their consumers
     * confirm them: our producers may wait for those blocks. */
    bool pooled = edge_out_keeps_pooled(rt->out);
    if (settling || pooled)
        items[n++] = (zmq_pollitem_t){edge_out_socket(rt->out), 0, ZMQ_POLLIN, 0};
    for (int i = 0; i < rt->nwatch; i++)
        items[n++] = (zmq_pollitem_t){NULL, rt->watch[i], ZMQ_POLLIN, 0};
    int rc = poll_serving(rt, items, n, &rt->wait_in, edge_in_due_ms(rt->in));
    if (settling)
        edge_in_settle(rt->in);
    else if (pooled)
        edge_out_poll(rt->out);
    return rc;
}

static _Noreturn void fail(child_rt_t *rt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Send again what a replaced consumer held, at a point where that is safe. */
static void recover(child_rt_t *rt)
{
    if (!rt->recover_due)
        return;
    rt->recover_due = false;
    int rc = edge_out_recover(rt->out);
    if (rc < 0 && rc != MPX_ESTOPPED)
        fail(rt, "sending again what a replaced consumer held: %s", mpx_strerror(rc));
}

/* mpx_poll (stage.h).  The stage's descriptors wait beside the control
 * channel in poll_serving, as every wait of the runtime's does; poll(2)
 * then says exactly what each has, which the zmq item would not (it folds
 * a hang-up into an error). */
int child_poll_fds(child_rt_t *rt, struct pollfd *fds, size_t n, int timeout_ms)
{
    zmq_pollitem_t local[1 + CHILD_WATCH_MAX];
    zmq_pollitem_t *items = n < 1 + CHILD_WATCH_MAX ? local : malloc((n + 1) * sizeof *items);
    if (!items)
        return MPX_ENOMEM;
    /* Even a call that does not wait hears a stop, as a put does. */
    child_poll_ctl(rt);
    /* A wait is a pause: what the Seq after this stage made of its items
     * so far must not wait for more (lib/stage.c, stamp_commit). */
    if (timeout_ms != 0) {
        int mrc = child_stamp_mark(rt);
        if (mrc != 0) {
            if (items != local)
                free(items);
            return mrc;
        }
    }
    long until = timeout_ms >= 0 ? mono_ms() + timeout_ms : -1;
    int rc;
    for (;;) {
        items[0] = (zmq_pollitem_t){rt->ctl, 0, ZMQ_POLLIN, 0};
        for (size_t i = 0; i < n; i++) {
            short ev = fds[i].events;
            items[i + 1] = (zmq_pollitem_t){NULL, fds[i].fd,
                                            (short)((ev & POLLIN ? ZMQ_POLLIN : 0) |
                                                    (ev & POLLOUT ? ZMQ_POLLOUT : 0) |
                                                    (ev & POLLPRI ? ZMQ_POLLPRI : 0)),
                                            0};
        }
        long left = until < 0 ? -1 : until - mono_ms();
        int waited = until >= 0 && left <= 0 ? 1 : poll_serving(rt, items, (int)n + 1, NULL, left);
        if (waited < 0) {
            rc = waited;
            break;
        }
        while ((rc = poll(fds, (nfds_t)n, 0)) < 0 && errno == EINTR)
            ;
        if (rc < 0) {
            rc = MPX_ESYS;
            break;
        }
        if (rc > 0 || waited == 1)
            break;
        /* Woken for the runtime's sake (a consumer was replaced): what
         * it held goes again now, a safe point as a put is. */
        recover(rt);
    }
    if (items != local)
        free(items);
    return rc;
}

int child_before_put(child_rt_t *rt)
{
    if (!rt->ready_sent) {
        if (ctl_send(rt, WIRE_READY, NULL, 0) != 0)
            return MPX_ESYS;
        rt->ready_sent = true;
    }
    while (!rt->go)
        if (wait_on(rt, NULL, 0, NULL) != 0)
            return MPX_ESYS;
    if (rt->state == MPX_STATE_STARTING)
        set_state(rt, MPX_STATE_RUNNING);
    rt->puts = 0;
    child_poll_ctl(rt);
    recover(rt);
    const plan_inst_t *pi = rt->st.pi;
    rt->put_plain = rt->phase >= PHASE_SETUP && rt->phase <= PHASE_TEARDOWN && !pi->timing &&
                    !rt->stamp && pi->max_item >= WIRE_REC_HEAD + wire_part_size(PUT_PLAIN_MAX);
    return 0;
}

static const char *phase_name(child_phase_t p)
{
    switch (p) {
    case PHASE_SETUP: return "setup";
    case PHASE_PROCESS: return "process";
    case PHASE_TEARDOWN: return "teardown";
    default: return "start";
    }
}

/* Report a failure and wait for the parent to stop us: exiting at once
 * could lose the report itself. */
static _Noreturn void fail(child_rt_t *rt, const char *fmt, ...)
{
    char msg[3900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    uint32_t phase = (uint32_t)rt->phase;
    uint8_t payload[4 + sizeof msg];
    memcpy(payload, &phase, 4);
    size_t len = strlen(msg);
    memcpy(payload + 4, msg, len);
    if (!rt->ctl || ctl_send(rt, WIRE_ERROR, payload, 4 + len) != 0) {
        fprintf(stderr, "mpx: stage %s[%d]: %s\n", rt->st.pi->name, rt->st.pi->index, msg);
        leave(rt, CHILD_EXIT_SETUP_FAILED);
    }
    set_state(rt, MPX_STATE_FAILED);
    for (;;)
        wait_on(rt, NULL, 0, NULL);
}

/* A put refused because everything downstream stopped: the stage ends,
 * like a writer into a closed pipe.  A failure the stage reported itself
 * (mpx_fail), or a put refused for another reason, is still a failure. */
static bool downstream_stopped(const child_rt_t *rt, int rc)
{
    return rt->out && edge_out_closed(rt->out, 0) && !rt->st.fail_msg && !rt->st.refused_rc &&
           (rc == MPX_ESTOPPED || rc == -1);
}

/* Why a callback failed, in words: its mpx_fail message, the refused put,
 * or the code; NULL when it did not. */
static const char *why_failed(child_rt_t *rt, int rc, char *buf, size_t cap)
{
    return stage_failure(&rt->st, rc, buf, cap);
}

/* Apply the return value of setup, teardown, idle or mark (whose name
 * stage_begin gave). */
static void check_rc(child_rt_t *rt, int rc)
{
    if (rc == 0 && !rt->st.refused_rc)
        return;
    if (downstream_stopped(rt, rc)) {
        rt->st.stop_self = true;
        return;
    }
    char buf[512];
    fail(rt, "%s failed: %s", rt->st.callback ? rt->st.callback : phase_name(rt->phase),
         why_failed(rt, rc, buf, sizeof buf));
}


/* What failed for good, described by `desc` (its number and meta), goes
 * where the stage's policy says: a line on stderr (skip), the dead-letter
 * side graph with the current meta and the reason (dead letter), or the
 * end of the run (stop: false, for the caller to fail). */
static bool apply_policy(child_rt_t *rt, const char *desc, const mpx_part_t *parts, size_t n,
                         const char *why, size_t whylen)
{
    const plan_inst_t *pi = rt->st.pi;
    if (pi->on_error == MPX_ON_ERROR_SKIP) {
        char who[160];
        rt->box->failed = ++rt->failed;
        fprintf(stderr, "mpx: %s skipped %s: %.*s\n", plan_inst_label(pi, who, sizeof who), desc,
                (int)whylen, why);
        return true;
    }
    if (pi->on_error == MPX_ON_ERROR_DEAD_LETTER || pi->on_error == MPX_ON_ERROR_RESULT) {
        bool dead = pi->on_error == MPX_ON_ERROR_DEAD_LETTER;
        rt->box->failed = ++rt->failed;
        int64_t index = pi->index;
        int rc = meta_cur_set(&rt->meta, "mpx.error", why, whylen);
        if (rc == 0)
            rc = meta_cur_set(&rt->meta, "mpx.stage", pi->name, strlen(pi->name));
        if (rc == 0)
            rc = meta_cur_set(&rt->meta, "mpx.instance", &index, sizeof index);
        /* An error result has no parts: nothing of the input is taken
         * for a value. */
        if (rc == 0)
            rc = dead ? stage_put_port(&rt->st, pi->dead_port, parts, n)
                      : stage_put_port(&rt->st, 0, NULL, 0);
        if (rc == MPX_ESTOPPED && !dead)
            return true; /* nobody reads the results any more */
        if (rc != 0)
            fail(rt, "%s failed (%.*s), and putting %s failed too: %s", desc, (int)whylen, why,
                 dead ? "it into the dead-letter side graph" : "its error result",
                 mpx_strerror(rc));
        return true;
    }
    return false;
}

/* The number of the item in hand, as the stage's process callback sees
 * its input: behind a Seq's reorder, the items handed to it so far. */
static uint64_t item_no(const child_rt_t *rt)
{
    return rt->reorder ? rt->delivered : edge_in_items(rt->in);
}

/* Processing the item failed for good: the stage's policy decides. */
static void item_failed(child_rt_t *rt, const mpx_item_t *it, const char *why, size_t whylen)
{
    char desc[640];
    meta_describe_item(item_no(rt), it->meta, it->meta_size, it->nmeta, false, desc,
                       sizeof desc);
    meta_cur_reset(&rt->meta, it->meta, it->meta_size, it->nmeta);
    if (!apply_policy(rt, desc, it->parts, it->nparts, why, whylen))
        fail(rt, "process failed on %s: %.*s", desc, (int)whylen, why);
}

int child_reject(child_rt_t *rt, const mpx_part_t *parts, size_t n, const char *why)
{
    if (rt->st.pi->on_error == MPX_ON_ERROR_STOP)
        return MPX_ESTAGE; /* the message is the stage's mpx_fail message */
    /* The current meta describes what was rejected; the keys the dead
     * letter adds are taken off again, as it goes on being the meta of
     * what the stage puts next. */
    char desc[640];
    size_t size = meta_cur_size(&rt->meta);
    uint8_t small[512], *blk = size <= sizeof small ? small : malloc(size);
    if (blk) {
        meta_cur_encode(&rt->meta, blk);
        size_t len = meta_describe(blk, (uint32_t)size, meta_cur_n(&rt->meta), desc, sizeof desc);
        if (blk != small)
            free(blk);
        if (len == 0 || strcmp(desc, "{}") == 0)
            snprintf(desc, sizeof desc, "what %s could not handle", rt->st.pi->name);
    } else {
        snprintf(desc, sizeof desc, "what %s could not handle", rt->st.pi->name);
    }
    bool dead = rt->st.pi->on_error == MPX_ON_ERROR_DEAD_LETTER ||
                rt->st.pi->on_error == MPX_ON_ERROR_RESULT;
    apply_policy(rt, desc, parts, n, why, strlen(why));
    if (dead) {
        (void)meta_cur_del(&rt->meta, "mpx.error");
        (void)meta_cur_del(&rt->meta, "mpx.stage");
        (void)meta_cur_del(&rt->meta, "mpx.instance");
    }
    return 0;
}

/* An item sent again after the death of the worker that had it in hand
 * has failed that many times: past the retries, it is not processed
 * again. */
static bool gave_up(child_rt_t *rt, const mpx_item_t *it)
{
    size_t len;
    const void *v = wire_meta_find(it->meta, it->meta_size, it->nmeta, "mpx.failures", &len);
    int64_t failures = 0;
    if (v && len == 8)
        memcpy(&failures, v, 8);
    if (failures <= rt->st.pi->retries)
        return false;
    const char *why = wire_meta_find(it->meta, it->meta_size, it->nmeta, "mpx.error", &len);
    if (!why) {
        why = "its worker died";
        len = strlen(why);
    }
    item_failed(rt, it, why, len);
    return true;
}

/* What the supervisor will read if this process dies with the item. */
static inline __attribute__((always_inline)) void note_in_hand(child_rt_t *rt,
                                                               const mpx_item_t *it)
{
    blackbox_t *b = rt->box;
    int producer;
    edge_in_current(rt->in, &producer, &b->prod_gen, &b->rec);
    b->producer = (uint32_t)producer;
    if (it->meta_size <= BLACKBOX_META) {
        if (it->meta_size)
            memcpy(b->meta, it->meta, it->meta_size);
        b->meta_size = it->meta_size;
        b->nmeta = it->nmeta;
        b->cut = 0;
    } else {
        b->meta_size = 0;
        b->nmeta = 0;
        b->cut = 1;
    }
    /* The supervisor's per-item timeout starts again when this changes. */
    b->item_no = item_no(rt);
    __atomic_store_n(&b->busy, 1, __ATOMIC_RELEASE);
}

static __attribute__((noinline)) void handle_item_again(child_rt_t *rt, mpx_item_t *it,
                                                        uint64_t now, int attempt);
static bool attempt_failed(child_rt_t *rt, mpx_item_t *it, int rc, int attempt);

/* Process one item, again up to the stage's retries when it fails. */
static inline __attribute__((always_inline)) void handle_item(child_rt_t *rt, mpx_item_t *it,
                                                              uint64_t now)
{
    const plan_inst_t *pi = rt->st.pi;
    const mpx_stage_def_t *def = pi->def;
    /* The common case here, inline: a first attempt, untimed, that
     * succeeds.  Anything else goes on in handle_item_again. */
    if (__builtin_expect((it->flags & WIRE_REC_REDO) || pi->timing || !def->process, 0)) {
        if (!(it->flags & WIRE_REC_REDO) || !gave_up(rt, it))
            handle_item_again(rt, it, now, 0);
        return;
    }
    edge_out_time(rt->out, now);
    rt->in_process = true;
    stage_begin(&rt->st, "process");
    int rc = def->process(&rt->st, it);
    rt->in_process = false;
    edge_out_time(rt->out, 0);
    if (__builtin_expect(rc == 0 && !rt->st.refused_rc, 1))
        return;
    if (attempt_failed(rt, it, rc, 0))
        handle_item_again(rt, it, now, 1);
}

/* Attempt `attempt` at `it` failed with rc (or a refused put): whether
 * to try again. */
static bool attempt_failed(child_rt_t *rt, mpx_item_t *it, int rc, int attempt)
{
    if (downstream_stopped(rt, rc)) {
        rt->st.stop_self = true;
        return false;
    }
    bool last = attempt >= rt->st.pi->retries || rt->st.stop_self;
    if (last) {
        char buf[512];
        const char *why = why_failed(rt, rc, buf, sizeof buf);
        item_failed(rt, it, why, strlen(why));
    }
    /* The next attempt, or item, starts with no failure noted. */
    free(rt->st.fail_msg);
    rt->st.fail_msg = NULL;
    if (last)
        return false;
    meta_cur_reset(&rt->meta, it->meta, it->meta_size, it->nmeta);
    return true;
}

static void handle_item_again(child_rt_t *rt, mpx_item_t *it, uint64_t now, int attempt)
{
    const plan_inst_t *pi = rt->st.pi;
    const mpx_stage_def_t *def = pi->def;
    for (;; attempt++) {
        if (pi->timing)
            clock_gettime(CLOCK_MONOTONIC, &rt->item_start);
        edge_out_time(rt->out, now);
        rt->in_process = true;
        stage_begin(&rt->st, "process");
        int rc = def->process ? def->process(&rt->st, it) : mpx_put_item(&rt->st, it);
        rt->in_process = false;
        edge_out_time(rt->out, 0);
        if (__builtin_expect(rc == 0 && !rt->st.refused_rc, 1))
            return;
        if (!attempt_failed(rt, it, rc, attempt))
            return;
    }
}

static void open_sockets(child_rt_t *rt, const child_args_t *a)
{
    const plan_inst_t *pi = rt->st.pi;
    /* The child listens on its end of the control channel and the parent
     * connects to it once it has forked everyone (edge.h). */
    rt->ctl = edge_open_ctl(rt->dir, rt->id, a->ctl_fd, rt->err, sizeof rt->err);
    if (!rt->ctl) {
        fprintf(stderr, "mpx: stage %s: %s\n", pi->name, rt->err);
        leave(rt, CHILD_EXIT_SETUP_FAILED);
    }
    if (pi->nproducers > 0 && a->resume != CHILD_FINISHED) {
        if (a->inbox_fd >= 0)
            edge_adopt_inbox(rt->id, rt->gen, a->inbox_fd);
        rt->in = edge_in_new(rt->plan, rt->id, rt->gen, a->gens, rt->dir, rt->err,
                             sizeof rt->err);
        if (!rt->in)
            fail(rt, "cannot open input: %s", rt->err);
    }
    rt->out = edge_out_new(rt->plan, rt->id, rt->gen, a->gens, rt->dir, wait_sock, rt,
                           rt->err, sizeof rt->err);
    if (!rt->out)
        fail(rt, "cannot open output: %s", rt->err);
    edge_out_mirror_resent(rt->out, &rt->box->resent);
    /* A consumer leaving its group is owed our end of stream from the
     * start (EDGE_GEN_LEAVING): sent at the first safe point. */
    if (edge_out_recover_due(rt->out))
        rt->recover_due = true;
    if (rt->in) {
        edge_in_set_output(rt->in, rt->out);
        if (a->resume == CHILD_JOIN)
            edge_in_set_joiner(rt->in);
    }
    if (rt->in && pi->recoverable) {
        edge_out_keep_all(rt->out);
        edge_in_chain(rt->in, rt->out);
    }
    /* Sent once the parent has connected: a DEALER holds it until then. */
    uint32_t pid = (uint32_t)getpid();
    if (ctl_send(rt, WIRE_HELLO, &pid, sizeof pid) != 0)
        leave(rt, CHILD_EXIT_SETUP_FAILED);
}

/* Large items arrive in buffers zmq allocates for each message, and leave
 * in batches as large.  With glibc's defaults those buffers go back to the
 * kernel soon after they are freed (trimming starts at twice the largest
 * block freed), so a stream of large items, several in flight at once,
 * has every page of every item faulted in and zeroed anew: a third of the
 * CPU time of 1 MiB items (README, Benchmarks).  So a stage process keeps
 * as much freed heap as one of its edges may hold in flight (its input's
 * capacity, or its largest consumer window), at most HEAP_KEEP_MAX, and
 * serves blocks up to that size from the heap.  A malloc setting the user
 * made for the program (GLIBC_TUNABLES, MALLOC_*_ variables) is left
 * alone: it was read when the program started, which is why this looks at
 * the environment before the stage's own is applied.  (A mallopt() the
 * application called itself cannot be seen, and is overridden.) */
#define HEAP_KEEP_MAX ((size_t)32 << 20) /* glibc's own limit on the mmap threshold */

static void keep_heap(const plan_t *plan, int self)
{
    const char *t = getenv("GLIBC_TUNABLES");
    if ((t && strstr(t, "glibc.malloc.")) || getenv("MALLOC_TRIM_THRESHOLD_") ||
        getenv("MALLOC_MMAP_THRESHOLD_") || getenv("MALLOC_TOP_PAD_"))
        return;
    const plan_inst_t *pi = &plan->inst[self];
    size_t keep = pi->nproducers > 0 ? pi->cap_bytes : 0;
    for (int i = 0; i < pi->nconsumers; i++) {
        size_t w = plan_window_bytes(plan, pi->consumers[i]);
        keep = w > keep ? w : keep;
    }
    if (keep > HEAP_KEEP_MAX)
        keep = HEAP_KEEP_MAX;
    if (keep <= 256 * 1024) /* glibc's defaults do as well */
        return;
    /* Either setting turns glibc's adjustment of the other off: both. */
    mallopt(M_MMAP_THRESHOLD, (int)keep);
    mallopt(M_TRIM_THRESHOLD, (int)keep);
}

/* The stage's environment, outermost setting first, so the nearest wins. */
static void apply_env(const plan_inst_t *pi)
{
    for (int i = 0; i < pi->nenv; i++) {
        const node_env_t *e = pi->env[i];
        if (e->value)
            setenv(e->name, e->value, 1);
        else
            unsetenv(e->name);
    }
}

/* An item the Seq before this stage kept, in its turn (lib/reorder.h):
 * processed as if it had just arrived, then freed.  MPX_ESTOPPED once
 * the stage has stopped: the rest is not processed. */
static int deliver(void *ctx, mpx_item_t **itp)
{
    child_rt_t *rt = ctx;
    mpx_item_t *it = *itp;
    if (!rt->st.stop_self) {
        meta_cur_reset(&rt->meta, it->meta, it->meta_size, it->nmeta);
        rt->delivered++;
        note_in_hand(rt, it);
        handle_item(rt, it, ticks_now());
        __atomic_store_n(&rt->box->busy, 0, __ATOMIC_RELEASE);
        /* The meta pointed into the copy. */
        meta_cur_reset(&rt->meta, NULL, 0, 0);
        if (edge_out_closed(rt->out, 0))
            rt->st.stop_self = true;
    }
    mpx_item_free(itp);
    return rt->st.stop_self ? MPX_ESTOPPED : 0;
}

/* A mark has come through every path: the stage sees it, then it goes on. */
static void on_mark(child_rt_t *rt, const edge_mark_t *m)
{
    const mpx_stage_def_t *def = rt->st.pi->def;
    int rc = 0;
    if (rt->reorder && reorder_ours(rt->reorder, m->value)) {
        rc = reorder_mark(rt->reorder, m->value, deliver, rt);
        if (rc < 0 && rc != MPX_ESTOPPED)
            fail(rt, "seq: %s", mpx_strerror(rc));
        return;
    }
    if (def->mark) {
        meta_cur_reset(&rt->meta, NULL, 0, 0);
        stage_begin(&rt->st, "mark");
        rc = def->mark(&rt->st, m->value);
        check_rc(rt, rc == MPX_MARK_CONSUMED ? 0 : rc);
        if (rc == MPX_MARK_CONSUMED)
            return;
    }
    rc = child_stamp_mark(rt);
    if (rc == 0)
        rc = edge_out_mark(rt->out, m->origin, m->value, m->index);
    if (rc < 0 && rc != MPX_ESTOPPED)
        fail(rt, "passing a mark on: %s", mpx_strerror(rc));
}

/* The stage's map applied to the 8-byte items of a run in hand
 * (graph/i64map.h), as many as the batch being filled has room for
 * before it is full and the puts before the control channel's next look
 * allow (the one that begins a batch or is the 128th put goes the
 * ordinary way, as put_plain would send it there).  Each item is noted
 * in hand as note_in_hand would (what a crash report and the per-item
 * timeout read), its result written as put_plain writes it, and the
 * clock read after it as process_all does: the run stops when the batch
 * is due a look (TICK_TICKS), so batching, the control channel and
 * stops are looked at as often as item by item.  Returns whether it
 * processed any; the next item otherwise goes to edge_in_next. */
static bool map_run(child_rt_t *rt, uint64_t *nowp)
{
    const plan_inst_t *pi = rt->st.pi;
    if (rt->reorder || !rt->put_plain || rt->meta.dirty || rt->pool_min <= 8 ||
        rt->puts + 1 >= 128)
        return false;
    edge_in_time(rt->in, *nowp);
    edge_i64_run_t run;
    size_t n = edge_in_i64_run(rt->in, &run);
    const size_t size = wire_short_size(8);
    size_t room = n ? edge_out_run_room(rt->out, 0, size) : 0;
    if (room == 0)
        return false;
    if (n > room)
        n = room;
    if (n > 127 - rt->puts)
        n = 127 - rt->puts;
    /* The items have no meta: nor has what is put for them. */
    static const uint8_t no_meta[8];
    rt->meta.blk = no_meta;
    rt->meta.blk_size = 0;
    rt->meta.blk_n = 0;
    blackbox_t *b = rt->box;
    int producer;
    uint64_t rec;
    edge_in_current(rt->in, &producer, &b->prod_gen, &rec);
    b->producer = (uint32_t)producer;
    b->meta_size = 0;
    b->nmeta = 0;
    b->cut = 0;
    uint64_t no = edge_in_items(rt->in);
    out_port_t *pt = &rt->out->ports[0];
    uint8_t *dst = pt->buf + pt->len;
    stage_begin(&rt->st, "process");
    rt->in_process = true;
    uint64_t now = *nowp;
    size_t k = 0;
    while (k < n) {
        uint64_t v, r;
        if (run.pk)
            memcpy(&v, run.pk + 8 * k, 8);
        else
            v = run.v + k * run.step;
        b->rec = run.rec + k;
        b->item_no = no + k + 1;
        __atomic_store_n(&b->busy, 1, __ATOMIC_RELEASE);
        if (!pi->i64map(pi->args, v, &r))
            break; /* process says why */
        dst = wire_short_put(dst, &r, sizeof r);
        k++;
        now = ticks_now();
        if (now - rt->tick_at >= TICK_TICKS)
            break;
    }
    rt->in_process = false;
    __atomic_store_n(&b->busy, 0, __ATOMIC_RELEASE);
    *nowp = now;
    if (k == 0)
        return false;
    edge_out_commit_run(rt->out, 0, k, size);
    rt->puts += (unsigned)k;
    edge_in_i64_took(rt->in, k);
    return true;
}

/* Receive and process until input is complete or the stage stops. */
static void process_all(child_rt_t *rt)
{
    const mpx_stage_def_t *def = rt->st.pi->def;
    /* One reading of the clock per item serves the batching, the age of
     * what waits to be sent, and the control channel. */
    uint64_t now = ticks_now();
    for (;;) {
        if (rt->st.stop_self)
            return;
        mpx_item_t *it;
        edge_mark_t mark;
        int r;
        if (rt->st.pi->i64map && map_run(rt, &now)) {
            r = 3; /* items of a run, processed */
            goto next;
        }
        edge_in_time(rt->in, now);
        r = edge_in_next(rt->in, &it, &mark, rt->err, sizeof rt->err);
        if (r < 0)
            fail(rt, "%s", rt->err);
        if (r == 1 && rt->reorder) {
            int rc = reorder_take(rt->reorder, it, rt->err, sizeof rt->err);
            if (rc != 0)
                fail(rt, "%s", rt->err);
        } else if (r == 1) {
            if (rt->meta.dirty)
                meta_cur_reset(&rt->meta, it->meta, it->meta_size, it->nmeta);
            else {
                rt->meta.blk = it->meta;
                rt->meta.blk_size = it->meta_size;
                rt->meta.blk_n = it->nmeta;
            }
            note_in_hand(rt, it);
            handle_item(rt, it, now);
            __atomic_store_n(&rt->box->busy, 0, __ATOMIC_RELEASE);
        } else if (r == 2) {
            on_mark(rt, &mark);
        }
        if (r > 0)
            now = ticks_now();
    next:
        if (r > 0) {
            if (edge_out_closed(rt->out, 0))
                rt->st.stop_self = true;
            /* What waits in a batch is looked at every few microseconds,
             * the control channel every few milliseconds. */
            if (now - rt->tick_at >= TICK_TICKS) {
                rt->tick_at = now;
                int rc = edge_out_tick(rt->out, now);
                if (rc < 0 && rc != MPX_ESTOPPED)
                    fail(rt, "sending: %s", mpx_strerror(rc));
                if (now - rt->ctl_at >= CTL_TICKS)
                    poll_ctl_at(rt, now);
            }
            if (__builtin_expect(rt->recover_due, 0))
                recover(rt);
            continue;
        }
        if (edge_in_complete(rt->in))
            return;
        /* About to block: the stage may act on the pause, what it made
         * leaves now, and what it processed is confirmed when due, so
         * that nobody waits on us while we wait. */
        if (def->idle) {
            meta_cur_reset(&rt->meta, NULL, 0, 0);
            stage_begin(&rt->st, "idle");
            check_rc(rt, def->idle(&rt->st));
            if (rt->st.stop_self)
                return;
        }
        int rc = child_stamp_mark(rt);
        if (rc == 0)
            rc = edge_out_flush(rt->out);
        if (rc < 0 && rc != MPX_ESTOPPED)
            fail(rt, "sending: %s", mpx_strerror(rc));
        if (edge_out_closed(rt->out, 0)) {
            rt->st.stop_self = true;
            return;
        }
        edge_in_idle(rt->in);
        int w;
        while ((w = wait_input(rt)) == 1)
            edge_in_idle(rt->in);
        if (w < 0)
            fail(rt, "waiting for input: %s", zmq_strerror(errno));
        recover(rt);
        now = ticks_now();
    }
}

/* A stopped stage keeps taking (and discarding) its input until every
 * producer has ended, so that no producer ever waits on it. */
static void drain(child_rt_t *rt)
{
    edge_in_close(rt->in);
    set_state(rt, MPX_STATE_DRAINING);
    for (;;) {
        mpx_item_t *it;
        edge_mark_t mark;
        int r = edge_in_next(rt->in, &it, &mark, rt->err, sizeof rt->err);
        if (r < 0)
            fail(rt, "%s", rt->err);
        if (edge_in_complete(rt->in))
            return;
        if (r == 0 && wait_on(rt, edge_in_socket(rt->in), ZMQ_POLLIN, &rt->wait_in) != 0)
            fail(rt, "waiting for input: %s", zmq_strerror(errno));
        recover(rt);
    }
}

/* A chained stage at its end: everything it put is confirmed downstream
 * before it confirms the last of its input, and only then does its
 * end of stream leave (after it, the supervisor no longer replaces it).
 * (model: stage SETTLING in edge.pml's Consumer) */
static void settle_all(child_rt_t *rt)
{
    edge_in_settle_all(rt->in);
    while (edge_in_settling(rt->in)) {
        recover(rt);
        if (wait_on(rt, edge_out_socket(rt->out), ZMQ_POLLIN, &rt->wait_out) != 0)
            fail(rt, "waiting for confirmations: %s", zmq_strerror(errno));
        edge_in_settle(rt->in);
    }
    recover(rt);
}

static void report_done(child_rt_t *rt)
{
    uint64_t counts[5] = {rt->in ? edge_in_items(rt->in) : 0, edge_out_items(rt->out),
                          rt->in ? edge_in_dropped(rt->in) : 0, rt->failed,
                          edge_out_resent(rt->out)};
    if (ctl_send(rt, WIRE_DONE, counts, sizeof counts) != 0)
        leave(rt, CHILD_EXIT_SETUP_FAILED);
}

/* For the parent, should this process die with its work done. */
static void note_counts(child_rt_t *rt)
{
    rt->box->items_in = rt->in ? edge_in_items(rt->in) : 0;
    rt->box->items_out = edge_out_items(rt->out);
    rt->box->items_dropped = rt->in ? edge_in_dropped(rt->in) : 0;
}

/* End the output's stream, report, and wait to be let go. */
static _Noreturn void finish(child_rt_t *rt)
{
    if (!rt->box->stopped)
        note_counts(rt);
    rt->box->ended = 1;
    if (__builtin_expect(rt->crash_when_ended, 0))
        kill(getpid(), SIGKILL);
    int rc = edge_out_eos(rt->out);
    if (rc < 0)
        fail(rt, "sending end of stream: %s", mpx_strerror(rc));
    if (rt->in && !edge_in_complete(rt->in))
        drain(rt);

    /* One leaving its elastic group has consumers that go on: its DONE
     * says that each took its end of stream (the parent lets it go at
     * once), as theirs would for a stage at the end of the graph. */
    while (rt->leaving && !edge_out_ends_seen(rt->out)) {
        if (wait_on(rt, edge_out_socket(rt->out), ZMQ_POLLIN, NULL) != 0)
            fail(rt, "waiting for consumers to take the end: %s", zmq_strerror(errno));
        edge_out_poll(rt->out);
        recover(rt);
    }
    rt->phase = PHASE_END;
    rt->put_plain = false;
    /* A JOIN heard after our end went (while draining, say) owes the
     * joiner its end: sent now, for the wait below returns only when
     * another control message comes. */
    recover(rt);
    fflush(stdout);
    fflush(stderr);
    set_state(rt, MPX_STATE_DONE);
    report_done(rt);
    /* A consumer replaced meanwhile still needs what it had not confirmed,
     * and our end of stream; the counts change with that. */
    /* Told to leave after its DONE went (the two crossed): the parent lets
     * it go at once, so it waits for its consumers' word itself. */
    while (!rt->released || (rt->leaving && !edge_out_ends_seen(rt->out))) {
        /* A release alone ends no wait on two sockets: a short one then. */
        zmq_pollitem_t items[2] = {{rt->ctl, 0, ZMQ_POLLIN, 0},
                                   {edge_out_socket(rt->out), 0, ZMQ_POLLIN, 0}};
        poll_serving(rt, items, rt->leaving ? 2 : 1, NULL, rt->leaving ? 20 : -1);
        if (rt->leaving)
            edge_out_poll(rt->out);
        uint64_t resent = edge_out_resent(rt->out);
        recover(rt);
        if (edge_out_resent(rt->out) != resent)
            report_done(rt);
    }
    /* Released: everything this process sent has been confirmed, so
     * nothing is left for zmq to do; the kernel closes the rest. */
    leave(rt, 0);
}

/* The process this one replaces had finished, or had stopped: what it
 * took was processed and confirmed (or given up on purpose), so only its
 * end of stream may have been lost with it.  Setup and teardown do not
 * run again for nothing. */
static _Noreturn void end_again(child_rt_t *rt)
{
    if (child_before_put(rt) != 0)
        leave(rt, CHILD_EXIT_SETUP_FAILED);
    if (rt->in) {
        rt->box->stopped = 1;
        edge_in_close(rt->in);
    }
    rt->phase = PHASE_TEARDOWN;
    set_state(rt, MPX_STATE_TEARDOWN);
    finish(rt);
}

/* A new instance of an elastic group, before setup (which may put): it
 * waits until every producer has been heard of (lib/edge.h, Elastic
 * groups).  If every one had ended before it heard that this instance
 * joined, no consumer knows of it either (notices tell them): it then
 * sends nothing — not its setup's or teardown's items, not its end of
 * stream — and only reports.  (model: the void gate in elastic.pml) */
static void await_gate(child_rt_t *rt)
{
    int g;
    while ((g = edge_in_gate_scan(rt->in, rt->err, sizeof rt->err)) == EDGE_GATE_PENDING)
        if (wait_on(rt, edge_in_socket(rt->in), ZMQ_POLLIN, &rt->wait_in) != 0)
            fail(rt, "waiting for the producers' notices: %s", zmq_strerror(errno));
    if (g < 0)
        fail(rt, "%s", rt->err);
    if (g == EDGE_GATE_VOID) {
        edge_out_void(rt->out);
        if (child_before_put(rt) != 0)
            leave(rt, CHILD_EXIT_SETUP_FAILED);
        rt->phase = PHASE_TEARDOWN;
        finish(rt);
    }
}

_Noreturn void child_main(const child_args_t *a)
{
    take_identity(a);
    if (shared_stage_protect() != 0) {
        fprintf(stderr, "mpx: stage %s: cannot make read-only input read-only: %s\n",
                a->st.pi->name, strerror(errno));
        leave(NULL, CHILD_EXIT_SETUP_FAILED);
    }
    child_rt_t *rt = calloc(1, sizeof *rt);
    if (!rt)
        leave(rt, CHILD_EXIT_SETUP_FAILED);
    rt->plan = a->plan;
    rt->id = a->id;
    rt->gen = a->gen;
    rt->box = a->box;
    rt->dir = a->dir;
    rt->st = a->st;
    rt->st.rt = rt;
    rt->state = MPX_STATE_STARTING;
    rt->stats_ns = a->stats_ms > 0 ? (uint64_t)a->stats_ms * 1000000u : 0;
    rt->pool_min = rt->plan->pool ? a->st.pi->pool_min : SIZE_MAX;
    item_pool_identity(rt->plan->pool, (pool_holder_t){(uint32_t)rt->id, rt->gen});
    rt->stats_at = mono_ns();
    const mpx_stage_def_t *def = rt->st.pi->def;
    if ((rt->stamp = rt->st.pi->stamp)) {
        rt->stamp_klen = strlen(rt->stamp->key);
        rt->stamp_entry = wire_meta_entry_size(rt->stamp_klen, 8);
    }
    if (rt->st.pi->reorder) {
        if (!(rt->reorder = malloc(sizeof *rt->reorder)))
            leave(rt, CHILD_EXIT_SETUP_FAILED);
        reorder_init(rt->reorder, rt->st.pi->reorder);
    }
    keep_heap(rt->plan, rt->id);
    apply_env(rt->st.pi);
    open_sockets(rt, a);
    if (a->resume != CHILD_FRESH && a->resume != CHILD_JOIN)
        end_again(rt);

    if (a->resume == CHILD_JOIN && rt->in)
        await_gate(rt);

    rt->phase = PHASE_SETUP;
    if (def->setup) {
        stage_begin(&rt->st, "setup");
        check_rc(rt, def->setup(&rt->st));
    }
    /* Nothing leaves before every stage is set up, not even an end of
     * stream: a graph that puts nothing must not finish before start()
     * has let it go. */
    if (child_before_put(rt) != 0)
        leave(rt, CHILD_EXIT_SETUP_FAILED);
    recover(rt); /* an end of stream owed from the start, say */

    rt->phase = PHASE_PROCESS;
    if (rt->in)
        process_all(rt);
    if (rt->reorder) {
        /* Every path has ended: what the Seq kept is complete. */
        if (!rt->st.stop_self && edge_in_complete(rt->in)) {
            int rc = reorder_flush_all(rt->reorder, deliver, rt);
            if (rc < 0 && rc != MPX_ESTOPPED)
                fail(rt, "seq: %s", mpx_strerror(rc));
        }
        reorder_free(rt->reorder);
        free(rt->reorder);
        rt->reorder = NULL;
    }

    /* A stage that stopped early closes its input before tearing down, so
     * that producers stop sending to it at once.  What it put is confirmed
     * first: after the close, what it took is no longer sent again. */
    if (rt->in && !edge_in_complete(rt->in)) {
        if (rt->st.pi->recoverable)
            settle_all(rt);
        note_counts(rt);
        rt->box->stopped = 1;
        edge_in_close(rt->in);
    }

    rt->phase = PHASE_TEARDOWN;
    rt->box->at_end = 1;
    set_state(rt, MPX_STATE_TEARDOWN);
    meta_cur_reset(&rt->meta, NULL, 0, 0);
    if (def->teardown) {
        stage_begin(&rt->st, "teardown");
        check_rc(rt, def->teardown(&rt->st));
    }
    if (rt->in && rt->st.pi->recoverable)
        settle_all(rt);
    finish(rt);
}
