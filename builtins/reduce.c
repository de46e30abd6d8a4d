/* builtins/reduce.c — Reduce: fold every input into an accumulator and put
 * it once at teardown; Count and Sum are Reduce stages with a built-in
 * function.  Each instance folds only the items it received. */
#include <inttypes.h>
#include <string.h>

#include "mpx.h"

/* The union gives the accumulator the 8-byte alignment reduce.h promises,
 * so a function may cast it to int64_t * or double *. */
typedef union reduce_acc {
    uint64_t align;
    double d;
    unsigned char bytes[MPX_REDUCE_MAX];
} reduce_acc_t;

typedef struct reduce_args {
    mpx_reduce_fn fn;
    void *ctx;
    size_t acc_size;
    /* When part0_size > 0, every item's part 0 must be that size; the
     * failure then says what was expected rather than just that fn
     * failed (Sum's functions have no stage to report through). */
    size_t part0_size;
    const char *part0_what;
    reduce_acc_t init;
} reduce_args_t;

typedef struct reduce_state {
    reduce_acc_t acc;
    uint64_t items;
} reduce_state_t;

/* In the parent before fork: no setup, so that a Reduce at the start of a
 * graph is refused instead of putting its init as a result. */
static int reduce_initialize(mpx_stage_t *st)
{
    const reduce_args_t *a = mpx_args(st);
    reduce_state_t *s = mpx_state(st);
    memcpy(s->acc.bytes, a->init.bytes, a->acc_size);
    return 0;
}

static int reduce_process(mpx_stage_t *st, mpx_item_t *it)
{
    const reduce_args_t *a = mpx_args(st);
    reduce_state_t *s = mpx_state(st);
    s->items++;
    if (a->part0_size > 0 && (mpx_item_parts(it) == 0 || mpx_item_size(it, 0) != a->part0_size))
        return mpx_fail(st, "item %" PRIu64 ": expected %s in part 0, got %zu bytes", s->items,
                        a->part0_what, mpx_item_size(it, 0));
    int rc = a->fn(s->acc.bytes, it, a->ctx);
    if (rc != 0)
        return mpx_fail(st, "the reduce function failed (returned %d) on item %" PRIu64, rc,
                        s->items);
    return 0;
}

static int reduce_teardown(mpx_stage_t *st)
{
    const reduce_args_t *a = mpx_args(st);
    reduce_state_t *s = mpx_state(st);
    return mpx_put(st, s->acc.bytes, a->acc_size);
}

static const mpx_stage_def_t reduce_def = {
    .name = "reduce",
    .args_size = sizeof(reduce_args_t),
    .state_size = sizeof(reduce_state_t),
    .initialize = reduce_initialize,
    .process = reduce_process,
    .teardown = reduce_teardown,
};

static mpx_node_t *make(const char *caller, const char *name, mpx_reduce_fn fn, const void *init,
                        size_t acc_size, void *ctx, size_t part0_size, const char *part0_what)
{
    const char *shown = name ? name : "reduce";
    if (!fn)
        return mpx_invalid("%s '%s': the function is NULL", caller, shown);
    if (acc_size == 0)
        return mpx_invalid("%s '%s': acc_size must be at least 1", caller, shown);
    if (acc_size > MPX_REDUCE_MAX)
        return mpx_invalid("%s '%s': acc_size is %zu, more than MPX_REDUCE_MAX (%d)", caller,
                           shown, acc_size, MPX_REDUCE_MAX);
    if (!init)
        return mpx_invalid("%s '%s': init is NULL", caller, shown);
    reduce_args_t a = {.fn = fn, .ctx = ctx, .acc_size = acc_size, .part0_size = part0_size,
                       .part0_what = part0_what};
    memcpy(a.init.bytes, init, acc_size);
    mpx_node_t *n = mpx_stage(&reduce_def, &a);
    if (n && name && name[0] && mpx_node_set_name(n, name) != 0)
        mpx_node_destroy(&n); /* only out of memory: NULL says so */
    return n;
}

mpx_node_t *mpx_reduce(const char *name, mpx_reduce_fn fn, const void *init, size_t acc_size,
                       void *ctx)
{
    return make("mpx_reduce", name, fn, init, acc_size, ctx, 0, NULL);
}

static int count_fn(void *acc, const mpx_item_t *it, void *ctx)
{
    (void)it;
    (void)ctx;
    *(int64_t *)acc += 1;
    return 0;
}

static int sum_i64_fn(void *acc, const mpx_item_t *it, void *ctx)
{
    (void)ctx;
    int64_t *sum = acc, v;
    if (mpx_item_get_i64(it, 0, &v) != 0)
        return -1;
    /* Wraps modulo 2^64 rather than overflowing (undefined for int64). */
    *sum = (int64_t)((uint64_t)*sum + (uint64_t)v);
    return 0;
}

static int sum_f64_fn(void *acc, const mpx_item_t *it, void *ctx)
{
    (void)ctx;
    double *sum = acc, v;
    if (mpx_item_get_f64(it, 0, &v) != 0)
        return -1;
    *sum += v;
    return 0;
}

mpx_node_t *mpx_count(void)
{
    return make("mpx_count", "count", count_fn, &(int64_t){0}, sizeof(int64_t), NULL, 0, NULL);
}

mpx_node_t *mpx_sum_i64(void)
{
    return make("mpx_sum_i64", "sum", sum_i64_fn, &(int64_t){0}, sizeof(int64_t), NULL,
                sizeof(int64_t), "an 8-byte integer");
}

mpx_node_t *mpx_sum_f64(void)
{
    return make("mpx_sum_f64", "sum", sum_f64_fn, &(double){0}, sizeof(double), NULL,
                sizeof(double), "an 8-byte double");
}
