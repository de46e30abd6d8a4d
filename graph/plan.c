/* graph/plan.c — flatten a node tree into instances and dispatch trees.
 *
 * Entry of a node (where an item entering it may go): a stage's instances
 * (ONE of them for mpx_as, ALL for mpx_by), a serial group's first child,
 * ONE of a parallel group's children, ALL of a broadcast group's.  Every
 * exit instance of a serial group's child i sends to the entry of child
 * i+1; the graph's exits send to the sink.
 */
#define _GNU_SOURCE
#include "plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* More processes than this in one graph is surely a mistake, and keeps
 * every count below overflow. */
#define PLAN_MAX_INSTANCES (1 << 20)

static bool hosted(const mpx_node_t *n) { return node_seq_hosted(n); }

static int count_instances(mpx_node_t *n, int next)
{
    n->plan_first = next;
    n->plan_entry = -1;
    if (next > PLAN_MAX_INSTANCES)
        return next;
    if (n->kind == NODE_STAGE)
        return next + (hosted(n) ? 0 : n->count);
    for (size_t i = 0; i < n->nchildren; i++)
        next = count_instances(n->children[i], next);
    return next;
}

/* ---- where Seq's halves run (graph/seqhost.h) ------------------------- */

/* A stage that may run a half in its process: one instance, none of
 * Seq's own, and no retry or error policy on it or around it (as
 * collect_policy finds them). */
static bool may_host(const mpx_node_t *n)
{
    if (n->kind != NODE_STAGE || n->count != 1 || n->by || n->seq_role || n->error || !n->def)
        return false;
    int on_error = 0, retries = -1;
    for (const mpx_node_t *a = n; a; a = a->parent) {
        if (!on_error)
            on_error = a->on_error;
        if (retries < 0)
            retries = a->retries;
    }
    return (!on_error || on_error == MPX_ON_ERROR_STOP) && retries <= 0;
}

static size_t child_index(const mpx_node_t *par, const mpx_node_t *n)
{
    size_t i = 0;
    while (par->children[i] != n)
        i++;
    return i;
}

/* The stage that alone sends everything node n takes (dir -1), or alone
 * takes everything n sends (dir +1): the stage before (after) n in a
 * serial group, possibly one that n begins (ends); or NULL.  *program
 * when n begins (ends) the main graph: the program feeds (reads) it. */
static mpx_node_t *sole_neighbour(const mpx_node_t *n, int dir, bool *program)
{
    *program = false;
    for (const mpx_node_t *par;; n = par) {
        par = n->parent;
        if (n->is_side)
            return NULL;
        if (!par) {
            *program = true;
            return NULL;
        }
        if (par->kind != NODE_SERIAL)
            return NULL;
        size_t i = child_index(par, n);
        if (dir < 0 ? i > 0 : i + 1 < par->nchildren) {
            mpx_node_t *c = par->children[dir < 0 ? i - 1 : i + 1];
            while (c->kind == NODE_SERIAL)
                c = c->children[dir < 0 ? c->nchildren - 1 : 0];
            return may_host(c) ? c : NULL;
        }
    }
}

static void place(mpx_node_t *n)
{
    if (n->kind == NODE_STAGE && n->seq_role) {
        const mpx_node_t *seq = n->parent; /* S(stamp, node, reorder) */
        bool program = false;
        mpx_node_t *h = sole_neighbour(seq, n->seq_role == SEQ_STAMP ? -1 : +1, &program);
        n->seq_host = h ? SEQ_IN_STAGE : program ? SEQ_IN_PROGRAM : SEQ_OWN;
        n->seq_host_node = h;
    }
    for (size_t i = 0; i < n->nchildren; i++)
        place(n->children[i]);
    for (size_t i = 0; i < n->nxcuts; i++)
        place(n->xcuts[i].side);
}

void plan_place(mpx_node_t *root) { place(root); }

/* Side graphs get their instances after the main graph's, in the order of
 * a depth-first walk that enters side graphs after the node's subtree. */
static int count_sides(mpx_node_t *n, int next)
{
    for (size_t i = 0; i < n->nchildren; i++)
        next = count_sides(n->children[i], next);
    for (size_t i = 0; i < n->nxcuts; i++) {
        next = count_instances(n->xcuts[i].side, next);
        next = count_sides(n->xcuts[i].side, next);
    }
    return next;
}

static int dn_add(plan_t *p, plan_dn_kind_t kind, int target, int first, int count)
{
    if (p->ndn == p->dncap) {
        int cap = p->dncap ? 2 * p->dncap : 16;
        plan_dnode_t *dn = realloc(p->dn, (size_t)cap * sizeof *dn);
        if (!dn)
            return -1;
        p->dn = dn;
        p->dncap = cap;
    }
    p->dn[p->ndn] = (plan_dnode_t){kind, target, first, count};
    return p->ndn++;
}

static int kids_reserve(plan_t *p, int more)
{
    if (p->nkids + more <= p->kidscap)
        return 0;
    int cap = p->kidscap ? p->kidscap : 16;
    while (cap < p->nkids + more)
        cap *= 2;
    int *k = realloc(p->kids, (size_t)cap * sizeof *k);
    if (!k)
        return -1;
    p->kids = k;
    p->kidscap = cap;
    return 0;
}

/* A group dispatch node over `subs`; ONE inside ONE (ALL inside ALL) is
 * flattened, and a group of one is that one. */
static int dn_group(plan_t *p, plan_dn_kind_t kind, const int *subs, int n)
{
    if (n == 1)
        return subs[0];
    int total = 0;
    for (int i = 0; i < n; i++)
        total += p->dn[subs[i]].kind == kind ? p->dn[subs[i]].count : 1;
    if (kids_reserve(p, total) < 0)
        return -1;
    int first = p->nkids;
    for (int i = 0; i < n; i++) {
        const plan_dnode_t *d = &p->dn[subs[i]];
        if (d->kind == kind) {
            memmove(&p->kids[p->nkids], &p->kids[d->first], (size_t)d->count * sizeof(int));
            p->nkids += d->count;
        } else {
            p->kids[p->nkids++] = subs[i];
        }
    }
    return dn_add(p, kind, -1, first, total);
}

static int entry_of(plan_t *p, mpx_node_t *n)
{
    if (n->plan_entry >= 0)
        return n->plan_entry;
    int e = -1;
    if (n->kind == NODE_SERIAL) {
        /* A hosted stamp leads: the items go where it would send them. */
        size_t i = 0;
        while (i + 1 < n->nchildren && hosted(n->children[i]))
            i++;
        e = entry_of(p, n->children[i]);
    } else {
        int count = n->kind == NODE_STAGE ? n->count : (int)n->nchildren;
        int *subs = malloc((size_t)count * sizeof *subs);
        if (!subs)
            return -1;
        bool ok = true;
        for (int i = 0; i < count && ok; i++) {
            subs[i] = n->kind == NODE_STAGE ? dn_add(p, DN_LEAF, n->plan_first + i, 0, 0)
                                            : entry_of(p, n->children[i]);
            ok = subs[i] >= 0;
        }
        if (ok) {
            plan_dn_kind_t kind = n->kind == NODE_BROADCAST ? DN_ALL
                                : n->kind == NODE_PARALLEL  ? DN_ONE
                                : n->by                     ? DN_ALL
                                                            : DN_ONE;
            e = dn_group(p, kind, subs, count);
        }
        free(subs);
    }
    n->plan_entry = e;
    return e;
}

static int wire(plan_t *p, mpx_node_t *n, int next)
{
    switch (n->kind) {
    case NODE_STAGE:
        if (hosted(n))
            return 0;
        for (int i = 0; i < n->count; i++)
            p->inst[n->plan_first + i].out = next;
        return 0;
    case NODE_SERIAL:
        /* Each child sends to the next that has processes: a hosted
         * reorder at the end passes on to what follows the group. */
        for (size_t i = 0; i < n->nchildren; i++) {
            size_t k = i + 1;
            while (k < n->nchildren && hosted(n->children[k]))
                k++;
            int e = k < n->nchildren ? entry_of(p, n->children[k]) : next;
            if ((k < n->nchildren && e < 0) || wire(p, n->children[i], e) < 0)
                return -1;
        }
        return 0;
    case NODE_PARALLEL:
    case NODE_BROADCAST:
        for (size_t i = 0; i < n->nchildren; i++)
            if (wire(p, n->children[i], next) < 0)
                return -1;
        return 0;
    }
    return -1;
}

/* A side graph's last stages have nowhere to send: what they put is
 * discarded. */
static int wire_sides(plan_t *p, mpx_node_t *n)
{
    for (size_t i = 0; i < n->nchildren; i++)
        if (wire_sides(p, n->children[i]) < 0)
            return -1;
    for (size_t i = 0; i < n->nxcuts; i++)
        if (wire(p, n->xcuts[i].side, -1) < 0 || wire_sides(p, n->xcuts[i].side) < 0)
            return -1;
    return 0;
}

/* The side graphs a stage sees: those attached to it and to its ancestors,
 * nearest first, but never those outside the side graph it belongs to (a
 * side graph feeding itself, or a sibling, could wait on itself forever). */
static int collect_xouts(plan_t *p, const mpx_node_t *stage, plan_inst_t *in)
{
    for (const mpx_node_t *a = stage; a; a = a->is_side ? NULL : a->parent) {
        for (size_t i = 0; i < a->nxcuts; i++) {
            bool shadowed = false;
            for (int k = 0; k < in->nxouts; k++)
                shadowed |= strcmp(in->xouts[k].name, a->xcuts[i].name) == 0;
            if (shadowed)
                continue;
            int e = entry_of(p, a->xcuts[i].side);
            plan_xout_t *x = realloc(in->xouts, ((size_t)in->nxouts + 1) * sizeof *x);
            if (e < 0 || !x)
                return -1;
            in->xouts = x;
            x[in->nxouts++] = (plan_xout_t){a->xcuts[i].name, e};
        }
    }
    return 0;
}

/* Environment settings from the outermost node in, and the nearest timing
 * setting. */
static int collect_env(const mpx_node_t *stage, plan_inst_t *in)
{
    int n = 0, timing = -1;
    for (const mpx_node_t *a = stage; a; a = a->parent) {
        n += (int)a->nenv;
        if (timing < 0)
            timing = a->timing;
    }
    in->timing = timing == 1;
    in->env = malloc((size_t)(n ? n : 1) * sizeof *in->env);
    if (!in->env)
        return -1;
    in->nenv = n;
    for (const mpx_node_t *a = stage; a; a = a->parent)
        for (size_t i = a->nenv; i-- > 0;)
            in->env[--n] = &a->env[i];
    return 0;
}

static char *msgf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The nearest setting of each failure knob; the dead-letter side graph
 * must be one the stage can put into. */
static int collect_policy(const mpx_node_t *stage, plan_inst_t *in, char **msg)
{
    in->on_error = 0;
    in->retries = in->timeout_ms = -1;
    in->max_item = 0;
    in->pool_min = 0;
    const char *dead = NULL;
    for (const mpx_node_t *a = stage; a; a = a->parent) {
        if (!in->on_error && a->on_error) {
            in->on_error = a->on_error;
            dead = a->dead_letter;
        }
        if (in->retries < 0)
            in->retries = a->retries;
        if (in->timeout_ms < 0)
            in->timeout_ms = a->timeout_ms;
        if (!in->max_item)
            in->max_item = a->max_item;
        if (!in->pool_min)
            in->pool_min = a->pool_min;
    }
    in->pool_min = in->pool_min ? in->pool_min : MPX_DEFAULT_POOL_THRESHOLD;
    in->on_error = in->on_error ? in->on_error : MPX_ON_ERROR_STOP;
    in->retries = in->retries < 0 ? 0 : in->retries;
    in->timeout_ms = in->timeout_ms < 0 ? 0 : in->timeout_ms;
    in->max_item = in->max_item ? in->max_item : MPX_DEFAULT_MAX_ITEM;
    in->dead_port = -1;
    if (in->on_error == MPX_ON_ERROR_DEAD_LETTER) {
        for (int k = 0; k < in->nxouts && in->dead_port < 0; k++)
            if (strcmp(in->xouts[k].name, dead) == 0)
                in->dead_port = k + 1;
        if (in->dead_port < 0) {
            *msg = msgf("stage '%s': its dead-letter side graph '%s' is not attached to it "
                        "or to any node around it (mpx_graph_xcut)",
                        in->name, dead);
            return *msg ? MPX_EGRAPH : MPX_ENOMEM;
        }
    }
    return 0;
}

static void fill_instances(plan_t *p, mpx_node_t *n)
{
    if (n->kind != NODE_STAGE) {
        for (size_t i = 0; i < n->nchildren; i++)
            fill_instances(p, n->children[i]);
        for (size_t i = 0; i < n->nxcuts; i++)
            fill_instances(p, n->xcuts[i].side);
        return;
    }
    for (size_t i = 0; i < n->nxcuts; i++)
        fill_instances(p, n->xcuts[i].side);
    if (hosted(n)) {
        /* Its host runs it: the stage's first (only) instance, or the
         * program's output. */
        const mpx_node_t *h = n->seq_host_node;
        plan_inst_t *in = &p->inst[n->seq_host == SEQ_IN_PROGRAM ? p->ninst : h->plan_first];
        if (n->seq_role == SEQ_STAMP)
            in->stamp = n->args;
        else
            in->reorder = n->args;
        return;
    }
    for (int i = 0; i < n->count; i++) {
        plan_inst_t *in = &p->inst[n->plan_first + i];
        in->node = n;
        in->def = n->def;
        in->args = n->args;
        in->i64map = n->i64map;
        in->name = node_stage_name(n);
        in->index = i;
        in->count = n->count;
    }
}

/* Add every leaf of dispatch tree d not yet stamped `mark` to list. */
static void collect_leaves(const plan_t *p, int d, int *stamp, int mark, int *list, int *n)
{
    const plan_dnode_t *dn = &p->dn[d];
    if (dn->kind == DN_LEAF) {
        if (stamp[dn->target] != mark) {
            stamp[dn->target] = mark;
            list[(*n)++] = dn->target;
        }
        return;
    }
    for (int i = 0; i < dn->count; i++)
        collect_leaves(p, p->kids[dn->first + i], stamp, mark, list, n);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static size_t inherited(const mpx_node_t *n, bool bytes)
{
    for (; n; n = n->parent) {
        size_t v = bytes ? n->cap_bytes : n->cap_items;
        if (v)
            return v;
    }
    return bytes ? MPX_DEFAULT_CAPACITY_BYTES : MPX_DEFAULT_CAPACITY;
}

/* Consumers and producers of every instance.  Each producer's trees are
 * walked once, with a stamp per consumer instead of a table cleared per
 * producer, so the work is that of the pairs, not instances squared. */
static int link_routes(plan_t *p, const mpx_node_t *root)
{
    int total = p->ninst + 1;
    int *stamp = malloc((size_t)total * sizeof *stamp);
    int *list = malloc((size_t)total * sizeof *list);
    int *nprod = calloc((size_t)total, sizeof *nprod);
    if (!stamp || !list || !nprod)
        goto oom;
    for (int c = 0; c < total; c++)
        stamp[c] = -1;
    for (int i = 0; i <= p->ninst; i++) {
        plan_inst_t *in = &p->inst[i];
        int n = 0;
        if (in->out >= 0)
            collect_leaves(p, in->out, stamp, i, list, &n);
        for (int k = 0; k < in->nxouts; k++)
            collect_leaves(p, in->xouts[k].root, stamp, i, list, &n);
        qsort(list, (size_t)n, sizeof *list, cmp_int);
        in->nconsumers = n;
        in->consumers = malloc((size_t)(n ? n : 1) * sizeof(int));
        if (!in->consumers)
            goto oom;
        for (int k = 0; k < n; k++) {
            in->consumers[k] = list[k];
            nprod[list[k]]++;
        }
    }
    for (int c = 0; c < total; c++) {
        plan_inst_t *in = &p->inst[c];
        in->producers = malloc((size_t)(nprod[c] ? nprod[c] : 1) * sizeof(int));
        if (!in->producers)
            goto oom;
        in->cap_items = inherited(c < p->ninst ? in->node : root, false);
        if (c == p->ninst && !root->cap_items)
            in->cap_items = PLAN_SINK_CAPACITY;
        in->cap_bytes = inherited(c < p->ninst ? in->node : root, true);
    }
    for (int i = 0; i <= p->ninst; i++)
        for (int k = 0; k < p->inst[i].nconsumers; k++) {
            plan_inst_t *c = &p->inst[p->inst[i].consumers[k]];
            c->producers[c->nproducers++] = i;
        }
    free(stamp);
    free(list);
    free(nprod);
    return 0;
oom:
    free(stamp);
    free(list);
    free(nprod);
    return -1;
}

/* The part of dispatch tree d that reaches stages with a process
 * callback: where the program's input goes (plan.h).  A source in the
 * same group (a stage with setup only) is left out.  -1 when nothing is
 * left. */
static int fed_tree(plan_t *p, int d)
{
    plan_dnode_t dn = p->dn[d];
    if (dn.kind == DN_LEAF)
        return p->inst[dn.target].def->process ? d : -1;
    int *subs = malloc((size_t)dn.count * sizeof *subs);
    if (!subs)
        return -2;
    int n = 0, rc = 0;
    for (int i = 0; i < dn.count && rc >= -1; i++) {
        rc = fed_tree(p, p->kids[dn.first + i]);
        if (rc >= 0)
            subs[n++] = rc;
    }
    int out = rc < -1 ? -2 : n == 0 ? -1 : n == dn.count ? d : dn_group(p, dn.kind, subs, n);
    free(subs);
    return out < -1 ? -2 : out;
}

static char *msgf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *msgf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

int plan_build(mpx_node_t *root, plan_t **out, char **msg)
{
    *out = NULL;
    *msg = NULL;
    plan_t *p = calloc(1, sizeof *p);
    if (!p)
        return MPX_ENOMEM;
    plan_place(root);
    p->ninst = count_sides(root, count_instances(root, 0));
    if (p->ninst > PLAN_MAX_INSTANCES) {
        *msg = msgf("the graph has more than %d stage processes", PLAN_MAX_INSTANCES);
        plan_free(&p);
        return *msg ? MPX_EGRAPH : MPX_ENOMEM;
    }
    p->inst = calloc((size_t)p->ninst + 1, sizeof *p->inst);
    if (!p->inst)
        goto oom;
    fill_instances(p, root);
    plan_inst_t *sink = &p->inst[p->ninst];
    sink->name = "output";
    sink->count = 1;
    sink->out = -1;
    int sink_leaf = dn_add(p, DN_LEAF, p->ninst, 0, 0);
    int entry = entry_of(p, root);
    if (sink_leaf < 0 || entry < 0 || wire(p, root, sink_leaf) < 0 || wire_sides(p, root) < 0)
        goto oom;
    sink->out = fed_tree(p, entry);
    if (sink->out < -1)
        goto oom;
    /* The program's input follows the root's settings. */
    sink->max_item = root->max_item ? root->max_item : MPX_DEFAULT_MAX_ITEM;
    sink->pool_min = root->pool_min ? root->pool_min : MPX_DEFAULT_POOL_THRESHOLD;
    for (int i = 0; i < p->ninst; i++)
        if (collect_xouts(p, p->inst[i].node, &p->inst[i]) < 0 ||
            collect_env(p->inst[i].node, &p->inst[i]) < 0)
            goto oom;
    if (link_routes(p, root) < 0)
        goto oom;
    for (int i = 0; i < p->ninst; i++) {
        plan_inst_t *in = &p->inst[i];
        int rc = collect_policy(in->node, in, msg);
        if (rc != 0) {
            plan_free(&p);
            return rc;
        }
        in->recoverable = in->nproducers > 0 &&
                          (in->retries > 0 || in->on_error != MPX_ON_ERROR_STOP);
        in->elastic = in->node->elastic_max > 0;
    }
    /* Only a stage with neither callback can be left with nothing to do
     * (the check refuses it first): one at the start with a process is
     * fed by the program. */
    for (int i = 0; i < p->ninst; i++) {
        const plan_inst_t *in = &p->inst[i];
        if (in->nproducers == 0 && !in->def->setup) {
            *msg = msgf("stage '%s' is at the start of the graph but has no setup "
                        "and no process",
                        in->name);
            plan_free(&p);
            return *msg ? MPX_EGRAPH : MPX_ENOMEM;
        }
    }
    *out = p;
    return 0;
oom:
    plan_free(&p);
    return MPX_ENOMEM;
}

void plan_free(plan_t **plan)
{
    plan_t *p = plan ? *plan : NULL;
    if (!p)
        return;
    if (p->inst)
        for (int i = 0; i <= p->ninst; i++) {
            free(p->inst[i].consumers);
            free(p->inst[i].producers);
            free(p->inst[i].xouts);
            free(p->inst[i].env);
        }
    free(p->inst);
    free(p->dn);
    free(p->kids);
    free(p);
    *plan = NULL;
}

size_t plan_window_items(const plan_t *plan, int c)
{
    const plan_inst_t *in = &plan->inst[c];
    size_t n = in->nproducers > 0 ? (size_t)in->nproducers : 1;
    size_t w = in->cap_items / n;
    return w ? w : 1;
}

size_t plan_window_bytes(const plan_t *plan, int c)
{
    const plan_inst_t *in = &plan->inst[c];
    size_t n = in->nproducers > 0 ? (size_t)in->nproducers : 1;
    size_t w = in->cap_bytes / n;
    return w ? w : 1;
}

bool plan_confirms(const plan_t *plan, int p, int c)
{
    const plan_inst_t *pi = &plan->inst[p];
    /* A recoverable stage always has input: sources are never replaced.
     * (A pair also confirms from its first message that refers to pool
     * blocks on: lib/edge_in.c.) */
    return (c < plan->ninst && plan->inst[c].recoverable) || pi->recoverable;
}

const char *plan_inst_label(const plan_inst_t *pi, char *buf, size_t cap)
{
    if (pi->count > 1)
        snprintf(buf, cap, "stage '%s' instance %d of %d", pi->name, pi->index, pi->count);
    else
        snprintf(buf, cap, "stage '%s'", pi->name);
    return buf;
}
