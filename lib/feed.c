/* lib/feed.c — the program's input (mpx_graph_put): the parent as the
 * producer of the stages at the start of the graph.
 *
 * It is an edge like any other (lib/edge.h), from instance n (the
 * parent's number, the sink's), with one difference: the parent never
 * waits inside the edge.  Its wait function declines (MPX_EAGAIN), so a
 * send short of credit keeps what did not go, and the parent's own calls
 * decide whether to wait (supervisor.c, sup_put), because only they know
 * whether the wait could end without the program taking output first.
 *
 * Records leave as a stage's do: in batches, when a batch is full (its
 * size follows the credit), when its first record is a millisecond old,
 * at once after a quiet spell, and whenever the program is about to wait
 * (mpx_graph_next, a poll with a timeout, a put without room).  So a
 * program that puts many small items pays a message per batch, not per
 * item, and one that puts an item now and then sees it leave at once.
 *
 * When the graph begins with a Seq, the program numbers what it puts for
 * it (graph/seqhost.h), as a stage before a Seq does (lib/stage.c): one
 * more meta entry per record, and the Seq's mark every SEQ_EPOCH records
 * or SEQ_EPOCH_BYTES, and whenever the batch leaves (the program is
 * about to wait, a quiet spell, the batch's age, a full batch).  A mark
 * is a record to every stage fed: when the batch before it, or credit
 * for it, is lacking, it is owed and goes at the next chance
 * (feed_service), whose count then covers everything put so far.
 *
 * Why a single thread cannot deadlock on its own puts (sup_put's rule:
 * wait only while no output waits for the program) is modelled in
 * feed.pml, checked by SPIN in the test suite.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_out_inline.h"
#include "meta.h"
#include "mpx/error.h"
#include "pool.h"
#include "supervisor.h"
#include "ticks.h"
#include "wire.h"

static int decline(void *owner, void *sock, short events)
{
    (void)owner;
    (void)sock;
    (void)events;
    return MPX_EAGAIN;
}

int feed_open(struct mpx_run *r)
{
    if (!plan_fed(r->plan))
        return 0;
    uint32_t *gens = r->grow ? current_gens(r) : NULL;
    if (r->grow && !gens)
        return r->status;
    r->feed = edge_out_new(r->plan, r->n, 0, gens, r->dir, decline, r, r->err,
                           sizeof r->err);
    free(gens);
    if (!r->feed) {
        sup_record(r, MPX_ESYS, "input: %s", r->err);
        return r->status;
    }
    return 0;
}

void feed_close(struct mpx_run *r)
{
    /* What never went lets its pool blocks go; kept messages do so in
     * edge_out_destroy. */
    if (r->feed)
        edge_out_discard(r->feed);
    edge_out_destroy(&r->feed);
}

void *feed_socket(struct mpx_run *r) { return r->feed ? edge_out_socket(r->feed) : NULL; }

static const seq_args_t *stamp_of(const struct mpx_run *r) { return r->plan->inst[r->n].stamp; }

static bool unmarked(const struct mpx_run *r)
{
    return r->feed && stamp_of(r) && r->seq_next != r->seq_marked && !r->input_ended &&
           !edge_out_closed(r->feed, 0);
}

bool feed_owes_mark(const struct mpx_run *r) { return r->seq_mark_owed && unmarked(r); }

/* Close the Seq's epoch now, if the batch has gone and credit allows; a
 * mark that cannot go yet is owed.  0, or a failure. */
static int feed_mark(struct mpx_run *r)
{
    if (!unmarked(r))
        return 0;
    int rc = edge_out_mark(r->feed, (uint32_t)r->n, seq_mark_value(stamp_of(r)->tag, r->seq_next),
                           EDGE_MARK_NEXT);
    r->seq_mark_owed = rc == MPX_EAGAIN;
    if (rc == 0) {
        r->seq_marked = r->seq_next;
        r->seq_bytes = 0;
    }
    return rc == MPX_EAGAIN || rc == MPX_ESTOPPED ? 0 : rc;
}

bool feed_service(struct mpx_run *r, bool all)
{
    edge_out_t *o = r->feed;
    if (!o || r->state != RUN_RUNNING || r->stopping)
        return false;
    if (r->input_ended && !edge_out_recover_due(o))
        return false;
    if (!edge_out_pending(o) && !feed_owes_eos(r) && !feed_owes_mark(r))
        return false;
    uint64_t since = edge_out_batch_since(o);
    bool due = since && (all || r->input_closed || ticks_now() - since >= DEFER_TICKS);
    /* What the stages said (credit, a stop) is read here unless the batch
     * goes now: a send reads the credit itself when it is short. */
    if (!due)
        edge_out_poll(o);
    int rc = 0;
    if (edge_out_recover_due(o))
        rc = edge_out_recover(o);
    bool flushed = false;
    if (rc == 0 && due) {
        rc = edge_out_flush(o);
        flushed = rc == 0;
    }
    /* A pause (the program is about to wait, or the batch left for its
     * age): what has gone is closed by a mark, so that the outputs made
     * of it do not wait for more input. */
    if (rc == 0 && !edge_out_pending(o) && (all || flushed || r->input_closed || r->seq_mark_owed))
        rc = feed_mark(r);
    /* Every stage fed by the program has stopped (puts now say so): they
     * still wait for the end of stream, which goes now (nothing more can
     * be put), as when the input is closed. */
    if (rc == MPX_ESTOPPED)
        rc = 0;
    if (rc == 0 && feed_owes_eos(r) && !edge_out_pending(o)) {
        rc = edge_out_eos(o);
        r->input_ended = rc == 0;
    }
    if (rc < 0 && rc != MPX_EAGAIN) {
        sup_record(r, rc, "sending the program's input to the graph: %s", mpx_strerror(rc));
        return false;
    }
    return edge_out_pending(o) || feed_owes_eos(r) || feed_owes_mark(r);
}

bool feed_owes_eos(const struct mpx_run *r)
{
    return r->feed && !r->input_ended && (r->input_closed || edge_out_closed(r->feed, 0));
}

void feed_tick(struct mpx_run *r)
{
    if (!r->feed || !edge_out_pending(r->feed))
        return;
    uint64_t now = ticks_now();
    if (now - r->feed_tick_at < DEFER_TICKS)
        return;
    r->feed_tick_at = now;
    (void)feed_service(r, false);
}

void feed_join(struct mpx_run *r, const wire_join_t *j)
{
    if (!r->feed)
        return;
    int rc = edge_out_join(r->feed, j->consumer, j->gen);
    if (rc < 0)
        sup_record(r, rc, "the program's input to a new instance: %s", mpx_strerror(rc));
}

void feed_restart(struct mpx_run *r, const wire_restart_t *m, const char *why, size_t whylen)
{
    if (!r->feed)
        return;
    /* What the dead process confirmed before it died holds (it confirms
     * only what has gone on for good), and is not sent again: the parent
     * reads its socket only now and then. */
    edge_out_poll(r->feed);
    int rc = edge_out_restart(r->feed, m, why, whylen);
    if (rc < 0)
        sup_record(r, rc, "sending the program's input again to a replaced stage: %s",
                   mpx_strerror(rc));
}

bool feed_room(struct mpx_run *r, size_t size)
{
    /* None once the input has ended: nothing more can be put. */
    if (!r->feed || r->input_closed || r->input_ended || edge_out_closed(r->feed, 0))
        return false;
    /* A full batch goes if the credit lets it (the send reads the credit
     * when short), making room. */
    if (!edge_out_room(r->feed, 0, size))
        (void)feed_service(r, true);
    return edge_out_room(r->feed, 0, size);
}

long feed_due_ms(struct mpx_run *r)
{
    uint64_t since = r->feed ? edge_out_batch_since(r->feed) : 0;
    /* A batch that waits for credit is not due: the credit's arrival on
     * the input's socket is what wakes the program for it (a deadline
     * would fire at once, again and again, while the graph is busy). */
    if (!since || !edge_out_can_send(r->feed, 0))
        return -1;
    uint64_t now = ticks_now(), due = since + DEFER_TICKS;
    return now >= due ? 0 : (long)((due - now) / TICKS_US(1000)) + 1;
}

#define INDEX_KEY "mpx.index"

static pool_holder_t parent_holder(const struct mpx_run *r)
{
    return (pool_holder_t){POOL_PARENT_SLOT((uint32_t)r->n), 0};
}

/* Large parts go through the graph's pool as a stage's do (stage.c):
 * blk[i] is part i's new block, held by the parent, or POOL_NONE.  A
 * full pool is not waited for (the program must not block on it): the
 * bytes then go inline.  Returns the pool bytes referred to. */
static uint64_t pool_parts(struct mpx_run *r, const mpx_part_t *parts, size_t n, uint32_t *blk)
{
    pool_t *pool = r->plan->pool;
    size_t min = r->plan->inst[r->n].pool_min;
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        blk[i] = POOL_NONE;
        if (!pool || parts[i].size < min)
            continue;
        uint32_t b;
        if (pool_alloc(pool, parent_holder(r), parts[i].size + 1, &b) != 0)
            continue;
        uint8_t *d = pool_data(pool, b);
        memcpy(d, parts[i].data, parts[i].size);
        d[parts[i].size] = 0;
        blk[i] = b;
        bytes += parts[i].size;
    }
    return bytes;
}

static void unpool_parts(struct mpx_run *r, const uint32_t *blk, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (blk[i] != POOL_NONE)
            (void)pool_release(r->plan->pool, blk[i], parent_holder(r));
}

int feed_put(struct mpx_run *r, const mpx_part_t *parts, size_t n, const meta_cur_t *meta)
{
    size_t meta_size = meta ? meta_cur_size(meta) : 0;
    size_t nmeta = meta ? meta_cur_n(meta) : 0;
    const seq_args_t *stamp = stamp_of(r);
    /* Room in the record's 16-bit count for the entries added below. */
    if (nmeta + 1 + (stamp != NULL) > UINT16_MAX)
        return MPX_ERANGE;
    size_t index_size = wire_meta_entry_size(sizeof INDEX_KEY - 1, sizeof(int64_t));
    size_t stamp_klen = stamp ? strlen(stamp->key) : 0;
    size_t stamp_size = stamp ? wire_meta_entry_size(stamp_klen, sizeof(int64_t)) : 0;
    index_size += stamp_size; /* the two entries the program adds */
    size_t size = WIRE_REC_HEAD + meta_size + index_size, inline_size = size;
    size_t min = r->plan->pool ? r->plan->inst[r->n].pool_min : SIZE_MAX;
    bool large = false;
    for (size_t i = 0; i < n; i++) {
        size += wire_part_size(parts[i].size);
        large |= parts[i].size >= min;
    }
    if (size > r->plan->inst[r->n].max_item)
        return MPX_ERANGE;
    /* Room is judged by the whole weight, pool bytes counted as the
     * edges count them (wire_weight). */
    if (!feed_room(r, size)) {
        /* Room is news (MPX_DISPATCH_INPUT) only once there is room for
         * this record: a batch's bytes may run out before its count. */
        r->want_size = size;
        return edge_out_closed(r->feed, 0) ? MPX_ESTOPPED : MPX_EAGAIN;
    }
    uint32_t small[8], *blk = small;
    uint64_t pooled = 0;
    if (large) {
        blk = n <= 8 ? small : malloc(n * sizeof *blk);
        if (!blk)
            return MPX_ENOMEM;
        pooled = pool_parts(r, parts, n, blk);
    }
    for (size_t i = 0; i < n; i++)
        inline_size += pooled && blk[i] != POOL_NONE ? WIRE_POOLED_PART_SIZE
                                                     : wire_part_size(parts[i].size);
    int rc;
    uint8_t *dst = edge_out_reserve(r->feed, 0, inline_size, &rc);
    if (!dst) {
        if (pooled)
            unpool_parts(r, blk, n);
        if (blk != small)
            free(blk);
        return rc;
    }
    uint8_t *p = wire_rec_head_put(dst, inline_size, n, nmeta + 1 + (stamp != NULL),
                                   meta_size + index_size);
    if (pooled) {
        uint32_t flags = WIRE_REC_POOL;
        memcpy(dst + 12, &flags, 4);
        edge_out_pooled(r->feed, 0, pooled);
    }
    if (meta_size)
        meta_cur_encode(meta, p);
    p += meta_size;
    int64_t index = (int64_t)r->input_count;
    wire_meta_entry_put(p, INDEX_KEY, sizeof INDEX_KEY - 1, &index, sizeof index);
    p += index_size - stamp_size;
    if (stamp) {
        wire_meta_entry_put(p, stamp->key, stamp_klen, &r->seq_next, sizeof r->seq_next);
        p += stamp_size;
        r->seq_next++;
        for (size_t i = 0; i < n; i++)
            r->seq_bytes += parts[i].size;
    }
    for (size_t i = 0; i < n; i++)
        p = pooled && blk[i] != POOL_NONE ? wire_part_put_pooled(p, blk[i], parts[i].size)
                                          : wire_part_put(p, parts[i].data, parts[i].size);
    if (blk != small)
        free(blk);
    const out_port_t *pt = &r->feed->ports[0];
    rc = edge_out_commit(r->feed, 0, inline_size);
    r->input_count++;
    /* Numbered records left (fewer wait in the batch than were numbered
     * since the last mark: a quiet spell, the batch's age, or a full
     * batch, which a program that puts one input and waits for its
     * result outside the library sends with every put), or the epoch is
     * full: close it. */
    if (rc == 0 && stamp &&
        ((uint64_t)(r->seq_next - r->seq_marked) > pt->count ||
         r->seq_next - r->seq_marked >= SEQ_EPOCH || r->seq_bytes >= SEQ_EPOCH_BYTES))
        rc = feed_mark(r);
    /* Kept in the batch for want of credit: it is put all the same. */
    return rc == MPX_EAGAIN ? 0 : rc;
}
