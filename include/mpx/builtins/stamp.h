/* mpx/builtins/stamp.h — Stamp: a debugging counter that prints a line per
 * item ("<prefix> <n>", n counting from 1 in each instance) on stderr and
 * passes the item on unchanged.
 *
 *     MPX_EZ(src, mpx_stamp("read"), work, mpx_stamp("worked"), sink)
 */
#ifndef MPX_BUILTINS_STAMP_H
#define MPX_BUILTINS_STAMP_H

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* prefix NULL: "item".  At most 63 bytes of it are kept. */
mpx_node_t *mpx_stamp(const char *prefix);

#ifdef __cplusplus
}
#endif
#endif
