/* builtins/seq.c — Seq: the outputs of a sub-graph in the order of their
 * inputs.  Built from two ordinary stages and marks, with the public API
 * only.
 *
 * mpx_seq(node) is S(stamp, node, reorder).  The stamp numbers the inputs
 * (meta key "mpx.seq.<tag>.n") and puts a mark after every SEQ_EPOCH
 * inputs or SEQ_EPOCH_BYTES of them, whenever its input pauses, and before passing on a mark of
 * another origin.  The reorder keeps copies of what the node puts; when
 * its own mark arrives, everything the node made from the inputs that mark
 * covers has arrived (the mark came behind it on every path), so those
 * outputs leave, sorted by input, and the rest waits for a later mark.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpx.h"

/* Inputs between two marks: a mark costs a message per edge, an epoch is
 * what the reorder holds at least.  128 keeps both small. */
#define SEQ_EPOCH 128
/* ... and bytes of input: large items (video frames in the pool) would
 * otherwise be held by the hundred, filling the pool that the stages
 * inside need for their own outputs. */
#define SEQ_EPOCH_BYTES ((size_t)16 << 20)
/* How far ahead of the oldest open input an output may be: marks carry
 * input counts modulo 2^32.  Further is a broken meta value. */
#define SEQ_MAX_AHEAD ((int64_t)1 << 32)

/* Marks carry 'Q' and a counter in the high 32 bits (which Seq they
 * belong to) and the inputs stamped so far, modulo 2^32, in the low 32. */
#define SEQ_KIND 0x51u
static atomic_uint_fast32_t seq_counter;

typedef struct seq_args {
    uint32_t tag;
    /* Per Seq, so that a Seq nested in another keeps the outer numbers. */
    char key[40];
} seq_args_t;

static uint64_t mark_value(uint32_t tag, int64_t count)
{
    return (uint64_t)tag << 32 | (uint32_t)count;
}

/* ---- stamp -------------------------------------------------------------- */

typedef struct stamp_state {
    int64_t next;   /* inputs numbered so far */
    int64_t marked; /* `next` at the last mark */
    size_t bytes;   /* of the inputs since then */
} stamp_state_t;

static int stamp_mark_now(mpx_stage_t *st)
{
    const seq_args_t *a = mpx_args(st);
    stamp_state_t *s = mpx_state(st);
    if (s->next == s->marked)
        return 0;
    s->marked = s->next;
    s->bytes = 0;
    return mpx_put_mark(st, mark_value(a->tag, s->next));
}

static int stamp_process(mpx_stage_t *st, mpx_item_t *it)
{
    const seq_args_t *a = mpx_args(st);
    stamp_state_t *s = mpx_state(st);
    int rc = mpx_meta_set_i64(st, a->key, s->next);
    if (rc != 0)
        return mpx_fail(st, "seq: cannot set meta: %s", mpx_strerror(rc));
    s->next++;
    rc = mpx_put_item(st, it);
    for (size_t i = 0; i < mpx_item_parts(it); i++)
        s->bytes += mpx_item_size(it, i);
    if (rc == 0 && (s->next - s->marked >= SEQ_EPOCH || s->bytes >= SEQ_EPOCH_BYTES))
        rc = stamp_mark_now(st);
    return rc;
}

/* A pause: close the epoch, so that what the node made of the inputs so
 * far is not held until more come. */
static int stamp_idle(mpx_stage_t *st) { return stamp_mark_now(st); }

/* Another origin's mark must not overtake outputs the reorder still
 * holds: our own mark goes first, so the reorder has put them by then. */
static int stamp_mark(mpx_stage_t *st, uint64_t value)
{
    (void)value;
    return stamp_mark_now(st);
}

static const mpx_stage_def_t stamp_def = {
    .name = "seq-stamp",
    .args_size = sizeof(seq_args_t),
    .state_size = sizeof(stamp_state_t),
    .process = stamp_process,
    .idle = stamp_idle,
    .mark = stamp_mark,
};

/* ---- reorder ------------------------------------------------------------ */

/* Outputs of one input in arrival order; most inputs have one. */
typedef struct bucket {
    mpx_item_t *one;
    mpx_item_t **more;
    size_t nmore, capmore;
} bucket_t;

/* Kept items that belong to no open input, in arrival order; each leaves
 * once the outputs of inputs before `after` have. */
typedef struct held {
    mpx_item_t *it;
    int64_t after;
} held_t;

typedef struct item_list {
    held_t *v;
    size_t n, cap;
} item_list_t;

/* Inputs done .. seen-1 are open; input q's bucket is ring[q mod cap].
 * `late` holds outputs of inputs already put (a stage inside kept them
 * past their mark): they leave first at the next mark.  `loose` holds
 * those that belong to no input (made in a teardown inside the node):
 * each leaves after the outputs of every input seen before it arrived,
 * since the stage that made it had passed those on first — but possibly
 * not its sibling instances, so the next mark may be too early. */
typedef struct reorder_state {
    int64_t done, seen;
    size_t cap;
    bucket_t *ring;
    item_list_t late, loose;
} reorder_state_t;

static int list_add(item_list_t *l, mpx_item_t *it, int64_t after)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        held_t *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (held_t){it, after};
    return 0;
}

static int bucket_add(bucket_t *b, mpx_item_t *it)
{
    if (!b->one) {
        b->one = it;
        return 0;
    }
    if (b->nmore == b->capmore) {
        size_t cap = b->capmore ? 2 * b->capmore : 4;
        mpx_item_t **v = realloc(b->more, cap * sizeof *v);
        if (!v)
            return -1;
        b->more = v;
        b->capmore = cap;
    }
    b->more[b->nmore++] = it;
    return 0;
}

static bucket_t *bucket_of(const reorder_state_t *s, int64_t q)
{
    return &s->ring[(size_t)q & (s->cap - 1)];
}

static int ensure_room(mpx_stage_t *st, reorder_state_t *s, int64_t q)
{
    if ((uint64_t)(q - s->done) < s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 2 * SEQ_EPOCH;
    while ((uint64_t)(q - s->done) >= cap)
        cap *= 2;
    bucket_t *ring = calloc(cap, sizeof *ring);
    if (!ring)
        return mpx_fail(st, "seq: out of memory holding %" PRId64 " inputs", q - s->done + 1);
    for (int64_t k = s->done; k < s->seen; k++)
        ring[(size_t)k & (cap - 1)] = *bucket_of(s, k);
    free(s->ring);
    s->ring = ring;
    s->cap = cap;
    return 0;
}

static int reorder_process(mpx_stage_t *st, mpx_item_t *it)
{
    const seq_args_t *a = mpx_args(st);
    reorder_state_t *s = mpx_state(st);
    int64_t q;
    bool numbered = mpx_item_meta_i64(it, a->key, &q) == 0;
    if (numbered && q >= s->done && q - s->done >= SEQ_MAX_AHEAD)
        return mpx_fail(st, "seq: an output for input %" PRId64 ", far beyond input %" PRId64
                            " (was the key %s changed?)",
                        q, s->done, a->key);
    if (numbered && q >= s->done) {
        int rc = ensure_room(st, s, q);
        if (rc != 0)
            return rc;
    }
    mpx_item_t *copy = mpx_item_dup(it);
    if (!copy)
        return mpx_fail(st, "seq: out of memory");
    int rc = !numbered       ? list_add(&s->loose, copy, s->seen)
             : q < s->done   ? list_add(&s->late, copy, 0)
                             : bucket_add(bucket_of(s, q), copy);
    if (rc != 0) {
        mpx_item_free(&copy);
        return mpx_fail(st, "seq: out of memory");
    }
    if (numbered && q >= s->seen)
        s->seen = q + 1;
    return 0;
}

/* Put a kept item with its meta, less our key; free it. */
static int put_kept(mpx_stage_t *st, mpx_item_t **it)
{
    const seq_args_t *a = mpx_args(st);
    int rc = mpx_meta_load(st, *it);
    if (rc != 0)
        rc = mpx_fail(st, "seq: cannot load meta: %s", mpx_strerror(rc));
    if (rc == 0) {
        mpx_meta_del(st, a->key);
        rc = mpx_put_item(st, *it);
    }
    mpx_item_free(it);
    return rc;
}

/* Put what `l` holds that may leave once the outputs of inputs before
 * `upto` have, in order; what a failed put leaves is freed later. */
static int put_list(mpx_stage_t *st, item_list_t *l, int64_t upto)
{
    size_t i = 0;
    int rc = 0;
    for (; rc == 0 && i < l->n && l->v[i].after <= upto; i++)
        rc = put_kept(st, &l->v[i].it);
    if (i < l->n)
        memmove(l->v, l->v + i, (l->n - i) * sizeof *l->v);
    l->n -= i;
    return rc;
}

/* Put the outputs of inputs done .. upto-1 in input order, after the late
 * ones (their inputs came earlier still), with the loose ones in their
 * place. */
static int reorder_flush(mpx_stage_t *st, reorder_state_t *s, int64_t upto)
{
    int rc = put_list(st, &s->late, INT64_MAX);
    int64_t end = upto < s->seen ? upto : s->seen;
    for (; rc == 0 && s->done < end; s->done++) {
        rc = put_list(st, &s->loose, s->done);
        if (rc != 0)
            return rc;
        bucket_t *b = bucket_of(s, s->done);
        if (b->one)
            rc = put_kept(st, &b->one);
        size_t i = 0;
        for (; rc == 0 && i < b->nmore; i++)
            rc = put_kept(st, &b->more[i]);
        if (rc != 0) {
            /* Keep the bucket consistent for the final free. */
            if (i < b->nmore)
                memmove(b->more, b->more + i, (b->nmore - i) * sizeof *b->more);
            b->nmore -= i;
            return rc;
        }
        free(b->more);
        *b = (bucket_t){0};
    }
    if (rc != 0)
        return rc;
    /* Inputs that gave nothing are done too: an output for one of them
     * arriving now is late. */
    if (s->done < upto)
        s->done = upto;
    if (s->seen < s->done)
        s->seen = s->done;
    return put_list(st, &s->loose, s->done);
}

static int reorder_mark(mpx_stage_t *st, uint64_t value)
{
    const seq_args_t *a = mpx_args(st);
    reorder_state_t *s = mpx_state(st);
    /* Someone else's: our own mark came before it (see stamp_mark). */
    if ((uint32_t)(value >> 32) != a->tag)
        return 0;
    int64_t upto = s->done + (int64_t)(uint32_t)((uint32_t)value - (uint32_t)s->done);
    int rc = reorder_flush(st, s, upto);
    return rc != 0 ? rc : MPX_MARK_CONSUMED;
}

static void free_list(item_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        mpx_item_free(&l->v[i].it);
    free(l->v);
    *l = (item_list_t){0};
}

static int reorder_teardown(mpx_stage_t *st)
{
    reorder_state_t *s = mpx_state(st);
    int rc = 0;
    /* Every path has ended: what is held is complete.  Stopped from
     * downstream, there is nobody to put it to. */
    if (!mpx_stopping(st))
        rc = reorder_flush(st, s, s->seen);
    for (size_t i = 0; i < s->cap; i++) {
        bucket_t *b = &s->ring[i];
        mpx_item_free(&b->one);
        for (size_t k = 0; k < b->nmore; k++)
            mpx_item_free(&b->more[k]);
        free(b->more);
    }
    free(s->ring);
    free_list(&s->late);
    free_list(&s->loose);
    *s = (reorder_state_t){0};
    return rc;
}

static const mpx_stage_def_t reorder_def = {
    .name = "seq",
    .args_size = sizeof(seq_args_t),
    .state_size = sizeof(reorder_state_t),
    .process = reorder_process,
    .teardown = reorder_teardown,
    .mark = reorder_mark,
};

/* ---- building ----------------------------------------------------------- */

mpx_node_t *mpx_seq(mpx_node_t *node)
{
    if (!node)
        return mpx_invalid("mpx_seq: the node is NULL (did the call that built it fail?)");
    seq_args_t a;
    memset(&a, 0, sizeof a);
    a.tag = SEQ_KIND << 24 | ((uint32_t)atomic_fetch_add(&seq_counter, 1) & 0xFFFFFFu);
    snprintf(a.key, sizeof a.key, "mpx.seq.%08" PRIx32 ".n", a.tag);
    return MPX_S(mpx_stage(&stamp_def, &a), node, mpx_stage(&reorder_def, &a));
}
