/* lib/xport.h — framed messages between processes over unix stream
 * connections that the calling thread reads and writes itself.
 *
 * Why.  An edge today is a zmq ROUTER pair, and every message it carries
 * wakes four threads: the sender's zmq I/O thread (told through an
 * eventfd), the receiver's I/O thread (epoll), the receiver (another
 * eventfd), each with a handful of system calls that move no data and a
 * fork check (getpid) on every call.  Measured on the 2-vCPU PVM guest
 * (scratch programs, 2026-12-06): two hops through three processes over
 * plain unix sockets, poll and read/write, take 26-27 us at p50, where a
 * raw zmq REQ/REP round trip takes 112-123 us and mpx's `latency` 139-141
 * us; a 16 KiB message through source -> 2 workers -> sink costs 21-49 us
 * of CPU for both hops, where mpx's zmq I/O threads alone spend about 150
 * ns per 16-byte record (~100 us per 1024-record message-hop).  This
 * module is that plain-socket hop, with what an edge needs of zmq kept:
 *
 *  - peers addressed by routing id (up to XPORT_RID_MAX bytes).  A side
 *    that connects names the peer itself (as ZMQ_CONNECT_ROUTING_ID) and
 *    may send to it at once: what it sends waits in the process until the
 *    connection is up.  A side that accepts learns each peer's id from the
 *    first frame the peer sends (its hello) and can address it from then
 *    on; a send to an id it does not know fails with EHOSTUNREACH (as
 *    ZMQ_ROUTER_MANDATORY).
 *  - a connection that is lost: an accepted peer is forgotten (its whole
 *    frames already read are still delivered, a partial one is dropped);
 *    a connected peer is kept and connected again (every 1 ms at first,
 *    backing off to every 100 ms, as zmq's reconnect options would), its
 *    unsent messages going out on the new connection behind a new hello,
 *    and a message cut short by the loss dropped — zmq's behaviour, which
 *    the edge protocol's generations are built on.
 *  - no queue limit (credit bounds every queue), no linger on destroy.
 *  - zmq_msg_t as the message type, so that a received message can be
 *    kept, stashed and forwarded without a copy, as the edge code does.
 *
 * Frames: a 4-byte length (host order: both ends are on one machine),
 * then that many bytes.  The first frame on a connection is the sender's
 * routing id.  A frame cannot be empty or longer than XPORT_FRAME_MAX; a
 * peer that sends one, or a hello that is not a routing id, or an id
 * already connected, is disconnected and counted (xport_refused).
 *
 * Waiting.  xport_fd is an epoll descriptor: readable when a connection
 * waits to be accepted, a peer sent something, output can go on, or a
 * connection failed.  Whole frames already read sit in the process and do
 * not make it readable: before sleeping on it, ask xport_has_input (no
 * system call), and give poll at most xport_due_ms for reconnects.  Every
 * call that could find input or make room (xport_recv, xport_send,
 * xport_service) does the descriptor's work first; nothing runs behind
 * the caller's back, so a process busy in user code sends nothing that
 * did not fit its socket buffer until it calls in again — which is why a
 * sender should flush (xport_flush) before it goes to do long work.
 *
 * Not thread-safe: one thread per xport_t, as a zmq socket.  Descriptors
 * are close-on-exec; after fork the child must not use the parent's
 * xports (it may destroy its copy, which closes only its descriptors).
 */
#ifndef MPX_LIB_XPORT_H
#define MPX_LIB_XPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define XPORT_RID_MAX 16
/* Frames are at most this long (the length field is 32 bits). */
#define XPORT_FRAME_MAX ((size_t)UINT32_MAX)

typedef struct xport xport_t;

/* An endpoint announcing `rid` (1..XPORT_RID_MAX bytes) to every peer it
 * connects to.  NULL with errno set (EINVAL, ENOMEM, EMFILE). */
xport_t *xport_new(const void *rid, size_t rid_len);
/* Close every connection and the listening socket; what was not sent is
 * dropped.  Does not unlink the socket's path. */
void xport_destroy(xport_t **x);

/* Accept connections on `fd`, a listening AF_UNIX stream socket (made
 * non-blocking here); the xport owns it from now on, also on failure.
 * One listening socket per xport.  0, or -1 with errno. */
int xport_listen_fd(xport_t *x, int fd);
/* Take `fd`, a connected AF_UNIX stream socket (one end of a socketpair,
 * say), as an accepted peer: its first frame must be its hello.  The
 * xport owns fd from now on, also on failure.  0, or -1 with errno. */
int xport_adopt(xport_t *x, int fd);
/* Bind a new listening socket at `path` (which must not exist). */
int xport_bind(xport_t *x, const char *path, int backlog);

/* Address the peer listening at `path` under `rid`, connecting now or as
 * soon as it listens.  EEXIST when `rid` is already a peer. */
int xport_connect(xport_t *x, const char *path, const void *rid, size_t rid_len);
/* Forget peer `rid` (connected or accepted): its connection closes, what
 * was not sent to it is dropped.  ENOENT when there is no such peer. */
int xport_disconnect(xport_t *x, const void *rid, size_t rid_len);

/* Send `msg` (1..XPORT_FRAME_MAX bytes) to peer `rid`.  On success the
 * message is taken (msg is left empty, as zmq_msg_send leaves it) and
 * will be written in order behind what was sent to that peer before.
 * -1 with errno: EHOSTUNREACH (no such peer), EMSGSIZE, ENOMEM. */
int xport_send(xport_t *x, const void *rid, size_t rid_len, zmq_msg_t *msg);
/* The same for bytes the caller keeps (copied only if they must wait). */
int xport_send_buf(xport_t *x, const void *rid, size_t rid_len, const void *buf, size_t len);

/* The next whole frame from any peer, peers taken in turn: its bytes in
 * `msg` (an initialised message, overwritten) and the sender's routing id
 * in rid[0..*rid_len) (rid holds XPORT_RID_MAX bytes).  0, or -1 with
 * errno EAGAIN when nothing has come, or ENOMEM. */
int xport_recv(xport_t *x, void *rid, size_t *rid_len, zmq_msg_t *msg);

/* Accept, read, write and reconnect what can be, without blocking.
 * 0, or -1 with errno (ENOMEM) when a frame could not be stored. */
int xport_service(xport_t *x);
/* Write what waits, without blocking.  Returns the bytes still waiting. */
size_t xport_flush(xport_t *x);

/* See "Waiting" above. */
int xport_fd(const xport_t *x);
bool xport_has_input(const xport_t *x);
/* Milliseconds until a reconnect is due (0: now), -1 when none is. */
long xport_due_ms(const xport_t *x);
/* Bytes wait to be written or a reconnect is due: x must be in the
 * caller's waits (it is written when its descriptor fires). */
bool xport_unwritten(const xport_t *x);

/* Whether p (an xport or a zmq socket) is an xport. */
bool xport_is(const void *p);

/* Whether `rid` is a peer now; bytes waiting to be written to all peers;
 * connections refused for a broken frame or hello since xport_new. */
bool xport_has_peer(const xport_t *x, const void *rid, size_t rid_len);
size_t xport_queued(const xport_t *x);
uint64_t xport_refused(const xport_t *x);

#endif
