/* mpx/error.h — status codes shared by every mpx call.
 *
 * Every call that can fail returns 0 or one of the negative codes below (or
 * a pointer that is NULL on failure).  Text for a code comes from
 * mpx_strerror(); the message of a failed graph, naming the stage, instance
 * and reason, comes from mpx_graph_error().
 */
#ifndef MPX_ERROR_H
#define MPX_ERROR_H

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
};

/* Static text for a status code; never NULL. */
const char *mpx_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
