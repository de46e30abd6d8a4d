/* builtins/zip.c — Zip: every input goes to each branch, and one item per
 * input leaves with the parts each branch made of it, in input order.
 * Built from ordinary stages and marks, with the public API only.
 *
 * MPX_ZIP(b0, ..., bn-1) is
 *
 *     S(stamp, B(S(b0, tag0), ..., S(bn-1, tagn-1), manifest), zipper)
 *
 * The stamp numbers the inputs (meta key "mpx.zip.<tag>.seq") and puts a
 * mark after every ZIP_EPOCH inputs, whenever its input pauses, and before
 * passing on a mark of another origin.  Each tag stage writes its branch
 * index into the item's meta; the manifest turns every input into an
 * empty item carrying the input's meta (branch -1), so the zipper knows
 * each input and its meta whatever the branches do with theirs.  The
 * zipper keeps copies until its own mark arrives: by then every path from
 * the stamp has delivered the mark, after everything it put before it,
 * so every input the mark covers is complete — or a branch gave it no
 * item or several, and the run fails saying so.
 *
 * MPX_ZIP_WITH_INPUT is the same graph whose manifest passes the input
 * whole instead of empty, and whose zipper puts those parts first: the
 * manifest already receives every input and already reaches the zipper,
 * so carrying the input costs its bytes on that one edge, and no process
 * or edge more than a zip has anyway (an identity branch would cost two
 * processes, itself and its tag stage, and their edges).
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpx.h"

#define ZIP_MAX_BRANCHES 255
/* Inputs between two marks: a mark costs a message per edge, an epoch is
 * what the zipper holds at least.  128 keeps both small. */
#define ZIP_EPOCH 128
/* How far ahead of the oldest open input an output may be: marks carry
 * input counts modulo 2^32.  Further is a broken meta value. */
#define ZIP_MAX_AHEAD ((int64_t)1 << 32)

/* A zip's marks carry its tag in the high 32 bits ('Z' and a counter, so
 * nested zips and other marks are told apart) and the number of inputs
 * stamped so far, modulo 2^32, in the low 32 (the zipper restores the
 * full count: it never falls 2^32 inputs behind). */
#define ZIP_KIND 0x5Au
static atomic_uint_fast32_t zip_counter;

typedef struct zip_args {
    uint32_t tag;
    int branch;      /* tag stages: their branch index */
    int nbranches;   /* zipper */
    bool with_input; /* manifest and zipper: the input's parts come first */
    /* Keys are per zip so that a zip nested in a branch of another keeps
     * the outer one's numbers intact. */
    char seq_key[40];
    char branch_key[40];
} zip_args_t;

static uint64_t mark_value(uint32_t tag, int64_t count)
{
    return (uint64_t)tag << 32 | (uint32_t)count;
}

/* ---- stamp -------------------------------------------------------------- */

typedef struct stamp_state {
    int64_t next;   /* inputs numbered so far */
    int64_t marked; /* `next` at the last mark */
} stamp_state_t;

static int stamp_mark_now(mpx_stage_t *st)
{
    const zip_args_t *a = mpx_args(st);
    stamp_state_t *s = mpx_state(st);
    if (s->next == s->marked)
        return 0;
    s->marked = s->next;
    return mpx_put_mark(st, mark_value(a->tag, s->next));
}

static int stamp_process(mpx_stage_t *st, mpx_item_t *it)
{
    const zip_args_t *a = mpx_args(st);
    stamp_state_t *s = mpx_state(st);
    int rc = mpx_meta_set_i64(st, a->seq_key, s->next);
    if (rc != 0)
        return mpx_fail(st, "zip: cannot set meta: %s", mpx_strerror(rc));
    s->next++;
    rc = mpx_put_item(st, it);
    if (rc == 0 && s->next - s->marked >= ZIP_EPOCH)
        rc = stamp_mark_now(st);
    return rc;
}

/* A pause: close the epoch, so a stream that stops for a while is not
 * held back in the zipper. */
static int stamp_idle(mpx_stage_t *st) { return stamp_mark_now(st); }

/* Another origin's mark (an enclosing Zip's or Seq's, say) must not pass
 * items the zipper still holds: our own mark goes first, so the zipper
 * has put everything before it by the time the other one reaches it. */
static int stamp_mark(mpx_stage_t *st, uint64_t value)
{
    (void)value;
    return stamp_mark_now(st);
}

static const mpx_stage_def_t stamp_def = {
    .name = "zip-stamp",
    .args_size = sizeof(zip_args_t),
    .state_size = sizeof(stamp_state_t),
    .process = stamp_process,
    .idle = stamp_idle,
    .mark = stamp_mark,
};

/* ---- tag and manifest --------------------------------------------------- */

static int tag_process(mpx_stage_t *st, mpx_item_t *it)
{
    const zip_args_t *a = mpx_args(st);
    int rc = mpx_meta_set_i64(st, a->branch_key, a->branch);
    if (rc != 0)
        return mpx_fail(st, "zip: cannot set meta: %s", mpx_strerror(rc));
    return mpx_put_item(st, it);
}

static const mpx_stage_def_t tag_def = {
    .name = "zip-tag", .args_size = sizeof(zip_args_t), .process = tag_process};

static int manifest_process(mpx_stage_t *st, mpx_item_t *it)
{
    const zip_args_t *a = mpx_args(st);
    int rc = mpx_meta_set_i64(st, a->branch_key, -1);
    if (rc != 0)
        return mpx_fail(st, "zip: cannot set meta: %s", mpx_strerror(rc));
    /* Empty when only the meta is needed: the parts would be bytes sent
     * for nothing. */
    return a->with_input ? mpx_put_item(st, it) : mpx_put_parts(st, NULL, 0);
}

static const mpx_stage_def_t manifest_def = {
    .name = "zip-manifest", .args_size = sizeof(zip_args_t), .process = manifest_process};

/* ---- zipper ------------------------------------------------------------- */

/* Inputs done .. seen-1 are open.  Input q has nbranches + 1 slots in the
 * ring at (q mod cap): its manifest, then one per branch.  The manifest
 * holds the input's parts when the zip includes them, none otherwise. */
typedef struct zipper_state {
    int64_t done, seen;
    size_t cap;
    mpx_item_t **ring;
    mpx_part_t *parts;
    size_t cap_parts;
} zipper_state_t;

static mpx_item_t **slots(const zipper_state_t *s, int nbranches, int64_t q)
{
    return s->ring + ((size_t)q & (s->cap - 1)) * (size_t)(nbranches + 1);
}

/* Make room for input q: the ring doubles until it covers done .. q. */
static int ensure_room(mpx_stage_t *st, zipper_state_t *s, int nbranches, int64_t q)
{
    if ((uint64_t)(q - s->done) < s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 2 * ZIP_EPOCH;
    while ((uint64_t)(q - s->done) >= cap)
        cap *= 2;
    size_t width = (size_t)nbranches + 1;
    mpx_item_t **ring = calloc(cap * width, sizeof *ring);
    if (!ring)
        return mpx_fail(st, "zip: out of memory holding %" PRId64 " inputs", q - s->done + 1);
    for (int64_t k = s->done; k < s->seen; k++)
        memcpy(ring + ((size_t)k & (cap - 1)) * width, slots(s, nbranches, k),
               width * sizeof *ring);
    free(s->ring);
    s->ring = ring;
    s->cap = cap;
    return 0;
}

static int zip_fail_count(mpx_stage_t *st, int branch, int count, int64_t q)
{
    return mpx_fail(st, "zip: branch %d put %d item%s for input %" PRId64 " (counting from 0); "
                        "every branch must put exactly one item per input",
                    branch, count, count == 1 ? "" : "s", q);
}

static int zipper_process(mpx_stage_t *st, mpx_item_t *it)
{
    const zip_args_t *a = mpx_args(st);
    zipper_state_t *s = mpx_state(st);
    int64_t branch, q;
    if (mpx_item_meta_i64(it, a->branch_key, &branch) != 0 || branch < -1 ||
        branch >= a->nbranches)
        return mpx_fail(st, "zip: an item reached the zipper without its branch number");
    if (mpx_item_meta_i64(it, a->seq_key, &q) != 0)
        return mpx_fail(st, "zip: branch %d put an item that belongs to no input (made in a "
                            "teardown, or a stage removed the key %s from its meta)",
                        (int)branch, a->seq_key);
    if (q < s->done)
        return mpx_fail(st, "zip: branch %d put an item for input %" PRId64 " after that "
                            "input was complete (does a stage in the branch keep items?)",
                        (int)branch, q);
    if (q - s->done >= ZIP_MAX_AHEAD)
        return mpx_fail(st, "zip: branch %d put an item for input %" PRId64 ", far beyond "
                            "input %" PRId64 " (was the key %s changed?)",
                        (int)branch, q, s->done, a->seq_key);
    int rc = ensure_room(st, s, a->nbranches, q);
    if (rc != 0)
        return rc;
    mpx_item_t **slot = slots(s, a->nbranches, q) + branch + 1;
    /* A second item for an input is wrong however long we wait. */
    if (*slot)
        return zip_fail_count(st, (int)branch, 2, q);
    *slot = mpx_item_dup(it);
    if (!*slot)
        return mpx_fail(st, "zip: out of memory");
    if (q >= s->seen)
        s->seen = q + 1;
    return 0;
}

/* Put inputs done .. upto-1, every one of which is complete. */
static int zipper_complete(mpx_stage_t *st, zipper_state_t *s, int64_t upto)
{
    const zip_args_t *a = mpx_args(st);
    int nb = a->nbranches;
    for (; s->done < upto; s->done++) {
        int64_t q = s->done;
        if (q >= s->seen)
            return mpx_fail(st, "zip: input %" PRId64 " never reached the zipper", q);
        mpx_item_t **sl = slots(s, nb, q);
        for (int b = 0; b < nb; b++)
            if (!sl[b + 1])
                return zip_fail_count(st, b, 0, q);
        if (!sl[0])
            return mpx_fail(st, "zip: input %" PRId64 " came without its manifest", q);
        /* Slot 0 first: the input's own parts, or none. */
        size_t nparts = 0;
        for (int b = 0; b <= nb; b++)
            nparts += mpx_item_parts(sl[b]);
        if (nparts > UINT16_MAX)
            return mpx_fail(st, "zip: the branches put %zu parts for input %" PRId64 "%s"
                                ", more than the %u an item holds",
                            nparts, q, a->with_input ? " (with the input's own)" : "",
                            (unsigned)UINT16_MAX);
        if (nparts > s->cap_parts) {
            size_t cap = s->cap_parts ? s->cap_parts : 16;
            while (cap < nparts)
                cap *= 2;
            mpx_part_t *p = realloc(s->parts, cap * sizeof *p);
            if (!p)
                return mpx_fail(st, "zip: out of memory");
            s->parts = p;
            s->cap_parts = cap;
        }
        size_t n = 0;
        for (int b = 0; b <= nb; b++)
            for (size_t i = 0; i < mpx_item_parts(sl[b]); i++)
                s->parts[n++] = (mpx_part_t){mpx_item_data(sl[b], i), mpx_item_size(sl[b], i)};
        /* The input's own meta, as the manifest saw it, without ours. */
        int rc = mpx_meta_load(st, sl[0]);
        if (rc != 0)
            return mpx_fail(st, "zip: cannot load meta: %s", mpx_strerror(rc));
        mpx_meta_del(st, a->seq_key);
        mpx_meta_del(st, a->branch_key);
        rc = mpx_put_parts(st, s->parts, n);
        if (rc != 0)
            return rc;
        for (int b = 0; b <= nb; b++)
            mpx_item_free(&sl[b]);
    }
    return 0;
}

static int zipper_mark(mpx_stage_t *st, uint64_t value)
{
    const zip_args_t *a = mpx_args(st);
    zipper_state_t *s = mpx_state(st);
    /* Someone else's: our own mark came before it (see stamp_mark), so
     * nothing we hold belongs in front of it. */
    if ((uint32_t)(value >> 32) != a->tag)
        return 0;
    int64_t upto = s->done + (int64_t)(uint32_t)((uint32_t)value - (uint32_t)s->done);
    int rc = zipper_complete(st, s, upto);
    return rc != 0 ? rc : MPX_MARK_CONSUMED;
}

static int zipper_teardown(mpx_stage_t *st)
{
    const zip_args_t *a = mpx_args(st);
    zipper_state_t *s = mpx_state(st);
    int rc = 0;
    /* Every path has ended: all that is open is complete.  A zipper
     * stopped from downstream has nobody to put it to. */
    if (!mpx_stopping(st))
        rc = zipper_complete(st, s, s->seen);
    for (size_t i = 0; i < s->cap * (size_t)(a->nbranches + 1); i++)
        mpx_item_free(&s->ring[i]);
    free(s->ring);
    free(s->parts);
    *s = (zipper_state_t){0};
    return rc;
}

static const mpx_stage_def_t zipper_def = {
    .name = "zip",
    .args_size = sizeof(zip_args_t),
    .state_size = sizeof(zipper_state_t),
    .process = zipper_process,
    .teardown = zipper_teardown,
    .mark = zipper_mark,
};

/* ---- building ----------------------------------------------------------- */

/* A refused zip still owns its branches: they go into a group next to the
 * node that carries the message, so destroying the result frees them and
 * the check reports our message first. */
static mpx_node_t *refuse(mpx_node_t *const *branches, size_t n, const char *msg)
{
    mpx_node_t *bad = mpx_invalid("%s", msg);
    mpx_node_t **keep = n ? malloc(n * sizeof *keep) : NULL;
    size_t k = 0;
    for (size_t i = 0; keep && i < n; i++)
        if (branches[i])
            keep[k++] = branches[i];
    mpx_node_t *g = k ? MPX_S(bad, mpx_broadcast_v(keep, k)) : bad;
    free(keep);
    return g;
}

/* `caller` names the call in refusals. */
static mpx_node_t *build(const char *caller, mpx_node_t *const *branches, size_t n,
                         bool with_input)
{
    char msg[160];
    if (!branches || n == 0)
        return mpx_invalid("%s: no branches (a zip takes 1 to %d)", caller, ZIP_MAX_BRANCHES);
    if (n > ZIP_MAX_BRANCHES) {
        snprintf(msg, sizeof msg, "%s: %zu branches (a zip takes 1 to %d)", caller, n,
                 ZIP_MAX_BRANCHES);
        return refuse(branches, n, msg);
    }
    for (size_t i = 0; i < n; i++) {
        if (!branches[i]) {
            snprintf(msg, sizeof msg, "%s: branch %zu is NULL (did the call that built it fail?)",
                     caller, i);
            return refuse(branches, n, msg);
        }
        /* The core would say "used twice" about a group inside the zip;
         * say which branches instead. */
        for (size_t j = 0; j < i; j++)
            if (branches[j] == branches[i]) {
                snprintf(msg, sizeof msg,
                         "%s: branches %zu and %zu are the same node; a node can "
                         "appear only once, build another one",
                         caller, j, i);
                return refuse(branches, n, msg);
            }
    }
    zip_args_t a = {.nbranches = (int)n, .with_input = with_input};
    a.tag = ZIP_KIND << 24 | ((uint32_t)atomic_fetch_add(&zip_counter, 1) & 0xFFFFFFu);
    snprintf(a.seq_key, sizeof a.seq_key, "mpx.zip.%08" PRIx32 ".seq", a.tag);
    snprintf(a.branch_key, sizeof a.branch_key, "mpx.zip.%08" PRIx32 ".branch", a.tag);

    mpx_node_t *kids[ZIP_MAX_BRANCHES + 1];
    for (size_t i = 0; i < n; i++) {
        a.branch = (int)i;
        mpx_node_t *tag = mpx_stage(&tag_def, &a);
        char name[32];
        snprintf(name, sizeof name, "zip-branch%zu", i);
        if (tag && mpx_node_set_name(tag, name) != 0)
            mpx_node_destroy(&tag); /* out of memory: reported as a NULL node */
        kids[i] = MPX_S(branches[i], tag);
    }
    a.branch = -1;
    kids[n] = mpx_stage(&manifest_def, &a);
    return MPX_S(mpx_stage(&stamp_def, &a), mpx_broadcast_v(kids, n + 1),
                 mpx_stage(&zipper_def, &a));
}

mpx_node_t *mpx_zip_v(mpx_node_t *const *branches, size_t n)
{
    return build("mpx_zip", branches, n, false);
}

mpx_node_t *mpx_zip_with_input_v(mpx_node_t *const *branches, size_t n)
{
    return build("mpx_zip_with_input", branches, n, true);
}
