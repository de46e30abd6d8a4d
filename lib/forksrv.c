/* lib/forksrv.c — the fork server (see forksrv.h).
 *
 * Requests and replies go over one SOCK_SEQPACKET pair, a message each:
 * the request is four int32 (id, generation, resume, count) and the
 * generations; the reply one int32, the new pid or -errno.
 *
 * The new process is made with a raw clone, not fork(): fork() cannot
 * give it another parent.  glibc's fork also writes the child's thread id
 * into the thread's descriptor, where calls that act on "this thread" by
 * id (pthread_setaffinity_np on pthread_self(), for one) read it; the
 * server has the kernel do the same (CLONE_CHILD_SETTID) at the place it
 * found that id in, checked once by a real fork.  Where the place cannot
 * be found, or the kernel refuses the clone, the server answers -errno
 * and the caller forks the replacement itself, as it would without it.
 */
#define _GNU_SOURCE
#include "forksrv.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ticks.h"

struct forksrv {
    pid_t pid;
    int fd;
};

/* How long the parent waits for a reply (a server that has not answered
 * by then is killed: what it would make later nobody would know of), and
 * for the server to leave. */
#define REPLY_MS 2000
#define LEAVE_MS 1000

/* poll() until `deadline` (mono_ms), whatever signals interrupt it. */
static int poll_until(struct pollfd *p, nfds_t n, long deadline)
{
    for (;;) {
        long left = deadline - mono_ms();
        int r = poll(p, n, left > 0 ? (int)left : 0);
        if (r >= 0 || errno != EINTR)
            return r;
    }
}

/* Where this thread's id sits in its glibc descriptor, in pid_t units,
 * or -1.  Candidates are the words holding the id; a forked child, whose
 * id glibc rewrites, tells which one it is.  Found in the parent, before
 * the server is forked from the same thread (so the same place): a probe
 * forked by the server would be left behind if the server were killed
 * while waiting for it, a zombie the application's process would inherit
 * as a subreaper.  The place is the same in every thread and never
 * changes, so it is found once per process. */
static long find_tid_slot(void)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    const volatile pid_t *self = (const volatile pid_t *)(void *)pthread_self();
    long cand[8];
    int nc = 0;
    /* The id lies well within the first KiB of the descriptor, which is
     * several KiB long. */
    for (long i = 0; i < 256 && nc < 8; i++)
        if (self[i] == tid)
            cand[nc++] = i;
    if (nc == 0)
        return -1;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid_t c = fork();
    if (c == 0) {
        pid_t me = (pid_t)syscall(SYS_gettid);
        long found = -1;
        int hits = 0;
        for (int i = 0; i < nc; i++)
            if (self[cand[i]] == me) {
                found = cand[i];
                hits++;
            }
        if (hits != 1)
            found = -1;
        if (write(p[1], &found, sizeof found) != (ssize_t)sizeof found)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    long found = -1;
    if (c < 0 || read(p[0], &found, sizeof found) != (ssize_t)sizeof found)
        found = -1;
    close(p[0]);
    if (c > 0)
        while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
            ;
    return found;
}

/* A child of our parent, with its own id where glibc keeps it, and the
 * thread's robust-mutex list registered again: the kernel keeps that per
 * task and a raw clone does not carry it over (fork() re-registers it
 * itself).  Without it, a replacement that died holding a robust,
 * process-shared mutex (the graph's pool lock) would leave it held for
 * ever instead of to the next locker as EOWNERDEAD. */
static pid_t clone_sibling(long slot)
{
    void *robust = NULL;
    size_t robust_len = 0;
    bool have_robust = syscall(SYS_get_robust_list, 0, &robust, &robust_len) == 0;
    pid_t *ctid = (pid_t *)(void *)pthread_self() + slot;
    /* No exit signal of its own: with CLONE_PARENT the kernel gives it
     * ours (SIGCHLD, to the same parent), and clone3 refuses another. */
    struct clone_args ca = {
        .flags = CLONE_PARENT | CLONE_CHILD_SETTID,
        .child_tid = (uint64_t)(uintptr_t)ctid,
    };
    long pid = syscall(SYS_clone3, &ca, sizeof ca);
#if defined(__x86_64__)
    /* clone3 is newer than some kernels, and some sandboxes refuse it. */
    if (pid < 0 && (errno == ENOSYS || errno == EPERM))
        pid = syscall(SYS_clone, (unsigned long)(CLONE_PARENT | CLONE_CHILD_SETTID), NULL, NULL,
                      ctid, NULL);
#endif
    if (pid == 0 && have_robust)
        (void)syscall(SYS_set_robust_list, robust, robust_len);
    return (pid_t)pid;
}

static long tid_slot(void)
{
    /* -1: not found yet (looked for again next time: the probe may have
     * failed for want of a descriptor).  Two threads may both look: they
     * find the same. */
    static long slot = -1;
    long v = __atomic_load_n(&slot, __ATOMIC_ACQUIRE);
    if (v < 0) {
        v = find_tid_slot();
        __atomic_store_n(&slot, v, __ATOMIC_RELEASE);
    }
    return v;
}

static _Noreturn void serve(int fd, pid_t parent, forksrv_fn fn, void *ctx, int ngens,
                            long slot)
{
    prctl(PR_SET_NAME, "mpx-forks", 0, 0, 0);
    /* The parent's death closes its end of the socket, unless a child of
     * its own holds a copy; its pidfd turns readable then in any case.
     * (The parent-death signal would also come when the thread that
     * forked us ends, with the process alive: only without pidfds.) */
    int parent_fd = (int)syscall(SYS_pidfd_open, parent, 0);
    if (parent_fd < 0)
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent)
        _exit(0);
    /* The application's handlers mean nothing here (its new processes
     * set their own); Ctrl-C reaches the process group, and the parent
     * decides. */
    static const int dfl[] = {SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD};
    struct sigaction sa = {.sa_handler = SIG_DFL};
    for (size_t i = 0; i < sizeof dfl / sizeof *dfl; i++)
        sigaction(dfl[i], &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);

    size_t cap = 16 + 4 * (size_t)ngens;
    uint8_t *buf = malloc(cap);
    uint32_t *gens = malloc(4 * (size_t)(ngens ? ngens : 1));
    int code = 1;
    while (buf && gens) {
        struct pollfd p[2] = {{fd, POLLIN, 0}, {parent_fd, POLLIN, 0}};
        if (poll(p, parent_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
            break;
        code = 0;
        if (p[1].revents)
            break; /* the parent died */
        if (!p[0].revents)
            continue;
        ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break; /* the parent shut its end: the run is over */
        int32_t head[4] = {0, 0, 0, -1};
        if (n >= 16)
            memcpy(head, buf, 16);
        int32_t reply = -EINVAL;
        if (head[3] >= 0 && head[3] <= ngens && (size_t)n == 16 + 4 * (size_t)head[3]) {
            memcpy(gens, buf + 16, 4 * (size_t)head[3]);
            forksrv_req_t q = {head[0], (uint32_t)head[1], head[2], head[3], gens};
            pid_t pid = -1;
            errno = ENOSYS;
            if (slot >= 0)
                pid = clone_sibling(slot);
            if (pid == 0) {
                free(buf);
                int fds[2] = {fd, parent_fd};
                fn(ctx, &q, fds, parent_fd >= 0 ? 2 : 1);
                _exit(127);
            }
            reply = pid > 0 ? pid : -errno;
        }
        while (send(fd, &reply, sizeof reply, MSG_NOSIGNAL) < 0 && errno == EINTR)
            ;
    }
    free(buf);
    free(gens);
    _exit(code);
}

forksrv_t *forksrv_start(forksrv_fn fn, void *ctx, int ngens, int *fd)
{
    *fd = -1;
    forksrv_t *s = calloc(1, sizeof *s);
    int sv[2];
    if (!s || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        free(s);
        return NULL;
    }
    pid_t parent = getpid();
    long slot = tid_slot();
    /* Whatever stdio holds now would otherwise be written by the server's
     * children too. */
    fflush(NULL);
    /* The server bears its name from its first instant: the scheduler may
     * run it only after every stage is up (seen on a loaded machine), and
     * until then it would show as the application. */
    char name[16] = "";
    prctl(PR_GET_NAME, name, 0, 0, 0);
    prctl(PR_SET_NAME, "mpx-forks", 0, 0, 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        serve(sv[1], parent, fn, ctx, ngens, slot);
    }
    prctl(PR_SET_NAME, name, 0, 0, 0);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        free(s);
        return NULL;
    }
    s->pid = pid;
    s->fd = sv[0];
    *fd = sv[0];
    return s;
}

pid_t forksrv_spawn(forksrv_t *s, const forksrv_req_t *req)
{
    if (!s || s->fd < 0 || req->ngens < 0)
        return -1;
    size_t len = 16 + 4 * (size_t)req->ngens;
    uint8_t *buf = malloc(len);
    if (!buf)
        return -1;
    int32_t head[4] = {req->id, (int32_t)req->gen, req->resume, req->ngens};
    memcpy(buf, head, 16);
    memcpy(buf + 16, req->gens, 4 * (size_t)req->ngens);
    ssize_t n;
    while ((n = send(s->fd, buf, len, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    free(buf);
    if (n != (ssize_t)len)
        return -1;
    struct pollfd p = {s->fd, POLLIN, 0};
    int32_t reply = 0;
    n = poll_until(&p, 1, mono_ms() + REPLY_MS);
    if (n == 1)
        while ((n = recv(s->fd, &reply, sizeof reply, 0)) < 0 && errno == EINTR)
            ;
    if (n != (ssize_t)sizeof reply) {
        /* Stopped, or gone: of no further use, and it must not make the
         * process later (forksrv_stop reaps it). */
        kill(s->pid, SIGKILL);
        shutdown(s->fd, SHUT_RDWR);
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    /* -errno: the clone was refused; the next one may not be. */
    return reply > 0 ? (pid_t)reply : -1;
}

void forksrv_stop(forksrv_t **sp)
{
    forksrv_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    /* It leaves at the end of its socket: shut, not only closed, since a
     * child the application forked meanwhile may hold a copy of our end. */
    if (s->fd >= 0) {
        shutdown(s->fd, SHUT_RDWR);
        close(s->fd);
    }
    long deadline = mono_ms() + LEAVE_MS;
    int pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
    if (pidfd >= 0) {
        struct pollfd p = {pidfd, POLLIN, 0};
        poll_until(&p, 1, deadline);
        close(pidfd);
    }
    pid_t r;
    while ((r = waitpid(s->pid, NULL, WNOHANG)) == 0 && mono_ms() < deadline)
        usleep(1000);
    if (r == 0) {
        kill(s->pid, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    free(s);
    *sp = NULL;
}
