/* lib/graph.c — the public calls that run a graph: check, start, next,
 * poll, the event-loop descriptor and dispatch, join, stop, collect, run,
 * and what can be asked of a graph.  The work is in supervisor.c; this
 * file checks arguments and states.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/plan.h"
#include "meta.h"
#include "mpx/error.h"
#include "mpx/graph.h"
#include "mpx/monitor.h"
#include "pool.h"
#include "supervisor.h"

static void set_check_error(mpx_graph_t *g, char *msg)
{
    free(g->check_error);
    g->check_error = msg;
}

int mpx_graph_check(mpx_graph_t *g)
{
    if (!g)
        return MPX_EINVAL;
    if (g->parent) {
        set_check_error(g, strdup("this node is part of another graph: check or run its root"));
        return MPX_EGRAPH;
    }
    bool oom = false;
    char *msg = node_check(g, &oom);
    if (oom)
        return MPX_ENOMEM;
    if (msg) {
        set_check_error(g, msg);
        return MPX_EGRAPH;
    }
    plan_t *plan = NULL;
    int rc = plan_build(g, &plan, &msg);
    plan_free(&plan);
    if (rc != 0) {
        set_check_error(g, msg);
        return rc;
    }
    set_check_error(g, NULL);
    return 0;
}

int mpx_graph_start(mpx_graph_t *g)
{
    if (!g)
        return MPX_EINVAL;
    if (g->run) {
        set_check_error(g, strdup("the graph has already been started; a graph runs once"));
        return MPX_ESTATE;
    }
    int rc = mpx_graph_check(g);
    if (rc != 0)
        return rc;
    g->run = calloc(1, sizeof *g->run);
    if (!g->run)
        return MPX_ENOMEM;
    g->run->root = g;
    return sup_start(g->run);
}

static int ensure_started(mpx_graph_t *g)
{
    if (!g)
        return MPX_EINVAL;
    if (!g->run)
        return mpx_graph_start(g);
    return 0;
}

mpx_item_t *mpx_graph_next(mpx_graph_t *g)
{
    if (ensure_started(g) != 0 || !g->run)
        return NULL;
    return sup_next(g->run);
}

int mpx_graph_poll(mpx_graph_t *g, int timeout_ms, mpx_item_t **item)
{
    if (!item)
        return MPX_EINVAL;
    *item = NULL;
    int rc = ensure_started(g);
    if (rc != 0)
        return rc;
    return sup_poll(g->run, timeout_ms < 0 ? -1 : timeout_ms, item);
}

int mpx_graph_fd(mpx_graph_t *g)
{
    int rc = ensure_started(g);
    if (rc != 0)
        return rc;
    return sup_fd(g->run);
}

int mpx_graph_dispatch(mpx_graph_t *g)
{
    int rc = ensure_started(g);
    if (rc != 0)
        return rc;
    return sup_dispatch(g->run);
}

/* ---- the program's input ------------------------------------------------ */

static int put_parts(mpx_graph_t *g, const mpx_part_t *parts, size_t n)
{
    if (!g || g->parent || (n && !parts))
        return MPX_EINVAL;
    if (n > UINT16_MAX)
        return MPX_ERANGE;
    for (size_t i = 0; i < n; i++) {
        if (!parts[i].data && parts[i].size)
            return MPX_EINVAL;
        if (parts[i].size > UINT32_MAX)
            return MPX_ERANGE;
    }
    int rc = ensure_started(g);
    if (rc != 0)
        return rc;
    return sup_put(g->run, parts, n, g->input_meta, g->nonblocking);
}

int mpx_graph_put(mpx_graph_t *g, const void *data, size_t size)
{
    mpx_part_t part = {data, size};
    return put_parts(g, &part, 1);
}

int mpx_graph_put_str(mpx_graph_t *g, const char *s)
{
    if (!s)
        return MPX_EINVAL;
    mpx_part_t part = {s, strlen(s)};
    return put_parts(g, &part, 1);
}

int mpx_graph_put_parts(mpx_graph_t *g, const mpx_part_t *parts, size_t n)
{
    return put_parts(g, parts, n);
}

int mpx_graph_close_input(mpx_graph_t *g)
{
    if (!g || g->parent)
        return MPX_EINVAL;
    int rc = ensure_started(g);
    if (rc != 0)
        return rc;
    return sup_close_input(g->run);
}

uint64_t mpx_graph_input_count(const mpx_graph_t *g)
{
    return g && g->run ? g->run->input_count : 0;
}

int mpx_graph_set_nonblocking(mpx_graph_t *g, bool on)
{
    if (!g || g->parent)
        return MPX_EINVAL;
    g->nonblocking = on;
    return 0;
}

static meta_cur_t *input_meta(mpx_graph_t *g)
{
    if (!g->input_meta) {
        g->input_meta = calloc(1, sizeof *g->input_meta);
        if (g->input_meta)
            meta_cur_reset(g->input_meta, NULL, 0, 0);
    }
    return g->input_meta;
}

int mpx_graph_meta_set(mpx_graph_t *g, const char *key, const void *value, size_t size)
{
    if (!g || g->parent || !key)
        return MPX_EINVAL;
    /* Every input item's own number: not the program's to give. */
    if (strcmp(key, "mpx.index") == 0)
        return MPX_EINVAL;
    meta_cur_t *m = input_meta(g);
    return m ? meta_cur_set(m, key, value, size) : MPX_ENOMEM;
}

int mpx_graph_meta_set_str(mpx_graph_t *g, const char *key, const char *value)
{
    if (!value)
        return MPX_EINVAL;
    return mpx_graph_meta_set(g, key, value, strlen(value));
}

int mpx_graph_meta_set_i64(mpx_graph_t *g, const char *key, int64_t value)
{
    return mpx_graph_meta_set(g, key, &value, sizeof value);
}

int mpx_graph_meta_del(mpx_graph_t *g, const char *key)
{
    if (!g || g->parent || !key)
        return MPX_EINVAL;
    return g->input_meta ? meta_cur_del(g->input_meta, key) : MPX_EINVAL;
}

void mpx_graph_meta_clear(mpx_graph_t *g)
{
    if (g && g->input_meta) {
        meta_cur_free(g->input_meta);
        free(g->input_meta);
        g->input_meta = NULL;
    }
}

int mpx_graph_join(mpx_graph_t *g)
{
    int rc = ensure_started(g);
    if (rc != 0 || !g->run)
        return rc ? rc : MPX_ENOMEM;
    /* Nothing more can be put while join waits: the input ends here. */
    (void)sup_close_input(g->run);
    sup_output_unordered(g->run);
    while (sup_next(g->run))
        ;
    return g->run->status;
}

int mpx_graph_pool_stats(const mpx_graph_t *g, mpx_pool_stats_t *out)
{
    if (!g || !out)
        return MPX_EINVAL;
    if (!g->run || !g->run->plan || !g->run->plan->pool)
        return MPX_ESTATE;
    pool_stats_t s;
    pool_get_stats(g->run->plan->pool, &s);
    *out = (mpx_pool_stats_t){s.capacity, s.bytes_in_use, s.blocks_in_use, s.peak_bytes,
                              s.committed};
    return 0;
}

int mpx_graph_stop(mpx_graph_t *g)
{
    if (!g)
        return MPX_EINVAL;
    if (!g->run)
        return MPX_ESTATE;
    sup_stop(g->run, MPX_ESTOPPED, "the graph was stopped by mpx_graph_stop");
    return 0;
}

/* Items collected from pool blocks stay in them, held by the list, while
 * the pool is less than half full: the list then keeps the pool mapped
 * (pool_ref), so it may outlive the graph.  Beyond that they are copied
 * out, so that a long output collected whole does not fill the pool the
 * stages still need. */
struct mpx_list {
    mpx_item_t *items;
    size_t n, cap;
    pool_t *pool; /* referred to while an item is in it */
    pool_holder_t who;
};

typedef struct list_refs {
    const mpx_list_t *l;
    int rc;
    size_t left; /* holds taken (to drop) */
} list_refs_t;

static void list_hold(void *ctx, uint32_t blk)
{
    list_refs_t *r = ctx;
    if (r->rc == 0 && (r->rc = pool_hold(r->l->pool, blk, r->l->who)) == 0)
        r->left++;
}

static void list_release(void *ctx, uint32_t blk)
{
    list_refs_t *r = ctx;
    if (r->left > 0) {
        r->left--;
        (void)pool_release(r->l->pool, blk, r->l->who);
    }
}

/* Item it (whose record is at rec, a copy) kept where its parts are in the
 * pool: 0, or nonzero when it must be copied out instead. */
static int list_keep_in_place(mpx_list_t *l, mpx_item_t *dst, mpx_part_t *parts, uint8_t *rec,
                              uint32_t size, const struct mpx_run *run)
{
    pool_t *pool = run->plan->pool;
    pool_stats_t st;
    pool_get_stats(pool, &st);
    if (st.bytes_in_use * 2 >= st.capacity || (l->pool && l->pool != pool))
        return 1;
    pool_holder_t who = {POOL_PARENT_SLOT((uint32_t)run->plan->ninst), 0};
    if (wire_rec_decode_pool(rec, size, dst, parts, pool, &who) != 0)
        return 1;
    if (!l->pool) {
        l->pool = pool_ref(pool);
        l->who = who;
    }
    list_refs_t r = {l, 0, 0};
    wire_pool_refs(rec, size, 1, list_hold, &r);
    if (r.rc != 0) {
        wire_pool_refs(rec, size, 1, list_release, &r);
        return 1;
    }
    return 0;
}

static int list_add(mpx_list_t *l, const mpx_item_t *it, const struct mpx_run *run)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        mpx_item_t *items = realloc(l->items, cap * sizeof *items);
        if (!items)
            return MPX_ENOMEM;
        l->items = items;
        l->cap = cap;
    }
    uint32_t size = it->size;
    uint8_t *rec = malloc(size);
    mpx_part_t *parts = malloc((it->nparts ? it->nparts : 1) * sizeof *parts);
    if (!rec || !parts) {
        free(rec);
        free(parts);
        return MPX_ENOMEM;
    }
    memcpy(rec, it->rec, size);
    if ((it->flags & WIRE_REC_POOL) &&
        list_keep_in_place(l, &l->items[l->n], parts, rec, size, run) == 0) {
        l->n++;
        return 0;
    }
    if (it->flags & WIRE_REC_POOL) {
        free(rec);
        if (!(rec = wire_rec_inline(it, &size))) {
            free(parts);
            return MPX_ENOMEM;
        }
    }
    if (wire_rec_decode(rec, size, &l->items[l->n], parts) != 0) {
        free(rec);
        free(parts);
        return MPX_EPROTO;
    }
    l->n++;
    return 0;
}

int mpx_graph_collect(mpx_graph_t *g, mpx_list_t **out)
{
    if (!out)
        return MPX_EINVAL;
    *out = NULL;
    int rc = ensure_started(g);
    if (rc != 0)
        return rc;
    (void)sup_close_input(g->run); /* as join: nothing more can be put */
    mpx_list_t *l = calloc(1, sizeof *l);
    if (!l)
        return MPX_ENOMEM;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        rc = list_add(l, it, g->run);
        if (rc != 0) {
            sup_stop(g->run, rc, "out of memory while collecting the output");
            break;
        }
    }
    rc = mpx_graph_join(g);
    if (rc != 0) {
        mpx_list_destroy(&l);
        return rc;
    }
    *out = l;
    return 0;
}

size_t mpx_list_size(const mpx_list_t *l) { return l ? l->n : 0; }

mpx_item_t *mpx_list_at(const mpx_list_t *l, size_t i)
{
    return l && i < l->n ? &l->items[i] : NULL;
}

void mpx_list_destroy(mpx_list_t **lp)
{
    mpx_list_t *l = lp ? *lp : NULL;
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        const mpx_item_t *it = &l->items[i];
        if (it->flags & WIRE_REC_POOL) {
            list_refs_t r = {l, 0, SIZE_MAX};
            wire_pool_refs(it->rec, it->size, 1, list_release, &r);
        }
        free((void *)it->rec);
        free(it->parts);
    }
    pool_destroy(&l->pool);
    free(l->items);
    free(l);
    *lp = NULL;
}

int mpx_run(mpx_graph_t *g)
{
    if (!g) {
        fprintf(stderr, "mpx: no graph to run (a builder call ran out of memory)\n");
        return MPX_EINVAL;
    }
    int rc = mpx_graph_join(g);
    if (rc != 0)
        fprintf(stderr, "mpx: %s\n", mpx_graph_error(g));
    mpx_node_destroy(&g);
    return rc;
}

const char *mpx_graph_error(const mpx_graph_t *g)
{
    if (!g)
        return "no graph";
    if (g->run && g->run->error)
        return g->run->error;
    if (g->check_error)
        return g->check_error;
    return "";
}

bool mpx_graph_started(const mpx_graph_t *g) { return g && g->run; }

bool mpx_graph_finished(const mpx_graph_t *g)
{
    return g && g->run && g->run->state == RUN_ENDED;
}

const char *mpx_graph_runtime_dir(const mpx_graph_t *g)
{
    return g && g->run && g->run->dir[0] ? g->run->dir : NULL;
}

/* Those of the main graph (not its side graphs'), less Seq's halves that
 * run in a neighbour's process (plan_place says which). */
static size_t count_instances(const mpx_node_t *n)
{
    if (n->kind == NODE_STAGE)
        return node_seq_hosted(n) ? 0 : (size_t)n->count;
    size_t s = 0;
    for (size_t i = 0; i < n->nchildren; i++)
        s += count_instances(n->children[i]);
    return s;
}

size_t mpx_graph_instance_count(const mpx_graph_t *g)
{
    if (!g)
        return 0;
    if (g->run && g->run->plan)
        return (size_t)g->run->n;
    /* The placement only caches what the tree's shape implies. */
    plan_place((mpx_node_t *)g);
    return count_instances(g);
}

int mpx_graph_instance_info(const mpx_graph_t *g, size_t i, mpx_instance_info_t *out)
{
    if (!g || !out)
        return MPX_EINVAL;
    if (!g->run || !g->run->plan || !g->run->ch)
        return MPX_ESTATE;
    if (i >= (size_t)g->run->n)
        return MPX_ERANGE;
    const struct mpx_run *r = g->run;
    const run_child_t *c = &r->ch[i];
    const plan_inst_t *pi = &r->plan->inst[i];
    *out = (mpx_instance_info_t){
        .name = pi->name,
        .instance = pi->index,
        .instances = pi->count,
        .pid = c->pid,
        .exited = c->exited,
        .wait_status = c->wait_status,
        .max_rss_kib = c->max_rss_kib,
        .items_in = c->items_in,
        .items_out = c->items_out,
        .items_dropped = c->items_dropped,
        .items_failed = c->items_failed,
        .items_resent = c->items_resent,
        .restarts = c->restarts,
    };
    return 0;
}

void mpx_node_destroy(mpx_node_t **np)
{
    mpx_node_t *n = np ? *np : NULL;
    if (!n)
        return;
    /* A node inside a group is freed with its root; freeing it here would
     * leave the group pointing at freed memory. */
    if (n->parent)
        return;
    if (n->run) {
        sup_free(n->run);
        n->run = NULL;
    }
    mpx_graph_meta_clear(n);
    node_tree_free(n);
    *np = NULL;
}
