/* lib/supervisor.c — the parent's side of a running graph (see
 * supervisor.h).
 *
 * The parent creates no zmq context before all stages are forked (a child
 * must never inherit a live one).  It learns of a child's death at once
 * through a pidfd polled with the sockets, reaps only its own children
 * (never waitpid(-1), which would steal the application's), and releases a
 * finished producer only when every consumer it feeds has reported done,
 * which is what makes the end of every stream arrive.
 */
#define _GNU_SOURCE
#include "supervisor.h"
#include "stats.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "mpx/error.h"
#include "meta.h"
#include "mpx/graph.h"
#include "mpx/monitor.h"
#include "forksrv.h"
#include "grow.h"
#include "pool.h"
#include "ready.h"
#include "reorder.h"
#include "rundir.h"
#include "ticks.h"
#include "wire.h"

/* A replacement the fork server could not make is forked from this
 * process, whose zmq threads may hold a lock at that moment that the child
 * then waits on forever (seen with AddressSanitizer's allocator).  One
 * that has not said hello, which it does before any code of the stage
 * runs, after this long is killed and replaced again. */
#define REPLACEMENT_START_MS 5000

/* How long stopped stages get to leave before they are killed. */
#define STOP_GRACE_MS 300
/* Deaths in a row after the input ended (teardown, exit) that are
 * replaced; the next fails the run. */
#define ENDED_DEATHS_MAX 5

/* Without pidfds, how often children are checked for. */
#define REAP_POLL_MS 50

/* Record the first failure; later ones are its consequences. */
void sup_record(struct mpx_run *r, int status, const char *fmt, ...)
{
    if (r->status != 0)
        return;
    r->status = status;
    r->failing = true;
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    free(r->error);
    r->error = msg;
}

/* Watch the process of instance i for its exit: a pidfd in the epoll
 * set, or, where the kernel has no pidfds, a poll of waitpid. */
static void watch(struct mpx_run *r, int i)
{
    run_child_t *c = &r->ch[i];
    c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
    if (c->pidfd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (r->epfd >= 0 && epoll_ctl(r->epfd, EPOLL_CTL_ADD, c->pidfd, &ev) == 0)
            return;
        close(c->pidfd);
        c->pidfd = -1;
    }
    r->polling = true;
}

static void unwatch(struct mpx_run *r, run_child_t *c)
{
    if (c->pidfd >= 0) {
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, c->pidfd, NULL);
        close(c->pidfd);
        c->pidfd = -1;
    }
}

static const char *inst_label(struct mpx_run *r, int i, char *buf, size_t cap)
{
    return plan_inst_label(&r->plan->inst[i], buf, cap);
}

static int ctl_send_with(struct mpx_run *r, int i, wire_type_t type, const void *payload,
                         size_t len)
{
    uint8_t ident[EDGE_CTL_RID_SIZE];
    edge_ctl_rid(ident, i);
    uint8_t buf[WIRE_HEAD + sizeof(wire_restart_t) + 512];
    len = len < sizeof buf - WIRE_HEAD ? len : sizeof buf - WIRE_HEAD;
    /* Addressed to the current process: a connected peer's queue is kept
     * across reconnects (lib/xport.h), so what was queued for a process
     * that died reaches its replacement, which must ignore it. */
    wire_head_put(buf, &(wire_head_t){(uint8_t)type, 0, (uint32_t)r->n, 0, r->ch[i].gen});
    if (len)
        memcpy(buf + WIRE_HEAD, payload, len);
    if (xport_send_buf(r->ctl, ident, sizeof ident, buf, WIRE_HEAD + len) != 0)
        return MPX_ESYS;
    return 0;
}

static int ctl_send(struct mpx_run *r, int i, wire_type_t type)
{
    return ctl_send_with(r, i, type, NULL, 0);
}

/* Address process i's control channel (edge.h); already a peer is
 * fine (a process that died there is still one, connected again when a
 * process listens at its path).  0, or MPX_ESYS with errno. */
static int ctl_connect(struct mpx_run *r, int i)
{
    char ep[300];
    uint8_t ident[EDGE_CTL_RID_SIZE];
    edge_ctl_rid(ident, i);
    if (edge_endpoint(ep, sizeof ep, r->dir, 'c', i, 0) != 0) {
        errno = ENAMETOOLONG;
        return MPX_ESYS;
    }
    if (xport_connect(r->ctl, ep + strlen("ipc://"), ident, sizeof ident) != 0 && errno != EEXIST)
        return MPX_ESYS;
    return 0;
}

static void stop_child(struct mpx_run *r, int i)
{
    run_child_t *c = &r->ch[i];
    if (c->exited || c->stop_sent || !c->hello)
        return;
    if (ctl_send(r, i, WIRE_STOP) == 0)
        c->stop_sent = true;
    else
        r->stop_owed = true;
}

/* Each producer counts its consumers not yet done (run_child_t.pending),
 * so that releasing is constant work per message: a source feeding
 * hundreds of workers is not checked against all of them at each one's
 * DONE. */
static void try_release(struct mpx_run *r, int i)
{
    run_child_t *c = &r->ch[i];
    if (!c->done || c->released || c->exited || r->stopping || c->pending > 0)
        return;
    if (ctl_send(r, i, WIRE_RELEASE) == 0)
        c->released = true;
}

/* Consumer c (r->n: the sink) became done, or (done false) a replacement
 * took the place of one that was: its producers count it again. */
static void consumer_done(struct mpx_run *r, int c, bool done)
{
    const plan_inst_t *pi = &r->plan->inst[c];
    for (int k = 0; k < pi->nproducers; k++) {
        int p = pi->producers[k];
        if (p == r->n)
            continue; /* the program's input */
        r->ch[p].pending += done ? -1 : 1;
        if (done)
            try_release(r, p);
    }
}

static void send_restarts_to(struct mpx_run *r, int p);
static void send_joins_to(struct mpx_run *r, int p);

static void on_ctl(struct mpx_run *r, int i, const uint8_t *data, size_t len)
{
    run_child_t *c = &r->ch[i];
    wire_head_t h;
    char label[160];
    if (wire_head_get(data, len, &h) != 0 || h.sender != (uint32_t)i) {
        sup_record(r, MPX_EPROTO, "malformed control message from %s",
               inst_label(r, i, label, sizeof label));
        return;
    }
    if (h.gen != c->gen)
        return; /* from a process since replaced */
    switch (h.type) {
    case WIRE_HELLO:
        c->hello = true;
        if (r->stopping)
            stop_child(r, i);
        else if (c->gen > 0 || c->owe_restarts)
            send_restarts_to(r, i); /* before its GO: it has sent nothing yet */
        if (!r->stopping && r->grow)
            send_joins_to(r, i);
        break;
    case WIRE_READY:
        if (!c->ready) {
            c->ready = true;
            r->nready++;
            /* A replacement joins a graph already under way. */
            if (r->state == RUN_RUNNING)
                ctl_send(r, i, WIRE_GO);
            if (c->slot == SLOT_JOINING) {
                c->slot = SLOT_RUNS;
                grow_changed(r, i, true);
            } else if (c->slot == SLOT_LEAVING && ctl_send(r, i, WIRE_LEAVE) != 0) {
                /* The replacement of one that was leaving leaves too. */
                c->slot = SLOT_RUNS;
                grow_changed(r, i, false);
            }
        }
        break;
    case WIRE_DONE:
        if (len >= WIRE_HEAD + 40 && (c->resume == CHILD_FRESH || c->resume == CHILD_JOIN)) {
            uint64_t v[5];
            memcpy(v, data + WIRE_HEAD, sizeof v);
            c->items_in = v[0];
            c->items_out = v[1];
            c->items_dropped = v[2];
            c->items_failed = c->failed_before + v[3];
            c->items_resent = c->resent_before + v[4];
        }
        if (!c->done) {
            c->done = true;
            /* One that left its elastic group: its consumers took its end
             * (child.c finish), and they go on without it. */
            if (c->slot == SLOT_LEAVING && !c->released && ctl_send(r, i, WIRE_RELEASE) == 0)
                c->released = true;
            try_release(r, i);
            consumer_done(r, i, true);
        } else {
            /* Again, after sending again (child.c finish): a release that
             * could not be sent before is tried again. */
            try_release(r, i);
            const plan_inst_t *pi = &r->plan->inst[i];
            for (int k = 0; k < pi->nproducers; k++)
                if (pi->producers[k] < r->n)
                    try_release(r, pi->producers[k]);
        }
        break;
    case WIRE_STATS:
        stats_report(r, i, data, len);
        break;
    case WIRE_ERROR: {
        size_t tlen = len > WIRE_HEAD + 4 ? len - WIRE_HEAD - 4 : 0;
        sup_record(r, MPX_ESTAGE, "%s (pid %ld): %.*s", inst_label(r, i, label, sizeof label),
               (long)c->pid, (int)tlen, (const char *)data + WIRE_HEAD + 4);
        break;
    }
    default:
        sup_record(r, MPX_EPROTO, "unknown control message %u from %s", h.type,
               inst_label(r, i, label, sizeof label));
    }
}

static void read_ctl(struct mpx_run *r)
{
    if (!r->ctl)
        return;
    zmq_msg_t body;
    zmq_msg_init(&body);
    uint8_t id[XPORT_RID_MAX];
    size_t id_len;
    while (xport_recv(r->ctl, id, &id_len, &body) == 0) {
        /* Only the processes we connected to are peers (each under the
         * id edge_ctl_rid gives it). */
        uint32_t i = UINT32_MAX;
        if (id_len == EDGE_CTL_RID_SIZE && id[0] == 'c')
            memcpy(&i, id + 1, 4);
        if (i < (uint32_t)r->n)
            on_ctl(r, (int)i, zmq_msg_data(&body), zmq_msg_size(&body));
    }
    zmq_msg_close(&body);
}

static void describe_exit(char *buf, size_t cap, int status)
{
    if (WIFSIGNALED(status))
        snprintf(buf, cap, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_EXIT_SETUP_FAILED)
        snprintf(buf, cap, "could not start (exit status %d; see its message on stderr)",
                 WEXITSTATUS(status));
    else
        snprintf(buf, cap, "exited with status %d before it finished", WEXITSTATUS(status));
}

static int fork_one(struct mpx_run *r, int i, const int *close_fds, int nclose,
                    child_resume_t resume, const uint32_t *gens, int ctl_fd, int inbox_fd);

static int spawn_one(struct mpx_run *r, int i, child_resume_t resume);
static void reap_late(struct mpx_run *r, int wait_ms);
static int open_monitor_socket(struct mpx_run *r);
static void check_timeouts(struct mpx_run *r);

/* "while processing item 7 {id: 6}", from what the child noted before it
 * died; "" when it had no item in hand. */
static const char *item_in_hand(const struct mpx_run *r, int i, char *buf, size_t cap)
{
    const blackbox_t *b = &r->boxes[i];
    buf[0] = 0;
    if (!__atomic_load_n(&b->busy, __ATOMIC_ACQUIRE))
        return buf;
    int n = snprintf(buf, cap, " while processing ");
    if (n > 0 && (size_t)n < cap)
        meta_describe_item(b->item_no, b->meta, b->meta_size, b->nmeta, b->cut, buf + n,
                           cap - (size_t)n);
    return buf;
}

/* A descriptor as it was at fork time: its number may be reused since. */
struct fd_id {
    int fd;
    dev_t dev;
    ino_t ino;
};

/* The descriptors this process has open now that it had not when the
 * stages were forked (its zmq context, pidfds, the application's later
 * files, also under a number reused since): a replacement closes them, to
 * start as its siblings did.  With `ids`, every one is noted there. */
static int *fds_since_fork(const struct mpx_run *r, int *n, struct fd_id **ids)
{
    *n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return NULL;
    size_t cap = 64;
    int *out = malloc(cap * sizeof *out);
    struct fd_id *all = ids ? malloc(cap * sizeof *all) : NULL;
    struct dirent *e;
    while (out && (!ids || all) && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        int fd = atoi(e->d_name);
        struct stat st;
        if (fd == dirfd(d) || fstat(fd, &st) != 0)
            continue;
        bool old = false;
        for (int k = 0; k < r->nfds_at_fork && !old; k++)
            old = r->fds_at_fork[k].fd == fd && r->fds_at_fork[k].dev == st.st_dev &&
                  r->fds_at_fork[k].ino == st.st_ino;
        if (old)
            continue;
        if ((size_t)*n == cap) {
            int *more = realloc(out, 2 * cap * sizeof *more);
            if (!more)
                break;
            out = more;
            if (ids) {
                struct fd_id *m = realloc(all, 2 * cap * sizeof *m);
                if (!m)
                    break;
                all = m;
            }
            cap *= 2;
        }
        if (ids)
            all[*n] = (struct fd_id){fd, st.st_dev, st.st_ino};
        out[(*n)++] = fd;
    }
    closedir(d);
    if (ids)
        *ids = all;
    return out;
}

/* Tell producer p of consumer k's latest restart.  One that cannot hear
 * it now (a replacement not yet connected) is told again when it says
 * hello. */
static void send_restart(struct mpx_run *r, int p, int k)
{
    const run_child_t *ck = &r->ch[k];
    uint8_t payload[sizeof ck->restart + sizeof ck->restart_why];
    wire_restart_t m = ck->restart;
    if (ck->restart_hand != p)
        m.has_hand = 0;
    size_t wl = strlen(ck->restart_why);
    if (p == r->n) {
        /* The program's input is ours: told at once, sent again as credit
         * allows (feed.c). */
        feed_restart(r, &m, ck->restart_why, wl);
        return;
    }
    memcpy(payload, &m, sizeof m);
    memcpy(payload + sizeof m, ck->restart_why, wl);
    if (ctl_send_with(r, p, WIRE_RESTART, payload, sizeof m + wl) != 0)
        r->ch[p].owe_restarts = r->owing = true;
}

/* Every restart of p's consumers, again: producers ignore what they knew. */
static void send_restarts_to(struct mpx_run *r, int p)
{
    const plan_inst_t *pi = &r->plan->inst[p];
    r->ch[p].owe_restarts = false;
    for (int k = 0; k < pi->nconsumers; k++)
        if (pi->consumers[k] < r->n && r->ch[pi->consumers[k]].gen > 0)
            send_restart(r, p, pi->consumers[k]);
}

/* A new process for instance i, in its current generation: from the fork
 * server, or forked from here when that could not make it. */
static int make_process(struct mpx_run *r, int i, child_resume_t resume)
{
    int rc = spawn_one(r, i, resume);
    if (rc != 0) {
        int nclose = 0;
        int *close_fds = fds_since_fork(r, &nclose, NULL);
        uint32_t *gens = current_gens(r);
        rc = gens ? fork_one(r, i, close_fds, nclose, resume, gens, -1, -1) : r->status;
        if (rc == 0)
            watch(r, i);
        free(gens);
        free(close_fds);
    }
    return rc;
}

/* Fork a replacement for instance i and tell its producers, who send it
 * (or its siblings) again what the dead process had not confirmed.  A
 * process that had finished needs nothing from them (child_args_t); what
 * was sent to one that had stopped is dropped by its replacement, or taken
 * by its siblings.  (model: the death step of edge.pml's Supervisor) */
static void restart_child(struct mpx_run *r, int i, const char *why, child_resume_t resume)
{
    run_child_t *c = &r->ch[i];
    blackbox_t *b = &r->boxes[i];
    wire_restart_t msg = {.consumer = (uint32_t)i, .gen = c->gen + 1};
    if (__atomic_load_n(&b->busy, __ATOMIC_ACQUIRE)) {
        msg.has_hand = 1;
        msg.hand_gen = b->prod_gen;
        msg.hand_rec = b->rec;
    }
    c->restart = msg;
    c->restart_hand = msg.has_hand ? (int)b->producer : -1;
    snprintf(c->restart_why, sizeof c->restart_why, "%s", why);
    c->items_failed = c->failed_before += b->failed;
    c->items_resent = c->resent_before += b->resent;
    /* The counts of the process that did the work (from its DONE when it
     * got that far); a replacement that only ends the stream again has
     * none of its own. */
    if (resume != CHILD_FRESH && c->resume == CHILD_FRESH && !c->done) {
        c->items_in = b->items_in;
        c->items_out = b->items_out;
        c->items_dropped = b->items_dropped;
    }
    memset(b, 0, offsetof(blackbox_t, spawn));
    c->gen++;
    c->restarts++;
    if (c->ready)
        r->nready--;
    if (c->done)
        consumer_done(r, i, false);
    if (c->exited)
        r->nexited--;
    r->restarted = true;
    c->hello = c->ready = c->done = c->released = c->stop_sent = c->exited = false;
    c->timed_out = c->wedged = false;
    c->resume = resume;
    c->watch_no = UINT64_MAX;
    int rc = make_process(r, i, resume);
    c->forked_ms = mono_ms(); /* after a server that did not answer */
    if (rc != 0) {
        c->exited = true;
        r->nexited++;
        return;
    }
    if (resume == CHILD_FINISHED)
        return;
    const plan_inst_t *pi = &r->plan->inst[i];
    /* A producer that has exited had nothing left for it. */
    for (int k = 0; k < pi->nproducers; k++)
        send_restart(r, pi->producers[k], i);
}

/* Child i died before it finished: replace it when its stage's policy
 * asks for that and the run goes on, else the run fails saying how. */
static void child_died(struct mpx_run *r, int i, const char *how)
{
    run_child_t *c = &r->ch[i];
    const plan_inst_t *pi = &r->plan->inst[i];
    char label[160], hand[700], what[300];
    item_in_hand(r, i, hand, sizeof hand);
    if (c->timed_out)
        snprintf(what, sizeof what, "exceeded its per-item timeout of %d ms and was killed",
                 pi->timeout_ms);
    else if (c->wedged)
        snprintf(what, sizeof what, "was killed: it had not started %d ms after it was forked",
                 REPLACEMENT_START_MS);
    else
        snprintf(what, sizeof what, "%s", how);
    inst_label(r, i, label, sizeof label);
    const blackbox_t *b = &r->boxes[i];
    bool can = pi->recoverable && r->state == RUN_RUNNING && !r->failing && !r->stopping;
    /* Once done it may have no producer left; a stopped one that is not
     * done still has them (it drains until their end of stream).  A
     * replacement that dies takes up the same part as it had. */
    child_resume_t resume = c->done                                  ? CHILD_FINISHED
                            : c->resume == CHILD_FINISHED              ? CHILD_FINISHED
                            : b->stopped || c->resume == CHILD_STOPPED ? CHILD_STOPPED
                            : b->ended                                 ? CHILD_FINISHED
                                                                       : CHILD_FRESH;
    /* One that dies again and again in setup would be replaced forever;
     * so would one that dies each time after its input ended (in
     * teardown, or on its way out), its replacement taking again only
     * what was not confirmed and dying the same way.  (Deaths while it
     * processes are bounded by the items' own failure counts.) */
    c->barren = c->ready ? 0 : c->barren + 1;
    c->ended_deaths = b->at_end ? c->ended_deaths + 1 : c->ready ? 0 : c->ended_deaths;
    if (can && (c->barren >= 3 || c->ended_deaths >= ENDED_DEATHS_MAX)) {
        bool setup = c->barren >= 3;
        sup_record(r, MPX_ECRASH, "%s (pid %ld) %s%s; it died %d times in a row %s, so it is "
               "not replaced again",
               label, (long)c->pid, what, hand, setup ? c->barren : c->ended_deaths,
               setup ? "before its setup finished" : "after its input ended");
        return;
    }
    if (!can) {
        sup_record(r, MPX_ECRASH, "%s (pid %ld) %s%s", label, (long)c->pid, what, hand);
        return;
    }
    fprintf(stderr, "mpx: %s (pid %ld) %s%s; starting a replacement\n", label, (long)c->pid,
            what, hand);
    restart_child(r, i, what, resume);
}

/* Reap child i if it has exited.  `wait` bounds how long to wait for it
 * (milliseconds; 0: not at all).  A child some other waitpid took — the
 * application ignores SIGCHLD, or reaps in a handler — is gone all the
 * same; only its status is lost. */
static void reap(struct mpx_run *r, int i, int wait)
{
    run_child_t *c = &r->ch[i];
    if (c->exited)
        return;
    if (wait > 0 && c->pidfd >= 0) {
        /* Not a blocking wait4: with SIGCHLD ignored it would wait for
         * every child of the application. */
        struct pollfd p = {c->pidfd, POLLIN, 0};
        while (poll(&p, 1, wait) < 0 && errno == EINTR)
            ;
    }
    int status = 0;
    struct rusage ru = {0};
    pid_t p;
    long deadline = mono_ms() + wait;
    for (;;) {
        p = wait4(c->pid, &status, WNOHANG, &ru);
        if (p != 0 && !(p < 0 && errno == EINTR))
            break;
        if (p == 0 && (c->pidfd >= 0 || mono_ms() >= deadline))
            return; /* still running */
        if (p == 0)
            usleep(1000);
    }
    bool taken = p < 0 && errno == ECHILD;
    if (p != c->pid && !taken)
        return;
    c->exited = true;
    r->nexited++;
    /* Whatever it held of the pool, at whatever instant it ended, is let
     * go now: before a replacement (a new generation) can start. */
    if (r->plan->pool)
        (void)pool_reclaim(r->plan->pool, (pool_holder_t){(uint32_t)i, c->gen});
    c->wait_status = status;
    c->max_rss_kib = ru.ru_maxrss;
    unwatch(r, c);
    char label[160], how[200];
    if (taken) {
        if (!(c->released || c->stop_sent))
            sup_record(r, MPX_ECRASH,
                   "%s (pid %ld) ended before it finished; its exit status was taken by "
                   "another wait in this process (is SIGCHLD ignored or handled?)",
                   inst_label(r, i, label, sizeof label), (long)c->pid);
        return;
    }
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!(clean && (c->released || c->stop_sent))) {
        describe_exit(how, sizeof how, status);
        child_died(r, i, how);
    } else {
        if (r->ctl) {
            /* Gone as told: left connected, its endpoint would be tried
             * again and again until the run ends (a dead one's stays, for
             * its replacement). */
            uint8_t ident[EDGE_CTL_RID_SIZE];
            edge_ctl_rid(ident, i);
            (void)xport_disconnect(r->ctl, ident, sizeof ident);
        }
        if (c->slot == SLOT_LEAVING) {
            c->slot = SLOT_OFF;
            grow_changed(r, i, true);
        }
    }
}

/* Kill a child through its pidfd when there is one, so that a pid reused
 * after an unnoticed exit is never hit. */
static void kill_child(run_child_t *c, int sig)
{
    if (c->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, c->pidfd, sig, NULL, 0);
    else
        kill(c->pid, sig);
}

static bool all_exited(const struct mpx_run *r) { return r->nexited == r->n; }

/* Every how many milliseconds check_timeouts runs (0: never): for the
 * per-item timeouts, and, once there are replacements, to find those that
 * do not start. */
static int check_every(const struct mpx_run *r)
{
    int check_ms = r->timeout_check_ms;
    for (int i = 0; r->restarted && i < r->n && check_ms != 100; i++)
        if (r->ch[i].restarts && !r->ch[i].hello && !r->ch[i].exited)
            check_ms = check_ms && check_ms < 100 ? check_ms : 100;
    return check_ms;
}

/* The least of timeout_ms (-1: none) and the time until the supervisor
 * has work of its own: a stats snapshot, a timeout check, a look for
 * exits that no pidfd announces.  -1: none. */
static long wake_in(struct mpx_run *r, long timeout_ms, int check_ms)
{
    long due = stats_timeout(r);
    if (due >= 0 && (timeout_ms < 0 || due < timeout_ms))
        timeout_ms = due;
    due = r->grow && r->state == RUN_RUNNING ? grow_timeout(r) : -1;
    if (due >= 0 && (timeout_ms < 0 || due < timeout_ms))
        timeout_ms = due;
    if (r->polling && (timeout_ms < 0 || timeout_ms > REAP_POLL_MS))
        timeout_ms = REAP_POLL_MS;
    if (check_ms) {
        long left = r->next_check_ms - mono_ms();
        left = left < 0 ? 0 : left > check_ms ? check_ms : left;
        if (timeout_ms < 0 || timeout_ms > left)
            timeout_ms = left;
    }
    return timeout_ms;
}

/* Wait up to timeout_ms (-1: no limit) for a control message, a child's
 * exit, or (want_sink) output, and handle what came.  The children's
 * pidfds are behind one epoll descriptor, so a wake-up costs the same
 * whatever the number of children, and finds the ones that exited
 * without looking at the others.  Returns true when a signal the program
 * handles cut the wait short (what was due is done all the same). */
static bool pump(struct mpx_run *r, bool want_sink, long timeout_ms)
{
    zmq_pollitem_t items[5];
    int k = 0;
    items[k++] = (zmq_pollitem_t){r->ctl, 0, ZMQ_POLLIN, 0};
    /* The program's input goes before a wait (all of it when the wait may
     * be long); what lacks credit wakes us when credit comes. */
    bool feeding = want_sink && feed_service(r, timeout_ms != 0);
    /* What those stages send back is read during any wait, not only one
     * for credit: once every one of them has stopped, the input ends
     * (feed_service), and so can the graph the program waits on. */
    int feed_at = -1;
    if (want_sink && r->feed && (feeding || !r->input_ended)) {
        feed_at = k;
        items[k++] = (zmq_pollitem_t){feed_socket(r), 0, ZMQ_POLLIN, 0};
    } else if (r->feed && edge_out_unwritten(r->feed)) {
        /* Only to be written to when the stages read: never "ready". */
        items[k++] = (zmq_pollitem_t){feed_socket(r), 0, 0, 0};
    }
    if (want_sink && r->sink && !r->sink_complete)
        items[k++] = (zmq_pollitem_t){edge_in_socket(r->sink), 0, ZMQ_POLLIN, 0};
    else if (r->sink && edge_in_unwritten(r->sink))
        items[k++] = (zmq_pollitem_t){edge_in_socket(r->sink), 0, 0, 0};
    /* New monitors' subscriptions wake us: stats_tick answers them.
     * Before the first, its connection does. */
    int listen_at = -1;
    if (stats_socket(r))
        items[k++] = (zmq_pollitem_t){stats_socket(r), 0, ZMQ_POLLIN, 0};
    else if (stats_listener(r) >= 0) {
        listen_at = k;
        items[k++] = (zmq_pollitem_t){NULL, stats_listener(r), ZMQ_POLLIN, 0};
    }
    int ep_at = -1;
    if (r->epfd >= 0) {
        ep_at = k;
        items[k++] = (zmq_pollitem_t){NULL, r->epfd, ZMQ_POLLIN, 0};
    }
    int check_ms = check_every(r);
    int n = edge_poll(items, k, wake_in(r, timeout_ms, check_ms));
    /* The parent installs no handler: a signal that interrupts it is the
     * program's. */
    bool interrupted = n < 0 && errno == EINTR;
    if (n < 0 && !interrupted) {
        sup_record(r, MPX_ESYS, "waiting: %s", zmq_strerror(errno));
        return false;
    }
    read_ctl(r);
    if (n > 0 && listen_at >= 0 && items[listen_at].revents && open_monitor_socket(r) != 0)
        return false;
    if (n > 0 && feed_at >= 0 && items[feed_at].revents) {
        edge_out_poll(r->feed);
        feeding = true;
    }
    if (feeding)
        feed_service(r, timeout_ms != 0);
    if (r->owing) {
        r->owing = false;
        for (int i = 0; i < r->n; i++) {
            if (r->ch[i].owe_restarts && r->ch[i].hello && !r->ch[i].exited)
                send_restarts_to(r, i);
            else if (r->ch[i].owe_restarts)
                r->owing = true;
            if (r->ch[i].owe_joins && r->ch[i].hello && !r->ch[i].exited)
                send_joins_to(r, i);
            else if (r->ch[i].owe_joins)
                r->owing = true;
        }
    }
    if (r->grow && r->state == RUN_RUNNING)
        grow_tick(r);
    if (r->gave_up)
        reap_late(r, 0);
    stats_tick(r);
    /* Every check_ms, not at every message: the check looks at every
     * child. */
    if (check_ms && mono_ms() >= r->next_check_ms) {
        check_timeouts(r);
        r->next_check_ms = mono_ms() + check_ms;
    }
    if (n > 0 && ep_at >= 0 && items[ep_at].revents) {
        struct epoll_event ev[64];
        int got;
        do {
            while ((got = epoll_wait(r->epfd, ev, 64, 0)) < 0 && errno == EINTR)
                ;
            for (int j = 0; j < got; j++)
                reap(r, (int)ev[j].data.u32, 0);
        } while (got == 64);
    }
    if (r->polling)
        for (int i = 0; i < r->n; i++)
            if (r->ch[i].pidfd < 0 && r->ch[i].pid > 0)
                reap(r, i, 0);
    return interrupted;
}

/* The output's socket and memory, and the context that socket needs,
 * once the program no longer holds an item from them. */
static void close_output(struct mpx_run *r)
{
    edge_in_destroy(&r->sink);
    if (r->zctx) {
        zmq_ctx_term(r->zctx);
        r->zctx = NULL;
    }
}

/* Close sockets, remove the directory, finalize: the end of every run.
 * An item the program holds (the run failed or was stopped while it
 * did) stays valid until its next poll, next, join or destroy
 * (release closes the output then). */
static void reorder_end(struct mpx_run *r);

static void end_run(struct mpx_run *r)
{
    read_ctl(r);
    stats_end(r);
    r->stash = NULL; /* taken by dispatch, never handed out */
    reorder_end(r);
    xport_destroy(&r->ctl);
    feed_close(r);
    if (!r->holding)
        close_output(r);
    forksrv_stop(&r->forks);
    reap_late(r, 1000);
    if (r->have_dir) {
        rundir_remove(r->dir);
        r->have_dir = false;
    }
    if (r->sink_listen >= 0) {
        close(r->sink_listen);
        r->sink_listen = -1;
    }
    for (int i = 0; i < r->n; i++) {
        run_child_t *c = &r->ch[i];
        unwatch(r, c);
        if (c->initialized && c->st.pi->def->finalize) {
            stage_begin(&c->st, "finalize");
            c->st.pi->def->finalize(&c->st);
            /* Too late to put: a run that succeeded fails with it. */
            char label[160], buf[512];
            const char *why = stage_failure(&c->st, 0, buf, sizeof buf);
            c->st.callback = NULL;
            if (why)
                sup_record(r, MPX_ESTAGE, "%s: finalize failed: %s",
                       inst_label(r, i, label, sizeof label), why);
        }
        c->initialized = false;
        free(c->st.fail_msg);
        c->st.fail_msg = NULL;
    }
    if (r->epfd >= 0) {
        close(r->epfd);
        r->epfd = -1;
    }
    r->state = RUN_ENDED;
    /* The end is news for the program, for good. */
    if (r->ready)
        ready_set(r->ready, true, -1);
}

void sup_stop(struct mpx_run *r, int status, const char *msg)
{
    if (r->state == RUN_ENDED || r->state == RUN_NEW)
        return;
    if (status != 0)
        sup_record(r, status, "%s", msg ? msg : mpx_strerror(status));
    r->stopping = true;
    if (r->ctl) {
        for (int i = 0; i < r->n; i++)
            stop_child(r, i);
        long deadline = mono_ms() + STOP_GRACE_MS;
        /* Those that say hello meanwhile are told at once (on_ctl); those
         * a stop could not be sent to, again at each turn. */
        for (long left; !all_exited(r) && (left = deadline - mono_ms()) > 0;) {
            pump(r, false, left);
            bool owed = r->stop_owed;
            r->stop_owed = false;
            for (int i = 0; owed && i < r->n; i++)
                stop_child(r, i);
        }
    }
    for (int i = 0; i < r->n; i++)
        if (!r->ch[i].exited && r->ch[i].pid > 0) {
            r->ch[i].stop_sent = true; /* killed on purpose: not a crash */
            kill_child(&r->ch[i], SIGKILL);
        }
    for (int i = 0; i < r->n; i++)
        if (r->ch[i].pid > 0)
            reap(r, i, 5000);
    end_run(r);
}

static int initialize_all(struct mpx_run *r)
{
    for (int i = 0; i < r->n; i++) {
        run_child_t *c = &r->ch[i];
        const plan_inst_t *pi = &r->plan->inst[i];
        c->pidfd = -1;
        c->st.plan = r->plan;
        c->st.id = i;
        c->st.pi = pi;
        if (pi->def->state_size) {
            c->st.state = calloc(1, pi->def->state_size);
            if (!c->st.state) {
                sup_record(r, MPX_ENOMEM, "out of memory for the state of stage '%s'", pi->name);
                return r->status;
            }
        }
        if (pi->def->initialize) {
            stage_begin(&c->st, "initialize");
            int rc = pi->def->initialize(&c->st);
            /* One that put and went on took what finalize releases. */
            c->initialized = rc == 0;
            char label[160], buf[512];
            const char *why = stage_failure(&c->st, rc, buf, sizeof buf);
            c->st.callback = NULL;
            if (why) {
                sup_record(r, MPX_ESTAGE, "%s: initialize failed: %s",
                       inst_label(r, i, label, sizeof label), why);
                return r->status;
            }
        }
        c->initialized = true;
    }
    return 0;
}

/* How often a stage process reports: as the monitor asks, and often
 * enough for an elastic group's controller. */
static int stats_ms_for(const struct mpx_run *r)
{
    int ms = r->root->mon.interval_ms > 0 ? r->root->mon.interval_ms : MPX_STATS_INTERVAL_MS;
    return r->grow && ms > GROW_TICK_MS ? GROW_TICK_MS : ms;
}

/* What the process of instance i starts from; parent: the supervisor's
 * pid. */
static child_args_t args_for(const struct mpx_run *r, int i, uint32_t gen, child_resume_t resume,
                             const uint32_t *gens, pid_t parent, const int *close_fds,
                             int nclose)
{
    return (child_args_t){
        .plan = r->plan,
        .id = i,
        .gen = gen,
        .box = &r->boxes[i],
        .dir = r->dir,
        .parent = parent,
        .st = r->ch[i].st,
        .gens = gens,
        .resume = resume,
        .close_fds = close_fds,
        .nclose = nclose,
        .ctl_fd = -1,
        .inbox_fd = -1,
        .stats_ms = stats_ms_for(r),
    };
}

uint32_t *current_gens(struct mpx_run *r)
{
    /* One more: the parent, producer of the program's input, never
     * replaced. */
    uint32_t *gens = malloc(((size_t)r->n + 1) * sizeof *gens);
    if (!gens) {
        sup_record(r, MPX_ENOMEM, "out of memory");
        return NULL;
    }
    /* A slot that is joining has no process its peers know of yet: it is
     * off in the generation before the joiner's, so that the joiner's own
     * stream, or a notice of it, reads as a new generation that runs
     * again (edge_in.c), and its WIRE_JOIN as news (edge_out_join).  In
     * the joiner's generation it read as a stream already ended: a
     * consumer replaced during a join refused the joiner's first message
     * as one after its end of stream (the run failed), and a producer
     * replaced during one took the join for old news and sent the joiner
     * no notice.  A leaving slot is marked so: a producer replaced while
     * it leaves chose it as any consumer, and what it sent the leaver,
     * which takes nothing more once its input has ended, was never taken:
     * the producer waited for it to be confirmed, and the run hung. */
    for (int k = 0; k < r->n; k++) {
        const run_child_t *c = &r->ch[k];
        gens[k] = c->slot == SLOT_OFF       ? c->gen | EDGE_GEN_OFF
                  : c->slot == SLOT_JOINING ? (c->gen - 1) | EDGE_GEN_OFF
                  : c->slot == SLOT_LEAVING ? c->gen | EDGE_GEN_LEAVING
                                            : c->gen;
    }
    gens[r->n] = 0;
    return gens;
}

/* Fork the process of instance i (the caller watches it); it closes
 * close_fds first, and binds the listening sockets made for it (-1:
 * none).  gens: every instance's generation, NULL when all are 0. */
static int fork_one(struct mpx_run *r, int i, const int *close_fds, int nclose,
                    child_resume_t resume, const uint32_t *gens, int ctl_fd, int inbox_fd)
{
    child_args_t a = args_for(r, i, r->ch[i].gen, resume, gens, getpid(), close_fds, nclose);
    a.ctl_fd = ctl_fd;
    a.inbox_fd = inbox_fd;
    /* Whatever stdio holds now would otherwise be written once per child. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        child_main(&a);
    if (pid < 0) {
        sup_record(r, MPX_ESYS, "fork: %s", strerror(errno));
        return r->status;
    }
    r->ch[i].pid = pid;
    return 0;
}

/* In a process the fork server made (lib/forksrv.h), whose memory is the
 * server's: what the parent's was when the stages were forked. */
static void become_replacement(void *ctx, const forksrv_req_t *q, const int *fds, int nfds)
{
    const struct mpx_run *r = ctx;
    blackbox_t *b = &r->boxes[q->id];
    uint64_t want = (uint64_t)q->gen << 32;
    if (!__atomic_compare_exchange_n(&b->spawn, &want, want | (uint32_t)getpid(), false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&b->late, (int32_t)getpid(), __ATOMIC_RELEASE);
        _exit(0);
    }
    child_args_t a = args_for(r, q->id, q->gen, (child_resume_t)q->resume, q->gens, getppid(),
                              fds, nfds);
    child_main(&a);
}

/* Have the fork server make the process of instance i: 0, or -1 when it
 * could not (the caller forks it then). */
static int spawn_one(struct mpx_run *r, int i, child_resume_t resume)
{
    if (!r->forks)
        return -1;
    uint32_t *gens = current_gens(r);
    if (!gens)
        return -1;
    blackbox_t *b = &r->boxes[i];
    uint64_t want = (uint64_t)r->ch[i].gen << 32;
    __atomic_store_n(&b->spawn, want, __ATOMIC_RELEASE);
    forksrv_req_t q = {i, r->ch[i].gen, (int32_t)resume, r->n + 1, gens};
    pid_t pid = forksrv_spawn(r->forks, &q);
    free(gens);
    if (pid <= 0) {
        /* No answer, or a refusal.  A process the server made all the same
         * has either claimed its place, and is the replacement, or will
         * find it given up and leave. */
        if (__atomic_compare_exchange_n(&b->spawn, &want, UINT64_MAX, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            r->gave_up = true;
            return -1;
        }
        pid = (pid_t)(uint32_t)want;
    }
    r->ch[i].pid = pid;
    watch(r, i);
    return 0;
}

/* Reap the processes that found their place given up (blackbox_t.late);
 * wait_ms > 0: wait that long for each (they leave at once). */
static void reap_late(struct mpx_run *r, int wait_ms)
{
    for (int i = 0; r->boxes && i < r->n; i++) {
        pid_t pid = __atomic_load_n(&r->boxes[i].late, __ATOMIC_ACQUIRE);
        if (pid <= 0)
            continue;
        pid_t got;
        for (int t = 0; (got = waitpid(pid, NULL, WNOHANG)) == 0 && t < wait_ms; t++)
            usleep(1000);
        if (got != 0) /* reaped, or not ours to reap (SIGCHLD ignored) */
            __atomic_store_n(&r->boxes[i].late, 0, __ATOMIC_RELEASE);
    }
}

/* Descriptors open now, for fds_since_fork. */
static void note_fds(struct mpx_run *r)
{
    free(r->fds_at_fork);
    r->fds_at_fork = NULL;
    r->nfds_at_fork = 0;
    int n = 0;
    struct fd_id *ids = NULL;
    /* With nothing noted yet: every one. */
    free(fds_since_fork(r, &n, &ids));
    r->fds_at_fork = ids;
    r->nfds_at_fork = ids ? n : 0;
}

/* The order to fork in: every consumer before its producers (the plan is
 * acyclic; anything left over would go last, in plan order), so that a
 * producer's consumers are listening when it starts. */
static int *fork_order(const plan_t *plan)
{
    int n = plan->ninst;
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    int *left = malloc((size_t)(n ? n : 1) * sizeof *left);
    if (!order || !left) {
        free(order);
        free(left);
        return NULL;
    }
    int tail = 0;
    for (int i = 0; i < n; i++) {
        const plan_inst_t *pi = &plan->inst[i];
        left[i] = pi->nconsumers;
        /* The sink is the parent, listening from before the first fork. */
        if (pi->nconsumers > 0 && pi->consumers[pi->nconsumers - 1] == n)
            left[i]--;
        if (left[i] == 0)
            order[tail++] = i;
    }
    for (int head = 0; head < tail; head++) {
        const plan_inst_t *pc = &plan->inst[order[head]];
        for (int k = 0; k < pc->nproducers; k++)
            if (pc->producers[k] < n && --left[pc->producers[k]] == 0)
                order[tail++] = pc->producers[k];
    }
    for (int i = 0; i < n && tail < n; i++)
        if (left[i] > 0)
            order[tail++] = i;
    free(left);
    return order;
}

/* A listening socket for an endpoint of the run, or -1 with the failure
 * recorded. */
static int listen_at(struct mpx_run *r, char kind, int id, int backlog)
{
    int fd = edge_listen(r->dir, kind, id, backlog);
    if (fd < 0)
        sup_record(r, MPX_ESYS, "cannot listen at %s/%c%d: %s", r->dir, kind, id, strerror(errno));
    return fd;
}

/* Fork every stage.  Every endpoint a process binds (its control channel
 * and its inbox) is made here, just before that process is forked, and
 * the process adopts it: peers find each endpoint there from their first
 * moment, so none of them waits on zmq's reconnect timer, which with
 * hundreds of processes would retry hundreds of connections every
 * millisecond while the rest are forked.  The parent closes its copies
 * at once (a child forked later inherits none of them) and opens the
 * pidfds only once all are forked: so each child inherits a few of the
 * parent's descriptors, not a number growing with the graph. */
static int fork_all(struct mpx_run *r)
{
    int *order = fork_order(r->plan);
    if (!order) {
        sup_record(r, MPX_ENOMEM, "out of memory");
        return r->status;
    }
    note_fds(r);
    int fds[2], nfds = 0;
    /* Replacements come from the fork server, started first: it has none
     * of the stages' descriptors to close. */
    bool recoverable = r->grow != NULL; /* elastic groups grow from it too */
    for (int i = 0; i < r->n; i++)
        recoverable |= r->plan->inst[i].recoverable;
    int server_fd = -1;
    if (recoverable && (r->forks = forksrv_start(become_replacement, r, r->n + 1, &server_fd)))
        fds[nfds++] = server_fd;
    const plan_inst_t *out = &r->plan->inst[r->n];
    r->sink_listen = listen_at(r, 'i', r->n, out->nproducers + 8);
    if (r->sink_listen >= 0)
        fds[nfds++] = r->sink_listen;
    /* Elastic slots that start without a process have peers that know it
     * (EDGE_GEN_OFF). */
    uint32_t *gens = r->grow ? current_gens(r) : NULL;
    if (r->grow && !gens) {
        free(order);
        return r->status;
    }
    for (int k = 0; k < r->n && r->status == 0; k++) {
        int i = order[k];
        const plan_inst_t *pi = &r->plan->inst[i];
        if (r->ch[i].slot == SLOT_OFF)
            continue;
        int ctl_fd = listen_at(r, 'c', i, 8);
        int inbox_fd = pi->nproducers > 0 && ctl_fd >= 0
                           ? listen_at(r, 'i', i, pi->nproducers + 8)
                           : -1;
        if (ctl_fd >= 0 && (inbox_fd >= 0 || pi->nproducers == 0))
            fork_one(r, i, fds, nfds, CHILD_FRESH, gens, ctl_fd, inbox_fd);
        if (ctl_fd >= 0)
            close(ctl_fd);
        if (inbox_fd >= 0)
            close(inbox_fd);
    }
    free(gens);
    free(order);
    /* The pidfds are made after the last fork (each child would otherwise
     * inherit its elder siblings').  A child that died meanwhile is a
     * zombie until reaped, and gets one all the same; one the application
     * reaped (SIGCHLD ignored) is found gone by the waitpid poll.  Without
     * epoll, every child is polled that way. */
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < r->n; i++)
        if (r->ch[i].pid > 0)
            watch(r, i);
    return r->status;
}

/* The memory the children note their item in hand in (child.h). */
static int map_boxes(struct mpx_run *r)
{
    r->boxes_size = (size_t)(r->n ? r->n : 1) * sizeof(blackbox_t);
    void *m = mmap(NULL, r->boxes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        sup_record(r, MPX_ESYS, "mmap: %s", strerror(errno));
        return r->status;
    }
    r->boxes = m;
    for (int i = 0; i < r->n; i++)
        r->ch[i].watch_no = UINT64_MAX;
    return 0;
}

/* Kill a process that has spent longer than its stage's timeout on one
 * item.  The first time an item is seen in hand stands for its start, so
 * nothing is killed early; it may live up to one check longer. */
static void check_timeouts(struct mpx_run *r)
{
    long now = mono_ms();
    for (int i = 0; i < r->n; i++) {
        run_child_t *c = &r->ch[i];
        if ((c->restarts || c->slot == SLOT_JOINING) && !c->hello && !c->exited && !c->wedged &&
            c->pid > 0 &&
            now - c->forked_ms >= REPLACEMENT_START_MS) {
            c->wedged = true;
            kill_child(c, SIGKILL);
        }
        int limit = r->plan->inst[i].timeout_ms;
        if (limit <= 0 || c->exited || c->timed_out || c->pid <= 0)
            continue;
        const blackbox_t *b = &r->boxes[i];
        if (!__atomic_load_n(&b->busy, __ATOMIC_ACQUIRE)) {
            c->watch_no = UINT64_MAX;
            continue;
        }
        uint64_t no = b->item_no;
        if (no != c->watch_no) {
            c->watch_no = no;
            c->watch_since = now;
        } else if (now - c->watch_since >= limit) {
            c->timed_out = true;
            kill_child(c, SIGKILL);
        }
    }
}

/* ---- elastic groups -------------------------------------------------------
 * lib/grow.c decides when a group grows or shrinks; what it takes to do it
 * is here.  A slot without a process counts as exited, done and ready,
 * so that nothing waits for it; its producers and consumers know it has
 * none (EDGE_GEN_OFF).  (model: the supervisor's steps in elastic.pml) */

void sup_slot_off(struct mpx_run *r, int i)
{
    run_child_t *c = &r->ch[i];
    c->slot = SLOT_OFF;
    c->exited = c->done = c->ready = c->released = true;
    r->nexited++;
    r->nready++;
    const plan_inst_t *pi = &r->plan->inst[i];
    for (int k = 0; k < pi->nproducers; k++)
        if (pi->producers[k] < r->n)
            r->ch[pi->producers[k]].pending--;
}

static void send_join(struct mpx_run *r, int p, int i)
{
    wire_join_t j = {(uint32_t)i, r->ch[i].gen};
    if (p == r->n) {
        feed_join(r, &j);
        return;
    }
    run_child_t *c = &r->ch[p];
    if (c->exited)
        return; /* one that ended had sent everything, to everyone */
    if (!c->hello || ctl_send_with(r, p, WIRE_JOIN, &j, sizeof j) != 0)
        c->owe_joins = r->owing = true;
}

/* Every joined consumer of p again (at its hello, or when a send failed):
 * producers ignore what they knew. */
static void send_joins_to(struct mpx_run *r, int p)
{
    const plan_inst_t *pi = &r->plan->inst[p];
    r->ch[p].owe_joins = false;
    for (int k = 0; k < pi->nconsumers; k++) {
        int c = pi->consumers[k];
        if (c < r->n && r->plan->inst[c].elastic && r->ch[c].gen > 0 &&
            r->ch[c].slot != SLOT_OFF)
            send_join(r, p, c);
    }
}

int sup_slot_join(struct mpx_run *r, int i)
{
    run_child_t *c = &r->ch[i];
    if (c->slot != SLOT_OFF || !c->exited || r->state != RUN_RUNNING || r->stopping)
        return MPX_ESTATE;
    if (ctl_connect(r, i) != 0)
        return MPX_ESYS; /* nothing was told: the slot stays idle */
    blackbox_t *b = &r->boxes[i];
    memset(b, 0, offsetof(blackbox_t, spawn));
    stats_rebase(r, i);
    c->items_in = c->items_out = c->items_dropped = 0;
    /* items_failed and items_resent count every process the slot had
     * (mpx_instance_info_t): the ones before this joiner too. */
    c->failed_before = c->items_failed;
    c->resent_before = c->items_resent;
    c->gen++;
    c->slot = SLOT_JOINING;
    c->hello = c->ready = c->done = c->released = c->stop_sent = c->exited = false;
    c->timed_out = c->wedged = false;
    c->barren = c->ended_deaths = 0;
    c->resume = CHILD_JOIN;
    c->watch_no = UINT64_MAX;
    r->nexited--;
    r->nready--;
    r->restarted = true; /* look for one that does not start (check_timeouts) */
    consumer_done(r, i, false);
    int rc = make_process(r, i, CHILD_JOIN);
    c->forked_ms = mono_ms();
    if (rc != 0) {
        /* Nothing was told: the slot is idle again. */
        consumer_done(r, i, true);
        c->slot = SLOT_OFF;
        c->exited = c->done = c->ready = c->released = true;
        r->nexited++;
        r->nready++;
        return rc;
    }
    const plan_inst_t *pi = &r->plan->inst[i];
    for (int k = 0; k < pi->nproducers; k++)
        send_join(r, pi->producers[k], i);
    return 0;
}

int sup_slot_leave(struct mpx_run *r, int i)
{
    run_child_t *c = &r->ch[i];
    if (c->slot != SLOT_RUNS || !c->ready || c->exited || c->done || r->stopping)
        return MPX_ESTATE;
    int rc = ctl_send(r, i, WIRE_LEAVE);
    if (rc == 0)
        c->slot = SLOT_LEAVING;
    return rc;
}

/* The monitors' address, listened at once the stages have been told to
 * go (a monitor that tries sooner is connected by zmq once it is there).
 * The monitors' socket is the only zmq socket of a run, and its context
 * starts two threads and binds an ipc endpoint (2-5 ms of the parent on
 * the PVM guest): made only when a monitor connects (open_monitor_socket),
 * so that a run nobody watches never pays for it. */
static int listen_for_monitors(struct mpx_run *r)
{
    int rc = stats_listen(r, r->err, sizeof r->err);
    if (rc != 0)
        sup_record(r, rc, "monitor: %s", r->err);
    return rc;
}

/* A monitor is connecting: zmq takes the listening socket over, the
 * connection in its backlog, and serves it and every later one. */
static int open_monitor_socket(struct mpx_run *r)
{
    int listener = stats_listener(r);
    r->zctx = zmq_ctx_new();
    if (!r->zctx) {
        sup_record(r, MPX_ESYS, "cannot create the zmq context: %s", zmq_strerror(errno));
        return r->status;
    }
    zmq_ctx_set(r->zctx, ZMQ_BLOCKY, 0);
    int rc = stats_bind(r, r->err, sizeof r->err);
    if (rc != 0) {
        sup_record(r, rc, "monitor: %s", r->err);
        return r->status;
    }
    if (r->ready) {
        ready_unwatch_fd(r->ready, listener);
        rc = ready_watch_sock(r->ready, stats_socket(r), r->err, sizeof r->err);
        if (rc != 0)
            sup_record(r, rc, "%s", r->err);
    }
    return rc;
}

static int open_parent_sockets(struct mpx_run *r)
{
    r->ctl = xport_new(EDGE_CTL_PARENT, 1);
    if (!r->ctl) {
        sup_record(r, MPX_ESYS, "control channel: %s", strerror(errno));
        return r->status;
    }
    /* Each child listens on its end from the start (child.c). */
    for (int i = 0; i < r->n; i++) {
        if (r->ch[i].slot == SLOT_OFF)
            continue; /* connected when it joins */
        if (ctl_connect(r, i) != 0) {
            sup_record(r, MPX_ESYS, "control channel of process %d: %s", i, strerror(errno));
            return r->status;
        }
    }
    /* The output's inbox binds the socket the stages have been connecting
     * to since they started (fork_all). */
    if (r->sink_listen >= 0) {
        edge_adopt_inbox(r->n, 0, r->sink_listen);
        r->sink_listen = -1;
    }
    if (r->plan->inst[r->n].reorder) {
        if (!(r->reorder = malloc(sizeof *r->reorder))) {
            sup_record(r, MPX_ENOMEM, "out of memory");
            return r->status;
        }
        reorder_init(r->reorder, r->plan->inst[r->n].reorder);
        r->reorder->inline_parts = true;
    }
    /* Slots of elastic groups that start without a process have ended,
     * for the output as for every other consumer. */
    uint32_t *gens = r->grow ? current_gens(r) : NULL;
    if (r->grow && !gens)
        return r->status;
    r->sink = edge_in_new(r->plan, r->n, 0, gens, r->dir, r->err, sizeof r->err);
    free(gens);
    if (!r->sink) {
        sup_record(r, MPX_ESYS, "output: %s", r->err);
        return r->status;
    }
    /* An item the program holds is confirmed all the same: a chain of
     * recoverable stages (Seq's, with its marks) grants room only for
     * what comes back confirmed, and the program may hold it while it
     * puts. */
    edge_in_done_on_take(r->sink);
    if (feed_open(r) != 0)
        return r->status;
    int rc = stats_open(r, r->err, sizeof r->err);
    if (rc != 0) {
        sup_record(r, rc, "monitor: %s", r->err);
        return r->status;
    }
    return 0;
}

/* File descriptors one process of this graph may need: zmq spends a few
 * per context, two per socket (its mailbox and a listener or connection)
 * and one per connection; a stage has a socket to each consumer and to
 * each producer's ack inbox, and the parent a pidfd and a control
 * connection per stage.  Headroom is left for the application's own. */
static long fds_needed(const plan_t *plan)
{
    long most = 0;
    for (int i = 0; i <= plan->ninst; i++) {
        const plan_inst_t *pi = &plan->inst[i];
        long peers = pi->nconsumers + pi->nproducers;
        long n = 16 + 4 * peers;
        if (i == plan->ninst) /* the parent */
            n += 3L * plan->ninst;
        most = n > most ? n : most;
    }
    return most + 64;
}

/* Raise the soft limit on open files when the graph needs more (children
 * inherit it); refuse the graph when even the hard limit is too low,
 * rather than let libzmq abort the application mid-run. */
static int ensure_fd_limit(struct mpx_run *r)
{
    struct rlimit rl;
    long need = fds_needed(r->plan);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        (rlim_t)need <= rl.rlim_cur)
        return 0;
    rlim_t want = (rlim_t)need * 2;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    if (want > rl.rlim_cur) {
        struct rlimit raised = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = want;
    }
    if ((rlim_t)need <= rl.rlim_cur)
        return 0;
    sup_record(r, MPX_EGRAPH,
           "the graph needs about %ld open files in one process, more than the limit of %lu "
           "(ulimit -n); raise the limit or use fewer instances",
           need, (unsigned long)rl.rlim_cur);
    return r->status;
}

int sup_start(struct mpx_run *r)
{
    r->epfd = r->sink_listen = -1;
    char *msg = NULL;
    int rc = plan_build(r->root, &r->plan, &msg);
    if (rc != 0) {
        sup_record(r, rc, "%s", msg ? msg : mpx_strerror(rc));
        free(msg);
        r->state = RUN_ENDED;
        return rc;
    }
    r->n = r->plan->ninst;
    if (ensure_fd_limit(r) != 0) {
        r->state = RUN_ENDED;
        return r->status;
    }
    r->ch = calloc((size_t)r->n, sizeof *r->ch);
    if (!r->ch) {
        sup_record(r, MPX_ENOMEM, "out of memory");
        r->state = RUN_ENDED;
        return MPX_ENOMEM;
    }
    for (int i = 0; i < r->n; i++) {
        r->ch[i].pidfd = -1;
        r->ch[i].pending = r->plan->inst[i].nconsumers;
    }
    if (grow_open(r) != 0) {
        r->state = RUN_ENDED;
        return r->status;
    }
    r->state = RUN_STARTING;
    if (rundir_create(r->dir, sizeof r->dir, r->err, sizeof r->err) != 0) {
        sup_record(r, MPX_ESYS, "%s", r->err);
        end_run(r);
        return r->status;
    }
    r->have_dir = true;
    for (int i = 0; i < r->n; i++) {
        int t = r->plan->inst[i].timeout_ms;
        int every = t / 8 > 5 ? t / 8 : 5;
        if (t > 0 && (!r->timeout_check_ms || every < r->timeout_check_ms))
            r->timeout_check_ms = every;
    }
    size_t pool_bytes = r->root->pool_set ? r->root->pool_bytes : mpx_default_pool_bytes();
    if (pool_bytes > 0) {
        r->plan->pool = pool_new(pool_bytes, (uint32_t)r->n + 1, r->err, sizeof r->err);
        /* A pool nobody asked for is an optimisation: without one, large
         * items go through the sockets as they always could. */
        if (!r->plan->pool && !r->root->pool_set)
            r->err[0] = '\0';
        if (!r->plan->pool && r->root->pool_set) {
            sup_record(r, MPX_ESYS, "cannot make the graph's pool of %zu bytes: %s", pool_bytes,
                   r->err);
            end_run(r);
            return r->status;
        }
    }
    if (map_boxes(r) != 0 || initialize_all(r) != 0 || fork_all(r) != 0 ||
        open_parent_sockets(r) != 0) {
        sup_stop(r, 0, NULL);
        return r->status;
    }
    while (r->nready < r->n && !r->failing)
        pump(r, false, -1);
    if (r->failing) {
        sup_stop(r, 0, NULL);
        return r->status;
    }
    for (int i = 0; i < r->n; i++)
        if (r->ch[i].slot != SLOT_OFF && ctl_send(r, i, WIRE_GO) != 0) {
            /* Most likely it died just now: say so rather than that it
             * cannot be reached. */
            int err = errno;
            reap(r, i, 100);
            sup_record(r, MPX_ESYS, "cannot reach stage '%s': %s", r->plan->inst[i].name,
                   zmq_strerror(err));
            sup_stop(r, 0, NULL);
            return r->status;
        }
    if (listen_for_monitors(r) != 0) {
        sup_stop(r, 0, NULL);
        return r->status;
    }
    r->state = RUN_RUNNING;
    return 0;
}

/* The program is done with the item it was handed last: one a run that
 * ended meanwhile kept is let go now. */
static void release(struct mpx_run *r)
{
    r->holding = false;
    if (r->popped && r->popped != r->stash)
        mpx_item_free(&r->popped);
    if (r->state == RUN_ENDED)
        close_output(r);
}

/* ---- Seq's reorder in the program (graph/seqhost.h) -------------------- */

static int enqueue(void *ctx, mpx_item_t **it)
{
    struct mpx_run *r = ctx;
    if (r->rq_head + r->rq_n == r->rq_cap) {
        if (r->rq_head > 0) {
            memmove(r->rq, r->rq + r->rq_head, r->rq_n * sizeof *r->rq);
            r->rq_head = 0;
        } else {
            size_t cap = r->rq_cap ? 2 * r->rq_cap : 2 * SEQ_EPOCH;
            mpx_item_t **q = realloc(r->rq, cap * sizeof *q);
            if (!q) {
                mpx_item_free(it);
                return MPX_ENOMEM;
            }
            r->rq = q;
            r->rq_cap = cap;
        }
    }
    r->rq[r->rq_head + r->rq_n++] = *it;
    *it = NULL;
    return 0;
}

/* A failure to let the reorder's items out (out of memory) ends the run. */
static void note_reorder_failure(struct mpx_run *r, int rc)
{
    if (rc != 0)
        sup_record(r, rc, "out of memory putting the output in order");
}

static void reorder_end(struct mpx_run *r)
{
    for (size_t i = 0; i < r->rq_n; i++)
        mpx_item_free(&r->rq[r->rq_head + i]);
    free(r->rq);
    r->rq = NULL;
    r->rq_head = r->rq_n = r->rq_cap = 0;
    if (r->reorder) {
        reorder_free(r->reorder);
        free(r->reorder);
        r->reorder = NULL;
    }
}

void sup_output_unordered(struct mpx_run *r) { r->unordered = true; }

/* Do what can be done without waiting: 1 with *it, the next output item
 * (only with `take`: not while the program holds one, which taking the
 * next would end); 0 when the run has ended; 2 when there is nothing
 * more to do before something arrives. */
static int advance(struct mpx_run *r, bool take, mpx_item_t **it)
{
    while (r->state == RUN_RUNNING) {
        if (r->failing) {
            sup_stop(r, 0, NULL);
            return 0;
        }
        if (r->rq_n) {
            if (!take)
                return 2;
            *it = r->popped = r->rq[r->rq_head++];
            if (--r->rq_n == 0)
                r->rq_head = 0;
            return 1;
        }
        if (r->sink_complete) {
            if (!all_exited(r))
                return 2;
            end_run(r);
            return 0;
        }
        if (!take)
            return 2;
        edge_mark_t mark;
        int rc = edge_in_next(r->sink, it, &mark, r->err, sizeof r->err);
        if (rc == 1 && r->reorder && !r->unordered) {
            rc = reorder_take(r->reorder, *it, r->err, sizeof r->err);
            if (rc != 0)
                sup_record(r, rc, "output: %s", r->err);
            continue;
        }
        if (rc == 1)
            return 1;
        if (rc == 2) {
            /* Marks end at the graph's end; the Seq's let out what it kept. */
            if (r->reorder && reorder_ours(r->reorder, mark.value))
                note_reorder_failure(r, reorder_mark(r->reorder, mark.value, enqueue, r));
            continue;
        }
        if (rc < 0) {
            sup_record(r, rc, "output: %s", r->err);
            continue;
        }
        if (edge_in_complete(r->sink)) {
            r->sink_complete = true;
            if (r->reorder)
                note_reorder_failure(r, reorder_flush_all(r->reorder, enqueue, r));
            consumer_done(r, r->n, true);
            continue;
        }
        edge_in_idle(r->sink);
        return 2;
    }
    return 0;
}

/* Whether output waits to be taken, besides what advance took: records
 * of a message already read, behind the one the program holds, or a
 * message on the socket. */
static bool output_waiting(struct mpx_run *r, bool sink_in)
{
    return r->state == RUN_RUNNING &&
           (r->rq_n > 0 || (!r->sink_complete &&
                            (sink_in || (r->holding && edge_in_waiting(r->sink)))));
}

/* Bring the program's descriptor in step before returning to it:
 * readable now when something waits for the program (output, a control
 * message or a subscription to handle, a failure to act on, the end),
 * else armed for the supervisor's next deadline.  The sockets are asked
 * last, every one of them, so that each ZMQ_FD is quiet after this until
 * something new arrives.  Returns whether the output's socket has a
 * message. */
static bool ready_update(struct mpx_run *r)
{
    if (r->state != RUN_RUNNING) {
        if (r->ready)
            ready_set(r->ready, true, -1);
        return false;
    }
    /* Asked even once complete: asking is what quiets its ZMQ_FD. */
    bool sink_in = r->sink && ready_sock_in(edge_in_socket(r->sink)) && !r->sink_complete;
    if (!r->ready)
        return sink_in;
    bool ctl_in = ready_sock_in(r->ctl);
    bool stats_in = ready_sock_in(stats_socket(r));
    /* What the stages fed by the program sent back (credit,
     * confirmations, a stop) is read here, whatever is left to send: once
     * the input has ended nothing else reads it, and an unread message
     * would keep the descriptor readable until the graph ends.  News for
     * the program only when it lets something go: a batch (feed_due_ms),
     * what a replaced stage had, the end of the input. */
    bool feed_in = r->feed && ready_sock_in(feed_socket(r));
    if (feed_in) {
        edge_out_poll(r->feed);
        (void)ready_sock_in(feed_socket(r));
    }
    /* Room for input is news only to a program a put told to wait. */
    bool room = r->want_room && feed_room(r, r->want_size);
    bool now = ctl_in || stats_in || r->stash || output_waiting(r, sink_in) || r->failing ||
               (r->sink_complete && all_exited(r)) || room ||
               (feed_in && (edge_out_recover_due(r->feed) || feed_owes_eos(r) ||
                            feed_owes_mark(r)));
    long wake = -1;
    if (!now) {
        /* Confirmations to the output's producers (while the program
         * holds an item, those of the items before it: dispatch sends
         * them); and the input's batch, when its time comes. */
        long due = r->sink_complete ? -1 : edge_in_due_ms(r->sink);
        long fed = feed_due_ms(r);
        if (fed >= 0 && (due < 0 || fed < due))
            due = fed;
        wake = wake_in(r, due, check_every(r));
    }
    ready_set(r->ready, now, wake);
    return sink_in;
}

int sup_poll(struct mpx_run *r, long timeout_ms, mpx_item_t **it)
{
    release(r);
    if (r->stash) {
        *it = r->stash;
        r->stash = NULL;
        r->holding = true;
        /* Readable: more may wait, and poll or dispatch says so exactly. */
        if (r->ready)
            ready_set(r->ready, true, -1);
        return 1;
    }
    long deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    bool expired = false;
    for (;;) {
        int rc = advance(r, true, it);
        if (rc == 1) {
            /* Output that never runs dry must not keep the program's
             * input in the parent: a poll that finds output returns
             * before it would look at it. */
            feed_tick(r);
            r->holding = true;
            if (r->ready)
                ready_set(r->ready, true, -1);
            return 1;
        }
        if (rc == 0 || expired) {
            if (r->ready)
                ready_update(r);
            return rc == 0 ? 0 : MPX_ETIMEDOUT;
        }
        /* Back in time for confirmations a producer may wait on. */
        long wait = deadline < 0 ? -1 : deadline - mono_ms();
        if (deadline >= 0 && wait < 0)
            wait = 0;
        long due = r->sink_complete ? -1 : edge_in_due_ms(r->sink);
        if (due >= 0 && (wait < 0 || due < wait))
            wait = due;
        if (pump(r, true, wait)) {
            if (r->ready)
                ready_update(r);
            return MPX_EINTR;
        }
        expired = deadline >= 0 && mono_ms() >= deadline;
    }
}

mpx_item_t *sup_next(struct mpx_run *r)
{
    mpx_item_t *it = NULL;
    int rc;
    /* The common case, taken without sup_poll's and advance's rounds (a
     * third of the program's instructions per item at fine grain, where
     * the program reading every result is what limits a parallel map):
     * the run goes on, nothing is queued or stashed or waits to be put in
     * order, and the next record in hand is a plain item.  Otherwise, or
     * when it is not, the general path below, as if this had not run
     * (edge_in_take_plain took nothing). */
    if (__builtin_expect(r->state == RUN_RUNNING && !r->failing && !r->rq_n && !r->stash &&
                             r->sink && !r->sink_complete && (!r->reorder || r->unordered) &&
                             !(r->feed && r->input_count == 0),
                         1)) {
        r->holding = false;
        if (r->popped)
            mpx_item_free(&r->popped); /* release(): the program is done with it */
        if (edge_in_take_plain(r->sink, &it)) {
            feed_tick(r);
            r->holding = true;
            if (r->ready)
                ready_set(r->ready, true, -1);
            return it;
        }
    }
    /* A program that reads a fed graph with next before it put anything
     * means it to run on its sources alone (next could not return while
     * the input is open and empty: the program is the only one who could
     * put). */
    if (r->feed && r->input_count == 0)
        (void)sup_close_input(r);
    /* A signal does not end it: it waits on, as it always has. */
    while ((rc = sup_poll(r, -1, &it)) == MPX_EINTR)
        ;
    return rc == 1 ? it : NULL;
}

int sup_dispatch(struct mpx_run *r)
{
    if (r->state == RUN_RUNNING)
        (void)pump(r, true, 0); /* no wait for a signal to cut short */
    mpx_item_t *it = NULL;
    /* Output is taken here only when the program holds none: it is kept
     * for the next poll, and tells exactly whether there is any. */
    int rc = advance(r, !r->holding && !r->stash, &it);
    if (rc == 1)
        r->stash = it;
    /* What was taken before the item the program holds is confirmed: a
     * recoverable stage grants the program's input room only for what it
     * can confirm, so an event loop that holds an item across its waits
     * would otherwise wait for ever. */
    if (rc == 2 && r->holding && !r->sink_complete)
        edge_in_idle_holding(r->sink);
    bool sink_in = ready_update(r);
    if (rc == 0)
        return 0;
    int what = r->stash || output_waiting(r, sink_in) ? MPX_DISPATCH_OUTPUT : 0;
    if (r->want_room && feed_room(r, r->want_size))
        what |= MPX_DISPATCH_INPUT;
    return what ? what : MPX_DISPATCH_IDLE;
}

/* Output the program has not taken, besides an item it holds: while
 * there is any, a put that lacks room does not wait (the room may come
 * only from the program taking it). */
static bool output_pending(struct mpx_run *r)
{
    if (r->stash || r->rq_n)
        return true;
    if (r->sink_complete || !r->sink)
        return false;
    return edge_in_waiting(r->sink) || ready_sock_in(edge_in_socket(r->sink));
}

int sup_put(struct mpx_run *r, const mpx_part_t *parts, size_t n, const meta_cur_t *meta,
            bool nonblocking)
{
    if (r->state == RUN_RUNNING && !r->feed)
        return MPX_ESTATE; /* no stage takes input from the program */
    if (r->input_closed)
        return MPX_ESTATE;
    for (;;) {
        if (r->state == RUN_RUNNING && r->failing)
            sup_stop(r, 0, NULL);
        if (r->state != RUN_RUNNING || r->input_ended)
            return MPX_ESTOPPED;
        int rc = feed_put(r, parts, n, meta);
        if (rc != MPX_EAGAIN) {
            if (rc == 0) {
                r->want_room = false;
                if (r->room_since) { /* the program waited for room this long */
                    r->room_waited += mono_ms() - r->room_since;
                    r->room_since = 0;
                }
                if (r->ready && edge_out_batch_since(r->feed))
                    ready_update(r); /* the batch's time is the descriptor's */
            }
            return rc;
        }
        if (!r->room_since)
            r->room_since = mono_ms();
        /* A message on the output's socket may be no item at all (an end
         * of stream, a mark): read it, keeping an item it holds for the
         * next poll, so that MPX_EAGAIN means what the header says, an
         * item waits.  A stage that stops can have its end of stream read
         * here before its close reaches the feed (two sockets): that end
         * alone made a put say MPX_EAGAIN instead of waiting on to
         * MPX_ESTOPPED. */
        if (!nonblocking && !r->holding && !r->stash && !r->rq_n && output_pending(r)) {
            mpx_item_t *it = NULL;
            int got = advance(r, true, &it);
            if (got == 1)
                r->stash = it;
            else if (got == 0)
                continue; /* ended: said at the top */
        }
        /* Not output_pending again: a message that came since the look
         * above (this stage's end of stream, say) is not an item the
         * program must take, and the wait below reads it. */
        if (nonblocking || r->stash || r->rq_n || (r->holding && output_pending(r))) {
            r->want_room = true;
            if (r->ready)
                ready_update(r);
            return MPX_EAGAIN;
        }
        /* Confirmations the output's producers may wait on go out during
         * the wait, as in sup_poll: also while the program holds an item
         * (those of the items before it), since a recoverable stage fed by
         * the program grants room only for what it can confirm. */
        long due = -1;
        if (!r->sink_complete) {
            if (r->holding)
                edge_in_idle_holding(r->sink);
            else
                edge_in_idle(r->sink);
            due = edge_in_due_ms(r->sink);
        }
        if (pump(r, true, due)) {
            if (r->ready)
                ready_update(r);
            return MPX_EINTR;
        }
    }
}

int sup_close_input(struct mpx_run *r)
{
    if (!r->feed)
        return r->state == RUN_RUNNING && !plan_fed(r->plan) ? MPX_ESTATE : 0;
    r->input_closed = true;
    r->want_room = false; /* no put will follow: no news of room */
    (void)feed_service(r, true);
    if (r->ready)
        ready_update(r);
    return 0;
}

void sup_deadline_moved(struct mpx_run *r)
{
    if (r->ready && r->state == RUN_RUNNING)
        ready_update(r);
}

int sup_fd(struct mpx_run *r)
{
    if (r->ready)
        return ready_fd(r->ready);
    r->ready = ready_new(r->err, sizeof r->err);
    if (!r->ready)
        return MPX_ESYS;
    /* What brings work while the program is elsewhere; the rest is
     * readable now, or at a deadline, as ready_update decides. */
    int rc = 0;
    if (r->state == RUN_RUNNING) {
        if (r->epfd >= 0)
            rc = ready_watch_fd(r->ready, r->epfd, r->err, sizeof r->err);
        if (rc == 0)
            rc = ready_watch_sock(r->ready, r->ctl, r->err, sizeof r->err);
        if (rc == 0 && r->sink)
            rc = ready_watch_sock(r->ready, edge_in_socket(r->sink), r->err, sizeof r->err);
        if (rc == 0 && r->feed)
            rc = ready_watch_sock(r->ready, feed_socket(r), r->err, sizeof r->err);
        if (rc == 0 && stats_socket(r))
            rc = ready_watch_sock(r->ready, stats_socket(r), r->err, sizeof r->err);
        else if (rc == 0 && stats_listener(r) >= 0)
            rc = ready_watch_fd(r->ready, stats_listener(r), r->err, sizeof r->err);
    }
    if (rc != 0) {
        ready_destroy(&r->ready);
        return rc;
    }
    ready_update(r);
    return ready_fd(r->ready);
}

void sup_free(struct mpx_run *r)
{
    if (!r)
        return;
    r->holding = false;
    if (r->state == RUN_STARTING || r->state == RUN_RUNNING)
        sup_stop(r, MPX_ESTOPPED, "the graph was destroyed while running");
    release(r);
    reorder_end(r);
    ready_destroy(&r->ready);
    if (r->ch)
        for (int i = 0; i < r->n; i++)
            free(r->ch[i].st.state);
    stats_free(r);
    grow_free(r);
    if (r->boxes)
        munmap(r->boxes, r->boxes_size);
    free(r->fds_at_fork);
    free(r->ch);
    if (r->plan && r->plan->pool)
        pool_destroy(&r->plan->pool);
    plan_free(&r->plan);
    free(r->error);
    free(r);
}
