/* lib/edge.c — what both ends of an edge share: endpoint names, socket
 * options, opening sockets.  The consumer side is edge_in.c, the producer
 * side edge_out.c (see edge.h).
 */
#define _GNU_SOURCE
#include "edge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "mpx/error.h"

int edge_endpoint(char *buf, size_t cap, const char *dir, char kind, int id, uint32_t gen)
{
    int n = gen ? snprintf(buf, cap, "ipc://%s/%c%d.%u", dir, kind, id, gen)
                : snprintf(buf, cap, "ipc://%s/%c%d", dir, kind, id);
    return n > 0 && (size_t)n < cap ? 0 : MPX_ERANGE;
}

int edge_sockopts(void *sock)
{
    /* Credit bounds every queue, so zmq's own limits are lifted; nothing
     * rests on linger (see DESIGN: the tail of a stream is confirmed by
     * the protocol, never by linger).  Reconnects are quick because peers
     * bind a few milliseconds apart at start. */
    int zero = 0, ivl = 1, ivl_max = 0;
    if (zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(sock, ZMQ_SNDHWM, &zero, sizeof zero) ||
        zmq_setsockopt(sock, ZMQ_RCVHWM, &zero, sizeof zero) ||
        zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) ||
        zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max))
        return MPX_ESYS;
    return 0;
}

void *edge_open_socket(void *zctx, int type, const char *dir, char kind, int id, uint32_t gen,
                       bool bind, char *err, size_t errcap)
{
    char ep[256];
    if (edge_endpoint(ep, sizeof ep, dir, kind, id, gen) != 0) {
        snprintf(err, errcap, "endpoint path too long in %s", dir);
        return NULL;
    }
    void *s = zmq_socket(zctx, type);
    if (!s) {
        snprintf(err, errcap, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    if (edge_sockopts(s) != 0 || (bind ? zmq_bind(s, ep) : zmq_connect(s, ep)) != 0) {
        snprintf(err, errcap, "%s %s: %s", bind ? "bind" : "connect", ep,
                 zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

int *edge_slot_map(const plan_t *plan)
{
    int *slot = malloc(((size_t)plan->ninst + 1) * sizeof *slot);
    if (slot)
        for (int i = 0; i <= plan->ninst; i++)
            slot[i] = -1;
    return slot;
}

