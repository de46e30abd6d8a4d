/* lib/stats.c — counters from the stage processes become the figures of
 * each stage node, every interval, and go wherever the user asked: a
 * table on stderr (watch), JSON lines to a FILE, a progress bar, and
 * always the XPUB socket "stats" in the runtime directory that mpx-top
 * reads.  The queue before a consumer is what its producers report as
 * sent to it minus what it reports as taken: both sides count anyway, so
 * nothing is added to the path of an item.
 */
#define _GNU_SOURCE
#include "stats.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "edge.h"
#include "mpx/error.h"
#include "mpx/monitor.h"
#include "grow.h"
#include "supervisor.h"
#include "wire.h"

typedef struct pair {
    uint64_t peer, count;
} pair_t;

typedef struct inst_stats {
    bool have;          /* a report came */
    wire_stats_t cur, prev;
    bool have_prev;
    pair_t *out, *in;   /* as last reported */
    uint32_t nout, nin;
    double busy, blocked; /* over the last two reports */
    double cpu;           /* ... CPU seconds per second; NaN: unknown */
    uint64_t depth;
    /* What the processes an elastic slot had before its current one
     * counted (stats_rebase). */
    uint64_t base_in, base_out, base_dropped;
} inst_stats_t;

typedef struct stage_fig {
    const mpx_node_t *node;
    int first, count;   /* its instances in the plan */
    mpx_stage_stats_t fig;
    uint64_t last_in, last_out; /* at the previous snapshot, for rates */
} stage_fig_t;

/* An elastic group's change, as the monitor shows it. */
typedef struct elastic_event {
    double t;
    char stage[64];
    char action[16];
    int from, to;
    char why[300];
} elastic_event_t;
#define STATS_EVENTS 8

struct stats {
    elastic_event_t events[STATS_EVENTS]; /* the last ones, a ring */
    uint64_t nevents;
    inst_stats_t *inst; /* n */
    stage_fig_t *stage;
    int nstages;
    int *stage_of;      /* by instance: its stage's index in stage[] */
    uint64_t *sent_to, *taken_by; /* per consumer, scratch: n + 1 */
    void *pub;
    /* Until a monitor connects: our own socket listening at the same
     * address (stats_listen); then zmq's, on the same descriptor. */
    int listen_fd;
    int interval_ms;
    long start_ms, last_ms, next_ms, watch_next_ms;
    uint64_t out_last; /* the parent's collector: items at the previous snapshot */
    uint64_t out_depth;
    bool progress;  /* draw the bar */
    bool bar_drawn;
    bool ended;
    char *latest;   /* the latest snapshot's JSON, for new subscribers */
    size_t latest_len;
};

const char *mpx_stage_state_name(mpx_stage_state_t s)
{
    switch (s) {
    case MPX_STATE_STARTING: return "starting";
    case MPX_STATE_RUNNING: return "running";
    case MPX_STATE_DRAINING: return "draining";
    case MPX_STATE_TEARDOWN: return "teardown";
    case MPX_STATE_DONE: return "done";
    case MPX_STATE_FAILED: return "failed";
    }
    return "?";
}

/* ---- setting up ---------------------------------------------------------- */

static int interval_of(const struct mpx_run *r)
{
    int ms = r->root->mon.interval_ms;
    return ms > 0 ? ms : MPX_STATS_INTERVAL_MS;
}

int stats_open(struct mpx_run *r, char *err, size_t errcap)
{
    stats_t *s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    r->stats = s;
    s->listen_fd = -1;
    const plan_t *plan = r->plan;
    s->inst = calloc((size_t)r->n, sizeof *s->inst);
    s->stage = calloc((size_t)r->n, sizeof *s->stage);
    s->stage_of = calloc((size_t)r->n + 1, sizeof *s->stage_of);
    s->sent_to = calloc((size_t)r->n + 1, sizeof *s->sent_to);
    s->taken_by = calloc((size_t)r->n + 1, sizeof *s->taken_by);
    if (!s->inst || !s->stage || !s->stage_of || !s->sent_to || !s->taken_by)
        goto oom;
    /* A stage node's instances are consecutive in the plan. */
    for (int i = 0; i < r->n; i++) {
        if (s->nstages == 0 || s->stage[s->nstages - 1].node != plan->inst[i].node) {
            stage_fig_t *sf = &s->stage[s->nstages++];
            sf->node = plan->inst[i].node;
            sf->first = i;
            sf->fig.name = plan->inst[i].name;
            sf->fig.instances = plan->inst[i].count;
        }
        s->stage[s->nstages - 1].count++;
        s->stage_of[i] = s->nstages - 1;
        if (plan->inst[i].nproducers > 0) /* a source has no input queue */
            s->stage[s->nstages - 1].fig.capacity += plan->inst[i].cap_items;
    }
    s->interval_ms = interval_of(r);
    s->start_ms = s->last_ms = mono_ms();
    s->next_ms = s->start_ms + s->interval_ms;
    const node_monitor_t *mon = &r->root->mon;
    s->watch_next_ms = mon->watch_ms > 0 ? s->start_ms + mon->watch_ms : 0;
    const char *env = getenv("MPX_PROGRESS");
    s->progress = mon->progress > 0 ||
                  (mon->progress == 0 && isatty(STDERR_FILENO) && !(env && strcmp(env, "0") == 0));
    return 0;
oom:
    snprintf(err, errcap, "out of memory");
    return MPX_ENOMEM;
}

int stats_listen(struct mpx_run *r, char *err, size_t errcap)
{
    stats_t *s = r->stats;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int n = snprintf(a.sun_path, sizeof a.sun_path, "%s/stats", r->dir);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (n < 0 || (size_t)n >= sizeof a.sun_path || fd < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 100) != 0) {
        snprintf(err, errcap, "stats socket %s/stats: %s", r->dir,
                 n < 0 || (size_t)n >= sizeof a.sun_path ? "path too long" : strerror(errno));
        if (fd >= 0)
            close(fd);
        return MPX_ESYS;
    }
    s->listen_fd = fd;
    return 0;
}

int stats_listener(struct mpx_run *r) { return r->stats ? r->stats->listen_fd : -1; }

int stats_bind(struct mpx_run *r, char *err, size_t errcap)
{
    stats_t *s = r->stats;
    s->pub = zmq_socket(r->zctx, ZMQ_XPUB);
    char ep[300];
    snprintf(ep, sizeof ep, "ipc://%s/stats", r->dir);
    /* A monitor that stopped reading must never hold the graph up: its
     * snapshots are dropped (high-water mark), and at the end the last
     * one gets a short while to leave.  zmq takes over the listening
     * socket, with the connection that brought us here in its backlog. */
    int linger = 200, hwm = 16;
    if (!s->pub || zmq_setsockopt(s->pub, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(s->pub, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(s->pub, ZMQ_USE_FD, &s->listen_fd, sizeof s->listen_fd) != 0 ||
        zmq_bind(s->pub, ep) != 0) {
        snprintf(err, errcap, "stats socket %s: %s", ep, zmq_strerror(errno));
        if (s->pub)
            zmq_close(s->pub);
        s->pub = NULL;
        return MPX_ESYS;
    }
    s->listen_fd = -1; /* zmq's now: closed with the socket */
    return 0;
}

static void close_listener(stats_t *s)
{
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
}

void *stats_socket(struct mpx_run *r) { return r->stats ? r->stats->pub : NULL; }

/* ---- reports -------------------------------------------------------------- */

static int keep_pairs(pair_t **dst, uint32_t *ndst, const uint8_t *src, uint32_t n)
{
    if (n != *ndst) {
        pair_t *p = realloc(*dst, (n ? n : 1) * sizeof *p);
        if (!p)
            return -1;
        *dst = p;
        *ndst = n;
    }
    if (n)
        memcpy(*dst, src, n * sizeof **dst);
    return 0;
}

void stats_report(struct mpx_run *r, int i, const uint8_t *data, size_t len)
{
    stats_t *s = r->stats;
    wire_stats_t ws;
    if (!s || len < WIRE_HEAD + sizeof ws)
        return;
    memcpy(&ws, data + WIRE_HEAD, sizeof ws);
    /* What a stage process says about its peers is checked before use:
     * a bad report is dropped, never trusted. */
    size_t want = WIRE_HEAD + sizeof ws + 16 * ((size_t)ws.nout + ws.nin);
    if (ws.nout > (uint32_t)r->n + 1 || ws.nin > (uint32_t)r->n || len != want ||
        ws.state > MPX_STATE_FAILED)
        return;
    const uint8_t *p = data + WIRE_HEAD + sizeof ws;
    for (uint32_t k = 0; k < ws.nout + ws.nin; k++) {
        uint64_t peer;
        memcpy(&peer, p + 16 * k, 8);
        if (peer > (uint64_t)r->n)
            return;
    }
    inst_stats_t *is = &s->inst[i];
    if (keep_pairs(&is->out, &is->nout, p, ws.nout) != 0 ||
        keep_pairs(&is->in, &is->nin, p + 16 * (size_t)ws.nout, ws.nin) != 0)
        return;
    if (is->have) {
        is->prev = is->cur;
        is->have_prev = true;
    }
    is->cur = ws;
    is->have = true;
    if (is->have_prev && ws.now > is->prev.now) {
        double span = (double)(ws.now - is->prev.now);
        double wait = (double)(ws.wait_in - is->prev.wait_in + ws.wait_out - is->prev.wait_out);
        is->busy = 1.0 - wait / span;
        is->blocked = (double)(ws.wait_out - is->prev.wait_out) / span;
        is->busy = is->busy < 0 ? 0 : is->busy > 1 ? 1 : is->busy;
        is->blocked = is->blocked < 0 ? 0 : is->blocked > 1 ? 1 : is->blocked;
        is->cpu = ws.cpu && is->prev.cpu && ws.cpu >= is->prev.cpu
                      ? (double)(ws.cpu - is->prev.cpu) / span
                      : NAN;
    }
}

/* ---- figures --------------------------------------------------------------- */

static mpx_stage_state_t inst_state(const struct mpx_run *r, int i)
{
    const inst_stats_t *is = &r->stats->inst[i];
    const run_child_t *c = &r->ch[i];
    if (c->slot == SLOT_OFF)
        return MPX_STATE_DONE; /* an elastic group's idle slot: not running, not failed */
    mpx_stage_state_t st = is->have ? (mpx_stage_state_t)is->cur.state : MPX_STATE_STARTING;
    if (c->exited && !c->released && !c->stop_sent)
        return MPX_STATE_FAILED; /* died before it was let go */
    if (c->done)
        return MPX_STATE_DONE;
    return st;
}

static void compute(struct mpx_run *r, long now)
{
    stats_t *s = r->stats;
    memset(s->sent_to, 0, ((size_t)r->n + 1) * sizeof *s->sent_to);
    memset(s->taken_by, 0, ((size_t)r->n + 1) * sizeof *s->taken_by);
    for (int i = 0; i < r->n; i++) {
        const inst_stats_t *is = &s->inst[i];
        for (uint32_t k = 0; k < is->nout; k++)
            s->sent_to[is->out[k].peer] += is->out[k].count;
        for (uint32_t k = 0; k < is->nin; k++)
            s->taken_by[i] += is->in[k].count;
    }
    /* What the program put and the stages it feeds have not taken. */
    if (r->feed)
        for (int k = 0; k < edge_out_peers(r->feed); k++) {
            int c;
            uint64_t sent;
            edge_out_peer(r->feed, k, &c, &sent);
            s->sent_to[c] += sent;
        }
    if (r->sink)
        for (int k = 0; k < edge_in_peers(r->sink); k++) {
            int p;
            uint64_t taken;
            edge_in_peer(r->sink, k, &p, &taken);
            s->taken_by[r->n] += taken;
        }
    for (int c = 0; c <= r->n; c++) {
        uint64_t d = s->sent_to[c] > s->taken_by[c] ? s->sent_to[c] - s->taken_by[c] : 0;
        if (c < r->n)
            s->inst[c].depth = r->ch[c].slot == SLOT_OFF ? 0 : d;
        else
            s->out_depth = d;
    }
    double secs = (double)(now - s->last_ms) / 1000.0;
    for (int k = 0; k < s->nstages; k++) {
        stage_fig_t *sf = &s->stage[k];
        mpx_stage_stats_t *f = &sf->fig;
        f->items_in = f->items_out = f->items_dropped = 0;
        f->depth = f->capacity = 0;
        f->progress_done = f->progress_total = 0;
        f->running = 0;
        double busy = 0, blocked = 0;
        mpx_stage_state_t least = MPX_STATE_DONE;
        bool failed = false;
        for (int i = sf->first; i < sf->first + sf->count; i++) {
            const inst_stats_t *is = &s->inst[i];
            const run_child_t *c = &r->ch[i];
            /* Counts from the final message once there is one. */
            uint64_t in = is->base_in + (c->done ? c->items_in : is->cur.items_in);
            uint64_t out = is->base_out + (c->done ? c->items_out : is->cur.items_out);
            f->items_in += in;
            f->items_out += out;
            f->items_dropped +=
                is->base_dropped + (c->done ? c->items_dropped : is->cur.dropped);
            f->depth += is->depth;
            if (r->plan->inst[i].nproducers > 0)
                f->capacity += r->plan->inst[i].cap_items;
            f->progress_done += is->cur.progress_done;
            f->progress_total += is->cur.progress_total;
            mpx_stage_state_t st = inst_state(r, i);
            failed |= st == MPX_STATE_FAILED;
            if (st < least)
                least = st;
            if (st < MPX_STATE_DONE) {
                f->running++;
                busy += is->busy;
                blocked += is->blocked;
            }
        }
        f->state = failed ? MPX_STATE_FAILED : least;
        f->busy = f->running ? busy / f->running : 0;
        f->blocked = f->running ? blocked / f->running : 0;
        if (secs > 0) {
            f->in_rate = (double)(f->items_in - sf->last_in) / secs;
            f->out_rate = (double)(f->items_out - sf->last_out) / secs;
        }
        sf->last_in = f->items_in;
        sf->last_out = f->items_out;
    }
    s->last_ms = now;
}

/* ---- JSON ------------------------------------------------------------------- */

static void json_str(FILE *f, const char *v)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* By the node's first instance, not by a search: a snapshot of a graph
 * of many stage nodes would otherwise cost their number squared. */
static int stage_index(const stats_t *s, const mpx_node_t *n)
{
    return s->stage_of[n->plan_first];
}

static void json_tree(FILE *f, const stats_t *s, const mpx_node_t *n)
{
    if (n->kind == NODE_STAGE) {
        fprintf(f, "{\"kind\": \"stage\", \"stage\": %d", stage_index(s, n));
    } else {
        fprintf(f, "{\"kind\": \"%s\"",
                n->kind == NODE_SERIAL     ? "serial"
                : n->kind == NODE_PARALLEL ? "parallel"
                                           : "broadcast");
        if (n->name) {
            fputs(", \"name\": ", f);
            json_str(f, n->name);
        }
        fputs(", \"children\": [", f);
        bool first = true;
        for (size_t i = 0; i < n->nchildren; i++) {
            const mpx_node_t *c = n->children[i];
            /* A Seq half in another stage's process is part of that
             * stage: it has no figures of its own. */
            if (node_seq_hosted(c))
                continue;
            if (!first)
                fputs(", ", f);
            first = false;
            json_tree(f, s, c);
        }
        fputc(']', f);
    }
    if (n->nxcuts) {
        fputs(", \"xcuts\": [", f);
        for (size_t i = 0; i < n->nxcuts; i++) {
            fputs(i ? ", {\"name\": " : "{\"name\": ", f);
            json_str(f, n->xcuts[i].name);
            fputs(", \"graph\": ", f);
            json_tree(f, s, n->xcuts[i].side);
            fputc('}', f);
        }
        fputc(']', f);
    }
    fputc('}', f);
}

static const char *mode_of(const mpx_node_t *n)
{
    if (n->count <= 1)
        return "single";
    return n->by ? "broadcast" : "parallel";
}

static void json_event(FILE *f, const elastic_event_t *e)
{
    fprintf(f, "\"t\": %.3f, \"stage\": ", e->t);
    json_str(f, e->stage);
    fprintf(f, ", \"action\": \"%s\", \"from\": %d, \"to\": %d, \"reason\": ", e->action,
            e->from, e->to);
    json_str(f, e->why);
}

static void json_snapshot(FILE *f, struct mpx_run *r, long now)
{
    stats_t *s = r->stats;
    fprintf(f, "{\"mpx_stats\": 1, \"pid\": %ld, \"t\": %.3f, \"interval_ms\": %d, \"ended\": %s, ",
            (long)getpid(), (double)(now - s->start_ms) / 1000.0, s->interval_ms,
            s->ended ? "true" : "false");
    fputs("\"outcome\": ", f);
    if (!s->ended)
        fputs("null", f);
    else
        json_str(f, r->status == 0 ? "ok" : (r->error ? r->error : mpx_strerror(r->status)));
    fputs(", \"tree\": ", f);
    json_tree(f, s, r->root);
    fputs(", \"stages\": [", f);
    for (int k = 0; k < s->nstages; k++) {
        const stage_fig_t *sf = &s->stage[k];
        const mpx_stage_stats_t *g = &sf->fig;
        fprintf(f, "%s{\"id\": %d, \"name\": ", k ? ", " : "", k);
        json_str(f, g->name);
        fprintf(f,
                ", \"instances\": %d, \"mode\": \"%s\", \"state\": \"%s\", \"running\": %d, "
                "\"in\": %llu, \"out\": %llu, \"dropped\": %llu, \"in_rate\": %.1f, "
                "\"out_rate\": %.1f, \"busy\": %.3f, \"blocked\": %.3f, \"depth\": %llu, "
                "\"capacity\": %llu",
                g->instances, mode_of(sf->node), mpx_stage_state_name(g->state), g->running,
                (unsigned long long)g->items_in, (unsigned long long)g->items_out,
                (unsigned long long)g->items_dropped, g->in_rate, g->out_rate, g->busy, g->blocked,
                (unsigned long long)g->depth, (unsigned long long)g->capacity);
        if (sf->node->elastic_max > 0)
            fprintf(f, ", \"elastic\": {\"min\": %d, \"max\": %d}", sf->node->elastic_min,
                    sf->node->elastic_max);
        if (g->progress_total)
            fprintf(f, ", \"progress\": {\"done\": %llu, \"total\": %llu}",
                    (unsigned long long)g->progress_done, (unsigned long long)g->progress_total);
        fputs(", \"inst\": [", f);
        for (int i = sf->first; i < sf->first + sf->count; i++) {
            const inst_stats_t *is = &s->inst[i];
            const run_child_t *c = &r->ch[i];
            mpx_stage_state_t st = inst_state(r, i);
            bool live = st < MPX_STATE_DONE;
            fprintf(f,
                    "%s{\"pid\": %ld, \"state\": \"%s\", \"in\": %llu, \"out\": %llu, "
                    "\"busy\": %.3f, \"blocked\": %.3f, \"depth\": %llu, \"capacity\": %zu}",
                    i > sf->first ? ", " : "", (long)c->pid,
                    mpx_stage_state_name(st),
                    (unsigned long long)(is->base_in + (c->done ? c->items_in : is->cur.items_in)),
                    (unsigned long long)(is->base_out +
                                         (c->done ? c->items_out : is->cur.items_out)),
                    live ? is->busy : 0.0, live ? is->blocked : 0.0,
                    (unsigned long long)is->depth,
                    r->plan->inst[i].nproducers > 0 ? r->plan->inst[i].cap_items : 0);
        }
        fputs("]}", f);
    }
    fputc(']', f);
    if (r->plan->inst[r->n].nproducers > 0)
        fprintf(f, ", \"output\": {\"in\": %llu, \"depth\": %llu, \"capacity\": %zu}",
                (unsigned long long)(r->sink ? edge_in_items(r->sink) : s->out_last),
                (unsigned long long)s->out_depth, r->plan->inst[r->n].cap_items);
    if (r->grow) {
        fprintf(f, ", \"elastic\": {\"budget\": %d, \"decisions\": %llu, \"last\": [",
                grow_budget(r), (unsigned long long)s->nevents);
        uint64_t first = s->nevents > STATS_EVENTS ? s->nevents - STATS_EVENTS : 0;
        for (uint64_t e = first; e < s->nevents; e++) {
            fputs(e > first ? ", {" : "{", f);
            json_event(f, &s->events[e % STATS_EVENTS]);
            fputc('}', f);
        }
        fputs("]}", f);
    }
    if (r->plan->pool) {
        pool_stats_t p;
        pool_get_stats(r->plan->pool, &p);
        fprintf(f,
                ", \"pool\": {\"capacity\": %llu, \"bytes_in_use\": %llu, \"blocks_in_use\": %llu, "
                "\"peak_bytes\": %llu, \"committed\": %llu}",
                (unsigned long long)p.capacity, (unsigned long long)p.bytes_in_use,
                (unsigned long long)p.blocks_in_use, (unsigned long long)p.peak_bytes,
                (unsigned long long)p.committed);
    }
    fputc('}', f);
}

/* ---- the table, the bar ----------------------------------------------------- */

static void human(char *buf, size_t cap, double v)
{
    if (v >= 1e9)
        snprintf(buf, cap, "%.1fG", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, cap, "%.1fM", v / 1e6);
    else if (v >= 1e4)
        snprintf(buf, cap, "%.1fk", v / 1e3);
    else
        snprintf(buf, cap, "%.0f", v);
}

static void print_table(struct mpx_run *r, long now)
{
    stats_t *s = r->stats;
    FILE *f = stderr;
    flockfile(f);
    fprintf(f, "mpx %7.2fs %-18s %5s %-9s %9s %9s %8s %5s %s\n",
            (double)(now - s->start_ms) / 1000.0, s->ended ? "(ended)" : "stage", "inst", "state",
            "in", "out", "rate/s", "busy", "queue");
    for (int k = 0; k < s->nstages; k++) {
        const mpx_stage_stats_t *g = &s->stage[k].fig;
        char in[16], out[16], rate[16], inst[16];
        human(in, sizeof in, (double)g->items_in);
        human(out, sizeof out, (double)g->items_out);
        /* A source has no input: its pace is what it puts. */
        human(rate, sizeof rate, g->items_in ? g->in_rate : g->out_rate);
        if (g->instances > 1)
            snprintf(inst, sizeof inst, "%d/%d", g->running, g->instances);
        else
            snprintf(inst, sizeof inst, "1");
        fprintf(f, "    %-26.26s %5s %-9s %9s %9s %8s %4.0f%% %llu/%llu\n", g->name, inst,
                mpx_stage_state_name(g->state), in, out, rate, 100 * g->busy,
                (unsigned long long)g->depth, (unsigned long long)g->capacity);
    }
    if (r->plan->pool) {
        pool_stats_t p;
        pool_get_stats(r->plan->pool, &p);
        char used[16], cap[16], peak[16];
        human(used, sizeof used, (double)p.bytes_in_use);
        human(cap, sizeof cap, (double)p.capacity);
        human(peak, sizeof peak, (double)p.peak_bytes);
        fprintf(f, "    pool: %sB of %sB in %llu blocks (peak %sB)\n", used, cap,
                (unsigned long long)p.blocks_in_use, peak);
    }
    funlockfile(f);
    fflush(f);
}

/* The source that knows its size: the first stage with a total. */
static const mpx_stage_stats_t *progress_stage(const stats_t *s)
{
    for (int k = 0; k < s->nstages; k++)
        if (s->stage[k].fig.progress_total)
            return &s->stage[k].fig;
    return NULL;
}

/* A graph fed by the program, whose stages do not know the size: the
 * bar counts the results the program took, against the total it gave
 * (mpx_graph_set_progress_total), or without one. */
static void draw_results(struct mpx_run *r, long now)
{
    stats_t *s = r->stats;
    double done = (double)s->taken_by[r->n], total = (double)r->root->mon.progress_total;
    double secs = (double)(now - s->start_ms) / 1000.0;
    double rate = secs > 0 ? done / secs : 0;
    char d[16], t[16], rt[16];
    human(d, sizeof d, done);
    human(t, sizeof t, total);
    human(rt, sizeof rt, rate);
    if (total > 0) {
        double frac = done < total ? done / total : 1.0;
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        long left = rate > 0 ? (long)((total - done) / rate + 0.5) : -1;
        char eta[32];
        if (s->ended || left < 0)
            snprintf(eta, sizeof eta, s->ended ? "in %.1fs" : "ETA ?", secs);
        else
            snprintf(eta, sizeof eta, "ETA %ld:%02ld", left / 60, left % 60);
        fprintf(stderr, "\rresults [%s] %3.0f%% %s/%s %s/s %s\033[K%s", bar, 100 * frac, d, t,
                rt, eta, s->ended ? "\n" : "");
    } else {
        fprintf(stderr, "\rresults %s %s/s %.1fs\033[K%s", d, rt, secs, s->ended ? "\n" : "");
    }
    fflush(stderr);
    s->bar_drawn = !s->ended;
}

static void draw_bar(struct mpx_run *r, long now)
{
    stats_t *s = r->stats;
    const mpx_stage_stats_t *g = progress_stage(s);
    if (!g && plan_fed(r->plan)) {
        draw_results(r, now);
        return;
    }
    if (!g)
        return;
    double total = (double)g->progress_total, done = (double)g->progress_done;
    double frac = done < total ? done / total : 1.0;
    double secs = (double)(now - s->start_ms) / 1000.0;
    double rate = secs > 0 ? done / secs : 0;
    char bar[31], d[16], t[16], rt[16], eta[32];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    human(d, sizeof d, done);
    human(t, sizeof t, total);
    human(rt, sizeof rt, rate);
    if (s->ended || rate <= 0)
        snprintf(eta, sizeof eta, "%s %.1fs", s->ended ? "in" : "ETA ?", s->ended ? secs : 0.0);
    else {
        long left = (long)((total - done) / rate + 0.5);
        snprintf(eta, sizeof eta, "ETA %ld:%02ld", left / 60, left % 60);
    }
    if (s->ended && rate <= 0)
        snprintf(eta, sizeof eta, "in %.1fs", secs);
    fprintf(stderr, "\r%s [%s] %3.0f%% %s/%s %s/s %s\033[K%s", g->name, bar, 100 * frac, d, t, rt,
            eta, s->ended ? "\n" : "");
    fflush(stderr);
    s->bar_drawn = !s->ended;
}

/* ---- snapshots --------------------------------------------------------------- */

static void publish(stats_t *s, const char *msg, size_t len)
{
    if (s->pub)
        zmq_send(s->pub, msg, len, ZMQ_DONTWAIT);
}

static void snapshot(struct mpx_run *r, long now)
{
    stats_t *s = r->stats;
    compute(r, now);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m) {
        json_snapshot(m, r, now);
        if (fclose(m) == 0) {
            free(s->latest);
            s->latest = buf;
            s->latest_len = len;
            publish(s, buf, len);
            FILE *json = r->root->mon.json;
            if (json) {
                fwrite(buf, 1, len, json);
                fputc('\n', json);
                fflush(json);
            }
        } else {
            free(buf);
        }
    }
    const node_monitor_t *mon = &r->root->mon;
    if (mon->watch_ms > 0 && (s->ended || now >= s->watch_next_ms)) {
        print_table(r, now);
        s->watch_next_ms = now + mon->watch_ms;
    } else if (s->progress && mon->watch_ms <= 0) {
        draw_bar(r, now);
    }
}

long stats_timeout(struct mpx_run *r)
{
    stats_t *s = r->stats;
    if (!s || s->ended)
        return -1;
    long due = s->next_ms;
    if (r->root->mon.watch_ms > 0 && s->watch_next_ms < due)
        due = s->watch_next_ms;
    long left = due - mono_ms();
    return left > 0 ? left : 0;
}

void stats_tick(struct mpx_run *r)
{
    stats_t *s = r->stats;
    if (!s || s->ended)
        return;
    /* A new monitor says so with a subscription message: it gets the
     * latest snapshot at once instead of after up to an interval. */
    if (s->pub) {
        uint8_t sub[256];
        bool joined = false;
        int n;
        while ((n = zmq_recv(s->pub, sub, sizeof sub, ZMQ_DONTWAIT)) >= 0)
            joined |= n >= 1 && sub[0] == 1;
        if (joined && s->latest)
            publish(s, s->latest, s->latest_len);
    }
    long now = mono_ms();
    bool watch_due = r->root->mon.watch_ms > 0 && now >= s->watch_next_ms;
    if (now < s->next_ms && !watch_due)
        return;
    snapshot(r, now);
    if (now >= s->next_ms)
        s->next_ms = now + s->interval_ms;
}

void stats_end(struct mpx_run *r)
{
    stats_t *s = r->stats;
    if (!s || s->ended)
        return;
    s->ended = true;
    if (r->sink)
        s->out_last = edge_in_items(r->sink);
    snapshot(r, mono_ms());
    close_listener(s);
    if (s->pub) {
        zmq_close(s->pub);
        s->pub = NULL;
    }
}

void stats_free(struct mpx_run *r)
{
    stats_t *s = r->stats;
    if (!s)
        return;
    close_listener(s);
    if (s->pub)
        zmq_close(s->pub);
    for (int i = 0; s->inst && i < r->n; i++) {
        free(s->inst[i].out);
        free(s->inst[i].in);
    }
    free(s->inst);
    free(s->stage);
    free(s->stage_of);
    free(s->sent_to);
    free(s->taken_by);
    free(s->latest);
    free(s);
    r->stats = NULL;
}

/* ---- the public calls ---------------------------------------------------------- */

static bool is_root(const mpx_graph_t *g) { return g && !g->parent; }

int mpx_graph_set_stats_interval(mpx_graph_t *g, int interval_ms)
{
    if (!is_root(g) || interval_ms < 10 || interval_ms > 60000)
        return MPX_EINVAL;
    if (g->run)
        return MPX_ESTATE;
    g->mon.interval_ms = interval_ms;
    return 0;
}

size_t mpx_graph_stage_count(const mpx_graph_t *g)
{
    if (!g || !g->run || !g->run->stats)
        return 0;
    return (size_t)g->run->stats->nstages;
}

int mpx_graph_stage_stats(const mpx_graph_t *g, size_t i, mpx_stage_stats_t *out)
{
    if (!g || !out)
        return MPX_EINVAL;
    if (i >= mpx_graph_stage_count(g))
        return MPX_ERANGE;
    stats_t *s = g->run->stats;
    /* While the graph runs, figures are as of the latest snapshot; the
     * application may ask between snapshots, and gets those. */
    *out = s->stage[i].fig;
    return 0;
}

int mpx_graph_watch(mpx_graph_t *g, int interval_ms)
{
    if (!is_root(g) || interval_ms < 0)
        return MPX_EINVAL;
    int ms = interval_ms ? interval_ms : (g->mon.interval_ms ? g->mon.interval_ms : MPX_STATS_INTERVAL_MS);
    g->mon.watch_ms = ms;
    if (g->run && g->run->stats) {
        g->run->stats->watch_next_ms = mono_ms() + ms;
        sup_deadline_moved(g->run); /* the first table may be due sooner */
    }
    return 0;
}

int mpx_graph_unwatch(mpx_graph_t *g)
{
    if (!is_root(g))
        return MPX_EINVAL;
    g->mon.watch_ms = 0;
    return 0;
}

int mpx_graph_stats_to(mpx_graph_t *g, FILE *f)
{
    if (!is_root(g))
        return MPX_EINVAL;
    g->mon.json = f;
    return 0;
}

int mpx_graph_set_progress_total(mpx_graph_t *g, uint64_t total)
{
    if (!is_root(g))
        return MPX_EINVAL;
    g->mon.progress_total = total;
    return 0;
}

int mpx_graph_set_progress(mpx_graph_t *g, bool on)
{
    if (!is_root(g))
        return MPX_EINVAL;
    g->mon.progress = on ? 1 : -1;
    if (g->run && g->run->stats)
        g->run->stats->progress = on;
    return 0;
}

/* ---- elastic groups ---------------------------------------------------------- */

void stats_inst(const struct mpx_run *r, int i, stats_inst_t *out)
{
    const inst_stats_t *is = &r->stats->inst[i];
    *out = (stats_inst_t){.busy = is->have_prev ? is->busy : 0,
                          .blocked = is->have_prev ? is->blocked : 0,
                          .cpu = is->have_prev ? is->cpu : NAN, .depth = is->depth};
}

void stats_elastic(struct mpx_run *r, const char *stage, int from, int to, const char *action,
                   const char *why, const char *decision_json)
{
    stats_t *s = r->stats;
    if (!s)
        return;
    long now = mono_ms();
    elastic_event_t *e = &s->events[s->nevents % STATS_EVENTS];
    s->nevents++;
    *e = (elastic_event_t){.t = (double)(now - s->start_ms) / 1000.0, .from = from, .to = to};
    snprintf(e->stage, sizeof e->stage, "%s", stage);
    snprintf(e->action, sizeof e->action, "%s", action);
    snprintf(e->why, sizeof e->why, "%s", why);
    const node_monitor_t *mon = &r->root->mon;
    if (mon->json) {
        fputs("{\"mpx_elastic\": 1, ", mon->json);
        json_event(mon->json, e);
        if (decision_json && decision_json[0])
            fprintf(mon->json, ", \"decision\": %s", decision_json);
        fputs("}\n", mon->json);
        fflush(mon->json);
    }
    if (mon->watch_ms > 0)
        fprintf(stderr, "mpx %7.2fs elastic: stage '%s' %s, %d -> %d instances: %s\n", e->t,
                e->stage, e->action, from, to, e->why);
}

void stats_rebase(struct mpx_run *r, int i)
{
    if (!r->stats)
        return;
    inst_stats_t *is = &r->stats->inst[i];
    const run_child_t *c = &r->ch[i];
    is->base_in += c->done ? c->items_in : is->cur.items_in;
    is->base_out += c->done ? c->items_out : is->cur.items_out;
    is->base_dropped += c->done ? c->items_dropped : is->cur.dropped;
    is->have = is->have_prev = false;
    is->cur = is->prev = (wire_stats_t){0};
    is->busy = is->blocked = 0;
    is->cpu = NAN;
}
