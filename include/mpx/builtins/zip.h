/* mpx/builtins/zip.h — Zip: send each item to several branches and join
 * what they make of it.
 *
 * MPX_ZIP(b0, b1, ...) is a node: each input item goes to every branch (a
 * broadcast); for each input, Zip puts one multi-part item holding the
 * parts of branch 0's output, then branch 1's, and so on, with the meta
 * the input had.  Outputs come in input order.  Each branch must put
 * exactly one item per input; a branch that puts none (a filter) or
 * several fails the run with a message naming the branch and the input —
 * Zip never waits forever and never pairs the wrong items.  Branches may
 * hold any sub-graph, parallel groups included.
 *
 *     MPX_EZ(mpx_range(1, 4, 1), MPX_ZIP(MPX_MAP(square), MPX_MAP(negate)), mpx_print(NULL))
 *     // 1 -1 / 4 -2 / 9 -3
 *
 * MPX_ZIP_WITH_INPUT(b0, b1, ...) is the same, with the input's own parts
 * first: x alongside what the branches make of it, as an identity branch
 * would give, without the process such a branch would cost.
 *
 *     MPX_EZ(mpx_range(1, 4, 1), MPX_ZIP_WITH_INPUT(MPX_MAP(square)), mpx_print(NULL))
 *     // 1 1 / 2 4 / 3 9
 *
 * An input of several parts (or none) contributes them all, in order.
 * The input's bytes travel once more, to the joining stage, which holds
 * them with the branches' results until the input is complete.  An item
 * still holds at most 65535 parts: more, with the input's, fails the run
 * naming the input.
 *
 * It is built from ordinary stages and marks (see mpx_put_mark): a stamp
 * before the broadcast numbers the inputs and puts a mark after every few
 * of them or when its input pauses; the zipper waits for the mark, by
 * which time every branch has answered for every input before it.  The
 * processes it adds to its branches' are three (the stamp, a stage that
 * passes the input's meta — and, in MPX_ZIP_WITH_INPUT, its parts — to
 * the zipper, and the zipper) plus one per branch, which writes the
 * branch's number into its items' meta.
 */
#ifndef MPX_BUILTINS_ZIP_H
#define MPX_BUILTINS_ZIP_H

#include <stddef.h>

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Both take ownership of the branches, refused ones included (the
 * refusal is a node the graph check reports); 1 <= n <= 255. */
mpx_node_t *mpx_zip_v(mpx_node_t *const *branches, size_t n);
mpx_node_t *mpx_zip_with_input_v(mpx_node_t *const *branches, size_t n);
#define MPX_ZIP(...) mpx_zip_v(MPX__NODES(__VA_ARGS__), MPX__COUNT(__VA_ARGS__))
#define MPX_ZIP_WITH_INPUT(...)                                                \
    mpx_zip_with_input_v(MPX__NODES(__VA_ARGS__), MPX__COUNT(__VA_ARGS__))

#ifdef __cplusplus
}
#endif
#endif
