/* lib/edge_out.c — the producer side of edges (see edge.h): ports, the
 * batch being built for each, credit, dispatch over parallel (ONE) and
 * broadcast (ALL) branches, marks, end of stream, and sending again what
 * a replaced consumer had not confirmed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "edge.h"
#include "edge_out_inline.h"
#include "meta.h"
#include "mpx/error.h"
#include "pool.h"
#include "ticks.h"

/* ---- holds of pool blocks ------------------------------------------------
 * A record that refers to pool blocks (lib/pool.h) is held by us while it
 * waits in a batch (the put's hold), while it waits to be sent again
 * (redo), and while a copy is kept for its consumer: every such message is
 * kept until the consumer confirms it (a consumer confirms from the first
 * such message on, edge_in.c), and the consumer takes a hold of its own when it reads
 * the record, which ours, still there, keeps valid (pool_hold_if).  A
 * message that dies with us in zmq's queue so never leaves a hold behind
 * in a consumer.  The put's hold is dropped once the batch has gone out. */

typedef struct pool_op {
    edge_out_t *o;
    pool_holder_t who;
    bool hold;
    int rc; /* the first failure of a hold */
} pool_op_t;

static void pool_op_one(void *ctx, uint32_t blk)
{
    pool_op_t *op = ctx;
    if (!op->hold) {
        (void)pool_release(op->o->plan->pool, blk, op->who);
        return;
    }
    int rc = pool_hold(op->o->plan->pool, blk, op->who);
    /* A consumer that died meanwhile (MPX_ESTOPPED) never reads it. */
    if (rc != 0 && rc != MPX_ESTOPPED && op->rc == 0)
        op->rc = rc;
}

/* Hold (or release) once for `who` every block the records of message
 * `msg` refer to; nothing when it refers to none. */
static int msg_pool(edge_out_t *o, const zmq_msg_t *msg, pool_holder_t who, bool hold)
{
    const uint8_t *d = zmq_msg_data((zmq_msg_t *)msg);
    size_t len = zmq_msg_size((zmq_msg_t *)msg);
    if (!o->plan->pool || len < WIRE_HEAD || !(d[3] & WIRE_DATA_POOL) || d[2] != WIRE_DATA)
        return 0;
    uint32_t count;
    memcpy(&count, d + 8, 4);
    pool_op_t op = {o, who, hold, 0};
    wire_pool_refs(d + WIRE_HEAD, len - WIRE_HEAD, count, pool_op_one, &op);
    return op.rc;
}

static bool msg_pooled(const zmq_msg_t *msg)
{
    const uint8_t *d = zmq_msg_data((zmq_msg_t *)msg);
    return zmq_msg_size((zmq_msg_t *)msg) >= WIRE_HEAD && d[2] == WIRE_DATA &&
           (d[3] & WIRE_DATA_POOL);
}

static inline pool_holder_t self_holder(const edge_out_t *o)
{
    return (pool_holder_t){(uint32_t)o->self, o->gen};
}

/* ---- kept messages ------------------------------------------------------ */

static kept_t *kept_at(const out_peer_t *p, size_t i)
{
    return &p->kept[(p->khead + i) % p->kcap];
}

static int keep(edge_out_t *o, out_peer_t *p, zmq_msg_t *msg, uint64_t seq, uint32_t k,
                int leaf)
{
    if (p->kcount == p->kcap) {
        size_t cap = p->kcap ? 2 * p->kcap : 16;
        kept_t *ring = malloc(cap * sizeof *ring);
        if (!ring)
            return MPX_ENOMEM;
        for (size_t i = 0; i < p->kcount; i++) {
            kept_t *from = kept_at(p, i);
            ring[i] = *from;
            zmq_msg_init(&ring[i].msg);
            zmq_msg_move(&ring[i].msg, &from->msg);
        }
        free(p->kept);
        p->kept = ring;
        p->khead = 0;
        p->kcap = cap;
    }
    kept_t *e = kept_at(p, p->kcount);
    zmq_msg_init(&e->msg);
    if (zmq_msg_copy(&e->msg, msg) != 0)
        return MPX_ENOMEM;
    int rc = msg_pool(o, &e->msg, self_holder(o), true);
    if (rc != 0) {
        zmq_msg_close(&e->msg);
        return rc;
    }
    o->kept_pooled += msg_pooled(&e->msg);
    e->seq = seq;
    e->end_items = p->sent_items;
    e->k = k;
    e->leaf = leaf;
    if (p->kcount > 0 && kept_at(p, p->kcount - 1)->seq > e->seq)
        p->unsorted = true;
    p->kcount++;
    return 0;
}

/* Drop what the consumer has confirmed. */
static void release_kept(edge_out_t *o, out_peer_t *p)
{
    while (p->kcount > 0 && p->kept[p->khead].end_items <= p->confirmed) {
        o->kept_pooled -= msg_pooled(&p->kept[p->khead].msg);
        (void)msg_pool(o, &p->kept[p->khead].msg, self_holder(o), false);
        zmq_msg_close(&p->kept[p->khead].msg);
        p->khead = (p->khead + 1) % p->kcap;
        p->kcount--;
    }
    if (p->kcount == 0)
        p->unsorted = false;
}

static void free_kept(edge_out_t *o, out_peer_t *p)
{
    for (size_t i = 0; i < p->kcount; i++) {
        o->kept_pooled -= msg_pooled(&kept_at(p, i)->msg);
        (void)msg_pool(o, &kept_at(p, i)->msg, self_holder(o), false);
        zmq_msg_close(&kept_at(p, i)->msg);
    }
    free(p->kept);
    p->kept = NULL;
    p->khead = p->kcount = p->kcap = 0;
    p->unsorted = false;
}

/* ---- dispatch ------------------------------------------------------------ */

static out_peer_t *leaf_peer(const edge_out_t *o, const plan_dnode_t *dn)
{
    return &o->peers[o->slot[dn->target]];
}

static bool dn_closed(const edge_out_t *o, int d)
{
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF)
        return leaf_peer(o, dn)->closed || leaf_peer(o, dn)->off;
    for (int i = 0; i < dn->count; i++)
        if (!dn_closed(o, o->plan->kids[dn->first + i]))
            return false;
    return true;
}

static void update_closed(edge_out_t *o)
{
    for (int i = 0; i < o->nports; i++)
        o->ports[i].closed = o->ports[i].root >= 0 && dn_closed(o, o->ports[i].root);
}

/* A run of records to send: the n records at recs (len bytes in all). */
typedef struct run {
    const uint8_t *recs;
    size_t len;
    uint32_t n;
    bool all;    /* to every consumer (a mark), not one branch of each choice */
    bool pooled; /* some record refers to pool blocks */
    uint64_t weight; /* len, and the bytes of the pool parts (wire_weight) */
    /* The records are the int64 v0, v0 + step, ... (out_port_t.arith_n):
     * sent as that instead (send_arith). */
    bool arith;
    uint64_t v0, step;
    bool i64; /* every record is one int64 (wire_recs_i64) */
} run_t;

/* Weight (wire_weight) of the record at rec. */
static inline uint64_t rec_weight(const run_t *r, const uint8_t *rec)
{
    uint32_t size = wire_rec_size(rec);
    return r->pooled ? wire_weight(rec, size, 1) : size;
}

/* Bytes of the first k records of a run. */
static size_t prefix_bytes(const run_t *r, uint32_t k)
{
    if (k == r->n)
        return r->len;
    if (r->arith || r->i64)
        return (size_t)k * WIRE_ARITH_WEIGHT;
    size_t at = 0;
    for (uint32_t i = 0; i < k; i++) {
        at += wire_rec_size(r->recs + at);
    }
    return at;
}

/* Weight of the first k records of a run that refers to pool blocks. */
static uint64_t prefix_weight(const run_t *r, uint32_t k)
{
    if (k == r->n)
        return r->weight;
    uint64_t w = 0;
    const uint8_t *at = r->recs;
    for (uint32_t i = 0; i < k; i++) {
        w += rec_weight(r, at);
        at += wire_rec_size(at);
    }
    return w;
}

/* How many of the run's first records consumer p's credit lets us send
 * now: as many as it has item credit for, while some byte credit is left
 * before each (so the last may overrun it). */
static uint32_t peer_fit(const out_peer_t *p, const run_t *r)
{
    if (p->closed || p->off)
        return r->n; /* nothing goes to it: nothing waits for it */
    uint64_t items = p->grant_items > p->sent_items ? p->grant_items - p->sent_items : 0;
    uint64_t bytes = p->grant_bytes > p->sent_bytes ? p->grant_bytes - p->sent_bytes : 0;
    if (items == 0 || bytes == 0)
        return 0;
    uint32_t k = items < r->n ? (uint32_t)items : r->n;
    if (bytes >= r->weight)
        return k;
    uint64_t at = 0, w = 0;
    uint32_t i = 0;
    while (i < k && w < bytes) {
        w += rec_weight(r, r->recs + at);
        at += wire_rec_size(r->recs + at);
        i++;
    }
    return i;
}

/* The same for dispatch tree d: the most any branch of a choice can take,
 * the least every branch of a broadcast can. */
static uint32_t tree_fit(const edge_out_t *o, int d, const run_t *r)
{
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF)
        return peer_fit(leaf_peer(o, dn), r);
    bool every = dn->kind == DN_ALL || r->all;
    uint32_t k = every ? r->n : 0;
    for (int i = 0; i < dn->count; i++) {
        int c = o->plan->kids[dn->first + i];
        if (dn_closed(o, c))
            continue;
        uint32_t f = tree_fit(o, c, r);
        k = every ? (f < k ? f : k) : (f > k ? f : k);
    }
    return dn_closed(o, d) ? r->n : k;
}

/* Until a consumer has returned credit, nothing says how fast it works:
 * a choice among consumers gives each unheard one no more than an equal
 * share of a run (the first batch of a short job must not all go to one
 * worker).  The most the run may put in one piece, by that rule. */
static uint32_t tree_share(const edge_out_t *o, int d, const run_t *r)
{
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF)
        return r->n;
    uint32_t k = r->n, open = 0;
    bool unheard = false;
    for (int i = 0; i < dn->count; i++) {
        int c = o->plan->kids[dn->first + i];
        if (dn_closed(o, c))
            continue;
        open++;
        uint32_t s = tree_share(o, c, r);
        k = s < k ? s : k;
        const plan_dnode_t *cn = &o->plan->dn[c];
        unheard |= cn->kind == DN_LEAF && !leaf_peer(o, cn)->heard;
    }
    if (dn->kind == DN_ONE && !r->all && unheard && open > 1) {
        uint32_t share = (r->n + open - 1) / open;
        k = share < k ? share : k;
    }
    return k;
}

/* Item credit left in tree d, as a choice compares branches: the most of
 * any branch of a choice, the least of a broadcast's. */
static uint64_t tree_room(const edge_out_t *o, int d)
{
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF) {
        const out_peer_t *p = leaf_peer(o, dn);
        return p->grant_items > p->sent_items ? p->grant_items - p->sent_items : 0;
    }
    uint64_t v = dn->kind == DN_ONE ? 0 : UINT64_MAX;
    for (int i = 0; i < dn->count; i++) {
        int c = o->plan->kids[dn->first + i];
        if (dn_closed(o, c))
            continue;
        uint64_t x = tree_room(o, c);
        v = dn->kind == DN_ONE ? (x > v ? x : v) : (x < v ? x : v);
    }
    return v;
}

/* What one grant adds in tree d, as a choice sees it (the most of any
 * branch of a choice, the least of a broadcast's): about half of what the
 * consumer asks for at its pace (edge.h). */
static uint64_t tree_step(const edge_out_t *o, int d)
{
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF)
        return leaf_peer(o, dn)->step;
    uint64_t v = dn->kind == DN_ONE ? 0 : UINT64_MAX;
    for (int i = 0; i < dn->count; i++) {
        int c = o->plan->kids[dn->first + i];
        if (dn_closed(o, c))
            continue;
        uint64_t x = tree_step(o, c);
        v = dn->kind == DN_ONE ? (x > v ? x : v) : (x < v ? x : v);
    }
    return v == UINT64_MAX ? 0 : v;
}

static int send_to(edge_out_t *o, out_peer_t *p, zmq_msg_t *msg)
{
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    if (zmq_msg_copy(&copy, msg) != 0)
        return MPX_ENOMEM;
    int rc = xport_send(o->sock, p->rid, EDGE_RID_SIZE, &copy);
    zmq_msg_close(&copy);
    return rc == 0 ? 0 : MPX_ESYS;
}

/* A message of the run's first k records (`bytes` of them), numbered
 * `seq`, through dispatch node d, which tree_fit found can take k. */
typedef struct piece {
    const run_t *run;
    zmq_msg_t *msg;    /* its records: empty when no consumer keeps them */
    zmq_msg_t *packed; /* ... as packed int64 (run->i64), or NULL */
    uint32_t k;
    uint64_t bytes, seq;
    uint64_t weight; /* what it counts against byte credit */
} piece_t;

/* The piece as a run of int64 (WIRE_DATA_ARITH): two numbers instead of
 * a record per item (what is kept for a recoverable consumer is still
 * the records).  A range of small items otherwise filled the sockets
 * with 24 bytes an item, and a producer waited on a full socket more
 * often than on its consumer's credit. */
static int send_arith(edge_out_t *o, out_peer_t *p, const piece_t *pc)
{
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, WIRE_HEAD + WIRE_ARITH_BODY) != 0)
        return MPX_ENOMEM;
    uint8_t *d = zmq_msg_data(&msg);
    wire_head_put(d, &(wire_head_t){WIRE_DATA, WIRE_DATA_ARITH, (uint32_t)o->self, pc->k, o->gen});
    memcpy(d + WIRE_HEAD, &pc->run->v0, 8);
    memcpy(d + WIRE_HEAD + 8, &pc->run->step, 8);
    int rc = xport_send(o->sock, p->rid, EDGE_RID_SIZE, &msg);
    zmq_msg_close(&msg);
    return rc == 0 ? 0 : MPX_ESYS;
}

static int deliver(edge_out_t *o, int d, const piece_t *pc)
{
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF) {
        out_peer_t *p = leaf_peer(o, dn);
        if (p->closed || p->off)
            return 0;
        bool kept = o->keep_all || p->retain || msg_pooled(pc->msg);
        int rc = pc->run->arith ? send_arith(o, p, pc)
                 : pc->packed   ? send_to(o, p, pc->packed)
                                : send_to(o, p, pc->msg);
        if (rc < 0)
            return rc;
        p->sent_items += pc->k;
        p->sent_bytes += pc->weight;
        if (kept) {
            rc = keep(o, p, pc->msg, pc->seq, pc->k, d);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (dn->kind == DN_ALL || pc->run->all) {
        for (int i = 0; i < dn->count; i++) {
            int rc = deliver(o, o->plan->kids[dn->first + i], pc);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    /* A choice: of the branches that can take it, the one with the most
     * credit left, which is the one that asked for the most work. */
    int best = -1;
    uint64_t best_room = 0;
    for (int i = 0; i < dn->count; i++) {
        int c = o->plan->kids[dn->first + i];
        if (dn_closed(o, c) || tree_fit(o, c, pc->run) < pc->k)
            continue;
        uint64_t room = tree_room(o, c);
        if (best < 0 || room > best_room) {
            best = c;
            best_room = room;
        }
    }
    return best < 0 ? 0 : deliver(o, best, pc);
}

static void fit_batches(const edge_out_t *o);
static int send_eos(edge_out_t *o, out_peer_t *p);
static int send_notices(edge_out_t *o, int k);
static void fit_batch(const edge_out_t *o, out_port_t *pt);

/* How long credit read to the end counts as known (send_run).  Longer
 * than a burst of puts between two waits of the parent (tens of
 * microseconds), far shorter than a consumer takes to use half its
 * target (milliseconds). */
#define FRESH_TICKS TICKS_US(100)

/* Read every credit message waiting; returns how many were read. */
static int read_credit(edge_out_t *o)
{
    int n = 0;
    bool closed = false;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    for (;;) {
        uint8_t rid[XPORT_RID_MAX];
        size_t rid_len;
        if (xport_recv(o->sock, rid, &rid_len, &msg) != 0) {
            if (errno == EAGAIN)
                o->read_at = ticks_now(); /* read to the end */
            break;
        }
        /* Anything else is not from a consumer of ours: ignore it. */
        size_t len = zmq_msg_size(&msg);
        const uint8_t *buf = zmq_msg_data(&msg);
        wire_head_t h;
        if (len != EDGE_CREDIT_SIZE || wire_head_get(buf, len, &h) != 0 ||
            h.type != WIRE_CREDIT || h.sender > (uint32_t)o->plan->ninst || o->slot[h.sender] < 0)
            continue;
        out_peer_t *p = &o->peers[o->slot[h.sender]];
        wire_credit_t c;
        memcpy(&c, buf + WIRE_HEAD, sizeof c);
        /* From a consumer since replaced, or about the stream of a process
         * of ours that died: not about our stream to it. */
        if (h.gen != p->gen || c.prod_gen != o->gen)
            continue;
        /* Counts are cumulative: one arriving late changes nothing. */
        p->heard = true;
        if (c.items > p->grant_items) {
            p->step = c.items - p->grant_items;
            p->grant_items = c.items;
        }
        if (c.bytes > p->grant_bytes)
            p->grant_bytes = c.bytes;
        if (c.confirmed > p->confirmed && c.confirmed <= p->sent_items) {
            p->confirmed = c.confirmed;
            if (p->kcount)
                release_kept(o, p);
        }
        if ((h.flags & WIRE_CREDIT_CLOSED) && !p->closed)
            closed = p->closed = true;
        if ((h.flags & WIRE_CREDIT_LEAVE) && !p->off) {
            /* It leaves its group: nothing more goes to it but our end
             * of stream, at once, behind what it was sent: once it is
             * off, no choice, mark or notice sends it anything (edge.h,
             * Elastic groups; model: the producer's LEAVE step). */
            closed = p->off = true;
            p->join_due = false;
            if (!p->ended && send_eos(o, p) != 0)
                p->eos_due = true;
        }
        if (h.flags & WIRE_CREDIT_ENDED)
            p->end_seen = true;
        n++;
    }
    zmq_msg_close(&msg);
    if (closed)
        update_closed(o);
    if (n)
        fit_batches(o);
    return n;
}

static void free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* The port's whole batch as one message: copied when small, handed to
 * zmq as it is when large (the port then starts a new buffer). */
static int batch_message(out_port_t *pt, zmq_msg_t *msg)
{
    if (pt->len <= COPY_MAX) {
        if (zmq_msg_init_size(msg, pt->len) != 0)
            return MPX_ENOMEM;
        memcpy(zmq_msg_data(msg), pt->buf, pt->len);
        return 0;
    }
    if (zmq_msg_init_data(msg, pt->buf, pt->len, free_buf, NULL) != 0)
        return MPX_ENOMEM;
    pt->buf = NULL;
    pt->last_cap = pt->cap;
    pt->cap = 0;
    return 0;
}

/* Send run r through tree `root`: as one message when credit allows, else
 * in pieces, each as large as the credit then allows, waiting for credit
 * between them.  The message for the whole run, when it fits at once, is
 * `whole` (holding a header and exactly these records), or the batch of
 * port `pt`; a piece is copied.  Every message gets a new number, or all
 * get `seq` (a message sent again keeps its number).  (model: piece, FIT,
 * PICK and the inrun steps in edge.pml's Producer) */
static int send_run(edge_out_t *o, int root, run_t *r, zmq_msg_t *whole, out_port_t *pt,
                    uint64_t seq)
{
    o->sending = true;
    int rc = 0;
    /* Credit was read since the last wait, or only just now: a send short
     * of credit goes straight to the wait.  Nothing is slept through: a
     * wait asks the socket before it sleeps (edge_poll), and so does the
     * parent, whose wait declines, before it sleeps.  The parent feeding
     * the graph otherwise read the credit at every put short of room and
     * at every look before a wait, about ten times between two waits:
     * half of its system calls at 40 us items. */
    bool fresh = ticks_now() - o->read_at < FRESH_TICKS;
    bool first = true;
    /* A batch of int64 without meta goes in a short form (deliver): as
     * the run itself when the values are in arithmetic progression, else
     * as the packed values.  The records are made into a message only
     * when some consumer keeps what it is sent (to send again, marked, if
     * it dies): what is kept need not be what went. */
    bool keeps = o->keep_all;
    for (int i = 0; !keeps && i < o->npeers; i++)
        keeps = o->peers[i].retain;
    r->i64 = !r->arith && pt && !r->pooled && !r->all && wire_recs_i64(r->recs, r->n);
    bool records = keeps || !(r->arith || r->i64);
    while (r->n > 0) {
        uint32_t k = tree_fit(o, root, r);
        if (k > 1) {
            uint32_t share = tree_share(o, root, r);
            k = share < k ? share : k;
        }
        if (k == 0) {
            /* Reading an empty zmq socket costs system calls: credit is
             * read only when it is short. */
            if (!fresh) {
                read_credit(o);
                fresh = true;
                continue;
            }
            rc = o->wait(o->owner, o->sock, ZMQ_POLLIN);
            if (rc < 0)
                break;
            fresh = false;
            continue;
        }
        piece_t pc = {r, NULL, NULL, k, prefix_bytes(r, k), seq ? seq : ++o->seq, 0};
        pc.weight = r->pooled ? prefix_weight(r, k) : pc.bytes;
        zmq_msg_t msg, packed;
        zmq_msg_init(&packed);
        if (!records) {
            zmq_msg_init(&msg);
        } else if (k == r->n && first && (whole || pt)) {
            zmq_msg_init(&msg);
            rc = whole ? zmq_msg_move(&msg, whole) : batch_message(pt, &msg);
        } else {
            rc = zmq_msg_init_size(&msg, WIRE_HEAD + pc.bytes);
            if (rc == 0) {
                uint8_t *d = zmq_msg_data(&msg);
                wire_head_put(d, &(wire_head_t){WIRE_DATA, r->pooled ? WIRE_DATA_POOL : 0,
                                                (uint32_t)o->self, k, o->gen});
                memcpy(d + WIRE_HEAD, r->recs, pc.bytes);
            }
        }
        if (rc == 0 && r->i64) {
            zmq_msg_close(&packed);
            if (zmq_msg_init_size(&packed, WIRE_HEAD + (size_t)k * 8) != 0) {
                zmq_msg_init(&packed);
                rc = MPX_ENOMEM;
            } else {
                uint8_t *d = zmq_msg_data(&packed);
                wire_head_put(d, &(wire_head_t){WIRE_DATA, WIRE_DATA_I64, (uint32_t)o->self, k,
                                                o->gen});
                const uint8_t *rec = r->recs + WIRE_SHORT_HEAD;
                for (uint32_t i = 0; i < k; i++, rec += WIRE_ARITH_WEIGHT)
                    memcpy(d + WIRE_HEAD + 8 * (size_t)i, rec, 8);
                pc.packed = &packed;
            }
        }
        if (rc != 0) {
            zmq_msg_close(&msg);
            zmq_msg_close(&packed);
            rc = MPX_ENOMEM;
            break;
        }
        pc.msg = &msg;
        rc = deliver(o, root, &pc);
        /* A batch put here: the put's holds end once its consumers have
         * theirs (whether or not it went: what did not is lost, and the
         * stage fails). */
        if (pt && r->pooled)
            (void)msg_pool(o, &msg, self_holder(o), false);
        zmq_msg_close(&msg);
        zmq_msg_close(&packed);
        /* When it left, not when we began to wait for the credit. */
        o->sent_at = ticks_now();
        if (rc < 0)
            break;
        r->recs += pc.bytes;
        r->len -= pc.bytes;
        r->weight -= pc.weight;
        r->n -= k;
        r->v0 += (uint64_t)k * r->step;
        first = false;
    }
    o->sending = false;
    /* What was not sent is gone (the caller drops the batch): that is
     * remembered, so that no checkpoint confirms the inputs it came from
     * and the stage fails, even if nothing it puts later fails.  A wait
     * the owner declined (MPX_EAGAIN) loses nothing: the caller keeps the
     * rest of the run. */
    if (rc < 0 && rc != MPX_ESTOPPED && rc != MPX_EAGAIN && !o->lost)
        o->lost = rc;
    return rc;
}

static int flush_port(edge_out_t *o, out_port_t *pt)
{
    if (o->nredo && !o->sending) {
        int rc = edge_out_recover(o);
        if (rc < 0)
            return rc;
    }
    if (pt->count == 0)
        return 0;
    if (pt->root < 0 || pt->closed) {
        /* Discarded: nobody will read it, and the put's holds end. */
        bool closed = pt->closed;
        if (pt->pooled) {
            pool_op_t op = {o, self_holder(o), false, 0};
            wire_pool_refs(pt->buf + WIRE_HEAD, pt->len - WIRE_HEAD, pt->count, pool_op_one, &op);
        }
        pt->count = 0;
        pt->arith_n = 0;
        pt->len = WIRE_HEAD;
        pt->pooled = false;
        pt->extra = 0;
        return closed ? MPX_ESTOPPED : 0;
    }
    wire_head_put(pt->buf, &(wire_head_t){WIRE_DATA, pt->pooled ? WIRE_DATA_POOL : 0,
                                          (uint32_t)o->self, pt->count, o->gen});
    run_t r = {pt->buf + WIRE_HEAD, pt->len - WIRE_HEAD, pt->count, false, pt->pooled,
               pt->len - WIRE_HEAD + pt->extra, false, 0, 0, false};
    if (pt->arith_n == pt->count && !pt->pooled) {
        r.arith = true;
        r.v0 = pt->arith_v0;
        r.step = pt->arith_step;
    }
    int rc = send_run(o, pt->root, &r, NULL, pt, 0);
    if (rc == MPX_EAGAIN) {
        /* The owner would not wait for credit (the program's input, which
         * must never block on output only the program can take): what
         * did not go stays in the batch, to go when credit comes. */
        memmove(pt->buf + WIRE_HEAD, r.recs, r.len);
        pt->len = WIRE_HEAD + r.len;
        pt->count = r.n;
        pt->arith_n = 0; /* what is left goes as records */
        pt->extra = r.weight - r.len;
        /* Due at once: it waits for credit, not to fill up. */
        uint64_t now = ticks_now();
        pt->first_at = now > pt->hold ? now - pt->hold : 1;
        fit_batch(o, pt);
        return rc;
    }
    pt->count = 0;
    pt->arith_n = 0;
    pt->len = WIRE_HEAD;
    pt->pooled = false;
    pt->extra = 0;
    fit_batch(o, pt);
    if (rc < 0)
        return rc;
    return pt->closed ? MPX_ESTOPPED : 0;
}

/* The smallest windows among the consumers of tree d. */
static void min_windows(const edge_out_t *o, int d, uint64_t *items, uint64_t *bytes)
{
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF) {
        uint64_t wi = plan_window_items(o->plan, dn->target);
        uint64_t wb = plan_window_bytes(o->plan, dn->target);
        *items = wi < *items ? wi : *items;
        *bytes = wb < *bytes ? wb : *bytes;
        return;
    }
    for (int i = 0; i < dn->count; i++)
        min_windows(o, o->plan->kids[dn->first + i], items, bytes);
}

/* Whether every consumer of tree d is the program. */
static bool to_program(const edge_out_t *o, int d)
{
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF)
        return dn->target == plan_sink(o->plan);
    for (int i = 0; i < dn->count; i++)
        if (!to_program(o, o->plan->kids[dn->first + i]))
            return false;
    return true;
}

/* A batch holds at most a quarter of the smallest window behind it, and
 * waits for more records DEFER_TICKS, or PROGRAM_HOLD_TICKS when it leads
 * only to the program from a stage with input (edge_out_inline.h): a
 * source has no wait for input that would send what it holds. */
static void size_port(edge_out_t *o, out_port_t *pt)
{
    bool input = o->plan->inst[o->self].nproducers > 0;
    bool program = input && pt->root >= 0 && to_program(o, pt->root);
    uint64_t items = (program ? PROGRAM_BATCH_ITEMS_MAX : BATCH_ITEMS_MAX) * 4,
             bytes = BATCH_BYTES_MAX * 4;
    if (pt->root >= 0)
        min_windows(o, pt->root, &items, &bytes);
    pt->batch_max = pt->batch_items = items / 4 ? items / 4 : 1;
    pt->batch_bytes = bytes / 4 ? bytes / 4 : 1;
    pt->hold = program ? PROGRAM_HOLD_TICKS : DEFER_TICKS;
}

/* Batches are sent at the size the credit allows now (out_port_t). */
static void fit_batch(const edge_out_t *o, out_port_t *pt)
{
    if (pt->root < 0)
        return;
    uint64_t room = tree_room(o, pt->root), step = tree_step(o, pt->root);
    room = room > step ? room : step;
    pt->batch_items = room < 1 ? 1 : room < pt->batch_max ? room : pt->batch_max;
}

static void fit_batches(const edge_out_t *o)
{
    for (int i = 0; i < o->nports; i++)
        fit_batch(o, &o->ports[i]);
}

static int init_port(edge_out_t *o, out_port_t *pt, const char *name, int root)
{
    pt->name = name;
    pt->root = root;
    pt->cap = 16384;
    pt->buf = malloc(pt->cap);
    if (!pt->buf)
        return MPX_ENOMEM;
    pt->len = WIRE_HEAD;
    size_port(o, pt);
    return 0;
}

/* Parents of the dispatch nodes of tree d, for choosing where what a dead
 * consumer held goes again. */
static void note_parents(const plan_t *plan, int d, int *parent)
{
    const plan_dnode_t *dn = &plan->dn[d];
    for (int i = 0; dn->kind != DN_LEAF && i < dn->count; i++) {
        int c = plan->kids[dn->first + i];
        parent[c] = d;
        note_parents(plan, c, parent);
    }
}

/* A consumer's credit as it stands before it has said anything, in its
 * generation `gen`: both ends start from the same figures. */
static void fresh_peer(edge_out_t *o, out_peer_t *p, uint32_t gen)
{
    p->gen = gen;
    edge_rid(p->rid, p->id, gen);
    p->sent_items = p->sent_bytes = p->confirmed = 0;
    p->grant_items = edge_start_items(o->plan, p->id);
    p->grant_bytes = plan_window_bytes(o->plan, p->id);
    p->closed = p->heard = false;
    p->off = p->join_due = p->ended = p->end_seen = false;
    p->step = 0;
}

edge_out_t *edge_out_new(const plan_t *plan, int self, uint32_t gen,
                         const uint32_t *peer_gens, const char *dir, edge_wait_fn wait, void *owner,
                         char *err, size_t errcap)
{
    const plan_inst_t *pi = &plan->inst[self];
    edge_out_t *o = calloc(1, sizeof *o);
    if (!o)
        goto oom;
    o->plan = plan;
    o->self = self;
    o->gen = gen;
    o->dir = dir;
    o->wait = wait;
    o->owner = owner;
    o->slot = edge_slot_map(plan);
    o->peers = calloc((size_t)(pi->nconsumers ? pi->nconsumers : 1), sizeof *o->peers);
    o->ports = calloc((size_t)pi->nxouts + 1, sizeof *o->ports);
    o->dn_parent = malloc((size_t)plan->ndn * sizeof *o->dn_parent);
    o->mark_next = calloc((size_t)plan->ninst + 1, sizeof *o->mark_next);
    if (!o->slot || !o->peers || !o->ports || !o->dn_parent || !o->mark_next)
        goto oom;
    for (int d = 0; d < plan->ndn; d++)
        o->dn_parent[d] = -1;
    if (pi->out >= 0)
        note_parents(plan, pi->out, o->dn_parent);
    for (int x = 0; x < pi->nxouts; x++)
        note_parents(plan, pi->xouts[x].root, o->dn_parent);
    o->sock = edge_open_outbox(self, gen, err, errcap);
    if (!o->sock)
        goto fail;
    for (int k = 0; k < pi->nconsumers; k++) {
        out_peer_t *p = &o->peers[k];
        p->id = pi->consumers[k];
        p->retain = p->id < plan->ninst && plan->inst[p->id].recoverable;
        o->slot[p->id] = k;
        uint32_t g = peer_gens && p->id < plan->ninst ? peer_gens[p->id] : 0;
        fresh_peer(o, p, g & ~EDGE_GEN_FLAGS);
        o->npeers++;
        /* An elastic group's slot without a process: no connection until
         * it joins (edge_out_join).  One that is leaving: only our end of
         * stream (edge_out_recover sends it, at our start), and no word
         * that it took it awaited (edge_out_ends_seen): a leaver whose
         * input had ended already takes nothing more, and would never
         * answer, so that we, leaving too, would wait for ever. */
        p->off = (g & EDGE_GEN_FLAGS) != 0;
        p->eos_due = p->end_seen = (g & EDGE_GEN_LEAVING) != 0;
        if (!(g & EDGE_GEN_OFF) && edge_connect(o->sock, dir, p->id, p->gen, true) != 0) {
            snprintf(err, errcap, "connect to consumer %d: %s", p->id, zmq_strerror(errno));
            goto fail;
        }
    }
    o->nports = pi->nxouts + 1;
    if (init_port(o, &o->ports[0], NULL, pi->out) != 0)
        goto oom;
    for (int x = 0; x < pi->nxouts; x++)
        if (init_port(o, &o->ports[x + 1], pi->xouts[x].name, pi->xouts[x].root) != 0)
            goto oom;
    return o;
oom:
    snprintf(err, errcap, "out of memory");
fail:
    edge_out_destroy(&o);
    return NULL;
}

void edge_out_destroy(edge_out_t **op)
{
    edge_out_t *o = op ? *op : NULL;
    if (!o)
        return;
    for (int k = 0; k < o->npeers; k++)
        free_kept(o, &o->peers[k]);
    for (size_t i = 0; i < o->nredo; i++) {
        (void)msg_pool(o, &o->redo[i].msg, self_holder(o), false);
        zmq_msg_close(&o->redo[i].msg);
    }
    free(o->redo);
    free(o->dn_parent);
    free(o->mark_next);
    xport_destroy(&o->sock);
    for (int i = 0; o->ports && i < o->nports; i++)
        free(o->ports[i].buf);
    free(o->ports);
    free(o->peers);
    free(o->slot);
    free(o);
    *op = NULL;
}

int edge_out_port(const edge_out_t *o, const char *name)
{
    for (int i = 1; name && i < o->nports; i++)
        if (strcmp(o->ports[i].name, name) == 0)
            return i;
    return -1;
}

uint8_t *edge_out_reserve_slow(edge_out_t *o, int port, size_t size, int *rc)
{
    out_port_t *pt = &o->ports[port];
    *rc = 0;
    if (pt->closed) {
        *rc = MPX_ESTOPPED;
        return NULL;
    }
    if (pt->count > 0 && pt->len - WIRE_HEAD + pt->extra + size > pt->batch_bytes) {
        *rc = flush_port(o, pt);
        if (*rc < 0)
            return NULL;
    }
    if (pt->len + size > pt->cap) {
        /* A new buffer after one handed to a message starts as large as
         * that one: the next batch is likely as large, and growing to it
         * again copied the batch at every doubling (16 KiB of 24 for
         * batches of small items: callgrind, a 2-worker map).  Not after
         * a large item's batch: each message queued for a slow consumer
         * would hold that much. */
        size_t cap = pt->cap ? pt->cap : 16384;
        if (!pt->cap && pt->last_cap > cap && pt->last_cap <= 2 * BATCH_BYTES_MAX)
            cap = pt->last_cap;
        while (cap < pt->len + size)
            cap *= 2;
        uint8_t *b = realloc(pt->buf, cap);
        if (!b) {
            *rc = MPX_ENOMEM;
            return NULL;
        }
        pt->buf = b;
        pt->cap = cap;
    }
    return pt->buf + pt->len;
}

int edge_out_commit_slow(edge_out_t *o, int port)
{
    out_port_t *pt = &o->ports[port];
    if (pt->count >= pt->batch_items || pt->len - WIRE_HEAD + pt->extra >= pt->batch_bytes)
        return flush_port(o, pt);
    if (pt->count == 1) {
        pt->first_at = o->now ? o->now : ticks_now();
        /* A producer that was quiet is probably sporadic: latency first.
         * (The caller's time may be older than the last send.) */
        return pt->first_at > o->sent_at && pt->first_at - o->sent_at >= QUIET_TICKS
                   ? flush_port(o, pt)
                   : 0;
    }
    /* Without the caller's time (puts in setup), the clock is read on
     * every fourth put only: it costs more than the rest of a put. */
    uint64_t now = o->now;
    if (!now) {
        if (pt->count & 3)
            return 0;
        now = ticks_now();
    }
    return now - pt->first_at >= pt->hold ? flush_port(o, pt) : 0;
}

int edge_out_forward(edge_out_t *o, int port, zmq_msg_t *msg)
{
    out_port_t *pt = &o->ports[port];
    if (pt->closed)
        return MPX_ESTOPPED;
    int rc = flush_port(o, pt);
    if (rc < 0)
        return rc;
    o->items += port == 0;
    if (pt->root < 0)
        return 0;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_copy(&m, msg) != 0)
        return MPX_ENOMEM;
    /* The message becomes ours: our header, and the record's flags as a
     * put would write them (a record sent again to us is new to our
     * consumers). */
    uint8_t *d = zmq_msg_data(&m);
    size_t len = zmq_msg_size(&m);
    bool is_short = wire_rec_is_short(d + WIRE_HEAD);
    uint32_t flags = wire_rec_flags(d + WIRE_HEAD);
    flags &= WIRE_REC_POOL; /* the parts stay where they are; no longer a redo */
    bool pooled = flags != 0;
    wire_head_put(d, &(wire_head_t){WIRE_DATA, pooled ? WIRE_DATA_POOL : 0, (uint32_t)o->self, 1,
                                    o->gen});
    if (!is_short)
        memcpy(d + WIRE_HEAD + 12, &flags, 4);
    run_t r = {d + WIRE_HEAD, len - WIRE_HEAD, 1, false, pooled,
               wire_weight(d + WIRE_HEAD, len - WIRE_HEAD, 1), false, 0, 0, false};
    rc = send_run(o, pt->root, &r, &m, NULL, 0);
    zmq_msg_close(&m);
    if (rc < 0)
        return rc;
    return pt->closed ? MPX_ESTOPPED : 0;
}

int edge_out_tick(edge_out_t *o, uint64_t now)
{
    /* What a consumer's socket did not take at the send goes on now, if
     * it has read since: nothing else writes it while we process. */
    if (xport_queued(o->sock))
        (void)xport_flush(o->sock);
    for (int i = 0; i < o->nports; i++) {
        out_port_t *pt = &o->ports[i];
        if (pt->count == 0 || now - pt->first_at < pt->hold)
            continue;
        int rc = flush_port(o, pt);
        if (rc < 0 && !(rc == MPX_ESTOPPED && i > 0))
            return rc;
    }
    return 0;
}

int edge_out_flush(edge_out_t *o)
{
    int result = 0;
    for (int i = 0; i < o->nports; i++) {
        int rc = flush_port(o, &o->ports[i]);
        /* A stopped side graph does not stop the stage. */
        if (rc < 0 && !(rc == MPX_ESTOPPED && i > 0) && result == 0)
            result = rc;
    }
    return result == 0 ? o->lost : result;
}

int edge_out_lost(const edge_out_t *o) { return o->lost; }

int edge_out_mark(edge_out_t *o, uint32_t origin, uint64_t value, uint64_t index)
{
    out_port_t *pt = &o->ports[0];
    int rc = flush_port(o, pt);
    if (rc < 0)
        return rc;
    if (origin > (uint32_t)o->plan->ninst)
        return MPX_EINVAL;
    if (index == EDGE_MARK_NEXT)
        index = o->mark_next[origin];
    /* Numbered once it is ours to send: a notice from now on says that
     * marks before this one will not come from us. */
    if (index + 1 > o->mark_next[origin])
        o->mark_next[origin] = index + 1;
    if (pt->root < 0)
        return 0;
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, WIRE_HEAD + WIRE_MARK_SIZE) != 0)
        return MPX_ENOMEM;
    uint8_t *p = zmq_msg_data(&msg);
    wire_head_put(p, &(wire_head_t){WIRE_DATA, 0, (uint32_t)o->self, 1, o->gen});
    wire_mark_put(p + WIRE_HEAD, origin, value, index);
    run_t r = {p + WIRE_HEAD, WIRE_MARK_SIZE, 1, true, false, WIRE_MARK_SIZE, false, 0, 0, false};
    rc = send_run(o, pt->root, &r, &msg, NULL, 0);
    zmq_msg_close(&msg);
    return rc;
}

static int send_eos(edge_out_t *o, out_peer_t *p)
{
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, WIRE_HEAD) != 0)
        return MPX_ENOMEM;
    wire_head_put(zmq_msg_data(&msg), &(wire_head_t){WIRE_EOS, 0, (uint32_t)o->self, 0, o->gen});
    int rc = send_to(o, p, &msg);
    zmq_msg_close(&msg);
    p->eos_due = false;
    p->ended = rc == 0;
    return rc;
}

int edge_out_eos(edge_out_t *o)
{
    int rc = edge_out_flush(o);
    if (rc < 0 && rc != MPX_ESTOPPED)
        return rc;
    /* What a replaced consumer held goes out before our end of stream:
     * after it, a sibling it went to may have ended already, and would
     * never take it.  Restarts heard while this waits for credit add to
     * the list; none can come between its end and the ends below.
     * (model: stage ENDING in edge.pml; BROKEN_EOS_FIRST, the other
     * order, fails its check) */
    while (o->nredo > 0 && !o->recovering && !o->sending) {
        rc = edge_out_recover(o);
        if (rc < 0 && rc != MPX_ESTOPPED)
            return rc;
    }
    /* A consumer that joined while this waited (its JOIN heard inside the
     * flush's wait for credit) is owed its notices, and they go before
     * any end: a sibling that took our end first could end before it
     * passed the notice on, its consumers would not wait for the joiner,
     * and the joiner's gate would wait for ever for a notice or an end
     * from us.  Once told, the joiner gets its end below like any other.
     * (model: x_notices and NOT_OWED in elastic.pml; BROKEN_EOS_OWED, the
     * end sent while they are owed, fails its check) */
    for (int k = 0; k < o->npeers; k++)
        if (o->peers[k].join_due && (rc = send_notices(o, k)) < 0)
            return rc;
    for (int k = 0; k < o->npeers; k++) {
        out_peer_t *p = &o->peers[k];
        /* A slot without a process gets none (it gets one when it joins,
         * edge_out_join); one that left already has its own. */
        if (p->ended || (p->off && !p->eos_due))
            continue;
        rc = send_eos(o, p);
        if (rc < 0)
            return rc;
    }
    o->eos_sent = true;
    return 0;
}

void edge_out_poll(edge_out_t *o) { read_credit(o); }

void edge_out_discard(edge_out_t *o)
{
    for (int i = 0; i < o->nports; i++) {
        out_port_t *pt = &o->ports[i];
        if (pt->pooled && pt->count) {
            pool_op_t op = {o, self_holder(o), false, 0};
            wire_pool_refs(pt->buf + WIRE_HEAD, pt->len - WIRE_HEAD, pt->count, pool_op_one, &op);
        }
        pt->count = 0;
        pt->arith_n = 0;
        pt->len = WIRE_HEAD;
        pt->pooled = false;
        pt->extra = 0;
    }
}

bool edge_out_room(const edge_out_t *o, int port, size_t size)
{
    const out_port_t *pt = &o->ports[port];
    return pt->count == 0 || (pt->count < pt->batch_items &&
                              pt->len - WIRE_HEAD + pt->extra + size <= pt->batch_bytes);
}

bool edge_out_can_send(const edge_out_t *o, int port)
{
    const out_port_t *pt = &o->ports[port];
    if (pt->count == 0 || pt->root < 0)
        return false;
    uint32_t size = wire_rec_size(pt->buf + WIRE_HEAD);
    const run_t first = {pt->buf + WIRE_HEAD, size, 1, false, pt->pooled,
                         pt->pooled ? wire_weight(pt->buf + WIRE_HEAD, size, 1) : size, false, 0, 0, false};
    return tree_fit(o, pt->root, &first) > 0;
}

bool edge_out_pending(const edge_out_t *o)
{
    for (int i = 0; i < o->nports; i++)
        if (o->ports[i].count)
            return true;
    return edge_out_recover_due(o);
}

uint64_t edge_out_batch_since(const edge_out_t *o)
{
    const out_port_t *pt = &o->ports[0];
    return pt->count ? (pt->first_at ? pt->first_at : 1) : 0;
}

bool edge_out_keeps_pooled(const edge_out_t *o) { return o->kept_pooled > 0; }

uint64_t edge_out_items(const edge_out_t *o) { return o->items; }
int edge_out_peers(const edge_out_t *o) { return o->npeers; }

void edge_out_peer(const edge_out_t *o, int k, int *consumer, uint64_t *sent)
{
    *consumer = o->peers[k].id;
    *sent = o->peers[k].sent_items;
}

/* ---- recovery (edge.h) -------------------------------------------------- */

void *edge_out_socket(edge_out_t *o) { return o->sock; }

bool edge_out_unwritten(const edge_out_t *o)
{
    return o->sock && xport_unwritten(o->sock);
}
void edge_out_keep_all(edge_out_t *o) { o->keep_all = true; }
uint64_t edge_out_seq(const edge_out_t *o) { return o->seq; }
uint64_t edge_out_resent(const edge_out_t *o) { return o->resent; }

void edge_out_mirror_resent(edge_out_t *o, volatile uint64_t *to) { o->resent_mirror = to; }
bool edge_out_recover_due(const edge_out_t *o)
{
    if (o->nredo)
        return true;
    for (int k = 0; k < o->npeers; k++)
        if (o->peers[k].eos_due || o->peers[k].join_due)
            return true;
    return false;
}

uint64_t edge_out_settled(const edge_out_t *o)
{
    uint64_t low = o->seq + 1;
    for (int k = 0; k < o->npeers; k++) {
        const out_peer_t *p = &o->peers[k];
        size_t n = p->unsorted ? p->kcount : p->kcount ? 1 : 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t s = kept_at(p, i)->seq;
            low = s < low ? s : low;
        }
    }
    for (size_t i = 0; i < o->nredo; i++)
        low = o->redo[i].seq < low ? o->redo[i].seq : low;
    return low - 1;
}

/* Where what a dead consumer held goes again: up through parallel
 * choices, so that its siblings may take it; never across a broadcast,
 * whose other branches had their copy.  After our end of stream only the
 * replacement may still receive. */
static int redo_target(const edge_out_t *o, int leaf)
{
    int d = leaf;
    if (o->eos_sent)
        return d;
    while (o->dn_parent[d] >= 0 && o->plan->dn[o->dn_parent[d]].kind == DN_ONE)
        d = o->dn_parent[d];
    return d;
}

static int64_t meta_i64_or(const meta_cur_t *m, const char *key, int64_t dflt)
{
    size_t len;
    const void *v = meta_cur_get(m, key, &len);
    int64_t x = dflt;
    if (v && len == 8)
        memcpy(&x, v, 8);
    return x;
}

/* Rebuild the records of a kept message from index `skip` on, each
 * flagged WIRE_REC_REDO and counted in its meta; record `hand` (or -1)
 * was in the dead consumer's hands and failed with `why`.  Marks are not
 * sent again.  *k is 0 when nothing is left to send. */
static int rebuild(edge_out_t *o, zmq_msg_t *kept, uint64_t skip, int64_t hand, const char *why,
                   size_t whylen, zmq_msg_t *out, uint32_t *k)
{
    *k = 0;
    size_t len = zmq_msg_size(kept);
    uint8_t *src = malloc(len ? len : 1); /* an aligned copy to decode from */
    size_t cap = len + 256, used = WIRE_HEAD;
    uint8_t *buf = malloc(cap);
    mpx_part_t *parts = NULL;
    size_t parts_cap = 0;
    meta_cur_t m = {0};
    int rc = MPX_ENOMEM;
    bool any_pooled = false;
    wire_head_t h;
    if (!src || !buf)
        goto done;
    memcpy(src, zmq_msg_data(kept), len);
    rc = MPX_EPROTO;
    if (wire_head_get(src, len, &h) != 0)
        goto done;
    const uint8_t *cur = src + WIRE_HEAD;
    for (uint32_t i = 0; i < h.count; i++) {
        uint32_t size;
        uint16_t nparts;
        if (wire_rec_peek(cur, (size_t)(src + len - cur), &size, &nparts) != 0)
            goto done;
        const uint8_t *rec = cur;
        cur += size;
        uint32_t flags = wire_rec_flags(rec);
        if (i < skip)
            continue;
        if (flags & WIRE_REC_MARK) {
            o->marks_lost++;
            continue;
        }
        if (flags == WIRE_REC_NOTICE) {
            /* A notice goes again as it was: where it arrives twice, the
             * second changes nothing (edge_in.c, apply_notice). */
            if (used + size > cap) {
                cap = 2 * (used + size);
                uint8_t *nb = realloc(buf, cap);
                if (!nb) {
                    rc = MPX_ENOMEM;
                    goto done;
                }
                buf = nb;
            }
            memcpy(buf + used, rec, size);
            used += size;
            (*k)++;
            continue;
        }
        if (nparts > parts_cap) {
            mpx_part_t *np = realloc(parts, nparts * sizeof *np);
            if (!np) {
                rc = MPX_ENOMEM;
                goto done;
            }
            parts = np;
            parts_cap = nparts;
        }
        mpx_item_t it;
        pool_holder_t me = self_holder(o);
        if ((flags & WIRE_REC_POOL
                 ? wire_rec_decode_pool(rec, size, &it, parts, o->plan->pool, &me)
                 : wire_rec_decode_full(rec, size, &it, parts)) != 0)
            goto done;
        meta_cur_reset(&m, it.meta, it.meta_size, it.nmeta);
        int64_t times = meta_i64_or(&m, "mpx.redelivered", 0) + 1;
        rc = meta_cur_set(&m, "mpx.redelivered", &times, 8);
        if (rc == 0 && (int64_t)i == hand) {
            int64_t failures = meta_i64_or(&m, "mpx.failures", 0) + 1;
            rc = meta_cur_set(&m, "mpx.failures", &failures, 8);
            if (rc == 0)
                rc = meta_cur_set(&m, "mpx.error", why, whylen);
        }
        if (rc != 0)
            goto done;
        size_t meta_size = meta_cur_size(&m);
        size_t rsize = WIRE_REC_HEAD + meta_size;
        bool rec_pooled = (flags & WIRE_REC_POOL) != 0;
        for (uint16_t j = 0; j < it.nparts; j++)
            rsize += rec_pooled && pool_block_at(o->plan->pool, parts[j].data) != POOL_NONE
                         ? WIRE_POOLED_PART_SIZE
                         : wire_part_size(parts[j].size);
        rc = MPX_ERANGE;
        if (rsize > UINT32_MAX)
            goto done;
        if (used + rsize > cap) {
            cap = 2 * (used + rsize);
            uint8_t *nb = realloc(buf, cap);
            rc = MPX_ENOMEM;
            if (!nb)
                goto done;
            buf = nb;
        }
        uint8_t *p = wire_rec_head_put(buf + used, rsize, it.nparts, meta_cur_n(&m), meta_size);
        uint32_t redo = WIRE_REC_REDO | (rec_pooled ? WIRE_REC_POOL : 0);
        any_pooled |= rec_pooled;
        memcpy(buf + used + 12, &redo, 4);
        meta_cur_encode(&m, p);
        p += meta_size;
        for (uint16_t j = 0; j < it.nparts; j++) {
            uint32_t blk = rec_pooled ? pool_block_at(o->plan->pool, parts[j].data) : POOL_NONE;
            p = blk != POOL_NONE ? wire_part_put_pooled(p, blk, parts[j].size)
                                 : wire_part_put(p, parts[j].data, parts[j].size);
        }
        used += rsize;
        (*k)++;
    }
    rc = 0;
    if (*k == 0)
        goto done;
    wire_head_put(buf, &(wire_head_t){WIRE_DATA, any_pooled ? WIRE_DATA_POOL : 0,
                                      (uint32_t)o->self, *k, o->gen});
    if (zmq_msg_init_data(out, buf, used, free_buf, NULL) != 0) {
        rc = MPX_ENOMEM;
        *k = 0;
        goto done;
    }
    buf = NULL;
done:
    meta_cur_free(&m);
    free(parts);
    free(src);
    free(buf);
    return rc;
}

static int add_redo(edge_out_t *o, zmq_msg_t *msg, uint64_t seq, uint32_t k, int target)
{
    if (o->nredo == o->capredo) {
        size_t cap = o->capredo ? 2 * o->capredo : 16;
        redo_t *r = malloc(cap * sizeof *r);
        if (!r)
            return MPX_ENOMEM;
        for (size_t i = 0; i < o->nredo; i++) {
            r[i] = o->redo[i];
            zmq_msg_init(&r[i].msg);
            zmq_msg_move(&r[i].msg, &o->redo[i].msg);
        }
        free(o->redo);
        o->redo = r;
        o->capredo = cap;
    }
    int rc = msg_pool(o, msg, self_holder(o), true);
    if (rc != 0)
        return rc;
    redo_t *r = &o->redo[o->nredo++];
    zmq_msg_init(&r->msg);
    zmq_msg_move(&r->msg, msg);
    r->seq = seq;
    r->k = k;
    r->target = target;
    return 0;
}

/* (model: out_restart in edge.pml; edge_out_recover: the inrec steps) */
int edge_out_restart(edge_out_t *o, const wire_restart_t *r, const char *why, size_t whylen)
{
    if (r->consumer > (uint32_t)o->plan->ninst || o->slot[r->consumer] < 0)
        return 0;
    out_peer_t *p = &o->peers[o->slot[r->consumer]];
    if (r->gen <= p->gen)
        return 0; /* old news */
    int rc = 0;
    for (size_t i = 0; i < p->kcount; i++) {
        kept_t *e = kept_at(p, i);
        uint64_t start = e->end_items - e->k;
        uint64_t skip = p->confirmed > start ? p->confirmed - start : 0;
        int64_t hand = -1;
        if (r->has_hand && r->hand_gen == o->gen && r->hand_rec >= start &&
            r->hand_rec < e->end_items)
            hand = (int64_t)(r->hand_rec - start);
        zmq_msg_t m;
        uint32_t k = 0;
        int brc = rebuild(o, &e->msg, skip, hand, why, whylen, &m, &k);
        if (brc == 0 && k > 0) {
            brc = add_redo(o, &m, e->seq, k, redo_target(o, e->leaf));
            if (brc != 0)
                zmq_msg_close(&m);
        }
        if (brc != 0 && rc == 0)
            rc = brc;
    }
    free_kept(o, p);
    /* What the connection still queues for the dead process goes with it
     * (zmq drops a disconnected pipe's queue: linger is 0). */
    edge_connect(o->sock, o->dir, p->id, p->gen, false);
    fresh_peer(o, p, r->gen);
    if (edge_connect(o->sock, o->dir, p->id, p->gen, true) != 0)
        return MPX_ESYS;
    p->eos_due = o->eos_sent;
    update_closed(o);
    fit_batches(o);
    return rc;
}

/* A redo the owner would not wait for credit for: what is left of its
 * run goes back to the head of the list, under its number, and still
 * returns MPX_EAGAIN.  add_redo takes holds of the rest's blocks before
 * the caller drops the whole message's. */
static int redo_rest(edge_out_t *o, const redo_t *r, const run_t *run)
{
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, WIRE_HEAD + run->len) != 0)
        return MPX_ENOMEM;
    uint8_t *d = zmq_msg_data(&m);
    wire_head_put(d, &(wire_head_t){WIRE_DATA, run->pooled ? WIRE_DATA_POOL : 0,
                                    (uint32_t)o->self, run->n, o->gen});
    memcpy(d + WIRE_HEAD, run->recs, run->len);
    o->resent -= run->n; /* counted again when it goes */
    int rc = add_redo(o, &m, r->seq, run->n, r->target);
    if (rc != 0) {
        zmq_msg_close(&m);
        return rc;
    }
    /* add_redo appended it: it goes first, as it would have. */
    redo_t last = o->redo[o->nredo - 1];
    memmove(o->redo + 1, o->redo, (o->nredo - 1) * sizeof *o->redo);
    o->redo[0] = last;
    return MPX_EAGAIN;
}

/* ---- elastic groups (edge.h) ---------------------------------------------- */

/* One record's message straight to consumer p, without waiting for
 * credit (it overruns it by one record, which the consumer counts like
 * any: the next sends wait the longer), kept like any message that may
 * have to go again. */
static int send_record(edge_out_t *o, out_peer_t *p, const uint8_t *rec, uint32_t size, int leaf)
{
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, WIRE_HEAD + size) != 0)
        return MPX_ENOMEM;
    uint8_t *d = zmq_msg_data(&msg);
    wire_head_put(d, &(wire_head_t){WIRE_DATA, 0, (uint32_t)o->self, 1, o->gen});
    memcpy(d + WIRE_HEAD, rec, size);
    int rc = send_to(o, p, &msg);
    if (rc == 0) {
        p->sent_items++;
        p->sent_bytes += size;
        o->seq++;
        if (o->keep_all || p->retain)
            rc = keep(o, p, &msg, o->seq, 1, leaf);
    }
    zmq_msg_close(&msg);
    return rc;
}

/* The leaves of our dispatch trees that lead to consumer `id`. */
static int leaves_of(const edge_out_t *o, int d, int id, int *out, int n, int cap)
{
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF) {
        if (dn->target == id && n < cap)
            out[n++] = d;
        return n;
    }
    for (int i = 0; i < dn->count; i++)
        n = leaves_of(o, o->plan->kids[dn->first + i], id, out, n, cap);
    return n;
}

/* Consumer k joined its group: tell it and its siblings, under every
 * choice that leads to it, which of each origin's marks will come from
 * us (from the next one we send); only then may it be chosen.
 * (model: the producer's JOIN step in elastic.pml) */
static int send_notices(edge_out_t *o, int k)
{
    out_peer_t *j = &o->peers[k];
    uint32_t n = 0;
    for (int x = 0; x <= o->plan->ninst; x++)
        n += o->mark_next[x] > 0;
    if (n > WIRE_NOTICE_MAX)
        return MPX_ERANGE;
    uint32_t size = wire_notice_size(n);
    uint8_t *rec = malloc(size);
    wire_notice_pair_t *pairs = malloc((n ? n : 1) * sizeof *pairs);
    char *told = calloc((size_t)o->npeers, 1);
    int leaves[16];
    int nleaves = 0, rc = 0;
    if (!rec || !pairs || !told) {
        rc = MPX_ENOMEM;
        goto done;
    }
    n = 0;
    for (int x = 0; x <= o->plan->ninst; x++)
        if (o->mark_next[x] > 0)
            pairs[n++] = (wire_notice_pair_t){(uint32_t)x, 0, o->mark_next[x]};
    wire_notice_put(rec, &(wire_notice_t){(uint32_t)j->id, j->gen, (uint32_t)o->self, n},
                    pairs);
    for (int i = 0; i < o->nports; i++)
        if (o->ports[i].root >= 0)
            nleaves = leaves_of(o, o->ports[i].root, j->id, leaves, nleaves, 16);
    j->join_due = false;
    j->off = false;
    for (int l = 0; l < nleaves && rc == 0; l++) {
        int parent = o->dn_parent[leaves[l]];
        int first = parent >= 0 ? o->plan->dn[parent].first : 0;
        int count = parent >= 0 ? o->plan->dn[parent].count : 0;
        /* The joiner first: its gate waits for this.  Then every sibling
         * that runs and takes input. */
        if (!told[k]) {
            told[k] = 1;
            rc = send_record(o, j, rec, size, leaves[l]);
        }
        for (int i = 0; i < count && rc == 0; i++) {
            const plan_dnode_t *c = &o->plan->dn[o->plan->kids[first + i]];
            if (c->kind != DN_LEAF)
                continue;
            int s = o->slot[c->target];
            out_peer_t *p = &o->peers[s];
            if (told[s] || p->off || p->closed || p->ended)
                continue;
            told[s] = 1;
            rc = send_record(o, p, rec, size, o->plan->kids[first + i]);
        }
    }
    update_closed(o);
    fit_batches(o);
done:
    free(rec);
    free(pairs);
    free(told);
    return rc;
}

int edge_out_join(edge_out_t *o, uint32_t consumer, uint32_t gen)
{
    if (consumer > (uint32_t)o->plan->ninst || o->slot[consumer] < 0)
        return 0;
    out_peer_t *p = &o->peers[o->slot[consumer]];
    if (gen <= p->gen)
        return 0; /* old news */
    /* The process it had (one that left) is gone: so is what zmq still
     * queues for it (a slot that never ran had no connection: the call
     * then fails, harmlessly). */
    edge_connect(o->sock, o->dir, p->id, p->gen, false);
    free_kept(o, p);
    fresh_peer(o, p, gen);
    if (edge_connect(o->sock, o->dir, p->id, p->gen, true) != 0)
        return MPX_ESYS;
    /* After our end of stream it gets only an end of its own; before, its
     * notices, and then work (edge_out_recover). */
    p->off = true;
    if (o->eos_sent)
        p->eos_due = true;
    else
        p->join_due = true;
    update_closed(o);
    return 0;
}

int edge_out_notice_forward(edge_out_t *o, const uint8_t *rec, uint32_t size)
{
    for (int k = 0; k < o->npeers; k++) {
        out_peer_t *p = &o->peers[k];
        if (p->off || p->closed || p->ended)
            continue;
        int leaf = -1;
        for (int i = 0; i < o->nports && leaf < 0; i++)
            if (o->ports[i].root >= 0 && leaves_of(o, o->ports[i].root, p->id, &leaf, 0, 1) == 0)
                leaf = -1;
        if (leaf < 0)
            continue;
        int rc = send_record(o, p, rec, size, leaf);
        if (rc != 0)
            return rc;
    }
    return 0;
}

bool edge_out_ends_seen(const edge_out_t *o)
{
    for (int k = 0; k < o->npeers; k++) {
        const out_peer_t *p = &o->peers[k];
        if (p->ended && !p->end_seen && !p->closed)
            return false;
    }
    return true;
}

int edge_out_recover(edge_out_t *o)
{
    if (o->sending || o->recovering)
        return 0;
    o->recovering = true;
    int rc = 0;
    while (o->nredo > 0 && rc == 0) {
        /* Taken off the list first: a restart while this one waits for
         * credit may add to it. */
        redo_t r = o->redo[0];
        zmq_msg_init(&r.msg);
        zmq_msg_move(&r.msg, &o->redo[0].msg);
        zmq_msg_close(&o->redo[0].msg);
        memmove(o->redo, o->redo + 1, (o->nredo - 1) * sizeof *o->redo);
        o->nredo--;
        /* Counted before it goes: a process that dies while sending has
         * still sent some of it. */
        o->resent += r.k;
        if (o->resent_mirror)
            *o->resent_mirror = o->resent;
        uint8_t *d = zmq_msg_data(&r.msg);
        size_t rlen = zmq_msg_size(&r.msg) - WIRE_HEAD;
        bool pooled = (d[3] & WIRE_DATA_POOL) != 0;
        run_t run = {d + WIRE_HEAD, rlen, r.k, false, pooled,
                     pooled ? wire_weight(d + WIRE_HEAD, rlen, r.k) : rlen, false, 0, 0, false};
        /* Its holds go with the message into send_run (which moves it):
         * dropped from a copy of the bytes once it has gone. */
        zmq_msg_t mine;
        zmq_msg_init(&mine);
        bool copied = run.pooled && zmq_msg_copy(&mine, &r.msg) == 0;
        rc = send_run(o, r.target, &run, &r.msg, NULL, r.seq);
        if (rc == MPX_EAGAIN)
            rc = redo_rest(o, &r, &run);
        zmq_msg_close(&r.msg);
        if (copied)
            (void)msg_pool(o, &mine, self_holder(o), false);
        zmq_msg_close(&mine);
    }
    for (int k = 0; k < o->npeers && rc == 0; k++)
        if (o->peers[k].eos_due)
            rc = send_eos(o, &o->peers[k]);
    for (int k = 0; k < o->npeers && rc == 0; k++)
        if (o->peers[k].join_due)
            rc = send_notices(o, k);
    o->recovering = false;
    return rc;
}

void edge_out_void(edge_out_t *o)
{
    for (int k = 0; k < o->npeers; k++) {
        out_peer_t *p = &o->peers[k];
        p->ended = p->end_seen = true;
        p->eos_due = p->join_due = false;
    }
    o->eos_sent = true;
}
