/* mpx/error.h — status codes shared by every mpx call.
 *
 * Every call that can fail returns 0 or one of the negative codes below (or
 * a pointer that is NULL on failure).  Text for a code comes from
 * mpx_strerror(); the message of a failed graph, naming the stage, instance
 * and reason, comes from mpx_graph_error().
 */
#ifndef MPX_ERROR_H
#define MPX_ERROR_H

/* MPX_MUST_CHECK marks the calls whose result a program must look at: a
 * put that was refused, a graph that failed, a setting that was not taken.
 * Ignoring one warns under -Wall (-Wunused-result).  To drop a result on
 * purpose, test it (`if (mpx_put_i64(st, v) != 0) ...`): GCC does not
 * accept a cast to void as doing so, except under C23 or C++17, where the
 * standard [[nodiscard]] is used instead.  Define MPX_MUST_CHECK before
 * including mpx.h to choose otherwise (empty turns the warnings off). */
#ifndef MPX_MUST_CHECK
#if defined(__cplusplus) && __cplusplus >= 201703L
#define MPX_MUST_CHECK [[nodiscard]]
#elif !defined(__cplusplus) && defined(__STDC_VERSION__) && __STDC_VERSION__ > 201710L
#define MPX_MUST_CHECK [[nodiscard]]
#elif defined(__GNUC__) || defined(__clang__)
#define MPX_MUST_CHECK __attribute__((warn_unused_result))
#else
#define MPX_MUST_CHECK
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

enum {
    MPX_OK = 0,
    MPX_EINVAL = -1,   /* an argument is invalid (NULL, out of range) */
    MPX_ENOMEM = -2,   /* out of memory */
    MPX_EGRAPH = -3,   /* the graph was refused before anything forked */
    MPX_ESTATE = -4,   /* the call is not allowed now (e.g. put in initialize) */
    MPX_ESYS = -5,     /* a system call failed; the message has errno's text */
    MPX_ESTAGE = -6,   /* a stage returned an error */
    MPX_ECRASH = -7,   /* a stage process died (signal or unexpected exit) */
    MPX_ESTOPPED = -8, /* the graph, or this stage, has been stopped */
    MPX_EPROTO = -9,   /* a malformed message reached a process */
    MPX_ERANGE = -10,  /* a size or index is out of range */
    MPX_ETIMEDOUT = -11, /* a wait with a time limit ran out */
    MPX_EINTR = -12,     /* a signal the program handles interrupted a wait */
    MPX_EAGAIN = -13,    /* it would have to wait for what only the caller can do */
};

/* Static text for a status code; never NULL. */
const char *mpx_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
