/* lib/queue.c — mpx_queue: messages between processes over a socket pair
 * of type SOCK_SEQPACKET, which keeps message boundaries and hands each
 * message to exactly one reader.  Made before fork, so every stage
 * inherits both ends; close-on-exec keeps them from commands a stage
 * runs.  The kernel's send buffer is the capacity. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mpx/wiring.h"
#include "ticks.h"

struct mpx_queue {
    int put_fd, get_fd;
    size_t max_message;
};

mpx_queue_t *mpx_queue_new(size_t capacity, size_t max_message)
{
    if (capacity == 0 || max_message == 0 || max_message > capacity || capacity > (1u << 30)) {
        errno = EINVAL;
        return NULL;
    }
    mpx_queue_t *q = malloc(sizeof *q);
    if (!q)
        return NULL;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
        free(q);
        return NULL;
    }
    /* The kernel doubles what it is given and keeps a floor; asking for
     * the capacity is the closest it gets. */
    int buf = (int)capacity;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    q->put_fd = fds[0];
    q->get_fd = fds[1];
    q->max_message = max_message;
    return q;
}

size_t mpx_queue_max_message(const mpx_queue_t *q) { return q ? q->max_message : 0; }

/* Wait for fd to be ready for `events` until `deadline` (-1: none).
 * 0 ready, MPX_ETIMEDOUT, MPX_ESYS. */
static int await(int fd, short events, long deadline)
{
    for (;;) {
        int timeout = -1;
        if (deadline >= 0) {
            long left = deadline - mono_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, timeout);
        if (n > 0)
            return 0;
        if (n == 0)
            return MPX_ETIMEDOUT;
        if (errno != EINTR)
            return MPX_ESYS;
    }
}

int mpx_queue_put(mpx_queue_t *q, const void *data, size_t size, int timeout_ms)
{
    if (!q || (!data && size))
        return MPX_EINVAL;
    if (size > q->max_message)
        return MPX_ERANGE;
    long deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    for (;;) {
        ssize_t n = send(q->put_fd, data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return 0;
        if (errno == EMSGSIZE)
            return MPX_ERANGE;
        if (errno != EAGAIN && errno != EINTR && errno != ENOBUFS)
            return MPX_ESYS;
        int rc = await(q->put_fd, POLLOUT, deadline);
        if (rc != 0)
            return rc;
    }
}

long mpx_queue_get(mpx_queue_t *q, void *buf, size_t cap, int timeout_ms)
{
    if (!q || !buf || cap < q->max_message)
        return MPX_EINVAL;
    long deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    for (;;) {
        /* Another reader may take the message between poll and recv: then
         * this one waits again. */
        ssize_t n = recv(q->get_fd, buf, cap, MSG_DONTWAIT);
        if (n >= 0)
            return (long)n;
        if (errno != EAGAIN && errno != EINTR)
            return MPX_ESYS;
        int rc = await(q->get_fd, POLLIN, deadline);
        if (rc != 0)
            return rc;
    }
}

void mpx_queue_destroy(mpx_queue_t **qp)
{
    mpx_queue_t *q = qp ? *qp : NULL;
    if (!q)
        return;
    close(q->put_fd);
    close(q->get_fd);
    free(q);
    *qp = NULL;
}
