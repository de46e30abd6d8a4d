/* lib/testhook.h — what a test's stage may reach of the runtime inside its
 * own process, and nothing a program should use: these calls are built
 * into the internal test harness only (tests/meson.build), never into the
 * library, and no public header names them.
 *
 * A stage process cannot reach its graph's pool through the public API
 * (mpx_alloc and mpx_free hide it), yet the pool's crash points
 * (lib/pool.h, pool_test_crash_at) are per process: to kill a stage
 * process at one step of the allocator, the process itself must arm it.
 */
#ifndef MPX_LIB_TESTHOOK_H
#define MPX_LIB_TESTHOOK_H

#include "mpx/error.h"
#include "mpx/graph.h"
#include "mpx/stage.h"

/* Arm the pool's crash point `point` (enum pool_crash_point) in the
 * calling stage process: the process kills itself with SIGKILL when one
 * of its pool calls gets there (POOL_CRASH_NONE disarms).  0, or
 * MPX_EINVAL outside a stage process (the parent's initialize or
 * finalize), when the graph has no pool, or for a point out of range. */
MPX_MUST_CHECK int testhook_pool_crash_at(mpx_stage_t *st, int point);

/* Arm a SIGKILL of the calling stage process at the moment its parent
 * would take it for finished (its blackbox says ended), just before it
 * ends its stream: what it put, in teardown too, must be confirmed by
 * then, for its replacement only ends the stream again.  0, or
 * MPX_EINVAL outside a stage process. */
MPX_MUST_CHECK int testhook_crash_when_ended(mpx_stage_t *st);

/* Decide the changes of g's elastic groups instead of the controller
 * (graph/node.h, grow_script), before start: fn(ctx, ngroups, running,
 * &group, &delta) at each tick (GROW_TICK_MS) returns 1 for a change.
 * 0, MPX_EINVAL, or MPX_ESTATE once started. */
typedef int (*testhook_grow_fn)(void *ctx, int ngroups, const int *running, int *group,
                                int *delta);
MPX_MUST_CHECK int testhook_elastic_script(mpx_graph_t *g, testhook_grow_fn fn, void *ctx);

/* Report a change of an elastic group still under way after `ms`
 * milliseconds (then after twice that, ...) instead of GROW_PENDING_MS
 * (lib/grow.c); 0 restores that.  0, MPX_EINVAL, or MPX_ESTATE once
 * started. */
MPX_MUST_CHECK int testhook_elastic_pending_ms(mpx_graph_t *g, int ms);

#endif
