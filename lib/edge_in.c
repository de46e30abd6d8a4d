/* lib/edge_in.c — the consumer side of edges (see edge.h): one inbox for
 * every producer, acknowledgements that return credit, end of stream, and
 * the alignment of marks across the paths they come by.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "edge.h"
#include "edge_out_inline.h"
#include "mpx/error.h"
#include "ticks.h"

/* A producer that chooses among consumers measures the pace of each over
 * RATE_TICKS: one acknowledgement per such stretch from a consumer of slow
 * items is all it needs (each costs a wake-up of both processes).  A
 * chained input checkpoints more often, so that less is sent again after
 * a death. */
#define ACK_TICKS RATE_TICKS
#define CP_TICKS TICKS_US(500)

typedef struct in_peer {
    int id;
    uint32_t gen;         /* the producer's generation its stream comes from */
    void *ack;            /* to the producer's ack inbox; NULL after its EOS */
    uint64_t taken_items; /* records processed (or discarded) so far */
    uint64_t taken_bytes;
    uint64_t cp_items, cp_bytes;         /* taken at the last checkpoint (chained) */
    uint64_t ackable_items, ackable_bytes; /* what may be acknowledged */
    uint64_t acked_items; /* what the producer was last told */
    uint64_t acked_bytes;
    uint64_t acked_at;    /* ticks of the last ack */
    uint64_t ack_every, ack_every_bytes;
    uint64_t idle_every, idle_every_bytes; /* at a pause, when not prompt */
    bool prompt; /* credit on every pause too (plan_prompt_credit) */
    bool eos;
} in_peer_t;

/* The marks of one origin: the k-th mark it put arrives once through each
 * producer it reaches, and is complete when every such producer has
 * delivered it (or ended). */
typedef struct mark_track {
    uint32_t origin;
    char *relevant;  /* per peer: the origin's marks come through it */
    uint64_t *got;   /* per peer: marks received through it */
    uint64_t done;   /* marks handed on */
    uint64_t *vals;  /* values of marks done, done+1, ... not yet complete */
    uint64_t *seen;  /* when each of them first arrived (a count of marks) */
    size_t nvals, capvals;
} mark_track_t;

/* Checkpoints of a chained input (see edge.h): what had been taken from
 * each producer when the output had sent message `seq`; released, and
 * acknowledged, once the output has everything up to seq confirmed.  When
 * the ring is full the newest absorbs the next, which only delays it. */
#define CP_MAX 32

struct edge_in {
    const plan_t *plan;
    int self;
    uint32_t gen;
    edge_out_t *chain;
    uint64_t cp_seq[CP_MAX];
    uint64_t *cp_items, *cp_bytes; /* CP_MAX x npeers */
    int cp_head, cp_count;
    uint64_t cp_at;                /* ticks of the last checkpoint */
    uint64_t cur_rec;              /* index of the record handed out in its stream */
    void *sock;
    in_peer_t *peers;
    int npeers;
    int *slot;
    int eos_count;
    bool closed;
    uint64_t items, dropped;
    uint64_t stale; /* records from producers since replaced, dropped */
    uint64_t now; /* the caller's time (ticks), 0 when it gives none */

    zmq_msg_t msg;
    const uint8_t *data; /* the message's bytes: in msg, or in `aligned` */
    size_t len;
    uint8_t *aligned;    /* a copy of a message zmq placed off an 8-byte boundary */
    size_t aligned_cap;
    const uint8_t *cur;
    uint32_t left; /* records not yet taken from msg */
    bool forwarded; /* msg was sent on (edge_in_forwardable) */
    int cur_peer;

    bool taken;    /* a record was handed out and is not yet counted */
    uint32_t taken_size;
    mpx_item_t item;
    mpx_part_t *parts;
    size_t parts_cap;

    mark_track_t *tracks;
    int ntracks;
    bool marks_check; /* a mark or an end of stream came: look for complete marks */
    uint64_t marks_seen;
};

edge_in_t *edge_in_new(void *zctx, const plan_t *plan, int self, uint32_t gen,
                       const uint32_t *peer_gens, const char *dir, char *err, size_t errcap)
{
    const plan_inst_t *pi = &plan->inst[self];
    edge_in_t *in = calloc(1, sizeof *in);
    if (!in)
        goto oom;
    in->plan = plan;
    in->self = self;
    in->gen = gen;
    in->slot = edge_slot_map(plan);
    in->peers = calloc((size_t)(pi->nproducers ? pi->nproducers : 1), sizeof *in->peers);
    if (!in->slot || !in->peers)
        goto oom;
    zmq_msg_init(&in->msg);
    in->sock = edge_open_socket(zctx, ZMQ_PULL, dir, 'i', self, gen, true, err, errcap);
    if (!in->sock)
        goto fail;
    uint64_t win = plan_window_items(plan, self), win_bytes = plan_window_bytes(plan, self);
    for (int k = 0; k < pi->nproducers; k++) {
        in_peer_t *p = &in->peers[k];
        p->id = pi->producers[k];
        /* Credit returns when half a window is used, counted in items or
         * in bytes, whichever comes first: a producer of large items would
         * otherwise wait until the consumer went idle. */
        p->ack_every = edge_half(win);
        p->ack_every_bytes = edge_half(win_bytes);
        p->prompt = plan_prompt_credit(plan, p->id, self);
        p->idle_every = p->ack_every / 8 ? p->ack_every / 8 : 1;
        p->idle_every_bytes = p->ack_every_bytes / 8 ? p->ack_every_bytes / 8 : 1;
        in->slot[p->id] = k;
        p->gen = peer_gens ? peer_gens[p->id] : 0;
        p->ack = edge_open_socket(zctx, ZMQ_PUSH, dir, 'a', p->id, 0, false, err, errcap);
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
    for (int t = 0; t < in->ntracks; t++) {
        free(in->tracks[t].relevant);
        free(in->tracks[t].got);
        free(in->tracks[t].vals);
        free(in->tracks[t].seen);
    }
    free(in->tracks);
    free(in->cp_items);
    free(in->cp_bytes);
    free(in->peers);
    free(in->slot);
    free(in->parts);
    free(in->aligned);
    free(in);
    *inp = NULL;
}

void *edge_in_socket(edge_in_t *in) { return in->sock; }

static void send_ack(edge_in_t *in, in_peer_t *p)
{
    if (!p->ack)
        return;
    uint8_t buf[EDGE_ACK_SIZE];
    wire_head_put(buf, &(wire_head_t){WIRE_ACK, in->closed ? WIRE_ACK_CLOSED : 0,
                                      (uint32_t)in->self, 0, in->gen});
    uint32_t gens[2] = {p->gen, 0};
    memcpy(buf + WIRE_HEAD, &p->ackable_items, 8);
    memcpy(buf + WIRE_HEAD + 8, &p->ackable_bytes, 8);
    memcpy(buf + WIRE_HEAD + 16, gens, 8);
    /* No high-water mark: this never blocks, and acks are tiny. */
    int rc;
    while ((rc = zmq_send(p->ack, buf, sizeof buf, ZMQ_DONTWAIT)) < 0 && errno == EINTR)
        ;
    if (rc == (int)sizeof buf) {
        p->acked_items = p->ackable_items;
        p->acked_bytes = p->ackable_bytes;
        p->acked_at = in->now;
    }
}

/* Everything taken may be acknowledged (not chained, or closed). */
static void ack_taken(edge_in_t *in, in_peer_t *p)
{
    p->ackable_items = p->taken_items;
    p->ackable_bytes = p->taken_bytes;
    send_ack(in, p);
}

void edge_in_settle(edge_in_t *in)
{
    if (!in->chain)
        return;
    edge_out_poll(in->chain);
    uint64_t settled = edge_out_settled(in->chain);
    bool released = false;
    while (in->cp_count > 0 && in->cp_seq[in->cp_head] <= settled) {
        size_t at = (size_t)in->cp_head * (size_t)in->npeers;
        for (int k = 0; k < in->npeers; k++) {
            in_peer_t *p = &in->peers[k];
            /* A snapshot from before the producer's replacement is 0. */
            if (in->cp_items[at + k] > p->ackable_items) {
                p->ackable_items = in->cp_items[at + k];
                p->ackable_bytes = in->cp_bytes[at + k];
            }
        }
        in->cp_head = (in->cp_head + 1) % CP_MAX;
        in->cp_count--;
        released = true;
    }
    if (released)
        for (int k = 0; k < in->npeers; k++)
            if (in->peers[k].ackable_items != in->peers[k].acked_items)
                send_ack(in, &in->peers[k]);
}

/* Note what has been taken so far, to be acknowledged once the output has
 * everything it made of it confirmed.  The output is flushed first: what
 * waits in a batch has no sequence number yet. */
static void checkpoint(edge_in_t *in)
{
    edge_out_flush(in->chain); /* a failure shows at the stage's next put */
    int slot;
    if (in->cp_count == CP_MAX) {
        slot = (in->cp_head + CP_MAX - 1) % CP_MAX;
    } else {
        slot = (in->cp_head + in->cp_count) % CP_MAX;
        in->cp_count++;
    }
    in->cp_seq[slot] = edge_out_seq(in->chain);
    size_t at = (size_t)slot * (size_t)in->npeers;
    for (int k = 0; k < in->npeers; k++) {
        in_peer_t *p = &in->peers[k];
        in->cp_items[at + k] = p->cp_items = p->taken_items;
        in->cp_bytes[at + k] = p->cp_bytes = p->taken_bytes;
    }
    in->cp_at = in->now;
    edge_in_settle(in);
}

static bool checkpoint_due(const edge_in_t *in)
{
    for (int k = 0; k < in->npeers; k++)
        if (in->peers[k].taken_items != in->peers[k].cp_items)
            return true;
    return false;
}

static void count_taken(edge_in_t *in)
{
    if (!in->taken)
        return;
    in->taken = false;
    in_peer_t *p = &in->peers[in->cur_peer];
    p->taken_items++;
    p->taken_bytes += in->taken_size;
    /* Credit returns after half a window (in items or bytes), and, to a
     * producer that chooses between consumers, every ACK_TICKS while items
     * take long: that is how it learns the pace of a slow consumer.
     * Chained, the same points make checkpoints. */
    if (in->chain) {
        if (p->taken_items - p->cp_items >= p->ack_every ||
            p->taken_bytes - p->cp_bytes >= p->ack_every_bytes ||
            (in->now && in->now - in->cp_at >= CP_TICKS))
            checkpoint(in);
        return;
    }
    if (p->taken_items - p->acked_items >= p->ack_every ||
        p->taken_bytes - p->acked_bytes >= p->ack_every_bytes ||
        (p->prompt && in->now && in->now - p->acked_at >= ACK_TICKS))
        ack_taken(in, p);
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

/* The framing of a whole DATA message, for one discarded unread. */
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

/* ---- marks -------------------------------------------------------------- */

/* Instances whose main output the origin's marks reach (marks do not go
 * into side graphs). */
static void reach(const plan_t *plan, int d, char *seen, int *stack, int *top)
{
    const plan_dnode_t *dn = &plan->dn[d];
    if (dn->kind == DN_LEAF) {
        if (!seen[dn->target]) {
            seen[dn->target] = 1;
            stack[(*top)++] = dn->target;
        }
        return;
    }
    for (int i = 0; i < dn->count; i++)
        reach(plan, plan->kids[dn->first + i], seen, stack, top);
}

static mark_track_t *track_of(edge_in_t *in, uint32_t origin)
{
    for (int t = 0; t < in->ntracks; t++)
        if (in->tracks[t].origin == origin)
            return &in->tracks[t];
    int total = in->plan->ninst + 1;
    mark_track_t *tracks = realloc(in->tracks, ((size_t)in->ntracks + 1) * sizeof *tracks);
    if (!tracks)
        return NULL;
    in->tracks = tracks;
    mark_track_t *t = &tracks[in->ntracks];
    *t = (mark_track_t){.origin = origin};
    char *seen = calloc((size_t)total, 1);
    int *stack = malloc((size_t)total * sizeof *stack);
    t->relevant = calloc((size_t)in->npeers, 1);
    t->got = calloc((size_t)in->npeers, sizeof *t->got);
    if (!seen || !stack || !t->relevant || !t->got) {
        free(seen);
        free(stack);
        free(t->relevant);
        free(t->got);
        return NULL;
    }
    int top = 0;
    seen[origin] = 1;
    stack[top++] = (int)origin;
    while (top > 0) {
        int u = stack[--top];
        if (u < in->plan->ninst && in->plan->inst[u].out >= 0)
            reach(in->plan, in->plan->inst[u].out, seen, stack, &top);
    }
    for (int k = 0; k < in->npeers; k++)
        t->relevant[k] = seen[in->peers[k].id];
    free(seen);
    free(stack);
    in->ntracks++;
    return t;
}

static int note_mark(edge_in_t *in, int k, uint32_t origin, uint64_t value, char *err,
                     size_t errcap)
{
    if (origin >= (uint32_t)in->plan->ninst)
        return proto_error(err, errcap, "mark origin", (uint32_t)in->peers[k].id);
    mark_track_t *t = track_of(in, origin);
    if (!t) {
        snprintf(err, errcap, "out of memory");
        return MPX_ENOMEM;
    }
    if (!t->relevant[k])
        return proto_error(err, errcap, "mark from a path it cannot take",
                           (uint32_t)in->peers[k].id);
    uint64_t idx = t->got[k]++;
    if (idx == t->done + t->nvals) {
        if (t->nvals == t->capvals) {
            size_t cap = t->capvals ? 2 * t->capvals : 8;
            uint64_t *v = realloc(t->vals, cap * sizeof *v);
            if (v)
                t->vals = v;
            uint64_t *w = v ? realloc(t->seen, cap * sizeof *w) : NULL;
            if (!w) {
                snprintf(err, errcap, "out of memory");
                return MPX_ENOMEM;
            }
            t->seen = w;
            t->capvals = cap;
        }
        t->seen[t->nvals] = in->marks_seen++;
        t->vals[t->nvals++] = value;
    }
    in->marks_check = true;
    return 0;
}

/* Hand on, of the marks every path has delivered, the one that arrived
 * first: marks of different origins keep their order. */
static bool complete_mark(edge_in_t *in, edge_mark_t *mark)
{
    if (!in->marks_check)
        return false;
    mark_track_t *best = NULL;
    for (int ti = 0; ti < in->ntracks; ti++) {
        mark_track_t *t = &in->tracks[ti];
        if (t->nvals == 0 || (best && best->seen[0] < t->seen[0]))
            continue;
        bool all = true;
        for (int k = 0; k < in->npeers && all; k++)
            all = !t->relevant[k] || in->peers[k].eos || t->got[k] > t->done;
        if (all)
            best = t;
    }
    if (!best) {
        in->marks_check = false;
        return false;
    }
    mark->origin = best->origin;
    mark->value = best->vals[0];
    memmove(best->vals, best->vals + 1, (best->nvals - 1) * sizeof *best->vals);
    memmove(best->seen, best->seen + 1, (best->nvals - 1) * sizeof *best->seen);
    best->nvals--;
    best->done++;
    return true;
}

/* ---- taking records ----------------------------------------------------- */

/* Producer k was replaced: its new stream counts from zero.  Checkpoints
 * of the old stream release nothing of the new one. */
static void new_generation(edge_in_t *in, int k, uint32_t gen)
{
    in_peer_t *p = &in->peers[k];
    p->gen = gen;
    if (p->eos) { /* not sent by the supervisor's rules; taken back if it happens */
        p->eos = false;
        in->eos_count--;
    }
    p->taken_items = p->taken_bytes = p->cp_items = p->cp_bytes = 0;
    p->ackable_items = p->ackable_bytes = p->acked_items = p->acked_bytes = 0;
    for (int c = 0; in->cp_items && c < CP_MAX; c++) {
        in->cp_items[(size_t)c * (size_t)in->npeers + (size_t)k] = 0;
        in->cp_bytes[(size_t)c * (size_t)in->npeers + (size_t)k] = 0;
    }
}

int edge_in_next(edge_in_t *in, mpx_item_t **it, edge_mark_t *mark, char *err, size_t errcap)
{
    count_taken(in);
    for (;;) {
        if (!in->closed && complete_mark(in, mark))
            return 2;
        if (in->left > 0) {
            /* Records are checked one at a time as they are taken: every
             * step below is bounded by the bytes received. */
            const uint8_t *rec = in->cur;
            uint32_t size;
            uint16_t nparts;
            if (wire_rec_peek(rec, (size_t)(in->data + in->len - rec), &size, &nparts) != 0)
                return proto_error(err, errcap, "record", (uint32_t)in->peers[in->cur_peer].id);
            in->cur += size;
            in->taken = true;
            in->taken_size = size;
            if (--in->left == 0 && in->cur != in->data + in->len)
                return proto_error(err, errcap, "data", (uint32_t)in->peers[in->cur_peer].id);
            in_peer_t *cp = &in->peers[in->cur_peer];
            in->cur_rec = cp->taken_items;
            uint32_t flags;
            memcpy(&flags, rec + 12, 4);
            if (flags & WIRE_REC_MARK) {
                uint32_t origin;
                uint64_t value;
                if (wire_mark_get(rec, size, &origin, &value) != 1)
                    return proto_error(err, errcap, "mark", (uint32_t)in->peers[in->cur_peer].id);
                count_taken(in); /* a mark is processed on arrival */
                int rc = note_mark(in, in->cur_peer, origin, value, err, errcap);
                if (rc < 0)
                    return rc;
                continue;
            }
            if (nparts > in->parts_cap && parts_reserve(in, nparts) != 0) {
                snprintf(err, errcap, "out of memory");
                return MPX_ENOMEM;
            }
            if (wire_rec_decode(rec, size, &in->item, in->parts) != 0)
                return proto_error(err, errcap, "record", (uint32_t)in->peers[in->cur_peer].id);
            in->items++;
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
        if ((uintptr_t)data & 7) {
            /* zmq hands small messages out of its read buffer at any
             * offset; parts are promised 8-byte aligned. */
            if (len > in->aligned_cap) {
                uint8_t *a = realloc(in->aligned, len);
                if (!a) {
                    snprintf(err, errcap, "out of memory");
                    return MPX_ENOMEM;
                }
                in->aligned = a;
                in->aligned_cap = len;
            }
            memcpy(in->aligned, data, len);
            data = in->aligned;
        }
        in->data = data;
        in->len = len;
        in->forwarded = false;
        wire_head_t h;
        if (wire_head_get(data, len, &h) != 0)
            return proto_error(err, errcap, "header", 0);
        int k = h.sender < (uint32_t)in->plan->ninst ? in->slot[h.sender] : -1;
        if (k < 0)
            return proto_error(err, errcap, "unknown sender", h.sender);
        in_peer_t *p = &in->peers[k];
        if (p->eos && h.gen == p->gen)
            return proto_error(err, errcap, "message after end of stream", h.sender);
        if (h.gen < p->gen) {
            /* From a producer that died and was replaced: it never had what
             * it made of its input confirmed, so that input is being sent
             * again and what it made is dropped here. */
            if (h.type == WIRE_DATA)
                in->stale += h.count;
            continue;
        }
        if (h.gen > p->gen)
            new_generation(in, k, h.gen);
        if (h.type == WIRE_ASK && len == WIRE_HEAD) {
            /* The producer waits for credit it would not get otherwise:
             * everything it sent before has been taken by now. */
            if (!in->chain)
                ack_taken(in, p);
            continue;
        }
        if (h.type == WIRE_EOS && len == WIRE_HEAD) {
            p->eos = true;
            in->eos_count++;
            in->marks_check = true;
            /* It sends nothing more, so it needs no more credit; a chained
             * input still acknowledges what it took. */
            if (!in->chain) {
                zmq_close(p->ack);
                p->ack = NULL;
            }
            continue;
        }
        if (h.type != WIRE_DATA || h.count == 0 ||
            (in->closed && check_records(data + WIRE_HEAD, len - WIRE_HEAD, h.count) != 0))
            return proto_error(err, errcap, "data", h.sender);
        if (in->closed) {
            p->taken_items += h.count;
            p->taken_bytes += len - WIRE_HEAD;
            in->dropped += h.count;
            ack_taken(in, p);
            continue;
        }
        in->cur = data + WIRE_HEAD;
        in->left = h.count;
        in->cur_peer = k;
    }
}

bool edge_in_complete(const edge_in_t *in)
{
    /* At the end every mark is complete; they go on before the end does. */
    return in->eos_count == in->npeers && in->left == 0 && (in->closed || !in->marks_check);
}

void edge_in_idle(edge_in_t *in)
{
    count_taken(in);
    if (in->chain && !in->closed) {
        if (checkpoint_due(in))
            checkpoint(in);
        else
            edge_in_settle(in);
        return;
    }
    /* A producer that needs it hears of every pause (plan_prompt_credit).
     * Another hears of one only when a sixteenth of its window or more
     * waits to be acknowledged: a stream that outruns us gets its credit
     * early, while an edge carrying an item at a time (whose producer has
     * credit to spare) carries no acknowledgement per item. */
    for (int k = 0; k < in->npeers; k++) {
        in_peer_t *p = &in->peers[k];
        if (p->taken_items != p->acked_items &&
            (p->prompt || p->taken_items - p->acked_items >= p->idle_every ||
             p->taken_bytes - p->acked_bytes >= p->idle_every_bytes))
            ack_taken(in, p);
    }
}

void edge_in_chain(edge_in_t *in, edge_out_t *out)
{
    size_t n = (size_t)CP_MAX * (size_t)(in->npeers ? in->npeers : 1);
    in->cp_items = calloc(n, sizeof *in->cp_items);
    in->cp_bytes = calloc(n, sizeof *in->cp_bytes);
    /* Without room for checkpoints the input simply is not chained. */
    if (in->cp_items && in->cp_bytes)
        in->chain = out;
}

bool edge_in_settling(const edge_in_t *in) { return in->chain && in->cp_count > 0; }

void edge_in_settle_all(edge_in_t *in)
{
    count_taken(in);
    if (!in->chain || in->closed)
        return;
    if (checkpoint_due(in))
        checkpoint(in);
    else
        edge_in_settle(in);
}

zmq_msg_t *edge_in_forwardable(edge_in_t *in, const mpx_item_t *it)
{
    if (it != &in->item || !in->taken || in->closed || in->forwarded ||
        in->data != zmq_msg_data(&in->msg) || it->rec != in->data + WIRE_HEAD ||
        (size_t)it->size != in->len - WIRE_HEAD)
        return NULL;
    in->forwarded = true;
    return &in->msg;
}

void edge_in_current(const edge_in_t *in, int *producer, uint32_t *gen, uint64_t *rec)
{
    const in_peer_t *p = &in->peers[in->cur_peer];
    *producer = p->id;
    *gen = p->gen;
    *rec = in->cur_rec;
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
        const uint8_t *end = in->data + in->len;
        p->taken_items += in->left;
        p->taken_bytes += (uint64_t)(end - in->cur);
        in->dropped += in->left;
        in->left = 0;
    }
    /* A stopped stage is not recovered: what it took is acknowledged. */
    in->cp_count = 0;
    for (int k = 0; k < in->npeers; k++)
        ack_taken(in, &in->peers[k]);
}

void edge_in_time(edge_in_t *in, uint64_t now) { in->now = now; }
uint64_t edge_in_items(const edge_in_t *in) { return in->items; }
uint64_t edge_in_dropped(const edge_in_t *in) { return in->dropped + in->stale; }
int edge_in_peers(const edge_in_t *in) { return in->npeers; }

void edge_in_peer(const edge_in_t *in, int k, int *producer, uint64_t *taken)
{
    *producer = in->peers[k].id;
    *taken = in->peers[k].taken_items;
}
