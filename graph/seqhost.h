/* graph/seqhost.h — Seq's two halves, and the processes they run in.
 *
 * mpx_seq(node) is S(stamp, node, reorder) (builtins/seq.c).  The stamp
 * numbers what enters the node (meta key "mpx.seq.<tag>.n") and puts a
 * mark, carrying its tag and the count so far, after every SEQ_EPOCH
 * inputs or SEQ_EPOCH_BYTES of them, at every pause, and before another
 * origin's mark; the reorder keeps what the node puts and, at each of its
 * marks, puts what the inputs the mark covers made, in input order.
 *
 * Neither needs a process of its own.  When a single plain stage alone
 * feeds the Seq, that stage numbers its own output on the edge (the
 * stamp is *hosted* by it: lib/stage.c, lib/child.c), and when the Seq
 * begins the graph, the program numbers its own puts (lib/feed.c); when a
 * single plain stage alone takes the Seq's output, the reorder runs in
 * that stage's process before its process callback (lib/child.c), and
 * when the Seq ends the graph, in the program, as it reads the output
 * (lib/supervisor.c).  A host must not be recoverable (a retry or error
 * policy): a replacement would number from 0 again, or lose what its
 * reorder held and had confirmed.  Otherwise the half runs as the stage
 * it is.  graph/plan.c decides (plan_place) and wires a hosted half out of
 * the graph.
 *
 * builtins/seq.c includes it, and lib/reorder.h (the engine it shares
 * with lib/child.c and lib/supervisor.c), besides mpx.h.
 */
#ifndef MPX_GRAPH_SEQHOST_H
#define MPX_GRAPH_SEQHOST_H

#include <stdbool.h>
#include <stdint.h>

#include "mpx.h"

/* Inputs between two marks: a mark costs a message per edge, an epoch is
 * what the reorder holds at least.  128 keeps both small. */
#define SEQ_EPOCH 128
/* ... and bytes of input: large items (video frames in the pool) would
 * otherwise be held by the hundred, filling the pool that the stages
 * inside need for their own outputs. */
#define SEQ_EPOCH_BYTES ((size_t)16 << 20)
/* Marks carry 'Q' and a counter in the high 32 bits (which Seq they
 * belong to) and the inputs stamped so far, modulo 2^32, in the low 32. */
#define SEQ_KIND 0x51u

typedef struct seq_args {
    uint32_t tag;
    /* Per Seq, so that a Seq nested in another keeps the outer numbers. */
    char key[40];
} seq_args_t;

enum seq_role { SEQ_NONE, SEQ_STAMP, SEQ_REORDER };
/* Where a half runs (node->seq_host). */
enum seq_host { SEQ_OWN, SEQ_IN_STAGE, SEQ_IN_PROGRAM };

static inline uint64_t seq_mark_value(uint32_t tag, int64_t count)
{
    return (uint64_t)tag << 32 | (uint32_t)count;
}

/* mpx_stage(def, a) in the given role.  Defined in graph/node.c. */
mpx_node_t *seq_stage(const mpx_stage_def_t *def, const seq_args_t *a, enum seq_role role);

#endif
