/* builtins/range.c — Range: a source putting start, start+step, ... up to
 * but not including stop as i64 items, with Python's range semantics over
 * the whole int64 span (no overflow near INT64_MIN or INT64_MAX). */
#include "graph/source.h"
#include "mpx.h"

typedef struct range_args {
    source_opts_t opts; /* first: mpx_node_set_index writes it */
    int64_t start, step;
    uint64_t count; /* computed at build time, so the loop cannot overflow */
} range_args_t;

static int range_setup(mpx_stage_t *st)
{
    const range_args_t *a = mpx_args(st);
    const bool index = a->opts.index;
    /* Unsigned arithmetic wraps where int64 would overflow; the wrapped sum
     * is the right two's-complement value for every item in range. */
    uint64_t v = (uint64_t)a->start;
    int rc = mpx_progress_total(st, a->count);
    if (rc != 0)
        return rc;
    if (!index && (rc = source_put_i64_run(st, a->start, a->step, a->count)) != 0)
        return rc;
    for (uint64_t i = 0; index && i < a->count; i++, v += (uint64_t)a->step)
        if ((rc = source_index(st, index, i)) != 0 || (rc = mpx_put_i64(st, (int64_t)v)) != 0)
            return rc;
    return mpx_stop(st);
}

static const mpx_stage_def_t range_def = {
    .name = "range", .args_size = sizeof(range_args_t), .setup = range_setup};

mpx_node_t *mpx_range(int64_t start, int64_t stop, int64_t step)
{
    if (step == 0)
        return mpx_invalid("mpx_range: step must not be 0");
    uint64_t count = 0;
    /* The distance and the step's magnitude each fit in a uint64 even when
     * their int64 forms would not (INT64_MAX - INT64_MIN, -INT64_MIN). */
    if (step > 0 && start < stop)
        count = ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)step + 1;
    else if (step < 0 && start > stop)
        count = ((uint64_t)start - (uint64_t)stop - 1) / (0 - (uint64_t)step) + 1;
    return source_stage(&range_def,
                        &(range_args_t){.start = start, .step = step, .count = count});
}
