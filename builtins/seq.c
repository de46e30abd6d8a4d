/* builtins/seq.c — Seq: the outputs of a sub-graph in the order of their
 * inputs.
 *
 * mpx_seq(node) is S(stamp, node, reorder).  The stamp numbers the inputs
 * (meta key "mpx.seq.<tag>.n") and puts a mark after every SEQ_EPOCH
 * inputs or SEQ_EPOCH_BYTES of them, whenever its input pauses, and before
 * passing on a mark of another origin.  The reorder keeps copies of what
 * the node puts; when its own mark arrives, everything the node made from
 * the inputs that mark covers has arrived (the mark came behind it on
 * every path), so those outputs leave, sorted by input, and the rest
 * waits for a later mark.  Where a neighbour can run a half in its own
 * process, the half's stage below never runs (graph/seqhost.h).
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "graph/seqhost.h"
#include "lib/reorder.h"
#include "mpx.h"

static atomic_uint_fast32_t seq_counter;

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
    return mpx_put_mark(st, seq_mark_value(a->tag, s->next));
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

/* Put a kept item (its meta no longer has our key) with its meta; free it. */
static int put_kept(void *ctx, mpx_item_t **it)
{
    mpx_stage_t *st = ctx;
    int rc = mpx_meta_load(st, *it);
    if (rc != 0)
        rc = mpx_fail(st, "seq: cannot load meta: %s", mpx_strerror(rc));
    if (rc == 0)
        rc = mpx_put_item(st, *it);
    mpx_item_free(it);
    return rc;
}

static int reorder_setup(mpx_stage_t *st)
{
    reorder_init(mpx_state(st), mpx_args(st));
    return 0;
}

static int reorder_process(mpx_stage_t *st, mpx_item_t *it)
{
    char err[200];
    int rc = reorder_take(mpx_state(st), it, err, sizeof err);
    return rc == 0 ? 0 : mpx_fail(st, "%s", err);
}

static int reorder_on_mark(mpx_stage_t *st, uint64_t value)
{
    reorder_t *r = mpx_state(st);
    /* Someone else's: our own mark came before it (see stamp_mark). */
    if (!reorder_ours(r, value))
        return 0;
    int rc = reorder_mark(r, value, put_kept, st);
    return rc != 0 ? rc : MPX_MARK_CONSUMED;
}

static int reorder_teardown(mpx_stage_t *st)
{
    reorder_t *r = mpx_state(st);
    int rc = 0;
    /* Every path has ended: what is held is complete.  Stopped from
     * downstream, there is nobody to put it to. */
    if (!mpx_stopping(st))
        rc = reorder_flush_all(r, put_kept, st);
    reorder_free(r);
    return rc;
}

static const mpx_stage_def_t reorder_def = {
    .name = "seq",
    .args_size = sizeof(seq_args_t),
    .state_size = sizeof(reorder_t),
    .setup = reorder_setup,
    .process = reorder_process,
    .teardown = reorder_teardown,
    .mark = reorder_on_mark,
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
    return MPX_S(seq_stage(&stamp_def, &a, SEQ_STAMP), node,
                 seq_stage(&reorder_def, &a, SEQ_REORDER));
}
