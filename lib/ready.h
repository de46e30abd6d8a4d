/* lib/ready.h — the descriptor a program's event loop waits on
 * (mpx_graph_fd): level-triggered, readable exactly while the graph has
 * something for the program.  This file owns the descriptors; what counts
 * as "something" the supervisor decides (lib/supervisor.c, ready_update).
 */
#ifndef MPX_LIB_READY_H
#define MPX_LIB_READY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ready ready_t;

/* The epoll set that is the program's descriptor, with its eventfd and
 * timerfd; NULL with err filled on failure. */
ready_t *ready_new(char *err, size_t errcap);
void ready_destroy(ready_t **rd);
int ready_fd(const ready_t *rd);

/* Make the descriptor readable while `fd` is (a pidfd's epoll, ...), or
 * while zmq socket `sock` has commands to process (its ZMQ_FD).  0, or
 * MPX_ESYS with err filled. */
int ready_watch_fd(ready_t *rd, int fd, char *err, size_t errcap);
/* No longer watch fd (handed to someone else). */
void ready_unwatch_fd(ready_t *rd, int fd);
int ready_watch_sock(ready_t *rd, void *sock, char *err, size_t errcap);

/* Whether `sock` has a message to read; asking processes its commands,
 * which is what makes its ZMQ_FD unreadable again.  True also when it
 * cannot be asked (a signal came meanwhile): the caller then looks again. */
bool ready_sock_in(void *sock);

/* Readable now (`now`), or not until `wake_ms` from now (-1: until one of
 * the watched descriptors turns readable). */
void ready_set(ready_t *rd, bool now, long wake_ms);

#endif
