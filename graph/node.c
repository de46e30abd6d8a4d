/* graph/node.c — builder calls: stages, groups, names and capacities.
 *
 * A builder call never aborts and never forks.  A mistake in its arguments
 * is written into the node it returns (node->error), so that the whole
 * declaration can still be built in one expression and the mistake is
 * reported, with the node's place in the tree, when the graph is checked.
 */
#define _GNU_SOURCE
#include "node.h"
#include "seqhost.h"
#include "source.h"

#include <stdarg.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dup_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* Keep the first mistake only: later ones are usually its consequences. */
static void node_fail(mpx_node_t *n, char *msg)
{
    if (n->error || !msg) {
        free(msg);
        return;
    }
    n->error = msg;
}

const char *node_kind_name(node_kind_t kind)
{
    switch (kind) {
    case NODE_STAGE: return "stage";
    case NODE_SERIAL: return "serial group";
    case NODE_PARALLEL: return "parallel group";
    case NODE_BROADCAST: return "broadcast group";
    }
    return "node";
}

const char *node_stage_name(const mpx_node_t *n)
{
    if (n->name)
        return n->name;
    if (n->def && n->def->name && n->def->name[0])
        return n->def->name;
    return "stage";
}

static mpx_node_t *stage_new(int count, bool by, const mpx_stage_def_t *def,
                             const void *args, const char *caller)
{
    mpx_node_t *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = NODE_STAGE;
    n->timing = n->retries = n->timeout_ms = -1;
    n->def = def;
    n->count = count < 1 ? 1 : count > MPX_MAX_INSTANCES ? MPX_MAX_INSTANCES : count;
    n->by = by;
    if (count < 1)
        node_fail(n, dup_printf("%s: n must be at least 1 (got %d)", caller, count));
    if (count > MPX_MAX_INSTANCES)
        node_fail(n, dup_printf("%s: n must be at most %d (got %d)", caller, MPX_MAX_INSTANCES,
                                count));
    if (!def) {
        node_fail(n, dup_printf("%s: the stage definition is NULL", caller));
        return n;
    }
    const char *name = node_stage_name(n);
    if (!def->setup && !def->process)
        node_fail(n, dup_printf("stage '%s' has neither setup nor process", name));
    if (def->args_size > 0) {
        if (!args) {
            node_fail(n, dup_printf("stage '%s': args_size is %zu but args is NULL",
                                    name, def->args_size));
        } else {
            n->args = malloc(def->args_size);
            if (!n->args) {
                free(n);
                return NULL;
            }
            memcpy(n->args, args, def->args_size);
        }
    }
    return n;
}

mpx_node_t *mpx_stage(const mpx_stage_def_t *def, const void *args)
{
    return stage_new(1, false, def, args, "mpx_stage");
}

mpx_node_t *mpx_as(int n, const mpx_stage_def_t *def, const void *args)
{
    return stage_new(n, false, def, args, "mpx_as");
}

mpx_node_t *mpx_by(int n, const mpx_stage_def_t *def, const void *args)
{
    return stage_new(n, true, def, args, "mpx_by");
}

mpx_node_t *source_stage(const mpx_stage_def_t *def, const void *args)
{
    mpx_node_t *n = stage_new(1, false, def, args, "mpx_stage");
    /* Only a node that holds its args can carry the option in them. */
    if (n && !n->error && n->args && def->args_size >= sizeof(source_opts_t))
        n->indexable = true;
    return n;
}

mpx_node_t *i64map_stage(const mpx_stage_def_t *def, const void *args, i64map_fn apply)
{
    mpx_node_t *n = stage_new(1, false, def, args, "mpx_stage");
    /* apply reads the node's own copy of the args. */
    if (n && !n->error && n->args)
        n->i64map = apply;
    return n;
}

mpx_node_t *seq_stage(const mpx_stage_def_t *def, const seq_args_t *a, enum seq_role role)
{
    mpx_node_t *n = stage_new(1, false, def, a, "mpx_stage");
    if (n)
        n->seq_role = role;
    return n;
}

mpx_node_t *mpx_invalid(const char *fmt, ...)
{
    mpx_node_t *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = NODE_STAGE;
    n->count = 1;
    n->timing = n->retries = n->timeout_ms = -1;
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (!fmt || vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    node_fail(n, msg ? msg : dup_printf("invalid node"));
    return n;
}

static bool is_ancestor(const mpx_node_t *maybe, const mpx_node_t *of)
{
    for (const mpx_node_t *p = of; p; p = p->parent)
        if (p == maybe)
            return true;
    return false;
}

/* Adopt the children that can be adopted; record what is wrong with the
 * others.  A node already owned elsewhere is not adopted, so that every
 * node is freed exactly once whatever the user passed. */
static mpx_node_t *group_new(node_kind_t kind, mpx_node_t *const *nodes, size_t count)
{
    mpx_node_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->kind = kind;
    g->timing = g->retries = g->timeout_ms = -1;
    if (count == 0 || !nodes) {
        node_fail(g, dup_printf("empty %s (a group needs at least one node)",
                                node_kind_name(kind)));
        return g;
    }
    g->children = calloc(count, sizeof *g->children);
    if (!g->children) {
        free(g);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        mpx_node_t *c = nodes[i];
        if (!c) {
            /* Either the user wrote NULL or a call that makes nodes
             * returned it: say both, since only the user knows which. */
            node_fail(g, dup_printf("NULL node at position %zu of a %s (a NULL argument, "
                                    "or a builder call that failed: out of memory or bad "
                                    "arguments)",
                                    i + 1, node_kind_name(kind)));
            continue;
        }
        if (c->parent || c->run || is_ancestor(c, g)) {
            const char *what = c->kind == NODE_STAGE ? node_stage_name(c)
                                                     : node_kind_name(c->kind);
            node_fail(g, dup_printf("node '%s' is used twice (at position %zu of "
                                    "a %s); a node can appear only once, build "
                                    "another one",
                                    what, i + 1, node_kind_name(kind)));
            continue;
        }
        c->parent = g;
        g->children[g->nchildren++] = c;
    }
    return g;
}

mpx_node_t *mpx_serial_v(mpx_node_t *const *nodes, size_t n)
{
    return group_new(NODE_SERIAL, nodes, n);
}

mpx_node_t *mpx_parallel_v(mpx_node_t *const *nodes, size_t n)
{
    return group_new(NODE_PARALLEL, nodes, n);
}

mpx_node_t *mpx_broadcast_v(mpx_node_t *const *nodes, size_t n)
{
    return group_new(NODE_BROADCAST, nodes, n);
}

/* Settings are frozen once the graph a node belongs to has started. */
static bool started(const mpx_node_t *n)
{
    while (n->parent)
        n = n->parent;
    return n->run != NULL;
}

mpx_node_t *mpx_instances(mpx_node_t *node, int n)
{
    const char *why = NULL;
    if (!node)
        return mpx_invalid("mpx_instances: the node is NULL");
    if (node->kind != NODE_STAGE || !node->def || node->count != 1 || node->by)
        why = "the node is not a single stage";
    else if (n < 1 || n > MPX_MAX_INSTANCES)
        why = "n is out of range";
    else if (node->parent || started(node))
        why = "the node is already part of a graph";
    if (!why) {
        node->count = n;
        return node;
    }
    /* Keep the node inside what is returned, so that it is freed with it. */
    mpx_node_t *bad = mpx_invalid("mpx_instances(%d, '%s'): %s", n,
                                  node->kind == NODE_STAGE ? node_stage_name(node)
                                                           : node_kind_name(node->kind),
                                  why);
    if (node->parent || node->run || !bad)
        return bad;
    mpx_node_t *kids[2] = {bad, node};
    return mpx_serial_v(kids, 2);
}

int mpx_node_set_elastic(mpx_node_t *node, int min, int max)
{
    if (!node || node->kind != NODE_STAGE || !node->def || !node->def->process || node->by ||
        node->seq_role || min < 1 || max < min || max > MPX_MAX_INSTANCES)
        return MPX_EINVAL;
    if (started(node))
        return MPX_ESTATE;
    /* It starts with what was declared, within the bounds: the user's
     * guess beats the least, and mpx moves from there. */
    int declared = node->elastic_max > 0 ? node->elastic_start : node->count;
    node->elastic_min = min;
    node->elastic_max = max;
    node->elastic_start = declared < min ? min : declared > max ? max : declared;
    node->count = max;
    return 0;
}

int mpx_graph_set_budget(mpx_graph_t *g, int processes)
{
    if (!g || processes < 0)
        return MPX_EINVAL;
    if (started(g))
        return MPX_ESTATE;
    g->budget = processes;
    return 0;
}

const char *mpx_node_name(const mpx_node_t *node)
{
    if (!node)
        return NULL;
    return node->kind == NODE_STAGE ? node_stage_name(node) : node_kind_name(node->kind);
}

int mpx_node_set_name(mpx_node_t *node, const char *name)
{
    if (!node || !name || !name[0])
        return MPX_EINVAL;
    if (started(node))
        return MPX_ESTATE;
    char *copy = strdup(name);
    if (!copy)
        return MPX_ENOMEM;
    free(node->name);
    node->name = copy;
    return 0;
}

int mpx_node_set_capacity(mpx_node_t *node, size_t items, size_t bytes)
{
    if (!node)
        return MPX_EINVAL;
    if (started(node))
        return MPX_ESTATE;
    if (items)
        node->cap_items = items;
    if (bytes)
        node->cap_bytes = bytes;
    return 0;
}

int mpx_node_setenv(mpx_node_t *node, const char *name, const char *value)
{
    if (!node || !name || !name[0] || strchr(name, '='))
        return MPX_EINVAL;
    if (started(node))
        return MPX_ESTATE;
    for (size_t i = 0; i < node->nenv; i++)
        if (strcmp(node->env[i].name, name) == 0) {
            char *v = value ? strdup(value) : NULL;
            if (value && !v)
                return MPX_ENOMEM;
            free(node->env[i].value);
            node->env[i].value = v;
            return 0;
        }
    node_env_t *env = realloc(node->env, (node->nenv + 1) * sizeof *env);
    if (!env)
        return MPX_ENOMEM;
    node->env = env;
    node_env_t *e = &env[node->nenv];
    e->name = strdup(name);
    e->value = value ? strdup(value) : NULL;
    if (!e->name || (value && !e->value)) {
        free(e->name);
        free(e->value);
        return MPX_ENOMEM;
    }
    node->nenv++;
    return 0;
}

int mpx_node_set_timing(mpx_node_t *node, bool on)
{
    if (!node)
        return MPX_EINVAL;
    if (started(node))
        return MPX_ESTATE;
    node->timing = on;
    return 0;
}

int mpx_node_set_index(mpx_node_t *node, bool on)
{
    if (!node || node->kind != NODE_STAGE || !node->indexable)
        return MPX_EINVAL;
    if (started(node))
        return MPX_ESTATE;
    /* The node's private copy: the source's instances read it after fork. */
    ((source_opts_t *)node->args)->index = on;
    return 0;
}

int mpx_node_on_error(mpx_node_t *node, mpx_on_error_t policy, const char *dead_letter)
{
    if (!node || policy < MPX_ON_ERROR_STOP || policy > MPX_ON_ERROR_RESULT ||
        (policy == MPX_ON_ERROR_DEAD_LETTER && (!dead_letter || !dead_letter[0])))
        return MPX_EINVAL;
    if (started(node))
        return MPX_ESTATE;
    char *copy = NULL;
    if (policy == MPX_ON_ERROR_DEAD_LETTER && !(copy = strdup(dead_letter)))
        return MPX_ENOMEM;
    free(node->dead_letter);
    node->dead_letter = copy;
    node->on_error = policy;
    return 0;
}

int mpx_node_set_retries(mpx_node_t *node, int retries)
{
    if (!node || retries < 0 || retries > MPX_MAX_RETRIES)
        return MPX_EINVAL;
    if (started(node))
        return MPX_ESTATE;
    node->retries = retries;
    return 0;
}

int mpx_node_set_timeout(mpx_node_t *node, int ms)
{
    if (!node || ms < 0)
        return MPX_EINVAL;
    if (started(node))
        return MPX_ESTATE;
    node->timeout_ms = ms;
    return 0;
}

int mpx_node_set_max_item(mpx_node_t *node, size_t bytes)
{
    /* A record carries its size in 32 bits. */
    if (!node || bytes < 64 || bytes > UINT32_MAX)
        return MPX_EINVAL;
    if (started(node))
        return MPX_ESTATE;
    node->max_item = bytes;
    return 0;
}

int mpx_node_set_pool_threshold(mpx_node_t *node, size_t bytes)
{
    if (!node || bytes == 0)
        return MPX_EINVAL;
    if (started(node))
        return MPX_ESTATE;
    node->pool_min = bytes;
    return 0;
}

size_t mpx_default_pool_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t most = MPX_DEFAULT_POOL_MAX;
    if (pages > 0 && page > 0 && (size_t)pages / 4 < most / (size_t)page)
        most = (size_t)pages / 4 * (size_t)page;
    return most & ~((size_t)64 * 1024 - 1);
}

int mpx_graph_set_pool(mpx_graph_t *g, size_t bytes)
{
    if (!g || g->parent || g->is_side)
        return MPX_EINVAL;
    if (started(g))
        return MPX_ESTATE;
    g->pool_bytes = bytes;
    g->pool_set = true;
    return 0;
}

int mpx_graph_xcut(mpx_graph_t *g, const char *name, mpx_graph_t *side)
{
    if (!g || !name || !name[0] || !side || side == g)
        return MPX_EINVAL;
    if (started(g))
        return MPX_ESTATE;
    if (side->parent || side->run || is_ancestor(side, g))
        return MPX_EINVAL;
    for (size_t i = 0; i < g->nxcuts; i++)
        if (strcmp(g->xcuts[i].name, name) == 0)
            return MPX_EINVAL;
    node_xcut_t *x = realloc(g->xcuts, (g->nxcuts + 1) * sizeof *x);
    if (!x)
        return MPX_ENOMEM;
    g->xcuts = x;
    char *copy = strdup(name);
    if (!copy)
        return MPX_ENOMEM;
    x[g->nxcuts++] = (node_xcut_t){copy, side};
    side->parent = g; /* owned now: it can be used nowhere else */
    side->is_side = true;
    return 0;
}

void node_tree_free(mpx_node_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nchildren; i++)
        node_tree_free(n->children[i]);
    for (size_t i = 0; i < n->nenv; i++) {
        free(n->env[i].name);
        free(n->env[i].value);
    }
    free(n->env);
    for (size_t i = 0; i < n->nxcuts; i++) {
        free(n->xcuts[i].name);
        node_tree_free(n->xcuts[i].side);
    }
    free(n->xcuts);
    free(n->children);
    free(n->args);
    free(n->name);
    free(n->dead_letter);
    free(n->error);
    free(n->check_error);
    free(n);
}

/* Depth-first; `path` names the node's place as 1-based positions. */
static char *check_at(const mpx_node_t *n, char *path, size_t len, size_t cap, bool *oom)
{
    if (n->error) {
        char *msg = len ? dup_printf("%s (at %.*s)", n->error, (int)len, path)
                        : dup_printf("%s", n->error);
        if (!msg)
            *oom = true;
        return msg;
    }
    for (size_t i = 0; i < n->nchildren; i++) {
        int w = snprintf(path + len, cap - len, "%s%zu", len ? "/" : "root/", i + 1);
        size_t sub = len + (w > 0 && (size_t)w < cap - len ? (size_t)w : 0);
        char *msg = check_at(n->children[i], path, sub, cap, oom);
        path[len] = '\0';
        if (msg || *oom)
            return msg;
    }
    for (size_t i = 0; i < n->nxcuts; i++) {
        int w = snprintf(path + len, cap - len, "%sxcut '%s'", len ? "/" : "root/",
                         n->xcuts[i].name);
        size_t sub = len + (w > 0 && (size_t)w < cap - len ? (size_t)w : 0);
        char *msg = check_at(n->xcuts[i].side, path, sub, cap, oom);
        path[len] = '\0';
        if (msg || *oom)
            return msg;
    }
    return NULL;
}

char *node_check(const mpx_node_t *root, bool *oom)
{
    char path[512] = "";
    *oom = false;
    return check_at(root, path, 0, sizeof path, oom);
}
