/* builtins/map.c — Map: a plain function of part 0 (int64, double or C
 * string), with or without a context pointer, as a stage putting one item
 * per input with the input's meta.  mpx_fn_i64/mpx_fn_f64 are built on it. */
#include <stdlib.h>

#include "mpx.h"

typedef struct map_args {
    union {
        int64_t (*i64)(int64_t);
        double (*f64)(double);
        char *(*str)(const char *);
        int64_t (*i64_ctx)(int64_t, void *);
        double (*f64_ctx)(double, void *);
        char *(*str_ctx)(const char *, void *);
    } fn;
    void *ctx;
    bool with_ctx;
} map_args_t;

static int wrong_part(mpx_stage_t *st, const mpx_item_t *it, const char *expected)
{
    if (mpx_item_parts(it) == 0)
        return mpx_fail(st, "expected %s in part 0, but the item has no part", expected);
    return mpx_fail(st, "expected %s in part 0, got %zu bytes", expected, mpx_item_size(it, 0));
}

/* Each put below carries the current meta, which during process is the
 * input's: that is how Map keeps it. */
static int map_i64(mpx_stage_t *st, mpx_item_t *it)
{
    const map_args_t *a = mpx_args(st);
    int64_t v;
    if (mpx_item_get_i64(it, 0, &v) != 0)
        return wrong_part(st, it, "an 8-byte integer");
    return mpx_put_i64(st, a->with_ctx ? a->fn.i64_ctx(v, a->ctx) : a->fn.i64(v));
}

static int map_f64(mpx_stage_t *st, mpx_item_t *it)
{
    const map_args_t *a = mpx_args(st);
    double v;
    if (mpx_item_get_f64(it, 0, &v) != 0)
        return wrong_part(st, it, "an 8-byte double");
    return mpx_put_f64(st, a->with_ctx ? a->fn.f64_ctx(v, a->ctx) : a->fn.f64(v));
}

static int map_str(mpx_stage_t *st, mpx_item_t *it)
{
    const map_args_t *a = mpx_args(st);
    const char *in = mpx_item_str(it);
    char *out = a->with_ctx ? a->fn.str_ctx(in, a->ctx) : a->fn.str(in);
    if (!out)
        return mpx_fail(st, "the function returned NULL");
    int rc = mpx_put_str(st, out);
    free(out);
    return rc;
}

static const mpx_stage_def_t map_i64_def = {
    .name = "map", .args_size = sizeof(map_args_t), .process = map_i64};
static const mpx_stage_def_t map_f64_def = {
    .name = "map", .args_size = sizeof(map_args_t), .process = map_f64};
static const mpx_stage_def_t map_str_def = {
    .name = "map", .args_size = sizeof(map_args_t), .process = map_str};

/* `fn_given` is the function pointer as the caller passed it, checked here
 * since a NULL one in the union would only crash the stage process. */
static mpx_node_t *make(const char *caller, const char *name, const mpx_stage_def_t *def,
                        const map_args_t *a, bool fn_given)
{
    if (!fn_given)
        return mpx_invalid("%s '%s': the function is NULL", caller, name ? name : "map");
    mpx_node_t *n = mpx_stage(def, a);
    if (n && name && name[0] && mpx_node_set_name(n, name) != 0)
        mpx_node_destroy(&n); /* only out of memory: NULL says so */
    return n;
}

mpx_node_t *mpx_map_i64(const char *name, int64_t (*f)(int64_t))
{
    return make("mpx_map_i64", name, &map_i64_def, &(map_args_t){.fn.i64 = f}, f != NULL);
}

mpx_node_t *mpx_map_f64(const char *name, double (*f)(double))
{
    return make("mpx_map_f64", name, &map_f64_def, &(map_args_t){.fn.f64 = f}, f != NULL);
}

mpx_node_t *mpx_map_str(const char *name, char *(*f)(const char *))
{
    return make("mpx_map_str", name, &map_str_def, &(map_args_t){.fn.str = f}, f != NULL);
}

mpx_node_t *mpx_map_i64_ctx(const char *name, int64_t (*f)(int64_t, void *), void *ctx)
{
    return make("mpx_map_i64_ctx", name, &map_i64_def,
                &(map_args_t){.fn.i64_ctx = f, .ctx = ctx, .with_ctx = true}, f != NULL);
}

mpx_node_t *mpx_map_f64_ctx(const char *name, double (*f)(double, void *), void *ctx)
{
    return make("mpx_map_f64_ctx", name, &map_f64_def,
                &(map_args_t){.fn.f64_ctx = f, .ctx = ctx, .with_ctx = true}, f != NULL);
}

mpx_node_t *mpx_map_str_ctx(const char *name, char *(*f)(const char *, void *), void *ctx)
{
    return make("mpx_map_str_ctx", name, &map_str_def,
                &(map_args_t){.fn.str_ctx = f, .ctx = ctx, .with_ctx = true}, f != NULL);
}
