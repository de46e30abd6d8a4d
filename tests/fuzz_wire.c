/* tests/fuzz_wire.c — a libFuzzer target for the wire decoder (lib/wire.c):
 * each input is one message as it arrives on a data edge or on the control
 * channel, decoded the way its receiver does (lib/edge_in.c, edge_out.c
 * read_credit, supervisor.c on_ctl, child.c handle_ctl).  Besides the
 * sanitizers' checks it asserts what must hold of anything the decoder
 * accepts, and aborts when that fails.  Run it with tests/test_fuzz.sh.
 *
 * Keeps nothing between inputs but a small pool made once (records whose
 * parts refer to pool blocks decode against it).  Built with -DFUZZ_WIRE_REPORT it also
 * prints, for each input, whether a receiver would accept it.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/edge.h" /* EDGE_CREDIT_SIZE: a credit message is exactly that long */
#include "lib/wire.h"
#include "mpx/monitor.h" /* MPX_STATE_FAILED, the last state a stats report may give */

/* A property of accepted bytes that does not hold: a decoder bug. */
#define MUST(cond)                                                                         \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz_wire.c:%d: invariant failed: %s\n", __LINE__, #cond);    \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Read every byte of [p, p+n): under ASan each read is checked to lie in
 * the message.  The empty asm keeps the sum (and so the reads) alive. */
static void touch(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += b[i];
    __asm__ volatile("" : : "r"(sum));
}

static bool inside(const uint8_t *p, size_t n, const uint8_t *lo, const uint8_t *hi)
{
    return p >= lo && p <= hi && n <= (size_t)(hi - p);
}

/* One meta entry as the walk found it. */
typedef struct ent {
    const char *key;
    size_t klen;
    const uint8_t *val;
    size_t vlen;
} ent_t;

/* Walk the meta block of an accepted item with wire_meta_at, check each
 * entry lies in the block where the layout puts it, look keys up with
 * wire_meta_find.  Fills ents (it->nmeta entries). */
static void check_meta(const mpx_item_t *it, ent_t *ents)
{
    const uint8_t *blk = it->meta, *end = it->meta + it->meta_size;
    size_t off = 0;
    for (size_t i = 0; i < it->nmeta; i++) {
        const char *key = NULL;
        const void *val = NULL;
        size_t vlen = 0;
        MUST(wire_meta_at(blk, it->meta_size, it->nmeta, i, &key, &val, &vlen) == 0);
        MUST(off + 8 <= it->meta_size);
        size_t klen = rd16(blk + off);
        MUST(klen > 0);
        MUST((const uint8_t *)key == blk + off + 8);
        MUST(inside((const uint8_t *)key, klen + 1, blk, end));
        MUST(strnlen(key, klen + 1) == klen); /* no inner NUL, then a NUL */
        MUST(vlen == rd32(blk + off + 4));
        MUST((const uint8_t *)val == (const uint8_t *)key + klen + 1);
        MUST(inside(val, vlen + 1, blk, end));
        MUST(((const uint8_t *)val)[vlen] == 0);
        touch(val, vlen);
        ents[i] = (ent_t){key, klen, val, vlen};
        off += wire_meta_entry_size(klen, vlen);
        MUST(off <= it->meta_size && off % 8 == 0);
    }
    MUST(off == it->meta_size);
    MUST(wire_meta_at(blk, it->meta_size, it->nmeta, it->nmeta, NULL, NULL, NULL) == MPX_ERANGE);

    /* wire_meta_find gives the first entry of that key, or NULL. */
    const char *keys[2] = {"mpx/fuzz/absent", it->nmeta ? ents[it->nmeta - 1].key : NULL};
    for (int q = 0; q < 2 && keys[q]; q++) {
        size_t vlen = 0;
        const void *got = wire_meta_find(blk, it->meta_size, it->nmeta, keys[q], &vlen);
        const ent_t *want = NULL;
        for (size_t j = 0; j < it->nmeta && !want; j++)
            if (strcmp(ents[j].key, keys[q]) == 0)
                want = &ents[j];
        MUST(got == (want ? (const void *)want->val : NULL));
        MUST(!want || vlen == want->vlen);
    }
}

/* Everything of an accepted item lies inside its record, in the order and
 * at the alignment the format promises. */
static void check_item(const mpx_item_t *it, const uint8_t *rec, uint32_t size, uint16_t nparts)
{
    const uint8_t *end = rec + size;
    MUST(it->rec == rec && it->size == size && it->nparts == nparts);
    if (wire_rec_is_short(rec)) {
        /* One part right after the 8-byte head, nothing else. */
        const uint8_t *d = rec + WIRE_SHORT_HEAD;
        size_t n = rd32(rec + 4);
        MUST(rd32(rec) == (size | WIRE_REC_SHORT) && size == wire_short_size(n));
        MUST(it->nparts == 1 && it->nmeta == 0 && it->flags == 0 && it->meta_size == 0);
        MUST(it->parts[0].data == d && it->parts[0].size == n && d[n] == 0);
        MUST(((uintptr_t)d & 7) == 0);
        touch(d, n);
        return;
    }
    MUST(it->nmeta == rd16(rec + 6));
    MUST(it->flags == rd32(rec + 12) && (it->flags == 0 || it->flags == WIRE_REC_REDO));
    MUST(it->meta == rec + WIRE_REC_HEAD && it->meta_size % 8 == 0);
    MUST(inside(it->meta, it->meta_size, rec, end));
    const uint8_t *next = it->meta + it->meta_size; /* where the next part's length goes */
    for (size_t i = 0; i < it->nparts; i++) {
        const uint8_t *d = it->parts[i].data;
        size_t n = it->parts[i].size;
        MUST(inside(next, 8, rec, end) && d == next + 8 && rd64(next) == n);
        MUST(((uintptr_t)d & 7) == 0);
        MUST(inside(d, n + 1, rec, end) && d[n] == 0);
        touch(d, n);
        next += wire_part_size(n);
        MUST(next <= end);
    }
    MUST(next == end);
}

/* A small pool for records whose parts refer to pool blocks: its first
 * block is held by FUZZ_HOLDER and holds known bytes; everything else a
 * reference names is not held, or not a block.  Made once; decoding never
 * changes it. */
static const pool_holder_t fuzz_holder = {1, 0};
static pool_t *fuzz_pool;
static uint32_t fuzz_blk = POOL_NONE;

static void make_pool(void)
{
    if (fuzz_pool)
        return;
    char err[200];
    fuzz_pool = pool_new(4 * POOL_GRANULE, 4, err, sizeof err);
    MUST(fuzz_pool != NULL);
    MUST(pool_alloc(fuzz_pool, fuzz_holder, 1000, &fuzz_blk) == 0);
    uint8_t *d = pool_data(fuzz_pool, fuzz_blk);
    for (size_t i = 0; i < pool_block_size(fuzz_pool, fuzz_blk); i++)
        d[i] = (uint8_t)(i % 7); /* a NUL every 7 bytes */
}

/* What the pooled decoder accepted: each part is either in the record, as
 * check_item requires, or a reference to a block the receiver holds, with
 * its bytes and a NUL inside the block. */
static void check_pooled_item(const mpx_item_t *it, const uint8_t *rec, uint32_t size)
{
    const uint8_t *end = rec + size;
    MUST(it->rec == rec && it->size == size);
    MUST((it->flags & ~(uint32_t)(WIRE_REC_REDO | WIRE_REC_POOL)) == 0);
    const uint8_t *next = it->meta + it->meta_size;
    for (size_t i = 0; i < it->nparts; i++) {
        const uint8_t *d = it->parts[i].data;
        size_t n = it->parts[i].size;
        MUST(inside(next, 8, rec, end));
        if (rd64(next) & WIRE_PART_POOLED) {
            uint32_t blk = rd32(next + 8);
            MUST(blk == fuzz_blk && d == pool_data(fuzz_pool, blk));
            MUST(n < pool_block_size(fuzz_pool, blk) && d[n] == 0);
            next += WIRE_POOLED_PART_SIZE;
        } else {
            MUST(d == next + 8 && inside(d, n + 1, rec, end) && d[n] == 0);
            next += wire_part_size(n);
        }
        touch(d, n);
        MUST(next <= end);
    }
    MUST(next == end);
}

static void count_ref(void *ctx, uint32_t blk)
{
    (void)blk;
    (*(size_t *)ctx)++;
}

/* The two decoders agree on what they both read. */
static void same_item(const mpx_item_t *a, const mpx_item_t *b)
{
    MUST(a->rec == b->rec && a->size == b->size && a->flags == b->flags);
    MUST(a->nparts == b->nparts && a->nmeta == b->nmeta);
    MUST(a->meta == b->meta && a->meta_size == b->meta_size);
    for (size_t i = 0; i < a->nparts; i++)
        MUST(a->parts[i].data == b->parts[i].data && a->parts[i].size == b->parts[i].size);
}

/* Encode the decoded item again with the real encoders: it must take the
 * same bytes and decode to the same entries and parts. */
static void reencode(const mpx_item_t *it, const ent_t *ents)
{
    if (wire_rec_is_short(it->rec)) {
        size_t n = it->parts[0].size;
        MUST(wire_short_size(n) == it->size);
        uint8_t *buf = malloc(it->size);
        if (!buf)
            return;
        MUST(wire_short_put(buf, it->parts[0].data, n) == buf + it->size);
        mpx_item_t again;
        mpx_part_t part;
        MUST(wire_rec_decode_full(buf, it->size, &again, &part) == 0);
        MUST(again.nparts == 1 && again.nmeta == 0 && again.flags == 0 && part.size == n);
        MUST(memcmp(part.data, it->parts[0].data, n) == 0);
        free(buf);
        return;
    }
    size_t size = WIRE_REC_HEAD + it->meta_size;
    for (size_t i = 0; i < it->nparts; i++)
        size += wire_part_size(it->parts[i].size);
    MUST(size == it->size);
    uint8_t *buf = malloc(size); /* malloc: 16-byte aligned */
    mpx_part_t *parts = malloc(it->nparts ? it->nparts * sizeof *parts : 1);
    if (!buf || !parts) {
        free(buf);
        free(parts);
        return;
    }
    uint8_t *p = wire_rec_head_put(buf, size, it->nparts, it->nmeta, it->meta_size);
    for (size_t i = 0; i < it->nmeta; i++) {
        wire_meta_entry_put(p, ents[i].key, ents[i].klen, ents[i].val, ents[i].vlen);
        p += wire_meta_entry_size(ents[i].klen, ents[i].vlen);
    }
    MUST(p == buf + WIRE_REC_HEAD + it->meta_size);
    for (size_t i = 0; i < it->nparts; i++)
        p = wire_part_put(p, it->parts[i].data, it->parts[i].size);
    MUST(p == buf + size);

    mpx_item_t again;
    MUST(wire_rec_decode_full(buf, (uint32_t)size, &again, parts) == 0);
    MUST(again.nparts == it->nparts && again.nmeta == it->nmeta && again.flags == 0);
    /* Padding is not checked by the decoder, so bytes may differ there:
     * compare entry by entry. */
    for (size_t i = 0; i < it->nmeta; i++) {
        const char *key;
        const void *val;
        size_t vlen;
        MUST(wire_meta_at(again.meta, again.meta_size, again.nmeta, i, &key, &val, &vlen) == 0);
        MUST(strcmp(key, ents[i].key) == 0 && vlen == ents[i].vlen);
        MUST(memcmp(val, ents[i].val, vlen) == 0);
    }
    for (size_t i = 0; i < it->nparts; i++) {
        MUST(again.parts[i].size == it->parts[i].size);
        MUST(memcmp(again.parts[i].data, it->parts[i].data, it->parts[i].size) == 0);
    }
    free(parts);
    free(buf);
}

/* One record that a receiver takes from a DATA message.  NULL when it is
 * accepted, else why not.  Every record goes through wire_mark_get, so
 * that a mark is refused as an item and an item as a mark whatever the
 * receiver's test of the flags word (edge_in.c: flags & WIRE_REC_MARK). */
static const char *take_record(const uint8_t *rec, uint32_t size, uint16_t nparts)
{
    uint32_t flags = wire_rec_is_short(rec) ? 0 : rd32(rec + 12);
    MUST(flags == wire_rec_flags(rec) && size == wire_rec_size(rec));
    uint32_t origin = 0;
    uint64_t value = 0, index = 0;
    int m = wire_mark_get(rec, size, &origin, &value, &index);
    if (flags == 0)
        MUST(m == 0);
    wire_notice_t nt;
    const uint8_t *pairs;
    int nm = wire_notice_get(rec, size, &nt, &pairs);
    if (nm == 1) {
        /* A notice, and nothing else: its bytes are what the encoder
         * writes, and neither the item nor the mark decoder takes it. */
        MUST(m == 0 && flags == WIRE_REC_NOTICE && size == wire_notice_size(nt.n));
        uint8_t *again = malloc(size);
        wire_notice_pair_t *pv = malloc(nt.n ? nt.n * sizeof *pv : 1);
        if (!again || !pv) {
            free(again);
            free(pv);
            return "out of memory";
        }
        memcpy(pv, pairs, nt.n * sizeof *pv);
        wire_notice_put(again, &nt, pv);
        MUST(memcmp(again, rec, size) == 0);
        free(again);
        free(pv);
        mpx_item_t it;
        mpx_part_t p[1];
        MUST(nparts == 0 && wire_rec_decode_full(rec, size, &it, p) != 0);
        return NULL;
    }
    if (nm != 0)
        return "malformed notice";
    if (m == 1) {
        /* A mark, and nothing else: its bytes are exactly what the
         * encoder writes, and the item decoder refuses it. */
        uint8_t again[WIRE_MARK_SIZE];
        MUST(size == WIRE_MARK_SIZE && flags == WIRE_REC_MARK);
        wire_mark_put(again, origin, value, index);
        MUST(memcmp(again, rec, WIRE_MARK_SIZE) == 0);
        mpx_item_t it;
        mpx_part_t p[1];
        MUST(nparts == 0 && wire_rec_decode_full(rec, size, &it, p) != 0);
        return NULL;
    }
    if (m != 0)
        return "malformed mark";
    if (flags & WIRE_REC_POOL) {
        /* Parts in the pool: the plain decoders refuse it; the pooled one
         * takes references only to a block the receiver holds. */
        make_pool();
        mpx_part_t *parts = malloc(nparts ? nparts * sizeof *parts : 1);
        if (!parts)
            return "out of memory";
        mpx_item_t it;
        MUST(wire_rec_decode_full(rec, size, &it, parts) == MPX_EPROTO);
        int rc = wire_rec_decode_pool(rec, size, &it, parts, fuzz_pool, &fuzz_holder);
        MUST(rc == 0 || rc == MPX_EPROTO);
        size_t refs = 0;
        wire_pool_refs(rec, size, 1, count_ref, &refs);
        if (rc == 0) {
            check_pooled_item(&it, rec, size);
            size_t pooled = 0;
            for (size_t i = 0; i < it.nparts; i++)
                pooled += it.parts[i].data == pool_data(fuzz_pool, fuzz_blk);
            MUST(refs == pooled);
        }
        free(parts);
        return rc == 0 ? NULL : "malformed pooled item";
    }
    /* An item (flags 0, or WIRE_REC_REDO for one sent again). */
    mpx_part_t *fast = malloc(nparts ? nparts * sizeof *fast : 1);
    mpx_part_t *full = malloc(nparts ? nparts * sizeof *full : 1);
    if (!fast || !full) {
        free(fast);
        free(full);
        return "out of memory";
    }
    mpx_item_t a, b;
    int ra = wire_rec_decode(rec, size, &a, fast);
    int rb = wire_rec_decode_full(rec, size, &b, full);
    MUST(ra == rb && (ra == 0 || ra == MPX_EPROTO));
    const char *why = ra == 0 ? NULL : "malformed item";
    if (ra == 0) {
        check_item(&a, rec, size, nparts);
        check_item(&b, rec, size, nparts);
        MUST(a.parts == fast && b.parts == full);
        same_item(&a, &b);
        ent_t *ents = malloc(a.nmeta ? a.nmeta * sizeof *ents : 1);
        if (ents) {
            check_meta(&a, ents);
            reencode(&a, ents);
        }
        free(ents);
    }
    free(fast);
    free(full);
    return why;
}

/* A message on a data edge, as edge_in_next takes it: records one at a
 * time, each peeked within what is left, the last ending the message. */
static const char *data_message(const uint8_t *msg, size_t len, const wire_head_t *h)
{
    if (h->type == WIRE_EOS)
        return len == WIRE_HEAD ? NULL : "EOS with a payload";
    if (h->count == 0)
        return "DATA without records";
    if (h->flags & WIRE_DATA_ARITH) {
        /* A run of int64: two numbers, and count items made of them. */
        if (!wire_arith_ok(h, len))
            return "run of int64";
        MUST(len == WIRE_HEAD + 16 && h->flags == WIRE_DATA_ARITH);
        touch(msg + WIRE_HEAD, 16);
        return NULL;
    }
    if (h->flags & WIRE_DATA_I64) {
        /* Packed int64: count values of 8 bytes, nothing else. */
        if (!wire_i64_ok(h, len))
            return "packed int64";
        MUST(h->flags == WIRE_DATA_I64 && len - WIRE_HEAD == 8 * (size_t)h->count);
        touch(msg + WIRE_HEAD, len - WIRE_HEAD);
        return NULL;
    }
    const uint8_t *cur = msg + WIRE_HEAD, *end = msg + len;
    size_t total = 0;
    for (uint32_t left = h->count; left > 0; left--) {
        uint32_t size;
        uint16_t nparts;
        if (wire_rec_peek(cur, (size_t)(end - cur), &size, &nparts) != 0)
            return "record framing";
        MUST(size >= WIRE_SHORT_HEAD + 8 && size % 8 == 0 && size <= (size_t)(end - cur));
        if (wire_rec_is_short(cur))
            MUST(rd32(cur) == (size | WIRE_REC_SHORT) && nparts == 1);
        else
            MUST(size >= WIRE_REC_HEAD && rd32(cur) == size && rd16(cur + 4) == nparts);
        const uint8_t *rec = cur;
        cur += size;
        total += size;
        if (left == 1 && cur != end)
            return "bytes after the last record";
        const char *why = take_record(rec, size, nparts);
        if (why)
            return why;
    }
    MUST(total == len - WIRE_HEAD && cur == end);
    return NULL;
}

/* A credit message, as edge_out.c read_credit takes it. */
static const char *credit_message(const uint8_t *msg, size_t len)
{
    if (len != (size_t)EDGE_CREDIT_SIZE)
        return "credit of the wrong size";
    wire_credit_t c;
    memcpy(&c, msg + WIRE_HEAD, sizeof c);
    __asm__ volatile("" : : "r"(c.items), "r"(c.bytes), "r"(c.confirmed), "r"(c.prod_gen));
    touch(msg + WIRE_HEAD, len - WIRE_HEAD);
    return NULL;
}

/* A control message, as supervisor.c on_ctl (child -> parent) and
 * child.c handle_ctl (parent -> child) take it. */
static const char *ctl_message(const uint8_t *msg, size_t len, const wire_head_t *h)
{
    const uint8_t *body = msg + WIRE_HEAD;
    size_t blen = len - WIRE_HEAD;
    switch (h->type) {
    case WIRE_HELLO:
        if (blen >= 4)
            touch(body, 4); /* the pid */
        return NULL;
    case WIRE_READY: return NULL;
    case WIRE_DONE:
        if (blen >= 24)
            touch(body, blen >= 32 ? 32 : 24); /* in, out, dropped (, failed) */
        return NULL;
    case WIRE_ERROR: {
        size_t tlen = len > WIRE_HEAD + 4 ? len - WIRE_HEAD - 4 : 0;
        touch(body + 4, tlen); /* the text, after u32 phase */
        return NULL;
    }
    case WIRE_STATS: {
        /* as stats.c stats_report; the peer ids are bounded by the graph,
         * which a fuzz input has none of. */
        wire_stats_t ws;
        if (blen < sizeof ws)
            return "stats too short";
        memcpy(&ws, body, sizeof ws);
        size_t want = WIRE_HEAD + sizeof ws + 16 * ((size_t)ws.nout + ws.nin);
        if (len != want || ws.state > MPX_STATE_FAILED)
            return "stats of the wrong size";
        const uint8_t *pairs = body + sizeof ws;
        for (size_t k = 0; k < (size_t)ws.nout + ws.nin; k++)
            touch(pairs + 16 * k, 16);
        MUST(pairs + 16 * ((size_t)ws.nout + ws.nin) == msg + len);
        return NULL;
    }
    /* (handle_ctl also drops what does not fit its buffer: a limit of
     * the receiver's, not of the format.) */
    case WIRE_GO:
    case WIRE_RELEASE:
    case WIRE_STOP: return NULL;
    case WIRE_RESTART: {
        wire_restart_t rs;
        if (blen < sizeof rs)
            return "restart too short";
        memcpy(&rs, body, sizeof rs);
        __asm__ volatile("" : : "r"(rs.hand_rec));
        touch(body + sizeof rs, blen - sizeof rs); /* the error text */
        return NULL;
    }
    default: return "unknown message type";
    }
}

/* The whole message: NULL when its receiver would accept it. */
static const char *fuzz_message(const uint8_t *msg, size_t len)
{
    wire_head_t h;
    memset(&h, 0xa5, sizeof h);
    if (wire_head_get(msg, len, &h) != 0) {
        MUST(len < WIRE_HEAD || msg[0] != WIRE_MAGIC || msg[1] != WIRE_VERSION);
        return "header";
    }
    MUST(len >= WIRE_HEAD);
    uint8_t again[WIRE_HEAD];
    wire_head_put(again, &h);
    MUST(memcmp(again, msg, WIRE_HEAD) == 0);
    switch (h.type) {
    case WIRE_DATA:
    case WIRE_EOS: return data_message(msg, len, &h);
    case WIRE_CREDIT: return credit_message(msg, len);
    default: return ctl_message(msg, len, &h);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Receivers copy a message zmq placed off an 8-byte boundary; parts
     * are promised aligned.  malloc of exactly `size` bytes so that ASan
     * sees a read one past the end. */
    uint8_t *msg = malloc(size);
    if (!msg)
        return 0;
    if (size)
        memcpy(msg, data, size);
    MUST(((uintptr_t)msg & 7) == 0);
    const char *why = fuzz_message(msg, size);
#ifdef FUZZ_WIRE_REPORT
    fprintf(stderr, "mpx-fuzz: %s%s\n", why ? "rejected: " : "accepted", why ? why : "");
#else
    (void)why;
#endif
    free(msg);
    return 0;
}
