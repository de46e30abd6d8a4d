/* lib/stage.c — what a stage may call: its context, put, stop, fail, and
 * its current meta.  Put encodes straight into the edge's batch buffer;
 * a small batch is copied once more into its zmq message, a large one is
 * handed over as it is.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "edge_out_inline.h"
#include "graph/source.h"
#include "mpx/error.h"
#include "mpx/monitor.h"
#include "pool.h"
#include "wire.h"

const void *mpx_args(const mpx_stage_t *st) { return st ? st->pi->args : NULL; }
void *mpx_state(mpx_stage_t *st) { return st ? st->state : NULL; }
const char *mpx_stage_name(const mpx_stage_t *st) { return st ? st->pi->name : NULL; }
int mpx_stage_instance(const mpx_stage_t *st) { return st ? st->pi->index : MPX_EINVAL; }
int mpx_stage_instances(const mpx_stage_t *st) { return st ? st->pi->count : MPX_EINVAL; }

static bool can_put(const mpx_stage_t *st)
{
    return st && st->rt && st->rt->phase >= PHASE_SETUP && st->rt->phase <= PHASE_TEARDOWN;
}

/* ---- refused puts ------------------------------------------------------- *
 * A put is refused for a stop downstream (MPX_ESTOPPED: the stage ends, see
 * stage.h), or for a mistake or a broken system: then the item is lost,
 * and the callback fails when it ends whatever it returns (child.c,
 * supervisor.c).  The first refusal is noted with the call's name and why,
 * so that the message says which put it was.
 */

static const char *code_name(int rc)
{
    switch (rc) {
    case MPX_EINVAL: return "MPX_EINVAL";
    case MPX_ENOMEM: return "MPX_ENOMEM";
    case MPX_EGRAPH: return "MPX_EGRAPH";
    case MPX_ESTATE: return "MPX_ESTATE";
    case MPX_ESYS: return "MPX_ESYS";
    case MPX_ESTAGE: return "MPX_ESTAGE";
    case MPX_ECRASH: return "MPX_ECRASH";
    case MPX_ESTOPPED: return "MPX_ESTOPPED";
    case MPX_EPROTO: return "MPX_EPROTO";
    case MPX_ERANGE: return "MPX_ERANGE";
    case MPX_ETIMEDOUT: return "MPX_ETIMEDOUT";
    case MPX_EINTR: return "MPX_EINTR";
    }
    return NULL;
}

/* Why the put being made is refused, when the code alone would not say. */
static int put_error(mpx_stage_t *st, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int put_error(mpx_stage_t *st, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->put_err, sizeof st->put_err, fmt, ap);
    va_end(ap);
    return rc;
}

/* Out of the way of the puts that go through. */
static __attribute__((noinline, cold)) int refused(mpx_stage_t *st, const char *call, int rc)
{
    if (!st || rc == MPX_ESTOPPED)
        return rc;
    if (!st->refused_rc) {
        st->refused_rc = rc;
        if (rc == MPX_ESTATE)
            snprintf(st->refused, sizeof st->refused,
                     "%s called %s%s, where nothing can be put (only setup, process, "
                     "teardown, idle and mark can)",
                     call, st->callback ? "in " : "outside the stage's callbacks",
                     st->callback ? st->callback : "");
        else
            snprintf(st->refused, sizeof st->refused, "%s: %s", call,
                     st->put_err[0] ? st->put_err : mpx_strerror(rc));
    }
    st->put_err[0] = 0;
    return rc;
}

/* The result of a put, noted when refused. */
static inline __attribute__((always_inline)) int put_result(mpx_stage_t *st, const char *call,
                                                            int rc)
{
    return __builtin_expect(rc != 0, 0) ? refused(st, call, rc) : 0;
}

const char *stage_failure(const mpx_stage_t *st, int rc, char *buf, size_t cap)
{
    if (rc == 0 && !st->refused_rc)
        return NULL;
    if (rc != 0 && st->fail_msg)
        return st->fail_msg;
    if (rc == 0) {
        /* Went on as if the put had gone through. */
        const char *code = code_name(st->refused_rc);
        bool mark = strncmp(st->refused, "mpx_put_mark", strlen("mpx_put_mark")) == 0;
        snprintf(buf, cap, "%s; %s ignored the %s it returned, and the %s was lost",
                 st->refused, st->callback ? st->callback : "the stage", code ? code : "error",
                 mark ? "mark" : "item");
        return buf;
    }
    if (rc == st->refused_rc) {
        /* Passed on what the put returned. */
        snprintf(buf, cap, "returned %d (%s) from %s", rc, mpx_strerror(rc), st->refused);
        return buf;
    }
    /* -1, as C functions fail, is also MPX_EINVAL: without a message, the
     * stage's own failure is far likelier than an argument mpx refused. */
    int n = code_name(rc) && rc != MPX_EINVAL
                ? snprintf(buf, cap, "returned %d (%s)", rc, mpx_strerror(rc))
                : snprintf(buf, cap, "returned %d without a message (call mpx_fail() to say why)",
                           rc);
    if (st->refused_rc && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, ", after %s", st->refused);
    return buf;
}

/* "time/<name>", or "time/<name>#k" for the k-th stage of that name on
 * the item's way. */
static int record_time(child_rt_t *rt)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns = (int64_t)(now.tv_sec - rt->item_start.tv_sec) * 1000000000 +
                 (now.tv_nsec - rt->item_start.tv_nsec);
    char key[WIRE_KEY_MAX + 1];
    snprintf(key, sizeof key, "time/%s", rt->st.pi->name);
    size_t len = strlen(key);
    for (int k = 2; meta_cur_get(&rt->meta, key, NULL) && k < 1000; k++)
        snprintf(key + len, sizeof key - len, "#%d", k);
    return meta_cur_set(&rt->meta, key, &ns, sizeof ns);
}

/* A put larger than the stage's maximum. */
static int too_large(child_rt_t *rt, size_t size)
{
    return put_error(&rt->st, MPX_ERANGE,
                     "an item of %zu bytes is larger than the maximum of %zu "
                     "(mpx_node_set_max_item)",
                     size, rt->st.pi->max_item);
}

/* A put of `size` bytes with the Seq's number (`stamp` bytes of it) over
 * a limit: the stage's maximum is on what it put, without the number it
 * writes for the Seq; the record still carries its size in 32 bits. */
static __attribute__((noinline, cold)) int too_large_stamped(child_rt_t *rt, size_t size,
                                                             size_t stamp)
{
    return too_large(rt, size - stamp > rt->st.pi->max_item ? size - stamp : size);
}

static int put_on(mpx_stage_t *st, int port, const mpx_part_t *parts, size_t n);

/* ---- Seq's numbering (graph/seqhost.h) -----------------------------------
 * A stage that runs the stamp of the Seq it feeds gives every record it
 * puts on port 0 one more meta entry, the Seq's key with the record's
 * number, written after the current meta so that the stage's own meta is
 * left alone.  A mark closes the epoch as the stamp's own stage would:
 * every SEQ_EPOCH records or SEQ_EPOCH_BYTES, whenever numbered records
 * have left (a batch sent, full or not: the stage may pause after any
 * put), at a pause of its input (idle) or a flush, and before any other
 * mark leaves. */

static inline size_t stamp_size(const child_rt_t *rt, int port)
{
    return port == 0 && rt->stamp ? rt->stamp_entry : 0;
}

static uint8_t *stamp_put(child_rt_t *rt, uint8_t *p)
{
    wire_meta_entry_put(p, rt->stamp->key, rt->stamp_klen, &rt->stamp_next, 8);
    return p + rt->stamp_entry;
}

int child_stamp_mark(child_rt_t *rt)
{
    if (!rt->stamp || rt->stamp_next == rt->stamp_marked)
        return 0;
    rt->stamp_marked = rt->stamp_next;
    rt->stamp_bytes = 0;
    return edge_out_mark(rt->out, (uint32_t)rt->id,
                         seq_mark_value(rt->stamp->tag, rt->stamp_next), EDGE_MARK_NEXT);
}

/* The Seq's number is one more meta entry: an item that already has as
 * many as a record can count cannot take it. */
static __attribute__((noinline, cold)) int stamp_no_room(mpx_stage_t *st)
{
    return put_error(st, MPX_ERANGE,
                     "an item with %u meta entries, the most it may have, leaves no room for "
                     "the number the Seq after this stage gives it",
                     (unsigned)UINT16_MAX);
}

/* edge_out_commit of a numbered record of `size` bytes, and the mark
 * that closes the epoch when it is full, or when the batch left at once
 * before it was full (the stage had been quiet, or the batch was due). */
static int stamp_commit(child_rt_t *rt, size_t size, const mpx_part_t *parts, size_t n)
{
    const out_port_t *pt = &rt->out->ports[0];
    uint32_t before = pt->count;
    size_t batch = pt->batch_items;
    rt->stamp_next++;
    for (size_t i = 0; i < n; i++)
        rt->stamp_bytes += parts[i].size;
    int rc = edge_out_commit(rt->out, 0, size);
    if (rc != 0)
        return rc;
    /* Not after a batch that left full: a mark goes to every consumer and
     * waits for credit from each, so under load it would hold the stage
     * to its slowest consumer (a map of 40 us items inside a Seq ran at
     * 1.45x instead of 1.79x with a mark after every batch).  A stage
     * that stops putting for a while marks when it pauses instead: idle,
     * mpx_flush, mpx_poll (a source that blocks elsewhere flushes first,
     * as its items need anyway). */
    if ((pt->count == 0 && before + 1 < batch) ||
        rt->stamp_next - rt->stamp_marked >= SEQ_EPOCH || rt->stamp_bytes >= SEQ_EPOCH_BYTES)
        return child_stamp_mark(rt);
    return 0;
}

/* The library's own put (a dead letter): its caller reports a refusal. */
int stage_put_port(mpx_stage_t *st, int port, const mpx_part_t *parts, size_t n)
{
    int rc = put_on(st, port, parts, n);
    st->put_err[0] = 0;
    return rc;
}

/* How long a large put waits for room in a full pool before its bytes go
 * through the socket instead: waiting longer could wait on a stage that
 * keeps blocks (Batch, Seq) until more come. */
#define POOL_PUT_WAIT_MS 100

static inline pool_holder_t self_of(const child_rt_t *rt)
{
    return (pool_holder_t){(uint32_t)rt->id, rt->gen};
}

/* Which parts travel in the pool: blk[i] is the block part i refers to,
 * held once more by us for the record, or POOL_NONE for bytes put inline.
 * A part already in a block we hold (a pool item passed on) is referred
 * to; a large one is copied into a new block.  0, or an error after
 * which no hold was taken. */
static int pool_parts(child_rt_t *rt, const mpx_part_t *parts, size_t n, uint32_t *blk,
                      bool *any)
{
    pool_t *pool = rt->plan->pool;
    *any = false;
    for (size_t i = 0; i < n; i++) {
        blk[i] = pool_block_at(pool, parts[i].data);
        int rc = 0;
        if (blk[i] != POOL_NONE) {
            if (!pool_holds(pool, blk[i], self_of(rt)))
                rc = MPX_EINVAL;
            else if (parts[i].size >= pool_block_size(pool, blk[i]))
                rc = put_error(&rt->st, MPX_ERANGE, "part %zu runs past the end of its pool block",
                               i);
            else
                rc = pool_hold(pool, blk[i], self_of(rt));
            if (rc == MPX_EINVAL || rc == MPX_ESTOPPED)
                rc = put_error(&rt->st, MPX_EINVAL,
                               "part %zu is in a pool block this stage does not hold", i);
            else if (rc == MPX_ERANGE && !rt->st.put_err[0])
                rc = put_error(&rt->st, MPX_ERANGE, "part %zu's pool block has too many holders",
                               i);
        } else if (parts[i].size >= rt->pool_min) {
            uint32_t b;
            rc = child_pool_alloc(rt, parts[i].size + 1, POOL_PUT_WAIT_MS, &b);
            if (rc == 0) {
                uint8_t *d = pool_data(pool, b);
                memcpy(d, parts[i].data, parts[i].size);
                d[parts[i].size] = 0;
                blk[i] = b;
            } else if (rc != MPX_ESTOPPED) {
                rc = 0; /* full for long, or too large: the bytes go inline */
            }
        }
        if (rc != 0) {
            for (size_t j = 0; j < i; j++)
                if (blk[j] != POOL_NONE)
                    (void)pool_release(pool, blk[j], self_of(rt));
            return rc;
        }
        *any |= blk[i] != POOL_NONE;
    }
    return 0;
}

/* put_on's end with a pool: the parts that go in it are referred to. */
static int put_pooled(child_rt_t *rt, int port, const mpx_part_t *parts, size_t n,
                      size_t meta_size, size_t stamp)
{
    uint32_t small[8], *blk = n <= 8 ? small : malloc(n * sizeof *blk);
    if (!blk)
        return put_error(&rt->st, MPX_ENOMEM, "out of memory for %zu parts", n);
    bool any;
    int rc = pool_parts(rt, parts, n, blk, &any);
    if (rc != 0)
        goto done;
    size_t size = WIRE_REC_HEAD + meta_size + stamp;
    for (size_t i = 0; i < n; i++)
        size += blk[i] != POOL_NONE ? WIRE_POOLED_PART_SIZE : wire_part_size(parts[i].size);
    uint8_t *dst = edge_out_reserve(rt->out, port, size, &rc);
    if (!dst) {
        for (size_t i = 0; i < n; i++)
            if (blk[i] != POOL_NONE)
                (void)pool_release(rt->plan->pool, blk[i], self_of(rt));
        goto done;
    }
    uint8_t *p = wire_rec_head_put(dst, size, n, meta_cur_n(&rt->meta) + (stamp != 0),
                                   meta_size + stamp);
    if (any) {
        uint32_t flags = WIRE_REC_POOL;
        memcpy(dst + 12, &flags, 4);
        uint64_t bytes = 0;
        for (size_t i = 0; i < n; i++)
            bytes += blk[i] != POOL_NONE ? parts[i].size : 0;
        edge_out_pooled(rt->out, port, bytes);
    }
    meta_cur_encode(&rt->meta, p);
    p += meta_size;
    if (stamp)
        p = stamp_put(rt, p);
    for (size_t i = 0; i < n; i++)
        p = blk[i] != POOL_NONE ? wire_part_put_pooled(p, blk[i], parts[i].size)
                                : wire_part_put(p, parts[i].data, parts[i].size);
    rc = stamp ? stamp_commit(rt, size, parts, n) : edge_out_commit(rt->out, port, size);
done:
    if (blk != small)
        free(blk);
    return rc;
}

static int put_on(mpx_stage_t *st, int port, const mpx_part_t *parts, size_t n)
{
    if (n && !parts)
        return put_error(st, MPX_EINVAL, "%zu parts at NULL", n);
    if (n > UINT16_MAX)
        return put_error(st, MPX_ERANGE, "%zu parts, more than the %u an item may have", n,
                         (unsigned)UINT16_MAX);
    child_rt_t *rt = st->rt;
    int rc = child_put_check(rt);
    if (rc != 0)
        return rc;
    if (rt->st.pi->timing && rt->in_process && (rc = record_time(rt)) != 0)
        return rc;
    size_t meta_size = meta_cur_size(&rt->meta);
    size_t stamp = stamp_size(rt, port);
    if (stamp && meta_cur_n(&rt->meta) >= UINT16_MAX)
        return stamp_no_room(st);
    size_t size = WIRE_REC_HEAD + meta_size + stamp;
    for (size_t i = 0; i < n; i++) {
        if (!parts[i].data && parts[i].size)
            return put_error(st, MPX_EINVAL, "part %zu is NULL with a size of %zu", i,
                             parts[i].size);
        if (parts[i].size > UINT32_MAX)
            return put_error(st, MPX_ERANGE, "part %zu has %zu bytes, more than 4 GiB", i,
                             parts[i].size);
        size += wire_part_size(parts[i].size);
    }
    if (size - stamp > rt->st.pi->max_item || size > UINT32_MAX)
        return too_large_stamped(rt, size, stamp);
    if (rt->plan->pool)
        return put_pooled(rt, port, parts, n, meta_size, stamp);
    if (n == 1 && meta_size == 0 && stamp == 0) {
        size = wire_short_size(parts[0].size);
        uint8_t *dst = edge_out_reserve(rt->out, port, size, &rc);
        if (!dst)
            return rc;
        wire_short_put(dst, parts[0].data, parts[0].size);
        return edge_out_commit(rt->out, port, size);
    }
    uint8_t *dst = edge_out_reserve(rt->out, port, size, &rc);
    if (!dst)
        return rc;
    uint8_t *p = wire_rec_head_put(dst, size, n, meta_cur_n(&rt->meta) + (stamp != 0),
                                   meta_size + stamp);
    meta_cur_encode(&rt->meta, p);
    p += meta_size;
    if (stamp)
        p = stamp_put(rt, p);
    for (size_t i = 0; i < n; i++)
        p = wire_part_put(p, parts[i].data, parts[i].size);
    return stamp ? stamp_commit(rt, size, parts, n) : edge_out_commit(rt->out, port, size);
}

static int put_parts(mpx_stage_t *st, const mpx_part_t *parts, size_t n)
{
    if (!can_put(st))
        return st ? MPX_ESTATE : MPX_EINVAL;
    return put_on(st, 0, parts, n);
}

int mpx_put_parts(mpx_stage_t *st, const mpx_part_t *parts, size_t n)
{
    return put_result(st, "mpx_put_parts", put_parts(st, parts, n));
}

static int put_parts_to(mpx_stage_t *st, const char *name, const mpx_part_t *parts, size_t n)
{
    if (!can_put(st))
        return st ? MPX_ESTATE : MPX_EINVAL;
    int port = edge_out_port(st->rt->out, name);
    if (port < 0)
        return put_error(st, MPX_EINVAL, "no side graph named '%s' serves this stage",
                         name ? name : "(NULL)");
    return put_on(st, port, parts, n);
}

int mpx_put_parts_to(mpx_stage_t *st, const char *name, const mpx_part_t *parts, size_t n)
{
    return put_result(st, "mpx_put_parts_to", put_parts_to(st, name, parts, n));
}

int mpx_put_to(mpx_stage_t *st, const char *name, const void *data, size_t size)
{
    mpx_part_t part = {data, size};
    return put_result(st, "mpx_put_to", put_parts_to(st, name, &part, 1));
}

static int put_mark(mpx_stage_t *st, uint64_t value)
{
    if (!can_put(st))
        return st ? MPX_ESTATE : MPX_EINVAL;
    int rc = child_put_check(st->rt);
    if (rc == 0)
        rc = child_stamp_mark(st->rt); /* ours must not be overtaken */
    if (rc != 0)
        return rc;
    return edge_out_mark(st->rt->out, (uint32_t)st->id, value, EDGE_MARK_NEXT);
}

int mpx_put_mark(mpx_stage_t *st, uint64_t value)
{
    return put_result(st, "mpx_put_mark", put_mark(st, value));
}

/* The common put, a few words with no meta, written as a short record
 * after the few checks that can change from one put to the next (size,
 * data, meta, the pool's threshold, the put count); the others are one
 * flag (child.h, put_plain).  Inline so that an 8-byte put copies its
 * value with one move.  True when it was done here, with its result in
 * *rc. */
static inline __attribute__((always_inline)) bool put_plain(mpx_stage_t *st, const void *data,
                                                           size_t size, int *rc)
{
    child_rt_t *rt;
    if (__builtin_expect(!(st && (rt = st->rt) && rt->put_plain && size <= PUT_PLAIN_MAX && data &&
                           !rt->meta.dirty && rt->meta.blk_size == 0 && size < rt->pool_min &&
                           ++rt->puts < 128),
                         0))
        return false;
    size_t rec = wire_short_size(size);
    uint8_t *dst = edge_out_reserve(rt->out, 0, rec, rc);
    if (dst) {
        wire_short_put(dst, data, size);
        *rc = edge_out_commit(rt->out, 0, rec);
    }
    return true;
}

/* Range's puts (graph/source.h): while put_plain's conditions hold, the
 * records go straight into the batch, as many at a time as it has room
 * for; the one that begins a batch or fills it is put as put_plain
 * would, and the control channel is looked at every 128 puts as
 * child_put_check does.  The batch notes that it is one run of int64
 * (edge_out_arith), so that its consumers are sent the run rather than
 * the records.  The same items, batches and checks as
 * one mpx_put_i64 per item, at a fraction of the instructions and of the
 * bytes through the sockets. */
int source_put_i64_run(mpx_stage_t *st, int64_t start, int64_t step, uint64_t count)
{
    const size_t rec = wire_short_size(sizeof(int64_t));
    uint64_t v = (uint64_t)start, d = (uint64_t)step;
    for (uint64_t i = 0; i < count;) {
        child_rt_t *rt = st ? st->rt : NULL;
        if (!(rt && rt->put_plain && !rt->meta.dirty && rt->meta.blk_size == 0 &&
              sizeof(int64_t) < rt->pool_min)) {
            int rc = mpx_put_i64(st, (int64_t)v);
            if (rc != 0)
                return rc;
            v += d;
            i++;
            continue;
        }
        if (rt->puts + 1 >= 128) {
            int rc = child_before_put(rt); /* counts from 0 again */
            if (rc != 0)
                return put_result(st, "mpx_put_i64", rc);
            continue; /* what it heard may change the conditions */
        }
        size_t k = edge_out_run_room(rt->out, 0, rec);
        if (k == 0) {
            int rc;
            uint8_t *dst = edge_out_reserve(rt->out, 0, rec, &rc);
            if (!dst)
                return put_result(st, "mpx_put_i64", rc);
            wire_short_put(dst, &v, sizeof v);
            edge_out_arith(rt->out, 0, v, d, 1);
            rt->puts++;
            rc = edge_out_commit(rt->out, 0, rec);
            if (rc != 0)
                return put_result(st, "mpx_put_i64", rc);
            v += d;
            i++;
            continue;
        }
        if (k > 127 - rt->puts)
            k = 127 - rt->puts;
        if (k > count - i)
            k = (size_t)(count - i);
        out_port_t *pt = &rt->out->ports[0];
        uint8_t *dst = pt->buf + pt->len;
        edge_out_arith(rt->out, 0, v, d, k);
        for (size_t j = 0; j < k; j++, v += d)
            dst = wire_short_put(dst, &v, sizeof v);
        edge_out_commit_run(rt->out, 0, k, rec);
        rt->puts += (unsigned)k;
        i += k;
    }
    return 0;
}

/* Any other put of one part (put_plain first), encoded without the
 * detour through a part array. */
static __attribute__((noinline)) int put_one(mpx_stage_t *st, const void *data, size_t size)
{
    if (__builtin_expect(!can_put(st), 0))
        return st ? MPX_ESTATE : MPX_EINVAL;
    if (!data && size)
        return put_error(st, MPX_EINVAL, "NULL data with a size of %zu", size);
    child_rt_t *rt = st->rt;
    if (__builtin_expect(size >= rt->pool_min, 0)) {
        mpx_part_t part = {data, size};
        return put_on(st, 0, &part, 1);
    }
    int rc = child_put_check(rt);
    if (rc != 0)
        return rc;
    if (rt->st.pi->timing && rt->in_process && (rc = record_time(rt)) != 0)
        return rc;
    meta_cur_t *m = &rt->meta;
    size_t meta_size = m->dirty ? meta_cur_size(m) : m->blk_size;
    size_t nmeta = m->dirty ? meta_cur_n(m) : m->blk_n;
    size_t stamp = stamp_size(rt, 0);
    if (__builtin_expect(meta_size == 0 && stamp == 0, 1)) {
        /* No meta: the short record (lib/wire.h).  The limit counts the
         * full form's framing, as put_on does for an item passed on (it
         * may write the full form): an item is judged the same at every
         * stage it goes through. */
        size_t rec = wire_short_size(size), full = WIRE_REC_HEAD + wire_part_size(size);
        if (size > UINT32_MAX - 16 || full > rt->st.pi->max_item)
            return too_large_stamped(rt, full, 0);
        uint8_t *dst = edge_out_reserve(rt->out, 0, rec, &rc);
        if (!dst)
            return rc;
        wire_short_put(dst, data, size);
        return edge_out_commit(rt->out, 0, rec);
    }
    if (__builtin_expect(stamp != 0 && nmeta >= UINT16_MAX, 0))
        return stamp_no_room(st);
    size_t rec = WIRE_REC_HEAD + meta_size + stamp + wire_part_size(size);
    if (size > UINT32_MAX || rec - stamp > rt->st.pi->max_item || rec > UINT32_MAX)
        return too_large_stamped(rt, rec, stamp);
    uint8_t *dst = edge_out_reserve(rt->out, 0, rec, &rc);
    if (!dst)
        return rc;
    uint8_t *p = wire_rec_head_put(dst, rec, 1, nmeta + (stamp != 0), meta_size + stamp);
    if (meta_size)
        meta_cur_encode(m, p);
    p += meta_size;
    if (__builtin_expect(stamp != 0, 0)) {
        wire_part_put(stamp_put(rt, p), data, size);
        mpx_part_t part = {data, size};
        return stamp_commit(rt, rec, &part, 1);
    }
    wire_part_put(p, data, size);
    return edge_out_commit(rt->out, 0, rec);
}

int mpx_put(mpx_stage_t *st, const void *data, size_t size)
{
    int rc;
    if (!put_plain(st, data, size, &rc))
        rc = put_one(st, data, size);
    return put_result(st, "mpx_put", rc);
}

int mpx_put_str(mpx_stage_t *st, const char *s)
{
    int rc;
    if (s) {
        size_t len = strlen(s);
        if (!put_plain(st, s, len, &rc))
            rc = put_one(st, s, len);
    } else if (can_put(st)) {
        rc = put_error(st, MPX_EINVAL, "a NULL string");
    } else {
        rc = st ? MPX_ESTATE : MPX_EINVAL;
    }
    return put_result(st, "mpx_put_str", rc);
}

int mpx_put_i64(mpx_stage_t *st, int64_t v)
{
    int rc;
    if (!put_plain(st, &v, sizeof v, &rc))
        rc = put_one(st, &v, sizeof v);
    return put_result(st, "mpx_put_i64", rc);
}

int mpx_put_f64(mpx_stage_t *st, double v)
{
    int rc;
    if (!put_plain(st, &v, sizeof v, &rc))
        rc = put_one(st, &v, sizeof v);
    return put_result(st, "mpx_put_f64", rc);
}

/* An item passed on unchanged (the current meta still its own block, no
 * timing to add) that would travel in a message of its own anyway leaves
 * in the message it came in: a large item is not copied again (README,
 * Benchmarks).  Meta cleared or loaded from elsewhere is clean too, but
 * another block. */
static int forward(child_rt_t *rt, const mpx_item_t *item)
{
    const meta_cur_t *m = &rt->meta;
    if (item->size < BATCH_BYTES_MAX || !rt->in || !rt->in_process || m->dirty || rt->stamp ||
        m->blk != item->meta || m->blk_size != item->meta_size || m->blk_n != item->nmeta ||
        rt->st.pi->timing || item->size > rt->st.pi->max_item)
        return 1;
    zmq_msg_t *msg = edge_in_forwardable(rt->in, item);
    if (!msg)
        return 1;
    int rc = child_put_check(rt);
    return rc != 0 ? rc : edge_out_forward(rt->out, 0, msg);
}

static int put_item(mpx_stage_t *st, const mpx_item_t *item)
{
    if (!can_put(st))
        return st ? MPX_ESTATE : MPX_EINVAL;
    if (!item)
        return put_error(st, MPX_EINVAL, "a NULL item");
    int rc = forward(st->rt, item);
    if (rc != 1)
        return rc;
    return put_on(st, 0, item->parts, item->nparts);
}

int mpx_put_item(mpx_stage_t *st, const mpx_item_t *item)
{
    return put_result(st, "mpx_put_item", put_item(st, item));
}

/* ---- blocks outside the pool ---------------------------------------------
 * mpx_alloc gives private memory when the graph has no pool, when the
 * block could not be in it, and when the pool stayed full for
 * POOL_PUT_WAIT_MS: a pool full of items queued before stages that
 * themselves wait to allocate would otherwise wait for good, each stage
 * for blocks only the others can free.  Such a block goes through the
 * socket when put, as a large put into a full pool does; the edges' byte
 * credit, which counts it either way, still bounds what is in flight. */

struct heap_block {
    void *data;
    size_t size;
};

static void *heap_alloc(child_rt_t *rt, size_t size)
{
    if (rt->nheap == rt->capheap) {
        size_t cap = rt->capheap ? 2 * rt->capheap : 8;
        struct heap_block *h = realloc(rt->heap, cap * sizeof *h);
        if (!h)
            return NULL;
        rt->heap = h;
        rt->capheap = cap;
    }
    void *d = malloc(size + 1); /* the NUL every part is followed by */
    if (d)
        rt->heap[rt->nheap++] = (struct heap_block){d, size};
    return d;
}

/* Forget heap block `data` (its size in *size): false when it is not one. */
static bool heap_forget(child_rt_t *rt, const void *data, size_t *size)
{
    for (size_t i = rt->nheap; i-- > 0;)
        if (rt->heap[i].data == data) {
            *size = rt->heap[i].size;
            rt->heap[i] = rt->heap[--rt->nheap];
            return true;
        }
    return false;
}

void *mpx_alloc(mpx_stage_t *st, size_t size)
{
    if (!can_put(st) || size == 0 || size >= SIZE_MAX - 1)
        return NULL;
    child_rt_t *rt = st->rt;
    if (rt->plan->pool) {
        uint32_t blk;
        /* One byte more: the NUL every part is followed by. */
        int rc = child_pool_alloc(rt, size + 1, POOL_PUT_WAIT_MS, &blk);
        if (rc == 0)
            return pool_data(rt->plan->pool, blk);
        if (rc == MPX_ESTOPPED)
            return NULL; /* a stop ends the wait */
    }
    return heap_alloc(rt, size);
}

/* A block from heap_alloc put: its bytes go inline, it is freed. */
static int put_heap_block(mpx_stage_t *st, void *block, size_t size, size_t had)
{
    child_rt_t *rt = st->rt;
    int rc;
    if (size > had) {
        rc = put_error(st, MPX_ERANGE, "%zu bytes, more than the block holds", size);
    } else {
        ((uint8_t *)block)[size] = 0;
        mpx_part_t part = {block, size};
        /* Not into the pool: it was full a moment ago. */
        size_t pool_min = rt->pool_min;
        rt->pool_min = SIZE_MAX;
        rc = put_on(st, 0, &part, 1);
        rt->pool_min = pool_min;
    }
    free(block);
    return rc;
}

static int put_alloc(mpx_stage_t *st, void *block, size_t size)
{
    if (!can_put(st))
        return st ? MPX_ESTATE : MPX_EINVAL;
    child_rt_t *rt = st->rt;
    size_t had;
    if (heap_forget(rt, block, &had))
        return put_heap_block(st, block, size, had);
    pool_t *pool = rt->plan->pool;
    uint32_t blk = pool_block_at(pool, block);
    if (blk == POOL_NONE || !pool_holds(pool, blk, self_of(rt)))
        return put_error(st, MPX_EINVAL, "%p is not a block from mpx_alloc that this stage holds",
                         block);
    if (size >= pool_block_size(pool, blk)) {
        (void)pool_release(pool, blk, self_of(rt));
        return put_error(st, MPX_ERANGE, "%zu bytes, more than the block holds", size);
    }
    ((uint8_t *)block)[size] = 0;
    mpx_part_t part = {block, size};
    /* The record takes a hold of its own; the stage's goes either way. */
    int rc = put_on(st, 0, &part, 1);
    (void)pool_release(pool, blk, self_of(rt));
    return rc;
}

int mpx_put_alloc(mpx_stage_t *st, void *block, size_t size)
{
    return put_result(st, "mpx_put_alloc", put_alloc(st, block, size));
}

void *mpx_item_writable(mpx_stage_t *st, const mpx_item_t *it, size_t part)
{
    if (!st || !st->rt || !it || part >= it->nparts)
        return NULL;
    child_rt_t *rt = st->rt;
    pool_t *pool = rt->plan->pool;
    int producer;
    uint32_t gen;
    /* A stage that is replaced when it dies would be sent the same block
     * again, changed: never in place there. */
    if (!pool || !rt->in || !rt->in_process || rt->plan->inst[rt->id].recoverable ||
        !edge_in_in_hand(rt->in, it, &producer, &gen))
        return NULL;
    uint32_t blk = pool_block_at(pool, it->parts[part].data);
    /* Ours and the producer's single hold, that of the record it keeps
     * until we confirm it: nobody else can read the block, now or later
     * (a hold is given only by a holder). */
    if (blk == POOL_NONE ||
        !pool_held_only_by(pool, blk, self_of(rt), (pool_holder_t){(uint32_t)producer, gen}))
        return NULL;
    return (void *)it->parts[part].data;
}

int mpx_free(mpx_stage_t *st, void *block)
{
    if (!st || !st->rt)
        return st ? MPX_ESTATE : MPX_EINVAL;
    size_t had;
    if (heap_forget(st->rt, block, &had)) {
        free(block);
        return 0;
    }
    if (!st->rt->plan->pool)
        return MPX_EINVAL;
    uint32_t blk = pool_block_at(st->rt->plan->pool, block);
    if (blk == POOL_NONE)
        return MPX_EINVAL;
    return pool_release(st->rt->plan->pool, blk, self_of(st->rt));
}

int mpx_flush(mpx_stage_t *st)
{
    if (!can_put(st))
        return st ? MPX_ESTATE : MPX_EINVAL;
    /* A flush is a pause: what the Seq after us made of our items so far
     * must not wait for more (child_stamp_mark). */
    int rc = child_stamp_mark(st->rt);
    return rc != 0 ? rc : edge_out_flush(st->rt->out);
}

int mpx_progress_total(mpx_stage_t *st, uint64_t total)
{
    if (!st)
        return MPX_EINVAL;
    if (!st->rt)
        return MPX_ESTATE;
    st->rt->progress_total = total;
    return 0;
}

int mpx_progress_add(mpx_stage_t *st, uint64_t done)
{
    if (!st)
        return MPX_EINVAL;
    if (!st->rt)
        return MPX_ESTATE;
    st->rt->progress_own = true;
    st->rt->progress_done += done;
    return 0;
}

int mpx_watch_fd(mpx_stage_t *st, int fd)
{
    if (!st || fd < 0)
        return MPX_EINVAL;
    if (!st->rt)
        return MPX_ESTATE;
    child_rt_t *rt = st->rt;
    for (int i = 0; i < rt->nwatch; i++)
        if (rt->watch[i] == fd)
            return 0;
    if (rt->nwatch == CHILD_WATCH_MAX)
        return MPX_ERANGE;
    rt->watch[rt->nwatch++] = fd;
    return 0;
}

int mpx_unwatch_fd(mpx_stage_t *st, int fd)
{
    if (!st || !st->rt)
        return st ? MPX_ESTATE : MPX_EINVAL;
    child_rt_t *rt = st->rt;
    for (int i = 0; i < rt->nwatch; i++)
        if (rt->watch[i] == fd) {
            rt->watch[i] = rt->watch[--rt->nwatch];
            return 0;
        }
    return MPX_EINVAL;
}

int mpx_poll(mpx_stage_t *st, struct pollfd *fds, size_t n, int timeout_ms)
{
    if (!st || (n > 0 && !fds) || n > (size_t)INT32_MAX - 1)
        return MPX_EINVAL;
    if (!st->rt || !st->rt->ctl)
        return MPX_ESTATE;
    return child_poll_fds(st->rt, fds, n, timeout_ms);
}

int mpx_own_child(mpx_stage_t *st, pid_t pid)
{
    if (!st || pid <= 0)
        return MPX_EINVAL;
    if (!st->rt)
        return MPX_ESTATE;
    child_rt_t *rt = st->rt;
    for (int i = 0; i < rt->nowned; i++)
        if (rt->owned[i] == pid)
            return 0;
    /* Only a child of this process can be reaped here.  WNOWAIT: one that
     * has exited already stays for its owner to reap. */
    siginfo_t info;
    int rc;
    while ((rc = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT)) < 0 &&
           errno == EINTR)
        ;
    if (rc < 0)
        return MPX_EINVAL;
    if (rt->nowned == CHILD_OWNED_MAX)
        return MPX_ERANGE;
    rt->owned[rt->nowned] = pid;
    rt->owned_fd[rt->nowned] = (int)syscall(SYS_pidfd_open, pid, 0); /* -1 before Linux 5.3 */
    rt->nowned++;
    return 0;
}

int mpx_disown_child(mpx_stage_t *st, pid_t pid)
{
    if (!st || !st->rt)
        return st ? MPX_ESTATE : MPX_EINVAL;
    child_rt_t *rt = st->rt;
    for (int i = 0; i < rt->nowned; i++)
        if (rt->owned[i] == pid) {
            if (rt->owned_fd[i] >= 0)
                close(rt->owned_fd[i]);
            rt->nowned--;
            rt->owned[i] = rt->owned[rt->nowned];
            rt->owned_fd[i] = rt->owned_fd[rt->nowned];
            return 0;
        }
    return MPX_EINVAL;
}

int mpx_stop(mpx_stage_t *st)
{
    if (!st)
        return MPX_EINVAL;
    if (!st->rt)
        return MPX_ESTATE; /* initialize: the stage has not started */
    st->stop_self = true;
    return 0;
}

bool mpx_stopping(const mpx_stage_t *st)
{
    if (!st)
        return false;
    return st->stop_self || (st->rt && st->rt->out && edge_out_closed(st->rt->out, 0));
}

int mpx_fail(mpx_stage_t *st, const char *fmt, ...)
{
    if (!st)
        return MPX_EINVAL;
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt ? fmt : "(no message)", ap) < 0)
        msg = NULL;
    va_end(ap);
    if (msg) {
        free(st->fail_msg);
        st->fail_msg = msg;
    }
    return MPX_ESTAGE;
}

int mpx_reject(mpx_stage_t *st, const mpx_part_t *parts, size_t n, const char *fmt, ...)
{
    if (!st || (n && !parts) || !fmt)
        return MPX_EINVAL;
    if (!st->rt)
        return MPX_ESTATE; /* initialize or finalize: no policy applies there */
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (!msg)
        return mpx_fail(st, "out of memory while rejecting");
    int rc = child_reject(st->rt, parts, n, msg);
    if (rc == MPX_ESTAGE) {
        free(st->fail_msg); /* stop: the message is the callback's failure */
        st->fail_msg = msg;
    } else {
        free(msg);
    }
    return rc;
}

/* ---- current meta ------------------------------------------------------- */

static meta_cur_t *cur(const mpx_stage_t *st)
{
    return st && st->rt ? &st->rt->meta : NULL;
}

int mpx_meta_set(mpx_stage_t *st, const char *key, const void *value, size_t size)
{
    meta_cur_t *m = cur(st);
    return m ? meta_cur_set(m, key, value, size) : (st ? MPX_ESTATE : MPX_EINVAL);
}

int mpx_meta_set_str(mpx_stage_t *st, const char *key, const char *value)
{
    if (!value)
        return MPX_EINVAL;
    return mpx_meta_set(st, key, value, strlen(value));
}

int mpx_meta_set_i64(mpx_stage_t *st, const char *key, int64_t value)
{
    return mpx_meta_set(st, key, &value, sizeof value);
}

const void *mpx_meta_get(const mpx_stage_t *st, const char *key, size_t *size)
{
    meta_cur_t *m = cur(st);
    return m ? meta_cur_get(m, key, size) : NULL;
}

const char *mpx_meta_str(const mpx_stage_t *st, const char *key)
{
    return mpx_meta_get(st, key, NULL);
}

int mpx_meta_i64(const mpx_stage_t *st, const char *key, int64_t *out)
{
    size_t n;
    const void *v = mpx_meta_get(st, key, &n);
    if (!v || !out)
        return MPX_EINVAL;
    if (n != sizeof *out)
        return MPX_ERANGE;
    memcpy(out, v, sizeof *out);
    return 0;
}

int mpx_meta_load(mpx_stage_t *st, const mpx_item_t *item)
{
    meta_cur_t *m = cur(st);
    if (!m || !item)
        return st ? (m ? MPX_EINVAL : MPX_ESTATE) : MPX_EINVAL;
    meta_cur_reset(m, NULL, 0, 0);
    for (size_t i = 0; i < item->nmeta; i++) {
        const char *key;
        const void *val;
        size_t len;
        wire_meta_at(item->meta, item->meta_size, item->nmeta, i, &key, &val, &len);
        int rc = meta_cur_set(m, key, val, len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int mpx_meta_del(mpx_stage_t *st, const char *key)
{
    meta_cur_t *m = cur(st);
    return m ? meta_cur_del(m, key) : (st ? MPX_ESTATE : MPX_EINVAL);
}

void mpx_meta_clear(mpx_stage_t *st)
{
    meta_cur_t *m = cur(st);
    if (m)
        meta_cur_reset(m, NULL, 0, 0);
}

size_t mpx_meta_count(const mpx_stage_t *st)
{
    meta_cur_t *m = cur(st);
    return m ? meta_cur_count(m) : 0;
}

int mpx_meta_at(const mpx_stage_t *st, size_t i, const char **key, const void **value,
                size_t *size)
{
    meta_cur_t *m = cur(st);
    return m ? meta_cur_at(m, i, key, value, size) : MPX_EINVAL;
}
