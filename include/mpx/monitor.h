/* mpx/monitor.h — watching a graph run: per-stage figures, a table on
 * stderr, a JSON stream, a progress bar, and pictures of the graph.
 *
 * Every stage process reports its counters to the parent every stats
 * interval (default MPX_STATS_INTERVAL_MS): items in and out, time spent
 * waiting for input and for room downstream, its state.  Nothing is
 * measured per item: the counters are the ones the edges keep anyway and
 * the clock is read only when a process waits.  The parent turns them
 * into per-stage figures while it runs inside mpx_graph_next / poll /
 * dispatch / join / collect (mpx has no background thread: an event loop
 * serving mpx_graph_fd gets them on time), and publishes each snapshot as
 * a JSON line on the socket "stats" in the graph's runtime directory,
 * where tools/mpx-top (and anyone the directory's owner lets in) reads
 * them.  The schema is in the README ("Monitoring").
 */
#ifndef MPX_MONITOR_H
#define MPX_MONITOR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MPX_STATS_INTERVAL_MS 250

/* How often stage processes report, in ms (10 .. 60000); before start.
 * The table, the stream and the bar are refreshed at this pace or slower. */
MPX_MUST_CHECK int mpx_graph_set_stats_interval(mpx_graph_t *g, int interval_ms);

typedef enum mpx_stage_state {
    MPX_STATE_STARTING, /* forked, setup not yet done */
    MPX_STATE_RUNNING,  /* processing (a source: producing) */
    MPX_STATE_DRAINING, /* stopped early, discarding what still arrives */
    MPX_STATE_TEARDOWN, /* input complete, in teardown */
    MPX_STATE_DONE,     /* finished, waiting to be released or gone */
    MPX_STATE_FAILED,   /* reported an error, crashed or was killed */
} mpx_stage_state_t;

const char *mpx_stage_state_name(mpx_stage_state_t s);

/* Figures of one stage node (all its instances), as of the last report. */
typedef struct mpx_stage_stats {
    const char *name;
    int instances;
    int running;                  /* instances in STARTING..TEARDOWN */
    mpx_stage_state_t state;      /* the least advanced instance's state,
                                     FAILED if any failed */
    uint64_t items_in, items_out, items_dropped;
    double in_rate, out_rate;     /* items/s over the last interval */
    double busy;                  /* 0..1: share of the last interval not
                                     waiting for input or for room, mean
                                     over running instances */
    double blocked;               /* 0..1: share waiting for room downstream */
    uint64_t depth;               /* items sent to its instances, not yet taken */
    uint64_t capacity;            /* the sum of its instances' input capacity */
    uint64_t progress_done, progress_total; /* total 0: size unknown */
} mpx_stage_stats_t;

/* Number of stage nodes of a started graph (side graphs included), in
 * declaration order; 0 before start. */
size_t mpx_graph_stage_count(const mpx_graph_t *g);
/* Figures of stage node i as of the latest report (also after the end:
 * the final figures). */
MPX_MUST_CHECK int mpx_graph_stage_stats(const mpx_graph_t *g, size_t i, mpx_stage_stats_t *out);

/* The graph's shared-memory pool (graph.h, mpx_graph_set_pool): bytes it
 * can hand out, bytes and blocks in use now (blocks take whole 64 KiB
 * granules), the most bytes in use at once, and bytes of memory taken so
 * far.  After a run has ended, whatever its outcome, and the application
 * has let go of what it kept (mpx_list_destroy, mpx_item_free), nothing is
 * in use.  MPX_EINVAL for NULL; MPX_ESTATE before start or without a pool. */
typedef struct mpx_pool_stats {
    uint64_t capacity;
    uint64_t bytes_in_use, blocks_in_use;
    uint64_t peak_bytes;
    uint64_t committed;
} mpx_pool_stats_t;
MPX_MUST_CHECK int mpx_graph_pool_stats(const mpx_graph_t *g, mpx_pool_stats_t *out);

/* Print a table of every stage (one line each, graph order) to stderr
 * every interval_ms while the graph runs, and once more at its end;
 * interval_ms 0 takes the stats interval.  May be called before start or
 * while running.  mpx_graph_unwatch stops it. */
MPX_MUST_CHECK int mpx_graph_watch(mpx_graph_t *g, int interval_ms);
int mpx_graph_unwatch(mpx_graph_t *g);

/* Write every snapshot as one JSON line to `f` (flushed each time), the
 * last one with "ended": true.  NULL stops.  The graph does not close f. */
MPX_MUST_CHECK int mpx_graph_stats_to(mpx_graph_t *g, FILE *f);

/* Progress bar on stderr for a graph whose source knows its size: count,
 * rate and ETA on one line, redrawn each interval.  On by default when
 * stderr is a terminal (and MPX_PROGRESS is not "0"); never otherwise. */
MPX_MUST_CHECK int mpx_graph_set_progress(mpx_graph_t *g, bool on);
/* A graph fed by the program (mpx_graph_put) whose stages count nothing:
 * the bar counts the results the program takes, against `total` (the
 * results it expects; 0: unknown, then the bar shows the count and the
 * rate).  Before or after start. */
MPX_MUST_CHECK int mpx_graph_set_progress_total(mpx_graph_t *g, uint64_t total);

/* In a stage (setup, usually): the number of units this stage will
 * produce, for the progress bar.  Items out count as units unless the
 * stage counts its own with mpx_progress_add (a reader counting bytes). */
int mpx_progress_total(mpx_stage_t *st, uint64_t total);
int mpx_progress_add(mpx_stage_t *st, uint64_t done);

/* The graph as an indented text tree: groups, stage names, instances and
 * side graphs. */
int mpx_graph_print_layout(const mpx_graph_t *g, FILE *f);
/* The graph in Graphviz DOT: a box per stage (instances shown), an arrow
 * per edge, clusters for parallel and broadcast groups. */
int mpx_graph_write_dot(const mpx_graph_t *g, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
