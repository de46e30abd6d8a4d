/* builtins/batch.c — Batch (gather `size` items into one multi-part item)
 * and Unbatch (one item per part).  Written with the public API only.
 */
#include <stdint.h>
#include <stdlib.h>

#include "mpx.h"

#define BATCH_MAX 65535

typedef struct batch_args {
    size_t size;
} batch_args_t;

/* The items of the batch being gathered, and a part table reused for
 * every put, so that a batch costs one copy per item and no allocation
 * once the table has grown. */
typedef struct batch_state {
    mpx_item_t **kept;
    size_t nkept;
    mpx_part_t *parts;
    size_t cap_parts;
} batch_state_t;

static int batch_setup(mpx_stage_t *st)
{
    const batch_args_t *a = mpx_args(st);
    batch_state_t *s = mpx_state(st);
    s->kept = calloc(a->size, sizeof *s->kept);
    return s->kept ? 0 : mpx_fail(st, "batch: out of memory");
}

static void drop_kept(batch_state_t *s)
{
    for (size_t i = 0; i < s->nkept; i++)
        mpx_item_free(&s->kept[i]);
    s->nkept = 0;
}

static int add_parts(mpx_stage_t *st, batch_state_t *s, size_t *n, const mpx_item_t *it)
{
    size_t k = mpx_item_parts(it);
    /* Checked here rather than left to put's MPX_ERANGE, so that the
     * message says which limit was hit and why. */
    if (*n + k > UINT16_MAX)
        return mpx_fail(st, "batch: a batch of %zu items would have more than %u parts "
                            "(the limit of an item); use a smaller size",
                        s->nkept + 1, (unsigned)UINT16_MAX);
    if (*n + k > s->cap_parts) {
        size_t cap = s->cap_parts ? s->cap_parts : 16;
        while (cap < *n + k)
            cap *= 2;
        mpx_part_t *p = realloc(s->parts, cap * sizeof *p);
        if (!p)
            return mpx_fail(st, "batch: out of memory");
        s->parts = p;
        s->cap_parts = cap;
    }
    for (size_t i = 0; i < k; i++)
        s->parts[(*n)++] = (mpx_part_t){mpx_item_data(it, i), mpx_item_size(it, i)};
    return 0;
}

/* Put the kept items, then `last` (the input in hand, or NULL), as one
 * item.  The current meta must already be that of the batch's last item. */
static int put_batch(mpx_stage_t *st, batch_state_t *s, const mpx_item_t *last)
{
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->nkept; i++)
        rc = add_parts(st, s, &n, s->kept[i]);
    if (rc == 0 && last)
        rc = add_parts(st, s, &n, last);
    if (rc == 0)
        rc = mpx_put_parts(st, s->parts, n);
    drop_kept(s);
    return rc;
}

static int batch_process(mpx_stage_t *st, mpx_item_t *it)
{
    const batch_args_t *a = mpx_args(st);
    batch_state_t *s = mpx_state(st);
    /* The item that completes a batch is not copied: it is in hand, and
     * the current meta is already its meta, the batch's. */
    if (s->nkept + 1 == a->size)
        return put_batch(st, s, it);
    s->kept[s->nkept] = mpx_item_dup(it);
    if (!s->kept[s->nkept])
        return mpx_fail(st, "batch: out of memory");
    s->nkept++;
    return 0;
}

static int batch_teardown(mpx_stage_t *st)
{
    batch_state_t *s = mpx_state(st);
    int rc = 0;
    /* A stage stopped from downstream has nobody to give the rest to. */
    if (s->nkept > 0 && !mpx_stopping(st)) {
        rc = mpx_meta_load(st, s->kept[s->nkept - 1]);
        if (rc != 0)
            rc = mpx_fail(st, "batch: out of memory");
        else
            rc = put_batch(st, s, NULL);
    }
    drop_kept(s);
    free(s->kept);
    free(s->parts);
    *s = (batch_state_t){0};
    return rc;
}

static const mpx_stage_def_t batch_def = {
    .name = "batch",
    .args_size = sizeof(batch_args_t),
    .state_size = sizeof(batch_state_t),
    .setup = batch_setup,
    .process = batch_process,
    .teardown = batch_teardown,
};

mpx_node_t *mpx_batch(size_t size)
{
    if (size < 1 || size > BATCH_MAX)
        return mpx_invalid("mpx_batch: size must be 1 to %d (got %zu)", BATCH_MAX, size);
    return mpx_stage(&batch_def, &(batch_args_t){size});
}

/* ---- Unbatch ------------------------------------------------------------ */

static int unbatch_process(mpx_stage_t *st, mpx_item_t *it)
{
    /* The current meta is the batch's: every part leaves with it. */
    for (size_t i = 0; i < mpx_item_parts(it); i++) {
        int rc = mpx_put(st, mpx_item_data(it, i), mpx_item_size(it, i));
        if (rc != 0)
            return rc;
    }
    return 0;
}

static const mpx_stage_def_t unbatch_def = {.name = "unbatch", .process = unbatch_process};

mpx_node_t *mpx_unbatch(void) { return mpx_stage(&unbatch_def, NULL); }
