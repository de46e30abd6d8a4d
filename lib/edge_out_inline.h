/* lib/edge_out_inline.h — the producer side's state, and the part of a
 * put that runs for every item: room in the batch being built, and
 * counting the record in.  Inline because at millions of items a second
 * the calls cost as much as the work (measured with callgrind: a put went
 * from 83 to about 40 instructions).  Everything that is not the common
 * case goes to edge_out.c.  Include only from lib/. */
#ifndef MPX_LIB_EDGE_OUT_INLINE_H
#define MPX_LIB_EDGE_OUT_INLINE_H

#include <stdbool.h>
#include <stdint.h>

#include <zmq.h>

#include "edge.h"
#include "ticks.h"

/* Batches stay below this many items and bytes (and below a quarter of
 * the smallest window); credit may cut one into smaller messages.  At the
 * 20-30 us of CPU a message costs, 1024 items a message is 20-30 ns an
 * item, a fifth of what a small item costs otherwise. */
#define BATCH_ITEMS_MAX 1024
#define BATCH_BYTES_MAX (64 * 1024)
/* ... except on the way to the program, for which every message is a
 * wake-up (PROGRAM_HOLD_TICKS below): there a batch may hold a quarter of
 * the program's window per producer, up to this many items.  With 2
 * workers (8192 items of window each) a result batch holds 2048 items:
 * the parent woke about 500 times per million 1 us items instead of 900,
 * and its CPU fell by a quarter (README, Targets). */
#define PROGRAM_BATCH_ITEMS_MAX 4096
/* Batches up to this size are copied into a fresh zmq message and the
 * buffer kept; larger ones are handed to zmq without a copy. */
#define COPY_MAX 8192
/* A batch leaves when its oldest item is this old (or at once when the
 * stage is about to wait for input, or the batch is full)...  A message
 * costs the processes on both sides 20-30 us of CPU here (four threads
 * wake up), so a producer of an item every 40 us that sent every 50 us
 * paid half its work in messages; holding items for up to a millisecond
 * keeps that near 2-3 % at any grain. */
#define DEFER_TICKS TICKS_US(1000)
/* ...except on a port of a stage with input that leads only to the
 * program (the graph's output in the parent), where it may wait as long
 * as the stage's input credit lasts.  The parent does nothing between
 * messages but wait for them, so each one wakes its thread and its zmq
 * thread, and that CPU comes out of the stages' share: a pool map of 40
 * us items on 2 workers got a result message per ~25 items (a
 * millisecond of each worker), 4,000 per 100,000 items and half of the
 * parent's wake-ups; held four milliseconds, one per ~100; held as long
 * as the credit target (sixteen), one per that much of a worker's work.
 * Results reach a busy program in bursts that far apart.  An idle graph
 * gains no latency: a stage about to wait for input sends what it holds
 * (a source, which has no such wait, keeps DEFER_TICKS). */
#define PROGRAM_HOLD_TICKS EDGE_TARGET_TICKS
/* The first item after this long without a send leaves at once. */
#define QUIET_TICKS TICKS_US(200)

/* A message kept until its consumer confirms it (edge.h, Recovery). */
typedef struct kept {
    zmq_msg_t msg;
    uint64_t seq;       /* the producer's message number */
    uint64_t end_items; /* the consumer's sent_items once it was sent */
    uint32_t k;         /* records in it */
    int leaf;           /* the dispatch leaf it went through */
} kept_t;

/* A message to send again, rebuilt from kept ones of a dead consumer. */
typedef struct redo {
    zmq_msg_t msg;
    uint64_t seq;
    uint32_t k;
    int target; /* dispatch node to send it through */
} redo_t;

typedef struct out_peer {
    int id;
    uint32_t gen;  /* the consumer's generation */
    uint8_t rid[EDGE_RID_SIZE];
    uint64_t sent_items, sent_bytes;
    uint64_t grant_items, grant_bytes; /* credit: how far we may send */
    uint64_t step;                     /* items its last grant added */
    uint64_t confirmed;                /* records it is done with for good */
    bool closed;
    bool heard;    /* it has sent credit in this generation: its pace counts */
    bool retain;   /* keep what it is sent until confirmed */
    bool unsorted; /* kept messages are not in seq order (after a redo) */
    bool eos_due;  /* replaced after our end of stream, or leaving: send it one */
    /* Elastic groups (edge.h): a consumer whose slot has no process, or
     * that is leaving, is never chosen; one that joined is not chosen
     * before its notice went to its siblings (join_due until then). */
    bool off, join_due;
    bool ended;    /* our end of stream went to this generation */
    bool end_seen; /* ... and it said it took it (a leaver waits for that) */
    kept_t *kept;  /* ring */
    size_t khead, kcount, kcap;
} out_peer_t;

typedef struct out_port {
    const char *name; /* the side graph's name; NULL for port 0 */
    int root;         /* dispatch tree; -1: what is put is discarded */
    bool closed;      /* every consumer behind it has stopped */
    uint8_t *buf;     /* batch being built, header first */
    size_t len, cap;
    size_t last_cap;  /* cap of the buffer last handed to a message (batch_message) */
    uint32_t count;
    bool pooled;      /* some record of the batch refers to pool blocks */
    uint64_t extra;   /* ... and the bytes of the pool parts they refer to */
    size_t batch_max, batch_bytes; /* a batch's size at most (size_port) */
    /* The size it is sent at: at most what the consumers behind the port
     * have credit for (at least one), so that a producer does not put
     * far ahead of a slow consumer (fit_batches). */
    size_t batch_items;
    uint64_t first_at; /* ticks when the batch's first item came */
    uint64_t hold;     /* how old that item may get: DEFER_TICKS or PROGRAM_HOLD_TICKS */
    /* The batch's first arith_n records are the int64 arith_v0,
     * arith_v0 + arith_step, ... put by source_put_i64_run (edge_out_arith):
     * when that is all of them, the run goes (WIRE_DATA_ARITH) instead of
     * the records.  Reset with the batch. */
    uint32_t arith_n;
    uint64_t arith_v0, arith_step;
} out_port_t;

struct edge_out {
    const plan_t *plan;
    int self;
    uint32_t gen;
    const char *dir;
    xport_t *sock;    /* our endpoint, connected to every consumer's inbox */
    bool keep_all;    /* keep every message (a chained stage) */
    bool sending, recovering, eos_sent;
    size_t kept_pooled; /* kept messages that refer to pool blocks */
    int lost;         /* the first failure that dropped a batch, or 0 */
    uint64_t seq;     /* messages numbered so far */
    redo_t *redo;
    size_t nredo, capredo;
    int *dn_parent;   /* per dispatch node, within this producer's trees */
    uint64_t resent, marks_lost;
    uint64_t *mark_next; /* per origin (ninst + 1): the number after the last mark sent */
    volatile uint64_t *resent_mirror; /* a copy of resent kept there too */
    edge_wait_fn wait;
    void *owner;
    out_peer_t *peers;
    int npeers;
    int *slot;
    out_port_t *ports;
    int nports;
    uint64_t items;
    uint64_t sent_at; /* ticks of the last send */
    uint64_t read_at; /* ticks when credit was last read to the end */
    uint64_t now;     /* the caller's idea of the time, 0 when it has none */
};

uint8_t *edge_out_reserve_slow(edge_out_t *o, int port, size_t size, int *rc);
int edge_out_commit_slow(edge_out_t *o, int port);

static inline uint8_t *edge_out_reserve(edge_out_t *o, int port, size_t size, int *rc)
{
    out_port_t *pt = &o->ports[port];
    if (__builtin_expect(!pt->closed && pt->len + size <= pt->cap &&
                             (pt->count == 0 ||
                              pt->len - WIRE_HEAD + pt->extra + size <= pt->batch_bytes),
                         1)) {
        *rc = 0;
        return pt->buf + pt->len;
    }
    return edge_out_reserve_slow(o, port, size, rc);
}

static inline int edge_out_commit(edge_out_t *o, int port, size_t size)
{
    out_port_t *pt = &o->ports[port];
    pt->len += size;
    pt->count++;
    o->items += port == 0;
    /* The common case: the batch goes on filling, and either the caller
     * knows the time and the batch may wait on, or (a source's puts, in
     * setup) this is not a put at which the clock is read (every fourth:
     * edge_out_commit_slow). */
    if (__builtin_expect(pt->count > 1 && pt->count < pt->batch_items &&
                             pt->len - WIRE_HEAD + pt->extra < pt->batch_bytes &&
                             (o->now ? o->now - pt->first_at < pt->hold : (pt->count & 3) != 0),
                         1))
        return 0;
    return edge_out_commit_slow(o, port);
}

/* How many records of `size` bytes each may be written one after another
 * at the end of the batch on `port` and counted in by edge_out_commit_run
 * with no decision to take: the batch has begun (its first record took
 * the slow path, which dates it), and after them it is neither full in
 * items nor in bytes, so that every one of them would have been a fast
 * edge_out_commit.  0 when the next record must go the ordinary way. */
static inline size_t edge_out_run_room(const edge_out_t *o, int port, size_t size)
{
    const out_port_t *pt = &o->ports[port];
    if (pt->closed || pt->count == 0 || pt->count + 1 >= pt->batch_items)
        return 0;
    size_t used = pt->len - WIRE_HEAD + pt->extra;
    if (used + size >= pt->batch_bytes)
        return 0;
    size_t n = pt->batch_items - 1 - pt->count;
    size_t by_cap = (pt->cap - pt->len) / size;
    size_t by_bytes = (pt->batch_bytes - used - 1) / size;
    if (by_cap < n)
        n = by_cap;
    return by_bytes < n ? by_bytes : n;
}

/* Before the k records of int64 v, v + step, ... (short records, no
 * meta) about to be counted in on `port`: whether the batch is still one
 * run of int64 (out_port_t.arith_n). */
static inline void edge_out_arith(edge_out_t *o, int port, uint64_t v, uint64_t step, size_t k)
{
    out_port_t *pt = &o->ports[port];
    if (pt->count == 0) {
        pt->arith_n = 0;
        pt->arith_v0 = v;
        pt->arith_step = step;
    }
    if (pt->arith_n == pt->count && pt->arith_step == step &&
        pt->arith_v0 + pt->arith_n * step == v)
        pt->arith_n += (uint32_t)k;
}

/* Count in k records of `size` bytes written at the end of the batch, at
 * most edge_out_run_room's answer: what k fast edge_out_commit calls would
 * have done, less the clock reads (the records were written in a few
 * microseconds, far below any time a batch may be held). */
static inline void edge_out_commit_run(edge_out_t *o, int port, size_t k, size_t size)
{
    out_port_t *pt = &o->ports[port];
    pt->len += k * size;
    pt->count += (uint32_t)k;
    if (port == 0)
        o->items += k;
}

static inline bool edge_out_closed(const edge_out_t *o, int port) { return o->ports[port].closed; }
/* The record just reserved on `port` refers to `bytes` of pool blocks:
 * they count towards the batch's size and the consumer's byte credit as
 * if they were in it (wire_weight). */
static inline void edge_out_pooled(edge_out_t *o, int port, uint64_t bytes)
{
    o->ports[port].pooled = true;
    o->ports[port].extra += bytes;
}
static inline void edge_out_time(edge_out_t *o, uint64_t now) { o->now = now; }

#endif
