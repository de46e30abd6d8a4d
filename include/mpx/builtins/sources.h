/* mpx/builtins/sources.h — sources: Const, Iter and Range.
 *
 * Each is one stage that produces in setup and ends itself.  A bad
 * argument (NULL array with n > 0, step 0, too large a value) gives a node
 * that the graph check refuses with a message saying so.
 * mpx_node_set_index (graph.h) numbers what they put in meta "mpx.index".
 *
 *     MPX_EZ(mpx_range(0, 10, 2), mpx_print(NULL))          // 0 2 4 6 8
 *     MPX_EZ(mpx_const_str("tick", 3), mpx_print(NULL))     // tick tick tick
 *     static const int64_t v[] = {4, 8, 15};
 *     MPX_EZ(mpx_iter_i64(v, 3), mpx_print(NULL))           // 4 8 15
 */
#ifndef MPX_BUILTINS_SOURCES_H
#define MPX_BUILTINS_SOURCES_H

#include <stdint.h>

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest value a Const node copies. */
#define MPX_CONST_MAX 4096

/* Const: the same one-part item `limit` times (0: until the graph stops or
 * every consumer has stopped).  The bytes are copied. */
mpx_node_t *mpx_const(const void *data, size_t size, uint64_t limit);
mpx_node_t *mpx_const_i64(int64_t value, uint64_t limit);
mpx_node_t *mpx_const_str(const char *s, uint64_t limit);

/* Iter over a C array: one item per element, in order.  The array is read
 * in the source's process, which inherits it at start: it must be valid
 * until mpx_graph_start() returns. */
mpx_node_t *mpx_iter(const mpx_part_t *items, size_t n);
mpx_node_t *mpx_iter_i64(const int64_t *values, size_t n);
mpx_node_t *mpx_iter_f64(const double *values, size_t n);
mpx_node_t *mpx_iter_str(const char *const *strings, size_t n);

/* Iter over a generator: gen is called in the source's process until it
 * returns 0.  It returns 1 with *item set (the data must stay valid until
 * the next call), 0 at the end, or a negative value to fail the run. */
typedef int (*mpx_gen_fn)(void *ctx, mpx_part_t *item);
mpx_node_t *mpx_iter_fn(const char *name, mpx_gen_fn gen, void *ctx);

/* Range: start, start+step, ... up to but not including stop, as i64 items
 * (like Python's range; step may be negative, never 0). */
mpx_node_t *mpx_range(int64_t start, int64_t stop, int64_t step);

#ifdef __cplusplus
}
#endif
#endif
