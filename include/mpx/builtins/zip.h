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
 * It is built from ordinary stages and marks (see mpx_put_mark): a stamp
 * before the broadcast numbers the inputs and puts a mark after every few
 * of them or when its input pauses; the zipper waits for the mark, by
 * which time every branch has answered for every input before it.
 */
#ifndef MPX_BUILTINS_ZIP_H
#define MPX_BUILTINS_ZIP_H

#include <stddef.h>

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Takes ownership of the branches; 1 <= n <= 255. */
mpx_node_t *mpx_zip_v(mpx_node_t *const *branches, size_t n);
#define MPX_ZIP(...) mpx_zip_v(MPX__NODES(__VA_ARGS__), MPX__COUNT(__VA_ARGS__))

#ifdef __cplusplus
}
#endif
#endif
