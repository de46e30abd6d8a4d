/* mpx/wiring.h — manual wiring between stages, outside the graph's edges:
 * a queue of messages and an event flag (mpyx's F.Queue and F.Event).
 *
 * Create them in the parent before the graph starts, hand the pointer to
 * stages through their args, and use them from any stage process (and
 * from the parent).  They are built on a socket pair and an eventfd that
 * every forked stage inherits, so they work across processes with no
 * shared memory to corrupt.  Destroy them after the graph has ended.
 *
 *     mpx_queue_t *q = mpx_queue_new(64 * 1024, 256);
 *     mpx_graph_t *g = MPX_EZ(mpx_stage(&Producer, &q), mpx_stage(&Consumer, &q));
 *     ...in Producer:  mpx_queue_put(*(mpx_queue_t *const *)mpx_args(st), "hi", 2, -1);
 *     ...in Consumer:  char buf[256]; long n = mpx_queue_get(q, buf, sizeof buf, 1000);
 */
#ifndef MPX_WIRING_H
#define MPX_WIRING_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_queue mpx_queue_t;
typedef struct mpx_event mpx_event_t;

/* A queue holding about `capacity` bytes of messages of at most
 * `max_message` bytes each (max_message <= capacity).  Every message is
 * received whole by exactly one reader.  The kernel counts several
 * hundred bytes of its own per message, so a queue of small messages
 * holds fewer than capacity / size of them.  A stage that puts an item
 * and then waits on a queue for a stage downstream should mpx_flush()
 * first, or the item that stage needs may still sit in its batch.
 * NULL on failure (errno set). */
mpx_queue_t *mpx_queue_new(size_t capacity, size_t max_message);

/* Add a message, waiting while the queue is full: at most timeout_ms
 * milliseconds (0: do not wait, -1: no limit).  0, MPX_ETIMEDOUT,
 * MPX_ERANGE (larger than max_message), MPX_EINVAL or MPX_ESYS. */
MPX_MUST_CHECK int mpx_queue_put(mpx_queue_t *q, const void *data, size_t size, int timeout_ms);

/* Take the oldest message into buf (cap bytes, at least max_message),
 * waiting as for put.  Returns its size (0 is a valid, empty message),
 * MPX_ETIMEDOUT, MPX_EINVAL or MPX_ESYS. */
MPX_MUST_CHECK long mpx_queue_get(mpx_queue_t *q, void *buf, size_t cap, int timeout_ms);

/* The largest message this queue carries. */
size_t mpx_queue_max_message(const mpx_queue_t *q);

/* Close this process's handles and free it; sets *q to NULL. */
void mpx_queue_destroy(mpx_queue_t **q);

/* An event: a flag any process may set, clear, test or wait for.
 * NULL on failure (errno set). */
mpx_event_t *mpx_event_new(void);
int mpx_event_set(mpx_event_t *ev);
int mpx_event_clear(mpx_event_t *ev);
bool mpx_event_is_set(mpx_event_t *ev);
/* Wait until set: 1 when set, 0 after timeout_ms (-1: no limit), or a
 * negative code. */
MPX_MUST_CHECK int mpx_event_wait(mpx_event_t *ev, int timeout_ms);
void mpx_event_destroy(mpx_event_t **ev);

#ifdef __cplusplus
}
#endif
#endif
