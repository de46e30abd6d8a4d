/* mpx/builtins/fn.h — a plain C function as a stage.
 *
 * MPX_FN(f) makes a one-instance stage named after f from any of:
 *
 *     int     f(mpx_stage_t *st, mpx_item_t *item)   called per item; puts
 *                                                    what it likes
 *     int64_t f(int64_t x)                           maps part 0 as i64
 *     double  f(double x)                            maps part 0 as f64
 *
 * The typed forms put one item per input, keeping its meta.
 *
 *     static int64_t twice(int64_t x) { return 2 * x; }
 *     mpx_run(MPX_EZ(src, MPX_FN(twice), mpx_print(NULL)));
 */
#ifndef MPX_BUILTINS_FN_H
#define MPX_BUILTINS_FN_H

#include <stdint.h>

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*mpx_process_fn)(mpx_stage_t *st, mpx_item_t *item);

mpx_node_t *mpx_fn(const char *name, mpx_process_fn fn);
mpx_node_t *mpx_fn_i64(const char *name, int64_t (*fn)(int64_t));
mpx_node_t *mpx_fn_f64(const char *name, double (*fn)(double));

#define MPX_FN(f)                                                              \
    _Generic((f),                                                              \
        int (*)(mpx_stage_t *, mpx_item_t *): mpx_fn,                          \
        int64_t (*)(int64_t): mpx_fn_i64,                                      \
        double (*)(double): mpx_fn_f64)(#f, (f))

#ifdef __cplusplus
}
#endif
#endif
