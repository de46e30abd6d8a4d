/* examples/lineserver.c — a TCP line server whose work is done by a
 * parallel graph fed from its own event loop: one thread, one epoll, no
 * thread of mpx's.  Each request line names a file under DIR; a worker
 * reads it, computes its CRC-32 and its size deflated (zlib, level 6), and
 * the reply goes back to the client that asked, when its result arrives.
 *
 *     lineserver [-j WORKERS] [-p PORT] [-c CAPACITY] [-m MAX_CLIENTS]
 *                [--kill-at K [--kill-times N]] DIR
 *     lineserver --dot              the graph in Graphviz DOT, not run
 *
 * It listens on 127.0.0.1 only, port PORT (default 0: the kernel chooses),
 * and prints "port N" on stdout once it accepts connections.  On SIGTERM or
 * SIGINT it stops accepting and reading, answers every request it had
 * taken, closes each connection (waiting up to 2 s for the clients to
 * close theirs) and prints a summary line:
 *
 *     connections: C  requests: R  replies: W  orphans: O  duplicates: D
 *     pauses: P  restarts: X                                  (one line)
 *
 * requests taken (put into the graph), replies made, orphans (results
 * whose client had left), duplicates (second results dropped, see
 * below), pauses (puts that said MPX_EAGAIN) and workers replaced.  A
 * run that ends well has R = W + O.  Signals during the drain are
 * ignored: it ends by itself (SIGKILL for the impatient).
 *
 *   program ──▶ digest ×WORKERS ──▶ program
 *
 * The protocol: a request is a line (up to 4096 bytes before the "\n"; a
 * "\r" before the "\n" is dropped; the last line needs no "\n"), the path
 * of a regular file relative to DIR.  The reply is one line,
 *
 *     <CRC-32, 8 hex digits> <size> <deflated size> <path>
 *     ERROR <path>: <reason>
 *
 * where the deflated size is that of a raw deflate stream (zlib level 6,
 * window 15, memLevel 8: python3's zlib.compressobj(6, zlib.DEFLATED, -15)).
 * A client may send many requests without waiting (pipelining): replies
 * come in the order of that connection's requests, as an HTTP/1.1 or Redis
 * client expects, whatever order the workers finish in.  A client that
 * half-closes (shutdown(SHUT_WR)) gets its remaining replies, then the
 * server closes.  A line longer than the limit gets "ERROR request line
 * longer than 4096 bytes" after the replies before it, and the connection
 * ends.  Paths cannot leave DIR: ".." and absolute paths are refused
 * ("outside the served directory"), and so are symbolic links ("a symbolic
 * link (not followed)"), even those that would stay inside.
 *
 * How a result finds its connection: before each put the loop sets the
 * input meta "conn" (the connection's slot and generation) and "seq" (the
 * request's number on that connection).  Meta travels with the item, so
 * the result carries them back.  A result for a connection that has gone
 * since is dropped; the generation tells a new connection in the same slot
 * from the old one.  Order is restored per connection, not globally (not
 * mpx_seq): a slow request holds back only its own client's later replies.
 *
 * Bounds: a connection has at most 64 requests in the graph or waiting to
 * be written, and is not read while that many are out or while 64 KiB of
 * replies wait for it to read them; the graph's input holds what its
 * capacity allows (-c: items per worker).  When a put says MPX_EAGAIN the
 * loop stops reading every socket (the request stays in its buffer) until
 * mpx_graph_dispatch reports room (MPX_DISPATCH_INPUT).  So memory stays
 * bounded however fast clients send and however slowly they read.
 *
 * Failures: the workers are restarted (mpx_node_set_retries(g, 2)): a
 * worker that dies is replaced and its requests are handled again, so
 * every request still gets its one reply.  A request handled twice (one a
 * dead worker had finished but not yet confirmed) is answered once: the
 * second result finds its slot filled, or already written, and is
 * dropped; so is a second result for a client that has left (the
 * server remembers which of a closed connection's requests are still
 * out).  A request that kills three workers in a row is answered
 *
 *     ERROR request failed: <why, as mpx says it>
 *
 * and the server goes on: the graph's policy is MPX_ON_ERROR_RESULT, so
 * such a request comes back as an error result carrying the request's
 * meta (hence its connection), not as the end of the graph.  (The path is
 * not repeated there: the error result has no parts, only the meta.)
 * --kill-at K makes the worker that takes request number K (counted from
 * 0 over all connections: its mpx.index) kill itself with SIGKILL, the
 * first N times it is handed that request (--kill-times, default 1), to
 * show both.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <mpx.h>

#define MAX_LINE 4096                  /* bytes of a request, "\n" excluded */
#define REPLY_MAX (MAX_LINE + 64)      /* hex, two sizes and the path */
#define MAX_PENDING 64                 /* requests a connection has out */
#define OUT_HIGH (64 * 1024)           /* unread replies that stop reading */
#define LINGER_MS 2000                 /* after the end: for clients to close */

/* ---- digest: a path in, its reply line out ---------------------------------- */

typedef struct digest_args {
    int dirfd;          /* DIR, opened before the graph forks: every worker has it */
    int64_t kill_at;    /* the mpx.index to die on, or -1 */
    int kill_times;     /* how many times */
    atomic_int *killed; /* times so far, shared by all workers and replacements */
} digest_args;

typedef struct digest_state {
    z_stream z;
    bool ready;
    unsigned char in[65536], out[65536];
    char path[MAX_LINE + 1];
    char reply[REPLY_MAX];
} digest_state;

/* One deflate stream per worker, reset per file, as compress.c does. */
static int digest_setup(mpx_stage_t *st)
{
    digest_state *s = mpx_state(st);
    /* A SIGTERM sent to the whole process group (systemd's stop, timeout,
     * kill -- -PGID) is for the server, which drains: the workers end when
     * their input does.  Without this they would die mid-request, and be
     * replaced as crashed workers during the drain.  mpx itself never
     * stops a stage with SIGTERM (a message, then SIGKILL). */
    signal(SIGTERM, SIG_IGN);
    if (deflateInit2(&s->z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return mpx_fail(st, "deflateInit2: %s", s->z.msg ? s->z.msg : "failed");
    s->ready = true;
    return 0;
}

static int digest_teardown(mpx_stage_t *st)
{
    digest_state *s = mpx_state(st);
    if (s->ready)
        deflateEnd(&s->z);
    s->ready = false;
    return 0;
}

/* DIR/path for reading, never anything outside DIR: each component is
 * opened from the one before it, and "..", a leading "/" and symbolic
 * links are refused, so that nothing leads out, not even a link made
 * meanwhile.  A descriptor, or -1 with errno set: EXDEV for ".." or "/",
 * ELOOP for a link.  (openat2's RESOLVE_BENEATH would do it in one call,
 * and allow links that stay inside, but valgrind 3.19 does not know that
 * call.)  O_NONBLOCK: opening a FIFO must not wait for a writer. */
static int open_beneath(int dirfd, const char *path, char *buf, size_t cap)
{
    size_t len = strlen(path);
    if (path[0] == '/') {
        errno = EXDEV;
        return -1;
    }
    if (len >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    int at = dirfd;
    for (char *name = buf, *slash;; name = slash + 1) {
        slash = strchr(name, '/');
        if (slash) {
            *slash = '\0';
            if (name[0] == '\0' || strcmp(name, ".") == 0)
                continue; /* "a//b", "./b" */
        }
        int fd = -1, err = 0;
        struct stat sb;
        if (strcmp(name, "..") == 0)
            err = EXDEV;
        else if (!slash)
            fd = openat(at, name, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        else if ((fd = openat(at, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)) >= 0 &&
                 fstat(fd, &sb) == 0 && !S_ISDIR(sb.st_mode))
            err = S_ISLNK(sb.st_mode) ? ELOOP : ENOTDIR;
        if (fd < 0 && !err)
            err = errno;
        if (at != dirfd)
            close(at);
        if (err) {
            if (fd >= 0)
                close(fd);
            errno = err;
            return -1;
        }
        if (!slash)
            return fd;
        at = fd;
    }
}

/* Feed the deflate stream until it has taken its input (flush Z_NO_FLUSH)
 * or ended (Z_FINISH), counting what it makes: only the size is wanted. */
static int deflate_count(digest_state *s, int flush, uint64_t *packed)
{
    int zrc;
    do {
        s->z.next_out = s->out;
        s->z.avail_out = sizeof s->out;
        zrc = deflate(&s->z, flush);
        if (zrc == Z_STREAM_ERROR)
            return -1;
        *packed += sizeof s->out - s->z.avail_out;
    } while (s->z.avail_out == 0 || (flush == Z_FINISH && zrc != Z_STREAM_END));
    return 0;
}

/* CRC-32, size and deflated size of what fd holds: 0, or an errno. */
static int digest_fd(digest_state *s, int fd, uLong *crc, uint64_t *size, uint64_t *packed)
{
    if (deflateReset(&s->z) != Z_OK)
        return EIO;
    *crc = crc32_z(0, NULL, 0);
    *size = *packed = 0;
    for (;;) {
        ssize_t n = read(fd, s->in, sizeof s->in);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            break;
        *crc = crc32_z(*crc, s->in, (size_t)n);
        *size += (uint64_t)n;
        s->z.next_in = s->in;
        s->z.avail_in = (uInt)n;
        if (deflate_count(s, Z_NO_FLUSH, packed) != 0)
            return EIO;
    }
    s->z.next_in = s->in;
    s->z.avail_in = 0;
    return deflate_count(s, Z_FINISH, packed) == 0 ? 0 : EIO;
}

/* Anything wrong with the request is the client's answer, not the
 * stage's failure: the stage fails only when it cannot put. */
static int digest_process(mpx_stage_t *st, mpx_item_t *item)
{
    const digest_args *a = mpx_args(st);
    digest_state *s = mpx_state(st);
    int64_t index;
    if (a->kill_at >= 0 && mpx_meta_i64(st, "mpx.index", &index) == 0 && index == a->kill_at &&
        atomic_fetch_add(a->killed, 1) < a->kill_times)
        raise(SIGKILL);

    const char *path = mpx_item_str(item); /* parts are followed by a NUL */
    const char *why = NULL;
    int err = 0, len;
    uLong crc = 0;
    uint64_t size = 0, packed = 0;
    if (strlen(path) != mpx_item_size(item, 0)) {
        why = "a NUL byte in the path";
    } else {
        int fd = open_beneath(a->dirfd, path, s->path, sizeof s->path);
        struct stat sb;
        if (fd < 0)
            err = errno;
        else if (fstat(fd, &sb) != 0)
            err = errno;
        else if (!S_ISREG(sb.st_mode))
            why = "not a regular file";
        else
            err = digest_fd(s, fd, &crc, &size, &packed);
        if (fd >= 0)
            close(fd);
        if (err == EXDEV)
            why = "outside the served directory";
        else if (err == ELOOP)
            why = "a symbolic link (not followed)";
        else if (err)
            why = strerror(err);
    }
    if (why)
        len = snprintf(s->reply, sizeof s->reply, "ERROR %s: %s", path, why);
    else
        len = snprintf(s->reply, sizeof s->reply, "%08lx %" PRIu64 " %" PRIu64 " %s",
                       (unsigned long)crc, size, packed, path);
    if (len < 0 || (size_t)len >= sizeof s->reply)
        return mpx_fail(st, "a reply longer than %d bytes", REPLY_MAX);
    return mpx_put(st, s->reply, (size_t)len);
}

static const mpx_stage_def_t Digest = {
    .name = "digest",
    .args_size = sizeof(digest_args),
    .state_size = sizeof(digest_state),
    .setup = digest_setup,
    .process = digest_process,
    .teardown = digest_teardown,
};

/* ---- connections ------------------------------------------------------------- */

/* A request's reply, once its result came; text NULL until then. */
typedef struct reply {
    char *text;
    size_t len;
} reply;

typedef struct conn {
    int fd;
    uint64_t id;     /* slot | generation << 32: meta "conn" and the epoll tag */
    uint32_t events; /* what epoll watches for it now */
    bool eof;        /* the client sent its last request */
    bool too_long;   /* a line over MAX_LINE: answer what came before, then end */
    bool told;       /* ... and the client has been told so */
    bool shut;       /* our side is shut: waiting for the client's end */
    char in[MAX_LINE + 1]; /* a whole line and its "\n" */
    size_t beg, end;       /* unconsumed input: in[beg, end) */
    uint64_t head, next;   /* oldest request not yet written; next request */
    reply ring[MAX_PENDING]; /* request seq is at ring[seq % MAX_PENDING] */
    char *out;
    size_t outbeg, outend, outcap;
} conn;

/* A connection that closed while some of its requests were still in the
 * graph: which of them (bit i: request base + i) have not come back.  The
 * first result of each is an orphan; another (a request handled again
 * after a worker died) is a duplicate, as it would be for a connection
 * still open, so that R = W + O however the two meet.  Dropped once every
 * one has come. */
typedef struct ghost {
    uint64_t id, base, pending;
} ghost;

/* Epoll tags of the descriptors that are not connections: ids never reach
 * them (a slot is below 2^32, a generation below 2^31). */
#define TAG_GRAPH UINT64_MAX
#define TAG_LISTEN (UINT64_MAX - 1)
#define TAG_SIGNAL (UINT64_MAX - 2)

typedef struct server {
    mpx_graph_t *g;
    int ep, lfd, sfd, gfd;
    conn **slots;    /* max_conns of them, NULL when free */
    uint32_t *gens;  /* each slot's generation, bumped when it is freed */
    size_t max_conns, nopen, scan;
    size_t resume_at; /* the slot a put said MPX_EAGAIN for: served first */
    bool paused;     /* a put said MPX_EAGAIN: no reading until room */
    bool accept_off; /* out of descriptors or slots: no accepting */
    bool draining;   /* a signal came: no new requests, finish the rest */
    bool ended;      /* the graph has ended and been joined */
    bool quit;       /* leave the loop now */
    bool running;    /* it said its port: a summary is due */
    int status;      /* exit status */
    struct timespec linger_until;
    uint64_t connections, requests, replies, orphans, duplicates, pauses;
    ghost *ghosts;
    size_t nghosts, capghosts;
} server;

static void server_fail(server *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void server_fail(server *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lineserver: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    s->status = EXIT_FAILURE;
    s->quit = true;
}

static conn *conn_find(server *s, uint64_t id)
{
    uint64_t slot = id & 0xffffffffu;
    if (slot >= s->max_conns || !s->slots[slot] || s->slots[slot]->id != id)
        return NULL;
    return s->slots[slot];
}

static void listen_watch(server *s);

/* A result for connection `id`, which has closed: whether it is the first
 * for its request (an orphan) rather than a second. */
static bool ghost_first(server *s, uint64_t id, uint64_t seq)
{
    for (size_t i = 0; i < s->nghosts; i++) {
        ghost *g = &s->ghosts[i];
        if (g->id != id)
            continue;
        uint64_t bit = seq >= g->base && seq - g->base < 64 ? (uint64_t)1 << (seq - g->base) : 0;
        if (!(g->pending & bit))
            return false;
        g->pending &= ~bit;
        if (!g->pending)
            s->ghosts[i] = s->ghosts[--s->nghosts];
        return true;
    }
    return false;
}

/* The connection is over: whatever it still had in the graph is dropped
 * when it comes back (its id no longer matches). */
static void conn_close(server *s, conn *c)
{
    uint64_t slot = c->id & 0xffffffffu;
    if (epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL) != 0)
        server_fail(s, "epoll_ctl: %s", strerror(errno));
    close(c->fd);
    uint64_t pending = 0; /* at most MAX_PENDING (64) requests are out */
    for (uint64_t q = c->head; q < c->next; q++)
        if (!c->ring[q % MAX_PENDING].text)
            pending |= (uint64_t)1 << (q - c->head);
    if (pending && s->nghosts == s->capghosts) {
        size_t cap = s->capghosts ? 2 * s->capghosts : 16;
        ghost *g = realloc(s->ghosts, cap * sizeof *g);
        if (g) {
            s->ghosts = g;
            s->capghosts = cap;
        }
    }
    if (pending && s->nghosts < s->capghosts)
        s->ghosts[s->nghosts++] = (ghost){c->id, c->head, pending};
    else if (pending)
        server_fail(s, "out of memory");
    for (size_t i = 0; i < MAX_PENDING; i++) {
        s->orphans += c->ring[i].text != NULL; /* came, but never to be written */
        free(c->ring[i].text);
    }
    free(c->out);
    free(c);
    s->slots[slot] = NULL;
    s->gens[slot] = (s->gens[slot] + 1) & 0x7fffffffu;
    s->nopen--;
    if (s->accept_off) {
        s->accept_off = false;
        listen_watch(s);
    }
}

static bool may_read(const server *s, const conn *c)
{
    return !c->eof && !c->too_long && !c->shut && !s->paused && !s->draining &&
           c->next - c->head < MAX_PENDING && c->outend - c->outbeg < OUT_HIGH &&
           c->end - c->beg < sizeof c->in;
}

/* Tell epoll what the connection waits for now.  Level-triggered: a
 * socket we are not ready to read must not be watched for input, or
 * epoll_wait would return at once, again and again. */
static void conn_watch(server *s, conn *c)
{
    uint32_t ev = c->shut || may_read(s, c) ? EPOLLIN : 0;
    if (c->outbeg < c->outend)
        ev |= EPOLLOUT;
    if (ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.u64 = c->id};
    if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &e) != 0)
        server_fail(s, "epoll_ctl: %s", strerror(errno));
    c->events = ev;
}

/* Reading stops everywhere while the graph has no room, and starts again
 * when it has: one epoll_ctl per connection each way. */
static void set_paused(server *s, bool paused)
{
    if (s->paused == paused)
        return;
    s->paused = paused;
    for (size_t i = 0; i < s->max_conns; i++)
        if (s->slots[i])
            conn_watch(s, s->slots[i]);
}

static int put_request(server *s, conn *c, const char *line, size_t len)
{
    int rc = mpx_graph_meta_set_i64(s->g, "conn", (int64_t)c->id);
    if (rc == 0)
        rc = mpx_graph_meta_set_i64(s->g, "seq", (int64_t)c->next);
    if (rc == 0)
        rc = mpx_graph_put(s->g, line, len);
    if (rc == 0) {
        c->next++;
        s->requests++;
    }
    return rc;
}

/* Put the whole lines the connection holds, as far as the graph and the
 * connection's own bound allow; what is not put stays for later. */
static void conn_take_lines(server *s, conn *c)
{
    while (c->beg < c->end && !s->paused && !s->draining && !c->too_long &&
           c->next - c->head < MAX_PENDING) {
        char *line = c->in + c->beg;
        char *nl = memchr(line, '\n', c->end - c->beg);
        if (!nl && !c->eof)
            break;
        size_t used = nl ? (size_t)(nl - line) + 1 : c->end - c->beg;
        size_t len = nl ? (size_t)(nl - line) : used;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        int rc = put_request(s, c, line, len);
        if (rc == MPX_EAGAIN || rc == MPX_ESTOPPED) {
            /* MPX_ESTOPPED: the graph has ended; its descriptor says so
             * next, and the end is handled there. */
            s->pauses += rc == MPX_EAGAIN;
            s->resume_at = c->id & 0xffffffffu;
            set_paused(s, true);
            break;
        }
        if (rc != 0) {
            server_fail(s, "mpx_graph_put: %s", mpx_strerror(rc));
            return;
        }
        c->beg += used;
    }
    if (c->beg == c->end) {
        c->beg = c->end = 0;
    } else if (c->beg > 0) {
        memmove(c->in, c->in + c->beg, c->end - c->beg);
        c->end -= c->beg;
        c->beg = 0;
    }
    if (!c->eof && c->end == sizeof c->in && !memchr(c->in, '\n', c->end))
        c->too_long = true;
}

static bool out_append(conn *c, const char *text, size_t len)
{
    if (c->outend + len > c->outcap) {
        size_t cap = c->outcap ? c->outcap : 4096;
        while (cap < c->outend + len)
            cap *= 2;
        char *out = realloc(c->out, cap);
        if (!out)
            return false;
        c->out = out;
        c->outcap = cap;
    }
    memcpy(c->out + c->outend, text, len);
    c->outend += len;
    return true;
}

/* Nothing more will be asked on the connection and everything asked has
 * been answered and sent: end it.  A client that sent its end is closed
 * at once; otherwise our side is shut first and the client's end awaited
 * (closing with its bytes unread would reset the connection and could
 * destroy replies it has not read yet).  Returns false once closed. */
static bool conn_end_if_done(server *s, conn *c)
{
    bool asking = !c->too_long && !s->draining && !(c->eof && c->beg == c->end);
    if (asking || c->head != c->next || c->shut)
        return true;
    if (c->too_long && !c->told) {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "ERROR request line longer than %d bytes\n", MAX_LINE);
        if (!out_append(c, msg, (size_t)n)) {
            server_fail(s, "out of memory");
            return true;
        }
        c->told = true;
    }
    if (c->outbeg < c->outend)
        return true; /* once sent */
    if (c->eof) {
        conn_close(s, c);
        return false;
    }
    shutdown(c->fd, SHUT_WR);
    c->shut = true;
    return true;
}

static bool conn_flush(server *s, conn *c);

/* After anything changed on a connection: take its lines, end it if it
 * is done, and watch for what it waits for now. */
static void conn_settle(server *s, conn *c)
{
    conn_take_lines(s, c);
    if (!conn_end_if_done(s, c))
        return;
    if (c->outbeg < c->outend && !conn_flush(s, c))
        return;
    conn_watch(s, c);
}

/* Send what the connection has to send, as far as the socket takes it.
 * Returns false when the client is gone (the connection is closed). */
static bool conn_flush(server *s, conn *c)
{
    while (c->outbeg < c->outend) {
        ssize_t n = send(c->fd, c->out + c->outbeg, c->outend - c->outbeg,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n < 0) {
            conn_close(s, c); /* EPIPE, ECONNRESET: the client left */
            return false;
        }
        c->outbeg += (size_t)n;
    }
    c->outbeg = c->outend = 0;
    /* Sent all: the connection may have been waiting for that to end. */
    if (!conn_end_if_done(s, c))
        return false;
    return true;
}

/* Write out the replies that are next in the connection's order. */
static void conn_advance(server *s, conn *c)
{
    while (c->head < c->next) {
        reply *r = &c->ring[c->head % MAX_PENDING];
        if (!r->text)
            break;
        bool ok = out_append(c, r->text, r->len);
        free(r->text);
        r->text = NULL;
        if (!ok) {
            server_fail(s, "out of memory");
            return;
        }
        c->head++;
        s->replies++;
    }
    if (conn_flush(s, c))
        conn_settle(s, c);
}

/* A result from the graph: its meta says for whom. */
static void deliver(server *s, const mpx_item_t *it)
{
    int64_t id, seq;
    if (mpx_item_meta_i64(it, "conn", &id) != 0 || mpx_item_meta_i64(it, "seq", &seq) != 0) {
        server_fail(s, "a result without its conn and seq meta");
        return;
    }
    conn *c = conn_find(s, (uint64_t)id);
    if (!c) {
        if (ghost_first(s, (uint64_t)id, (uint64_t)seq))
            s->orphans++; /* the client left before its reply came */
        else
            s->duplicates++; /* ... and this request was handled again */
        return;
    }
    uint64_t q = (uint64_t)seq;
    reply *r = &c->ring[q % MAX_PENDING];
    if (q < c->head || r->text) {
        s->duplicates++; /* a request handled again after a worker died */
        return;
    }
    if (q >= c->next) {
        server_fail(s, "a result for request %" PRIu64 " of a connection that made %" PRIu64,
                    q, c->next);
        return;
    }
    /* An error result: the workers failed on this request (retries
     * exhausted); its meta still says for whom. */
    const char *error = mpx_item_error(it);
    char failed[REPLY_MAX];
    const char *text = mpx_item_data(it, 0);
    size_t len = mpx_item_size(it, 0);
    if (error) {
        int n = snprintf(failed, sizeof failed, "ERROR request failed: %s", error);
        text = failed;
        len = n < 0 ? 0 : (size_t)n < sizeof failed ? (size_t)n : sizeof failed - 1;
    }
    r->text = malloc(len + 1);
    if (!r->text) {
        server_fail(s, "out of memory");
        return;
    }
    memcpy(r->text, text, len);
    r->text[len] = '\n';
    r->len = len + 1;
    conn_advance(s, c);
}

/* Readable: requests, the client's end, or (once our side is shut) bytes
 * to discard until its end. */
static void conn_read(server *s, conn *c)
{
    if (c->shut) {
        char sink[4096];
        ssize_t n = recv(c->fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            conn_close(s, c);
        return;
    }
    if (!may_read(s, c)) {
        conn_watch(s, c); /* an event from before the change of mind */
        return;
    }
    ssize_t n = recv(c->fd, c->in + c->end, sizeof c->in - c->end, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        conn_close(s, c); /* ECONNRESET: the client left */
        return;
    }
    if (n == 0)
        c->eof = true;
    c->end += (size_t)n;
    conn_settle(s, c);
}

static void conn_event(server *s, conn *c, uint32_t events)
{
    /* An error or a hang-up (both ways shut, or reset) ends it whatever
     * is pending: nobody is left to read the replies. */
    if (events & (EPOLLERR | EPOLLHUP)) {
        conn_close(s, c);
        return;
    }
    uint64_t id = c->id;
    if (events & EPOLLOUT) {
        if (!conn_flush(s, c))
            return;
        conn_settle(s, c);
    }
    if ((events & EPOLLIN) && (c = conn_find(s, id))) /* settle may have closed it */
        conn_read(s, c);
}

static void conn_open(server *s, int fd)
{
    size_t slot = s->scan;
    while (s->slots[slot])
        slot = (slot + 1) % s->max_conns;
    s->scan = (slot + 1) % s->max_conns;
    conn *c = calloc(1, sizeof *c);
    int one = 1;
    if (!c) {
        fprintf(stderr, "lineserver: out of memory: a client turned away\n");
        close(fd);
        return;
    }
    /* Small replies, written as they come: Nagle's delay would hold a
     * reply back until the previous one is acknowledged. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        fprintf(stderr, "lineserver: TCP_NODELAY: %s\n", strerror(errno));
    c->fd = fd;
    c->id = (uint64_t)slot | (uint64_t)s->gens[slot] << 32;
    c->events = EPOLLIN;
    struct epoll_event e = {.events = c->events, .data.u64 = c->id};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
        server_fail(s, "epoll_ctl: %s", strerror(errno));
        close(fd);
        free(c);
        return;
    }
    s->slots[slot] = c;
    s->nopen++;
    s->connections++;
    conn_watch(s, c); /* perhaps not readable yet: paused */
}

/* ---- the listening socket, signals, the graph ---------------------------------- */

static void listen_watch(server *s)
{
    if (s->lfd < 0)
        return;
    struct epoll_event e = {.events = s->accept_off ? 0 : EPOLLIN, .data.u64 = TAG_LISTEN};
    if (epoll_ctl(s->ep, EPOLL_CTL_MOD, s->lfd, &e) != 0)
        server_fail(s, "epoll_ctl: %s", strerror(errno));
}

static void accept_clients(server *s)
{
    while (!s->accept_off && s->nopen < s->max_conns) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_open(s, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) &&
            s->nopen > 0) {
            /* Watching on would wake us for nothing until a client leaves. */
            fprintf(stderr, "lineserver: accept: %s; waiting for a client to leave\n",
                    strerror(errno));
            break;
        }
        server_fail(s, "accept: %s", strerror(errno));
        return;
    }
    s->accept_off = true;
    listen_watch(s);
}

/* No new clients nor requests: close the input and answer what was taken. */
static void begin_drain(server *s)
{
    s->draining = true;
    if (s->lfd >= 0) {
        if (epoll_ctl(s->ep, EPOLL_CTL_DEL, s->lfd, NULL) != 0)
            server_fail(s, "epoll_ctl: %s", strerror(errno));
        close(s->lfd); /* new connections are refused from now on */
        s->lfd = -1;
    }
    if (!s->ended) {
        int rc = mpx_graph_close_input(s->g);
        if (rc != 0)
            server_fail(s, "mpx_graph_close_input: %s", mpx_strerror(rc));
    }
    for (size_t i = 0; i < s->max_conns; i++)
        if (s->slots[i])
            conn_settle(s, s->slots[i]);
}

static void on_signal(server *s)
{
    struct signalfd_siginfo si;
    ssize_t n = read(s->sfd, &si, sizeof si);
    if (n != (ssize_t)sizeof si)
        return; /* EAGAIN: another event had it */
    /* Once draining, another signal changes nothing: a group's SIGTERM
     * may well reach us twice (timeout(1) signals its child, then the
     * group), and the drain ends by itself. */
    if (!s->draining)
        begin_drain(s);
}

/* The graph has ended (its input closed and drained, or a failure):
 * every result is in.  A connection still waiting for one never gets it. */
static void graph_ended(server *s)
{
    s->ended = true;
    if (epoll_ctl(s->ep, EPOLL_CTL_DEL, s->gfd, NULL) != 0) /* readable for good now */
        server_fail(s, "epoll_ctl: %s", strerror(errno));
    int rc = mpx_graph_join(s->g);
    if (rc != 0) {
        fprintf(stderr, "lineserver: %s\n", mpx_graph_error(s->g));
        s->status = EXIT_FAILURE;
    }
    if (!s->draining)
        begin_drain(s);
    for (size_t i = 0; i < s->max_conns; i++)
        if (s->slots[i] && s->slots[i]->head != s->slots[i]->next)
            conn_close(s, s->slots[i]);
    clock_gettime(CLOCK_MONOTONIC, &s->linger_until);
    s->linger_until.tv_sec += LINGER_MS / 1000;
}

static void serve_graph(server *s)
{
    int what = mpx_graph_dispatch(s->g), rc;
    if (what < 0) {
        server_fail(s, "mpx_graph_dispatch: %s", mpx_strerror(what));
        return;
    }
    if (what == 0) {
        graph_ended(s);
        return;
    }
    if (what & MPX_DISPATCH_OUTPUT) {
        mpx_item_t *it;
        while (!s->quit && (rc = mpx_graph_poll(s->g, 0, &it)) == 1)
            deliver(s, it);
        if (rc == 0) {
            graph_ended(s);
            return;
        }
        if (rc < 0 && rc != MPX_ETIMEDOUT && rc != MPX_EINTR) {
            server_fail(s, "mpx_graph_poll: %s", mpx_strerror(rc));
            return;
        }
    }
    /* Room again: the lines already read go first, from the connection
     * that was refused, so that no client is always last.  Each is
     * watched for input again as it is settled, unless a put pauses
     * again. */
    if ((what & MPX_DISPATCH_INPUT) && s->paused && !s->quit) {
        s->paused = false;
        for (size_t k = 0; k < s->max_conns && !s->paused && !s->quit; k++) {
            conn *c = s->slots[(s->resume_at + k) % s->max_conns];
            if (c)
                conn_settle(s, c);
        }
    }
}

static long ms_until(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (t->tv_sec - now.tv_sec) * 1000 + (t->tv_nsec - now.tv_nsec) / 1000000;
    return ms > 0 ? ms : 0;
}

static void serve(server *s)
{
    struct epoll_event evs[64];
    while (!s->quit && !(s->ended && s->nopen == 0)) {
        long timeout = s->ended ? ms_until(&s->linger_until) : -1;
        int n = epoll_wait(s->ep, evs, 64, (int)timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            server_fail(s, "epoll_wait: %s", strerror(errno));
            return;
        }
        if (n == 0 && s->ended)
            break; /* clients that did not close in time */
        for (int i = 0; i < n && !s->quit; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_GRAPH) {
                if (!s->ended)
                    serve_graph(s);
            } else if (tag == TAG_LISTEN) {
                if (s->lfd >= 0)
                    accept_clients(s);
            } else if (tag == TAG_SIGNAL) {
                on_signal(s);
            } else {
                conn *c = conn_find(s, tag); /* NULL: closed by an earlier event */
                if (c)
                    conn_event(s, c, evs[i].events);
            }
        }
    }
}

/* ---- main -------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: lineserver [-j WORKERS] [-p PORT] [-c CAPACITY] [-m MAX_CLIENTS]\n"
               "                  [--kill-at K [--kill-times N]] DIR\n"
               "       lineserver --dot\n"
               "Serve on 127.0.0.1:PORT (0: any; printed as \"port N\"): each request line\n"
               "names a file under DIR, answered with \"CRC32 SIZE DEFLATED_SIZE PATH\" or\n"
               "\"ERROR PATH: REASON\", in the order asked, by WORKERS processes.\n"
               "--kill-at K: the worker that takes request K kills itself (N times).\n");
}

static bool parse_count(const char *s, unsigned long long lo, unsigned long long hi,
                        unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

typedef struct options {
    unsigned long long workers, port, capacity, max_conns, kill_at, kill_times;
    bool kill, dot;
    const char *dir;
} options;

static int parse_options(int argc, char **argv, options *o)
{
    *o = (options){.workers = 2, .max_conns = 1024, .kill_times = 1};
    static const struct option long_options[] = {{"dot", no_argument, NULL, 'D'},
                                                 {"kill-at", required_argument, NULL, 'K'},
                                                 {"kill-times", required_argument, NULL, 'T'},
                                                 {0}};
    for (int opt; (opt = getopt_long(argc, argv, "j:p:c:m:h", long_options, NULL)) != -1;) {
        bool ok = true;
        switch (opt) {
        case 'j': ok = parse_count(optarg, 1, 256, &o->workers); break;
        case 'p': ok = parse_count(optarg, 0, 65535, &o->port); break;
        case 'c': ok = parse_count(optarg, 1, 1000000, &o->capacity); break;
        case 'm': ok = parse_count(optarg, 1, 100000, &o->max_conns); break;
        case 'K': ok = parse_count(optarg, 0, INT64_MAX, &o->kill_at), o->kill = true; break;
        case 'T': ok = parse_count(optarg, 1, 1000, &o->kill_times); break;
        case 'D': o->dot = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return -1;
        }
        if (!ok) {
            char name[] = {'-', (char)opt, '\0'};
            fprintf(stderr, "lineserver: bad value for %s: %s\n",
                    opt == 'K' ? "--kill-at" : opt == 'T' ? "--kill-times" : name, optarg);
            return -1;
        }
    }
    if (argc - optind == 1)
        o->dir = argv[optind];
    else if (!(o->dot && argc == optind)) {
        usage(stderr);
        return -1;
    }
    return 1;
}

/* 127.0.0.1:port, non-blocking; -1 once said why. */
static int listen_on(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "lineserver: socket: %s\n", strerror(errno));
        return -1;
    }
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, SOMAXCONN) != 0) {
        fprintf(stderr, "lineserver: 127.0.0.1:%u: %s\n", port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int watch(server *s, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event e = {.events = events, .data.u64 = tag};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) == 0)
        return 0;
    fprintf(stderr, "lineserver: epoll_ctl: %s\n", strerror(errno));
    return -1;
}

/* Everything the loop needs, the graph running: 0, or -1 once said why. */
static int server_start(server *s, const options *o)
{
    int rc = mpx_graph_set_nonblocking(s->g, true);
    if (rc == 0)
        rc = mpx_graph_start(s->g);
    if (rc != 0) {
        fprintf(stderr, "lineserver: %s\n", *mpx_graph_error(s->g) ? mpx_graph_error(s->g)
                                                                   : mpx_strerror(rc));
        return -1;
    }
    s->gfd = mpx_graph_fd(s->g);
    if (s->gfd < 0) {
        fprintf(stderr, "lineserver: mpx_graph_fd: %s\n", mpx_strerror(s->gfd));
        return -1;
    }
    /* Made after the start, so that no stage process holds them.  The
     * signals are taken from a descriptor; blocked, they no longer end
     * the program (the stage processes unblock them: mpx does it). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
        (s->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
        (s->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        fprintf(stderr, "lineserver: %s\n", strerror(errno));
        return -1;
    }
    s->lfd = listen_on((unsigned)o->port);
    if (s->lfd < 0 || watch(s, s->lfd, EPOLLIN, TAG_LISTEN) != 0 ||
        watch(s, s->sfd, EPOLLIN, TAG_SIGNAL) != 0 || watch(s, s->gfd, EPOLLIN, TAG_GRAPH) != 0)
        return -1;
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getsockname(s->lfd, (struct sockaddr *)&sa, &len) != 0) {
        fprintf(stderr, "lineserver: getsockname: %s\n", strerror(errno));
        return -1;
    }
    printf("port %u\n", ntohs(sa.sin_port));
    if (fflush(stdout) != 0) {
        fprintf(stderr, "lineserver: stdout: %s\n", strerror(errno));
        return -1;
    }
    s->running = true;
    return 0;
}

/* Close what is left and say what was done; the graph is over after. */
static int server_finish(server *s)
{
    for (size_t i = 0; i < s->max_conns; i++)
        if (s->slots[i])
            conn_close(s, s->slots[i]);
    if (!s->ended && mpx_graph_started(s->g)) {
        mpx_graph_stop(s->g);
        if (mpx_graph_join(s->g) != MPX_ESTOPPED) /* the stop was ours */
            fprintf(stderr, "lineserver: %s\n", mpx_graph_error(s->g));
    }
    int restarts = 0;
    for (size_t i = 0; i < mpx_graph_instance_count(s->g); i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(s->g, i, &info) == 0)
            restarts += info.restarts;
    }
    if (s->running)
        printf("connections: %" PRIu64 "  requests: %" PRIu64 "  replies: %" PRIu64
               "  orphans: %" PRIu64 "  duplicates: %" PRIu64 "  pauses: %" PRIu64
               "  restarts: %d\n",
               s->connections, s->requests, s->replies, s->orphans, s->duplicates, s->pauses,
               restarts);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "lineserver: stdout: %s\n", strerror(errno));
        s->status = EXIT_FAILURE;
    }
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->sfd >= 0)
        close(s->sfd);
    if (s->ep >= 0)
        close(s->ep);
    return s->status;
}

int main(int argc, char **argv)
{
    options o;
    int prc = parse_options(argc, argv, &o);
    if (prc <= 0)
        return prc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;

    int dirfd = -1;
    if (o.dir) {
        dirfd = open(o.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
            fprintf(stderr, "lineserver: %s: %s\n", o.dir, strerror(errno));
            return EXIT_FAILURE;
        }
    }
    /* The count of kills, seen by every worker and replacement. */
    mpx_shared_t *flag = mpx_shared_new(sizeof(atomic_int));
    if (!flag) {
        fprintf(stderr, "lineserver: mpx_shared_new: %s\n", strerror(errno));
        if (dirfd >= 0)
            close(dirfd);
        return EXIT_FAILURE;
    }
    digest_args args = {dirfd, o.kill ? (int64_t)o.kill_at : -1, (int)o.kill_times,
                        mpx_shared_data(flag)};
    atomic_init(args.killed, 0);

    server s = {.ep = -1, .lfd = -1, .sfd = -1, .gfd = -1, .max_conns = o.max_conns};
    s.g = MPX_EZ(mpx_as((int)o.workers, &Digest, &args));
    int rc = s.g ? 0 : MPX_ENOMEM;
    if (rc == 0)
        rc = mpx_node_set_retries(s.g, 2);
    if (rc == 0)
        rc = mpx_node_on_error(s.g, MPX_ON_ERROR_RESULT, NULL);
    if (rc == 0 && o.capacity)
        rc = mpx_node_set_capacity(s.g, (size_t)o.capacity, 0);
    if (rc != 0) {
        fprintf(stderr, "lineserver: setting up the graph: %s\n", mpx_strerror(rc));
        s.status = EXIT_FAILURE;
    } else if (o.dot) {
        rc = mpx_graph_write_dot(s.g, stdout);
        if (rc != 0)
            fprintf(stderr, "lineserver: cannot draw the graph: %s\n", mpx_strerror(rc));
        s.status = rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    } else {
        s.slots = calloc(s.max_conns, sizeof *s.slots);
        s.gens = calloc(s.max_conns, sizeof *s.gens);
        if (!s.slots || !s.gens) {
            fprintf(stderr, "lineserver: out of memory\n");
            s.status = EXIT_FAILURE;
        } else if (server_start(&s, &o) != 0) {
            s.status = EXIT_FAILURE;
        } else {
            serve(&s);
        }
        s.status = server_finish(&s);
    }
    free(s.slots);
    free(s.gens);
    free(s.ghosts);
    mpx_node_destroy(&s.g);
    mpx_shared_destroy(&flag);
    if (dirfd >= 0)
        close(dirfd);
    return s.status;
}
