/* mpx/builtins/batch.h — Batch and Unbatch.
 *
 * Batch gathers `size` consecutive items into one multi-part item: the
 * parts of the first, then of the second, and so on (size parts when the
 * inputs have one part each).  What is left at the end is put, at
 * teardown, as a shorter batch.  A batch carries the meta of its last
 * item.  Unbatch splits a multi-part item into one item per part, each
 * with the meta of the batch.
 *
 *     MPX_EZ(mpx_range(0, 10, 1), mpx_batch(4), mpx_print(NULL))
 *     // 0 1 2 3 / 4 5 6 7 / 8 9
 */
#ifndef MPX_BUILTINS_BATCH_H
#define MPX_BUILTINS_BATCH_H

#include <stddef.h>

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 <= size <= 65535 */
mpx_node_t *mpx_batch(size_t size);
mpx_node_t *mpx_unbatch(void);

#ifdef __cplusplus
}
#endif
#endif
