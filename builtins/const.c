/* builtins/const.c — Const: one source putting the same one-part item a
 * given number of times, or until it is stopped.  The value is copied into
 * the node's args, so the caller's buffer may go away after the call. */
#include <string.h>

#include "graph/source.h"
#include "mpx.h"

typedef struct const_args {
    source_opts_t opts; /* first: mpx_node_set_index writes it */
    uint64_t limit; /* 0: no limit */
    size_t size;
    unsigned char data[MPX_CONST_MAX];
} const_args_t;

static int const_setup(mpx_stage_t *st)
{
    const const_args_t *a = mpx_args(st);
    const bool index = a->opts.index;
    int rc;
    for (uint64_t i = 0; a->limit == 0 || i < a->limit; i++)
        if ((rc = source_index(st, index, i)) != 0 || (rc = mpx_put(st, a->data, a->size)) != 0)
            return rc; /* MPX_ESTOPPED ends an endless Const cleanly */
    return mpx_stop(st);
}

static const mpx_stage_def_t const_def = {
    .name = "const", .args_size = sizeof(const_args_t), .setup = const_setup};

/* `caller` names the public function in refusals, so the user sees which
 * call was wrong. */
static mpx_node_t *make(const char *caller, const void *data, size_t size, uint64_t limit)
{
    if (!data && size > 0)
        return mpx_invalid("%s: data is NULL but size is %zu", caller, size);
    if (size > MPX_CONST_MAX)
        return mpx_invalid("%s: the value is %zu bytes, more than MPX_CONST_MAX (%d)", caller,
                           size, MPX_CONST_MAX);
    const_args_t a = {.limit = limit, .size = size};
    if (size > 0)
        memcpy(a.data, data, size);
    return source_stage(&const_def, &a);
}

mpx_node_t *mpx_const(const void *data, size_t size, uint64_t limit)
{
    return make("mpx_const", data, size, limit);
}

mpx_node_t *mpx_const_i64(int64_t value, uint64_t limit)
{
    return make("mpx_const_i64", &value, sizeof value, limit);
}

mpx_node_t *mpx_const_str(const char *s, uint64_t limit)
{
    if (!s)
        return mpx_invalid("mpx_const_str: the string is NULL");
    /* Same bytes as mpx_put_str(): the string without its NUL. */
    return make("mpx_const_str", s, strlen(s), limit);
}
