/* lib/xport.c — framed messages over unix stream connections, read and
 * written by the calling thread (lib/xport.h says what and why).
 *
 * Each peer is a conn_t in a slot of the xport.  Input is read into the
 * connection's buffer (grown from IB_START up to IB_MAX) and handed out a
 * frame at a time; a frame of BIG_FRAME bytes or more gets a buffer of
 * its own as soon as its header is at the head of the buffer, and the
 * rest of it is read straight into that buffer, which becomes the
 * message.  That buffer grows as the bytes arrive (BIG_FIRST at first,
 * then doubling up to the frame's length): a header is only a claim, and
 * a peer that claims 4 GiB and sends nothing more must not make the
 * process allocate 4 GiB.  Output waits in a ring
 * of messages per connection, written with one sendmsg for many of them
 * when the socket takes them.  epoll watches the listening socket, every
 * connection's input (while its buffer has room) and the output of those
 * with something waiting; an event names its connection by slot and
 * serial, so that one freed while the events of the same wait are being
 * handled is recognised. */
#define _GNU_SOURCE
#include "xport.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Overridable so that the fuzz target (tests/fuzz_frames.c) reaches every
 * path of the input code with small inputs. */
#ifndef IB_START
#define IB_START 4096
#endif
#ifndef IB_MAX
#define IB_MAX (32 * 1024)
#endif
#ifndef BIG_FRAME
#define BIG_FRAME (8 * 1024)
#endif
#ifndef BIG_FIRST
#define BIG_FIRST (1024 * 1024)
#endif
#define HDR 4
#define IOV_BATCH 64
#define IVL_MIN_MS 1
#define IVL_MAX_MS 100
/* Out of descriptors: accepting again after this long. */
#define ACCEPT_PAUSE_MS 100
#define LISTEN_SLOT UINT32_MAX

typedef struct out {
    zmq_msg_t msg;
    uint32_t len;  /* the frame's header, written from here */
    size_t done;   /* of HDR + len */
    bool hello;    /* our routing id, first on a new connection */
} out_t;

typedef struct conn {
    int fd;          /* -1: a connected peer between connections */
    uint32_t slot, serial;
    bool accepted;   /* forgotten when its connection ends */
    bool named;      /* rid known: from the start when we connected */
    bool gone;       /* accepted, connection ended: only whole frames left */
    bool ready;      /* a whole frame waits (counted in xport.nready) */
    uint32_t events; /* the epoll interest registered */
    uint8_t rid[XPORT_RID_MAX];
    size_t rid_len;
    char *path;    /* connected peers: where to connect again */
    long retry_at; /* monotonic ms of the next attempt, when fd < 0 */
    int ivl;
    /* Input: bytes [ib_off, ib_fill) of ib are not handed out yet. */
    uint8_t *ib;
    size_t ib_off, ib_fill, ib_cap;
    bool in_big;
    uint8_t *big; /* big_cap bytes, of which big_got are in */
    size_t big_len, big_got, big_cap;
    /* Output. */
    out_t *q;
    size_t q_head, q_n, q_cap, q_bytes;
} conn_t;

/* The first word of every xport: edge_poll takes zmq sockets and xports
 * in one list and tells them apart by it.  No zmq socket starts with it:
 * a libzmq socket object starts with its C++ vtable pointer, a canonical
 * address, and this is not one (its top 16 bits are neither all zeros nor
 * all ones). */
#define XPORT_MAGIC 0x78706f72744d5058ull

struct xport {
    uint64_t magic;
    int epfd, lfd;
    bool lfd_paused;
    long lfd_retry_at;
    uint8_t rid[XPORT_RID_MAX];
    size_t rid_len;
    conn_t **c;
    size_t n, cap;
    size_t rr; /* the slot to look at first for input */
    size_t nready, nwaiting, queued;
    uint32_t serial;
    uint64_t refused;
};

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static uint64_t ev_key(uint32_t slot, uint32_t serial)
{
    return (uint64_t)slot << 32 | serial;
}

xport_t *xport_new(const void *rid, size_t rid_len)
{
    if (!rid || rid_len == 0 || rid_len > XPORT_RID_MAX) {
        errno = EINVAL;
        return NULL;
    }
    xport_t *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->magic = XPORT_MAGIC;
    x->lfd = -1;
    x->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (x->epfd < 0) {
        int e = errno;
        free(x);
        errno = e;
        return NULL;
    }
    memcpy(x->rid, rid, rid_len);
    x->rid_len = rid_len;
    return x;
}

/* ---- connections ---------------------------------------------------- */

/* Watch c's descriptor for `events`; none takes it out of the set, so
 * that a connection whose input buffer is full (and that has nothing to
 * write) does not keep the set readable, not even by a hang-up that only
 * reading can act on. */
static int watch(xport_t *x, conn_t *c, uint32_t events)
{
    if (c->fd < 0 || c->events == events)
        return 0;
    struct epoll_event ev = {.events = events, .data.u64 = ev_key(c->slot, c->serial)};
    int op = !events ? EPOLL_CTL_DEL : c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(x->epfd, op, c->fd, &ev) != 0)
        return -1;
    c->events = events;
    return 0;
}

static void close_fd(xport_t *x, conn_t *c)
{
    if (c->fd < 0)
        return;
    if (c->events)
        (void)epoll_ctl(x->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->events = 0;
}

static out_t *q_at(conn_t *c, size_t i)
{
    return &c->q[(c->q_head + i) % c->q_cap];
}

static void drop_output(xport_t *x, conn_t *c, size_t keep_from)
{
    while (c->q_n > keep_from) {
        out_t *e = q_at(c, c->q_n - 1);
        size_t left = HDR + e->len - e->done;
        c->q_bytes -= left;
        x->queued -= left;
        zmq_msg_close(&e->msg);
        c->q_n--;
    }
}

/* Whether a whole frame waits in c; keeps the counts in step. */
static void refresh(xport_t *x, conn_t *c)
{
    bool r;
    if (c->in_big) {
        r = c->big_got == c->big_len;
    } else {
        size_t avail = c->ib_fill - c->ib_off;
        uint32_t len = 0;
        if (avail >= HDR)
            memcpy(&len, c->ib + c->ib_off, HDR);
        r = c->named && avail >= HDR && avail - HDR >= len;
    }
    if (r != c->ready) {
        c->ready = r;
        if (r)
            x->nready++;
        else
            x->nready--;
    }
}

static void free_conn(xport_t *x, size_t slot)
{
    conn_t *c = x->c[slot];
    if (!c->accepted && c->fd < 0)
        x->nwaiting--;
    close_fd(x, c);
    if (c->ready)
        x->nready--;
    drop_output(x, c, 0);
    free(c->q);
    free(c->big);
    free(c->ib);
    free(c->path);
    free(c);
    x->c[slot] = NULL;
}

static conn_t *add_conn(xport_t *x, int fd, bool accepted)
{
    size_t slot = 0;
    while (slot < x->n && x->c[slot])
        slot++;
    if (slot == x->n) {
        if (x->n == x->cap) {
            size_t cap = x->cap ? 2 * x->cap : 8;
            conn_t **c = realloc(x->c, cap * sizeof *c);
            if (!c)
                return NULL;
            x->c = c;
            x->cap = cap;
        }
        x->n++;
    }
    conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        if (slot == x->n - 1)
            x->n--;
        return NULL;
    }
    c->fd = fd;
    c->accepted = accepted;
    c->slot = (uint32_t)slot;
    c->serial = ++x->serial;
    c->ivl = IVL_MIN_MS;
    x->c[slot] = c;
    return c;
}

static conn_t *find(const xport_t *x, const void *rid, size_t rid_len, size_t *slot)
{
    for (size_t i = 0; i < x->n; i++) {
        conn_t *c = x->c[i];
        if (c && c->named && !c->gone && c->rid_len == rid_len && memcmp(c->rid, rid, rid_len) == 0) {
            if (slot)
                *slot = i;
            return c;
        }
    }
    return NULL;
}

/* A whole frame is never cut: what follows the last whole one in the
 * buffer (a frame the lost connection cut short) is dropped, so that the
 * next connection's bytes start a frame. */
static void trim_partial(conn_t *c)
{
    size_t at = c->ib_off;
    while (c->ib_fill - at >= HDR) {
        uint32_t len;
        memcpy(&len, c->ib + at, HDR);
        if (c->ib_fill - at - HDR < len)
            break;
        at += HDR + len;
    }
    c->ib_fill = at;
    if (c->in_big && c->big_got < c->big_len) {
        free(c->big);
        c->big = NULL;
        c->in_big = false;
    }
}

/* The connection ended (EOF, an error, or refused).  An accepted peer is
 * forgotten once its whole frames are taken; a connected one connects
 * again later, without what the loss cut short. */
static void lost(xport_t *x, size_t slot)
{
    conn_t *c = x->c[slot];
    /* A connected peer between connections (a broken frame read before
     * its connection ended) is already waiting to connect again. */
    bool was_connected = c->fd >= 0;
    close_fd(x, c);
    trim_partial(c);
    if (c->accepted) {
        c->gone = true;
        drop_output(x, c, 0);
        refresh(x, c);
        if (!c->ready)
            free_conn(x, slot);
        return;
    }
    if (!was_connected) {
        refresh(x, c);
        return;
    }
    /* A message begun is dropped, as zmq drops one its engine had begun;
     * so is a hello not sent: the next connection starts with its own. */
    while (c->q_n && (q_at(c, 0)->done || q_at(c, 0)->hello)) {
        out_t *e = q_at(c, 0);
        size_t left = HDR + e->len - e->done;
        c->q_bytes -= left;
        x->queued -= left;
        zmq_msg_close(&e->msg);
        c->q_head = (c->q_head + 1) % c->q_cap;
        c->q_n--;
    }
    c->retry_at = now_ms() + c->ivl;
    c->ivl = c->ivl * 2 > IVL_MAX_MS ? IVL_MAX_MS : c->ivl * 2;
    x->nwaiting++;
    refresh(x, c);
}

static void refuse(xport_t *x, size_t slot)
{
    x->refused++;
    conn_t *c = x->c[slot];
    /* Nothing it sent after the broken frame can be trusted either. */
    c->ib_fill = c->ib_off;
    lost(x, slot);
}

/* ---- output --------------------------------------------------------- */

static int q_push(xport_t *x, conn_t *c, zmq_msg_t *msg, uint32_t len, size_t done, bool front)
{
    if (c->q_n == c->q_cap) {
        size_t cap = c->q_cap ? 2 * c->q_cap : 8;
        out_t *q = malloc(cap * sizeof *q);
        if (!q)
            return -1;
        for (size_t i = 0; i < c->q_n; i++) {
            zmq_msg_init(&q[i].msg);
            zmq_msg_move(&q[i].msg, &q_at(c, i)->msg);
            q[i].len = q_at(c, i)->len;
            q[i].done = q_at(c, i)->done;
            q[i].hello = q_at(c, i)->hello;
            zmq_msg_close(&q_at(c, i)->msg);
        }
        free(c->q);
        c->q = q;
        c->q_cap = cap;
        c->q_head = 0;
    }
    if (front)
        c->q_head = (c->q_head + c->q_cap - 1) % c->q_cap;
    out_t *e = front ? &c->q[c->q_head] : q_at(c, c->q_n);
    zmq_msg_init(&e->msg);
    zmq_msg_move(&e->msg, msg);
    e->len = len;
    e->done = done;
    e->hello = false;
    c->q_n++;
    size_t left = HDR + len - done;
    c->q_bytes += left;
    x->queued += left;
    return 0;
}

/* Write what waits to c, as much as the socket takes. */
static void flush_conn(xport_t *x, size_t slot)
{
    conn_t *c = x->c[slot];
    while (c->fd >= 0 && c->q_n) {
        struct iovec iov[2 * IOV_BATCH];
        int n = 0;
        for (size_t i = 0; i < c->q_n && n + 2 <= 2 * IOV_BATCH; i++) {
            out_t *e = q_at(c, i);
            size_t done = e->done;
            if (done < HDR) {
                iov[n++] = (struct iovec){(uint8_t *)&e->len + done, HDR - done};
                done = HDR;
            }
            iov[n++] = (struct iovec){(uint8_t *)zmq_msg_data(&e->msg) + (done - HDR),
                                      e->len - (done - HDR)};
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w;
        while ((w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 && errno == EINTR)
            ;
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            lost(x, slot);
            return;
        }
        size_t left = (size_t)w;
        c->q_bytes -= left;
        x->queued -= left;
        while (left) {
            out_t *e = q_at(c, 0);
            size_t rest = HDR + e->len - e->done;
            if (left < rest) {
                e->done += left;
                break;
            }
            left -= rest;
            zmq_msg_close(&e->msg);
            c->q_head = (c->q_head + 1) % c->q_cap;
            c->q_n--;
        }
    }
    if (c->fd >= 0) {
        if (watch(x, c, (c->events & EPOLLIN) | (c->q_n ? EPOLLOUT : 0)) != 0)
            lost(x, slot);
    }
}

/* ---- connecting and accepting ---------------------------------------- */

static int hello(xport_t *x, conn_t *c)
{
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, x->rid_len) != 0)
        return -1;
    memcpy(zmq_msg_data(&m), x->rid, x->rid_len);
    int rc = q_push(x, c, &m, (uint32_t)x->rid_len, 0, true);
    zmq_msg_close(&m);
    if (rc == 0)
        c->q[c->q_head].hello = true;
    return rc;
}

static void try_connect(xport_t *x, size_t slot)
{
    conn_t *c = x->c[slot];
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t plen = strlen(c->path);
    memcpy(a.sun_path, c->path, plen);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        if (hello(x, c) == 0) {
            c->fd = fd;
            c->retry_at = 0;
            c->ivl = IVL_MIN_MS;
            x->nwaiting--;
            if (watch(x, c, EPOLLIN | EPOLLOUT) != 0) {
                lost(x, slot);
                return;
            }
            flush_conn(x, slot);
            return;
        }
    }
    if (fd >= 0)
        close(fd);
    /* Not listening yet (ENOENT, ECONNREFUSED), its backlog full (EAGAIN),
     * or short of memory or descriptors: all worth another try. */
    c->retry_at = now_ms() + c->ivl;
    c->ivl = c->ivl * 2 > IVL_MAX_MS ? IVL_MAX_MS : c->ivl * 2;
}

static void accept_all(xport_t *x)
{
    for (;;) {
        int fd = accept4(x->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The connection stays queued and the socket readable:
                 * stop watching it for a while rather than spin. */
                (void)epoll_ctl(x->epfd, EPOLL_CTL_DEL, x->lfd, NULL);
                x->lfd_paused = true;
                x->lfd_retry_at = now_ms() + ACCEPT_PAUSE_MS;
            }
            return;
        }
        conn_t *c = add_conn(x, fd, true);
        if (!c || watch(x, c, EPOLLIN) != 0) {
            if (c)
                free_conn(x, c->slot);
            else
                close(fd);
        }
    }
}

static void resume_accepting(xport_t *x)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ev_key(LISTEN_SLOT, 0)};
    if (epoll_ctl(x->epfd, EPOLL_CTL_ADD, x->lfd, &ev) == 0)
        x->lfd_paused = false;
    else
        x->lfd_retry_at = now_ms() + ACCEPT_PAUSE_MS;
}

/* ---- input ---------------------------------------------------------- */

/* Look at the frame at the head of c's buffer: a hello is taken, a large
 * frame moves into a message of its own, a broken one ends the
 * connection.  Returns false when c was freed. */
static bool settle(xport_t *x, size_t slot)
{
    conn_t *c = x->c[slot];
    for (;;) {
        if (c->in_big)
            break;
        size_t avail = c->ib_fill - c->ib_off;
        if (avail < HDR)
            break;
        uint32_t len;
        memcpy(&len, c->ib + c->ib_off, HDR);
        if (len == 0 || (!c->named && len > XPORT_RID_MAX)) {
            refuse(x, slot);
            return x->c[slot] == c;
        }
        if (!c->named) {
            if (avail - HDR < len)
                break;
            if (find(x, c->ib + c->ib_off + HDR, len, NULL)) {
                refuse(x, slot); /* an id already connected (zmq's default) */
                return x->c[slot] == c;
            }
            memcpy(c->rid, c->ib + c->ib_off + HDR, len);
            c->rid_len = len;
            c->named = true;
            c->ib_off += HDR + len;
            continue;
        }
        if (len < BIG_FRAME)
            break;
        size_t have = avail - HDR < len ? avail - HDR : len;
        size_t cap = len < BIG_FIRST ? len : BIG_FIRST;
        if (!(c->big = malloc(cap > have ? cap : have))) {
            refuse(x, slot);
            return x->c[slot] == c;
        }
        memcpy(c->big, c->ib + c->ib_off + HDR, have);
        c->ib_off += HDR + have;
        c->in_big = true;
        c->big_len = len;
        c->big_got = have;
        c->big_cap = cap > have ? cap : have;
    }
    if (c->ib_off == c->ib_fill)
        c->ib_off = c->ib_fill = 0;
    refresh(x, c);
    return true;
}

/* Read what c's socket holds, as far as there is room.  Returns false when
 * c was freed. */
static bool read_conn(xport_t *x, size_t slot)
{
    conn_t *c = x->c[slot];
    for (;;) {
        uint8_t *to;
        size_t room;
        bool into_big = c->in_big && c->big_got < c->big_len;
        if (into_big) {
            if (c->big_got == c->big_cap) {
                /* Doubling: what a lying header costs is BIG_FIRST, or
                 * at most twice what its peer really sent. */
                size_t cap = c->big_len - c->big_cap < c->big_cap ? c->big_len : 2 * c->big_cap;
                uint8_t *big = realloc(c->big, cap);
                if (!big) {
                    refuse(x, slot);
                    return x->c[slot] == c;
                }
                c->big = big;
                c->big_cap = cap;
            }
            to = c->big + c->big_got;
            room = c->big_cap - c->big_got;
        } else {
            /* What follows a whole large frame goes into the buffer
             * behind it (settle looks at it once the frame is taken), so
             * that the descriptor stays watched: a connection carrying
             * large frames would otherwise be unwatched and watched again,
             * two system calls, at every one of them. */
            if (c->ib_off && c->ib_fill == c->ib_cap) {
                memmove(c->ib, c->ib + c->ib_off, c->ib_fill - c->ib_off);
                c->ib_fill -= c->ib_off;
                c->ib_off = 0;
            }
            if (c->ib_fill == c->ib_cap && c->ib_cap < IB_MAX) {
                size_t cap = c->ib_cap ? 2 * c->ib_cap : IB_START;
                uint8_t *ib = realloc(c->ib, cap);
                if (!ib)
                    break;
                c->ib = ib;
                c->ib_cap = cap;
            }
            if (c->ib_fill == c->ib_cap)
                break; /* whole frames fill it: they go first */
            to = c->ib + c->ib_fill;
            room = c->ib_cap - c->ib_fill;
        }
        ssize_t r;
        while ((r = read(c->fd, to, room)) < 0 && errno == EINTR)
            ;
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            lost(x, slot);
            return x->c[slot] == c;
        }
        if (r < 0)
            break;
        if (into_big)
            c->big_got += (size_t)r;
        else
            c->ib_fill += (size_t)r;
        if (!settle(x, slot))
            return false;
        if (c->fd < 0)
            return true; /* refused, to be connected again */
        /* A short read took all the socket had. */
        if ((size_t)r < room)
            break;
    }
    refresh(x, c);
    /* Input is watched only while there is room for it, so that a full
     * buffer does not keep the descriptor readable. */
    bool full = c->ib_fill == c->ib_cap && c->ib_off == 0;
    if (c->fd >= 0 && watch(x, c, (full ? 0 : EPOLLIN) | (c->q_n ? EPOLLOUT : 0)) != 0) {
        lost(x, slot);
        return x->c[slot] == c;
    }
    return true;
}

int xport_service(xport_t *x)
{
    if (x->nwaiting || x->lfd_paused) {
        long t = now_ms();
        if (x->lfd_paused && t >= x->lfd_retry_at)
            resume_accepting(x);
        for (size_t i = 0; i < x->n && x->nwaiting; i++) {
            conn_t *c = x->c[i];
            if (c && !c->accepted && c->fd < 0 && t >= c->retry_at)
                try_connect(x, i);
        }
    }
    struct epoll_event ev[64];
    int got;
    do {
        while ((got = epoll_wait(x->epfd, ev, 64, 0)) < 0 && errno == EINTR)
            ;
        for (int k = 0; k < got; k++) {
            uint32_t slot = (uint32_t)(ev[k].data.u64 >> 32);
            if (slot == LISTEN_SLOT) {
                accept_all(x);
                continue;
            }
            if (slot >= x->n || !x->c[slot] || x->c[slot]->serial != (uint32_t)ev[k].data.u64)
                continue; /* freed by an earlier event of this batch */
            if (ev[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (!read_conn(x, slot))
                    continue;
                if (x->c[slot]->fd < 0)
                    continue;
            }
            if (ev[k].events & EPOLLOUT)
                flush_conn(x, slot);
        }
    } while (got == 64);
    return 0;
}

/* ---- the calls ------------------------------------------------------ */

int xport_listen_fd(xport_t *x, int fd)
{
    if (x->lfd >= 0) {
        close(fd);
        errno = EBUSY;
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ev_key(LISTEN_SLOT, 0)};
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
        epoll_ctl(x->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    x->lfd = fd;
    return 0;
}

int xport_adopt(xport_t *x, int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    conn_t *c = add_conn(x, fd, true);
    if (!c) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    if (watch(x, c, EPOLLIN) != 0) {
        int e = errno;
        free_conn(x, c->slot);
        errno = e;
        return -1;
    }
    return 0;
}

int xport_bind(xport_t *x, const char *path, int backlog)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t plen = strlen(path);
    if (plen >= sizeof a.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(a.sun_path, path, plen);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return xport_listen_fd(x, fd);
}

int xport_connect(xport_t *x, const char *path, const void *rid, size_t rid_len)
{
    struct sockaddr_un a;
    if (!rid || rid_len == 0 || rid_len > XPORT_RID_MAX || strlen(path) >= sizeof a.sun_path) {
        errno = EINVAL;
        return -1;
    }
    if (find(x, rid, rid_len, NULL)) {
        errno = EEXIST;
        return -1;
    }
    conn_t *c = add_conn(x, -1, false);
    if (!c) {
        errno = ENOMEM;
        return -1;
    }
    x->nwaiting++; /* from here on, free_conn counts it out */
    if (!(c->path = strdup(path))) {
        free_conn(x, c->slot);
        errno = ENOMEM;
        return -1;
    }
    memcpy(c->rid, rid, rid_len);
    c->rid_len = rid_len;
    c->named = true;
    c->retry_at = 0; /* due now */
    try_connect(x, c->slot);
    return 0;
}

int xport_disconnect(xport_t *x, const void *rid, size_t rid_len)
{
    size_t slot;
    if (!find(x, rid, rid_len, &slot)) {
        errno = ENOENT;
        return -1;
    }
    free_conn(x, slot);
    return 0;
}

/* The peer to send to, or NULL with errno. */
static conn_t *dest(xport_t *x, const void *rid, size_t rid_len, size_t len, size_t *slot)
{
    if (len == 0 || len > XPORT_FRAME_MAX) {
        errno = EMSGSIZE;
        return NULL;
    }
    conn_t *c = find(x, rid, rid_len, slot);
    if (!c)
        errno = EHOSTUNREACH;
    return c;
}

/* Try to write header and bytes at once when nothing waits before them.
 * Returns what was written (HDR + len: all), or -1 when the connection
 * was lost (what it is then is lost's business). */
static ssize_t write_now(xport_t *x, size_t slot, const void *buf, uint32_t len)
{
    conn_t *c = x->c[slot];
    if (c->fd < 0 || c->q_n)
        return 0;
    struct iovec iov[2] = {{&len, HDR}, {(void *)buf, len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t w;
    while ((w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 && errno == EINTR)
        ;
    if (w >= 0)
        return w;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    lost(x, slot);
    return -1;
}

int xport_send(xport_t *x, const void *rid, size_t rid_len, zmq_msg_t *msg)
{
    size_t slot, len = zmq_msg_size(msg);
    conn_t *c = dest(x, rid, rid_len, len, &slot);
    if (!c)
        return -1;
    ssize_t w = write_now(x, slot, zmq_msg_data(msg), (uint32_t)len);
    if (w == (ssize_t)(HDR + len) || (w < 0 && x->c[slot] != c) || (w < 0 && c->accepted)) {
        /* Sent, or the peer was lost with it (as a message zmq had taken
         * is lost with its connection). */
        zmq_msg_close(msg);
        zmq_msg_init(msg);
        return 0;
    }
    if (q_push(x, c, msg, (uint32_t)len, w > 0 ? (size_t)w : 0, false) != 0) {
        errno = ENOMEM;
        return -1;
    }
    if (c->fd >= 0)
        flush_conn(x, slot);
    return 0;
}

int xport_send_buf(xport_t *x, const void *rid, size_t rid_len, const void *buf, size_t len)
{
    size_t slot;
    conn_t *c = dest(x, rid, rid_len, len, &slot);
    if (!c)
        return -1;
    ssize_t w = write_now(x, slot, buf, (uint32_t)len);
    if (w == (ssize_t)(HDR + len) || (w < 0 && x->c[slot] != c) || (w < 0 && c->accepted))
        return 0;
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, len) != 0) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(zmq_msg_data(&m), buf, len);
    int rc = q_push(x, c, &m, (uint32_t)len, w > 0 ? (size_t)w : 0, false);
    zmq_msg_close(&m);
    if (rc != 0) {
        errno = ENOMEM;
        return -1;
    }
    if (c->fd >= 0)
        flush_conn(x, slot);
    return 0;
}

static void free_big(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* Hand out c's next whole frame into msg. */
static int take(xport_t *x, size_t slot, void *rid, size_t *rid_len, zmq_msg_t *msg)
{
    conn_t *c = x->c[slot];
    if (c->in_big) {
        zmq_msg_close(msg);
        if (zmq_msg_init_data(msg, c->big, c->big_len, free_big, NULL) != 0) {
            zmq_msg_init(msg);
            errno = ENOMEM;
            return -1;
        }
        c->big = NULL;
        c->in_big = false;
    } else {
        uint32_t len;
        memcpy(&len, c->ib + c->ib_off, HDR);
        zmq_msg_close(msg);
        if (zmq_msg_init_size(msg, len) != 0) {
            zmq_msg_init(msg);
            errno = ENOMEM;
            return -1;
        }
        memcpy(zmq_msg_data(msg), c->ib + c->ib_off + HDR, len);
        c->ib_off += HDR + len;
    }
    memcpy(rid, c->rid, c->rid_len);
    *rid_len = c->rid_len;
    bool was_full = c->fd >= 0 && !(c->events & EPOLLIN);
    if (!settle(x, slot))
        return 0;
    if (c->gone && !c->ready) {
        free_conn(x, slot);
        return 0;
    }
    /* Room again: read now what waited for it (its descriptor stayed
     * quiet meanwhile), and watch it again. */
    if (was_full)
        (void)read_conn(x, slot);
    return 0;
}

int xport_recv(xport_t *x, void *rid, size_t *rid_len, zmq_msg_t *msg)
{
    for (int pass = 0; pass < 2; pass++) {
        if (x->nready)
            for (size_t k = 0; k < x->n; k++) {
                size_t i = (x->rr + k) % x->n;
                if (x->c[i] && x->c[i]->ready) {
                    x->rr = (i + 1) % x->n;
                    return take(x, i, rid, rid_len, msg);
                }
            }
        if (pass == 0)
            (void)xport_service(x);
    }
    errno = EAGAIN;
    return -1;
}

size_t xport_flush(xport_t *x)
{
    for (size_t i = 0; i < x->n && x->queued; i++)
        if (x->c[i] && x->c[i]->q_n && x->c[i]->fd >= 0)
            flush_conn(x, i);
    return x->queued;
}

bool xport_is(const void *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w == XPORT_MAGIC;
}

int xport_fd(const xport_t *x)
{
    return x->epfd;
}

bool xport_has_input(const xport_t *x)
{
    return x->nready > 0;
}

long xport_due_ms(const xport_t *x)
{
    if (!x->nwaiting && !x->lfd_paused)
        return -1;
    long t = now_ms(), due = -1;
    if (x->lfd_paused)
        due = x->lfd_retry_at > t ? x->lfd_retry_at - t : 0;
    for (size_t i = 0; i < x->n; i++) {
        const conn_t *c = x->c[i];
        if (c && !c->accepted && c->fd < 0) {
            long d = c->retry_at > t ? c->retry_at - t : 0;
            if (due < 0 || d < due)
                due = d;
        }
    }
    return due;
}

bool xport_unwritten(const xport_t *x)
{
    return x->queued || x->nwaiting || x->lfd_paused;
}

bool xport_has_peer(const xport_t *x, const void *rid, size_t rid_len)
{
    return find(x, rid, rid_len, NULL) != NULL;
}

size_t xport_queued(const xport_t *x)
{
    return x->queued;
}

uint64_t xport_refused(const xport_t *x)
{
    return x->refused;
}

void xport_destroy(xport_t **xp)
{
    xport_t *x = xp ? *xp : NULL;
    if (!x)
        return;
    for (size_t i = 0; i < x->n; i++)
        if (x->c[i])
            free_conn(x, i);
    free(x->c);
    if (x->lfd >= 0)
        close(x->lfd);
    close(x->epfd);
    x->magic = 0;
    free(x);
    *xp = NULL;
}
