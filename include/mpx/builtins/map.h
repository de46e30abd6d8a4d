/* mpx/builtins/map.h — Map and Filter for plain functions.
 *
 * A one-line function is all it takes; the stage is named after it.
 * Map puts one item per input, keeping the input's meta; Filter passes the
 * items for which the predicate holds, unchanged.  The _CTX forms pass a
 * context pointer as the last argument (the stage processes inherit what
 * it points to at start).
 *
 *     static int square(int x) { return x * x; }
 *     static bool odd(long x) { return x % 2; }
 *     static bool has_error(const char *line) { return strstr(line, "ERROR"); }
 *     MPX_EZ(mpx_range(0, 100, 1), MPX_FILTER(odd), MPX_MAP(square), mpx_print(NULL))
 *
 * The function (or predicate) takes one of
 *
 *     int, long, long long, int64_t   part 0 as an 8-byte integer (int64_t
 *                                     is long or long long, whichever it
 *                                     is on the platform)
 *     double                          part 0 as an 8-byte double
 *     const char *                    part 0 as a C string
 *     const mpx_item_t *              the whole item (Filter only)
 *
 * and, in the _CTX forms, a void * after it.  Map's integer functions
 * return their own type and the result is put as an int64; a double
 * function returns a double; a string function returns char *, a string
 * from malloc that the stage frees, or NULL to fail the run.  A predicate
 * returns bool.
 *
 * A part 0 that should be 8 bytes and is not fails the run, naming the
 * stage.  So does an integer that the function's type cannot hold: an int
 * function given 3000000000 fails the run with "input 3000000000 is
 * outside the range of int" rather than see a truncated value.
 *
 * A function of any other type does not compile: the error is a static
 * assertion naming the macro and the types above.  The functions below
 * are what the macros call; a NULL or empty name names the stage "map" or
 * "filter", and a NULL function is refused by the graph check.
 */
#ifndef MPX_BUILTINS_MAP_H
#define MPX_BUILTINS_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

mpx_node_t *mpx_map_int(const char *name, int (*f)(int));
mpx_node_t *mpx_map_long(const char *name, long (*f)(long));
mpx_node_t *mpx_map_llong(const char *name, long long (*f)(long long));
mpx_node_t *mpx_map_i64(const char *name, int64_t (*f)(int64_t));
mpx_node_t *mpx_map_f64(const char *name, double (*f)(double));
mpx_node_t *mpx_map_str(const char *name, char *(*f)(const char *));
mpx_node_t *mpx_map_int_ctx(const char *name, int (*f)(int, void *), void *ctx);
mpx_node_t *mpx_map_long_ctx(const char *name, long (*f)(long, void *), void *ctx);
mpx_node_t *mpx_map_llong_ctx(const char *name, long long (*f)(long long, void *), void *ctx);
mpx_node_t *mpx_map_i64_ctx(const char *name, int64_t (*f)(int64_t, void *), void *ctx);
mpx_node_t *mpx_map_f64_ctx(const char *name, double (*f)(double, void *), void *ctx);
mpx_node_t *mpx_map_str_ctx(const char *name, char *(*f)(const char *, void *), void *ctx);

mpx_node_t *mpx_filter_int(const char *name, bool (*p)(int));
mpx_node_t *mpx_filter_long(const char *name, bool (*p)(long));
mpx_node_t *mpx_filter_llong(const char *name, bool (*p)(long long));
mpx_node_t *mpx_filter_i64(const char *name, bool (*p)(int64_t));
mpx_node_t *mpx_filter_f64(const char *name, bool (*p)(double));
mpx_node_t *mpx_filter_str(const char *name, bool (*p)(const char *));
mpx_node_t *mpx_filter_item(const char *name, bool (*p)(const mpx_item_t *));
mpx_node_t *mpx_filter_int_ctx(const char *name, bool (*p)(int, void *), void *ctx);
mpx_node_t *mpx_filter_long_ctx(const char *name, bool (*p)(long, void *), void *ctx);
mpx_node_t *mpx_filter_llong_ctx(const char *name, bool (*p)(long long, void *), void *ctx);
mpx_node_t *mpx_filter_i64_ctx(const char *name, bool (*p)(int64_t, void *), void *ctx);
mpx_node_t *mpx_filter_f64_ctx(const char *name, bool (*p)(double, void *), void *ctx);
mpx_node_t *mpx_filter_str_ctx(const char *name, bool (*p)(const char *, void *), void *ctx);
mpx_node_t *mpx_filter_item_ctx(const char *name, bool (*p)(const mpx_item_t *, void *),
                                void *ctx);

/* The macros select by the function's type among int, long and long long
 * only: int64_t is one of the last two, and naming it as well would be a
 * duplicate association, an error, wherever it is.  Anything else selects
 * the default, which first fails a static assertion that names the macro
 * and lists what it accepts (a plain _Generic would only say that the
 * selector's type matches no association).  The assertion is a member
 * declaration of a struct inside sizeof: that is how C11 puts one in an
 * expression, and gcc and clang both print its message.  The default's
 * null function pointer is never called, since nothing compiles once the
 * assertion fails. */
#define MPX__ACCEPTS(accepted, msg, call)                                      \
    ((void)sizeof(struct { _Static_assert(accepted, msg); int mpx__ok; }), call)
#define MPX__REJECTED ((mpx_node_t * (*)(const char *, ...))0)

#define MPX_MAP(f)                                                             \
    MPX__ACCEPTS(                                                              \
        _Generic((f), int (*)(int): 1, long (*)(long): 1,                      \
                 long long (*)(long long): 1, double (*)(double): 1,           \
                 char *(*)(const char *): 1, default: 0),                      \
        "MPX_MAP(" #f "): the function must be int f(int), long f(long), "     \
        "long long f(long long), int64_t f(int64_t), double f(double) or "     \
        "char *f(const char *)",                                               \
        _Generic((f),                                                          \
            int (*)(int): mpx_map_int,                                         \
            long (*)(long): mpx_map_long,                                      \
            long long (*)(long long): mpx_map_llong,                           \
            double (*)(double): mpx_map_f64,                                   \
            char *(*)(const char *): mpx_map_str,                              \
            default: MPX__REJECTED)(#f, (f)))

#define MPX_MAP_CTX(f, ctx)                                                    \
    MPX__ACCEPTS(                                                              \
        _Generic((f), int (*)(int, void *): 1, long (*)(long, void *): 1,      \
                 long long (*)(long long, void *): 1,                          \
                 double (*)(double, void *): 1,                                \
                 char *(*)(const char *, void *): 1, default: 0),              \
        "MPX_MAP_CTX(" #f ", ctx): the function must be int f(int, void *), "  \
        "long f(long, void *), long long f(long long, void *), int64_t "       \
        "f(int64_t, void *), double f(double, void *) or "                     \
        "char *f(const char *, void *)",                                       \
        _Generic((f),                                                          \
            int (*)(int, void *): mpx_map_int_ctx,                             \
            long (*)(long, void *): mpx_map_long_ctx,                          \
            long long (*)(long long, void *): mpx_map_llong_ctx,               \
            double (*)(double, void *): mpx_map_f64_ctx,                       \
            char *(*)(const char *, void *): mpx_map_str_ctx,                  \
            default: MPX__REJECTED)(#f, (f), (ctx)))

#define MPX_FILTER(p)                                                          \
    MPX__ACCEPTS(                                                              \
        _Generic((p), bool (*)(int): 1, bool (*)(long): 1,                     \
                 bool (*)(long long): 1, bool (*)(double): 1,                  \
                 bool (*)(const char *): 1, bool (*)(const mpx_item_t *): 1,   \
                 default: 0),                                                  \
        "MPX_FILTER(" #p "): the predicate must be bool p(int), bool p(long), " \
        "bool p(long long), bool p(int64_t), bool p(double), "                 \
        "bool p(const char *) or bool p(const mpx_item_t *)",                  \
        _Generic((p),                                                          \
            bool (*)(int): mpx_filter_int,                                     \
            bool (*)(long): mpx_filter_long,                                   \
            bool (*)(long long): mpx_filter_llong,                             \
            bool (*)(double): mpx_filter_f64,                                  \
            bool (*)(const char *): mpx_filter_str,                            \
            bool (*)(const mpx_item_t *): mpx_filter_item,                     \
            default: MPX__REJECTED)(#p, (p)))

#define MPX_FILTER_CTX(p, ctx)                                                 \
    MPX__ACCEPTS(                                                              \
        _Generic((p), bool (*)(int, void *): 1, bool (*)(long, void *): 1,     \
                 bool (*)(long long, void *): 1, bool (*)(double, void *): 1,  \
                 bool (*)(const char *, void *): 1,                            \
                 bool (*)(const mpx_item_t *, void *): 1, default: 0),         \
        "MPX_FILTER_CTX(" #p ", ctx): the predicate must be bool p(int, "      \
        "void *), bool p(long, void *), bool p(long long, void *), "           \
        "bool p(int64_t, void *), bool p(double, void *), "                    \
        "bool p(const char *, void *) or bool p(const mpx_item_t *, void *)",  \
        _Generic((p),                                                          \
            bool (*)(int, void *): mpx_filter_int_ctx,                         \
            bool (*)(long, void *): mpx_filter_long_ctx,                       \
            bool (*)(long long, void *): mpx_filter_llong_ctx,                 \
            bool (*)(double, void *): mpx_filter_f64_ctx,                      \
            bool (*)(const char *, void *): mpx_filter_str_ctx,                \
            bool (*)(const mpx_item_t *, void *): mpx_filter_item_ctx,         \
            default: MPX__REJECTED)(#p, (p), (ctx)))

#ifdef __cplusplus
}
#endif
#endif
