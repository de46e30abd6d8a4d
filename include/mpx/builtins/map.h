/* mpx/builtins/map.h — Map and Filter for plain functions.
 *
 * A one-line function is all it takes; the stage is named after it.
 * Map puts one item per input, keeping the input's meta; Filter passes the
 * items for which the predicate holds, unchanged.  The _CTX forms pass a
 * context pointer as the last argument (the stage processes inherit what
 * it points to at start).
 *
 *     static int64_t square(int64_t x) { return x * x; }
 *     static bool odd(int64_t x) { return x % 2; }
 *     static bool has_error(const char *line) { return strstr(line, "ERROR"); }
 *     MPX_EZ(mpx_range(0, 100, 1), MPX_FILTER(odd), MPX_MAP(square), mpx_print(NULL))
 *
 * Typed forms read part 0 of the input: an int64 or a double (8 bytes:
 * any other size fails the run, naming the stage), or a C string.  A
 * string map returns a string from malloc, which the stage frees, or NULL
 * to fail the run.  A NULL or empty name names the stage "map" or
 * "filter"; a NULL function is refused by the graph check.
 */
#ifndef MPX_BUILTINS_MAP_H
#define MPX_BUILTINS_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

mpx_node_t *mpx_map_i64(const char *name, int64_t (*f)(int64_t));
mpx_node_t *mpx_map_f64(const char *name, double (*f)(double));
mpx_node_t *mpx_map_str(const char *name, char *(*f)(const char *));
mpx_node_t *mpx_map_i64_ctx(const char *name, int64_t (*f)(int64_t, void *), void *ctx);
mpx_node_t *mpx_map_f64_ctx(const char *name, double (*f)(double, void *), void *ctx);
mpx_node_t *mpx_map_str_ctx(const char *name, char *(*f)(const char *, void *), void *ctx);

mpx_node_t *mpx_filter_i64(const char *name, bool (*p)(int64_t));
mpx_node_t *mpx_filter_f64(const char *name, bool (*p)(double));
mpx_node_t *mpx_filter_str(const char *name, bool (*p)(const char *));
mpx_node_t *mpx_filter_item(const char *name, bool (*p)(const mpx_item_t *));
mpx_node_t *mpx_filter_i64_ctx(const char *name, bool (*p)(int64_t, void *), void *ctx);
mpx_node_t *mpx_filter_f64_ctx(const char *name, bool (*p)(double, void *), void *ctx);
mpx_node_t *mpx_filter_str_ctx(const char *name, bool (*p)(const char *, void *), void *ctx);
mpx_node_t *mpx_filter_item_ctx(const char *name, bool (*p)(const mpx_item_t *, void *), void *ctx);

#define MPX_MAP(f)                                                             \
    _Generic((f),                                                              \
        int64_t (*)(int64_t): mpx_map_i64,                                     \
        double (*)(double): mpx_map_f64,                                       \
        char *(*)(const char *): mpx_map_str)(#f, (f))

#define MPX_MAP_CTX(f, ctx)                                                    \
    _Generic((f),                                                              \
        int64_t (*)(int64_t, void *): mpx_map_i64_ctx,                         \
        double (*)(double, void *): mpx_map_f64_ctx,                           \
        char *(*)(const char *, void *): mpx_map_str_ctx)(#f, (f), (ctx))

#define MPX_FILTER(p)                                                          \
    _Generic((p),                                                              \
        bool (*)(int64_t): mpx_filter_i64,                                     \
        bool (*)(double): mpx_filter_f64,                                      \
        bool (*)(const char *): mpx_filter_str,                                \
        bool (*)(const mpx_item_t *): mpx_filter_item)(#p, (p))

#define MPX_FILTER_CTX(p, ctx)                                                 \
    _Generic((p),                                                              \
        bool (*)(int64_t, void *): mpx_filter_i64_ctx,                         \
        bool (*)(double, void *): mpx_filter_f64_ctx,                          \
        bool (*)(const char *, void *): mpx_filter_str_ctx,                    \
        bool (*)(const mpx_item_t *, void *): mpx_filter_item_ctx)(#p, (p), (ctx))

#ifdef __cplusplus
}
#endif
#endif
