/* mpx/builtins/seq.h — Seq: restore the input order at the end of a
 * sub-graph.
 *
 * mpx_seq(node) runs `node` (typically a parallel group whose workers run
 * at different speeds) and puts its outputs in the order of their inputs:
 * everything made from input k before anything made from input k+1;
 * several outputs of one input keep the order in which they arrived.
 * Outputs are held only until a mark closes their epoch (every 128 inputs
 * or 16 MiB of them, or when the input pauses), and while an output of an
 * earlier input is still missing.  Inputs that give no
 * output (a filter inside) are simply absent.  The Seq's own meta key
 * never reaches the output.
 *
 * Seq costs no process where its neighbours can do its work: the stage
 * that alone feeds it (one instance, no retry or error policy), or the
 * program putting into a graph that begins with it, numbers its own
 * output, and the stage that alone takes its output (likewise), or the
 * program reading the graph's end, puts it in order.  Otherwise (a
 * parallel group, a broadcast or another Seq next to it, a Seq at the
 * start or end of another Seq's node or of a side graph, a policy on the
 * neighbour) that half runs as a stage of its own.
 * mpx_graph_instance_count() says how many processes a graph runs.
 *
 *     MPX_EZ(src, mpx_seq(mpx_as(8, &Resize, NULL)), mpx_stage(&SaveInOrder, NULL))
 */
#ifndef MPX_BUILTINS_SEQ_H
#define MPX_BUILTINS_SEQ_H

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Takes ownership of node. */
mpx_node_t *mpx_seq(mpx_node_t *node);

#ifdef __cplusplus
}
#endif
#endif
