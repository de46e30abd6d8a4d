/* lib/testhook.c — see testhook.h.  Built into the internal test harness
 * only: the shipped library has none of this. */
#include "testhook.h"

#include "child.h"
#include "graph/node.h"
#include "pool.h"

int testhook_pool_crash_at(mpx_stage_t *st, int point)
{
    /* st->rt is set only in a stage process.  Its pool_t is this
     * process's own copy of the parent's (fork, or the fork server's
     * clone, copied the heap), so the point armed here kills no other
     * process. */
    if (!st || !st->rt || !st->rt->plan->pool || point < POOL_CRASH_NONE ||
        point >= POOL_CRASH_POINTS)
        return MPX_EINVAL;
    pool_test_crash_at(st->rt->plan->pool, point);
    return 0;
}

int testhook_crash_when_ended(mpx_stage_t *st)
{
    if (!st || !st->rt)
        return MPX_EINVAL;
    st->rt->crash_when_ended = true;
    return 0;
}

int testhook_elastic_script(mpx_graph_t *g, testhook_grow_fn fn, void *ctx)
{
    if (!g)
        return MPX_EINVAL;
    if (g->run)
        return MPX_ESTATE;
    g->grow_script = fn;
    g->grow_script_ctx = ctx;
    return 0;
}

int testhook_elastic_pending_ms(mpx_graph_t *g, int ms)
{
    if (!g || ms < 0)
        return MPX_EINVAL;
    if (g->run)
        return MPX_ESTATE;
    g->grow_pending_ms = ms;
    return 0;
}
