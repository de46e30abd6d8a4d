/* graph/node.h — the node tree a user builds with mpx_stage / MPX_S / ...
 *
 * Owns the shape of a declaration and the mistakes recorded while building
 * it.  Knows nothing of processes or sockets: the runtime hangs its state
 * off the root through `run` and frees it through node_tree_free's hook.
 */
#ifndef MPX_GRAPH_NODE_H
#define MPX_GRAPH_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "mpx/graph.h"
#include "i64map.h"

typedef enum node_kind {
    NODE_STAGE,
    NODE_SERIAL,
    NODE_PARALLEL,
    NODE_BROADCAST,
} node_kind_t;

struct mpx_run; /* runtime state of a started root, owned by lib/ */

typedef struct node_env {
    char *name;
    char *value; /* NULL: unset */
} node_env_t;

typedef struct node_xcut {
    char *name;
    mpx_node_t *side; /* owned */
} node_xcut_t;

/* What the monitor is asked to do, kept on the root (lib/stats.c). */
typedef struct node_monitor {
    int interval_ms; /* 0: MPX_STATS_INTERVAL_MS */
    int watch_ms;    /* table on stderr every watch_ms; 0: off */
    FILE *json;      /* JSON lines, or NULL */
    int progress;    /* 0: when stderr is a terminal; 1: on; -1: off */
    uint64_t progress_total; /* results the program expects (fed graphs) */
} node_monitor_t;

struct mpx_node {
    node_kind_t kind;
    mpx_node_t *parent;
    char *name;     /* overrides def->name; NULL when not set */
    char *error;    /* first mistake recorded by a builder call, or NULL */
    size_t cap_items, cap_bytes; /* 0 = inherit */
    int timing;                  /* -1 inherit, 0 off, 1 on */
    int on_error;                /* 0 inherit, else mpx_on_error_t */
    char *dead_letter;           /* side graph for MPX_ON_ERROR_DEAD_LETTER */
    int retries, timeout_ms;     /* -1 inherit */
    size_t max_item;             /* 0 inherit */
    size_t pool_min;             /* 0 inherit; SIZE_MAX never */
    size_t pool_bytes;           /* the root's pool (mpx_graph_set_pool) */
    bool pool_set;               /* ... when set: else the default */
    node_env_t *env;
    size_t nenv;
    node_xcut_t *xcuts; /* side graphs the stages inside may put into */
    size_t nxcuts;
    bool is_side;       /* the root of a side graph: parent holds it in xcuts */

    /* NODE_STAGE */
    const mpx_stage_def_t *def;
    void *args;     /* private copy of args_size bytes */
    int count;      /* instances (an elastic group's: its most) */
    bool by;        /* instances in broadcast (mpx_by) rather than parallel */
    /* An elastic group (mpx_node_set_elastic): 0 when not; else its
     * least and most instances, and how many it starts with. */
    int elastic_min, elastic_max, elastic_start;
    bool indexable; /* made by source_stage: args begin with source_opts_t */
    i64map_fn i64map; /* made by i64map_stage: applied in bulk (graph/i64map.h) */
    int seq_role;   /* enum seq_role (graph/seqhost.h): one of Seq's halves */
    /* Set by graph/plan.c's plan_place for a half: where it runs (enum
     * seq_host), and the stage whose process it runs in. */
    int seq_host;
    struct mpx_node *seq_host_node;

    /* groups */
    mpx_node_t **children;
    size_t nchildren;

    node_monitor_t mon; /* root only */
    struct mpx_run *run;
    /* The program's input (root only): the meta its puts carry (a
     * meta_cur_t of lib/meta.h, NULL while empty), and whether a put may
     * wait (mpx_graph_set_nonblocking). */
    struct meta_cur *input_meta;
    bool nonblocking;
    int budget;        /* mpx_graph_set_budget: stage processes at once; 0: default */
    /* For tests only (lib/testhook.c): decide the elastic groups' changes
     * instead of the controller.  Called at each tick with how many
     * instances each group runs (groups in plan order); returns 1 with
     * *group and *delta (+1, -1) for a change, 0 for none. */
    int (*grow_script)(void *ctx, int ngroups, const int *running, int *group, int *delta);
    void *grow_script_ctx;
    int grow_pending_ms; /* for tests: GROW_PENDING_MS instead (lib/grow.c); 0: that */
    char *check_error; /* message of the last failed check, root only */

    /* scratch for graph/plan.c while it flattens the tree */
    int plan_first; /* id of the node's first instance */
    int plan_entry; /* dispatch node items entering this node take */
};

/* A Seq half that runs in another process (graph/seqhost.h: seq_host is
 * not SEQ_OWN, 0, once graph/plan.c's plan_place has placed it): it has
 * no instance of its own. */
static inline bool node_seq_hosted(const mpx_node_t *n)
{
    return n->kind == NODE_STAGE && n->seq_role && n->seq_host != 0;
}

/* Display name of a stage node. */
const char *node_stage_name(const mpx_node_t *n);
/* Human name of a node kind ("serial group", ...). */
const char *node_kind_name(node_kind_t kind);

/* Free the tree below and including n (not its run: see lib/). */
void node_tree_free(mpx_node_t *n);

/* Walk the tree for the first mistake; on one, returns a malloc'd message
 * (or NULL with *oom set when even that failed), else NULL. */
char *node_check(const mpx_node_t *root, bool *oom);

#endif
