/* lib/error.c — text for mpx status codes. */
#include "mpx/error.h"

const char *mpx_strerror(int code)
{
    switch (code) {
    case MPX_OK: return "success";
    case MPX_EINVAL: return "invalid argument";
    case MPX_ENOMEM: return "out of memory";
    case MPX_EGRAPH: return "graph refused";
    case MPX_ESTATE: return "not allowed in this state";
    case MPX_ESYS: return "system call failed";
    case MPX_ESTAGE: return "a stage failed";
    case MPX_ECRASH: return "a stage process died";
    case MPX_ESTOPPED: return "stopped";
    case MPX_EPROTO: return "malformed message";
    case MPX_ERANGE: return "out of range";
    case MPX_ETIMEDOUT: return "timed out";
    case MPX_EINTR: return "interrupted by a signal";
    case MPX_EAGAIN: return "try again: the call would have to wait";
    }
    return "unknown error";
}
