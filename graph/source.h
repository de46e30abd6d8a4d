/* graph/source.h — numbered sources: what the builder gives the built-in
 * sources so that mpx_node_set_index can number the items they put.
 *
 * The built-ins otherwise use the public API only; this is the one private
 * header they include, and it shows them nothing of the node tree.  The
 * option travels in the node's own copy of the stage's args, so neither
 * the plan nor the runtime has to carry it: the source reads it with
 * mpx_args() like the rest of its arguments.
 *
 * A source that supports numbering (Range, Iter, Read, Const, ...):
 *
 *   1. makes source_opts_t the FIRST member of its args struct:
 *          typedef struct my_args { source_opts_t opts; ... } my_args_t;
 *   2. builds its node with source_stage(&my_def, &args) instead of
 *      mpx_stage(&my_def, &args) (opts zeroed: numbering off);
 *   3. in setup, reads the option once into a local and calls
 *      source_index(st, on, i) before its i-th put (i from 0, counting
 *      only the items it puts), returning the code if it is not 0:
 *          bool on = a->opts.index;
 *          for (uint64_t i = 0; ...; i++) {
 *              if ((rc = source_index(st, on, i)) != 0 ||
 *                  (rc = mpx_put(st, ...)) != 0)
 *                  return rc;
 *          }
 *
 * mpx_node_set_index() accepts exactly the nodes made by source_stage and
 * sets opts.index in their args.  Off, source_index is one test of a local
 * bool per item: no meta is set.
 */
#ifndef MPX_GRAPH_SOURCE_H
#define MPX_GRAPH_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "mpx.h"

/* The meta key a numbered source sets (int64, native byte order). */
#define SOURCE_INDEX_KEY "mpx.index"

/* Options of a built-in source, set by the builder: the first member of
 * its args. */
typedef struct source_opts {
    bool index; /* put "mpx.index" on each item (mpx_node_set_index) */
} source_opts_t;

/* mpx_stage(def, args), and the node accepts mpx_node_set_index.  def's
 * args begin with a source_opts_t (args_size covers it).  NULL only when
 * out of memory, as mpx_stage.  Defined in graph/node.c. */
mpx_node_t *source_stage(const mpx_stage_def_t *def, const void *args);

/* Before the source's i-th put (0-based): set meta "mpx.index" to i when
 * `on`.  0, or the error of mpx_meta_set_i64 (a callback returns it). */
static inline int source_index(mpx_stage_t *st, bool on, uint64_t i)
{
    return on ? mpx_meta_set_i64(st, SOURCE_INDEX_KEY, (int64_t)i) : 0;
}

/* count mpx_put_i64 calls of start, start + step, ... (wrapping as uint64),
 * stopping at the first that fails and returning its code: the same items
 * and the same checks, with the records of a batch written in a tight
 * loop.  For a source that puts consecutive integers without meta (Range
 * with numbering off).  Defined in lib/stage.c. */
int source_put_i64_run(mpx_stage_t *st, int64_t start, int64_t step, uint64_t count);

#endif
