/* mpx/builtins/print.h — Print: write each item to stdout and pass it on.
 *
 * Each item becomes one line: the optional prefix, then the parts separated
 * by a space — text parts as they are, 8-byte parts that are not text as
 * integers.  The line is written in one write so that lines from parallel
 * instances never mix.  The item is then put downstream unchanged.
 *
 *     mpx_run(MPX_EZ(mpx_stage(&Count, &(long){3}), mpx_print("n=")));
 *     // n=1  n=2  n=3  (one per line)
 */
#ifndef MPX_BUILTINS_PRINT_H
#define MPX_BUILTINS_PRINT_H

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A Print node; prefix may be NULL.  The prefix is copied (at most 63
 * bytes are kept). */
mpx_node_t *mpx_print(const char *prefix);

#ifdef __cplusplus
}
#endif
#endif
