/* lib/edge_in.c — the consumer side of edges (see edge.h): one inbox for
 * every producer, the credit rule, confirmations, end of stream, and the
 * alignment of marks across the paths they come by.
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
#include "pool.h"
#include "ticks.h"

/* A chained input checkpoints every half window, or this often while
 * items are slow, so that less is sent again after a death.  A consumer
 * confirms to a producer that keeps what it sends as often (cp_every).
 * Half a window is the credit rule's own step (a grant comes when half
 * the target is left, and the target is the window for small items), so
 * confirmations ride on the grants instead of adding messages between
 * them: with a quarter, the recoverable small_items run paid 13-38 ns of
 * CPU per item more than the plain one, with half -13 to 20 (eight
 * interleaved runs each; README, Benchmarks). */
#define CP_TICKS TICKS_US(1000)

typedef struct in_peer {
    int id;
    uint32_t gen;  /* the producer's generation its stream comes from */
    uint8_t rid[EDGE_RID_SIZE];
    bool heard;    /* it has sent something in this generation: replies reach it */
    bool confirms; /* it keeps what it sends until confirmed (plan_confirms) */
    bool eos;
    uint64_t taken_items, taken_bytes; /* records taken (or discarded): for credit */
    uint64_t grant_items, grant_bytes; /* what it may send, as it was told */
    /* Taken this far, the rule is looked at again (half the target, or of
     * the byte window, before the grant). */
    uint64_t regrant_items, regrant_bytes;
    uint64_t done_items;  /* records processed (taken, but for the one in hand) */
    uint64_t cp_items;    /* done at the last checkpoint (chained) */
    uint64_t confirmable; /* what may be confirmed now */
    uint64_t confirmed;   /* what it was last told */
    uint64_t told_at;     /* ticks of the last credit message */
    /* Elastic groups (edge.h): which of each origin's marks will not come
     * through this producer, as notices said (the least of them); until
     * one came, none is known. */
    bool noticed;
    wire_notice_pair_t *floors;
    uint32_t nfloors;
    bool leave_told; /* a leaver's word reached it */
    size_t stashed;  /* its messages in the stash (edge_in_gate_scan) */
} in_peer_t;

/* The marks of one origin: its mark number k arrives once through each
 * producer it reaches, and is complete when every such producer has
 * delivered it, or a later one (a stage may keep a mark to itself), or
 * ended.  Marks carry their number, so a path that joined late (an
 * elastic group's new instance) is waited for only on the marks that can
 * come through it. */
typedef struct pending_mark {
    uint64_t index, value;
    uint64_t seen; /* when it first arrived (a count of marks) */
} pending_mark_t;

typedef struct mark_track {
    uint32_t origin;
    char *relevant;  /* per peer: the origin's marks come through it */
    uint64_t *got;   /* per peer: every mark below this came through it (or never will) */
    char *by_mark;   /* per peer: got comes from a mark it sent, not from notices */
    uint64_t done;   /* marks below this were handed on (or skipped) */
    pending_mark_t *pend; /* arrived, not yet complete, by index */
    size_t npend, cappend;
} mark_track_t;

/* Checkpoints of a chained input (see edge.h): what had been processed of
 * each producer's stream when the output had sent message `seq`; they may
 * be confirmed once the output has everything up to seq confirmed.  When
 * the ring is full the newest absorbs the next, which only delays it. */
#define CP_MAX 32

struct edge_in {
    const plan_t *plan;
    int self;
    uint32_t gen;
    edge_out_t *chain;
    uint64_t cp_seq[CP_MAX];
    uint64_t *cp_items;            /* CP_MAX x npeers */
    int cp_head, cp_count;
    uint64_t cp_at;                /* ticks of the last checkpoint */
    uint64_t cp_out;               /* the output's sequence at the last checkpoint */
    uint64_t closed_out;           /* closed: the output's sequence to see confirmed */
    uint64_t cp_every;             /* records between checkpoints */
    uint64_t cur_rec;              /* index of the record handed out in its stream */
    xport_t *sock;
    uint64_t refused; /* xport_refused when last looked at */
    in_peer_t *peers;
    int npeers;
    int *slot;
    int eos_count;
    bool closed;
    uint64_t items, dropped;
    uint64_t stale; /* records from producers since replaced, dropped */
    uint64_t now;   /* the caller's time (ticks), 0 when it gives none */
    /* The time of the last take: the caller's, or read when first needed
     * (clock_at), 0 until then.  A program reading output takes an item
     * every few tens of nanoseconds and needs the time only at grants,
     * confirmations and pauses, and reading the clock (about 10 ns on the
     * development machine's guest) was a fixed part of every take. */
    uint64_t clock;

    /* The credit rule (edge.h). */
    uint64_t win_items, win_bytes; /* each producer's window */
    uint64_t start_items;
    /* Our pace, measured over stretches of at least PACE_ITEMS items: the
     * time spent neither waiting for input nor paused, per item taken. */
    uint64_t pace;      /* ticks per item, smoothed; 0 until measured */
    uint64_t pace_at;   /* ticks when the current stretch began */
    uint64_t pace_from; /* items taken then */
    uint64_t idle_at;   /* ticks when the current pause began; 0: busy */
    uint64_t idle_sum;  /* paused within the stretch */

    zmq_msg_t msg;
    const uint8_t *data; /* the message's bytes: in msg, or in `aligned` */
    size_t len;
    const uint8_t *end;  /* data + len */
    uint8_t *aligned;    /* a copy of a message zmq placed off an 8-byte boundary */
    uint8_t *copied;     /* the record in hand, copied out of the pool (copy_record) */
    size_t aligned_cap;
    const uint8_t *cur;
    uint32_t left; /* records not yet taken from msg */
    /* The message in hand is a run of int64 (WIRE_DATA_ARITH: its next
     * value and step) or packed int64 (WIRE_DATA_I64: pk, the next
     * value); each item taken is written as a short record into
     * arith_rec, where the item points until the next take. */
    bool arith;
    uint64_t arith_v, arith_step;
    const uint8_t *pk;
    uint64_t arith_rec[WIRE_ARITH_WEIGHT / 8];
    bool forwarded; /* msg was sent on (edge_in_forwardable) */
    int cur_peer;

    bool in_hand;  /* an item was handed out and is not yet counted done */
    bool done_on_take; /* ... counted done for confirmations when taken */
    int hand_peer;
    mpx_item_t item;
    mpx_part_t *parts;
    size_t parts_cap;

    mark_track_t *tracks;
    int ntracks;
    bool marks_check; /* a mark or an end of stream came: look for complete marks */
    uint64_t marks_seen;

    /* Elastic groups (edge.h). */
    edge_out_t *out; /* where notices about our siblings go on */
    bool gated;      /* a joiner: no mark goes on before every producer's notice */
    bool leaving;    /* our group let us go: producers send us their end */
    /* A joiner looking for its producers' notices before it starts
     * (edge_in_gate_scan): what else comes waits here, untaken, in order,
     * and is read first afterwards. */
    bool scanning;
    zmq_msg_t *stash;
    int *stash_peer;
    size_t stash_head, nstash, capstash;
};

static int parts_reserve(edge_in_t *in, size_t n);

static inline uint64_t clock_at(edge_in_t *in)
{
    if (!in->clock)
        in->clock = ticks_now();
    return in->clock;
}

static void fresh_peer(edge_in_t *in, in_peer_t *p, uint32_t gen)
{
    p->gen = gen;
    edge_rid(p->rid, p->id, gen);
    p->heard = p->eos = false;
    p->noticed = p->leave_told = false;
    free(p->floors);
    p->floors = NULL;
    p->nfloors = 0;
    p->taken_items = p->taken_bytes = p->done_items = p->cp_items = 0;
    p->confirmable = p->confirmed = 0;
    p->grant_items = in->start_items;
    p->grant_bytes = in->win_bytes;
    p->regrant_items = p->grant_items - p->grant_items / 2;
    p->regrant_bytes = p->grant_bytes - in->win_bytes / 2;
}

edge_in_t *edge_in_new(const plan_t *plan, int self, uint32_t gen,
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
    in->sock = edge_open_inbox(dir, self, gen, err, errcap);
    if (!in->sock)
        goto fail;
    in->win_items = plan_window_items(plan, self);
    in->win_bytes = plan_window_bytes(plan, self);
    in->start_items = edge_start_items(plan, self);
    in->cp_every = in->win_items / 2 ? in->win_items / 2 : 1;
    in->pace_at = ticks_now();
    if (parts_reserve(in, 4) != 0)
        goto oom;
    for (int k = 0; k < pi->nproducers; k++) {
        in_peer_t *p = &in->peers[k];
        p->id = pi->producers[k];
        p->confirms = plan_confirms(plan, p->id, self);
        in->slot[p->id] = k;
        uint32_t g = peer_gens ? peer_gens[p->id] : 0;
        fresh_peer(in, p, g & ~EDGE_GEN_FLAGS);
        in->npeers++;
        /* An elastic group's slot without a process: it has ended, until a
         * notice or its own stream says that it runs again. */
        if (g & EDGE_GEN_OFF) {
            p->eos = true;
            in->eos_count++;
        }
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
    xport_destroy(&in->sock);
    zmq_msg_close(&in->msg);
    for (int t = 0; t < in->ntracks; t++) {
        free(in->tracks[t].relevant);
        free(in->tracks[t].got);
        free(in->tracks[t].by_mark);
        free(in->tracks[t].pend);
    }
    free(in->tracks);
    for (int k = 0; in->peers && k < in->npeers; k++)
        free(in->peers[k].floors);
    for (size_t i = 0; i < in->nstash; i++)
        zmq_msg_close(&in->stash[(in->stash_head + i) % in->capstash]);
    free(in->stash);
    free(in->stash_peer);
    free(in->cp_items);
    free(in->peers);
    free(in->slot);
    free(in->parts);
    free(in->aligned);
    free(in->copied);
    free(in);
    *inp = NULL;
}

void *edge_in_socket(edge_in_t *in) { return in->sock; }

bool edge_in_unwritten(const edge_in_t *in)
{
    return in->sock && xport_unwritten(in->sock);
}

/* ---- credit and confirmations ------------------------------------------- */

static void send_credit(edge_in_t *in, in_peer_t *p)
{
    /* One that has not sent anything yet needs nothing: it starts with
     * credit (a leaver's word is tried all the same: edge_in_leave). */
    if (!p->heard && !in->leaving)
        return;
    uint8_t buf[EDGE_CREDIT_SIZE];
    uint8_t flags = (uint8_t)((in->closed ? WIRE_CREDIT_CLOSED : 0) |
                              (in->leaving ? WIRE_CREDIT_LEAVE : 0) |
                              (p->eos ? WIRE_CREDIT_ENDED : 0));
    wire_head_put(buf, &(wire_head_t){WIRE_CREDIT, flags, (uint32_t)in->self, 0, in->gen});
    wire_credit_t c = {p->grant_items, p->grant_bytes, p->confirmable, p->gen, 0};
    memcpy(buf + WIRE_HEAD, &c, sizeof c);
    /* This never blocks (what the socket does not take waits in the
     * process).  A producer that died since is unreachable (EHOSTUNREACH):
     * its replacement starts afresh. */
    int rc = xport_send_buf(in->sock, p->rid, EDGE_RID_SIZE, buf, sizeof buf);
    /* Told, or gone (its stream ends with it): either way nothing is
     * owed to this stream until it has more. */
    if (rc >= 0 || errno == EHOSTUNREACH)
        p->confirmed = p->confirmable;
    if (rc >= 0 && in->leaving)
        p->leave_told = true;
    /* Any other failure is tried again when the next word is due, not at
     * once: edge_in_due_ms would have the caller spin on it. */
    p->told_at = clock_at(in);
}

#define PACE_ITEMS 8

/* Close the current stretch of measuring, when long enough. */
static void measure(edge_in_t *in)
{
    uint64_t n = in->items - in->pace_from;
    if (n < PACE_ITEMS)
        return;
    uint64_t now = clock_at(in);
    uint64_t span = now - in->pace_at;
    uint64_t idle = in->idle_sum + (in->idle_at ? now - in->idle_at : 0);
    uint64_t busy = span > idle ? span - idle : 0;
    uint64_t sample = busy / n ? busy / n : 1;
    in->pace = in->pace ? (in->pace + sample) / 2 : sample;
    in->pace_at = now;
    in->pace_from = in->items;
    in->idle_sum = 0;
    if (in->idle_at)
        in->idle_at = now;
}

/* The credit rule's target: the records each producer may have sent
 * beyond what we took, EDGE_TARGET_TICKS of our work at our pace. */
static uint64_t target(edge_in_t *in)
{
    measure(in);
    if (!in->pace)
        return in->start_items;
    uint64_t t = EDGE_TARGET_TICKS / in->pace / (uint64_t)(in->npeers ? in->npeers : 1);
    t = t > EDGE_TARGET_MIN ? t : EDGE_TARGET_MIN;
    return t < in->win_items ? t : in->win_items;
}

/* The rule (edge.h): once what producer p may still send is down to half
 * the target, or its byte allowance to half the window, grant up to the
 * target again.  A chained input never grants more than a window beyond
 * what it can confirm: that bounds what its producers keep.  With
 * `confirm`, a credit message goes out anyway when there is something
 * new to confirm.  (model: c_grant, s_grant in edge.pml) */
static void grant(edge_in_t *in, in_peer_t *p, bool confirm)
{
    /* One not heard from keeps the credit it starts with: a grant raised
     * now could not be told, and the threshold it sets would wait for
     * takes that credit never allows. */
    if (!p->heard)
        return;
    uint64_t t = target(in);
    uint64_t left = p->grant_items > p->taken_items ? p->grant_items - p->taken_items : 0;
    bool low_bytes = (int64_t)(p->grant_bytes - p->taken_bytes) <= (int64_t)(in->win_bytes / 2);
    bool more = false, capped = false;
    if (left <= t / 2 || low_bytes || in->closed) {
        uint64_t items = p->taken_items + t, bytes = p->taken_bytes + in->win_bytes;
        if (in->chain && !in->closed && items > p->confirmable + 2 * in->win_items) {
            items = p->confirmable + 2 * in->win_items;
            capped = true;
        }
        if (items > p->grant_items) {
            p->grant_items = items;
            more = true;
        }
        /* Bytes go with items, or alone once they run low: not for every
         * record while the cap holds the items back. */
        if (bytes > p->grant_bytes && (more || low_bytes || in->closed)) {
            p->grant_bytes = bytes;
            more = true;
        }
    }
    /* Held back by the cap, the rule has nothing to add until more can be
     * confirmed: edge_in_settle looks again then. */
    p->regrant_items = capped ? UINT64_MAX : p->grant_items > t / 2 ? p->grant_items - t / 2 : 0;
    p->regrant_bytes = p->grant_bytes - in->win_bytes / 2;
    if (more || (confirm && p->confirms && p->confirmable != p->confirmed))
        send_credit(in, p);
}

/* The rule's test, as cheap as it can be for every record taken. */
static inline void grant_due(edge_in_t *in, in_peer_t *p)
{
    if (p->taken_items >= p->regrant_items || (int64_t)(p->taken_bytes - p->regrant_bytes) >= 0)
        grant(in, p, false);
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
            if (in->cp_items[at + k] > p->confirmable)
                p->confirmable = in->cp_items[at + k];
        }
        in->cp_head = (in->cp_head + 1) % CP_MAX;
        in->cp_count--;
        released = true;
    }
    if (released)
        for (int k = 0; k < in->npeers; k++)
            grant(in, &in->peers[k], true);
}

/* Note what has been processed so far, to be confirmed once the output
 * has everything it made of it confirmed.  The output is flushed first:
 * what waits in a batch has no sequence number yet.  (model: checkpoint,
 * then settle, in edge.pml's Consumer) */
static void checkpoint(edge_in_t *in)
{
    /* A failure shows at the stage's next flush, which fails it.  Once a
     * batch was dropped, nothing more is confirmed: what it came from is
     * sent again after the stage's end. */
    if (edge_out_flush(in->chain) < 0 && edge_out_lost(in->chain))
        return;
    int slot;
    if (in->cp_count == CP_MAX) {
        slot = (in->cp_head + CP_MAX - 1) % CP_MAX;
    } else {
        slot = (in->cp_head + in->cp_count) % CP_MAX;
        in->cp_count++;
    }
    in->cp_seq[slot] = in->cp_out = edge_out_seq(in->chain);
    size_t at = (size_t)slot * (size_t)in->npeers;
    for (int k = 0; k < in->npeers; k++) {
        in_peer_t *p = &in->peers[k];
        in->cp_items[at + k] = p->cp_items = p->done_items;
    }
    in->cp_at = clock_at(in);
    edge_in_settle(in);
}

static bool checkpoint_due(const edge_in_t *in)
{
    for (int k = 0; k < in->npeers; k++)
        if (in->peers[k].done_items != in->peers[k].cp_items)
            return true;
    return false;
}

/* done_one's part for a chained input or a pair that confirms. */
static void done_confirm(edge_in_t *in, in_peer_t *p)
{
    if (in->chain) {
        if (p->done_items - p->cp_items >= in->cp_every || clock_at(in) - in->cp_at >= CP_TICKS)
            checkpoint(in);
        return;
    }
    p->confirmable = p->done_items;
    if (p->confirmable - p->confirmed >= in->cp_every ||
        clock_at(in) - p->told_at >= EDGE_CONFIRM_TICKS)
        send_credit(in, p);
}

/* One more record of p's stream is processed.  Inline: every record
 * taken comes here; only a chained input or a pair that confirms has more
 * to do. */
static inline void done_one(edge_in_t *in, in_peer_t *p)
{
    p->done_items++;
    if (__builtin_expect(in->chain != NULL || p->confirms, 0))
        done_confirm(in, p);
}

/* ---- holds of pool blocks ------------------------------------------------
 * A record that refers to pool blocks (lib/pool.h) is kept, with its
 * blocks held, by its producer until we confirm it (edge_out.c).  We take
 * holds of our own when we read it (pool_hold_if: only while the
 * producer's are there) and drop them when done with it; a record we
 * discard unread needs nothing.  What we hold when we die the supervisor
 * reclaims. */

static void release_ref(void *ctx, uint32_t blk)
{
    edge_in_t *in = ctx;
    (void)pool_release(in->plan->pool, blk, (pool_holder_t){(uint32_t)in->self, in->gen});
}

static void release_records(edge_in_t *in, const uint8_t *body, size_t len, uint32_t count)
{
    if (in->plan->pool)
        wire_pool_refs(body, len, count, release_ref, in);
}

typedef struct take {
    edge_in_t *in;
    pool_holder_t giver;
    int rc;
    size_t taken;
} take_t;

static void take_ref(void *ctx, uint32_t blk)
{
    take_t *t = ctx;
    if (t->rc == 0 && (t->rc = pool_hold_if(t->in->plan->pool, blk,
                                            (pool_holder_t){(uint32_t)t->in->self, t->in->gen},
                                            t->giver)) == 0)
        t->taken++;
}

static void untake_ref(void *ctx, uint32_t blk)
{
    take_t *t = ctx;
    if (t->taken > 0) {
        t->taken--;
        release_ref(t->in, blk);
    }
}

/* Our holds of the blocks of the record at rec, from producer p: 0, or
 * MPX_ESTOPPED when its producer died and the reference is stale (no hold
 * taken), or another error. */
static int take_record(edge_in_t *in, const in_peer_t *p, const uint8_t *rec, uint32_t size)
{
    take_t t = {in, {(uint32_t)p->id, p->gen}, 0, 0};
    wire_pool_refs(rec, size, 1, take_ref, &t);
    if (t.rc != 0)
        wire_pool_refs(rec, size, 1, untake_ref, &t);
    return t.rc;
}

typedef struct still {
    const edge_in_t *in;
    pool_holder_t giver;
    bool all;
} still_t;

static void still_ref(void *ctx, uint32_t blk)
{
    still_t *s = ctx;
    s->all = s->all && pool_holds(s->in->plan->pool, blk, s->giver);
}

/* The record at rec, whose blocks have as many holders as a block can
 * have (a broadcast wider than POOL_HOLDERS), read by copying its bytes
 * out instead of holding them: 0 with in->item the copy, MPX_ESTOPPED when
 * the reference is stale, or MPX_ENOMEM.  The producer's holds keep the
 * blocks as they are until we confirm the record, unless it died: if its
 * holds are still there after the copy, they were there throughout (a
 * dead incarnation's holds are only ever taken away, and a live one's for
 * this record stay until we confirm it), so the copy is of the bytes it
 * put. */
static int copy_record(edge_in_t *in, const in_peer_t *p, const uint8_t *rec, uint32_t size)
{
    pool_holder_t giver = {(uint32_t)p->id, p->gen};
    if (wire_rec_decode_pool(rec, size, &in->item, in->parts, in->plan->pool, &giver) != 0)
        return MPX_ESTOPPED; /* not held by the producer any more */
    uint32_t csize;
    uint8_t *copy = wire_rec_inline(&in->item, &csize);
    if (!copy)
        return MPX_ENOMEM;
    still_t st = {in, giver, true};
    wire_pool_refs(rec, size, 1, still_ref, &st);
    if (!st.all || wire_rec_decode_full(copy, csize, &in->item, in->parts) != 0) {
        free(copy);
        return MPX_ESTOPPED;
    }
    free(in->copied);
    in->copied = copy;
    return 0;
}

static void count_done(edge_in_t *in)
{
    if (!in->in_hand)
        return;
    in->in_hand = false;
    if (__builtin_expect(in->item.flags & WIRE_REC_POOL, 0))
        release_records(in, in->item.rec, in->item.size, 1);
    if (!in->done_on_take)
        done_one(in, &in->peers[in->hand_peer]);
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

/* What notices said of peer k and origin O: marks below it will not come
 * through k (0 when they named no such mark: all may). */
static uint64_t floor_of(const in_peer_t *p, uint32_t origin)
{
    for (uint32_t i = 0; i < p->nfloors; i++)
        if (p->floors[i].origin == origin)
            return p->floors[i].next;
    return 0;
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
    t->by_mark = calloc((size_t)in->npeers, 1);
    if (!seen || !stack || !t->relevant || !t->got || !t->by_mark) {
        free(seen);
        free(stack);
        free(t->relevant);
        free(t->got);
        free(t->by_mark);
        return NULL;
    }
    int top = 0;
    seen[origin] = 1;
    stack[top++] = (int)origin;
    /* Marks end at the graph's end; the program's own (a Seq at the
     * start: lib/feed.c) go where its input goes. */
    while (top > 0) {
        int u = stack[--top];
        if ((u < in->plan->ninst || u == (int)origin) && in->plan->inst[u].out >= 0)
            reach(in->plan, in->plan->inst[u].out, seen, stack, &top);
    }
    for (int k = 0; k < in->npeers; k++) {
        t->relevant[k] = seen[in->peers[k].id];
        t->got[k] = floor_of(&in->peers[k], origin);
    }
    free(seen);
    free(stack);
    in->ntracks++;
    return t;
}

static int note_mark(edge_in_t *in, int k, uint32_t origin, uint64_t value, uint64_t index,
                     char *err, size_t errcap)
{
    if (origin > (uint32_t)in->plan->ninst)
        return proto_error(err, errcap, "mark origin", (uint32_t)in->peers[k].id);
    mark_track_t *t = track_of(in, origin);
    if (!t) {
        snprintf(err, errcap, "out of memory");
        return MPX_ENOMEM;
    }
    if (!t->relevant[k])
        return proto_error(err, errcap, "mark from a path it cannot take",
                           (uint32_t)in->peers[k].id);
    /* A path delivers an origin's marks in order: this one says every
     * earlier one came through it, or never will. */
    t->got[k] = index + 1;
    t->by_mark[k] = 1;
    in->marks_check = true;
    if (index < t->done)
        return 0; /* handed on already: the last path's copy */
    size_t at = t->npend;
    while (at > 0 && t->pend[at - 1].index >= index)
        at--;
    if (at < t->npend && t->pend[at].index == index)
        return 0; /* another path's copy */
    if (t->npend == t->cappend) {
        size_t cap = t->cappend ? 2 * t->cappend : 8;
        pending_mark_t *pm = realloc(t->pend, cap * sizeof *pm);
        if (!pm) {
            snprintf(err, errcap, "out of memory");
            return MPX_ENOMEM;
        }
        t->pend = pm;
        t->cappend = cap;
    }
    memmove(t->pend + at + 1, t->pend + at, (t->npend - at) * sizeof *t->pend);
    t->pend[at] = (pending_mark_t){index, value, in->marks_seen++};
    t->npend++;
    return 0;
}

/* Hand on, of the marks every path has delivered, the one that arrived
 * first: marks of different origins keep their order; an origin's go in
 * the order of their numbers.  A joiner hands none on before every
 * producer has said which marks it will send (its gate). */
static bool complete_mark(edge_in_t *in, edge_mark_t *mark)
{
    if (!in->marks_check)
        return false;
    if (in->gated) {
        for (int k = 0; k < in->npeers; k++)
            if (!in->peers[k].eos && !in->peers[k].noticed)
                return false; /* looked at again when a notice or an end comes */
        in->gated = false;
    }
    mark_track_t *best = NULL;
    for (int ti = 0; ti < in->ntracks; ti++) {
        mark_track_t *t = &in->tracks[ti];
        if (t->npend == 0 || (best && best->pend[0].seen < t->pend[0].seen))
            continue;
        uint64_t idx = t->pend[0].index;
        bool all = true;
        for (int k = 0; k < in->npeers && all; k++)
            all = !t->relevant[k] || in->peers[k].eos || t->got[k] > idx;
        if (all)
            best = t;
    }
    if (!best) {
        in->marks_check = false;
        return false;
    }
    mark->origin = best->origin;
    mark->value = best->pend[0].value;
    mark->index = best->pend[0].index;
    memmove(best->pend, best->pend + 1, (best->npend - 1) * sizeof *best->pend);
    best->npend--;
    best->done = mark->index + 1;
    return true;
}

/* A notice said which of each origin's marks will not come through peer
 * k (the producer that sent it, to a joiner; the joiner, to its group's
 * consumers): the least of what its notices said, unless a mark of its
 * own already told.  Notices repeat (one from each producer of the
 * group, through each sibling): a repeat changes nothing.
 * (model: the consumer's NOTICE step in elastic.pml) */
static int apply_notice(edge_in_t *in, int k, const uint8_t *raw, uint32_t n)
{
    in_peer_t *p = &in->peers[k];
    wire_notice_pair_t *pairs = malloc((n ? n : 1) * sizeof *pairs);
    if (!pairs)
        return MPX_ENOMEM;
    memcpy(pairs, raw, n * sizeof *pairs);
    if (!p->noticed) {
        free(p->floors);
        p->floors = pairs;
        p->nfloors = n;
        p->noticed = true;
    } else {
        /* An origin this one does not name may come from 0. */
        for (uint32_t i = 0; i < p->nfloors; i++) {
            uint64_t v = 0;
            for (uint32_t j = 0; j < n; j++)
                if (pairs[j].origin == p->floors[i].origin)
                    v = pairs[j].next;
            if (v < p->floors[i].next)
                p->floors[i].next = v;
        }
        free(pairs);
    }
    for (int t = 0; t < in->ntracks; t++) {
        mark_track_t *tr = &in->tracks[t];
        if (!tr->by_mark[k])
            tr->got[k] = floor_of(p, tr->origin);
    }
    in->marks_check = true;
    return 0;
}

/* ---- a joiner's first look (edge_in_gate_scan) --------------------------- */

/* Whether message data (len bytes, header h) holds one notice and nothing
 * else. */
static bool lone_notice(const uint8_t *data, size_t len, const wire_head_t *h)
{
    if (h->type != WIRE_DATA || h->count != 1 || (h->flags & (WIRE_DATA_ARITH | WIRE_DATA_I64)) ||
        len < WIRE_HEAD + WIRE_REC_HEAD)
        return false;
    return wire_rec_flags(data + WIRE_HEAD) == WIRE_REC_NOTICE;
}

/* Keep the message in hand, from peer k, for later. */
static int stash_msg(edge_in_t *in, int k)
{
    if (in->nstash == in->capstash) {
        size_t cap = in->capstash ? 2 * in->capstash : 16;
        zmq_msg_t *s = malloc(cap * sizeof *s);
        int *sp = malloc(cap * sizeof *sp);
        if (!s || !sp) {
            free(s);
            free(sp);
            return MPX_ENOMEM;
        }
        for (size_t i = 0; i < in->nstash; i++) {
            size_t from = (in->stash_head + i) % (in->capstash ? in->capstash : 1);
            zmq_msg_init(&s[i]);
            zmq_msg_move(&s[i], &in->stash[from]);
            zmq_msg_close(&in->stash[from]);
            sp[i] = in->stash_peer[from];
        }
        free(in->stash);
        free(in->stash_peer);
        in->stash = s;
        in->stash_peer = sp;
        in->stash_head = 0;
        in->capstash = cap;
    }
    size_t at = (in->stash_head + in->nstash) % in->capstash;
    zmq_msg_init(&in->stash[at]);
    zmq_msg_move(&in->stash[at], &in->msg);
    in->stash_peer[at] = k;
    in->nstash++;
    in->peers[k].stashed++;
    return 0;
}

/* ---- taking records ----------------------------------------------------- */

/* Producer k was replaced, or joined its group again: its new stream
 * counts from zero; checkpoints of the old stream release nothing of the
 * new one; of marks, nothing is known to have come through it. */
static void new_generation(edge_in_t *in, int k, uint32_t gen)
{
    in_peer_t *p = &in->peers[k];
    if (p->eos)
        in->eos_count--;
    fresh_peer(in, p, gen);
    for (int c = 0; in->cp_items && c < CP_MAX; c++)
        in->cp_items[(size_t)c * (size_t)in->npeers + (size_t)k] = 0;
    for (int t = 0; t < in->ntracks; t++) {
        in->tracks[t].got[k] = 0;
        in->tracks[t].by_mark[k] = 0;
    }
    in->marks_check = true;
}

/* A notice record from peer k (edge.h, Elastic groups). */
static int take_notice(edge_in_t *in, int k, const uint8_t *rec, uint32_t size, char *err,
                       size_t errcap)
{
    wire_notice_t nt;
    const uint8_t *pairs;
    if (wire_notice_get(rec, size, &nt, &pairs) != 1 || nt.slot > (uint32_t)in->plan->ninst)
        return proto_error(err, errcap, "notice", (uint32_t)in->peers[k].id);
    int rc = 0;
    if (nt.slot == (uint32_t)in->self) {
        /* About us, from the producer that sent it: which marks it sends
         * us (our gate waits for one from each). */
        if (nt.gen == in->gen)
            rc = apply_notice(in, k, pairs, nt.n);
    } else if (in->slot[nt.slot] >= 0) {
        /* About one of our producers, that joined its group: it runs
         * again (not ended), and may carry these marks. */
        int q = in->slot[nt.slot];
        if (nt.gen > in->peers[q].gen)
            new_generation(in, q, nt.gen);
        if (nt.gen == in->peers[q].gen && !in->peers[q].eos)
            rc = apply_notice(in, q, pairs, nt.n);
    } else if (in->out) {
        /* About a sibling: our consumers hear it from us, before anything
         * we send from now on. */
        rc = edge_out_notice_forward(in->out, rec, size);
    }
    if (rc == MPX_ENOMEM)
        snprintf(err, errcap, "out of memory");
    else if (rc < 0)
        snprintf(err, errcap, "passing a notice on: %s", mpx_strerror(rc));
    return rc;
}

/* Receive the next message into in->msg, its sender's routing id into
 * rid.  0 when one came, 1 when none is waiting, negative on an error. */
static int receive(edge_in_t *in, uint8_t *rid, int *ridlen, char *err, size_t errcap)
{
    size_t len = 0;
    int rc = xport_recv(in->sock, rid, &len, &in->msg);
    /* A connection cut for a broken frame or hello is a malformed message
     * as any other (its sender, unknown, is reported as 0). */
    if (xport_refused(in->sock) != in->refused) {
        in->refused = xport_refused(in->sock);
        if (rc == 0)
            in->refused--; /* the frame in hand first; this again next time */
        else
            return proto_error(err, errcap, "framing", 0);
    }
    if (rc != 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 1;
        snprintf(err, errcap, "receive: %s", strerror(errno));
        return MPX_ESYS;
    }
    *ridlen = (int)len;
    return 0;
}

/* An item taken: counted for credit, and handed out. */
static inline int take_item(edge_in_t *in, in_peer_t *p, uint64_t weight, mpx_item_t **it)
{
    in->cur_rec = p->taken_items++;
    p->taken_bytes += weight;
    grant_due(in, p);
    if (__builtin_expect(in->done_on_take, 0))
        done_one(in, p);
    in->in_hand = true;
    in->hand_peer = in->cur_peer;
    in->items++;
    if (__builtin_expect(in->idle_at != 0, 0)) { /* the pause is over */
        in->idle_sum += clock_at(in) - in->idle_at;
        in->idle_at = 0;
    }
    *it = &in->item;
    return 1;
}

/* Everything but the common case: marks, records with meta or several
 * parts, the next message, the end, and errors. */
static int next_slow(edge_in_t *in, mpx_item_t **it, edge_mark_t *mark, char *err,
                     size_t errcap) __attribute__((noinline));

/* The next item of a run of int64 or of packed int64, made into the
 * short record its producer did not send. */
static int take_arith(edge_in_t *in, mpx_item_t **it)
{
    uint64_t v;
    if (in->pk) {
        memcpy(&v, in->pk, 8);
        in->pk += 8;
    } else {
        v = in->arith_v;
        in->arith_v = v + in->arith_step;
    }
    if (--in->left == 0)
        in->arith = false;
    uint8_t *rec = (uint8_t *)in->arith_rec;
    /* Only this points the item at arith_rec, and every other decode
     * points it elsewhere: when it still points here, with the parts it
     * was given, the item and the record's head and padding are as this
     * left them, and only the value changes. */
    if (__builtin_expect(in->item.rec == rec && in->item.parts == in->parts, 1)) {
        memcpy(rec + WIRE_SHORT_HEAD, &v, sizeof v);
    } else {
        wire_short_put(rec, &v, sizeof v);
        wire_rec_plain_item(rec, WIRE_ARITH_WEIGHT, sizeof v, WIRE_SHORT_HEAD, &in->item,
                            in->parts);
    }
    return take_item(in, &in->peers[in->cur_peer], WIRE_ARITH_WEIGHT, it);
}

static inline __attribute__((always_inline)) int take_plain(edge_in_t *in, mpx_item_t **it)
{
    in->clock = in->now;
    count_done(in);
    /* The common case, checked in a few steps (wire_rec_decode's): the
     * next record of the message in hand is a plain item of one part and
     * no meta, and no mark is waiting to be handed on. */
    const uint8_t *rec = in->cur;
    uint32_t size, off;
    uint64_t len;
    if (__builtin_expect(in->left > 0 && !in->marks_check, 1) &&
        __builtin_expect(wire_rec_plain(rec, (size_t)(in->end - rec), &size, &len, &off), 1) &&
        (in->left > 1 || rec + size == in->end)) {
        in->cur = rec + size;
        in->left--;
        wire_rec_plain_item(rec, size, len, off, &in->item, in->parts);
        return take_item(in, &in->peers[in->cur_peer], size, it);
    }
    if (in->arith && !in->marks_check)
        return take_arith(in, it);
    return 0;
}

int edge_in_take_plain(edge_in_t *in, mpx_item_t **it) { return take_plain(in, it); }

size_t edge_in_i64_run(edge_in_t *in, edge_i64_run_t *run)
{
    in->clock = in->now;
    count_done(in);
    if (!in->arith || in->marks_check || in->chain || in->peers[in->cur_peer].confirms)
        return 0;
    run->pk = in->pk;
    run->v = in->arith_v;
    run->step = in->arith_step;
    run->rec = in->peers[in->cur_peer].taken_items;
    return in->left;
}

void edge_in_i64_took(edge_in_t *in, size_t k)
{
    in_peer_t *p = &in->peers[in->cur_peer];
    if (in->pk)
        in->pk += 8 * k;
    else
        in->arith_v += (uint64_t)k * in->arith_step;
    in->left -= (uint32_t)k;
    if (in->left == 0)
        in->arith = false;
    in->cur_rec = p->taken_items + k - 1;
    p->taken_items += k;
    p->taken_bytes += (uint64_t)k * WIRE_ARITH_WEIGHT;
    p->done_items += k; /* done_one's whole part: no chain, no confirmations */
    in->items += k;
    if (__builtin_expect(in->idle_at != 0, 0)) { /* the pause is over */
        in->idle_sum += clock_at(in) - in->idle_at;
        in->idle_at = 0;
    }
    grant_due(in, p);
}

int edge_in_next(edge_in_t *in, mpx_item_t **it, edge_mark_t *mark, char *err, size_t errcap)
{
    if (take_plain(in, it))
        return 1;
    return next_slow(in, it, mark, err, errcap);
}

static int next_slow(edge_in_t *in, mpx_item_t **it, edge_mark_t *mark, char *err, size_t errcap)
{
    for (;;) {
        if (!in->closed && complete_mark(in, mark))
            return 2;
        if (in->arith)
            return take_arith(in, it);
        if (in->left > 0) {
            /* Records are checked one at a time as they are taken: every
             * step below is bounded by the bytes received. */
            const uint8_t *rec = in->cur;
            uint32_t size;
            uint16_t nparts;
            in_peer_t *p = &in->peers[in->cur_peer];
            if (wire_rec_peek(rec, (size_t)(in->end - rec), &size, &nparts) != 0)
                return proto_error(err, errcap, "record", (uint32_t)p->id);
            in->cur += size;
            if (--in->left == 0 && in->cur != in->end)
                return proto_error(err, errcap, "data", (uint32_t)p->id);
            uint32_t flags = wire_rec_flags(rec);
            if (flags & (WIRE_REC_MARK | WIRE_REC_NOTICE)) {
                uint32_t origin;
                uint64_t value, index;
                in->cur_rec = p->taken_items++;
                p->taken_bytes += size;
                grant_due(in, p);
                done_one(in, p); /* processed on arrival */
                int rc;
                if (flags == WIRE_REC_NOTICE)
                    rc = take_notice(in, in->cur_peer, rec, size, err, errcap);
                else if (wire_mark_get(rec, size, &origin, &value, &index) != 1)
                    return proto_error(err, errcap, "mark", (uint32_t)p->id);
                else
                    rc = note_mark(in, in->cur_peer, origin, value, index, err, errcap);
                if (rc < 0)
                    return rc;
                continue;
            }
            if (nparts > in->parts_cap && parts_reserve(in, nparts) != 0) {
                snprintf(err, errcap, "out of memory");
                return MPX_ENOMEM;
            }
            pool_holder_t me = {(uint32_t)in->self, in->gen};
            uint64_t weight = size;
            if (flags & WIRE_REC_POOL) {
                if (!in->plan->pool)
                    return proto_error(err, errcap, "record", (uint32_t)p->id);
                /* Byte credit counts the bytes it refers to (wire_weight),
                 * as its producer did. */
                weight = wire_weight(rec, size, 1);
                int trc = take_record(in, p, rec, size);
                bool copied = false;
                if (trc == MPX_ERANGE) {
                    trc = copy_record(in, p, rec, size);
                    copied = trc == 0;
                }
                if (trc == MPX_ESTOPPED) {
                    /* Its producer died since: what it made is stale
                     * (it is being made again), as in receive below. */
                    in->cur_rec = p->taken_items++;
                    p->taken_bytes += weight;
                    grant_due(in, p);
                    in->stale++;
                    done_one(in, p);
                    continue;
                }
                if (trc == MPX_ENOMEM) {
                    snprintf(err, errcap, "out of memory");
                    return MPX_ENOMEM;
                }
                if (trc != 0 ||
                    (!copied && wire_rec_decode_pool(rec, size, &in->item, in->parts,
                                                     in->plan->pool, &me) != 0))
                    return proto_error(err, errcap, "record", (uint32_t)p->id);
            } else if (wire_rec_decode_full(rec, size, &in->item, in->parts) != 0) {
                return proto_error(err, errcap, "record", (uint32_t)p->id);
            }
            return take_item(in, p, weight, it);
        }
        uint8_t rid[16];
        int ridlen = 0;
        bool replay = in->nstash > 0 && !in->scanning;
        if (replay) {
            /* What waited while a joiner looked for its notices, first. */
            zmq_msg_move(&in->msg, &in->stash[in->stash_head]);
            in->peers[in->stash_peer[in->stash_head]].stashed--;
            in->stash_head = (in->stash_head + 1) % in->capstash;
            in->nstash--;
        } else {
            int rc = receive(in, rid, &ridlen, err, errcap);
            if (rc != 0)
                return rc > 0 ? 0 : rc;
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
        in->end = data + len;
        in->forwarded = false;
        wire_head_t h;
        if (wire_head_get(data, len, &h) != 0)
            return proto_error(err, errcap, "header", 0);
        int k = h.sender <= (uint32_t)in->plan->ninst ? in->slot[h.sender] : -1;
        if (k < 0)
            return proto_error(err, errcap, "unknown sender", h.sender);
        uint8_t want[EDGE_RID_SIZE];
        edge_rid(want, (int)h.sender, h.gen);
        if (!replay && (ridlen != EDGE_RID_SIZE || memcmp(rid, want, EDGE_RID_SIZE) != 0))
            return proto_error(err, errcap, "not from its sender's connection", h.sender);
        in_peer_t *p = &in->peers[k];
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
        if (in->scanning &&
            (p->stashed > 0 || (h.type == WIRE_DATA && !lone_notice(data, len, &h)))) {
            /* Before the gate: a notice alone in its message is read now
             * (from a producer it comes first); anything else waits, and
             * so does all that follows it from that producer.  Data first
             * is from a producer that did not know we were joining (it
             * sends no notice): it counts as one that said nothing. */
            if (h.type == WIRE_DATA && !p->noticed)
                p->noticed = true;
            int src = stash_msg(in, k);
            if (src != 0) {
                snprintf(err, errcap, "out of memory");
                return src;
            }
            continue;
        }
        if (p->eos)
            return proto_error(err, errcap, "message after end of stream", h.sender);
        p->heard = true;
        /* A message that refers to pool blocks is kept, with its holds, by
         * its producer until we confirm it (edge_out.c): from the first one
         * on, this pair confirms, whatever plan_confirms said. */
        if (h.type == WIRE_DATA && (h.flags & WIRE_DATA_POOL))
            p->confirms = true;
        if (h.type == WIRE_EOS && len == WIRE_HEAD) {
            p->eos = true;
            in->eos_count++;
            in->marks_check = true;
            /* An instance of an elastic group may be leaving it: it exits
             * once we said we took its end (edge.h). */
            if (in->plan->inst[p->id].elastic)
                send_credit(in, p);
            continue;
        }
        bool pk = h.type == WIRE_DATA && (h.flags & WIRE_DATA_I64);
        bool arith = pk || (h.type == WIRE_DATA && (h.flags & WIRE_DATA_ARITH));
        if (h.type != WIRE_DATA || h.count == 0 ||
            (arith && !(pk ? wire_i64_ok(&h, len) : wire_arith_ok(&h, len))) ||
            (in->closed && !arith &&
             check_records(data + WIRE_HEAD, len - WIRE_HEAD, h.count) != 0))
            return proto_error(err, errcap, "data", h.sender);
        if (in->closed) {
            p->taken_items += h.count;
            p->taken_bytes += arith ? (uint64_t)h.count * WIRE_ARITH_WEIGHT
                              : h.flags & WIRE_DATA_POOL
                                  ? wire_weight(data + WIRE_HEAD, len - WIRE_HEAD, h.count)
                                  : len - WIRE_HEAD;
            p->confirmable = p->taken_items;
            in->dropped += h.count;
            grant(in, p, true);
            continue;
        }
        in->cur = data + WIRE_HEAD;
        in->left = h.count;
        in->cur_peer = k;
        in->arith = arith;
        in->pk = pk ? in->cur : NULL;
        if (arith && !pk) {
            memcpy(&in->arith_v, in->cur, 8);
            memcpy(&in->arith_step, in->cur + 8, 8);
        }
        if (arith)
            in->cur = in->end; /* no record to read */
    }
}

bool edge_in_complete(const edge_in_t *in)
{
    /* At the end every mark is complete; they go on before the end does. */
    return in->eos_count == in->npeers && in->left == 0 && (in->closed || !in->marks_check);
}

bool edge_in_waiting(const edge_in_t *in) { return in->left > 0; }

static void idle(edge_in_t *in, bool holding)
{
    in->clock = ticks_now(); /* the caller's time is that of its last item */
    if (!holding)
        count_done(in);
    if (!in->idle_at) /* the wait is not our work */
        in->idle_at = in->clock;
    if (in->chain && !in->closed) {
        /* Confirmations go out as checkpoints are released (settle). */
        if (checkpoint_due(in))
            checkpoint(in);
        else
            edge_in_settle(in);
    }
    if (in->leaving)
        edge_in_leave_retry(in);
    /* Credit needs nothing at a pause (edge.h); confirmations go out once
     * EDGE_CONFIRM_TICKS have passed since the last word to that producer
     * (the caller wakes up for that: edge_in_due_ms), so that a consumer
     * that pauses after every message does not send one back each time. */
    for (int k = 0; k < in->npeers; k++) {
        in_peer_t *p = &in->peers[k];
        if (p->confirms && p->confirmable != p->confirmed &&
            (p->confirmable - p->confirmed >= in->cp_every ||
             in->clock - p->told_at >= EDGE_CONFIRM_TICKS))
            send_credit(in, p);
    }
}

void edge_in_done_on_take(edge_in_t *in) { in->done_on_take = true; }

void edge_in_idle(edge_in_t *in) { idle(in, false); }
void edge_in_idle_holding(edge_in_t *in) { idle(in, true); }

/* How often a leaver tries again to tell a producer it could not reach
 * (one that has not connected to it yet). */
#define LEAVE_RETRY_TICKS TICKS_US(5000)

long edge_in_due_ms(const edge_in_t *in)
{
    uint64_t due = UINT64_MAX;
    for (int k = 0; k < in->npeers; k++) {
        const in_peer_t *p = &in->peers[k];
        if (p->confirms && p->heard && p->confirmable != p->confirmed &&
            p->told_at + EDGE_CONFIRM_TICKS < due)
            due = p->told_at + EDGE_CONFIRM_TICKS;
    }
    if (due == UINT64_MAX && !in->leaving)
        return -1;
    /* A producer that could not hear that we leave yet is told again. */
    uint64_t now = ticks_now(), last = in->clock ? in->clock : now;
    for (int k = 0; in->leaving && k < in->npeers; k++)
        if (!in->peers[k].eos && !in->peers[k].leave_told && last + LEAVE_RETRY_TICKS < due)
            due = last + LEAVE_RETRY_TICKS;
    if (due == UINT64_MAX)
        return -1;
    return now >= due ? 0 : (long)((due - now) / TICKS_US(1000)) + 1;
}

void edge_in_chain(edge_in_t *in, edge_out_t *out)
{
    size_t n = (size_t)CP_MAX * (size_t)(in->npeers ? in->npeers : 1);
    in->cp_items = calloc(n, sizeof *in->cp_items);
    /* Without room for checkpoints the input simply is not chained. */
    if (in->cp_items)
        in->chain = out;
}

bool edge_in_settling(const edge_in_t *in)
{
    return in->chain &&
           (in->cp_count > 0 || (in->closed && edge_out_settled(in->chain) < in->closed_out));
}

void edge_in_settle_all(edge_in_t *in)
{
    in->clock = in->now ? in->now : ticks_now();
    count_done(in);
    if (!in->chain)
        return;
    if (in->closed) {
        /* A stage that stopped itself: its input was confirmed when it
         * closed, but what teardown put since must be confirmed
         * downstream before the stage counts as ended (its replacement
         * would only end the stream again).  A flush that lost a batch
         * fails the stage at its next put or end. */
        if (edge_out_flush(in->chain) < 0 && edge_out_lost(in->chain))
            return;
        in->closed_out = edge_out_seq(in->chain);
        edge_in_settle(in);
        return;
    }
    /* Also when only the output moved (what teardown or an idle hook put
     * after the last checkpoint): a process that dies once it is ended
     * is replaced by one that only ends the stream again, so everything
     * put must be confirmed before then, not only what input made. */
    if (checkpoint_due(in) || edge_out_pending(in->chain) || edge_out_seq(in->chain) != in->cp_out)
        checkpoint(in);
    else
        edge_in_settle(in);
}

zmq_msg_t *edge_in_forwardable(edge_in_t *in, const mpx_item_t *it)
{
    if (it != &in->item || !in->in_hand || in->closed || in->forwarded ||
        in->data != zmq_msg_data(&in->msg) || it->rec != in->data + WIRE_HEAD ||
        (size_t)it->size != in->len - WIRE_HEAD)
        return NULL;
    in->forwarded = true;
    return &in->msg;
}

bool edge_in_in_hand(const edge_in_t *in, const mpx_item_t *it, int *producer, uint32_t *gen)
{
    if (it != &in->item || !in->in_hand)
        return false;
    *producer = in->peers[in->hand_peer].id;
    *gen = in->peers[in->hand_peer].gen;
    return true;
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
    in->clock = in->now ? in->now : ticks_now();
    count_done(in);
    if (in->closed)
        return;
    in->closed = true;
    if (in->left > 0) {
        /* The rest of the message in hand is discarded too. */
        in_peer_t *p = &in->peers[in->cur_peer];
        const uint8_t *end = in->data + in->len;
        p->taken_items += in->left;
        p->taken_bytes += in->arith ? (uint64_t)in->left * WIRE_ARITH_WEIGHT
                                    : (uint64_t)(end - in->cur);
        in->dropped += in->left;
        in->left = 0;
        in->arith = false;
    }
    /* A stopped stage is not recovered: what it took is confirmed, and
     * producers hear that it stopped. */
    in->cp_count = 0;
    for (int k = 0; k < in->npeers; k++) {
        in_peer_t *p = &in->peers[k];
        p->confirmable = p->taken_items;
        grant(in, p, false);
        send_credit(in, p);
    }
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

/* ---- elastic groups (edge.h) ------------------------------------------- */

void edge_in_set_output(edge_in_t *in, edge_out_t *out) { in->out = out; }
void edge_in_set_joiner(edge_in_t *in) { in->gated = true; }

void edge_in_leave(edge_in_t *in)
{
    in->leaving = true;
    edge_in_leave_retry(in);
}

bool edge_in_leave_retry(edge_in_t *in)
{
    if (!in->leaving)
        return false;
    bool owed = false;
    /* The time of this attempt, not of the caller's last item: the next
     * is due LEAVE_RETRY_TICKS after it (edge_in_due_ms), and a
     * stale time made every wait end at once. */
    in->clock = ticks_now();
    for (int k = 0; k < in->npeers; k++) {
        in_peer_t *p = &in->peers[k];
        if (p->eos || p->leave_told)
            continue;
        send_credit(in, p);
        owed |= !p->leave_told;
    }
    return owed;
}

int edge_in_gate_scan(edge_in_t *in, char *err, size_t errcap)
{
    mpx_item_t *it;
    edge_mark_t m;
    in->scanning = true;
    int rc = next_slow(in, &it, &m, err, errcap);
    in->scanning = false;
    if (rc < 0)
        return rc;
    bool any = false;
    for (int k = 0; k < in->npeers; k++) {
        const in_peer_t *p = &in->peers[k];
        if (!p->eos && !p->noticed)
            return EDGE_GATE_PENDING;
        any |= p->noticed;
    }
    return any ? EDGE_GATE_OPEN : EDGE_GATE_VOID;
}
