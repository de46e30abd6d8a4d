/* lib/wire.c — encoding and checked decoding of the wire format (see
 * wire.h).  A decoder here must survive any bytes at all: it is the first
 * code that touches what another process sent.
 */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#include "mpx/error.h"
#include "pool.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the wire format is written for little-endian hosts"
#endif

static inline void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static inline uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

void wire_head_put(uint8_t *dst, const wire_head_t *h)
{
    dst[0] = WIRE_MAGIC;
    dst[1] = WIRE_VERSION;
    dst[2] = h->type;
    dst[3] = h->flags;
    put32(dst + 4, h->sender);
    put32(dst + 8, h->count);
    put32(dst + 12, h->gen);
}

int wire_head_get(const uint8_t *src, size_t len, wire_head_t *h)
{
    if (len < WIRE_HEAD || src[0] != WIRE_MAGIC || src[1] != WIRE_VERSION)
        return MPX_EPROTO;
    h->type = src[2];
    h->flags = src[3];
    h->sender = get32(src + 4);
    h->count = get32(src + 8);
    h->gen = get32(src + 12);
    return 0;
}

void wire_meta_entry_put(uint8_t *dst, const char *key, size_t klen, const void *val,
                         size_t vlen)
{
    size_t body = wire_pad8(klen + 1 + vlen + 1);
    put16(dst, (uint16_t)klen);
    put16(dst + 2, 0);
    put32(dst + 4, (uint32_t)vlen);
    uint8_t *p = dst + 8;
    memcpy(p, key, klen);
    p[klen] = 0;
    if (vlen)
        memcpy(p + klen + 1, val, vlen);
    memset(p + klen + 1 + vlen, 0, body - klen - 1 - vlen);
}

void wire_mark_put(uint8_t *dst, uint32_t origin, uint64_t value, uint64_t index)
{
    put32(dst, WIRE_MARK_SIZE);
    put16(dst + 4, 0);
    put16(dst + 6, 0);
    put32(dst + 8, 0);
    put32(dst + 12, WIRE_REC_MARK);
    put32(dst + 16, origin);
    put32(dst + 20, 0);
    put64(dst + 24, value);
    put64(dst + 32, index);
}

int wire_mark_get(const uint8_t *src, uint32_t size, uint32_t *origin, uint64_t *value,
                  uint64_t *index)
{
    uint32_t flags = wire_rec_flags(src);
    if ((flags & ~(WIRE_REC_REDO | WIRE_REC_POOL)) == 0 || flags == WIRE_REC_NOTICE)
        return 0;
    if (flags != WIRE_REC_MARK || size != WIRE_MARK_SIZE || get16(src + 4) || get16(src + 6) ||
        get32(src + 8) || get32(src + 20))
        return MPX_EPROTO;
    *origin = get32(src + 16);
    *value = get64(src + 24);
    *index = get64(src + 32);
    return 1;
}

void wire_notice_put(uint8_t *dst, const wire_notice_t *nt, const wire_notice_pair_t *pairs)
{
    put32(dst, wire_notice_size(nt->n));
    put16(dst + 4, 0);
    put16(dst + 6, 0);
    put32(dst + 8, 0);
    put32(dst + 12, WIRE_REC_NOTICE);
    memcpy(dst + 16, nt, sizeof *nt);
    memcpy(dst + 16 + sizeof *nt, pairs, nt->n * sizeof *pairs);
}

int wire_notice_get(const uint8_t *src, uint32_t size, wire_notice_t *nt, const uint8_t **pairs)
{
    if (wire_rec_flags(src) != WIRE_REC_NOTICE)
        return 0;
    if (size < 16 + sizeof *nt || get16(src + 4) || get16(src + 6) || get32(src + 8))
        return MPX_EPROTO;
    memcpy(nt, src + 16, sizeof *nt);
    if (nt->n > WIRE_NOTICE_MAX || size != wire_notice_size(nt->n))
        return MPX_EPROTO;
    *pairs = src + 16 + sizeof *nt;
    return 1;
}

/* Check one meta block: every entry inside it, keys without inner NUL,
 * key and value each followed by a NUL. */
static int meta_check(const uint8_t *blk, uint32_t size, uint16_t n)
{
    size_t off = 0;
    for (uint16_t i = 0; i < n; i++) {
        if (size - off < 8)
            return MPX_EPROTO;
        size_t klen = get16(blk + off);
        size_t vlen = get32(blk + off + 4);
        /* Keys no put could have made are refused; the value is checked
         * against the block before any sum that could wrap a 32-bit
         * size_t. */
        if (klen == 0 || klen > WIRE_KEY_MAX || get16(blk + off + 2) != 0)
            return MPX_EPROTO;
        size_t body = size - off - 8;
        if (vlen > body || klen + 1 + vlen + 1 > body || wire_pad8(klen + 1 + vlen + 1) > body)
            return MPX_EPROTO;
        const uint8_t *k = blk + off + 8;
        if (k[klen] != 0 || memchr(k, 0, klen) || k[klen + 1 + vlen] != 0)
            return MPX_EPROTO;
        off += wire_meta_entry_size(klen, vlen);
    }
    return off == size ? 0 : MPX_EPROTO;
}

/* A short record (wire.h): one part, no meta, no flags. */
static int decode_short(const uint8_t *src, uint32_t size, mpx_item_t *it, mpx_part_t *parts)
{
    uint32_t len = get32(src + 4);
    if (get32(src) != (size | WIRE_REC_SHORT) || size != wire_short_size(len) ||
        src[WIRE_SHORT_HEAD + len] != 0)
        return MPX_EPROTO;
    parts[0].data = src + WIRE_SHORT_HEAD;
    parts[0].size = len;
    it->rec = src;
    it->size = size;
    it->flags = 0;
    it->nparts = 1;
    it->nmeta = 0;
    it->meta = src + WIRE_SHORT_HEAD;
    it->meta_size = 0;
    it->parts = parts;
    return 0;
}

static int decode(const uint8_t *src, uint32_t size, mpx_item_t *it, mpx_part_t *parts,
                  const pool_t *pool, const pool_holder_t *self)
{
    if (size >= WIRE_SHORT_HEAD + 8 && wire_rec_is_short(src))
        return decode_short(src, size, it, parts);
    if (size < WIRE_REC_HEAD || size % 8 || get32(src) != size)
        return MPX_EPROTO;
    uint16_t nparts = get16(src + 4);
    uint16_t nmeta = get16(src + 6);
    uint32_t meta_size = get32(src + 8);
    uint32_t flags = get32(src + 12);
    uint32_t allowed = WIRE_REC_REDO | (pool ? WIRE_REC_POOL : 0);
    if ((flags & ~allowed) != 0 || meta_size % 8 || meta_size > size - WIRE_REC_HEAD)
        return MPX_EPROTO;
    const uint8_t *meta = src + WIRE_REC_HEAD;
    if (meta_check(meta, meta_size, nmeta) != 0)
        return MPX_EPROTO;
    size_t off = WIRE_REC_HEAD + meta_size;
    for (uint16_t i = 0; i < nparts; i++) {
        if (size - off < 8)
            return MPX_EPROTO;
        uint64_t len = get64(src + off);
        if ((len & WIRE_PART_POOLED) && (flags & WIRE_REC_POOL)) {
            /* A reference: the block must be one the receiver holds, and
             * hold the bytes and the NUL after them. */
            if (size - off < WIRE_POOLED_PART_SIZE || get32(src + off + 12) != 0)
                return MPX_EPROTO;
            uint32_t blk = get32(src + off + 8);
            uint64_t n = len & ~WIRE_PART_POOLED;
            const uint8_t *data = pool_data(pool, blk);
            if (!data || n >= pool_block_size(pool, blk) || !pool_holds(pool, blk, *self) ||
                data[n] != 0)
                return MPX_EPROTO;
            parts[i].data = data;
            parts[i].size = (size_t)n;
            off += WIRE_POOLED_PART_SIZE;
            continue;
        }
        if (len > size - off - 8 || wire_pad8((size_t)len + 1) > size - off - 8)
            return MPX_EPROTO;
        if (src[off + 8 + len] != 0)
            return MPX_EPROTO;
        parts[i].data = src + off + 8;
        parts[i].size = (size_t)len;
        off += wire_part_size((size_t)len);
    }
    if (off != size)
        return MPX_EPROTO;
    it->rec = src;
    it->size = size;
    it->flags = flags;
    it->nparts = nparts;
    it->nmeta = nmeta;
    it->meta = meta;
    it->meta_size = meta_size;
    it->parts = parts;
    return 0;
}

uint8_t *wire_rec_inline(const mpx_item_t *it, uint32_t *size)
{
    size_t total = WIRE_REC_HEAD + it->meta_size;
    for (uint16_t i = 0; i < it->nparts; i++)
        total += wire_part_size(it->parts[i].size);
    if (total > UINT32_MAX)
        return NULL;
    uint8_t *rec = malloc(total);
    if (!rec)
        return NULL;
    uint8_t *p = wire_rec_head_put(rec, total, it->nparts, it->nmeta, it->meta_size);
    put32(rec + 12, it->flags & WIRE_REC_REDO);
    if (it->meta_size)
        memcpy(p, it->meta, it->meta_size);
    p += it->meta_size;
    for (uint16_t i = 0; i < it->nparts; i++)
        p = wire_part_put(p, it->parts[i].data, it->parts[i].size);
    *size = (uint32_t)total;
    return rec;
}

/* The pooled parts of the `count` records at body: fn (when not NULL)
 * for each block; returns how many, and adds their lengths to *bytes. */
static size_t pool_walk(const uint8_t *body, size_t len, uint32_t count,
                        void (*fn)(void *ctx, uint32_t blk), void *ctx, uint64_t *bytes)
{
    size_t found = 0, off = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t size;
        uint16_t nparts;
        if (wire_rec_peek(body + off, len - off, &size, &nparts) != 0)
            break;
        const uint8_t *rec = body + off;
        off += size;
        if (wire_rec_is_short(rec))
            continue;
        uint32_t meta_size = get32(rec + 8);
        if (!(get32(rec + 12) & WIRE_REC_POOL) || meta_size > size - WIRE_REC_HEAD)
            continue;
        size_t p = WIRE_REC_HEAD + (size_t)meta_size;
        for (uint16_t j = 0; j < nparts && p + 8 <= size; j++) {
            uint64_t plen = get64(rec + p);
            if (plen & WIRE_PART_POOLED) {
                if (p + WIRE_POOLED_PART_SIZE > size)
                    break;
                if (fn)
                    fn(ctx, get32(rec + p + 8));
                /* Bounded, so that no sum of them wraps: a real part is
                 * far smaller (it fits in a pool). */
                plen &= ~WIRE_PART_POOLED;
                *bytes += plen < ((uint64_t)1 << 44) ? plen : (uint64_t)1 << 44;
                found++;
                p += WIRE_POOLED_PART_SIZE;
            } else {
                if (plen > size - p - 8 || p + wire_part_size((size_t)plen) > size)
                    break;
                p += wire_part_size((size_t)plen);
            }
        }
    }
    return found;
}

size_t wire_pool_refs(const uint8_t *body, size_t len, uint32_t count,
                      void (*fn)(void *ctx, uint32_t blk), void *ctx)
{
    uint64_t bytes = 0;
    return pool_walk(body, len, count, fn, ctx, &bytes);
}

uint64_t wire_weight(const uint8_t *body, size_t len, uint32_t count)
{
    uint64_t bytes = len;
    pool_walk(body, len, count, NULL, NULL, &bytes);
    return bytes;
}

int wire_rec_decode_full(const uint8_t *src, uint32_t size, mpx_item_t *it, mpx_part_t *parts)
{
    return decode(src, size, it, parts, NULL, NULL);
}

int wire_rec_decode_pool(const uint8_t *src, uint32_t size, mpx_item_t *it, mpx_part_t *parts,
                         const pool_t *pool, const pool_holder_t *self)
{
    return decode(src, size, it, parts, pool, self);
}

const void *wire_meta_find(const uint8_t *blk, uint32_t size, uint16_t n, const char *key,
                           size_t *vlen)
{
    size_t klen = strlen(key);
    size_t off = 0;
    /* The block was validated; the bound only guards against a caller
     * that passes one that was not. */
    for (uint16_t i = 0; i < n && off + 8 <= size; i++) {
        size_t kl = get16(blk + off);
        size_t vl = get32(blk + off + 4);
        const uint8_t *k = blk + off + 8;
        if (kl == klen && memcmp(k, key, klen) == 0) {
            if (vlen)
                *vlen = vl;
            return k + kl + 1;
        }
        off += wire_meta_entry_size(kl, vl);
    }
    return NULL;
}

int wire_meta_at(const uint8_t *blk, uint32_t size, uint16_t n, size_t i, const char **key,
                 const void **val, size_t *vlen)
{
    size_t off = 0;
    if (i >= n)
        return MPX_ERANGE;
    for (size_t j = 0; j < i && off + 8 <= size; j++)
        off += wire_meta_entry_size(get16(blk + off), get32(blk + off + 4));
    if (off + 8 > size)
        return MPX_ERANGE;
    size_t kl = get16(blk + off);
    const uint8_t *k = blk + off + 8;
    if (key)
        *key = (const char *)k;
    if (val)
        *val = k + kl + 1;
    if (vlen)
        *vlen = get32(blk + off + 4);
    return 0;
}

bool wire_rec_drop_meta(uint8_t *rec, uint32_t *size, const char *key, int64_t *val8)
{
    if (wire_rec_is_short(rec))
        return false;
    uint16_t nmeta = get16(rec + 6);
    uint32_t meta_size = get32(rec + 8);
    uint8_t *blk = rec + WIRE_REC_HEAD;
    size_t vlen;
    const uint8_t *v = wire_meta_find(blk, meta_size, nmeta, key, &vlen);
    if (!v || (val8 && vlen != 8))
        return false;
    if (val8)
        memcpy(val8, v, 8);
    size_t klen = strlen(key);
    uint8_t *entry = (uint8_t *)v - klen - 1 - 8;
    size_t esize = wire_meta_entry_size(klen, vlen);
    uint8_t *end = rec + *size;
    memmove(entry, entry + esize, (size_t)(end - entry - (ptrdiff_t)esize));
    *size -= (uint32_t)esize;
    put32(rec, *size);
    uint16_t n = (uint16_t)(nmeta - 1);
    memcpy(rec + 6, &n, 2);
    put32(rec + 8, meta_size - (uint32_t)esize);
    return true;
}
