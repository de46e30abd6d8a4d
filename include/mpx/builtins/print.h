/* mpx/builtins/print.h — Print: write each item to stdout and pass it on.
 *
 * Each item becomes one line: the prefix and a space (as mpyx's
 * Print("A") prints "A 1"), then the parts separated by a space — text
 * parts as they are, 8-byte parts that are not text as integers, other
 * binary parts as their size and first bytes in hex.  Without a prefix
 * (NULL or "") the line is the parts alone.  The line is written in one
 * write so that lines from parallel instances never mix.  The item is
 * then put downstream unchanged.
 *
 *     mpx_run(MPX_EZ(mpx_stage(&Count, &(long){3}), mpx_print("n:")));
 *     // n: 1  n: 2  n: 3  (one per line)
 */
#ifndef MPX_BUILTINS_PRINT_H
#define MPX_BUILTINS_PRINT_H

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A Print node; prefix may be NULL or "" (no prefix, no space).  The
 * prefix is copied (at most 63 bytes are kept). */
mpx_node_t *mpx_print(const char *prefix);

#ifdef __cplusplus
}
#endif
#endif
