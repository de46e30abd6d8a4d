/* lib/edge.h — moving items between processes: the only code that knows
 * how an edge is made.
 *
 * A consumer binds one inbox; each producer connects one socket to every
 * consumer its dispatch trees reach, so that it can address each one.
 * Flow control is by credit: a consumer acknowledges what it has processed
 * (on a separate ack socket the producer binds), and a producer never has
 * more than the consumer's window outstanding.  That gives exact
 * capacities, sends each parallel item to the least loaded consumer with
 * room, and tells a producer when a consumer has stopped.  Credit returns
 * after half a window; a producer that chooses among consumers (or one
 * on an edge with a recoverable end) also hears of every pause of its
 * consumer, and of a slow consumer's pace every RATE_TICKS; any other
 * hears of a pause only when a sixteenth of its window is unacknowledged,
 * and asks (WIRE_ASK) when it waits with too little outstanding for
 * credit to come back by itself, or has sent half of a window cut down
 * to a slow consumer's pace (cut only while it waits for that consumer).
 * While an edge
 * is busy, items are batched into one message; when a producer has been
 * quiet an item leaves at once.  End of stream is a message of its own on
 * every connection, after the last item; marks are records in the stream
 * sent to every consumer, and a consumer hands a mark on only once it has
 * come through every path from the stage that made it.
 *
 * A producer has ports: port 0 is its place in the graph, the others lead
 * into the side graphs (xcut) it may put into.
 *
 * Recovery.  A producer keeps what it sent a recoverable consumer (one the
 * supervisor replaces when it dies) until that consumer acknowledges it.
 * When told the consumer was replaced, it sends the unacknowledged records
 * again, marked, to the consumer's parallel siblings or to the
 * replacement.  A recoverable stage chains its acknowledgements: it
 * acknowledges an input only once everything it put before then has been
 * acknowledged downstream, so that nothing acknowledged upstream exists
 * only in a process that may die.  Each process incarnation has a
 * generation; messages and acknowledgements carry it, and what a dead
 * incarnation sent is told apart from what its replacement sends.
 *
 * zmq sockets are created in the context passed in, never before fork.
 */
#ifndef MPX_LIB_EDGE_H
#define MPX_LIB_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "graph/plan.h"
#include "wire.h"

/* Called when the edge must block until `sock` is ready for `events`
 * (ZMQ_POLLIN / ZMQ_POLLOUT), so that the owner keeps serving its control
 * channel meanwhile.  Returns 0 when the socket may be ready, a negative
 * code to abandon the wait. */
typedef int (*edge_wait_fn)(void *owner, void *sock, short events);

/* Path of an endpoint in the runtime directory: 'i' inbox, 'a' ack inbox,
 * 'c' control.  A replacement's inbox has a name of its own generation
 * (gen > 0), so that nothing sent to the process it replaces reaches it. */
int edge_endpoint(char *buf, size_t cap, const char *dir, char kind, int id, uint32_t gen);

/* Apply the options every mpx socket uses. */
int edge_sockopts(void *sock);

/* Shared by edge_in.c and edge_out.c. */
void *edge_open_socket(void *zctx, int type, const char *dir, char kind, int id, uint32_t gen,
                       bool bind, char *err, size_t errcap);
int *edge_slot_map(const plan_t *plan);
#define EDGE_ACK_SIZE (WIRE_HEAD + 24)
/* Half a window (never 0): where credit comes back by itself.  Both ends
 * must agree on it (see the credit rules above). */
static inline uint64_t edge_half(uint64_t window) { return window / 2 ? window / 2 : 1; }

/* ---- consumer side ------------------------------------------------------ */

typedef struct edge_in edge_in_t;

typedef struct edge_mark {
    uint32_t origin; /* the instance that put it */
    uint64_t value;
} edge_mark_t;

/* peer_gens (NULL: all 0): the generation each producer runs in now, by
 * instance id, as for edge_out_new. */
edge_in_t *edge_in_new(void *zctx, const plan_t *plan, int self, uint32_t gen,
                       const uint32_t *peer_gens, const char *dir, char *err, size_t errcap);
void edge_in_destroy(edge_in_t **in);
void *edge_in_socket(edge_in_t *in);

/* Next item or mark: 1 and *it set (valid until the next call), 2 and
 * *mark set for a mark that has come through every path, 0 when nothing
 * is waiting (or input is complete), negative on a malformed message (err
 * filled).  Taking an item marks the previous one processed. */
int edge_in_next(edge_in_t *in, mpx_item_t **it, edge_mark_t *mark, char *err, size_t errcap);
/* Every producer has sent its end of stream and every item was taken. */
bool edge_in_complete(const edge_in_t *in);
/* About to block: acknowledge everything processed so far. */
void edge_in_idle(edge_in_t *in);
/* Stop consuming: producers are told; items still arriving are discarded
 * (and counted) by edge_in_next, which then returns only 0. */
void edge_in_close(edge_in_t *in);
/* The caller's time (ticks, lib/ticks.h; 0: none), for acknowledging
 * slow work on time. */
void edge_in_time(edge_in_t *in, uint64_t now);
uint64_t edge_in_items(const edge_in_t *in);   /* items taken */
/* For the monitor: producer k (0 <= k < edge_in_peers) and what was taken
 * from it (items counted, marks too). */
int edge_in_peers(const edge_in_t *in);
void edge_in_peer(const edge_in_t *in, int k, int *producer, uint64_t *taken);
uint64_t edge_in_dropped(const edge_in_t *in); /* items discarded after close */

typedef struct edge_out edge_out_t;
/* Chain acknowledgements to `out` (see Recovery above). */
void edge_in_chain(edge_in_t *in, edge_out_t *out);
/* Some acknowledgement waits for `out` to be confirmed: the caller should
 * wake up for the output's acknowledgements too (edge_out_socket) and call
 * edge_in_settle. */
bool edge_in_settling(const edge_in_t *in);
/* Read the output's acknowledgements and send the input's that they
 * release. */
void edge_in_settle(edge_in_t *in);
/* At the end: checkpoint everything taken (flushing the output); then
 * settle until edge_in_settling turns false. */
void edge_in_settle_all(edge_in_t *in);
/* The message `it` came in, when it can leave again as it is: `it` is the
 * record in hand, alone in its message, whose bytes zmq received in place
 * (not copied for alignment), and not forwarded before.  NULL otherwise.
 * The caller passes the message to edge_out_forward, which rewrites its
 * header: the input has no further use for it. */
zmq_msg_t *edge_in_forwardable(edge_in_t *in, const mpx_item_t *it);
/* The record last handed out: who sent it, in which generation, and its
 * index among that stream's records. */
void edge_in_current(const edge_in_t *in, int *producer, uint32_t *gen, uint64_t *rec);

/* ---- producer side ------------------------------------------------------ */

/* peer_gens (NULL: all 0) gives, by instance id, the generation each
 * consumer runs in now: a replacement sends to the consumers' current
 * processes, not to ones that were replaced before it started. */
edge_out_t *edge_out_new(void *zctx, const plan_t *plan, int self, uint32_t gen,
                         const uint32_t *peer_gens, const char *dir, edge_wait_fn wait, void *owner,
                         char *err, size_t errcap);
void edge_out_destroy(edge_out_t **out);

/* The port leading into the side graph `name`, or -1. */
int edge_out_port(const edge_out_t *out, const char *name);

/* Reserve room for one record of `size` bytes in the port's batch and
 * return where to write it; edge_out_commit() then counts it.  Either may
 * send a batch and block for credit.  NULL with *rc set on failure
 * (MPX_ESTOPPED when every consumer behind the port has stopped).  Both
 * are inline, in edge_out_inline.h. */
/* Send the batches whose oldest item has waited too long by `now` (ticks,
 * lib/ticks.h); call between items. */
int edge_out_tick(edge_out_t *out, uint64_t now);
/* edge_out_time(out, now): the time puts that follow may take as theirs
 * (0: none, read the clock), for a caller that reads the clock anyway
 * (inline, in edge_out_inline.h). */
/* Put the one record that message `msg` (received by edge_in, see
 * edge_in_forwardable) carries, by sending that message itself on: a
 * large record is not copied.  What waits in the port's batch goes
 * first. */
int edge_out_forward(edge_out_t *out, int port, zmq_msg_t *msg);
/* Send every batch now, waiting for credit as needed. */
int edge_out_flush(edge_out_t *out);
/* Send a mark behind everything put on port 0, to every consumer of it. */
int edge_out_mark(edge_out_t *out, uint32_t origin, uint64_t value);
/* Flush, then send end of stream to every consumer. */
int edge_out_eos(edge_out_t *out);
/* Read what consumers reported (credit, stops) without sending: a
 * producer that does not run out of credit learns of a stop this way. */
void edge_out_poll(edge_out_t *out);
/* edge_out_closed(out, port): every consumer behind the port has stopped
 * (inline, in edge_out_inline.h). */
uint64_t edge_out_items(const edge_out_t *out);
/* For the monitor: consumer k (0 <= k < edge_out_peers) and the records
 * sent to it (what it has not taken yet is its queue). */
int edge_out_peers(const edge_out_t *out);
void edge_out_peer(const edge_out_t *out, int k, int *consumer, uint64_t *sent);

/* The socket acknowledgements arrive on (to wait on it). */
void *edge_out_socket(edge_out_t *out);
/* Keep every message until acknowledged, for edge_in_chain. */
void edge_out_keep_all(edge_out_t *out);
/* Sequence number of the last message sent, and the highest such that it
 * and everything before it have been acknowledged. */
uint64_t edge_out_seq(const edge_out_t *out);
uint64_t edge_out_settled(const edge_out_t *out);
/* A consumer died and was replaced (the payload of WIRE_RESTART, and the
 * error of the record it had in hand): reconnect to the replacement, and
 * queue what it had not acknowledged to be sent again.  Sends nothing:
 * edge_out_recover does, at a point where sending is safe. */
int edge_out_restart(edge_out_t *out, const wire_restart_t *r, const char *why, size_t whylen);
bool edge_out_recover_due(const edge_out_t *out);
int edge_out_recover(edge_out_t *out);
uint64_t edge_out_resent(const edge_out_t *out); /* records sent again */
/* Keep a copy of the resent count at `to` as well, updated before each
 * sending again (memory the parent reads after a death). */
void edge_out_mirror_resent(edge_out_t *out, volatile uint64_t *to);

#endif
