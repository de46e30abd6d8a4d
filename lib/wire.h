/* lib/wire.h — bytes on the wire: message headers, item records, meta
 * blocks and control payloads.  Pure functions: no sockets, no state.
 *
 * Every message starts with a 16-byte header.  A DATA message carries
 * `count` item records back to back.  A record:
 *
 *   u32 size        whole record, a multiple of 8
 *   u16 nparts      u16 nmeta
 *   u32 meta_size   bytes of meta entries that follow, a multiple of 8
 *   u32 flags       0 for an item (WIRE_REC_REDO: one sent again;
 *                   WIRE_REC_POOL: some parts are in the graph's pool);
 *                   WIRE_REC_MARK for a mark record, which has no parts
 *                   or meta but u32 origin, u32 zero, u64 value, u64 index
 *                   (the origin's marks are numbered 0, 1, ... as it puts
 *                   them, and keep their number all the way);
 *                   WIRE_REC_NOTICE for a notice that an elastic group
 *                   grew (wire_notice_t, see lib/edge.h: Elastic groups)
 *   nmeta entries:  u16 klen, u16 zero, u32 vlen, key, NUL, value, NUL, pad
 *   nparts parts:   u64 len, data, NUL, pad
 *                   or, for a part in the pool (lib/pool.h):
 *                   u64 len | WIRE_PART_POOLED, u32 block, u32 zero —
 *                   the bytes are the block's, followed by a NUL there
 *
 * The short record is the common item (one part in the message, no meta,
 * no flags) with an 8-byte head instead of 16 and no part length of its
 * own, so that a 64-bit integer takes 24 bytes instead of 40 — at
 * millions of items a second, bytes copied through the kernel twice and
 * held in every window:
 *
 *   u32 size | WIRE_REC_SHORT   u32 len   data, NUL, pad
 *
 * Sizes are multiples of 8, so the low bit of the first word tells the
 * two forms apart.  Anything that adds flags or meta to a record (a
 * redelivery) writes it in the full form.
 *
 * Padding keeps every part 8-byte aligned relative to the message start
 * (and zmq message buffers are 8-byte aligned).  Integers are in host byte
 * order: both ends are processes on one machine.  Decoders never trust a
 * length: everything is checked against the bytes actually received.
 */
#ifndef MPX_LIB_WIRE_H
#define MPX_LIB_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mpx/error.h"
#include "mpx/stage.h"
#include "pool.h"

#define WIRE_MAGIC 0x6d
#define WIRE_VERSION 2
#define WIRE_HEAD 16
#define WIRE_REC_HEAD 16
#define WIRE_KEY_MAX 255
#define WIRE_REC_MARK 1u
#define WIRE_REC_REDO 2u /* an item sent again after its consumer died */
#define WIRE_REC_POOL 4u /* some of its parts are references into the pool */
#define WIRE_PART_POOLED (1ull << 63)
#define WIRE_POOLED_PART_SIZE 16
#define WIRE_MARK_SIZE 40
#define WIRE_REC_NOTICE 8u /* a notice record (no parts, no meta) */
#define WIRE_REC_SHORT 1u  /* in a record's first word: the short form */
#define WIRE_SHORT_HEAD 8

typedef enum wire_type {
    /* data edge */
    WIRE_DATA = 1,  /* count item records */
    WIRE_EOS = 2,   /* the sender will send nothing more */
    WIRE_CREDIT = 3, /* consumer -> producer, on the same connection as the
                      * data: wire_credit_t (lib/edge.h says when) */
    /* control channel, child -> parent */
    WIRE_HELLO = 16, /* u32 pid */
    WIRE_READY = 17, /* setup done (or first put in setup) */
    WIRE_DONE = 18,  /* u64 in, u64 out, u64 dropped, u64 failed */
    WIRE_ERROR = 19, /* u32 phase, text */
    WIRE_STATS = 20, /* counters for the monitor: wire_stats_t, then peers */
    /* control channel, parent -> child */
    WIRE_GO = 32,
    WIRE_RELEASE = 33,
    WIRE_STOP = 34,
    WIRE_RESTART = 35, /* a consumer was replaced: wire_restart_t, then error text */
    WIRE_JOIN = 36,    /* a consumer joined its group: wire_join_t */
    WIRE_LEAVE = 37,   /* leave your group: finish what you hold, then end */
} wire_type_t;

/* The payload of WIRE_JOIN, sent to each producer of an elastic group's
 * instance that starts (lib/edge.h, Elastic groups). */
typedef struct wire_join {
    uint32_t consumer, gen;
} wire_join_t;

/* The payload of WIRE_RESTART, sent to each producer of the instance
 * that died.  The record it had in hand (when it came from this
 * producer's current generation) failed with the text that follows. */
typedef struct wire_restart {
    uint32_t consumer, gen; /* the instance and its replacement's generation */
    uint32_t hand_gen;      /* generation of the producer that sent the item in hand */
    uint32_t has_hand;      /* 1: the next fields name a record of the receiver's */
    uint64_t hand_rec;      /* its index among the records of that stream */
} wire_restart_t;

/* The payload of WIRE_STATS: fixed part, then nout pairs (u64 consumer,
 * u64 records sent to it) and nin pairs (u64 producer, u64 records taken
 * from it).  Both ends are the same program on the same machine: the
 * struct travels as it is in memory. */
typedef struct wire_stats {
    uint32_t state; /* mpx_stage_state_t */
    uint32_t nout, nin;
    uint32_t reserved;
    uint64_t items_in, items_out, dropped;
    uint64_t now;               /* the sender's CLOCK_MONOTONIC (ns) when sent */
    uint64_t wait_in, wait_out; /* ns spent waiting for input, for room */
    uint64_t progress_done, progress_total;
    uint64_t failed; /* items given up on (skipped, dead-lettered) */
    uint64_t cpu;    /* ns of CPU time the process used, all its threads (0: unknown) */
} wire_stats_t;

/* The payload of WIRE_CREDIT.  Counts are cumulative over the stream of
 * one producer process (its generation): the producer may have sent up to
 * `items` records and, while it has sent fewer than `bytes` bytes of
 * records, one more message; `confirmed` records are done with for good
 * (processed, and what they made confirmed downstream when the consumer
 * is recoverable), so the producer may drop its copies. */
typedef struct wire_credit {
    uint64_t items, bytes, confirmed;
    uint32_t prod_gen; /* the producer generation the counts are about */
    uint32_t zero;
} wire_credit_t;

/* WIRE_CREDIT flags */
#define WIRE_CREDIT_CLOSED 1u /* the consumer stopped: send it nothing more */
#define WIRE_CREDIT_LEAVE 2u  /* the consumer leaves its group: send it your end */
#define WIRE_CREDIT_ENDED 4u  /* the consumer took your end of stream */

/* `gen` is the sender's generation: 0, then one more each time its
 * process was replaced after dying (lib/supervisor.c).  Receivers use it
 * to tell what a dead process sent from what its replacement sends. */
typedef struct wire_head {
    uint8_t type, flags;
    uint32_t sender;
    uint32_t count;
    uint32_t gen;
} wire_head_t;

static inline size_t wire_pad8(size_t n) { return (n + 7) & ~(size_t)7; }

void wire_head_put(uint8_t *dst, const wire_head_t *h);
/* 0, or MPX_EPROTO when the bytes are not an mpx header. */
int wire_head_get(const uint8_t *src, size_t len, wire_head_t *h);

/* Size of one meta entry and one part on the wire. */
static inline size_t wire_meta_entry_size(size_t klen, size_t vlen)
{
    return 8 + wire_pad8(klen + 1 + vlen + 1);
}
static inline size_t wire_part_size(size_t len) { return 8 + wire_pad8(len + 1); }
/* Size of a short record of `len` bytes (wire_short_put). */
static inline size_t wire_short_size(size_t len) { return WIRE_SHORT_HEAD + wire_pad8(len + 1); }
/* Whether the record at rec (at least 4 bytes) is in the short form. */
static inline bool wire_rec_is_short(const uint8_t *rec) { return (rec[0] & WIRE_REC_SHORT) != 0; }
/* The size of a record wire_rec_peek accepted, or one written here. */
static inline uint32_t wire_rec_size(const uint8_t *rec)
{
    uint32_t s;
    memcpy(&s, rec, 4);
    return s & ~(uint32_t)WIRE_REC_SHORT;
}
/* The flags of a record wire_rec_peek accepted (a short one has none). */
static inline uint32_t wire_rec_flags(const uint8_t *rec)
{
    uint32_t f = 0;
    if (!wire_rec_is_short(rec))
        memcpy(&f, rec + 12, 4);
    return f;
}

/* Write one meta entry at dst (wire_meta_entry_size bytes). */
void wire_meta_entry_put(uint8_t *dst, const char *key, size_t klen, const void *val,
                         size_t vlen);
/* Write a record header and return where meta goes; parts follow meta.
 * (Inline, as wire_part_put: they run for every item put.) */
static inline uint8_t *wire_rec_head_put(uint8_t *dst, size_t size, size_t nparts, size_t nmeta,
                                         size_t meta_size)
{
    uint32_t w[4] = {(uint32_t)size, (uint32_t)nparts | (uint32_t)nmeta << 16,
                     (uint32_t)meta_size, 0};
    memcpy(dst, w, sizeof w);
    return dst + WIRE_REC_HEAD;
}

/* Write one part, return the byte after it. */
static inline uint8_t *wire_part_put(uint8_t *dst, const void *data, size_t len)
{
    size_t body = wire_pad8(len + 1);
    uint64_t v = len, zero = 0;
    memcpy(dst, &v, 8);
    /* The NUL and the padding all lie in the body's last 8 bytes: zero
     * them first, then copy the data over. */
    memcpy(dst + body, &zero, 8);
    if (len)
        memcpy(dst + 8, data, len);
    return dst + 8 + body;
}

/* Write a short record of one part of `len` bytes (below 2^32), return
 * the byte after it. */
static inline uint8_t *wire_short_put(uint8_t *dst, const void *data, size_t len)
{
    size_t body = wire_pad8(len + 1);
    uint32_t w[2] = {(uint32_t)(WIRE_SHORT_HEAD + body) | WIRE_REC_SHORT, (uint32_t)len};
    uint64_t zero = 0;
    memcpy(dst, w, sizeof w);
    memcpy(dst + WIRE_SHORT_HEAD + body - 8, &zero, 8);
    if (len)
        memcpy(dst + WIRE_SHORT_HEAD, data, len);
    return dst + WIRE_SHORT_HEAD + body;
}

/* A part in the pool: its reference (WIRE_POOLED_PART_SIZE bytes). */
static inline uint8_t *wire_part_put_pooled(uint8_t *dst, uint32_t blk, size_t len)
{
    uint64_t v = (uint64_t)len | WIRE_PART_POOLED;
    uint32_t ref[2] = {blk, 0};
    memcpy(dst, &v, 8);
    memcpy(dst + 8, ref, 8);
    return dst + WIRE_POOLED_PART_SIZE;
}

/* A decoded view of a record, pointing into the received bytes. */
struct mpx_item {
    const uint8_t *rec;
    uint32_t size;
    uint32_t flags; /* WIRE_REC_REDO */
    uint16_t nparts, nmeta;
    const uint8_t *meta;
    uint32_t meta_size;
    mpx_part_t *parts; /* nparts entries, owned by whoever decoded */
};

/* In a stage process: the graph's pool and who we are in it, so that
 * mpx_item_dup keeps a hold of a pool item's blocks instead of a copy
 * (lib/item.c).  Never set in the parent, whose copies are of the bytes:
 * they may outlive the graph and its pool. */
void item_pool_identity(pool_t *pool, pool_holder_t self);

/* mpx_item_dup(it) without meta entry `key` when it holds 8 bytes:
 * *found says whether it did, and *val gets the value.  With `inline_parts`
 * parts in a pool are copied into the copy, as the parent copies them. */
mpx_item_t *item_dup_drop(const mpx_item_t *it, const char *key, int64_t *val, bool *found,
                          bool inline_parts);

/* A record of item `it` with every part's bytes in it (none in the pool),
 * and the REDO flag kept: malloc'd, *size its length. */
uint8_t *wire_rec_inline(const mpx_item_t *it, uint32_t *size);

/* A mark record (WIRE_MARK_SIZE bytes). */
void wire_mark_put(uint8_t *dst, uint32_t origin, uint64_t value, uint64_t index);
/* 1 when the record at src (already peeked) is a mark, with its fields;
 * 0 when it is an item (or a notice); MPX_EPROTO when it is a malformed
 * mark. */
int wire_mark_get(const uint8_t *src, uint32_t size, uint32_t *origin, uint64_t *value,
                  uint64_t *index);

/* A notice record: instance `slot` of an elastic group runs in generation
 * `gen`, and `from`, a producer of that group, sends it of each origin's
 * marks only those numbered `next` or more.  Followed by n pairs. */
typedef struct wire_notice {
    uint32_t slot, gen, from, n;
} wire_notice_t;
typedef struct wire_notice_pair {
    uint32_t origin, zero;
    uint64_t next;
} wire_notice_pair_t;
#define WIRE_NOTICE_MAX 4096 /* pairs */
static inline uint32_t wire_notice_size(uint32_t n)
{
    return (uint32_t)(16 + sizeof(wire_notice_t) + n * sizeof(wire_notice_pair_t));
}
void wire_notice_put(uint8_t *dst, const wire_notice_t *nt, const wire_notice_pair_t *pairs);
/* 1 when the record at src is a notice: *nt filled, *pairs pointing at
 * its pairs (unaligned: copy them out); 0 when it is not one; MPX_EPROTO
 * when it is malformed. */
int wire_notice_get(const uint8_t *src, uint32_t size, wire_notice_t *nt, const uint8_t **pairs);

/* Read the fixed head of the record at src: its size and part count.
 * Returns 0 or MPX_EPROTO (truncated, size not a multiple of 8, ...). */
static inline int wire_rec_peek(const uint8_t *src, size_t avail, uint32_t *size,
                                uint16_t *nparts)
{
    uint32_t s;
    if (avail < WIRE_SHORT_HEAD)
        return MPX_EPROTO;
    memcpy(&s, src, 4);
    if (s & WIRE_REC_SHORT) {
        s -= WIRE_REC_SHORT;
        if (s < WIRE_SHORT_HEAD + 8 || s % 8 || s > avail)
            return MPX_EPROTO;
        *size = s;
        *nparts = 1;
        return 0;
    }
    if (avail < WIRE_REC_HEAD || s < WIRE_REC_HEAD || s % 8 || s > avail)
        return MPX_EPROTO;
    *size = s;
    memcpy(nparts, src + 4, 2);
    return 0;
}
/* Validate the record of `size` bytes at src and fill `it`; `parts` must
 * hold nparts entries.  Returns 0 or MPX_EPROTO (a record with parts in a
 * pool among them: decode those with wire_rec_decode_pool). */
int wire_rec_decode_full(const uint8_t *src, uint32_t size, mpx_item_t *it, mpx_part_t *parts);

/* As wire_rec_decode_full, and parts in `pool` are taken as well when
 * `self` holds their blocks (a reference to a block the receiver does not
 * hold is malformed): their data points into the pool.  *pooled (if not
 * NULL) gets whether any part is in the pool. */
int wire_rec_decode_pool(const uint8_t *src, uint32_t size, mpx_item_t *it, mpx_part_t *parts,
                         const pool_t *pool, const pool_holder_t *self);

/* Remove meta entry `key` from the (validated, writable) record at rec,
 * moving what follows it down: *size shrinks by the entry's size, the
 * header says so, and the record must be decoded again.  Returns whether
 * the key was there; with `val8`, its value when it has 8 bytes (else
 * the key counts as absent and stays). */
bool wire_rec_drop_meta(uint8_t *rec, uint32_t *size, const char *key, int64_t *val8);

/* WIRE_DATA header flag: some record of the message has parts in the
 * pool (WIRE_REC_POOL), so its holds must be looked after. */
#define WIRE_DATA_POOL 1u
/* WIRE_DATA header flag: the message's `count` items are the int64
 * values first, first + step, ... (wrapping as uint64), each as if it
 * were a short record of 8 bytes with no meta, and it weighs what those
 * records would (WIRE_ARITH_WEIGHT each, for byte credit).  The body is
 * the two int64, first and step (WIRE_ARITH_BODY bytes), and nothing
 * else; no other flag goes with it.  A range's items cross the edges
 * this way (edge_out.c, send_arith). */
#define WIRE_DATA_ARITH 2u
#define WIRE_ARITH_BODY 16u
#define WIRE_ARITH_WEIGHT (WIRE_SHORT_HEAD + 16u)

/* WIRE_DATA header flag: the message's `count` items are int64, the
 * body their values one after another (8 bytes each), each item as if it
 * were a short record of 8 bytes with no meta and weighing what that
 * record would (WIRE_ARITH_WEIGHT).  No other flag goes with it.  A batch
 * of such items crosses the edges this way, a third of the bytes
 * (edge_out.c, send_run). */
#define WIRE_DATA_I64 4u

/* Whether a WIRE_DATA message of `len` bytes with header h is a
 * well-formed run of int64 (the receiver has checked the header). */
static inline bool wire_arith_ok(const wire_head_t *h, size_t len)
{
    return h->flags == WIRE_DATA_ARITH && h->count > 0 && len == WIRE_HEAD + WIRE_ARITH_BODY;
}

/* ... or a well-formed message of packed int64. */
static inline bool wire_i64_ok(const wire_head_t *h, size_t len)
{
    return h->flags == WIRE_DATA_I64 && h->count > 0 && len >= WIRE_HEAD &&
           (len - WIRE_HEAD) / 8 == h->count && (len - WIRE_HEAD) % 8 == 0;
}

/* Whether the `count` records at recs are all short records of 8 bytes
 * (what a put of one int64 without meta writes): such a batch may go as
 * packed int64 (WIRE_DATA_I64).  Stops at the first that is not. */
static inline bool wire_recs_i64(const uint8_t *recs, uint32_t count)
{
    const uint32_t head[2] = {(uint32_t)(WIRE_SHORT_HEAD + 16) | WIRE_REC_SHORT, 8};
    for (uint32_t i = 0; i < count; i++, recs += WIRE_SHORT_HEAD + 16)
        if (memcmp(recs, head, sizeof head) != 0)
            return false;
    return true;
}

/* Call fn(ctx, block) for every part in the pool of the `count` records
 * of a message body (`len` bytes).  Every step is bounded by the bytes:
 * what cannot be read is skipped, and the walk stops there.  Returns the
 * references found. */
size_t wire_pool_refs(const uint8_t *body, size_t len, uint32_t count,
                      void (*fn)(void *ctx, uint32_t blk), void *ctx);

/* The weight of the `count` records of a message body (`len` bytes), as
 * byte credit counts them: their bytes, and the bytes of every pool part
 * they refer to, so that an edge's byte capacity bounds the memory its
 * items take wherever their bytes are.  Bounded as wire_pool_refs. */
uint64_t wire_weight(const uint8_t *body, size_t len, uint32_t count);

/* Walk a validated meta block. */
const void *wire_meta_find(const uint8_t *blk, uint32_t size, uint16_t n, const char *key,
                           size_t *vlen);
int wire_meta_at(const uint8_t *blk, uint32_t size, uint16_t n, size_t i, const char **key,
                 const void **val, size_t *vlen);

/* The common record, checked in a few steps: `src` holds at least
 * `avail` bytes, and a short record there, or a full one that says it is
 * one part and no meta (no flags), is whole and well formed within them.
 * The record's size goes to *size, its part's length to *len and where
 * the part's bytes start to *off.  False for anything else, which the
 * full check (wire_rec_decode_full) then judges.  Every subtraction below
 * is guarded by the size check before it: a size under a header and a
 * part's length would wrap. */
static inline bool wire_rec_plain(const uint8_t *src, size_t avail, uint32_t *size, uint64_t *len,
                                  uint32_t *off)
{
    uint32_t w[4];
    if (avail < WIRE_SHORT_HEAD + 8)
        return false;
    memcpy(w, src, 8);
    if (__builtin_expect(w[0] & WIRE_REC_SHORT, 1)) {
        *size = w[0] - WIRE_REC_SHORT;
        *len = w[1];
        *off = WIRE_SHORT_HEAD;
        return *size <= avail && *size == wire_short_size(w[1]) && src[WIRE_SHORT_HEAD + w[1]] == 0;
    }
    if (avail < WIRE_REC_HEAD + 16)
        return false;
    memcpy(w, src, sizeof w);
    memcpy(len, src + WIRE_REC_HEAD, 8);
    *size = w[0];
    *off = WIRE_REC_HEAD + 8;
    return w[0] >= WIRE_REC_HEAD + 16 && w[0] <= avail && w[1] == 1 && w[2] == 0 && w[3] == 0 &&
           *len <= w[0] - WIRE_REC_HEAD - 8 &&
           wire_part_size((size_t)*len) == w[0] - WIRE_REC_HEAD &&
           src[WIRE_REC_HEAD + 8 + *len] == 0;
}

/* Fill `it` for a record wire_rec_plain accepted. */
static inline void wire_rec_plain_item(const uint8_t *src, uint32_t size, uint64_t len,
                                       uint32_t off, mpx_item_t *it, mpx_part_t *parts)
{
    parts[0].data = src + off;
    parts[0].size = (size_t)len;
    it->rec = src;
    it->size = size;
    it->flags = 0;
    it->nparts = 1;
    it->nmeta = 0;
    it->meta = src + (off == WIRE_SHORT_HEAD ? WIRE_SHORT_HEAD : WIRE_REC_HEAD);
    it->meta_size = 0;
    it->parts = parts;
}

/* wire_rec_decode with the common record (one part, no meta) checked
 * inline; anything else takes the full check. */
static inline int wire_rec_decode(const uint8_t *src, uint32_t size, mpx_item_t *it,
                                  mpx_part_t *parts)
{
    uint32_t rsize, off;
    uint64_t len;
    if (wire_rec_plain(src, size, &rsize, &len, &off) && rsize == size) {
        wire_rec_plain_item(src, size, len, off, it, parts);
        return 0;
    }
    return wire_rec_decode_full(src, size, it, parts);
}

#endif
