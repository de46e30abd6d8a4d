/* lib/event.c — mpx_event: a flag shared by processes, on an eventfd made
 * before fork.  Set means the counter is non-zero, so every process that
 * polls it wakes; clear reads the counter back to zero. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mpx/wiring.h"

struct mpx_event {
    int fd;
};

mpx_event_t *mpx_event_new(void)
{
    mpx_event_t *ev = malloc(sizeof *ev);
    if (!ev)
        return NULL;
    ev->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ev->fd < 0) {
        free(ev);
        return NULL;
    }
    return ev;
}

int mpx_event_set(mpx_event_t *ev)
{
    if (!ev)
        return MPX_EINVAL;
    uint64_t one = 1;
    /* EAGAIN only when the counter is near overflow: it is set anyway. */
    if (write(ev->fd, &one, sizeof one) != (ssize_t)sizeof one && errno != EAGAIN)
        return MPX_ESYS;
    return 0;
}

int mpx_event_clear(mpx_event_t *ev)
{
    if (!ev)
        return MPX_EINVAL;
    uint64_t v;
    if (read(ev->fd, &v, sizeof v) < 0 && errno != EAGAIN)
        return MPX_ESYS;
    return 0;
}

int mpx_event_wait(mpx_event_t *ev, int timeout_ms)
{
    if (!ev)
        return MPX_EINVAL;
    struct pollfd p = {ev->fd, POLLIN, 0};
    for (;;) {
        int n = poll(&p, 1, timeout_ms < 0 ? -1 : timeout_ms);
        if (n >= 0)
            return n > 0 ? 1 : 0;
        if (errno != EINTR)
            return MPX_ESYS;
    }
}

bool mpx_event_is_set(mpx_event_t *ev) { return mpx_event_wait(ev, 0) == 1; }

void mpx_event_destroy(mpx_event_t **evp)
{
    mpx_event_t *ev = evp ? *evp : NULL;
    if (!ev)
        return;
    close(ev->fd);
    free(ev);
    *evp = NULL;
}
