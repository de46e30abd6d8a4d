/* lib/forksrv.h — a fork server: a process forked along with the stages,
 * before the parent's zmq context exists, that forks replacement stage
 * processes on request.
 *
 * A replacement forked from the parent itself copies a process whose zmq
 * threads (and the application's) may hold a lock at that moment, which
 * the copy then waits on forever.  One forked from the server copies a
 * process with a single thread, in the state the first stages were forked
 * in.  The server makes its children the parent's (CLONE_PARENT), so the
 * parent reaps and watches them as it does the first ones.
 */
#ifndef MPX_LIB_FORKSRV_H
#define MPX_LIB_FORKSRV_H

#include <stdint.h>
#include <sys/types.h>

typedef struct forksrv forksrv_t;

/* What a new process is to be. */
typedef struct forksrv_req {
    int32_t id;
    uint32_t gen;
    int32_t resume;
    int32_t ngens;
    const uint32_t *gens; /* ngens of them */
} forksrv_req_t;

/* Runs in the new process and never returns; `fds` are the server's own
 * descriptors, which the new process closes. */
typedef void (*forksrv_fn)(void *ctx, const forksrv_req_t *req, const int *fds, int nfds);

/* Fork the server; `ngens` bounds the requests.  Returns NULL if it could
 * not start (replacements are then the caller's to fork); *fd gets the
 * descriptor the caller's other children must close. */
forksrv_t *forksrv_start(forksrv_fn fn, void *ctx, int ngens, int *fd);
/* A new process, a child of the caller; -1 if the server could not make
 * one (the caller may fork it itself). */
pid_t forksrv_spawn(forksrv_t *s, const forksrv_req_t *req);
/* End the server and reap it. */
void forksrv_stop(forksrv_t **s);

#endif
