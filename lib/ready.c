/* lib/ready.c — the descriptor of mpx_graph_fd (see ready.h).
 *
 * An epoll set: a descriptor that can itself be polled, and readable for
 * as long as anything in it is (level-triggered, epoll's default).  In
 * it: an eventfd the supervisor keeps set while work is waiting now, a
 * timerfd armed for its next deadline, and the descriptors through which
 * work arrives while the program is elsewhere: the children's pidfds
 * (through the supervisor's own epoll set) and each zmq socket's ZMQ_FD.
 * ZMQ_FD is never handed out alone (libzmq issue 3641): it signals
 * commands arriving, and once they are processed it stays quiet however
 * many messages wait.  Here it is only a wake-up; before the supervisor
 * returns to the program it asks each socket (ready_sock_in) and sets the
 * eventfd for the messages that wait.  An edge's endpoint (lib/xport.h)
 * is watched through its epoll descriptor, which is readable while its
 * sockets have something to read, write or accept; the frames it has read
 * already are asked of it the same way (ready_sock_in), which services it
 * and so quiets its descriptor.
 */
#define _GNU_SOURCE
#include "ready.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "mpx/error.h"
#include "xport.h"

struct ready {
    int ep, ev, timer;
    bool set; /* the eventfd's counter is not zero */
};

ready_t *ready_new(char *err, size_t errcap)
{
    ready_t *rd = malloc(sizeof *rd);
    if (!rd) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    *rd = (ready_t){.ep = -1, .ev = -1, .timer = -1};
    rd->ep = epoll_create1(EPOLL_CLOEXEC);
    rd->ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rd->timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (rd->ep < 0 || rd->ev < 0 || rd->timer < 0) {
        snprintf(err, errcap, "the graph's descriptor: %s", strerror(errno));
        ready_destroy(&rd);
        return NULL;
    }
    if (ready_watch_fd(rd, rd->ev, err, errcap) != 0 ||
        ready_watch_fd(rd, rd->timer, err, errcap) != 0) {
        ready_destroy(&rd);
        return NULL;
    }
    return rd;
}

void ready_destroy(ready_t **rdp)
{
    ready_t *rd = rdp ? *rdp : NULL;
    if (!rd)
        return;
    if (rd->ep >= 0)
        close(rd->ep);
    if (rd->ev >= 0)
        close(rd->ev);
    if (rd->timer >= 0)
        close(rd->timer);
    free(rd);
    *rdp = NULL;
}

int ready_fd(const ready_t *rd) { return rd->ep; }

int ready_watch_fd(ready_t *rd, int fd, char *err, size_t errcap)
{
    struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(rd->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
        snprintf(err, errcap, "the graph's descriptor: %s", strerror(errno));
        return MPX_ESYS;
    }
    return 0;
}

void ready_unwatch_fd(ready_t *rd, int fd) { (void)epoll_ctl(rd->ep, EPOLL_CTL_DEL, fd, NULL); }

int ready_watch_sock(ready_t *rd, void *sock, char *err, size_t errcap)
{
    if (xport_is(sock))
        return ready_watch_fd(rd, xport_fd(sock), err, errcap);
    int fd = -1;
    size_t len = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0) {
        snprintf(err, errcap, "the graph's descriptor: %s", zmq_strerror(errno));
        return MPX_ESYS;
    }
    return ready_watch_fd(rd, fd, err, errcap);
}

bool ready_sock_in(void *sock)
{
    if (!sock)
        return false;
    if (xport_is(sock)) {
        (void)xport_service(sock);
        return xport_has_input(sock);
    }
    uint32_t ev = 0;
    size_t len = sizeof ev;
    if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) != 0)
        return true;
    return ev & ZMQ_POLLIN;
}

void ready_set(ready_t *rd, bool now, long wake_ms)
{
    if (wake_ms == 0)
        now = true;
    if (now != rd->set) {
        uint64_t v = 1;
        ssize_t n = now ? write(rd->ev, &v, sizeof v) : read(rd->ev, &v, sizeof v);
        /* A read finding the counter zero (EAGAIN) leaves it as wanted. */
        if (n == (ssize_t)sizeof v || (!now && n < 0 && errno == EAGAIN))
            rd->set = now;
    }
    if (now)
        return; /* readable anyway: the timer does not matter */
    /* Setting the timer also forgets an expiry nobody read, which would
     * otherwise keep the set readable. */
    struct itimerspec t = {{0, 0}, {0, 0}};
    if (wake_ms > 0) {
        t.it_value.tv_sec = wake_ms / 1000;
        t.it_value.tv_nsec = (wake_ms % 1000) * 1000000L;
    }
    timerfd_settime(rd->timer, 0, &t, NULL);
}
