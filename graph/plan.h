/* graph/plan.h — a checked node tree flattened into process instances and
 * the routes between them.
 *
 * Instances are numbered 0..ninst-1 in declaration order; number ninst is
 * the parent's output collector (the "sink"), which consumes like a stage
 * but runs no code of the user's.  The parent is also the producer of the
 * graph's input (mpx_graph_put) under that same number: the sink's `out`
 * is the part of the graph's entry that reaches stages with a process
 * callback (a stage at the start with one is fed by the program; a source,
 * with setup only, is not), -1 when there is none.  Each producer has one dispatch tree: a
 * leaf is a consumer instance, ONE sends an item to one of its children
 * (parallel), ALL sends it to every child (broadcast).  No sockets here.
 */
#ifndef MPX_GRAPH_PLAN_H
#define MPX_GRAPH_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "node.h"
#include "seqhost.h"

typedef enum plan_dn_kind { DN_LEAF, DN_ONE, DN_ALL } plan_dn_kind_t;

typedef struct plan_dnode {
    plan_dn_kind_t kind;
    int target;      /* DN_LEAF: consumer instance (ninst = sink) */
    int first, count; /* DN_ONE/DN_ALL: children at plan->kids[first..] */
} plan_dnode_t;

typedef struct plan_xout {
    const char *name;
    int root; /* dispatch tree into the side graph */
} plan_xout_t;

/* The program's input (the graph's output) in items, when the graph
 * sets no capacity: four times a stage's, because every message to the
 * program wakes its thread and its zmq thread, which take their CPU from
 * the stages, and the window is shared by every producer of the graph's
 * output (a worker of 16 would otherwise send 64 results a message). */
#define PLAN_SINK_CAPACITY (4 * (size_t)MPX_DEFAULT_CAPACITY)

typedef struct plan_inst {
    const mpx_node_t *node;     /* NULL for the sink */
    const mpx_stage_def_t *def; /* NULL for the sink */
    const void *args;
    const char *name;
    int index, count;           /* place among the node's instances */
    int out;                    /* dispatch tree root; -1: output discarded */
    plan_xout_t *xouts;         /* side graphs it may put into, nearest first */
    int nxouts;
    const node_env_t **env;     /* outermost first */
    int nenv;
    bool timing;
    i64map_fn i64map; /* the node's (graph/i64map.h), or NULL */
    /* When processing fails (see mpx_node_on_error). */
    int on_error;               /* mpx_on_error_t */
    int dead_port;              /* output port of the dead-letter side graph, or -1 */
    int retries, timeout_ms;
    size_t max_item;
    size_t pool_min; /* parts this large or larger travel in the pool */
    /* Restarted when its process dies: producers keep what they sent it
     * until it confirms, and it confirms an item only once what it made
     * of the item is confirmed downstream. */
    bool recoverable;
    /* One of an elastic group's slots (mpx_node_set_elastic): the
     * supervisor starts and retires its process while the graph runs. */
    bool elastic;
    int *consumers, nconsumers; /* distinct leaves of out and xouts, ascending */
    int *producers, nproducers; /* instances whose tree reaches this one */
    size_t cap_items, cap_bytes; /* capacity of this instance's input */
    /* Halves of a Seq this process runs (graph/seqhost.h), or NULL: the
     * stamp numbers what it puts on port 0, the reorder its input before
     * the process callback sees it (the sink's: the program's output). */
    const seq_args_t *stamp, *reorder;
} plan_inst_t;

typedef struct plan {
    int ninst;          /* stage instances; inst[ninst] is the sink */
    plan_inst_t *inst;
    plan_dnode_t *dn;
    int ndn, dncap;
    int *kids;
    int nkids, kidscap;
    struct pool *pool; /* the graph's shared-memory pool, or NULL (lib/pool.h);
                        * made by the supervisor before fork */
} plan_t;

/* Decide where each Seq half in the tree runs (node->seq_host), as
 * graph/seqhost.h says; plan_build does it first. */
void plan_place(mpx_node_t *root);

/* Build the plan of a tree that node_check() accepted.  Returns 0, or
 * MPX_EGRAPH with *msg (malloc'd) for a graph that cannot run, or
 * MPX_ENOMEM. */
int plan_build(mpx_node_t *root, plan_t **out, char **msg);
void plan_free(plan_t **plan);

/* "stage 'x'", or "stage 'x' instance 2 of 4": how messages name it. */
const char *plan_inst_label(const plan_inst_t *pi, char *buf, size_t cap);

/* The sink's id. */
static inline int plan_sink(const plan_t *p) { return p->ninst; }
/* Whether the program feeds the graph (the sink's id is then a producer
 * too). */
static inline bool plan_fed(const plan_t *p) { return p->inst[p->ninst].out >= 0; }

/* Window of producer `p` towards consumer `c`: the consumer's capacity
 * shared among its producers, never below one item. */
size_t plan_window_items(const plan_t *plan, int c);
size_t plan_window_bytes(const plan_t *plan, int c);

/* Whether consumer c tells producer p which records it is done with for
 * good (lib/edge.h, Recovery): p keeps what it sends c until then, because
 * c is recoverable (p sends again what c held when it dies) or because p
 * is a recoverable stage with input (it confirms its own input only once
 * what it made of it is confirmed).  Both ends ask, and get the same
 * answer. */
bool plan_confirms(const plan_t *plan, int p, int c);

#endif
