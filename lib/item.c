/* lib/item.c — reading an item: its parts, typed views, and its meta.
 * Items are views of validated records (lib/wire.c), so nothing here
 * re-checks the encoding. */
#include <stdlib.h>
#include <string.h>

#include "mpx/error.h"
#include "wire.h"

size_t mpx_item_parts(const mpx_item_t *it) { return it ? it->nparts : 0; }

const void *mpx_item_data(const mpx_item_t *it, size_t part)
{
    return it && part < it->nparts ? it->parts[part].data : NULL;
}

size_t mpx_item_size(const mpx_item_t *it, size_t part)
{
    return it && part < it->nparts ? it->parts[part].size : 0;
}

static int get8(const mpx_item_t *it, size_t part, void *out)
{
    if (!it || !out)
        return MPX_EINVAL;
    if (part >= it->nparts || it->parts[part].size != 8)
        return MPX_ERANGE;
    memcpy(out, it->parts[part].data, 8);
    return 0;
}

int mpx_item_get_i64(const mpx_item_t *it, size_t part, int64_t *out) { return get8(it, part, out); }
int mpx_item_get_f64(const mpx_item_t *it, size_t part, double *out) { return get8(it, part, out); }

int64_t mpx_item_i64(const mpx_item_t *it)
{
    int64_t v = 0;
    return get8(it, 0, &v) == 0 ? v : 0;
}

double mpx_item_f64(const mpx_item_t *it)
{
    double v = 0;
    return get8(it, 0, &v) == 0 ? v : 0.0;
}

const char *mpx_item_str(const mpx_item_t *it)
{
    return it && it->nparts ? (const char *)it->parts[0].data : "";
}

const void *mpx_item_meta(const mpx_item_t *it, const char *key, size_t *size)
{
    if (!it || !key || !it->nmeta)
        return NULL;
    return wire_meta_find(it->meta, it->meta_size, it->nmeta, key, size);
}

const char *mpx_item_meta_str(const mpx_item_t *it, const char *key)
{
    return mpx_item_meta(it, key, NULL);
}

const char *mpx_item_error(const mpx_item_t *it)
{
    return it && it->nparts == 0 ? mpx_item_meta(it, "mpx.error", NULL) : NULL;
}

int mpx_item_meta_i64(const mpx_item_t *it, const char *key, int64_t *out)
{
    size_t n;
    const void *v = mpx_item_meta(it, key, &n);
    if (!v || !out)
        return MPX_EINVAL;
    if (n != sizeof *out)
        return MPX_ERANGE;
    memcpy(out, v, sizeof *out);
    return 0;
}

size_t mpx_item_meta_count(const mpx_item_t *it) { return it ? it->nmeta : 0; }

int mpx_item_meta_at(const mpx_item_t *it, size_t i, const char **key, const void **value,
                     size_t *size)
{
    if (!it)
        return MPX_EINVAL;
    return wire_meta_at(it->meta, it->meta_size, it->nmeta, i, key, value, size);
}

/* The stage process's pool and identity (never set in the parent). */
static pool_t *dup_pool;
static pool_holder_t dup_self;

void item_pool_identity(pool_t *pool, pool_holder_t self)
{
    dup_pool = pool;
    dup_self = self;
}

typedef struct refs {
    int rc;
    size_t left; /* holds to take (or drop) */
} refs_t;

static void hold_ref(void *ctx, uint32_t blk)
{
    refs_t *r = ctx;
    if (r->rc == 0 && (r->rc = pool_hold(dup_pool, blk, dup_self)) == 0)
        r->left++;
}

static void release_ref(void *ctx, uint32_t blk)
{
    refs_t *r = ctx;
    if (r->left > 0) {
        r->left--;
        (void)pool_release(dup_pool, blk, dup_self);
    }
}

/* A copy is one allocation: the item, its part table, then the record.
 * A part in the pool stays there, held once more by the copy, in a stage
 * process; the parent copies its bytes (its copy may outlive the pool),
 * and so does a caller that says (`inline_parts`) the item may come from
 * another graph's pool than this process's. */
static mpx_item_t *dup(const mpx_item_t *it, const char *drop, int64_t *val, bool *found,
                       bool inline_parts)
{
    bool pooled = (it->flags & WIRE_REC_POOL) != 0;
    uint32_t size = it->size;
    uint8_t *inl = NULL;
    if (pooled && (!dup_pool || inline_parts)) {
        if (!(inl = wire_rec_inline(it, &size)))
            return NULL;
        pooled = false;
    }
    size_t head = sizeof(mpx_item_t) + (size_t)it->nparts * sizeof(mpx_part_t);
    head = (head + 7) & ~(size_t)7; /* parts stay 8-byte aligned */
    uint8_t *mem = malloc(head + size);
    if (!mem) {
        free(inl);
        return NULL;
    }
    mpx_item_t *copy = (mpx_item_t *)(void *)mem;
    uint8_t *rec = mem + head;
    memcpy(rec, inl ? inl : it->rec, size);
    free(inl);
    if (drop)
        *found = wire_rec_drop_meta(rec, &size, drop, val);
    mpx_part_t *parts = (mpx_part_t *)(void *)(mem + sizeof *copy);
    int rc = pooled ? wire_rec_decode_pool(rec, size, copy, parts, dup_pool, &dup_self)
                    : wire_rec_decode(rec, size, copy, parts);
    if (rc == 0 && pooled) {
        refs_t r = {0, 0};
        wire_pool_refs(rec, size, 1, hold_ref, &r);
        if (r.rc != 0) {
            /* The holds taken before the one refused go again. */
            wire_pool_refs(rec, size, 1, release_ref, &r);
            free(mem);
            return NULL;
        }
    }
    if (rc != 0) {
        free(mem);
        return NULL;
    }
    return copy;
}

mpx_item_t *mpx_item_dup(const mpx_item_t *it)
{
    return it ? dup(it, NULL, NULL, NULL, false) : NULL;
}

mpx_item_t *item_dup_drop(const mpx_item_t *it, const char *key, int64_t *val, bool *found,
                          bool inline_parts)
{
    *found = false;
    return dup(it, key, val, found, inline_parts);
}

void mpx_item_free(mpx_item_t **it)
{
    if (!it)
        return;
    if (*it && ((*it)->flags & WIRE_REC_POOL) && dup_pool) {
        refs_t r = {0, SIZE_MAX};
        wire_pool_refs((*it)->rec, (*it)->size, 1, release_ref, &r);
    }
    free(*it);
    *it = NULL;
}
