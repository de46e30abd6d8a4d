/* builtins/map.c — Map: a plain function of part 0 (an integer as int,
 * long, long long or int64_t; a double; a C string), with or without a
 * context pointer, as a stage putting one item per input with the input's
 * meta.  mpx_fn_i64/mpx_fn_f64 are built on it. */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "mpx.h"
#include "graph/i64map.h"

/* MPX_MAP reaches an int64_t function through its long or long long
 * association (map.h): that holds only if int64_t is one of the two. */
_Static_assert(_Generic((int64_t)0, long: 1, long long: 1, default: 0),
               "int64_t is neither long nor long long: MPX_MAP cannot select its functions");

/* The C type an integer function takes: each is called through a pointer
 * of its own type, the only defined way, even where two of them (int64_t
 * and long, say) are the same size. */
typedef enum map_int_kind { MAP_INT, MAP_LONG, MAP_LLONG, MAP_I64 } map_int_kind_t;

typedef struct map_args {
    union { /* i, l, ll: int, long, long long */
        int (*i)(int);
        long (*l)(long);
        long long (*ll)(long long);
        int64_t (*i64)(int64_t);
        double (*f64)(double);
        char *(*str)(const char *);
        int (*i_ctx)(int, void *);
        long (*l_ctx)(long, void *);
        long long (*ll_ctx)(long long, void *);
        int64_t (*i64_ctx)(int64_t, void *);
        double (*f64_ctx)(double, void *);
        char *(*str_ctx)(const char *, void *);
    } fn;
    void *ctx;
    bool with_ctx;
    map_int_kind_t kind; /* integer maps */
} map_args_t;

static int wrong_part(mpx_stage_t *st, const mpx_item_t *it, const char *expected)
{
    if (mpx_item_parts(it) == 0)
        return mpx_fail(st, "expected %s in part 0, but the item has no part", expected);
    return mpx_fail(st, "expected %s in part 0, got %zu bytes", expected, mpx_item_size(it, 0));
}

/* A value the function's parameter cannot hold fails the run rather than
 * reach the function truncated.  Bounds as int64_t arguments, so that the
 * comparisons are not "always false" where long is 64 bits. */
static bool fits(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; }

#define CALL(a, member, x)                                                     \
    ((a)->with_ctx ? (a)->fn.member##_ctx((x), (a)->ctx) : (a)->fn.member(x))

/* The function of an 8-byte value, as map_int calls it and as the stage
 * loop does for the values of a run (graph/i64map.h): false, having
 * called nothing, for a value the function's parameter cannot hold. */
static bool apply_int(const void *args, uint64_t bits, uint64_t *out)
{
    const map_args_t *a = args;
    int64_t v, r;
    memcpy(&v, &bits, 8);
    switch (a->kind) {
    case MAP_INT:
        if (!fits(v, INT_MIN, INT_MAX))
            return false;
        r = CALL(a, i, (int)v);
        break;
    case MAP_LONG:
        if (!fits(v, LONG_MIN, LONG_MAX))
            return false;
        r = CALL(a, l, (long)v);
        break;
    case MAP_LLONG:
        r = CALL(a, ll, (long long)v);
        break;
    default: /* MAP_I64 */
        r = CALL(a, i64, v);
        break;
    }
    memcpy(out, &r, 8);
    return true;
}

/* Each put below carries the current meta, which during process is the
 * input's: that is how Map keeps it. */
static int map_int(mpx_stage_t *st, mpx_item_t *it)
{
    const map_args_t *a = mpx_args(st);
    int64_t v;
    if (mpx_item_get_i64(it, 0, &v) != 0)
        return wrong_part(st, it, "an 8-byte integer");
    uint64_t bits, r;
    memcpy(&bits, &v, 8);
    if (!apply_int(a, bits, &r))
        return mpx_fail(st,
                        "input %" PRId64 " is outside the range of %s, which the function takes",
                        v, a->kind == MAP_INT ? "int" : "long");
    int64_t out;
    memcpy(&out, &r, 8);
    return mpx_put_i64(st, out);
}

static int map_f64(mpx_stage_t *st, mpx_item_t *it)
{
    const map_args_t *a = mpx_args(st);
    double v;
    if (mpx_item_get_f64(it, 0, &v) != 0)
        return wrong_part(st, it, "an 8-byte double");
    return mpx_put_f64(st, CALL(a, f64, v));
}

static int map_str(mpx_stage_t *st, mpx_item_t *it)
{
    const map_args_t *a = mpx_args(st);
    char *out = CALL(a, str, mpx_item_str(it));
    if (!out)
        return mpx_fail(st, "the function returned NULL");
    int rc = mpx_put_str(st, out);
    free(out);
    return rc;
}

/* map_f64's function of an 8-byte value, for the stage loop's runs. */
static bool apply_f64(const void *args, uint64_t bits, uint64_t *out)
{
    const map_args_t *a = args;
    double v;
    memcpy(&v, &bits, 8);
    double r = CALL(a, f64, v);
    memcpy(out, &r, 8);
    return true;
}

static const mpx_stage_def_t map_int_def = {
    .name = "map", .args_size = sizeof(map_args_t), .process = map_int};
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
    mpx_node_t *n = def == &map_int_def   ? i64map_stage(def, a, apply_int)
                    : def == &map_f64_def ? i64map_stage(def, a, apply_f64)
                                          : mpx_stage(def, a);
    if (n && name && name[0] && mpx_node_set_name(n, name) != 0)
        mpx_node_destroy(&n); /* only out of memory: NULL says so */
    return n;
}

mpx_node_t *mpx_map_int(const char *name, int (*f)(int))
{
    return make("mpx_map_int", name, &map_int_def,
                &(map_args_t){.fn.i = f, .kind = MAP_INT}, f != NULL);
}

mpx_node_t *mpx_map_long(const char *name, long (*f)(long))
{
    return make("mpx_map_long", name, &map_int_def,
                &(map_args_t){.fn.l = f, .kind = MAP_LONG}, f != NULL);
}

mpx_node_t *mpx_map_llong(const char *name, long long (*f)(long long))
{
    return make("mpx_map_llong", name, &map_int_def,
                &(map_args_t){.fn.ll = f, .kind = MAP_LLONG}, f != NULL);
}

mpx_node_t *mpx_map_i64(const char *name, int64_t (*f)(int64_t))
{
    return make("mpx_map_i64", name, &map_int_def,
                &(map_args_t){.fn.i64 = f, .kind = MAP_I64}, f != NULL);
}

mpx_node_t *mpx_map_f64(const char *name, double (*f)(double))
{
    return make("mpx_map_f64", name, &map_f64_def, &(map_args_t){.fn.f64 = f}, f != NULL);
}

mpx_node_t *mpx_map_str(const char *name, char *(*f)(const char *))
{
    return make("mpx_map_str", name, &map_str_def, &(map_args_t){.fn.str = f}, f != NULL);
}

mpx_node_t *mpx_map_int_ctx(const char *name, int (*f)(int, void *), void *ctx)
{
    return make("mpx_map_int_ctx", name, &map_int_def,
                &(map_args_t){.fn.i_ctx = f, .ctx = ctx, .with_ctx = true, .kind = MAP_INT},
                f != NULL);
}

mpx_node_t *mpx_map_long_ctx(const char *name, long (*f)(long, void *), void *ctx)
{
    return make("mpx_map_long_ctx", name, &map_int_def,
                &(map_args_t){.fn.l_ctx = f, .ctx = ctx, .with_ctx = true, .kind = MAP_LONG},
                f != NULL);
}

mpx_node_t *mpx_map_llong_ctx(const char *name, long long (*f)(long long, void *), void *ctx)
{
    return make("mpx_map_llong_ctx", name, &map_int_def,
                &(map_args_t){.fn.ll_ctx = f, .ctx = ctx, .with_ctx = true, .kind = MAP_LLONG},
                f != NULL);
}

mpx_node_t *mpx_map_i64_ctx(const char *name, int64_t (*f)(int64_t, void *), void *ctx)
{
    return make("mpx_map_i64_ctx", name, &map_int_def,
                &(map_args_t){.fn.i64_ctx = f, .ctx = ctx, .with_ctx = true, .kind = MAP_I64},
                f != NULL);
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
