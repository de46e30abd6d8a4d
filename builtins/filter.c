/* builtins/filter.c — Filter: a predicate on part 0 (int64, double, C
 * string) or on the whole item, with or without a context pointer, as a
 * stage passing on unchanged (parts and meta) the items it holds for. */
#include "mpx.h"

typedef struct filter_args {
    union {
        bool (*i64)(int64_t);
        bool (*f64)(double);
        bool (*str)(const char *);
        bool (*item)(const mpx_item_t *);
        bool (*i64_ctx)(int64_t, void *);
        bool (*f64_ctx)(double, void *);
        bool (*str_ctx)(const char *, void *);
        bool (*item_ctx)(const mpx_item_t *, void *);
    } p;
    void *ctx;
    bool with_ctx;
} filter_args_t;

static int wrong_part(mpx_stage_t *st, const mpx_item_t *it, const char *expected)
{
    if (mpx_item_parts(it) == 0)
        return mpx_fail(st, "expected %s in part 0, but the item has no part", expected);
    return mpx_fail(st, "expected %s in part 0, got %zu bytes", expected, mpx_item_size(it, 0));
}

/* The current meta is still the input's, so mpx_put_item passes the item
 * on whole. */
static int pass_if(mpx_stage_t *st, mpx_item_t *it, bool keep)
{
    return keep ? mpx_put_item(st, it) : 0;
}

static int filter_i64(mpx_stage_t *st, mpx_item_t *it)
{
    const filter_args_t *a = mpx_args(st);
    int64_t v;
    if (mpx_item_get_i64(it, 0, &v) != 0)
        return wrong_part(st, it, "an 8-byte integer");
    return pass_if(st, it, a->with_ctx ? a->p.i64_ctx(v, a->ctx) : a->p.i64(v));
}

static int filter_f64(mpx_stage_t *st, mpx_item_t *it)
{
    const filter_args_t *a = mpx_args(st);
    double v;
    if (mpx_item_get_f64(it, 0, &v) != 0)
        return wrong_part(st, it, "an 8-byte double");
    return pass_if(st, it, a->with_ctx ? a->p.f64_ctx(v, a->ctx) : a->p.f64(v));
}

static int filter_str(mpx_stage_t *st, mpx_item_t *it)
{
    const filter_args_t *a = mpx_args(st);
    const char *s = mpx_item_str(it);
    return pass_if(st, it, a->with_ctx ? a->p.str_ctx(s, a->ctx) : a->p.str(s));
}

static int filter_item(mpx_stage_t *st, mpx_item_t *it)
{
    const filter_args_t *a = mpx_args(st);
    return pass_if(st, it, a->with_ctx ? a->p.item_ctx(it, a->ctx) : a->p.item(it));
}

static const mpx_stage_def_t filter_i64_def = {
    .name = "filter", .args_size = sizeof(filter_args_t), .process = filter_i64};
static const mpx_stage_def_t filter_f64_def = {
    .name = "filter", .args_size = sizeof(filter_args_t), .process = filter_f64};
static const mpx_stage_def_t filter_str_def = {
    .name = "filter", .args_size = sizeof(filter_args_t), .process = filter_str};
static const mpx_stage_def_t filter_item_def = {
    .name = "filter", .args_size = sizeof(filter_args_t), .process = filter_item};

/* `p_given` is the predicate as the caller passed it, checked here since a
 * NULL one in the union would only crash the stage process. */
static mpx_node_t *make(const char *caller, const char *name, const mpx_stage_def_t *def,
                        const filter_args_t *a, bool p_given)
{
    if (!p_given)
        return mpx_invalid("%s '%s': the predicate is NULL", caller, name ? name : "filter");
    mpx_node_t *n = mpx_stage(def, a);
    if (n && name && name[0] && mpx_node_set_name(n, name) != 0)
        mpx_node_destroy(&n); /* only out of memory: NULL says so */
    return n;
}

mpx_node_t *mpx_filter_i64(const char *name, bool (*p)(int64_t))
{
    return make("mpx_filter_i64", name, &filter_i64_def, &(filter_args_t){.p.i64 = p}, p != NULL);
}

mpx_node_t *mpx_filter_f64(const char *name, bool (*p)(double))
{
    return make("mpx_filter_f64", name, &filter_f64_def, &(filter_args_t){.p.f64 = p}, p != NULL);
}

mpx_node_t *mpx_filter_str(const char *name, bool (*p)(const char *))
{
    return make("mpx_filter_str", name, &filter_str_def, &(filter_args_t){.p.str = p}, p != NULL);
}

mpx_node_t *mpx_filter_item(const char *name, bool (*p)(const mpx_item_t *))
{
    return make("mpx_filter_item", name, &filter_item_def, &(filter_args_t){.p.item = p},
                p != NULL);
}

mpx_node_t *mpx_filter_i64_ctx(const char *name, bool (*p)(int64_t, void *), void *ctx)
{
    return make("mpx_filter_i64_ctx", name, &filter_i64_def,
                &(filter_args_t){.p.i64_ctx = p, .ctx = ctx, .with_ctx = true}, p != NULL);
}

mpx_node_t *mpx_filter_f64_ctx(const char *name, bool (*p)(double, void *), void *ctx)
{
    return make("mpx_filter_f64_ctx", name, &filter_f64_def,
                &(filter_args_t){.p.f64_ctx = p, .ctx = ctx, .with_ctx = true}, p != NULL);
}

mpx_node_t *mpx_filter_str_ctx(const char *name, bool (*p)(const char *, void *), void *ctx)
{
    return make("mpx_filter_str_ctx", name, &filter_str_def,
                &(filter_args_t){.p.str_ctx = p, .ctx = ctx, .with_ctx = true}, p != NULL);
}

mpx_node_t *mpx_filter_item_ctx(const char *name, bool (*p)(const mpx_item_t *, void *),
                                void *ctx)
{
    return make("mpx_filter_item_ctx", name, &filter_item_def,
                &(filter_args_t){.p.item_ctx = p, .ctx = ctx, .with_ctx = true}, p != NULL);
}
