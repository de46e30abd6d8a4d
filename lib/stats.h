/* lib/stats.h — the parent's side of the monitor: counters the stage
 * processes report (WIRE_STATS) become per-stage figures every interval,
 * which go to the watch table, the JSON stream, the progress bar and the
 * "stats" socket in the runtime directory.  Driven by the supervisor's
 * loop (lib/supervisor.c); no thread of its own.
 */
#ifndef MPX_LIB_STATS_H
#define MPX_LIB_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mpx_run;
typedef struct stats stats_t;

/* After the plan is built: the figures' bookkeeping.  Returns 0 or
 * MPX_ENOMEM (message in err). */
int stats_open(struct mpx_run *r, char *err, size_t errcap);
/* After stats_open: listen at the "stats" socket's address in the
 * runtime directory, with a socket of our own (no zmq context yet: its
 * threads and their start are paid only by a run that is monitored).
 * Returns 0 or MPX_ESYS. */
int stats_listen(struct mpx_run *r, char *err, size_t errcap);
/* That socket, to poll with the rest until a monitor connects (-1 when
 * there is none: not listening, or handed to zmq). */
int stats_listener(struct mpx_run *r);
/* A monitor connected: once the parent's zmq context exists, make the
 * XPUB socket the monitors subscribe to, on the listening socket (which
 * is zmq's from then on).  Returns 0 or MPX_ESYS. */
int stats_bind(struct mpx_run *r, char *err, size_t errcap);
/* A WIRE_STATS message from instance i. */
void stats_report(struct mpx_run *r, int i, const uint8_t *data, size_t len);
/* The stats socket, to poll with the rest (NULL when not open). */
void *stats_socket(struct mpx_run *r);
/* Milliseconds until the next snapshot is due (-1: none). */
long stats_timeout(struct mpx_run *r);
/* Serve new subscribers and take a snapshot when one is due. */
void stats_tick(struct mpx_run *r);
/* The run is ending: last snapshot (ended), everything flushed; the
 * socket is closed.  Figures stay readable until stats_free. */
void stats_end(struct mpx_run *r);
void stats_free(struct mpx_run *r);

/* Instance i's figures as last reported, for the elastic groups'
 * controller (lib/grow.c). */
typedef struct stats_inst {
    double busy, blocked; /* over its last two reports */
    double cpu;        /* ... CPU seconds per second of its process (can pass 1: the
                        * zmq I/O thread); NaN: unknown */
    uint64_t depth;    /* items sent to it not taken yet, at the last snapshot */
} stats_inst_t;
void stats_inst(const struct mpx_run *r, int i, stats_inst_t *out);
/* An elastic group changed (or could not): to the JSON stream, the
 * watch table's stream, and the snapshot mpx-top reads. */
/* Elastic slot i gets a new process: what the last one counted is kept
 * apart (before its counters are reset). */
void stats_rebase(struct mpx_run *r, int i);
void stats_elastic(struct mpx_run *r, const char *stage, int from, int to, const char *action,
                   const char *why, const char *decision_json);

#endif
