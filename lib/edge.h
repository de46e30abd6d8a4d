/* lib/edge.h — moving items between processes: the only code that knows
 * how an edge is made.
 *
 * Connections.  Every process that consumes listens on one inbox (a unix
 * stream socket in the runtime directory); every process that produces
 * has one endpoint of its own that connects to the inbox of each consumer
 * its dispatch trees reach, under that consumer's routing id, so that it
 * can address each one (lib/xport.h: framed messages that the process's
 * own thread reads and writes, no zmq socket and no I/O thread on the
 * way).  A producer–consumer pair thus shares exactly one connection:
 * records and end of stream go one way, credit comes back the other way,
 * and nothing on it can overtake anything else on it.  The control
 * channel between the parent and each process is an xport too; zmq
 * carries the monitor's stream only, in the parent.
 *
 * Credit, the one rule.  A consumer allows each producer a number of
 * records (and bytes) beyond what it has taken from it: its *target*, as
 * many as it processes in EDGE_TARGET_TICKS (sixteen milliseconds) at
 * its measured pace, shared among its producers, at least EDGE_TARGET_MIN
 * and at most the producer's window (the consumer's capacity shared among
 * its producers).  Whenever, after taking a record, what a producer may
 * still send falls to half the target or less (or its byte allowance to
 * half the byte window), the consumer grants it up to the target again,
 * in one WIRE_CREDIT.  Both ends start from the same allowance
 * (edge_start_items), so no credit is needed before the first record.
 * A producer sends a message only with item credit for all its records
 * and some byte credit left (the message may overrun that by itself, so
 * any item fits an idle edge); a batch larger than the credit goes in
 * pieces.  So a slow consumer gets about eight milliseconds of its work
 * per message and returns one credit per such message, a fast one gets
 * large batches, and no consumer ever holds more than sixteen milliseconds
 * of work that a sibling could have taken.  (Sixteen: a message and its
 * credit cost both ends 20-30 us of CPU each on a KVM guest, 50-100 us on
 * a PVM guest, where a page fault, a context switch and an IPI cost
 * several times more; with four, a 2-worker map of 40 us items spent 6-9
 * us of CPU per item beyond its work there, with sixteen 2-5.)  A
 * parallel (ONE) choice sends to the branch with the most credit: the
 * one that asked for most.  Until a consumer has said anything, a choice
 * gives it no more than an equal share of a batch, and a producer builds
 * its batches no larger than the credit it has, or than one grant adds
 * (so a producer waiting on a slow consumer holds about one message's
 * worth, no more).
 *
 * Batching.  While an edge is busy, items are batched into one message
 * (at most a quarter of the smallest window behind the port); when a
 * producer has been quiet an item leaves at once.  A batch leaves when
 * full, when the stage is about to wait for input, or once its first item
 * has waited a millisecond (as long as the credit target on the way to
 * the program, for which every message is a wake-up: edge_out_inline.h).
 * A batch of int64 in arithmetic progression with no meta (what
 * mpx_range puts, graph/source.h source_put_i64_run) is sent as the run
 * itself, first and step (WIRE_DATA_ARITH), and any other batch of int64
 * without meta as the packed values (WIRE_DATA_I64, 8 bytes an item
 * instead of 24); the consumer makes each record as it takes it.  What a
 * producer keeps for a recoverable consumer is the records (sent again,
 * marked, they must carry the flag).  Only the encoding differs: every
 * count (credit, bytes, records) is the records', so edge.pml's messages
 * stand for any of them.
 * End of stream is a message of its own on every connection, after the
 * last item; marks are records in the stream sent to every consumer, and
 * a consumer hands a mark on only once it has come through every path
 * from the stage that made it.
 *
 * A producer has ports: port 0 is its place in the graph, the others lead
 * into the side graphs (xcut) it may put into.
 *
 * Recovery.  A producer keeps what it sent a recoverable consumer (one the
 * supervisor replaces when it dies) until that consumer confirms it; a
 * recoverable producer that has input (a chained one) keeps everything it
 * sends, to know when it is confirmed.  Confirmations ride on the credit
 * messages (plan_confirms says which pairs need them): they go out with
 * every grant, after every so many records processed, and otherwise once
 * EDGE_CONFIRM_TICKS have passed since the last word to that producer
 * (an idle consumer wakes up for it: edge_in_due_ms).
 * When told a consumer was replaced, the producer sends the unconfirmed
 * records again, marked, to the consumer's parallel siblings or to the
 * replacement.  A recoverable stage chains its confirmations: it confirms
 * an input only once everything it put before then has been confirmed
 * downstream, so that nothing confirmed upstream exists only in a process
 * that may die; it never grants more than two windows beyond what it can
 * confirm, which bounds what its producers keep.  Each process
 * incarnation has a generation; messages and credit carry it, and what a
 * dead incarnation sent is told apart from what its replacement sends.
 *
 * Elastic groups.  A parallel group of one stage may gain and lose
 * instances while it runs (mpx_node_set_elastic, lib/grow.c); one change
 * at a time in the graph.  Every slot of the group is planned; one without
 * a process is a consumer its producers never choose and send nothing,
 * not even an end of stream, and a producer its consumers count as ended
 * (EDGE_GEN_OFF).  Marks carry their number among their origin's marks,
 * so that a consumer knows which marks a path can still bring.
 *   Joining (a new process, a new generation): each producer, told by the
 *   supervisor (WIRE_JOIN), connects to it and sends it and each running
 *   sibling a NOTICE record — "this slot runs in generation g; of each
 *   origin's marks, those from number n on come from me" — before it may
 *   choose the joiner; a producer that has ended sends the joiner only its
 *   end.  A sibling passes a notice on at once to every consumer it has;
 *   a consumer of the group that reads one counts the joiner as running
 *   (not ended) and waits for it on the marks from the least such n on.
 *   A notice reaches every consumer through every sibling ahead of any
 *   mark it concerns and ahead of the siblings' ends, so no consumer hands
 *   on a mark, or ends, without the joiner.  The joiner itself hands no
 *   mark on before every producer's notice (or end) came: it could not
 *   know which marks each will send it.
 *   Leaving: the supervisor tells the instance (WIRE_LEAVE); it tells each
 *   producer on its credit (WIRE_CREDIT_LEAVE); each then never chooses it
 *   again and sends it its end of stream at once, behind what it sent.
 *   The leaver finishes like any stage whose input ended (teardown, its
 *   own end), and reports done only once every consumer said it took that
 *   end (WIRE_CREDIT_ENDED): it may exit then, its consumers go on.
 *
 * The protocol is modelled in edge.pml (Promela, checked by SPIN in the
 * test suite), joining and leaving in elastic.pml; each header says which
 * part of this code each process of the model stands for.
 *
 * Endpoints are made after fork, in the process that uses them (an inbox
 * may adopt a listening socket made before: edge_listen).
 */
#ifndef MPX_LIB_EDGE_H
#define MPX_LIB_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "graph/plan.h"
#include "ticks.h"
#include "wire.h"
#include "xport.h"

/* Called when the edge must block until `sock` is ready for `events`
 * (ZMQ_POLLIN / ZMQ_POLLOUT), so that the owner keeps serving its control
 * channel meanwhile.  Returns 0 when the socket may be ready, a negative
 * code to abandon the wait. */
typedef int (*edge_wait_fn)(void *owner, void *sock, short events);

/* Path of an endpoint in the runtime directory: 'i' inbox, 'c' control.
 * A replacement's inbox has a name of its own generation (gen > 0), so
 * that nothing sent to the process it replaces reaches it. */
int edge_endpoint(char *buf, size_t cap, const char *dir, char kind, int id, uint32_t gen);

/* In the peer generations handed to edge_in_new and edge_out_new: the
 * slot of an elastic group that has no process now (its generation in the
 * other bits: the last it ran in). */
#define EDGE_GEN_OFF 0x80000000u
/* ... and one whose process is leaving its group (told WIRE_LEAVE): a
 * producer that starts now never chooses it and owes it its end of
 * stream at once, as if it had heard the leave on its credit (the
 * process it replaces may have, or not).  Consumers read it as running:
 * the leaver still ends its stream to them. */
#define EDGE_GEN_LEAVING 0x40000000u
#define EDGE_GEN_FLAGS (EDGE_GEN_OFF | EDGE_GEN_LEAVING)

/* A listening unix socket at the endpoint's path (generation 0), made
 * before the process that accepts on it exists, so that its peers can
 * connect from the moment they start: the kernel holds up to `backlog`
 * connections until that process adopts the socket.  A descriptor, or -1
 * with errno set. */
int edge_listen(const char *dir, char kind, int id, int backlog);
/* The next edge_open_inbox(.., self, gen, ..) in this thread listens on
 * `fd` (from edge_listen; the inbox owns it from then on) instead of
 * making a socket. */
void edge_adopt_inbox(int self, uint32_t gen, int fd);

/* The control channel between the parent and each stage process is an
 * xport at each end: the process listens at its 'c' endpoint (a first
 * process on the socket the parent made before the fork, a replacement at
 * the same path), and the parent connects to each under edge_ctl_rid(id),
 * announcing itself as EDGE_CTL_PARENT.  So a stage process has no zmq
 * context at all, and what the parent sent a process that died reaches
 * its replacement (which ignores it by generation), as before. */
#define EDGE_CTL_PARENT "p"
#define EDGE_CTL_RID_SIZE 5
void edge_ctl_rid(uint8_t rid[EDGE_CTL_RID_SIZE], int id);
/* Process `self`'s end, listening on `fd` (from edge_listen; owned from
 * now on) or, with fd < 0, at its path. */
xport_t *edge_open_ctl(const char *dir, int self, int fd, char *err, size_t errcap);

/* A process's routing id on the edges: its instance and generation. */
#define EDGE_RID_SIZE 9
void edge_rid(uint8_t rid[EDGE_RID_SIZE], int id, uint32_t gen);

/* The inbox of `self` (listening), or a producer's endpoint (its own
 * routing id, connected to nothing yet): lib/xport.h. */
xport_t *edge_open_inbox(const char *dir, int self, uint32_t gen, char *err, size_t errcap);
xport_t *edge_open_outbox(int self, uint32_t gen, char *err, size_t errcap);
/* Connect a producer's endpoint to consumer `id`'s inbox of generation
 * `gen`, or disconnect from it. */
int edge_connect(xport_t *x, const char *dir, int id, uint32_t gen, bool connect);

int *edge_slot_map(const plan_t *plan);

/* zmq_poll with fewer system calls.  Each zmq socket's readiness costs
 * libzmq two system calls to ask (a getpid for its fork check and a poll
 * of the socket's mailbox); zmq_poll asks every socket twice per wait
 * (before and after sleeping) and polls every descriptor twice.  This
 * asks once before, sleeps on the sockets' ZMQ_FD descriptors with the
 * rest, and after waking asks only the sockets whose descriptor fired:
 * ZMQ_FD only signals commands arriving, which is all that can make an
 * idle socket ready.  Same arguments and results as zmq_poll (-1 with
 * errno EINTR when a signal came).  An item's socket may also be an
 * edge's endpoint (xport_is): frames it has already read make it ready
 * without a system call, its descriptor wakes the sleep for the rest, and
 * its reconnects shorten the sleep; it is serviced (read, written,
 * reconnected) when its descriptor fires. */
int edge_poll(zmq_pollitem_t *items, int n, long timeout_ms);
#define EDGE_CREDIT_SIZE (WIRE_HEAD + (int)sizeof(wire_credit_t))

/* The credit rule's constants (see above). */
#define EDGE_TARGET_TICKS TICKS_US(16000)
#define EDGE_TARGET_MIN 2
#define EDGE_START 256
#define EDGE_CONFIRM_TICKS TICKS_US(1000)
/* What a producer may send a consumer before it hears from it: the same
 * figure at both ends. */
static inline uint64_t edge_start_items(const plan_t *plan, int c)
{
    uint64_t w = plan_window_items(plan, c);
    return w < EDGE_START ? w : EDGE_START;
}

/* ---- consumer side ------------------------------------------------------ */

typedef struct edge_in edge_in_t;

typedef struct edge_mark {
    uint32_t origin; /* the instance that put it */
    uint64_t value;
    uint64_t index;  /* its number among the origin's marks */
} edge_mark_t;

/* peer_gens (NULL: all 0): the generation each producer runs in now, by
 * instance id, as for edge_out_new. */
edge_in_t *edge_in_new(const plan_t *plan, int self, uint32_t gen,
                       const uint32_t *peer_gens, const char *dir, char *err, size_t errcap);
void edge_in_destroy(edge_in_t **in);
void *edge_in_socket(edge_in_t *in);
/* The same for credit to the producers (edge_out_unwritten). */
bool edge_in_unwritten(const edge_in_t *in);

/* Next item or mark: 1 and *it set (valid until the next call), 2 and
 * *mark set for a mark that has come through every path, 0 when nothing
 * is waiting (or input is complete), negative on a malformed message (err
 * filled).  Taking an item counts against its producer's credit at once,
 * and marks the previous one processed. */
int edge_in_next(edge_in_t *in, mpx_item_t **it, edge_mark_t *mark, char *err, size_t errcap);
/* edge_in_next's common case alone: 1 and *it when the next record of
 * the message in hand is a plain item (one part, no meta) and no mark
 * waits to be handed on; else 0, having taken nothing (the previous item
 * is marked processed either way), and edge_in_next does the rest. */
int edge_in_take_plain(edge_in_t *in, mpx_item_t **it);
/* Items of one 8-byte part without meta, to be taken many at a time by a
 * caller that processes each as soon as it reads it (the stage loop's
 * maps, graph/i64map.h).  edge_in_i64_run marks the previous item
 * processed, as a take does, and returns how many such items come next
 * in the message in hand (their values: *run), or 0 when the next thing
 * is anything else (a record, a mark to hand on, the next message) or
 * when the edge counts each item on its own (a chained input, a producer
 * that wants confirmations): edge_in_next then takes it.  Item j (from
 * 0) is run->pk's j-th 8 bytes when pk is set, else v + j * step (modulo
 * 2^64); its record is run->rec + j of its producer's stream (edge_in_current).
 * edge_in_i64_took(in, k) then counts the first k (k >= 1, at most what
 * edge_in_i64_run returned) taken and processed: the same credit,
 * counts and times as k takes, with any grant due sent at the end. */
typedef struct edge_i64_run {
    const uint8_t *pk;
    uint64_t v, step;
    uint64_t rec;
} edge_i64_run_t;
size_t edge_in_i64_run(edge_in_t *in, edge_i64_run_t *run);
void edge_in_i64_took(edge_in_t *in, size_t k);
/* Every producer has sent its end of stream and every item was taken. */
bool edge_in_complete(const edge_in_t *in);
/* Records of a message already received are waiting: edge_in_next
 * returns the next without reading the socket. */
bool edge_in_waiting(const edge_in_t *in);
/* About to block: confirm what was processed to producers that want
 * confirmations, when the last word to them is EDGE_CONFIRM_TICKS old
 * (credit needs nothing at a pause). */
void edge_in_idle(edge_in_t *in);
/* The same for a caller that still uses the item in hand (the parent
 * while the program holds an output item): its bytes and pool holds stay
 * until the next edge_in_next or edge_in_idle. */
void edge_in_idle_holding(edge_in_t *in);
/* Count each item done, for confirmations, as soon as it is taken, not
 * once the caller is done with it (its pool holds still last until
 * then): for the parent's output, where an item handed to the program
 * can no longer be lost with a process, and the program may hold it for
 * as long as it likes. */
void edge_in_done_on_take(edge_in_t *in);
/* Milliseconds until an unsent confirmation is due (-1: none): how long
 * the caller may block before calling edge_in_idle again. */
long edge_in_due_ms(const edge_in_t *in);
/* Stop consuming: producers are told; items still arriving are discarded
 * (and counted) by edge_in_next, which then returns only 0. */
void edge_in_close(edge_in_t *in);
/* The caller's time (ticks, lib/ticks.h; 0: none: the edge reads the
 * clock), for measuring the pace and confirming on time. */
void edge_in_time(edge_in_t *in, uint64_t now);
uint64_t edge_in_items(const edge_in_t *in);   /* items taken */
/* For the monitor: producer k (0 <= k < edge_in_peers) and what was taken
 * from it (items counted, marks too). */
int edge_in_peers(const edge_in_t *in);
void edge_in_peer(const edge_in_t *in, int k, int *producer, uint64_t *taken);
uint64_t edge_in_dropped(const edge_in_t *in); /* items discarded after close */

typedef struct edge_out edge_out_t;
/* Chain confirmations to `out` (see Recovery above). */
void edge_in_chain(edge_in_t *in, edge_out_t *out);
/* Elastic groups (see above).  Notices about our siblings go on through
 * `out`; a joiner's input hands no mark on before every producer's notice
 * came (its gate); edge_in_leave tells every producer that we leave our
 * group (each then sends its end of stream), and edge_in_leave_retry
 * tells again those that could not hear it yet (true while some are
 * left). */
void edge_in_set_output(edge_in_t *in, edge_out_t *out);
void edge_in_set_joiner(edge_in_t *in);
void edge_in_leave(edge_in_t *in);
bool edge_in_leave_retry(edge_in_t *in);
/* A joiner, before it starts: read what has come (notices are taken, the
 * rest waits, untaken, for edge_in_next), and say whether every producer
 * has been heard of: EDGE_GATE_PENDING, or EDGE_GATE_OPEN (some sent a
 * notice or data: the joiner is part of the group), or EDGE_GATE_VOID
 * (every producer had ended: nobody knows of it, and it must send
 * nothing); negative on an error (err filled). */
#define EDGE_GATE_VOID 0
#define EDGE_GATE_OPEN 1
#define EDGE_GATE_PENDING 2
int edge_in_gate_scan(edge_in_t *in, char *err, size_t errcap);
/* Some confirmation waits for `out` to be confirmed: the caller should
 * wake up for the output's credit too (edge_out_socket) and call
 * edge_in_settle. */
bool edge_in_settling(const edge_in_t *in);
/* Read the output's credit and send the input's confirmations that it
 * releases. */
void edge_in_settle(edge_in_t *in);
/* At the end: checkpoint everything taken, and everything put since the
 * last checkpoint (teardown's puts: flushing the output); then settle
 * until edge_in_settling turns false. */
void edge_in_settle_all(edge_in_t *in);
/* The message `it` came in, when it can leave again as it is: `it` is the
 * record in hand, alone in its message, whose bytes zmq received in place
 * (not copied for alignment), and not forwarded before.  NULL otherwise.
 * The caller passes the message to edge_out_forward, which rewrites its
 * header: the input has no further use for it. */
zmq_msg_t *edge_in_forwardable(edge_in_t *in, const mpx_item_t *it);
/* Whether `it` is the item in hand, and which producer incarnation sent
 * it. */
bool edge_in_in_hand(const edge_in_t *in, const mpx_item_t *it, int *producer, uint32_t *gen);
/* The record last handed out: who sent it, in which generation, and its
 * index among that stream's records. */
void edge_in_current(const edge_in_t *in, int *producer, uint32_t *gen, uint64_t *rec);

/* ---- producer side ------------------------------------------------------ */

/* peer_gens (NULL: all 0) gives, by instance id, the generation each
 * consumer runs in now: a replacement sends to the consumers' current
 * processes, not to ones that were replaced before it started. */
edge_out_t *edge_out_new(const plan_t *plan, int self, uint32_t gen,
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
/* Send every batch now, waiting for credit as needed.  An error that
 * dropped a batch, now or before, is returned from then on. */
int edge_out_flush(edge_out_t *out);
/* That error (a batch was dropped: the stage must fail), or 0. */
int edge_out_lost(const edge_out_t *out);
/* Send a mark behind everything put on port 0, to every consumer of it:
 * the origin's mark number `index`, or (EDGE_MARK_NEXT) the one after the
 * last of that origin's marks sent (for marks the caller makes). */
#define EDGE_MARK_NEXT UINT64_MAX
int edge_out_mark(edge_out_t *out, uint32_t origin, uint64_t value, uint64_t index);
/* Flush, then send end of stream to every consumer. */
int edge_out_eos(edge_out_t *out);
/* Read what consumers reported (credit, stops) without sending: a
 * producer that does not run out of credit learns of a stop this way. */
void edge_out_poll(edge_out_t *out);
/* For an owner whose wait function declines to wait (returns MPX_EAGAIN:
 * the parent feeding the graph): a send short of credit then keeps what
 * did not go, in the batch or the list to send again, and returns
 * MPX_EAGAIN, a loss of nothing.  edge_out_room: a record of `size` bytes
 * may join port's batch without a send (an empty batch always takes one,
 * so at most one record waits beyond the credit); edge_out_pending:
 * something is still to send (a batch, records to send again, an end of
 * stream owed to a replacement); edge_out_batch_since: when port 0's
 * batch got its first record (ticks; 0: empty). */
bool edge_out_room(const edge_out_t *out, int port, size_t size);
/* Drop every batch not sent, letting go of the pool blocks its records
 * hold (an owner that ends without sending them). */
void edge_out_discard(edge_out_t *out);
/* Port's batch has a record and the credit read so far lets at least that
 * one go. */
bool edge_out_can_send(const edge_out_t *out, int port);
bool edge_out_pending(const edge_out_t *out);
uint64_t edge_out_batch_since(const edge_out_t *out);
/* Whether messages that refer to pool blocks (and hold them) are kept
 * until a consumer confirms them. */
bool edge_out_keeps_pooled(const edge_out_t *out);
/* edge_out_closed(out, port): every consumer behind the port has stopped
 * (inline, in edge_out_inline.h). */
uint64_t edge_out_items(const edge_out_t *out);
/* For the monitor: consumer k (0 <= k < edge_out_peers) and the records
 * sent to it (what it has not taken yet is its queue). */
int edge_out_peers(const edge_out_t *out);
void edge_out_peer(const edge_out_t *out, int k, int *consumer, uint64_t *sent);

/* The socket credit arrives on (to wait on it). */
void *edge_out_socket(edge_out_t *out);
/* Messages that the consumers' sockets have not taken yet wait in the
 * process, or a connection is to be made again: the socket must be in
 * the process's waits (it is written when its descriptor fires). */
bool edge_out_unwritten(const edge_out_t *out);
/* Keep every message until confirmed, for edge_in_chain. */
void edge_out_keep_all(edge_out_t *out);
/* Sequence number of the last message sent, and the highest such that it
 * and everything before it have been confirmed. */
uint64_t edge_out_seq(const edge_out_t *out);
uint64_t edge_out_settled(const edge_out_t *out);
/* A consumer died and was replaced (the payload of WIRE_RESTART, and the
 * error of the record it had in hand): reconnect to the replacement, and
 * queue what it had not confirmed to be sent again.  Sends nothing:
 * edge_out_recover does, at a point where sending is safe. */
int edge_out_restart(edge_out_t *out, const wire_restart_t *r, const char *why, size_t whylen);
bool edge_out_recover_due(const edge_out_t *out);
int edge_out_recover(edge_out_t *out);
uint64_t edge_out_resent(const edge_out_t *out); /* records sent again */
/* Elastic groups (see above).  Consumer `consumer` of an elastic group
 * joined in generation `gen` (the payload of WIRE_JOIN): connect to it;
 * edge_out_recover then sends the notices, or our end of stream when it
 * has gone already.  Sends nothing. */
int edge_out_join(edge_out_t *out, uint32_t consumer, uint32_t gen);
/* Pass a notice about a sibling of ours on to every consumer we have
 * (edge_in calls it: edge_in_set_output). */
int edge_out_notice_forward(edge_out_t *out, const uint8_t *rec, uint32_t size);
/* Every consumer our end of stream went to said it took it (or has
 * stopped): a process leaving its group may exit. */
bool edge_out_ends_seen(const edge_out_t *out);
/* A joiner nobody heard of (edge_in_gate_scan said EDGE_GATE_VOID): it
 * sends nothing, not even its end of stream. */
void edge_out_void(edge_out_t *out);
/* Keep a copy of the resent count at `to` as well, updated before each
 * sending again (memory the parent reads after a death). */
void edge_out_mirror_resent(edge_out_t *out, volatile uint64_t *to);

#endif
