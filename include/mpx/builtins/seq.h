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
 * output (a filter inside) are simply absent.
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
