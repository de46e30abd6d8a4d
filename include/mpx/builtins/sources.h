/* mpx/builtins/sources.h — sources: Const, Iter, Range and Chunks.
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
 *     MPX_EZ(mpx_chunks(10, 4), mpx_print(NULL))            // 0 4, 4 4, 8 2
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

/* Chunks: the ranges of [0, total) that a parallel group works on in place
 * (see mpx/shared.h), as items of two int64 parts: part 0 the first
 * index, part 1 the count (read them with mpx_item_get_i64).  They are
 * put in order, cover [0, total) exactly once, and all hold `chunk`
 * elements except the last, which holds what is left; total 0 puts
 * nothing, and chunk > total one chunk of total.  An element is whatever
 * the user's index counts: a double of an array, a byte of a file.
 *
 *     MPX_EZ(mpx_chunks(n, 0), mpx_as(4, &Worker, &args))
 *
 * chunk 0 chooses the size, for light work per element (a pass over an
 * array, a scan of bytes): about MPX_CHUNKS_PER_CPU chunks per CPU
 * online (sysconf(_SC_NPROCESSORS_ONLN), read when mpx_chunks is called),
 * so that the workers stay balanced to within a chunk at the end, but
 * none smaller than MPX_CHUNKS_MIN elements, so that handing out a chunk
 * (tens of microseconds of the framework's time) stays small next to
 * working on it; rounded up to a multiple of MPX_CHUNKS_ALIGN, so that
 * two workers writing their chunks of an aligned array of elements of
 * any size never share a cache line, nor a page for elements of 1 byte:
 *
 *     chunk = round_up(max(ceil(total / (MPX_CHUNKS_PER_CPU * cpus)),
 *                          MPX_CHUNKS_MIN), MPX_CHUNKS_ALIGN)
 *
 * So an array of fewer than MPX_CHUNKS_MIN elements is one chunk: where
 * an element is heavy work (a row to fit, an image), give the size.
 * total or chunk above INT64_MAX (a negative value converted, often) gives
 * a node the graph check refuses.  mpx_node_set_index numbers the chunks
 * 0, 1, ...: the number a worker needs to write a per-chunk result into
 * its own slot of an output array. */
#define MPX_CHUNKS_PER_CPU 16
#define MPX_CHUNKS_MIN ((size_t)65536)
#define MPX_CHUNKS_ALIGN ((size_t)4096)
mpx_node_t *mpx_chunks(size_t total, size_t chunk);

/* The chunk size mpx_chunks(total, chunk) uses (chunk itself when not 0),
 * and so ceil(total / it) chunks: to size an array of per-chunk results.
 * The same call with the same CPUs online gives the size the node got. */
size_t mpx_chunks_size(size_t total, size_t chunk);

#ifdef __cplusplus
}
#endif
#endif
