/* lib/imap.c — a pool of workers mapped over the program's inputs
 * (mpx/imap.h): a graph of one parallel group fed with mpx_graph_put, and
 * in the parent a window over the inputs' numbers (mpx.index) that puts
 * results back in order and lets each input's result through once.
 *
 * The window is a ring of slots for the numbers from `base` on.  In order,
 * a slot holds a copy of a result that came early (or HOLE: an input
 * whose error result was dropped), until `base` reaches it; as they
 * finish, a slot only marks a number as seen, and `base` follows the
 * first number not yet seen.  Results that arrive in order (the common
 * case) are handed out as the graph gave them, without a copy.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpx/error.h"
#include "mpx/graph.h"
#include "mpx/imap.h"
#include "mpx/monitor.h"
#include "mpx/stage.h"

/* As they finish, numbers further than this past the first one not seen
 * slide the window on: an input that never gives a result (a worker that
 * filters) must not make it grow without end.  A result from behind such
 * a slide goes to the program: it may be the first of a slow input (and
 * of those queued behind it in the same worker); only a repeat can then
 * come through, from that far back. */
#define UNORDERED_SPAN ((uint64_t)1 << 20)

static char hole, seen;
#define HOLE ((void *)&hole)
#define SEEN ((void *)&seen)

typedef struct window {
    void **slot;
    uint64_t cap; /* a power of two */
    uint64_t base;
    uint64_t held; /* slots in use */
    uint64_t slid; /* as they finish: the base a slide moved on to last */
} window_t;

struct mpx_imap {
    mpx_graph_t *g;
    bool ordered;
    bool drop_errors; /* MPX_ON_ERROR_SKIP: error results are not handed out */
    bool ended;       /* the graph's output ended */
    window_t win;
    mpx_item_t *owned; /* handed out last, from the window: freed at the next call */
};

static void **win_at(window_t *w, uint64_t idx) { return &w->slot[idx & (w->cap - 1)]; }

/* Room in the window for number idx (>= base). */
static int win_reserve(window_t *w, uint64_t idx)
{
    if (idx - w->base < w->cap)
        return 0;
    uint64_t cap = w->cap ? w->cap : 64;
    while (idx - w->base >= cap)
        cap *= 2;
    void **slot = calloc(cap, sizeof *slot);
    if (!slot)
        return MPX_ENOMEM;
    for (uint64_t i = 0; i < w->cap; i++)
        slot[(w->base + i) & (cap - 1)] = *win_at(w, w->base + i);
    free(w->slot);
    w->slot = slot;
    w->cap = cap;
    return 0;
}

/* The slot at base is done with: move on. */
static void *win_pop(window_t *w)
{
    void **s = win_at(w, w->base);
    void *v = *s;
    *s = NULL;
    w->held -= v != NULL;
    w->base++;
    return v;
}

static void win_free(window_t *w)
{
    for (uint64_t i = 0; w->held && i < w->cap; i++) {
        void *v = w->slot[i];
        if (v && v != HOLE && v != SEEN) {
            mpx_item_t *it = v;
            mpx_item_free(&it);
        }
    }
    free(w->slot);
    memset(w, 0, sizeof *w);
}

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int apply_opts(mpx_node_t *group, mpx_graph_t *g, const mpx_imap_opts_t *o)
{
    int rc = 0;
    if (o->timeout_ms)
        rc = mpx_node_set_timeout(g, o->timeout_ms);
    if (rc == 0 && o->retries)
        rc = mpx_node_set_retries(g, o->retries);
    if (rc == 0 && o->on_error && o->on_error != MPX_ON_ERROR_STOP)
        /* A skipped input still answers, so that the window knows it will
         * get no result: its error result is dropped here. */
        rc = mpx_node_on_error(g, MPX_ON_ERROR_RESULT, NULL);
    if (rc == 0 && o->capacity)
        rc = mpx_node_set_capacity(g, o->capacity, 0);
    if (rc == 0 && o->name)
        rc = mpx_node_set_name(group, o->name);
    if (rc == 0 && o->progress)
        rc = mpx_graph_set_progress(g, o->progress > 0);
    if (rc == 0 && o->total)
        rc = mpx_graph_set_progress_total(g, o->total);
    return rc;
}

int mpx_imap_start(mpx_imap_t **out, const mpx_stage_def_t *worker, const void *args,
                   const mpx_imap_opts_t *opts)
{
    if (!out)
        return MPX_EINVAL;
    *out = NULL;
    static const mpx_imap_opts_t defaults;
    const mpx_imap_opts_t *o = opts ? opts : &defaults;
    if (!worker || !worker->process || o->workers < 0 || o->workers > MPX_MAX_INSTANCES ||
        o->timeout_ms < 0 || o->retries < 0 || o->retries > MPX_MAX_RETRIES ||
        o->on_error == MPX_ON_ERROR_DEAD_LETTER || o->on_error < 0 ||
        o->on_error > MPX_ON_ERROR_RESULT ||
        /* Their count is `workers`: with one per CPU, the program could
         * not know how many would be read. */
        (o->worker_args && o->workers == 0) ||
        (o->max_workers > 0 && (o->worker_args || o->min_workers < 0 ||
                                o->max_workers > MPX_MAX_INSTANCES ||
                                o->min_workers > o->max_workers)))
        return MPX_EINVAL;
    int n = o->workers;
    int least = o->min_workers > 0 ? o->min_workers : 1;
    if (o->max_workers > 0 && n == 0)
        n = least;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)(cpus < MPX_MAX_INSTANCES ? cpus : MPX_MAX_INSTANCES) : 1;
    }
    mpx_node_t *group;
    if (o->worker_args) {
        mpx_node_t **nodes = malloc((size_t)n * sizeof *nodes);
        if (!nodes)
            return MPX_ENOMEM;
        for (int i = 0; i < n; i++)
            nodes[i] = mpx_stage(worker, o->worker_args[i]);
        group = mpx_parallel_v(nodes, (size_t)n);
        free(nodes);
    } else {
        group = mpx_as(n, worker, args);
    }
    /* Elastic: it starts with n (kept within the bounds). */
    if (group && o->max_workers > 0 && mpx_node_set_elastic(group, least, o->max_workers) != 0) {
        mpx_node_destroy(&group);
        return MPX_EINVAL;
    }
    mpx_graph_t *g = MPX_EZ(group);
    if (!g)
        return MPX_ENOMEM;
    mpx_imap_t *m = calloc(1, sizeof *m);
    if (!m) {
        mpx_node_destroy(&g);
        return MPX_ENOMEM;
    }
    m->g = g;
    m->ordered = o->ordered;
    m->drop_errors = o->on_error == MPX_ON_ERROR_SKIP;
    int rc = apply_opts(group, g, o);
    if (rc == 0)
        rc = mpx_graph_start(g);
    if (rc != 0) {
        if (mpx_graph_error(g)[0])
            fprintf(stderr, "mpx: %s\n", mpx_graph_error(g));
        mpx_imap_destroy(&m);
        return rc;
    }
    *out = m;
    return 0;
}

int mpx_imap_put(mpx_imap_t *m, const void *data, size_t size)
{
    return m ? mpx_graph_put(m->g, data, size) : MPX_EINVAL;
}

int mpx_imap_put_parts(mpx_imap_t *m, const mpx_part_t *parts, size_t n)
{
    return m ? mpx_graph_put_parts(m->g, parts, n) : MPX_EINVAL;
}

int mpx_imap_close(mpx_imap_t *m) { return m ? mpx_graph_close_input(m->g) : MPX_EINVAL; }

/* A result the graph handed out: 1 when it goes to the program now, 0
 * when it was kept or dropped, or an error. */
static int place(mpx_imap_t *m, mpx_item_t *it)
{
    window_t *w = &m->win;
    bool error = m->drop_errors && mpx_item_error(it);
    int64_t idx;
    if (mpx_item_meta_i64(it, "mpx.index", &idx) != 0 || idx < 0)
        return error ? 0 : 1; /* not one of ours to place: a worker cleared its meta */
    uint64_t i = (uint64_t)idx;
    if (i < w->base) /* a repeat, unless a slide passed it unseen */
        return !m->ordered && i < w->slid && !error ? 1 : 0;
    if (!m->ordered && i - w->base >= UNORDERED_SPAN) {
        while (i - w->base >= UNORDERED_SPAN / 2)
            (void)win_pop(w);
        w->slid = w->base;
    }
    int rc = win_reserve(w, i);
    if (rc != 0)
        return rc;
    void **s = win_at(w, i);
    if (*s)
        return 0; /* a repeat */
    if (!m->ordered) {
        *s = SEEN;
        w->held++;
        while (w->held && *win_at(w, w->base))
            (void)win_pop(w);
        return error ? 0 : 1;
    }
    if (i == w->base) {
        w->base++;
        return error ? 0 : 1;
    }
    if (error) {
        *s = HOLE;
    } else if (!(*s = mpx_item_dup(it))) {
        return MPX_ENOMEM;
    }
    w->held++;
    return 0;
}

int mpx_imap_next(mpx_imap_t *m, int timeout_ms, mpx_item_t **result)
{
    if (!m || !result)
        return MPX_EINVAL;
    *result = NULL;
    mpx_item_free(&m->owned);
    long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    window_t *w = &m->win;
    for (;;) {
        if (m->ordered && w->held) {
            void **s = win_at(w, w->base);
            if (*s || m->ended) {
                /* Once the output has ended, a number nothing came for
                 * is passed over. */
                void *v = win_pop(w);
                if (!v || v == HOLE)
                    continue;
                *result = m->owned = v;
                return 1;
            }
        }
        if (m->ended)
            return 0;
        long wait = deadline < 0 ? -1 : deadline - now_ms();
        mpx_item_t *it;
        int rc = mpx_graph_poll(m->g, wait < 0 && deadline >= 0 ? 0 : (int)wait, &it);
        if (rc == 0) {
            m->ended = true;
            continue;
        }
        if (rc < 0)
            return rc;
        rc = place(m, it);
        if (rc != 0) {
            if (rc == 1)
                *result = it;
            return rc;
        }
    }
}

int mpx_imap_join(mpx_imap_t *m)
{
    if (!m)
        return MPX_EINVAL;
    mpx_item_free(&m->owned);
    win_free(&m->win);
    return mpx_graph_join(m->g);
}

const char *mpx_imap_error(const mpx_imap_t *m) { return m ? mpx_graph_error(m->g) : "no map"; }

mpx_graph_t *mpx_imap_graph(mpx_imap_t *m) { return m ? m->g : NULL; }

void mpx_imap_destroy(mpx_imap_t **mp)
{
    mpx_imap_t *m = mp ? *mp : NULL;
    if (!m)
        return;
    mpx_item_free(&m->owned);
    win_free(&m->win);
    mpx_node_destroy(&m->g);
    free(m);
    *mp = NULL;
}

/* ---- in one call -------------------------------------------------------- */

/* What drain says when the map's output has ended. */
#define DRAIN_END INT_MIN

/* Hand every result waiting to on_result; with `wait`, wait for one
 * first.  0, DRAIN_END, or the code that ends the map (a callback's, or
 * the map's own). */
static int drain(mpx_imap_t *m, bool wait, mpx_imap_output_fn on_result, void *ctx)
{
    mpx_item_t *it;
    int rc;
    while ((rc = mpx_imap_next(m, wait ? -1 : 0, &it)) == 1) {
        wait = false;
        int urc = on_result(ctx, it);
        if (urc != 0)
            return urc == DRAIN_END ? MPX_EINVAL : urc;
    }
    return rc == MPX_ETIMEDOUT || rc == MPX_EINTR ? 0 : rc == 0 ? DRAIN_END : rc;
}

int mpx_imap_run(const mpx_stage_def_t *worker, const void *args, const mpx_imap_opts_t *opts,
                 mpx_imap_input_fn next_input, void *in_ctx, mpx_imap_output_fn on_result,
                 void *out_ctx)
{
    if (!next_input || !on_result)
        return MPX_EINVAL;
    mpx_imap_t *m;
    int rc = mpx_imap_start(&m, worker, args, opts);
    if (rc != 0)
        return rc;
    int stop = 0; /* DRAIN_END, or the code that ends the map early */
    while (stop == 0) {
        mpx_part_t in;
        int got = next_input(in_ctx, &in);
        if (got <= 0) {
            stop = got;
            break;
        }
        /* No room while results wait: take them, then put again. */
        while (stop == 0 && ((rc = mpx_imap_put_parts(m, &in, 1)) == MPX_EAGAIN || rc == MPX_EINTR))
            stop = drain(m, false, on_result, out_ctx);
        if (stop == 0 && rc != 0)
            stop = rc == MPX_ESTOPPED ? DRAIN_END : rc;
    }
    if (stop == 0) {
        (void)mpx_imap_close(m);
        while ((stop = drain(m, true, on_result, out_ctx)) == 0)
            ;
    }
    if (stop != DRAIN_END)
        (void)mpx_graph_stop(m->g); /* ended early by a callback or a refusal */
    int jrc = mpx_imap_join(m);
    if (jrc != 0 && stop == DRAIN_END && mpx_imap_error(m)[0])
        fprintf(stderr, "mpx: %s\n", mpx_imap_error(m));
    mpx_imap_destroy(&m);
    return stop == DRAIN_END ? jrc : stop;
}

typedef struct array_ctx {
    const uint8_t *in;
    size_t n, in_size, next;
    uint8_t *out;
    size_t out_size;
} array_ctx_t;

static int array_input(void *ctx, mpx_part_t *input)
{
    array_ctx_t *a = ctx;
    if (a->next == a->n)
        return 0;
    *input = (mpx_part_t){a->in + a->next * a->in_size, a->in_size};
    a->next++;
    return 1;
}

static int array_output(void *ctx, const mpx_item_t *result)
{
    array_ctx_t *a = ctx;
    int64_t idx;
    if (mpx_item_error(result))
        return 0;
    if (mpx_item_meta_i64(result, "mpx.index", &idx) != 0 || idx < 0 || (size_t)idx >= a->n ||
        mpx_item_parts(result) < 1 || mpx_item_size(result, 0) != a->out_size) {
        fprintf(stderr, "mpx: mpx_imap_array: a result of %zu bytes (index %lld), where %zu "
                        "were expected\n",
                mpx_item_parts(result) ? mpx_item_size(result, 0) : 0, (long long)idx,
                a->out_size);
        return MPX_ERANGE;
    }
    memcpy(a->out + (size_t)idx * a->out_size, mpx_item_data(result, 0), a->out_size);
    return 0;
}

int mpx_imap_array(const mpx_stage_def_t *worker, const void *args, const mpx_imap_opts_t *opts,
                   const void *in, size_t n, size_t in_size, void *out, size_t out_size)
{
    if ((n && (!in || !out)) || !out_size)
        return MPX_EINVAL;
    if (n)
        memset(out, 0, n * out_size);
    array_ctx_t a = {in, n, in_size, 0, out, out_size};
    /* Slots are filled by number: the order results come in is free. */
    mpx_imap_opts_t o = opts ? *opts : (mpx_imap_opts_t){0};
    o.ordered = false;
    if (!o.total)
        o.total = n;
    return mpx_imap_run(worker, args, &o, array_input, &a, array_output, &a);
}
