/* builtins/iter.c — Iter: a source putting one item per element of a C
 * array (parts, int64s, doubles, strings) or per value of a generator.
 * Only pointers are copied: the forked source inherits what they point to. */
#include <inttypes.h>

#include "graph/source.h"
#include "mpx.h"

typedef struct iter_args {
    source_opts_t opts; /* first: mpx_node_set_index writes it */
    const void *array;
    size_t n;
    mpx_gen_fn gen;
    void *ctx;
} iter_args_t;

static int iter_parts(mpx_stage_t *st)
{
    const iter_args_t *a = mpx_args(st);
    const mpx_part_t *parts = a->array;
    const bool index = a->opts.index;
    int rc = mpx_progress_total(st, a->n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < a->n; i++) {
        /* An empty part may come as {NULL, 0}; the put gets a valid pointer. */
        if (!parts[i].data && parts[i].size > 0)
            return mpx_fail(st, "element %zu: data is NULL but size is %zu", i, parts[i].size);
        if ((rc = source_index(st, index, i)) != 0 ||
            (rc = mpx_put(st, parts[i].data ? parts[i].data : "", parts[i].size)) != 0)
            return rc;
    }
    return mpx_stop(st);
}

static int iter_i64(mpx_stage_t *st)
{
    const iter_args_t *a = mpx_args(st);
    const int64_t *values = a->array;
    const bool index = a->opts.index;
    int rc = mpx_progress_total(st, a->n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < a->n; i++)
        if ((rc = source_index(st, index, i)) != 0 || (rc = mpx_put_i64(st, values[i])) != 0)
            return rc;
    return mpx_stop(st);
}

static int iter_f64(mpx_stage_t *st)
{
    const iter_args_t *a = mpx_args(st);
    const double *values = a->array;
    const bool index = a->opts.index;
    int rc = mpx_progress_total(st, a->n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < a->n; i++)
        if ((rc = source_index(st, index, i)) != 0 || (rc = mpx_put_f64(st, values[i])) != 0)
            return rc;
    return mpx_stop(st);
}

static int iter_str(mpx_stage_t *st)
{
    const iter_args_t *a = mpx_args(st);
    const char *const *strings = a->array;
    const bool index = a->opts.index;
    int rc = mpx_progress_total(st, a->n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < a->n; i++) {
        /* Checked here rather than at build time: the array need only be
         * filled in by the time the graph starts. */
        if (!strings[i])
            return mpx_fail(st, "string %zu of %zu is NULL", i, a->n);
        if ((rc = source_index(st, index, i)) != 0 || (rc = mpx_put_str(st, strings[i])) != 0)
            return rc;
    }
    return mpx_stop(st);
}

static int iter_gen(mpx_stage_t *st)
{
    const iter_args_t *a = mpx_args(st);
    const bool index = a->opts.index;
    int rc;
    for (uint64_t i = 0;; i++) {
        mpx_part_t item = {NULL, 0};
        int got = a->gen(a->ctx, &item);
        if (got == 0)
            break;
        if (got < 0)
            return mpx_fail(st, "the generator failed (returned %d) after %" PRIu64 " items",
                            got, i);
        if (!item.data && item.size > 0)
            return mpx_fail(st, "the generator gave item %" PRIu64 " with NULL data and size %zu",
                            i, item.size);
        if ((rc = source_index(st, index, i)) != 0 ||
            (rc = mpx_put(st, item.data ? item.data : "", item.size)) != 0)
            return rc;
    }
    return mpx_stop(st);
}

static const mpx_stage_def_t iter_parts_def = {
    .name = "iter", .args_size = sizeof(iter_args_t), .setup = iter_parts};
static const mpx_stage_def_t iter_i64_def = {
    .name = "iter", .args_size = sizeof(iter_args_t), .setup = iter_i64};
static const mpx_stage_def_t iter_f64_def = {
    .name = "iter", .args_size = sizeof(iter_args_t), .setup = iter_f64};
static const mpx_stage_def_t iter_str_def = {
    .name = "iter", .args_size = sizeof(iter_args_t), .setup = iter_str};
static const mpx_stage_def_t iter_gen_def = {
    .name = "iter", .args_size = sizeof(iter_args_t), .setup = iter_gen};

static mpx_node_t *over_array(const char *caller, const mpx_stage_def_t *def, const void *array,
                              size_t n)
{
    if (!array && n > 0)
        return mpx_invalid("%s: the array is NULL but n is %zu", caller, n);
    return source_stage(def, &(iter_args_t){.array = array, .n = n});
}

mpx_node_t *mpx_iter(const mpx_part_t *items, size_t n)
{
    return over_array("mpx_iter", &iter_parts_def, items, n);
}

mpx_node_t *mpx_iter_i64(const int64_t *values, size_t n)
{
    return over_array("mpx_iter_i64", &iter_i64_def, values, n);
}

mpx_node_t *mpx_iter_f64(const double *values, size_t n)
{
    return over_array("mpx_iter_f64", &iter_f64_def, values, n);
}

mpx_node_t *mpx_iter_str(const char *const *strings, size_t n)
{
    return over_array("mpx_iter_str", &iter_str_def, strings, n);
}

mpx_node_t *mpx_iter_fn(const char *name, mpx_gen_fn gen, void *ctx)
{
    if (!gen)
        return mpx_invalid("mpx_iter_fn '%s': the generator is NULL", name ? name : "iter");
    mpx_node_t *n = source_stage(&iter_gen_def, &(iter_args_t){.gen = gen, .ctx = ctx});
    if (n && name && name[0] && mpx_node_set_name(n, name) != 0)
        mpx_node_destroy(&n); /* only out of memory: NULL says so */
    return n;
}
