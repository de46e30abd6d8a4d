/* graph/i64map.h — maps over 8-byte values: what the builder gives Map's
 * integer and double forms so that the stage loop can apply them to many
 * items at a time.
 *
 * A stage whose process callback, for an item of one 8-byte part and no
 * meta, does nothing but put one 8-byte value computed from it (with the
 * input's meta, so none) may say so by building its node with
 * i64map_stage(def, args, apply).  When the input in hand is a run or
 * packed int64 (lib/wire.h: WIRE_DATA_ARITH, WIRE_DATA_I64: items of one
 * 8-byte part without meta, whatever the bytes mean), the stage loop
 * (lib/child.c, map_run) then calls apply on each value and writes the
 * results into the output batch directly: no item is made and no put
 * call is paid per item.  Everything else about an item stays as the
 * process callback would have it: the same output records, credit, the
 * item noted in hand for a crash report and the per-item timeout, the
 * batching clock read after each item.
 *
 * apply returns false for a value it does not take (an int that does not
 * fit the function's parameter, say): that item goes to the process
 * callback as any other, which reports why.  apply must not call the mpx
 * API (it has no stage to call it with). */
#ifndef MPX_GRAPH_I64MAP_H
#define MPX_GRAPH_I64MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "mpx.h"

/* The 8 bytes of the input's part 0 as v; the output's 8 bytes in *out. */
typedef bool (*i64map_fn)(const void *args, uint64_t v, uint64_t *out);

/* mpx_stage(def, args), and the stage's instances may be applied `apply`
 * in bulk as above.  NULL only when out of memory, as mpx_stage.
 * Defined in graph/node.c. */
mpx_node_t *i64map_stage(const mpx_stage_def_t *def, const void *args, i64map_fn apply);

#endif
