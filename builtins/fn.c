/* builtins/fn.c — a plain C function as a stage (MPX_FN).  The process
 * form's pointer travels in the stage's args (the child inherits it by
 * fork); the typed forms are Map stages (map.c) named "fn" by default. */
#include "mpx.h"

typedef struct fn_args {
    mpx_process_fn process;
} fn_args_t;

static int fn_process(mpx_stage_t *st, mpx_item_t *it)
{
    const fn_args_t *a = mpx_args(st);
    return a->process(st, it);
}

static const mpx_stage_def_t fn_def = {
    .name = "fn", .args_size = sizeof(fn_args_t), .process = fn_process};
/* What a NULL function becomes, whatever the form: a stage the graph check
 * refuses ("has neither setup nor process"). */
static const mpx_stage_def_t fn_null_def = {.name = "fn (NULL function)"};

mpx_node_t *mpx_fn(const char *name, mpx_process_fn fn)
{
    if (!fn)
        return mpx_stage(&fn_null_def, NULL);
    mpx_node_t *n = mpx_stage(&fn_def, &(fn_args_t){fn});
    if (n && name && mpx_node_set_name(n, name) != 0)
        mpx_node_destroy(&n); /* out of memory: the enclosing group reports the NULL */
    return n;
}

mpx_node_t *mpx_fn_i64(const char *name, int64_t (*fn)(int64_t))
{
    return fn ? mpx_map_i64(name && name[0] ? name : "fn", fn) : mpx_stage(&fn_null_def, NULL);
}

mpx_node_t *mpx_fn_f64(const char *name, double (*fn)(double))
{
    return fn ? mpx_map_f64(name && name[0] ? name : "fn", fn) : mpx_stage(&fn_null_def, NULL);
}
