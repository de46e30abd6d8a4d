/* lib/edge.c — what both ends of an edge share: endpoint names, socket
 * options, opening sockets.  The consumer side is edge_in.c, the producer
 * side edge_out.c (see edge.h).
 */
#define _GNU_SOURCE
#include "edge.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "mpx/error.h"
#include "xport.h"

int edge_endpoint(char *buf, size_t cap, const char *dir, char kind, int id, uint32_t gen)
{
    int n = gen ? snprintf(buf, cap, "ipc://%s/%c%d.%u", dir, kind, id, gen)
                : snprintf(buf, cap, "ipc://%s/%c%d", dir, kind, id);
    return n > 0 && (size_t)n < cap ? 0 : MPX_ERANGE;
}

void edge_rid(uint8_t rid[EDGE_RID_SIZE], int id, uint32_t gen)
{
    /* zmq keeps ids starting with a zero byte for those it makes up. */
    uint32_t v = (uint32_t)id;
    rid[0] = 'm';
    memcpy(rid + 1, &v, 4);
    memcpy(rid + 5, &gen, 4);
}

/* An endpoint of ours under our routing id (lib/xport.h: a send to a
 * peer that is not connected is refused with EHOSTUNREACH). */
static xport_t *open_xport(int self, uint32_t gen, char *err, size_t errcap)
{
    uint8_t rid[EDGE_RID_SIZE];
    edge_rid(rid, self, gen);
    xport_t *x = xport_new(rid, sizeof rid);
    if (!x)
        snprintf(err, errcap, "an edge's endpoint: %s", strerror(errno));
    return x;
}

int edge_listen(const char *dir, char kind, int id, int backlog)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int n = snprintf(a.sun_path, sizeof a.sun_path, "%s/%c%d", dir, kind, id);
    if (n < 0 || (size_t)n >= sizeof a.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    /* Non-blocking: zmq's I/O thread accepts when poll says a connection
     * waits, and must not hang on one that is gone by then. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (const struct sockaddr *)&a, sizeof a) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Set by edge_adopt_inbox, taken by the next edge_open_inbox of the same
 * instance and generation.  Per thread: two graphs may start at once in
 * two threads of the application. */
static _Thread_local struct {
    int id, fd;
    uint32_t gen;
} adopt = {-1, -1, 0};

void edge_adopt_inbox(int self, uint32_t gen, int fd)
{
    adopt.id = self;
    adopt.gen = gen;
    adopt.fd = fd;
}

/* x listening on fd, or at path.  The xport owns an adopted descriptor,
 * also when adopting fails.  A file left at the path by a process that
 * died is replaced, as zmq's bind would. */
static xport_t *listen_on(xport_t *x, int fd, const char *path, int backlog, char *err,
                          size_t errcap)
{
    int rc = fd >= 0 ? xport_listen_fd(x, fd) : (unlink(path), xport_bind(x, path, backlog));
    if (rc != 0) {
        snprintf(err, errcap, "listening at %s: %s", path, strerror(errno));
        xport_destroy(&x);
    }
    return x;
}

xport_t *edge_open_inbox(const char *dir, int self, uint32_t gen, char *err, size_t errcap)
{
    char ep[256];
    int fd = -1;
    if (adopt.fd >= 0 && adopt.id == self && adopt.gen == gen) {
        fd = adopt.fd;
        adopt.fd = -1;
    }
    if (edge_endpoint(ep, sizeof ep, dir, 'i', self, gen) != 0) {
        snprintf(err, errcap, "endpoint path too long in %s", dir);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    xport_t *x = open_xport(self, gen, err, errcap);
    const char *path = ep + strlen("ipc://");
    if (!x) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    return listen_on(x, fd, path, 128, err, errcap);
}

void edge_ctl_rid(uint8_t rid[EDGE_CTL_RID_SIZE], int id)
{
    uint32_t v = (uint32_t)id;
    rid[0] = 'c';
    memcpy(rid + 1, &v, 4);
}

xport_t *edge_open_ctl(const char *dir, int self, int fd, char *err, size_t errcap)
{
    char ep[256];
    if (edge_endpoint(ep, sizeof ep, dir, 'c', self, 0) != 0) {
        snprintf(err, errcap, "endpoint path too long in %s", dir);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    uint8_t rid[EDGE_CTL_RID_SIZE];
    edge_ctl_rid(rid, self);
    xport_t *x = xport_new(rid, sizeof rid);
    if (!x) {
        snprintf(err, errcap, "the control channel: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    return listen_on(x, fd, ep + strlen("ipc://"), 8, err, errcap);
}

xport_t *edge_open_outbox(int self, uint32_t gen, char *err, size_t errcap)
{
    return open_xport(self, gen, err, errcap);
}

int edge_connect(xport_t *x, const char *dir, int id, uint32_t gen, bool connect)
{
    char ep[256];
    if (edge_endpoint(ep, sizeof ep, dir, 'i', id, gen) != 0)
        return MPX_ERANGE;
    uint8_t rid[EDGE_RID_SIZE];
    edge_rid(rid, id, gen);
    if (!connect)
        return xport_disconnect(x, rid, sizeof rid) == 0 ? 0 : MPX_ESYS;
    /* Under the consumer's routing id: addressable from now on, and what
     * is sent waits in this process until the consumer listens. */
    return xport_connect(x, ep + strlen("ipc://"), rid, sizeof rid) == 0 ? 0 : MPX_ESYS;
}

int *edge_slot_map(const plan_t *plan)
{
    int *slot = malloc(((size_t)plan->ninst + 1) * sizeof *slot);
    if (slot)
        for (int i = 0; i <= plan->ninst; i++)
            slot[i] = -1;
    return slot;
}


/* What a zmq socket is ready for now (ZMQ_POLLIN/ZMQ_POLLOUT), of `want`. */
static short zsock_ready(void *sock, short want)
{
    uint32_t ev = 0;
    size_t len = sizeof ev;
    if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) != 0)
        return ZMQ_POLLERR;
    return (short)(ev & (uint32_t)want);
}

static short fd_ready(short revents)
{
    short r = 0;
    if (revents & POLLIN)
        r |= ZMQ_POLLIN;
    if (revents & POLLOUT)
        r |= ZMQ_POLLOUT;
    if (revents & POLLPRI)
        r |= ZMQ_POLLPRI;
    if (revents & ~(POLLIN | POLLOUT | POLLPRI))
        r |= ZMQ_POLLERR;
    return r;
}

/* What an edge's endpoint is ready for now, of `want`: input when a whole
 * frame waits in the process; output always (it never refuses a send). */
static short xport_ready(xport_t *x, short want)
{
    return (short)((want & ZMQ_POLLIN && xport_has_input(x) ? ZMQ_POLLIN : 0) |
                   (want & ZMQ_POLLOUT));
}

int edge_poll(zmq_pollitem_t *items, int n, long timeout_ms)
{
    struct pollfd local[16];
    struct pollfd *pfd = n <= 16 ? local : malloc((size_t)n * sizeof *pfd);
    if (!pfd) {
        errno = ENOMEM;
        return -1;
    }
    int ready = 0, nfds = 0;
    bool xports = false;
    for (int i = 0; i < n; i++) {
        items[i].revents = 0;
        if (items[i].socket && xport_is(items[i].socket)) {
            /* Frames already read are asked of the process, the rest of
             * the descriptor: no system call before sleeping. */
            xport_t *x = items[i].socket;
            items[i].revents = xport_ready(x, items[i].events);
            pfd[i] = (struct pollfd){items[i].revents ? -1 : xport_fd(x), POLLIN, 0};
            ready += items[i].revents != 0;
            xports = true;
        } else if (items[i].socket) {
            items[i].revents = zsock_ready(items[i].socket, items[i].events);
            size_t len = sizeof pfd[i].fd;
            if (zmq_getsockopt(items[i].socket, ZMQ_FD, &pfd[i].fd, &len) != 0)
                pfd[i].fd = -1;
            pfd[i].events = POLLIN; /* commands arrived */
            if (items[i].revents) {
                pfd[i].fd = -1; /* known already: poll skips it */
                ready++;
            }
        } else {
            pfd[i].fd = items[i].fd;
            pfd[i].events = (short)((items[i].events & ZMQ_POLLIN ? POLLIN : 0) |
                                    (items[i].events & ZMQ_POLLOUT ? POLLOUT : 0) |
                                    (items[i].events & ZMQ_POLLPRI ? POLLPRI : 0));
            nfds++;
        }
    }
    long wait = ready ? 0 : timeout_ms;
    /* Descriptors are looked at even when a socket is ready: a process
     * that always has input must still notice a child's exit. */
    if (wait == 0 && nfds == 0 && !xports)
        goto out;
    long deadline = wait > 0 ? mono_ms() + wait : 0;
    for (;;) {
        /* An endpoint's reconnect (xport_due_ms) shortens the sleep. */
        long sleep = wait, due = -1;
        for (int i = 0; xports && i < n; i++) {
            long d = items[i].socket && xport_is(items[i].socket)
                         ? xport_due_ms(items[i].socket)
                         : -1;
            if (d >= 0 && (due < 0 || d < due))
                due = d;
        }
        if (due >= 0 && (sleep < 0 || due < sleep))
            sleep = due;
        int rc = poll(pfd, (nfds_t)n, (int)(sleep > INT32_MAX ? INT32_MAX : sleep));
        if (rc < 0) {
            ready = -1;
            goto out;
        }
        for (int i = 0; i < n; i++) {
            bool x = items[i].socket && xport_is(items[i].socket);
            if (!pfd[i].revents && !(x && due >= 0 && xport_due_ms(items[i].socket) == 0))
                continue;
            short r;
            if (x) {
                /* Accept, read, write, reconnect: then ask again. */
                (void)xport_service(items[i].socket);
                r = xport_ready(items[i].socket, items[i].events);
                if (r)
                    pfd[i].fd = -1;
            } else {
                r = items[i].socket ? zsock_ready(items[i].socket, items[i].events)
                                    : fd_ready(pfd[i].revents);
            }
            ready += r && !items[i].revents;
            items[i].revents |= r;
        }
        if (ready || wait == 0 || (rc == 0 && sleep == wait))
            break;
        /* Only commands, output or reconnects that made nothing ready:
         * sleep again. */
        if (wait > 0 && (wait = deadline - mono_ms()) <= 0)
            break;
    }
out:
    if (pfd != local)
        free(pfd);
    return ready;
}
