/* lib/reorder.c — Seq's reorder, wherever it runs (lib/reorder.h). */
#include "reorder.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpx/error.h"
#include "wire.h"

/* How far ahead of the oldest open input an output may be: marks carry
 * input counts modulo 2^32.  Further is a broken meta value. */
#define MAX_AHEAD ((int64_t)1 << 32)

void reorder_init(reorder_t *r, const seq_args_t *a) { *r = (reorder_t){.a = a}; }

static int list_add(reorder_list_t *l, mpx_item_t *it, int64_t after)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        reorder_held_t *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return MPX_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (reorder_held_t){it, after};
    return 0;
}

static int bucket_add(reorder_bucket_t *b, mpx_item_t *it)
{
    if (!b->one) {
        b->one = it;
        return 0;
    }
    if (b->nmore == b->capmore) {
        size_t cap = b->capmore ? 2 * b->capmore : 4;
        mpx_item_t **v = realloc(b->more, cap * sizeof *v);
        if (!v)
            return MPX_ENOMEM;
        b->more = v;
        b->capmore = cap;
    }
    b->more[b->nmore++] = it;
    return 0;
}

static reorder_bucket_t *bucket_of(const reorder_t *r, int64_t q)
{
    return &r->ring[(size_t)q & (r->cap - 1)];
}

static int ensure_room(reorder_t *r, int64_t q)
{
    if ((uint64_t)(q - r->done) < r->cap)
        return 0;
    size_t cap = r->cap ? r->cap : 2 * SEQ_EPOCH;
    while ((uint64_t)(q - r->done) >= cap)
        cap *= 2;
    reorder_bucket_t *ring = calloc(cap, sizeof *ring);
    if (!ring)
        return MPX_ENOMEM;
    for (int64_t k = r->done; k < r->seen; k++)
        ring[(size_t)k & (cap - 1)] = *bucket_of(r, k);
    free(r->ring);
    r->ring = ring;
    r->cap = cap;
    return 0;
}

int reorder_take(reorder_t *r, const mpx_item_t *it, char *err, size_t errcap)
{
    int64_t q = 0;
    bool numbered;
    mpx_item_t *copy = item_dup_drop(it, r->a->key, &q, &numbered, r->inline_parts);
    if (!copy) {
        snprintf(err, errcap, "seq: out of memory");
        return MPX_ENOMEM;
    }
    if (numbered && q >= r->done && q - r->done >= MAX_AHEAD) {
        mpx_item_free(&copy);
        snprintf(err, errcap,
                 "seq: an output for input %" PRId64 ", far beyond input %" PRId64
                 " (was the key %s changed?)",
                 q, r->done, r->a->key);
        return MPX_EPROTO;
    }
    int rc = numbered && q >= r->done ? ensure_room(r, q) : 0;
    if (rc == 0)
        rc = !numbered     ? list_add(&r->loose, copy, r->seen)
             : q < r->done ? list_add(&r->late, copy, 0)
                           : bucket_add(bucket_of(r, q), copy);
    if (rc != 0) {
        mpx_item_free(&copy);
        snprintf(err, errcap, "seq: out of memory holding %zu items", r->held + 1);
        return rc;
    }
    r->held++;
    if (numbered && q >= r->seen)
        r->seen = q + 1;
    return 0;
}

bool reorder_ours(const reorder_t *r, uint64_t value)
{
    return (uint32_t)(value >> 32) == r->a->tag;
}

static int put_one(reorder_t *r, mpx_item_t **it, reorder_put_fn put, void *ctx)
{
    r->held--;
    return put(ctx, it);
}

/* Put what `l` holds that may leave once the outputs of inputs before
 * `upto` have, in order; what a failed put leaves is freed later. */
static int put_list(reorder_t *r, reorder_list_t *l, int64_t upto, reorder_put_fn put, void *ctx)
{
    size_t i = 0;
    int rc = 0;
    for (; rc == 0 && i < l->n && l->v[i].after <= upto; i++)
        rc = put_one(r, &l->v[i].it, put, ctx);
    if (i < l->n)
        memmove(l->v, l->v + i, (l->n - i) * sizeof *l->v);
    l->n -= i;
    return rc;
}

/* Put the outputs of inputs done .. upto-1 in input order, after the late
 * ones (their inputs came earlier still), with the loose ones in their
 * place. */
static int flush(reorder_t *r, int64_t upto, reorder_put_fn put, void *ctx)
{
    int rc = put_list(r, &r->late, INT64_MAX, put, ctx);
    int64_t end = upto < r->seen ? upto : r->seen;
    for (; rc == 0 && r->done < end; r->done++) {
        rc = put_list(r, &r->loose, r->done, put, ctx);
        if (rc != 0)
            return rc;
        reorder_bucket_t *b = bucket_of(r, r->done);
        if (b->one)
            rc = put_one(r, &b->one, put, ctx);
        size_t i = 0;
        for (; rc == 0 && i < b->nmore; i++)
            rc = put_one(r, &b->more[i], put, ctx);
        if (rc != 0) {
            /* Keep the bucket consistent for the final free. */
            if (i < b->nmore)
                memmove(b->more, b->more + i, (b->nmore - i) * sizeof *b->more);
            b->nmore -= i;
            return rc;
        }
        free(b->more);
        *b = (reorder_bucket_t){0};
    }
    if (rc != 0)
        return rc;
    /* Inputs that gave nothing are done too: an output for one of them
     * arriving now is late. */
    if (r->done < upto)
        r->done = upto;
    if (r->seen < r->done)
        r->seen = r->done;
    return put_list(r, &r->loose, r->done, put, ctx);
}

int reorder_mark(reorder_t *r, uint64_t value, reorder_put_fn put, void *ctx)
{
    int64_t upto = r->done + (int64_t)(uint32_t)((uint32_t)value - (uint32_t)r->done);
    return flush(r, upto, put, ctx);
}

int reorder_flush_all(reorder_t *r, reorder_put_fn put, void *ctx)
{
    return flush(r, r->seen, put, ctx);
}

static void free_list(reorder_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        mpx_item_free(&l->v[i].it);
    free(l->v);
    *l = (reorder_list_t){0};
}

void reorder_free(reorder_t *r)
{
    for (size_t i = 0; i < r->cap; i++) {
        reorder_bucket_t *b = &r->ring[i];
        mpx_item_free(&b->one);
        for (size_t k = 0; k < b->nmore; k++)
            mpx_item_free(&b->more[k]);
        free(b->more);
    }
    free(r->ring);
    free_list(&r->late);
    free_list(&r->loose);
    *r = (reorder_t){.a = r->a, .inline_parts = r->inline_parts};
}
