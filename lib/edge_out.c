/* lib/edge_out.c — the producer side of edges (see edge.h): ports, the
 * batch being built for each, credit, dispatch over parallel (ONE) and
 * broadcast (ALL) branches, marks and end of stream.
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
#include "ticks.h"

/* ---- kept messages ------------------------------------------------------ */

static kept_t *kept_at(const out_peer_t *p, size_t i)
{
    return &p->kept[(p->khead + i) % p->kcap];
}

static int keep(edge_out_t *o, out_peer_t *p, zmq_msg_t *msg, uint64_t k, int leaf)
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
    e->seq = o->cur_seq;
    e->end_items = p->sent_items;
    e->k = (uint32_t)k;
    e->leaf = leaf;
    if (p->kcount > 0 && kept_at(p, p->kcount - 1)->seq > e->seq)
        p->unsorted = true;
    p->kcount++;
    return 0;
}

/* Drop what the consumer has acknowledged. */
static void release_kept(out_peer_t *p)
{
    while (p->kcount > 0 && p->kept[p->khead].end_items <= p->acked_items) {
        zmq_msg_close(&p->kept[p->khead].msg);
        p->khead = (p->khead + 1) % p->kcap;
        p->kcount--;
    }
    if (p->kcount == 0)
        p->unsorted = false;
}

static void free_kept(out_peer_t *p)
{
    for (size_t i = 0; i < p->kcount; i++)
        zmq_msg_close(&kept_at(p, i)->msg);
    free(p->kept);
    p->kept = NULL;
    p->khead = p->kcount = p->kcap = 0;
    p->unsorted = false;
}

static out_peer_t *leaf_peer(const edge_out_t *o, const plan_dnode_t *dn)
{
    return &o->peers[o->slot[dn->target]];
}

static bool dn_closed(const edge_out_t *o, int d)
{
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF)
        return leaf_peer(o, dn)->closed;
    for (int i = 0; i < dn->count; i++)
        if (!dn_closed(o, o->plan->kids[dn->first + i]))
            return false;
    return true;
}

static inline uint64_t outstanding(const out_peer_t *p) { return p->sent_items - p->acked_items; }

static bool peer_room(const out_peer_t *p, uint64_t k, uint64_t b)
{
    uint64_t oi = outstanding(p);
    if (oi == 0)
        return true; /* one message always fits, however large */
    return oi + k <= p->eff_items && (p->sent_bytes - p->acked_bytes) + b <= p->win_bytes;
}

static bool dn_room(const edge_out_t *o, int d, uint64_t k, uint64_t b)
{
    if (o->delivered[d])
        return true;
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF) {
        const out_peer_t *p = leaf_peer(o, dn);
        return p->closed || peer_room(p, k, b);
    }
    for (int i = 0; i < dn->count; i++) {
        int c = o->plan->kids[dn->first + i];
        bool r = !dn_closed(o, c) && dn_room(o, c, k, b);
        if (dn->kind == DN_ONE && r)
            return true;
        if (dn->kind == DN_ALL && !r && !dn_closed(o, c))
            return false;
    }
    return dn->kind == DN_ALL;
}

/* How busy a branch is: its least busy consumer for ONE, its busiest for
 * ALL (a broadcast goes as fast as its slowest branch). */
static uint64_t dn_load(const edge_out_t *o, int d)
{
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF)
        return outstanding(leaf_peer(o, dn));
    uint64_t v = dn->kind == DN_ONE ? UINT64_MAX : 0;
    for (int i = 0; i < dn->count; i++) {
        int c = o->plan->kids[dn->first + i];
        if (dn_closed(o, c))
            continue;
        uint64_t l = dn_load(o, c);
        v = dn->kind == DN_ONE ? (l < v ? l : v) : (l > v ? l : v);
    }
    return v;
}

/* Credit from a consumer without prompt credit (plan_prompt_credit)
 * comes by itself once half its window (edge_half), in items or bytes,
 * was taken. */
static int send_ask(edge_out_t *o, out_peer_t *p)
{
    uint8_t buf[WIRE_HEAD];
    wire_head_put(buf, &(wire_head_t){WIRE_ASK, 0, (uint32_t)o->self, 0, o->gen});
    int rc;
    while ((rc = zmq_send(p->sock, buf, sizeof buf, ZMQ_DONTWAIT)) < 0 && errno == EINTR)
        ;
    if (rc != (int)sizeof buf)
        return MPX_ESYS;
    p->asked = true;
    return 0;
}

/* Such a consumer is asked for credit when we wait with less than that
 * outstanding, or it would never come: a record larger than a quarter of
 * the byte window can leave us so, and so can a window cut down to a slow
 * consumer's pace. */
static int ask_credit(edge_out_t *o, out_peer_t *p)
{
    if (p->asked || outstanding(p) >= edge_half(p->win_items) ||
        p->sent_bytes - p->acked_bytes >= edge_half(p->win_bytes))
        return 0;
    return send_ask(o, p);
}

/* ...and, when its window was cut below that, asked as soon as half the
 * window is out, behind the message that fills it so far: the credit
 * comes back while the consumer still has the other half to work on. */
static int ask_ahead(edge_out_t *o, out_peer_t *p)
{
    uint64_t half = edge_half(p->eff_items);
    if (p->asked || half >= edge_half(p->win_items) || outstanding(p) < half)
        return 0;
    return send_ask(o, p);
}

static void mark_delivered(edge_out_t *o, int d)
{
    o->delivered[d] = 1;
    o->touched[o->ntouched++] = d;
}

/* Deliver `msg` through dispatch node d (every branch when `all`, as for a
 * mark).  1 when delivered (or nowhere to go: every consumer there
 * stopped), 0 when some consumer lacks credit. */
static int deliver(edge_out_t *o, int d, zmq_msg_t *msg, uint64_t k, uint64_t b, bool all)
{
    if (o->delivered[d])
        return 1;
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF) {
        out_peer_t *p = leaf_peer(o, dn);
        if (!p->closed) {
            if (!peer_room(p, k, b)) {
                if (p->prompt)
                    return 0;
                p->waited = true;
                return ask_credit(o, p);
            }
            zmq_msg_t copy;
            zmq_msg_init(&copy);
            zmq_msg_copy(&copy, msg);
            int rc;
            while ((rc = zmq_msg_send(&copy, p->sock, ZMQ_DONTWAIT)) < 0 && errno == EINTR)
                ;
            if (rc < 0) {
                zmq_msg_close(&copy);
                return MPX_ESYS;
            }
            p->sent_items += k;
            p->sent_bytes += b;
            if ((o->keep_all || p->retain) && keep(o, p, msg, k, d) != 0)
                return MPX_ENOMEM;
            if (!p->prompt && ask_ahead(o, p) != 0)
                return MPX_ESYS;
        }
        mark_delivered(o, d);
        return 1;
    }
    if (dn->kind == DN_ALL || all) {
        int every = 1;
        for (int i = 0; i < dn->count; i++) {
            int r = deliver(o, o->plan->kids[dn->first + i], msg, k, b, all);
            if (r < 0)
                return r;
            every &= r;
        }
        if (every)
            mark_delivered(o, d);
        return every;
    }
    int best = -1;
    uint64_t best_load = UINT64_MAX;
    bool open = false;
    for (int i = 0; i < dn->count; i++) {
        int c = o->plan->kids[dn->first + i];
        if (dn_closed(o, c))
            continue;
        open = true;
        if (!dn_room(o, c, k, b))
            continue;
        uint64_t l = dn_load(o, c);
        if (best < 0 || l < best_load) {
            best = c;
            best_load = l;
        }
    }
    if (!open) {
        mark_delivered(o, d);
        return 1;
    }
    if (best < 0)
        return 0;
    int r = deliver(o, best, msg, k, b, all);
    if (r == 1)
        mark_delivered(o, d);
    return r;
}

static void update_closed(edge_out_t *o)
{
    for (int i = 0; i < o->nports; i++)
        o->ports[i].closed = o->ports[i].root >= 0 && dn_closed(o, o->ports[i].root);
}

/* Read every ack waiting; returns how many were read. */
static void size_batches(edge_out_t *o);

/* The consumer's pace over the last stretch sets its window: twice what
 * it processed in RATE_TICKS. */
static bool adapt_window(out_peer_t *p, uint64_t now)
{
    if (now - p->rate_at < RATE_TICKS)
        return false;
    uint64_t done = p->acked_items - p->rate_n;
    uint64_t want = (uint64_t)((double)done * 2.0 * (double)RATE_TICKS / (double)(now - p->rate_at));
    if (want < EFF_MIN)
        want = EFF_MIN;
    if (want > p->win_items)
        want = p->win_items;
    p->rate_at = now;
    p->rate_n = p->acked_items;
    if (want == p->eff_items)
        return false;
    p->eff_items = want;
    return true;
}

static int read_acks(edge_out_t *o)
{
    int n = 0;
    bool resized = false;
    uint64_t now = 0;
    uint8_t buf[EDGE_ACK_SIZE];
    for (;;) {
        int len = zmq_recv(o->ackin, buf, sizeof buf, ZMQ_DONTWAIT);
        if (len < 0)
            break;
        wire_head_t h;
        if (len != EDGE_ACK_SIZE || wire_head_get(buf, (size_t)len, &h) != 0 ||
            h.type != WIRE_ACK || h.sender > (uint32_t)o->plan->ninst || o->slot[h.sender] < 0)
            continue; /* not from a consumer of ours: ignore it */
        out_peer_t *p = &o->peers[o->slot[h.sender]];
        uint64_t items, bytes;
        uint32_t prod_gen;
        memcpy(&items, buf + WIRE_HEAD, 8);
        memcpy(&bytes, buf + WIRE_HEAD + 8, 8);
        memcpy(&prod_gen, buf + WIRE_HEAD + 16, 4);
        /* From a consumer since replaced, or counting what a producer of
         * ours that died sent: not about our stream to it. */
        if (h.gen != p->gen || prod_gen != o->gen)
            continue;
        /* Acks are cumulative; an old one arriving late changes nothing. */
        if (items <= p->sent_items && items >= p->acked_items) {
            p->asked = false;
            p->acked_items = items;
            p->acked_bytes = bytes <= p->sent_bytes ? bytes : p->sent_bytes;
            if (p->kcount)
                release_kept(p);
        }
        if (h.flags & WIRE_ACK_CLOSED)
            p->closed = true;
        if (!now)
            now = ticks_now();
        if (p->prompt) {
            resized |= adapt_window(p, now);
        } else if (now - p->rate_at >= RATE_TICKS) {
            /* Without prompt credit the window follows the consumer's
             * pace only while we wait for it: a consumer that keeps up is
             * paced by us, and its few acknowledgements say nothing of
             * how fast it could go. */
            if (p->waited) {
                resized |= adapt_window(p, now);
            } else {
                p->rate_at = now;
                p->rate_n = p->acked_items;
            }
            p->waited = false;
        }
        n++;
    }
    if (n)
        update_closed(o);
    if (resized)
        size_batches(o);
    return n;
}

/* Send msg (k records, b bytes) through tree `root`, waiting for credit. */
static int send_through(edge_out_t *o, int root, zmq_msg_t *msg, uint64_t k, uint64_t b,
                        bool all, bool choice)
{
    o->sending = true;
    o->sent_at = ticks_now();
    /* Reading an empty zmq socket costs a system call, so acks are read
     * only when credit runs short, or once per batch when a parallel
     * choice needs fresh loads. */
    if (choice)
        read_acks(o);
    int rc;
    for (;;) {
        rc = deliver(o, root, msg, k, b, all);
        if (rc != 0)
            break;
        if (read_acks(o) > 0)
            continue;
        rc = o->wait(o->owner, o->ackin, ZMQ_POLLIN);
        if (rc < 0)
            break;
        read_acks(o);
    }
    for (int i = 0; i < o->ntouched; i++)
        o->delivered[o->touched[i]] = 0;
    o->ntouched = 0;
    o->sending = false;
    return rc < 0 ? rc : 0;
}

/* Number msg as our next message (checkpoints and kept messages go by
 * that number), send it through tree `root` and let it go. */
static int send_numbered(edge_out_t *o, int root, zmq_msg_t *msg, uint64_t k, uint64_t b,
                         bool all, bool choice)
{
    o->cur_seq = ++o->seq;
    int rc = send_through(o, root, msg, k, b, all, choice);
    zmq_msg_close(msg);
    return rc;
}

static void free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
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
        bool closed = pt->closed;
        pt->count = 0;
        pt->len = WIRE_HEAD;
        return closed ? MPX_ESTOPPED : 0;
    }
    wire_head_put(pt->buf, &(wire_head_t){WIRE_DATA, 0, (uint32_t)o->self, pt->count, o->gen});
    zmq_msg_t msg;
    if (pt->len <= COPY_MAX) {
        if (zmq_msg_init_size(&msg, pt->len) != 0)
            return MPX_ENOMEM;
        memcpy(zmq_msg_data(&msg), pt->buf, pt->len);
    } else {
        if (zmq_msg_init_data(&msg, pt->buf, pt->len, free_buf, NULL) != 0)
            return MPX_ENOMEM;
        pt->buf = NULL;
        pt->cap = 0;
    }
    uint64_t k = pt->count, b = pt->len - WIRE_HEAD;
    pt->count = 0;
    pt->len = WIRE_HEAD;
    int rc = send_numbered(o, pt->root, &msg, k, b, false, pt->choice);
    if (rc < 0)
        return rc;
    return pt->closed ? MPX_ESTOPPED : 0;
}

static bool has_choice(const plan_t *plan, int d)
{
    const plan_dnode_t *dn = &plan->dn[d];
    if (dn->kind == DN_ONE)
        return true;
    for (int i = 0; dn->kind == DN_ALL && i < dn->count; i++)
        if (has_choice(plan, plan->kids[dn->first + i]))
            return true;
    return false;
}

/* The smallest windows among the consumers of tree d. */
static void min_windows(const edge_out_t *o, int d, uint64_t *items, uint64_t *bytes)
{
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF) {
        const out_peer_t *p = leaf_peer(o, dn);
        *items = p->eff_items < *items ? p->eff_items : *items;
        *bytes = p->win_bytes < *bytes ? p->win_bytes : *bytes;
        return;
    }
    for (int i = 0; i < dn->count; i++)
        min_windows(o, o->plan->kids[dn->first + i], items, bytes);
}

/* A batch holds at most a quarter of the smallest window behind it. */
static void size_port(edge_out_t *o, out_port_t *pt)
{
    uint64_t items = BATCH_ITEMS_MAX * 4, bytes = BATCH_BYTES_MAX * 4;
    if (pt->root >= 0)
        min_windows(o, pt->root, &items, &bytes);
    pt->batch_items = items / 4 ? items / 4 : 1;
    pt->batch_bytes = bytes / 4 ? bytes / 4 : 1;
}

static void size_batches(edge_out_t *o)
{
    for (int i = 0; i < o->nports; i++)
        size_port(o, &o->ports[i]);
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
    if (root >= 0)
        pt->choice = has_choice(o->plan, root);
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

edge_out_t *edge_out_new(void *zctx, const plan_t *plan, int self, uint32_t gen,
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
    o->zctx = zctx;
    o->dir = dir;
    o->wait = wait;
    o->owner = owner;
    o->slot = edge_slot_map(plan);
    o->peers = calloc((size_t)(pi->nconsumers ? pi->nconsumers : 1), sizeof *o->peers);
    o->delivered = calloc((size_t)plan->ndn, 1);
    o->touched = calloc((size_t)plan->ndn, sizeof *o->touched);
    o->ports = calloc((size_t)pi->nxouts + 1, sizeof *o->ports);
    o->dn_parent = malloc((size_t)plan->ndn * sizeof *o->dn_parent);
    if (!o->slot || !o->peers || !o->delivered || !o->touched || !o->ports || !o->dn_parent)
        goto oom;
    for (int d = 0; d < plan->ndn; d++)
        o->dn_parent[d] = -1;
    if (pi->out >= 0)
        note_parents(plan, pi->out, o->dn_parent);
    for (int x = 0; x < pi->nxouts; x++)
        note_parents(plan, pi->xouts[x].root, o->dn_parent);
    o->ackin = edge_open_socket(zctx, ZMQ_PULL, dir, 'a', self, 0, true, err, errcap);
    if (!o->ackin)
        goto fail;
    for (int k = 0; k < pi->nconsumers; k++) {
        out_peer_t *p = &o->peers[k];
        p->id = pi->consumers[k];
        p->win_items = plan_window_items(plan, p->id);
        p->win_bytes = plan_window_bytes(plan, p->id);
        p->retain = p->id < plan->ninst && plan->inst[p->id].recoverable;
        p->prompt = plan_prompt_credit(plan, self, p->id);
        p->eff_items = p->win_items < EFF_START ? p->win_items : EFF_START;
        o->slot[p->id] = k;
        p->gen = peer_gens && p->id < plan->ninst ? peer_gens[p->id] : 0;
        p->sock = edge_open_socket(zctx, ZMQ_PUSH, dir, 'i', p->id, p->gen, false, err, errcap);
        o->npeers++;
        if (!p->sock)
            goto fail;
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
    for (int k = 0; k < o->npeers; k++) {
        if (o->peers[k].sock)
            zmq_close(o->peers[k].sock);
        free_kept(&o->peers[k]);
    }
    for (size_t i = 0; i < o->nredo; i++)
        zmq_msg_close(&o->redo[i].msg);
    free(o->redo);
    free(o->dn_parent);
    if (o->ackin)
        zmq_close(o->ackin);
    for (int i = 0; o->ports && i < o->nports; i++)
        free(o->ports[i].buf);
    free(o->ports);
    free(o->peers);
    free(o->slot);
    free(o->delivered);
    free(o->touched);
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
    if (pt->count > 0 && pt->len - WIRE_HEAD + size > pt->batch_bytes) {
        *rc = flush_port(o, pt);
        if (*rc < 0)
            return NULL;
    }
    if (pt->len + size > pt->cap) {
        size_t cap = pt->cap ? pt->cap : 16384;
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
    if (pt->count >= pt->batch_items || pt->len - WIRE_HEAD >= pt->batch_bytes)
        return flush_port(o, pt);
    if (pt->count == 1) {
        pt->first_at = o->now ? o->now : ticks_now();
        /* A producer that was quiet is probably sporadic: latency first. */
        return pt->first_at - o->sent_at >= QUIET_TICKS ? flush_port(o, pt) : 0;
    }
    /* Without the caller's time (puts in setup), the clock is read on
     * every fourth put only: it costs more than the rest of a put. */
    uint64_t now = o->now;
    if (!now) {
        if (pt->count & 3)
            return 0;
        now = ticks_now();
    }
    return now - pt->first_at >= DEFER_TICKS ? flush_port(o, pt) : 0;
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
    wire_head_put(d, &(wire_head_t){WIRE_DATA, 0, (uint32_t)o->self, 1, o->gen});
    memset(d + WIRE_HEAD + 12, 0, 4);
    rc = send_numbered(o, pt->root, &m, 1, len - WIRE_HEAD, false, pt->choice);
    if (rc < 0)
        return rc;
    return pt->closed ? MPX_ESTOPPED : 0;
}

int edge_out_tick(edge_out_t *o, uint64_t now)
{
    for (int i = 0; i < o->nports; i++) {
        out_port_t *pt = &o->ports[i];
        if (pt->count == 0 || now - pt->first_at < DEFER_TICKS)
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
    return result;
}

int edge_out_mark(edge_out_t *o, uint32_t origin, uint64_t value)
{
    out_port_t *pt = &o->ports[0];
    int rc = flush_port(o, pt);
    if (rc < 0)
        return rc;
    if (pt->root < 0)
        return 0;
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, WIRE_HEAD + WIRE_MARK_SIZE) != 0)
        return MPX_ENOMEM;
    uint8_t *p = zmq_msg_data(&msg);
    wire_head_put(p, &(wire_head_t){WIRE_DATA, 0, (uint32_t)o->self, 1, o->gen});
    wire_mark_put(p + WIRE_HEAD, origin, value);
    return send_numbered(o, pt->root, &msg, 1, WIRE_MARK_SIZE, true, false);
}

static int send_eos(edge_out_t *o, out_peer_t *p)
{
    uint8_t buf[WIRE_HEAD];
    wire_head_put(buf, &(wire_head_t){WIRE_EOS, 0, (uint32_t)o->self, 0, o->gen});
    int n;
    while ((n = zmq_send(p->sock, buf, sizeof buf, ZMQ_DONTWAIT)) < 0 && errno == EINTR)
        ;
    p->eos_due = false;
    return n == (int)sizeof buf ? 0 : MPX_ESYS;
}

int edge_out_eos(edge_out_t *o)
{
    int rc = edge_out_flush(o);
    if (rc < 0 && rc != MPX_ESTOPPED)
        return rc;
    /* What a replaced consumer held goes out before our end of stream:
     * after it, a sibling it went to may have ended already, and would
     * never take it.  Restarts heard while this waits for credit add to
     * the list; none can come between its end and the ends below. */
    while (o->nredo > 0 && !o->recovering && !o->sending) {
        rc = edge_out_recover(o);
        if (rc < 0 && rc != MPX_ESTOPPED)
            return rc;
    }
    for (int k = 0; k < o->npeers; k++) {
        rc = send_eos(o, &o->peers[k]);
        if (rc < 0)
            return rc;
    }
    o->eos_sent = true;
    return 0;
}

void edge_out_poll(edge_out_t *o) { read_acks(o); }

uint64_t edge_out_items(const edge_out_t *o) { return o->items; }
int edge_out_peers(const edge_out_t *o) { return o->npeers; }

void edge_out_peer(const edge_out_t *o, int k, int *consumer, uint64_t *sent)
{
    *consumer = o->peers[k].id;
    *sent = o->peers[k].sent_items;
}

/* ---- recovery (edge.h) -------------------------------------------------- */

void *edge_out_socket(edge_out_t *o) { return o->ackin; }
void edge_out_keep_all(edge_out_t *o) { o->keep_all = true; }
uint64_t edge_out_seq(const edge_out_t *o) { return o->seq; }
uint64_t edge_out_resent(const edge_out_t *o) { return o->resent; }

void edge_out_mirror_resent(edge_out_t *o, volatile uint64_t *to) { o->resent_mirror = to; }
bool edge_out_recover_due(const edge_out_t *o)
{
    if (o->nredo)
        return true;
    for (int k = 0; k < o->npeers; k++)
        if (o->peers[k].eos_due)
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
                   size_t whylen, zmq_msg_t *out, uint32_t *k, uint64_t *bytes)
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
        uint32_t flags;
        memcpy(&flags, rec + 12, 4);
        if (i < skip)
            continue;
        if (flags & WIRE_REC_MARK) {
            o->marks_lost++;
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
        if (wire_rec_decode_full(rec, size, &it, parts) != 0)
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
        for (uint16_t j = 0; j < it.nparts; j++)
            rsize += wire_part_size(parts[j].size);
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
        uint32_t redo = WIRE_REC_REDO;
        memcpy(buf + used + 12, &redo, 4);
        meta_cur_encode(&m, p);
        p += meta_size;
        for (uint16_t j = 0; j < it.nparts; j++)
            p = wire_part_put(p, parts[j].data, parts[j].size);
        used += rsize;
        (*k)++;
    }
    rc = 0;
    if (*k == 0)
        goto done;
    wire_head_put(buf, &(wire_head_t){WIRE_DATA, 0, (uint32_t)o->self, *k, o->gen});
    *bytes = used - WIRE_HEAD;
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

static int add_redo(edge_out_t *o, zmq_msg_t *msg, uint64_t seq, uint32_t k, uint64_t bytes,
                    int target)
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
    redo_t *r = &o->redo[o->nredo++];
    zmq_msg_init(&r->msg);
    zmq_msg_move(&r->msg, msg);
    r->seq = seq;
    r->k = k;
    r->bytes = bytes;
    r->target = target;
    return 0;
}

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
        uint64_t skip = p->acked_items > start ? p->acked_items - start : 0;
        int64_t hand = -1;
        if (r->has_hand && r->hand_gen == o->gen && r->hand_rec >= start &&
            r->hand_rec < e->end_items)
            hand = (int64_t)(r->hand_rec - start);
        zmq_msg_t m;
        uint32_t k = 0;
        uint64_t bytes = 0;
        int brc = rebuild(o, &e->msg, skip, hand, why, whylen, &m, &k, &bytes);
        if (brc == 0 && k > 0) {
            brc = add_redo(o, &m, e->seq, k, bytes, redo_target(o, e->leaf));
            if (brc != 0)
                zmq_msg_close(&m);
        }
        if (brc != 0 && rc == 0)
            rc = brc;
    }
    free_kept(p);
    /* What the old socket still queues for the dead process goes with it. */
    zmq_close(p->sock);
    char err[256];
    p->sock = edge_open_socket(o->zctx, ZMQ_PUSH, o->dir, 'i', p->id, r->gen, false, err,
                               sizeof err);
    if (!p->sock)
        return MPX_ESYS;
    p->gen = r->gen;
    p->sent_items = p->sent_bytes = p->acked_items = p->acked_bytes = 0;
    p->eff_items = p->win_items < EFF_START ? p->win_items : EFF_START;
    p->rate_at = p->rate_n = 0;
    p->closed = false;
    p->eos_due = o->eos_sent;
    update_closed(o);
    size_batches(o);
    return rc;
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
        o->cur_seq = r.seq;
        /* Counted before it goes: a process that dies while sending has
         * still sent some of it. */
        o->resent += r.k;
        if (o->resent_mirror)
            *o->resent_mirror = o->resent;
        rc = send_through(o, r.target, &r.msg, r.k, r.bytes, false, true);
        zmq_msg_close(&r.msg);
    }
    for (int k = 0; k < o->npeers && rc == 0; k++)
        if (o->peers[k].eos_due)
            rc = send_eos(o, &o->peers[k]);
    o->recovering = false;
    return rc;
}
