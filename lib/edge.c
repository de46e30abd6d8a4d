/* lib/edge.c — the edge transport (see edge.h): inboxes, credit, batching,
 * dispatch over parallel and broadcast branches, end of stream.
 */
#define _GNU_SOURCE
#include "edge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "mpx/error.h"
#include "ticks.h"

/* Batches stay below this many items and bytes (and below a quarter of
 * the smallest window), so that a busy edge still spreads work evenly. */
#define BATCH_ITEMS_MAX 64
#define BATCH_BYTES_MAX (64 * 1024)
/* Batches up to this size are copied into a fresh zmq message and the
 * buffer kept; larger ones are handed to zmq without a copy. */
#define COPY_MAX 8192
#define ACK_SIZE (WIRE_HEAD + 16)
/* A batch leaves when its oldest item is this old... */
#define DEFER_TICKS TICKS_US(50)
/* ...and the first item after this long without a send leaves at once. */
#define QUIET_TICKS TICKS_US(200)

int edge_endpoint(char *buf, size_t cap, const char *dir, char kind, int id)
{
    int n = snprintf(buf, cap, "ipc://%s/%c%d", dir, kind, id);
    return n > 0 && (size_t)n < cap ? 0 : MPX_ERANGE;
}

int edge_sockopts(void *sock)
{
    /* Credit bounds every queue, so zmq's own limits are lifted; nothing
     * rests on linger (see DESIGN: the tail of a stream is confirmed by
     * the protocol, never by linger).  Reconnects are quick because peers
     * bind a few milliseconds apart at start. */
    int zero = 0, ivl = 2, ivl_max = 50;
    if (zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(sock, ZMQ_SNDHWM, &zero, sizeof zero) ||
        zmq_setsockopt(sock, ZMQ_RCVHWM, &zero, sizeof zero) ||
        zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) ||
        zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max))
        return MPX_ESYS;
    return 0;
}

static void *open_socket(void *zctx, int type, const char *dir, char kind, int id, bool bind,
                         char *err, size_t errcap)
{
    char ep[256];
    if (edge_endpoint(ep, sizeof ep, dir, kind, id) != 0) {
        snprintf(err, errcap, "endpoint path too long in %s", dir);
        return NULL;
    }
    void *s = zmq_socket(zctx, type);
    if (!s) {
        snprintf(err, errcap, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    if (edge_sockopts(s) != 0 || (bind ? zmq_bind(s, ep) : zmq_connect(s, ep)) != 0) {
        snprintf(err, errcap, "%s %s: %s", bind ? "bind" : "connect", ep,
                 zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

static int *slot_map(const plan_t *plan)
{
    int *slot = malloc(((size_t)plan->ninst + 1) * sizeof *slot);
    if (slot)
        for (int i = 0; i <= plan->ninst; i++)
            slot[i] = -1;
    return slot;
}

/* ======================================================================== */
/* consumer side                                                            */

typedef struct in_peer {
    int id;
    void *ack;              /* to the producer's ack inbox; NULL after its EOS */
    uint64_t taken_items;   /* processed (or discarded) so far */
    uint64_t taken_bytes;
    uint64_t acked_items;   /* what the producer was last told */
    uint64_t ack_every;
    bool eos;
} in_peer_t;

struct edge_in {
    const plan_t *plan;
    int self;
    void *sock;
    in_peer_t *peers;
    int npeers;
    int *slot;
    int eos_count;
    bool closed;
    uint64_t items, dropped;

    zmq_msg_t msg;
    bool have_msg;
    const uint8_t *cur;
    uint32_t left;  /* records not yet taken from msg */
    int cur_peer;

    bool taken;     /* an item was handed out and is not yet counted */
    uint32_t taken_size;
    mpx_item_t item;
    mpx_part_t *parts;
    size_t parts_cap;
};

edge_in_t *edge_in_new(void *zctx, const plan_t *plan, int self, const char *dir, char *err,
                       size_t errcap)
{
    const plan_inst_t *pi = &plan->inst[self];
    edge_in_t *in = calloc(1, sizeof *in);
    if (!in)
        goto oom;
    in->plan = plan;
    in->self = self;
    in->slot = slot_map(plan);
    in->peers = calloc((size_t)(pi->nproducers ? pi->nproducers : 1), sizeof *in->peers);
    if (!in->slot || !in->peers)
        goto oom;
    zmq_msg_init(&in->msg);
    in->sock = open_socket(zctx, ZMQ_PULL, dir, 'i', self, true, err, errcap);
    if (!in->sock)
        goto fail;
    uint64_t win = plan_window_items(plan, self);
    for (int k = 0; k < pi->nproducers; k++) {
        in_peer_t *p = &in->peers[k];
        p->id = pi->producers[k];
        p->ack_every = win / 2 ? win / 2 : 1;
        in->slot[p->id] = k;
        p->ack = open_socket(zctx, ZMQ_PUSH, dir, 'a', p->id, false, err, errcap);
        in->npeers++;
        if (!p->ack)
            goto fail;
    }
    return in;
oom:
    snprintf(err, errcap, "out of memory");
fail:
    edge_in_destroy(&in);
    return NULL;
}

void edge_in_destroy(edge_in_t **inp)
{
    edge_in_t *in = inp ? *inp : NULL;
    if (!in)
        return;
    for (int k = 0; k < in->npeers; k++)
        if (in->peers[k].ack)
            zmq_close(in->peers[k].ack);
    if (in->sock)
        zmq_close(in->sock);
    zmq_msg_close(&in->msg);
    free(in->peers);
    free(in->slot);
    free(in->parts);
    free(in);
    *inp = NULL;
}

void *edge_in_socket(edge_in_t *in) { return in->sock; }

static void send_ack(edge_in_t *in, in_peer_t *p)
{
    if (!p->ack)
        return;
    uint8_t buf[ACK_SIZE];
    wire_head_put(buf, &(wire_head_t){WIRE_ACK, in->closed ? WIRE_ACK_CLOSED : 0,
                                      (uint32_t)in->self, 0});
    memcpy(buf + WIRE_HEAD, &p->taken_items, 8);
    memcpy(buf + WIRE_HEAD + 8, &p->taken_bytes, 8);
    /* No high-water mark: this never blocks, and acks are tiny. */
    if (zmq_send(p->ack, buf, sizeof buf, ZMQ_DONTWAIT) == (int)sizeof buf)
        p->acked_items = p->taken_items;
}

static void count_taken(edge_in_t *in)
{
    if (!in->taken)
        return;
    in->taken = false;
    in_peer_t *p = &in->peers[in->cur_peer];
    p->taken_items++;
    p->taken_bytes += in->taken_size;
    in->items++;
    if (p->taken_items - p->acked_items >= p->ack_every)
        send_ack(in, p);
}

static int parts_reserve(edge_in_t *in, size_t n)
{
    if (n <= in->parts_cap)
        return 0;
    size_t cap = in->parts_cap ? in->parts_cap : 4;
    while (cap < n)
        cap *= 2;
    mpx_part_t *p = realloc(in->parts, cap * sizeof *p);
    if (!p)
        return MPX_ENOMEM;
    in->parts = p;
    in->parts_cap = cap;
    return 0;
}

/* A whole DATA message is checked for framing before any item is used. */
static int check_records(const uint8_t *p, size_t len, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        uint32_t size;
        uint16_t nparts;
        if (wire_rec_peek(p, len, &size, &nparts) != 0)
            return MPX_EPROTO;
        p += size;
        len -= size;
    }
    return len == 0 ? 0 : MPX_EPROTO;
}

static int proto_error(char *err, size_t errcap, const char *what, uint32_t sender)
{
    snprintf(err, errcap, "malformed message on an edge (%s, sender %u)", what, sender);
    return MPX_EPROTO;
}

int edge_in_next(edge_in_t *in, mpx_item_t **it, char *err, size_t errcap)
{
    count_taken(in);
    for (;;) {
        if (in->left > 0) {
            uint32_t size;
            uint16_t nparts;
            const uint8_t *end = (const uint8_t *)zmq_msg_data(&in->msg) + zmq_msg_size(&in->msg);
            if (wire_rec_peek(in->cur, (size_t)(end - in->cur), &size, &nparts) != 0)
                return proto_error(err, errcap, "record", (uint32_t)in->peers[in->cur_peer].id);
            if (parts_reserve(in, nparts) != 0) {
                snprintf(err, errcap, "out of memory");
                return MPX_ENOMEM;
            }
            if (wire_rec_decode(in->cur, size, &in->item, in->parts) != 0)
                return proto_error(err, errcap, "record", (uint32_t)in->peers[in->cur_peer].id);
            in->cur += size;
            in->left--;
            in->taken = true;
            in->taken_size = size;
            *it = &in->item;
            return 1;
        }
        if (zmq_msg_recv(&in->msg, in->sock, ZMQ_DONTWAIT) < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            snprintf(err, errcap, "receive: %s", zmq_strerror(errno));
            return MPX_ESYS;
        }
        const uint8_t *data = zmq_msg_data(&in->msg);
        size_t len = zmq_msg_size(&in->msg);
        wire_head_t h;
        if (wire_head_get(data, len, &h) != 0)
            return proto_error(err, errcap, "header", 0);
        int k = h.sender < (uint32_t)in->plan->ninst ? in->slot[h.sender] : -1;
        if (k < 0 || in->peers[k].eos)
            return proto_error(err, errcap, "unknown sender", h.sender);
        in_peer_t *p = &in->peers[k];
        if (h.type == WIRE_EOS && len == WIRE_HEAD) {
            p->eos = true;
            in->eos_count++;
            /* It sends nothing more, so it needs no more credit. */
            zmq_close(p->ack);
            p->ack = NULL;
            continue;
        }
        if (h.type != WIRE_DATA || h.count == 0 ||
            check_records(data + WIRE_HEAD, len - WIRE_HEAD, h.count) != 0)
            return proto_error(err, errcap, "data", h.sender);
        if (in->closed) {
            p->taken_items += h.count;
            p->taken_bytes += len - WIRE_HEAD;
            in->dropped += h.count;
            send_ack(in, p);
            continue;
        }
        in->cur = data + WIRE_HEAD;
        in->left = h.count;
        in->cur_peer = k;
    }
}

bool edge_in_complete(const edge_in_t *in)
{
    return in->eos_count == in->npeers && in->left == 0;
}

void edge_in_idle(edge_in_t *in)
{
    count_taken(in);
    for (int k = 0; k < in->npeers; k++)
        if (in->peers[k].taken_items != in->peers[k].acked_items)
            send_ack(in, &in->peers[k]);
}

void edge_in_close(edge_in_t *in)
{
    count_taken(in);
    if (in->closed)
        return;
    in->closed = true;
    if (in->left > 0) {
        /* The rest of the message in hand is discarded too. */
        in_peer_t *p = &in->peers[in->cur_peer];
        const uint8_t *end = (const uint8_t *)zmq_msg_data(&in->msg) + zmq_msg_size(&in->msg);
        p->taken_items += in->left;
        p->taken_bytes += (uint64_t)(end - in->cur);
        in->dropped += in->left;
        in->left = 0;
    }
    for (int k = 0; k < in->npeers; k++)
        send_ack(in, &in->peers[k]);
}

uint64_t edge_in_items(const edge_in_t *in) { return in->items; }
uint64_t edge_in_dropped(const edge_in_t *in) { return in->dropped; }

/* ======================================================================== */
/* producer side                                                            */

typedef struct out_peer {
    int id;
    void *sock;
    uint64_t sent_items, sent_bytes;
    uint64_t acked_items, acked_bytes;
    uint64_t win_items, win_bytes;
    bool closed;
} out_peer_t;

struct edge_out {
    const plan_t *plan;
    int self;
    int root;
    edge_wait_fn wait;
    void *owner;
    void *ackin;
    out_peer_t *peers;
    int npeers;
    int *slot;
    bool all_closed;
    bool choice;        /* the tree has a parallel choice: loads matter */
    uint64_t items;

    uint8_t *buf;       /* batch being built, header first */
    size_t len, cap;
    uint32_t count;
    size_t batch_items, batch_bytes;
    uint64_t first_at;  /* ticks when the batch's first item came */
    uint64_t sent_at;   /* ticks of the last send */

    uint8_t *delivered; /* per dispatch node, for the message being sent */
    int *touched;
    int ntouched;
};

static bool dn_closed(const edge_out_t *o, int d)
{
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF)
        return o->peers[o->slot[dn->target]].closed;
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
    return oi + k <= p->win_items && (p->sent_bytes - p->acked_bytes) + b <= p->win_bytes;
}

static bool dn_room(const edge_out_t *o, int d, uint64_t k, uint64_t b)
{
    if (o->delivered[d])
        return true;
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF) {
        const out_peer_t *p = &o->peers[o->slot[dn->target]];
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
        return outstanding(&o->peers[o->slot[dn->target]]);
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

static void mark(edge_out_t *o, int d)
{
    o->delivered[d] = 1;
    o->touched[o->ntouched++] = d;
}

/* Deliver `msg` through dispatch node d.  1 when delivered (or nowhere to
 * go: every consumer there stopped), 0 when some consumer lacks credit. */
static int deliver(edge_out_t *o, int d, zmq_msg_t *msg, uint64_t k, uint64_t b)
{
    if (o->delivered[d])
        return 1;
    const plan_dnode_t *dn = &o->plan->dn[d];
    if (dn->kind == DN_LEAF) {
        out_peer_t *p = &o->peers[o->slot[dn->target]];
        if (!p->closed) {
            if (!peer_room(p, k, b))
                return 0;
            zmq_msg_t copy;
            zmq_msg_init(&copy);
            zmq_msg_copy(&copy, msg);
            if (zmq_msg_send(&copy, p->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&copy);
                return MPX_ESYS;
            }
            p->sent_items += k;
            p->sent_bytes += b;
        }
        mark(o, d);
        return 1;
    }
    if (dn->kind == DN_ALL) {
        int all = 1;
        for (int i = 0; i < dn->count; i++) {
            int r = deliver(o, o->plan->kids[dn->first + i], msg, k, b);
            if (r < 0)
                return r;
            all &= r;
        }
        if (all)
            mark(o, d);
        return all;
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
        mark(o, d);
        return 1;
    }
    if (best < 0)
        return 0;
    int r = deliver(o, best, msg, k, b);
    if (r == 1)
        mark(o, d);
    return r;
}

/* Read every ack waiting; returns how many were read. */
static int read_acks(edge_out_t *o)
{
    int n = 0;
    uint8_t buf[ACK_SIZE];
    for (;;) {
        int len = zmq_recv(o->ackin, buf, sizeof buf, ZMQ_DONTWAIT);
        if (len < 0)
            break;
        wire_head_t h;
        if (len != ACK_SIZE || wire_head_get(buf, (size_t)len, &h) != 0 || h.type != WIRE_ACK ||
            h.sender > (uint32_t)o->plan->ninst || o->slot[h.sender] < 0)
            continue; /* not from a consumer of ours: ignore it */
        out_peer_t *p = &o->peers[o->slot[h.sender]];
        uint64_t items, bytes;
        memcpy(&items, buf + WIRE_HEAD, 8);
        memcpy(&bytes, buf + WIRE_HEAD + 8, 8);
        /* Acks are cumulative; an old one arriving late changes nothing. */
        if (items <= p->sent_items && items >= p->acked_items) {
            p->acked_items = items;
            p->acked_bytes = bytes <= p->sent_bytes ? bytes : p->sent_bytes;
        }
        if (h.flags & WIRE_ACK_CLOSED)
            p->closed = true;
        n++;
    }
    if (n)
        o->all_closed = dn_closed(o, o->root);
    return n;
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

static void free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
}

edge_out_t *edge_out_new(void *zctx, const plan_t *plan, int self, const char *dir,
                         edge_wait_fn wait, void *owner, char *err, size_t errcap)
{
    const plan_inst_t *pi = &plan->inst[self];
    edge_out_t *o = calloc(1, sizeof *o);
    if (!o)
        goto oom;
    o->plan = plan;
    o->self = self;
    o->root = pi->out;
    o->wait = wait;
    o->owner = owner;
    o->slot = slot_map(plan);
    o->peers = calloc((size_t)pi->nconsumers, sizeof *o->peers);
    o->delivered = calloc((size_t)plan->ndn, 1);
    o->touched = calloc((size_t)plan->ndn, sizeof *o->touched);
    o->cap = 16384;
    o->buf = malloc(o->cap);
    if (!o->slot || !o->peers || !o->delivered || !o->touched || !o->buf)
        goto oom;
    o->len = WIRE_HEAD;
    o->ackin = open_socket(zctx, ZMQ_PULL, dir, 'a', self, true, err, errcap);
    if (!o->ackin)
        goto fail;
    uint64_t min_items = UINT64_MAX, min_bytes = UINT64_MAX;
    for (int k = 0; k < pi->nconsumers; k++) {
        out_peer_t *p = &o->peers[k];
        p->id = pi->consumers[k];
        p->win_items = plan_window_items(plan, p->id);
        p->win_bytes = plan_window_bytes(plan, p->id);
        min_items = p->win_items < min_items ? p->win_items : min_items;
        min_bytes = p->win_bytes < min_bytes ? p->win_bytes : min_bytes;
        o->slot[p->id] = k;
        p->sock = open_socket(zctx, ZMQ_PUSH, dir, 'i', p->id, false, err, errcap);
        o->npeers++;
        if (!p->sock)
            goto fail;
    }
    o->choice = has_choice(plan, o->root);
    o->batch_items = min_items / 4 < BATCH_ITEMS_MAX ? min_items / 4 : BATCH_ITEMS_MAX;
    o->batch_bytes = min_bytes / 4 < BATCH_BYTES_MAX ? min_bytes / 4 : BATCH_BYTES_MAX;
    if (o->batch_items < 1)
        o->batch_items = 1;
    if (o->batch_bytes < 1)
        o->batch_bytes = 1;
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
        if (o->peers[k].sock)
            zmq_close(o->peers[k].sock);
    if (o->ackin)
        zmq_close(o->ackin);
    free(o->peers);
    free(o->slot);
    free(o->delivered);
    free(o->touched);
    free(o->buf);
    free(o);
    *op = NULL;
}

int edge_out_flush(edge_out_t *o)
{
    if (o->count == 0)
        return 0;
    if (o->all_closed) {
        o->count = 0;
        o->len = WIRE_HEAD;
        return MPX_ESTOPPED;
    }
    wire_head_put(o->buf, &(wire_head_t){WIRE_DATA, 0, (uint32_t)o->self, o->count});
    zmq_msg_t msg;
    if (o->len <= COPY_MAX) {
        if (zmq_msg_init_size(&msg, o->len) != 0)
            return MPX_ENOMEM;
        memcpy(zmq_msg_data(&msg), o->buf, o->len);
    } else {
        if (zmq_msg_init_data(&msg, o->buf, o->len, free_buf, NULL) != 0)
            return MPX_ENOMEM;
        o->buf = NULL;
        o->cap = 0;
    }
    uint64_t k = o->count, b = o->len - WIRE_HEAD;
    o->count = 0;
    o->len = WIRE_HEAD;
    o->sent_at = ticks_now();
    /* Reading an empty zmq socket costs a system call, so acks are read
     * only when credit runs short, or once per batch when a parallel
     * choice needs fresh loads. */
    if (o->choice)
        read_acks(o);
    int rc;
    for (;;) {
        rc = deliver(o, o->root, &msg, k, b);
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
    zmq_msg_close(&msg);
    if (rc < 0)
        return rc;
    return o->all_closed ? MPX_ESTOPPED : 0;
}

uint8_t *edge_out_reserve(edge_out_t *o, size_t size, int *rc)
{
    *rc = 0;
    if (o->all_closed) {
        *rc = MPX_ESTOPPED;
        return NULL;
    }
    if (o->count > 0 && o->len - WIRE_HEAD + size > o->batch_bytes) {
        *rc = edge_out_flush(o);
        if (*rc < 0)
            return NULL;
    }
    if (o->len + size > o->cap) {
        size_t cap = o->cap ? o->cap : 16384;
        while (cap < o->len + size)
            cap *= 2;
        uint8_t *b = realloc(o->buf, cap);
        if (!b) {
            *rc = MPX_ENOMEM;
            return NULL;
        }
        o->buf = b;
        o->cap = cap;
    }
    return o->buf + o->len;
}

int edge_out_commit(edge_out_t *o, size_t size)
{
    o->len += size;
    o->count++;
    o->items++;
    if (o->count >= o->batch_items || o->len - WIRE_HEAD >= o->batch_bytes)
        return edge_out_flush(o);
    uint64_t now = ticks_now();
    if (o->count == 1) {
        o->first_at = now;
        /* A producer that was quiet is probably sporadic: latency first. */
        if (now - o->sent_at >= QUIET_TICKS)
            return edge_out_flush(o);
        return 0;
    }
    return now - o->first_at >= DEFER_TICKS ? edge_out_flush(o) : 0;
}

int edge_out_tick(edge_out_t *o)
{
    if (o->count > 0 && ticks_now() - o->first_at >= DEFER_TICKS)
        return edge_out_flush(o);
    return 0;
}

int edge_out_eos(edge_out_t *o)
{
    int rc = edge_out_flush(o);
    if (rc < 0 && rc != MPX_ESTOPPED)
        return rc;
    uint8_t buf[WIRE_HEAD];
    wire_head_put(buf, &(wire_head_t){WIRE_EOS, 0, (uint32_t)o->self, 0});
    for (int k = 0; k < o->npeers; k++)
        if (zmq_send(o->peers[k].sock, buf, sizeof buf, ZMQ_DONTWAIT) != (int)sizeof buf)
            return MPX_ESYS;
    return 0;
}

bool edge_out_closed(const edge_out_t *o) { return o->all_closed; }
uint64_t edge_out_items(const edge_out_t *o) { return o->items; }
