/* mpx/imap.h — a pool of worker processes mapped over the program's own
 * inputs, in one call or item by item: what Python's Pool.imap,
 * mtasklite's pqdm and a hand-written fork/pipe pool do, with bounded
 * memory, results in order or as they finish, stateful workers, per-item
 * timeouts, retries after a crash and error policies.
 *
 * A worker is any stage definition with a process callback (stage.h): it
 * gets one input item per call and puts its result (one item per input;
 * see "ordered" for more or fewer).  Each worker process runs setup once
 * before its first input and teardown after its last, and keeps its state
 * (state_size) in between, so a model loaded in setup serves every input.
 * The pool is a graph (graph.h) of `workers` instances of it, fed by the
 * program (mpx_graph_put): everything the graph offers — the descriptor
 * for event loops, stats, watch, the JSON stream — works through
 * mpx_imap_graph().
 *
 *     static int square(mpx_stage_t *st, mpx_item_t *in)
 *     {
 *         int64_t x = mpx_item_i64(in);
 *         return mpx_put_i64(st, x * x);
 *     }
 *     static const mpx_stage_def_t Square = {.name = "square", .process = square};
 *
 *     int64_t in[1000], out[1000];
 *     ...
 *     int rc = mpx_imap_array(&Square, NULL, NULL, in, 1000, sizeof *in, out, sizeof *out);
 *
 * Every result carries meta "mpx.index": the 0-based position of the
 * input it came from.  Results reach the program once each: a result of
 * an input that was processed again after its worker died (at least
 * once, graph.h) is dropped here if one of that input came before.
 */
#ifndef MPX_IMAP_H
#define MPX_IMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "graph.h"
#include "stage.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_imap_opts {
    /* Worker processes (0: one per online CPU). */
    int workers;
    /* Results in the order of the inputs (else as they finish).  In
     * order, a result waits for those of every earlier input: a worker
     * that puts no result for an input holds the later ones back until
     * the end of the input, when what is held comes out in order; one
     * that puts several for one input has the later ones of that input
     * dropped as if they were repeats.  What waits is held in the
     * program, copied: behind one input that takes long, every result
     * that finishes meanwhile (its time times the map's rate), which no
     * capacity bounds. */
    bool ordered;
    /* NULL, or `workers` pointers: worker i's own args (args_size bytes
     * each, copied), as mtasklite's list of worker objects (workers must
     * then be set: 0 is refused). */
    const void *const *worker_args;
    /* Per-item time limit in ms (0: none): a worker still busy after it
     * is killed and the item has failed (retried, then the policy). */
    int timeout_ms;
    /* Times an item that failed (error return, crash, timeout) is
     * processed again before the policy applies (0..MPX_MAX_RETRIES). */
    int retries;
    /* MPX_ON_ERROR_STOP (0 means it too): the map fails and ends;
     * MPX_ON_ERROR_SKIP: the item has no result (logged on stderr);
     * MPX_ON_ERROR_RESULT: its result is an error result
     * (mpx_item_error() gives the text).  Dead letters need a graph of
     * your own. */
    mpx_on_error_t on_error;
    /* The progress bar on stderr, counting results: 0 when stderr is a
     * terminal, 1 always, -1 never; `total` the results expected (0:
     * unknown: the bar shows count and rate). */
    int progress;
    uint64_t total;
    /* Inputs queued per worker at most (0: MPX_DEFAULT_CAPACITY). */
    size_t capacity;
    /* Name of the worker processes (ps, errors; default: the def's). */
    const char *name;
    /* An elastic pool (graph.h, mpx_node_set_elastic) when max_workers >
     * 0: mpx runs between min_workers (0: 1) and max_workers, starting
     * with `workers` (0: min_workers), within the budget of one process
     * per CPU beyond that start.  Not with worker_args (MPX_EINVAL). */
    int min_workers, max_workers;
} mpx_imap_opts_t;

typedef struct mpx_imap mpx_imap_t;

/* Build and start a pool (opts NULL: the defaults): 0 and *m set, or a
 * code (MPX_EINVAL for a worker without process or bad options,
 * mpx_graph_start's codes) with *m NULL; the message of a failed start
 * is printed to stderr. */
MPX_MUST_CHECK int mpx_imap_start(mpx_imap_t **m, const mpx_stage_def_t *worker,
                                  const void *args, const mpx_imap_opts_t *opts);

/* One input, as mpx_graph_put (graph.h): 0, MPX_EAGAIN (take results
 * first: mpx_imap_next), MPX_EINTR, MPX_ESTOPPED (the map ended: join
 * tells why), ... */
MPX_MUST_CHECK int mpx_imap_put(mpx_imap_t *m, const void *data, size_t size);
MPX_MUST_CHECK int mpx_imap_put_parts(mpx_imap_t *m, const mpx_part_t *parts, size_t n);
/* No more inputs. */
int mpx_imap_close(mpx_imap_t *m);

/* The next result, waiting at most timeout_ms (-1: no limit): 1 and
 * *result (valid until the next call on the map), 0 at the end (after
 * mpx_imap_close, every result taken; or the map failed: join tells),
 * MPX_ETIMEDOUT, MPX_EINTR, as mpx_graph_poll.  In order when asked
 * for. */
MPX_MUST_CHECK int mpx_imap_next(mpx_imap_t *m, int timeout_ms, mpx_item_t **result);

/* Close, discard the results not taken, wait for the workers to end:
 * 0, or the failure (mpx_imap_error says what). */
MPX_MUST_CHECK int mpx_imap_join(mpx_imap_t *m);
const char *mpx_imap_error(const mpx_imap_t *m);
/* The graph underneath (mpx_graph_fd, dispatch, stats, watch...).  Take
 * results with mpx_imap_next, not mpx_graph_poll. */
mpx_graph_t *mpx_imap_graph(mpx_imap_t *m);
/* Stop if running, free; *m set to NULL. */
void mpx_imap_destroy(mpx_imap_t **m);

/* ---- in one call -------------------------------------------------------- */

/* The inputs, one per call: 1 with *input set (its bytes are copied
 * before the next call), 0 at the end, or a negative code that ends the
 * map with it. */
typedef int (*mpx_imap_input_fn)(void *ctx, mpx_part_t *input);
/* Each result (its mpx.index says which input): 0 to go on, anything
 * else ends the map and is returned. */
typedef int (*mpx_imap_output_fn)(void *ctx, const mpx_item_t *result);

/* Map the inputs `next_input` gives over a pool, handing each result to
 * `on_result` as it comes (in order when opts->ordered), inputs read
 * only as room frees up: memory stays bounded whatever the number of
 * inputs (in order, see `ordered`).  It waits through signals, as
 * mpx_graph_next does: a program that must see its own handler's flag
 * at once drives the map with mpx_imap_put / mpx_imap_next, whose waits
 * return MPX_EINTR.  Returns 0, the first failure of the map, or what a callback
 * returned. */
MPX_MUST_CHECK int mpx_imap_run(const mpx_stage_def_t *worker, const void *args,
                                const mpx_imap_opts_t *opts, mpx_imap_input_fn next_input,
                                void *in_ctx, mpx_imap_output_fn on_result, void *out_ctx);

/* n inputs of in_size bytes each at `in`; the result of input i (the
 * worker's first part, out_size bytes) goes to out + i * out_size.  A
 * result of another size fails the map (MPX_ERANGE); an input with no
 * result (MPX_ON_ERROR_SKIP or RESULT) leaves its slot zeroed. */
MPX_MUST_CHECK int mpx_imap_array(const mpx_stage_def_t *worker, const void *args,
                                  const mpx_imap_opts_t *opts, const void *in, size_t n,
                                  size_t in_size, void *out, size_t out_size);

#ifdef __cplusplus
}
#endif
#endif
