/* builtins/filter.c — Filter: a predicate on part 0 (an integer as int,
 * long, long long or int64_t; a double; a C string) or on the whole item,
 * with or without a context pointer, as a stage passing on unchanged
 * (parts and meta) the items it holds for. */
#include <inttypes.h>
#include <limits.h>

#include "mpx.h"

/* The C type an integer predicate takes: each is called through a pointer
 * of its own type (see map.c). */
typedef enum filter_int_kind {
    FILTER_INT,
    FILTER_LONG,
    FILTER_LLONG,
    FILTER_I64
} filter_int_kind_t;

typedef struct filter_args {
    union { /* i, l, ll: int, long, long long */
        bool (*i)(int);
        bool (*l)(long);
        bool (*ll)(long long);
        bool (*i64)(int64_t);
        bool (*f64)(double);
        bool (*str)(const char *);
        bool (*item)(const mpx_item_t *);
        bool (*i_ctx)(int, void *);
        bool (*l_ctx)(long, void *);
        bool (*ll_ctx)(long long, void *);
        bool (*i64_ctx)(int64_t, void *);
        bool (*f64_ctx)(double, void *);
        bool (*str_ctx)(const char *, void *);
        bool (*item_ctx)(const mpx_item_t *, void *);
    } p;
    void *ctx;
    bool with_ctx;
    filter_int_kind_t kind; /* integer predicates */
} filter_args_t;

static int wrong_part(mpx_stage_t *st, const mpx_item_t *it, const char *expected)
{
    if (mpx_item_parts(it) == 0)
        return mpx_fail(st, "expected %s in part 0, but the item has no part", expected);
    return mpx_fail(st, "expected %s in part 0, got %zu bytes", expected, mpx_item_size(it, 0));
}

/* As in map.c: a value the parameter cannot hold fails the run. */
static bool fits(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; }

#define CALL(a, member, x)                                                     \
    ((a)->with_ctx ? (a)->p.member##_ctx((x), (a)->ctx) : (a)->p.member(x))

/* The current meta is still the input's, so mpx_put_item passes the item
 * on whole. */
static int pass_if(mpx_stage_t *st, mpx_item_t *it, bool keep)
{
    return keep ? mpx_put_item(st, it) : 0;
}

static int filter_int(mpx_stage_t *st, mpx_item_t *it)
{
    const filter_args_t *a = mpx_args(st);
    int64_t v;
    bool keep;
    if (mpx_item_get_i64(it, 0, &v) != 0)
        return wrong_part(st, it, "an 8-byte integer");
    switch (a->kind) {
    case FILTER_INT:
        if (!fits(v, INT_MIN, INT_MAX))
            return mpx_fail(st, "input %" PRId64 " is outside the range of int, which the "
                                "predicate takes",
                            v);
        keep = CALL(a, i, (int)v);
        break;
    case FILTER_LONG:
        if (!fits(v, LONG_MIN, LONG_MAX))
            return mpx_fail(st, "input %" PRId64 " is outside the range of long, which the "
                                "predicate takes",
                            v);
        keep = CALL(a, l, (long)v);
        break;
    case FILTER_LLONG:
        keep = CALL(a, ll, (long long)v);
        break;
    default: /* FILTER_I64 */
        keep = CALL(a, i64, v);
        break;
    }
    return pass_if(st, it, keep);
}

static int filter_f64(mpx_stage_t *st, mpx_item_t *it)
{
    const filter_args_t *a = mpx_args(st);
    double v;
    if (mpx_item_get_f64(it, 0, &v) != 0)
        return wrong_part(st, it, "an 8-byte double");
    return pass_if(st, it, CALL(a, f64, v));
}

static int filter_str(mpx_stage_t *st, mpx_item_t *it)
{
    const filter_args_t *a = mpx_args(st);
    return pass_if(st, it, CALL(a, str, mpx_item_str(it)));
}

static int filter_item(mpx_stage_t *st, mpx_item_t *it)
{
    const filter_args_t *a = mpx_args(st);
    return pass_if(st, it, CALL(a, item, it));
}

static const mpx_stage_def_t filter_int_def = {
    .name = "filter", .args_size = sizeof(filter_args_t), .process = filter_int};
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

mpx_node_t *mpx_filter_int(const char *name, bool (*p)(int))
{
    return make("mpx_filter_int", name, &filter_int_def,
                &(filter_args_t){.p.i = p, .kind = FILTER_INT}, p != NULL);
}

mpx_node_t *mpx_filter_long(const char *name, bool (*p)(long))
{
    return make("mpx_filter_long", name, &filter_int_def,
                &(filter_args_t){.p.l = p, .kind = FILTER_LONG}, p != NULL);
}

mpx_node_t *mpx_filter_llong(const char *name, bool (*p)(long long))
{
    return make("mpx_filter_llong", name, &filter_int_def,
                &(filter_args_t){.p.ll = p, .kind = FILTER_LLONG}, p != NULL);
}

mpx_node_t *mpx_filter_i64(const char *name, bool (*p)(int64_t))
{
    return make("mpx_filter_i64", name, &filter_int_def,
                &(filter_args_t){.p.i64 = p, .kind = FILTER_I64}, p != NULL);
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

mpx_node_t *mpx_filter_int_ctx(const char *name, bool (*p)(int, void *), void *ctx)
{
    return make("mpx_filter_int_ctx", name, &filter_int_def,
                &(filter_args_t){.p.i_ctx = p, .ctx = ctx, .with_ctx = true, .kind = FILTER_INT},
                p != NULL);
}

mpx_node_t *mpx_filter_long_ctx(const char *name, bool (*p)(long, void *), void *ctx)
{
    return make("mpx_filter_long_ctx", name, &filter_int_def,
                &(filter_args_t){.p.l_ctx = p, .ctx = ctx, .with_ctx = true, .kind = FILTER_LONG},
                p != NULL);
}

mpx_node_t *mpx_filter_llong_ctx(const char *name, bool (*p)(long long, void *), void *ctx)
{
    return make("mpx_filter_llong_ctx", name, &filter_int_def,
                &(filter_args_t){.p.ll_ctx = p, .ctx = ctx, .with_ctx = true,
                                 .kind = FILTER_LLONG},
                p != NULL);
}

mpx_node_t *mpx_filter_i64_ctx(const char *name, bool (*p)(int64_t, void *), void *ctx)
{
    return make("mpx_filter_i64_ctx", name, &filter_int_def,
                &(filter_args_t){.p.i64_ctx = p, .ctx = ctx, .with_ctx = true, .kind = FILTER_I64},
                p != NULL);
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
