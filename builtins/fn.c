/* builtins/fn.c — a plain C function as a stage (MPX_FN).  The function
 * pointer travels in the stage's args; the child inherits it by fork.
 * Written with the public API only. */
#include <string.h>

#include "mpx.h"

typedef union fn_args {
    mpx_process_fn process;
    int64_t (*i64)(int64_t);
    double (*f64)(double);
} fn_args_t;

static int fn_process(mpx_stage_t *st, mpx_item_t *it)
{
    const fn_args_t *a = mpx_args(st);
    return a->process(st, it);
}

static int fn_i64(mpx_stage_t *st, mpx_item_t *it)
{
    const fn_args_t *a = mpx_args(st);
    int64_t v;
    if (mpx_item_get_i64(it, 0, &v) != 0)
        return mpx_fail(st, "expected an 8-byte integer in part 0, got %zu bytes",
                        mpx_item_size(it, 0));
    return mpx_put_i64(st, a->i64(v));
}

static int fn_f64(mpx_stage_t *st, mpx_item_t *it)
{
    const fn_args_t *a = mpx_args(st);
    double v;
    if (mpx_item_get_f64(it, 0, &v) != 0)
        return mpx_fail(st, "expected an 8-byte double in part 0, got %zu bytes",
                        mpx_item_size(it, 0));
    return mpx_put_f64(st, a->f64(v));
}

static const mpx_stage_def_t fn_def = {
    .name = "fn", .args_size = sizeof(fn_args_t), .process = fn_process};
static const mpx_stage_def_t fn_i64_def = {
    .name = "fn", .args_size = sizeof(fn_args_t), .process = fn_i64};
static const mpx_stage_def_t fn_f64_def = {
    .name = "fn", .args_size = sizeof(fn_args_t), .process = fn_f64};
/* What a NULL function becomes: a stage the graph check refuses. */
static const mpx_stage_def_t fn_null_def = {.name = "fn (NULL function)"};

static mpx_node_t *make(const mpx_stage_def_t *def, const char *name, const fn_args_t *a,
                        bool null)
{
    mpx_node_t *n = null ? mpx_stage(&fn_null_def, NULL) : mpx_stage(def, a);
    if (n && name && !null)
        mpx_node_set_name(n, name);
    return n;
}

mpx_node_t *mpx_fn(const char *name, mpx_process_fn fn)
{
    fn_args_t a = {.process = fn};
    return make(&fn_def, name, &a, !fn);
}

mpx_node_t *mpx_fn_i64(const char *name, int64_t (*fn)(int64_t))
{
    fn_args_t a = {.i64 = fn};
    return make(&fn_i64_def, name, &a, !fn);
}

mpx_node_t *mpx_fn_f64(const char *name, double (*fn)(double))
{
    fn_args_t a = {.f64 = fn};
    return make(&fn_f64_def, name, &a, !fn);
}
