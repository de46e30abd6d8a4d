/* graph/layout.c — pictures of a node tree: an indented text tree and
 * Graphviz DOT (mpx_graph_print_layout, mpx_graph_write_dot).
 *
 * Reads the tree only, so it works before and after start and never runs
 * anything; a tree with a recorded builder mistake is refused before a
 * byte is written, rather than drawn in part.  The text tree uses the
 * box-drawing connectors ├── └── │ (UTF-8, as the × of "×N" already is):
 * it is meant for a terminal or a README, both of which show UTF-8.  DOT
 * draws stage nodes, not instances: mpx_as(8, ...) is one box marked ×8,
 * which keeps the picture readable whatever the widths.
 */
#include "mpx/monitor.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpx/error.h"
#include "node.h"
#include "plan.h"

/* Both pictures start here: the arguments and the tree's mistakes. */
static int check_tree(const mpx_graph_t *g, FILE *f)
{
    if (!g || !f)
        return MPX_EINVAL;
    bool oom;
    char *msg = node_check(g, &oom);
    if (oom)
        return MPX_ENOMEM;
    if (msg) {
        free(msg);
        return MPX_EGRAPH;
    }
    /* Where Seq's halves run is part of the picture; placing them only
     * caches what the tree's shape implies. */
    plan_place((mpx_node_t *)g);
    return 0;
}

/* "in 'name'" or "in the program" for a Seq half that runs in another
 * process (graph/seqhost.h), else NULL. */
static const char *host_of(const mpx_node_t *n, char *buf, size_t cap)
{
    if (!node_seq_hosted(n))
        return NULL;
    if (n->seq_host == SEQ_IN_PROGRAM)
        return "in the program";
    snprintf(buf, cap, "in '%s'", node_stage_name(n->seq_host_node));
    return buf;
}

/* Write errors are looked at once, at the end: the flush makes those of a
 * buffered stream show up in ferror too. */
static int finish(FILE *f)
{
    return fflush(f) == 0 && !ferror(f) ? 0 : MPX_ESYS;
}

static const char *group_word(node_kind_t kind)
{
    return kind == NODE_PARALLEL ? "parallel" : kind == NODE_BROADCAST ? "broadcast" : "serial";
}

/* ---- text ------------------------------------------------------------- */

/* The place of a line in the tree: one link per level below the root,
 * kept in the stack frames of the walk; `last` tells whether the entry at
 * that level is the last one of its parent (└── and no │ below it). */
typedef struct indent {
    const struct indent *up;
    bool last;
} indent_t;

static void put_pipes(FILE *f, const indent_t *in)
{
    if (!in)
        return;
    put_pipes(f, in->up);
    fputs(in->last ? "    " : "│   ", f);
}

static void put_branch(FILE *f, const indent_t *in)
{
    if (!in)
        return; /* the root has no connector */
    put_pipes(f, in->up);
    fputs(in->last ? "└── " : "├── ", f);
}

static void print_capacity(FILE *f, const mpx_node_t *n)
{
    if (n->cap_items && n->cap_bytes)
        fprintf(f, " [capacity: %zu items, %zu bytes]", n->cap_items, n->cap_bytes);
    else if (n->cap_items)
        fprintf(f, " [capacity: %zu items]", n->cap_items);
    else if (n->cap_bytes)
        fprintf(f, " [capacity: %zu bytes]", n->cap_bytes);
}

static void print_node(FILE *f, const mpx_node_t *n, const indent_t *in);

/* Below a node: its children, then its side graphs, each under an
 * `xcut "name":` line of its own. */
static void print_entries(FILE *f, const mpx_node_t *n, const indent_t *in)
{
    size_t total = n->nchildren + n->nxcuts;
    for (size_t i = 0; i < total; i++) {
        indent_t sub = {in, i + 1 == total};
        if (i < n->nchildren) {
            print_node(f, n->children[i], &sub);
            continue;
        }
        const node_xcut_t *x = &n->xcuts[i - n->nchildren];
        put_branch(f, &sub);
        fprintf(f, "xcut \"%s\":\n", x->name);
        indent_t side = {&sub, true};
        print_node(f, x->side, &side);
    }
}

static void print_node(FILE *f, const mpx_node_t *n, const indent_t *in)
{
    put_branch(f, in);
    if (n->kind == NODE_STAGE) {
        fputs(node_stage_name(n), f);
        char buf[160];
        const char *host = host_of(n, buf, sizeof buf);
        if (host)
            fprintf(f, " (%s)", host);
        else if (n->elastic_max > 0)
            fprintf(f, " ×%d..%d (parallel, elastic, starts with %d)", n->elastic_min,
                    n->elastic_max, n->elastic_start);
        else if (n->count > 1)
            fprintf(f, " ×%d (%s)", n->count, n->by ? "broadcast" : "parallel");
    } else {
        fputs(group_word(n->kind), f);
        if (n->name)
            fprintf(f, " \"%s\"", n->name);
    }
    print_capacity(f, n);
    fputc('\n', f);
    print_entries(f, n, in);
}

int mpx_graph_print_layout(const mpx_graph_t *g, FILE *f)
{
    int rc = check_tree(g, f);
    if (rc != 0)
        return rc;
    print_node(f, g, NULL);
    return finish(f);
}

/* ---- DOT -------------------------------------------------------------- */

/* Stage nodes are called n0, n1, ... in the order of the text tree; the
 * arrows need the id of any stage, hence a table sorted by address. */
typedef struct stage_id {
    const mpx_node_t *node;
    size_t id;
} stage_id_t;

typedef struct dot {
    FILE *f;
    stage_id_t *ids;
    size_t nids;
    int clusters; /* clusters written so far: names them */
} dot_t;

static size_t count_stages(const mpx_node_t *n)
{
    size_t c = n->kind == NODE_STAGE;
    for (size_t i = 0; i < n->nchildren; i++)
        c += count_stages(n->children[i]);
    for (size_t i = 0; i < n->nxcuts; i++)
        c += count_stages(n->xcuts[i].side);
    return c;
}

static void number_stages(dot_t *d, const mpx_node_t *n)
{
    if (n->kind == NODE_STAGE) {
        d->ids[d->nids] = (stage_id_t){n, d->nids};
        d->nids++;
    }
    for (size_t i = 0; i < n->nchildren; i++)
        number_stages(d, n->children[i]);
    for (size_t i = 0; i < n->nxcuts; i++)
        number_stages(d, n->xcuts[i].side);
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const stage_id_t *)a)->node;
    uintptr_t y = (uintptr_t)((const stage_id_t *)b)->node;
    return (x > y) - (x < y);
}

static size_t stage_id(const dot_t *d, const mpx_node_t *n)
{
    stage_id_t key = {n, 0};
    const stage_id_t *hit = bsearch(&key, d->ids, d->nids, sizeof key, by_address);
    return hit->id; /* every stage of the tree was numbered */
}

/* Inside a DOT string: quotes and backslashes escaped, a line break as
 * DOT's \n, other control bytes (which DOT would take literally or
 * refuse) as spaces. */
static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fputc('\\', f);
        if (c == '\n')
            fputs("\\n", f);
        else
            fputc(c < 0x20 || c == 0x7f ? ' ' : c, f);
    }
}

static void write_nodes(dot_t *d, const mpx_node_t *n, int depth)
{
    FILE *f = d->f;
    if (n->kind == NODE_STAGE) {
        fprintf(f, "%*sn%zu [label=\"", 2 * depth, "", stage_id(d, n));
        put_escaped(f, node_stage_name(n));
        char buf[160];
        const char *host = host_of(n, buf, sizeof buf);
        if (host) {
            fputs("\\n(", f);
            put_escaped(f, host);
            fputc(')', f);
        } else if (n->elastic_max > 0) {
            fprintf(f, "\\n×%d..%d (elastic)", n->elastic_min, n->elastic_max);
        } else if (n->count > 1) {
            fprintf(f, "\\n×%d (%s)", n->count, n->by ? "broadcast" : "parallel");
        }
        fputs("\"];\n", f);
        return;
    }
    /* A group of one draws as that one; a serial group is told by its
     * arrows alone. */
    bool cluster = n->kind != NODE_SERIAL && n->nchildren > 1;
    if (cluster) {
        fprintf(f, "%*ssubgraph cluster_%d {\n", 2 * depth, "", d->clusters++);
        fprintf(f, "%*slabel=\"%s", 2 * depth + 2, "", group_word(n->kind));
        if (n->name) {
            fputs(" \\\"", f);
            put_escaped(f, n->name);
            fputs("\\\"", f);
        }
        fputs("\"; style=dashed;\n", f);
    }
    for (size_t i = 0; i < n->nchildren; i++)
        write_nodes(d, n->children[i], depth + cluster);
    if (cluster)
        fprintf(f, "%*s}\n", 2 * depth, "");
}

/* Side graphs as clusters of their own: those of the main graph at the
 * top level, those attached inside a side graph within its cluster. */
static void write_sides(dot_t *d, const mpx_node_t *n, int depth)
{
    FILE *f = d->f;
    for (size_t i = 0; i < n->nchildren; i++)
        write_sides(d, n->children[i], depth);
    for (size_t i = 0; i < n->nxcuts; i++) {
        const node_xcut_t *x = &n->xcuts[i];
        fprintf(f, "%*ssubgraph cluster_%d {\n", 2 * depth, "", d->clusters++);
        fprintf(f, "%*slabel=\"xcut \\\"", 2 * depth + 2, "");
        put_escaped(f, x->name);
        fputs("\\\"\"; style=dotted;\n", f);
        write_nodes(d, x->side, depth + 1);
        write_sides(d, x->side, depth + 1);
        fprintf(f, "%*s}\n", 2 * depth, "");
    }
}

/* Arrows from a set of stages to the entries of a node (or to the
 * output), built by walking both ends with callbacks so that no list of
 * stages is ever allocated. */
typedef struct link {
    dot_t *d;
    const mpx_node_t *to; /* whose entries the arrows reach; NULL: the output */
    size_t from;          /* id of the stage the current arrows leave */
    bool dashed;
} link_t;

typedef void end_fn(link_t *l, const mpx_node_t *stage);

/* The stages where an item entering n may go first (exits false), or
 * those whose items leave n (exits true): a serial group's first or last
 * child's, every child's of a parallel or broadcast group. */
static void each_end(const mpx_node_t *n, bool exits, end_fn *fn, link_t *l)
{
    if (n->kind == NODE_STAGE) {
        fn(l, n);
    } else if (n->kind == NODE_SERIAL) {
        each_end(n->children[exits ? n->nchildren - 1 : 0], exits, fn, l);
    } else {
        for (size_t i = 0; i < n->nchildren; i++)
            each_end(n->children[i], exits, fn, l);
    }
}

static void arrow_to(link_t *l, const mpx_node_t *entry)
{
    fprintf(l->d->f, "  n%zu -> n%zu%s;\n", l->from, stage_id(l->d, entry),
            l->dashed ? " [style=dashed]" : "");
}

static void arrows_from(link_t *l, const mpx_node_t *stage)
{
    l->from = stage_id(l->d, stage);
    if (l->to)
        each_end(l->to, false, arrow_to, l);
    else
        fprintf(l->d->f, "  n%zu -> output;\n", l->from);
}

static bool has_xcut(const mpx_node_t *n, const char *name)
{
    for (size_t i = 0; i < n->nxcuts; i++)
        if (strcmp(n->xcuts[i].name, name) == 0)
            return true;
    return false;
}

/* Every stage inside n that puts into the side graph `name` attached to
 * n: not those below a nearer side graph of the same name, which hides
 * it, and not those of n's own side graphs, which see only what is
 * attached inside them (as graph/plan.c's collect_xouts decides). */
static void each_reporter(const mpx_node_t *n, const char *name, bool top, link_t *l)
{
    if (!top && has_xcut(n, name))
        return;
    if (n->kind == NODE_STAGE)
        arrows_from(l, n);
    for (size_t i = 0; i < n->nchildren; i++)
        each_reporter(n->children[i], name, false, l);
}

static void write_edges(dot_t *d, const mpx_node_t *n)
{
    if (n->kind == NODE_SERIAL)
        for (size_t i = 0; i + 1 < n->nchildren; i++) {
            link_t l = {d, n->children[i + 1], 0, false};
            each_end(n->children[i], true, arrows_from, &l);
        }
    for (size_t i = 0; i < n->nchildren; i++)
        write_edges(d, n->children[i]);
    for (size_t i = 0; i < n->nxcuts; i++) {
        link_t l = {d, n->xcuts[i].side, 0, true};
        each_reporter(n, n->xcuts[i].name, true, &l);
        write_edges(d, n->xcuts[i].side);
    }
}

int mpx_graph_write_dot(const mpx_graph_t *g, FILE *f)
{
    int rc = check_tree(g, f);
    if (rc != 0)
        return rc;
    dot_t d = {.f = f, .ids = malloc(count_stages(g) * sizeof *d.ids)};
    if (!d.ids)
        return MPX_ENOMEM;
    number_stages(&d, g);
    qsort(d.ids, d.nids, sizeof *d.ids, by_address);

    fputs("digraph mpx {\n  rankdir=LR;\n  node [shape=box];\n", f);
    write_nodes(&d, g, 1);
    write_sides(&d, g, 1);
    fputs("  output [shape=ellipse, label=\"output\"];\n", f);
    /* Arrows after every node: an arrow written inside a cluster's braces
     * would pull both its ends into that cluster. */
    write_edges(&d, g);
    link_t out = {&d, NULL, 0, false};
    each_end(g, true, arrows_from, &out);
    fputs("}\n", f);
    free(d.ids);
    return finish(f);
}
