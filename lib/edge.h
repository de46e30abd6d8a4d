/* lib/edge.h — moving items between processes: the only code that knows
 * how an edge is made.
 *
 * A consumer binds one inbox; each producer connects one socket to every
 * consumer its dispatch tree reaches, so that it can address each one.
 * Flow control is by credit: a consumer acknowledges what it has processed
 * (on a separate ack socket the producer binds), and a producer never has
 * more than the consumer's window outstanding.  That gives exact
 * capacities, sends each parallel item to the least loaded consumer with
 * room, and tells a producer when a consumer has stopped.  While an edge
 * is busy, items are batched into one message; when a consumer is idle an
 * item leaves at once.  End of stream is a message of its own on every
 * connection, after the last item.
 *
 * zmq sockets are created in the context passed in, never before fork.
 */
#ifndef MPX_LIB_EDGE_H
#define MPX_LIB_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph/plan.h"
#include "wire.h"

/* Called when the edge must block until `sock` is ready for `events`
 * (ZMQ_POLLIN / ZMQ_POLLOUT), so that the owner keeps serving its control
 * channel meanwhile.  Returns 0 when the socket may be ready, a negative
 * code to abandon the wait. */
typedef int (*edge_wait_fn)(void *owner, void *sock, short events);

/* Path of an endpoint in the runtime directory: 'i' inbox, 'a' ack inbox. */
int edge_endpoint(char *buf, size_t cap, const char *dir, char kind, int id);

/* Apply the options every mpx socket uses. */
int edge_sockopts(void *sock);

/* ---- consumer side ------------------------------------------------------ */

typedef struct edge_in edge_in_t;

edge_in_t *edge_in_new(void *zctx, const plan_t *plan, int self, const char *dir,
                       char *err, size_t errcap);
void edge_in_destroy(edge_in_t **in);
void *edge_in_socket(edge_in_t *in);

/* Next item: 1 and *it set (valid until the next call), 0 when no message
 * is waiting (or input is complete), negative on a malformed message (err
 * filled).  Taking an item marks the previous one processed. */
int edge_in_next(edge_in_t *in, mpx_item_t **it, char *err, size_t errcap);
/* Every producer has sent its end of stream and every item was taken. */
bool edge_in_complete(const edge_in_t *in);
/* About to block: acknowledge everything processed so far. */
void edge_in_idle(edge_in_t *in);
/* Stop consuming: producers are told; items still arriving are discarded
 * (and counted) by edge_in_next, which then never returns 1. */
void edge_in_close(edge_in_t *in);
uint64_t edge_in_items(const edge_in_t *in);   /* items taken */
uint64_t edge_in_dropped(const edge_in_t *in); /* items discarded after close */

/* ---- producer side ------------------------------------------------------ */

typedef struct edge_out edge_out_t;

edge_out_t *edge_out_new(void *zctx, const plan_t *plan, int self, const char *dir,
                         edge_wait_fn wait, void *owner, char *err, size_t errcap);
void edge_out_destroy(edge_out_t **out);

/* Reserve room for one record of `size` bytes in the batch being built and
 * return where to write it; edge_out_commit() then counts it.  Either may
 * send a batch and block for credit.  NULL with *rc set on failure
 * (MPX_ESTOPPED when every consumer has stopped). */
uint8_t *edge_out_reserve(edge_out_t *out, size_t size, int *rc);
int edge_out_commit(edge_out_t *out, size_t size);
/* Send the batch if its oldest item has waited too long (call between
 * items when not putting). */
int edge_out_tick(edge_out_t *out);
/* Send what is batched now, waiting for credit as needed. */
int edge_out_flush(edge_out_t *out);
/* Flush, then send end of stream to every consumer. */
int edge_out_eos(edge_out_t *out);
/* Every consumer reachable from this producer has stopped. */
bool edge_out_closed(const edge_out_t *out);
uint64_t edge_out_items(const edge_out_t *out);

#endif
