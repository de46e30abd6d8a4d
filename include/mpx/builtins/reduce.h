/* mpx/builtins/reduce.h — Reduce, and its conveniences Count and Sum.
 *
 * Reduce folds every input into an accumulator and puts it once, at
 * teardown, when the input has drained.  Several instances (mpx_as) each
 * put their own partial result.
 *
 *     static int longest(void *acc, const mpx_item_t *it, void *ctx)
 *     {   int64_t *best = acc;
 *         if ((int64_t)mpx_item_size(it, 0) > *best) *best = mpx_item_size(it, 0);
 *         return 0; }
 *     MPX_EZ(mpx_read("/etc/services"), mpx_reduce("longest", longest, &(int64_t){0}, 8, NULL),
 *            mpx_print("longest line:"))
 */
#ifndef MPX_BUILTINS_REDUCE_H
#define MPX_BUILTINS_REDUCE_H

#include <stddef.h>

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest accumulator. */
#define MPX_REDUCE_MAX 4096

/* fn(acc, item, ctx) updates acc (acc_size bytes, 8-byte aligned, starting
 * as a copy of init) and returns 0, or non-zero to fail the run.  The
 * result is one item of acc_size bytes.  A NULL fn or init, or acc_size 0
 * or above MPX_REDUCE_MAX, is refused by the graph check; name NULL means
 * "reduce". */
typedef int (*mpx_reduce_fn)(void *acc, const mpx_item_t *item, void *ctx);
mpx_node_t *mpx_reduce(const char *name, mpx_reduce_fn fn, const void *init, size_t acc_size,
                       void *ctx);

/* The number of items (an i64). */
mpx_node_t *mpx_count(void);
/* The sum of part 0 of every item, read as an i64 (wrapping modulo 2^64,
 * like unsigned arithmetic) / a double.  A part of another size fails the
 * run. */
mpx_node_t *mpx_sum_i64(void);
mpx_node_t *mpx_sum_f64(void);

#ifdef __cplusplus
}
#endif
#endif
