/* mpx/graph.h — declaring a graph and running it.
 *
 * A graph is a tree of nodes: stages, and groups of nodes in series
 * (MPX_S), in parallel (MPX_P: each item goes to one branch, whichever has
 * room) or in broadcast (MPX_B: each item goes to every branch), nested to
 * any depth.  MPX_EZ(...) is a serial group.  There is no separate graph
 * object: any node that is not part of another can be run, and a graph can
 * be embedded as one node of another.  mpx_graph_t is a second name for
 * mpx_node_t that says "this one is a root".
 *
 * Ownership: a group takes ownership of its children; destroying the root
 * destroys the whole tree.  Builder calls never abort: a mistake (NULL
 * node, n < 1, a node used twice, ...) is recorded in the node and reported
 * by mpx_graph_check() or mpx_graph_start() before anything forks.  Only
 * an allocation failure makes a builder call return NULL, which the
 * enclosing group reports in turn.
 */
#ifndef MPX_GRAPH_H
#define MPX_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "stage.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_node mpx_node_t;
typedef struct mpx_node mpx_graph_t;

/* Default capacity of a stage instance's input, in items and in bytes:
 * what its producers have sent it and it has not yet processed.  The
 * capacity is shared among the producers (each gets an equal window, at
 * least one item), and a producer waits while its window is full; one
 * item always fits, however large.  An item's bytes count wherever they
 * are: a part in the shared-memory pool counts its size, though only a
 * reference crosses the edge.  Within that, a consumer asks each
 * producer for about sixteen milliseconds of its own work at its
 * measured pace, so a slow consumer is sent only a few items at a time.  The item
 * count is what bounds small items: a producer that has sent its window
 * sleeps until credit comes back, half a window at a time, and every such
 * wake-up costs tens of microseconds of CPU (a context switch on a core
 * that a worker was using), so fewer items in the window would make each
 * item pay more: at 4096 a map of 1 us items lost about 3 % of its time to
 * its source's and the program's wake-ups (README, Benchmarks).  A batch
 * is at most 1024 items (24 KiB of 64-bit integers).  What the graph
 * sends the program (mpx_graph_next, collect, the pool map's results) has
 * four times this in items unless the root sets a capacity: every message
 * wakes the program, and that window is shared by every producer of the
 * graph's output. */
#define MPX_DEFAULT_CAPACITY 16384
#define MPX_DEFAULT_CAPACITY_BYTES (16u * 1024u * 1024u)

/* ---- building ----------------------------------------------------------- */

/* One instance of `def`; `args` (args_size bytes) is copied. */
mpx_node_t *mpx_stage(const mpx_stage_def_t *def, const void *args);
/* n instances of `def` in parallel (mpx_as) or in broadcast (mpx_by),
 * 1 <= n <= MPX_MAX_INSTANCES. */
#define MPX_MAX_INSTANCES 65536
mpx_node_t *mpx_as(int n, const mpx_stage_def_t *def, const void *args);
mpx_node_t *mpx_by(int n, const mpx_stage_def_t *def, const void *args);

/* A node that makes any graph containing it fail mpx_graph_check() with
 * this message: for functions that build nodes (like the built-in stages)
 * and find their arguments wrong. */
mpx_node_t *mpx_invalid(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Groups from an array (for graphs built at run time). */
mpx_node_t *mpx_serial_v(mpx_node_t *const *nodes, size_t n);
mpx_node_t *mpx_parallel_v(mpx_node_t *const *nodes, size_t n);
mpx_node_t *mpx_broadcast_v(mpx_node_t *const *nodes, size_t n);

#define MPX__NODES(...) ((mpx_node_t *[]){__VA_ARGS__})
#define MPX__COUNT(...) (sizeof(MPX__NODES(__VA_ARGS__)) / sizeof(mpx_node_t *))
#define MPX_S(...) mpx_serial_v(MPX__NODES(__VA_ARGS__), MPX__COUNT(__VA_ARGS__))
#define MPX_P(...) mpx_parallel_v(MPX__NODES(__VA_ARGS__), MPX__COUNT(__VA_ARGS__))
#define MPX_B(...) mpx_broadcast_v(MPX__NODES(__VA_ARGS__), MPX__COUNT(__VA_ARGS__))
#define MPX_EZ(...) MPX_S(__VA_ARGS__)

/* Run a node made for one stage instance (any stage node: mpx_stage, a
 * built-in like MPX_MAP(f), ...) as n instances in parallel, as mpx_as
 * does.  Returns the node; anything else than a one-instance stage node,
 * or n out of range, gives a node the graph check refuses (and that frees
 * `node` with it). */
mpx_node_t *mpx_instances(mpx_node_t *node, int n);

/* The node's name: a stage's name, or the kind of group. */
const char *mpx_node_name(const mpx_node_t *node);

/* Name shown in ps, errors and layouts instead of the definition's name. */
MPX_MUST_CHECK int mpx_node_set_name(mpx_node_t *node, const char *name);
/* Capacity of the edges into every stage inside `node` (items, bytes; 0
 * keeps the inherited value).  Set on the root it is the graph's default;
 * the nearest setting above a stage wins. */
MPX_MUST_CHECK int mpx_node_set_capacity(mpx_node_t *node, size_t items, size_t bytes);

/* Environment variables of every stage process inside `node`, set in the
 * child before setup (the parent's environment is unchanged); value NULL
 * removes the variable.  Settings on outer nodes apply first, so the
 * nearest one wins. */
MPX_MUST_CHECK int mpx_node_setenv(mpx_node_t *node, const char *name, const char *value);

/* Record in each item's meta how long every stage inside `node` spent on
 * it: the key "time/<stage name>" (then "time/<name>#2", ... when a name
 * repeats on the item's way) holds an int64 of nanoseconds, from the start
 * of the process call to the put.  Off by default; costs nothing when off. */
MPX_MUST_CHECK int mpx_node_set_timing(mpx_node_t *node, bool on);

/* Number the items a built-in source puts.  With `on`, every item it puts
 * carries meta "mpx.index": an int64 (8 bytes, native byte order, read it
 * with mpx_item_meta_i64 / mpx_meta_i64) holding the item's 0-based
 * position in the output of the source instance that put it (0, 1, 2, ...
 * in the order put).  It travels with the item like any meta, so an error
 * about the item shows it among the item's meta (see mpx_graph_error),
 * and a reader of mpx_graph_next can tell where each item came from or
 * restore the order after a parallel section.  A source run as several
 * instances (mpx_instances) numbers each instance's output from 0: each
 * index then occurs once per instance.  Off by default; off, no meta is
 * set and the cost per item is one test of a flag the source read once.
 *
 * `node` must be the node of a built-in source: mpx_range, mpx_chunks,
 * mpx_iter, mpx_iter_i64, mpx_iter_f64, mpx_iter_str, mpx_iter_fn,
 * mpx_read, mpx_read_chunks, mpx_const, mpx_const_i64, mpx_const_str,
 * mpx_files or mpx_files_follow (also after mpx_instances).  Returns 0;
 * MPX_EINVAL for NULL or any other node (a group, a stage of yours, a
 * built-in that is not a source, a source called with bad arguments,
 * whose node the check refuses anyway); MPX_ESTATE once the graph has
 * started. */
MPX_MUST_CHECK int mpx_node_set_index(mpx_node_t *node, bool on);

/* ---- when a stage fails --------------------------------------------------
 *
 * What happens to an item whose processing failed: its process callback
 * returned an error, or the stage process died while it was in hand (a
 * signal, the OOM killer, an abort) or was killed for exceeding its
 * per-item timeout.  Each setting applies to every stage inside `node`;
 * set on the root it is the graph's default, and the nearest setting above
 * a stage wins.
 *
 * First the item is processed again, up to `retries` times (default 0):
 * after an error return, at once in the same process; after a death, by a
 * worker of the same stage (another instance, or the replacement).  Then
 * the policy applies:
 *
 *   MPX_ON_ERROR_STOP         (default) the graph stops; mpx_graph_error()
 *                             names the stage, instance, error and the
 *                             meta of the item.
 *   MPX_ON_ERROR_SKIP         the item is dropped, counted (items_failed)
 *                             and logged on stderr with the stage and meta.
 *   MPX_ON_ERROR_DEAD_LETTER  the item (parts and meta) goes to the side
 *                             graph `dead_letter` (see mpx_graph_xcut),
 *                             with meta "mpx.error" (the error text),
 *                             "mpx.stage" and "mpx.instance" added.
 *   MPX_ON_ERROR_RESULT       an error result goes on in the item's place
 *                             (pqdm's exceptions as results): an item of
 *                             no parts, with the item's meta (its
 *                             mpx.index among it) and "mpx.error",
 *                             "mpx.stage" and "mpx.instance" added, put by
 *                             the stage that failed; counted in
 *                             items_failed.  mpx_item_error() tells it
 *                             from a value.
 *
 * With retries or a policy other than STOP, a stage that has input is
 * also restarted when its process dies: a replacement is forked (setup
 * runs again, in the new process) and the items the dead one held or had
 * queued are sent again — to the other instances of a parallel group, or
 * to the replacement.  Nothing is lost; an item the dead process had
 * finished but not yet confirmed may arrive twice downstream (at least
 * once, never silently dropped).  Re-sent items carry meta
 * "mpx.redelivered" (int64: times re-sent); the item in hand also
 * "mpx.failures" (int64) and "mpx.error".  Sources (stages nobody feeds)
 * are never restarted: their death stops the graph.  Items a stage keeps
 * across calls (as Batch and Zip do) die with it.
 *
 * Returns 0, MPX_EINVAL (bad value; a DEAD_LETTER without a name), or
 * MPX_ESTATE once the graph has started.  A dead-letter name that no
 * side graph visible to the stage has is refused by mpx_graph_check. */
typedef enum mpx_on_error {
    MPX_ON_ERROR_STOP = 1,
    MPX_ON_ERROR_SKIP = 2,
    MPX_ON_ERROR_DEAD_LETTER = 3,
    MPX_ON_ERROR_RESULT = 4,
} mpx_on_error_t;
MPX_MUST_CHECK int mpx_node_on_error(mpx_node_t *node, mpx_on_error_t policy, const char *dead_letter);
#define MPX_MAX_RETRIES 1000
MPX_MUST_CHECK int mpx_node_set_retries(mpx_node_t *node, int retries); /* 0 .. MPX_MAX_RETRIES */
/* Per-item time limit of process, in milliseconds (0: none, the
 * default).  A process still busy with one item after that long is killed
 * (SIGKILL) and the item has failed: it is retried or handled by the
 * policy as above, and under STOP the graph stops.  The supervisor checks
 * while the application is inside a call on the graph (mpx_graph_next,
 * poll, dispatch, join, collect), about every eighth of the limit: an
 * event loop serving mpx_graph_fd gets that done on time. */
MPX_MUST_CHECK int mpx_node_set_timeout(mpx_node_t *node, int ms);
/* The largest item a stage inside `node` may put: its parts, meta and
 * framing together, in bytes (default MPX_DEFAULT_MAX_ITEM).  A larger
 * put returns MPX_ERANGE and, if the stage fails with it, the graph's
 * error says how large the item was and what the limit is. */
#define MPX_DEFAULT_MAX_ITEM ((size_t)1 << 30)
MPX_MUST_CHECK int mpx_node_set_max_item(mpx_node_t *node, size_t bytes);

/* ---- elastic parallel groups -----------------------------------------------
 * mpx_node_set_elastic(node, min, max) on a parallel group of one stage
 * (mpx_as, mpx_stage with mpx_instances, the pool map's workers) lets mpx
 * size it while the graph runs: it starts with the count declared, kept
 * within [min, max], and a controller in the supervisor adds an instance
 * where the group limits the graph's throughput (every instance busy, its
 * producers held up) and retires one where the instances idle, one step at
 * a time, after checking that the last step helped.  A new instance runs
 * setup and joins the group's edges; one that leaves finishes what it
 * holds, runs teardown and exits; nothing is lost or repeated.  Refused
 * (MPX_EINVAL) on anything else: a broadcast (mpx_by), a group of several
 * stages, a source (no process callback: its instances each make their
 * own items), 1 > min, min > max, max > MPX_MAX_INSTANCES; MPX_ESTATE once
 * started.  Every decision, with its reason,
 * is in the monitor's JSON stream, mpx-top and the watch table; so is a
 * change still under way after five seconds (action "pending", again
 * after ten, twenty, ...), with what it waits for: one change runs at a
 * time, and one that waits on a long setup holds back every other.
 *
 * mpx_graph_set_budget(g, n): at most n stage processes at once (crash
 * replacements count; the program's own process does not).  0 (the
 * default): the processes the graph starts with plus one per CPU.  A
 * budget smaller than what the graph starts with fails mpx_graph_start. */
MPX_MUST_CHECK int mpx_node_set_elastic(mpx_node_t *node, int min, int max);
MPX_MUST_CHECK int mpx_graph_set_budget(mpx_graph_t *g, int processes);

/* ---- the shared-memory pool ----------------------------------------------
 *
 * A graph may have a pool: memory shared by its parent and every stage
 * process (a memfd made before fork; nothing in the file system outlives
 * the run), from which large parts travel without being copied through a
 * socket: only a reference crosses an edge, and the receiver reads the
 * bytes in place.  A stage writes blocks with mpx_alloc / mpx_put_alloc
 * (stage.h), and any put of a part of at least the node's threshold
 * (mpx_node_set_pool_threshold, default MPX_DEFAULT_POOL_THRESHOLD) is
 * copied once into the pool and travels by reference, so existing stages
 * and the built-ins gain without a change.
 *
 * mpx_graph_set_pool(g, bytes) on the root, before start: the pool's size
 * (rounded up to 64 KiB; 0: no pool).  Without the call a graph has a
 * pool of mpx_default_pool_bytes(): MPX_DEFAULT_POOL_MAX, or a quarter of
 * the machine's physical memory when that is less (if such a default pool
 * cannot be made, the graph runs without one; a size set and refused
 * fails the start).  Address space is reserved for all of it, memory is
 * taken only as blocks are first used (a graph that puts no large part
 * takes none, beyond 128 bytes of bookkeeping per 64 KiB of capacity),
 * and kept until the run ends: the pool holds at most what was at once
 * in flight, which the edges' capacities bound.
 *
 * When the pool is full, mpx_alloc and a large put wait up to 100 ms for
 * a block to be freed (a stop ends the wait); then the put sends its bytes
 * through the socket as it would without a pool, and mpx_alloc gives
 * private memory (stage.h): stages that keep blocks (Batch, Seq) or wait
 * on each other for blocks slow down rather than wait for good.  A block is freed when
 * its last holder is done with it: a process that dies loses its holds
 * (the supervisor reclaims them), whatever instant it died at.
 * mpx_graph_pool_stats (monitor.h) shows the use. */
#define MPX_DEFAULT_POOL_THRESHOLD ((size_t)64 * 1024)
#define MPX_DEFAULT_POOL_MAX ((size_t)1 << 30)
MPX_MUST_CHECK int mpx_graph_set_pool(mpx_graph_t *g, size_t bytes);
size_t mpx_default_pool_bytes(void);
/* Parts of at least `bytes` put by stages inside `node` go through the
 * pool (SIZE_MAX: never).  MPX_EINVAL for 0. */
MPX_MUST_CHECK int mpx_node_set_pool_threshold(mpx_node_t *node, size_t bytes);

/* Attach `side` to graph `g` under `name` (mpyx's xcut): every stage of g
 * can put into it with mpx_put_to(st, name, ...).  The side graph starts
 * with g, receives from all of g's stages, and ends after all of them
 * have; what its last stages put is discarded.  g takes ownership of side
 * (on failure the caller keeps it).  Names are unique per node.  A side
 * graph may be attached to any node; its stages serve the stages inside
 * that node, and a nearer side graph hides an outer one of the same name.
 * A side graph's own stages see only the side graphs attached inside it. */
MPX_MUST_CHECK int mpx_graph_xcut(mpx_graph_t *g, const char *name, mpx_graph_t *side);

/* Destroy a node and its subtree (stopping the graph first if it runs);
 * sets *node to NULL.  Do not destroy a node that belongs to a group. */
void mpx_node_destroy(mpx_node_t **node);

/* ---- running ------------------------------------------------------------ */

/* Validate without running: 0, or MPX_EGRAPH with mpx_graph_error() set. */
MPX_MUST_CHECK int mpx_graph_check(mpx_graph_t *g);

/* Validate, call initialize for every instance, fork one process per
 * instance and return once every stage's setup has returned — or, for a
 * stage that puts in setup (a source), has reached its first put; no item
 * flows before that.  Returns 0, MPX_EGRAPH for a refused graph (nothing
 * forked; also when the graph needs more open files than the process may
 * have), or the error of a failed initialize or setup (the graph is then
 * already cleaned up).  Raises the soft limit on open files when the
 * graph needs it. */
MPX_MUST_CHECK int mpx_graph_start(mpx_graph_t *g);

/* Next item leaving the end of the graph, blocking until one does (starts
 * the graph when needed).  NULL once the graph has finished or failed:
 * then mpx_graph_join() gives the outcome.  The item is owned by the graph
 * and valid until the next mpx_graph_next, mpx_graph_poll, join, collect
 * or destroy on the graph (the other calls leave it alone).  Signals do
 * not end the wait: see mpx_graph_poll for a wait that they do.
 *
 * The supervisor's work — a crashed stage reported or replaced, per-item
 * timeouts enforced, stats, progress and watch tables — is done while the
 * program is inside a call on the graph: this one, mpx_graph_poll,
 * mpx_graph_dispatch, join or collect.  mpx has no thread of its own. */
MPX_MUST_CHECK mpx_item_t *mpx_graph_next(mpx_graph_t *g);

/* The next item as mpx_graph_next gives it, waiting at most timeout_ms
 * milliseconds (0: do not wait, only do what is due; -1, or any negative
 * value: no limit).  Returns
 *
 *   1              *item is the next output item (valid as for next);
 *   0              the graph has ended (finished or failed): *item is
 *                  NULL, and mpx_graph_join() gives the outcome;
 *   MPX_ETIMEDOUT  the time ran out with no item (the graph runs on);
 *   MPX_EINTR      a signal the program handles interrupted the wait
 *                  (the graph runs on; call again to go on waiting:
 *                  nothing is lost);
 *
 * or MPX_EINVAL (g or item NULL), or mpx_graph_start's error when it
 * starts the graph and that fails.  The supervisor's work goes on during
 * the wait exactly as during next's.
 *
 * Signals: any signal whose handler runs during the wait ends it, whether
 * the handler was installed with SA_RESTART or without (signal() sets
 * it), as poll(2) and epoll_wait(2) do; so a Ctrl-C handler that sets a
 * flag is seen at once, not after the next item.  Signals that are
 * ignored, blocked or left to their default action do not interrupt; a
 * SIGCHLD handler does, for the graph's own processes too.  As with
 * poll(2), a signal that comes while the call is not waiting (between
 * two calls, or while it handles what arrived) is not reported: check
 * your flag after each call, or block the signal and wait on a signalfd
 * together with mpx_graph_fd. */
MPX_MUST_CHECK int mpx_graph_poll(mpx_graph_t *g, int timeout_ms, mpx_item_t **item);

/* ---- in an event loop ---------------------------------------------------
 *
 * mpx_graph_fd(g): a descriptor to wait on in the program's own loop
 * (poll, select, epoll, libuv's uv_poll, GLib's g_unix_fd_add, ...) for
 * readability.  It is level-triggered: readable for as long as the graph
 * has something for the program — output to take, or supervisor work due
 * (a stage process exited or crashed, a per-item timeout to enforce, a
 * message from a stage, a stats snapshot, progress bar or watch table
 * due) — and not readable while it has nothing, however long a stage
 * takes over an item.  Once the graph has ended it stays readable.  It is
 * not libzmq's ZMQ_FD, which is edge-triggered and would hang such a
 * loop.  Starts the graph when needed; returns the descriptor (the same
 * one every time), or a negative code (mpx_graph_start's error when it
 * starts the graph and that fails; MPX_ESYS).  The graph owns it: do not
 * read or close it; mpx_node_destroy closes it, so take it out of your
 * loop (uv_poll_stop, ...) before that.
 *
 * mpx_graph_dispatch(g): when the descriptor is readable, do the work
 * due, without waiting (starting the graph when needed), and say what is
 * left for the program:
 *
 *   MPX_DISPATCH_OUTPUT  output is ready: mpx_graph_poll(g, 0, &it)
 *                        returns it (call it until MPX_ETIMEDOUT; while
 *                        the program still holds an item, what waits may
 *                        turn out to be only the end of the stream);
 *   MPX_DISPATCH_IDLE    nothing for the program now: wait for the
 *                        descriptor again;
 *   0                    the graph has ended: mpx_graph_join() gives the
 *                        outcome (a failed stage, say, after dispatch
 *                        stopped the graph);
 *
 * or a negative code as mpx_graph_poll.  An item the program holds stays
 * valid across dispatch.  After dispatch returns, the descriptor is
 * readable again only if something is still pending.  mpx_graph_poll(g,
 * 0, ...) does the same work too, so a loop may also call only that:
 *
 *     struct pollfd p = {mpx_graph_fd(g), POLLIN, 0};   (check it is >= 0)
 *     for (;;) {
 *         poll(&p, 1, -1);                    (with the program's own fds)
 *         int rc = mpx_graph_dispatch(g);
 *         if (rc <= 0)
 *             break;                          (the end, or an error)
 *         mpx_item_t *it;
 *         while ((rc = mpx_graph_poll(g, 0, &it)) == 1)
 *             use(it);
 *         if (rc == 0)
 *             break;
 *     }
 *     rc = mpx_graph_join(g);
 *
 * Crash handling and per-item timeouts then work while the program is
 * busy elsewhere, as long as it serves the descriptor.  The descriptor
 * wakes the loop for the supervisor's deadlines: every stats interval
 * (mpx_graph_set_stats_interval, 250 ms by default) and, when a stage has
 * a per-item timeout, about every eighth of it. */
enum {
    MPX_DISPATCH_OUTPUT = 1,
    MPX_DISPATCH_IDLE = 2,
    /* A bit, alone or with OUTPUT: a put that returned MPX_EAGAIN would
     * find room now (see mpx_graph_put).  Only after such a put: a
     * program with nothing to put is not woken for room. */
    MPX_DISPATCH_INPUT = 4,
};
MPX_MUST_CHECK int mpx_graph_fd(mpx_graph_t *g);
MPX_MUST_CHECK int mpx_graph_dispatch(mpx_graph_t *g);

/* ---- input from the program ---------------------------------------------
 *
 * A stage at the start of the graph that has a process callback (nothing
 * in the graph feeds it: MPX_EZ(mpx_as(4, &worker, NULL), ...), an
 * MPX_MAP, a Seq around a group, ...) is fed by the program: every item
 * the program puts goes to one of them, as a producer's items would
 * (to the one with most room among parallel ones, to each of a
 * broadcast), and the program's end of input is their end of stream.  A
 * source at the start (setup only) runs as always, beside them.  A
 * stage at the start with both setup and process may put in setup and
 * then processes the input.
 *
 * mpx_graph_put(g, data, size), mpx_graph_put_str, mpx_graph_put_parts:
 * one item, with the input meta (below) and "mpx.index", an int64 holding
 * its 0-based position in the input (the number of items put before it),
 * which travels with it and with whatever a stage makes of it unless the
 * stage clears its meta: a result tells which input it came from.  The
 * bytes are copied before it returns: a part of at least the root's pool
 * threshold (mpx_node_set_pool_threshold) into the graph's pool when it
 * has room (a full pool is not waited for: the bytes then go inline),
 * the rest into the message.
 * Starts the graph when needed.  Returns
 *
 *   0              the item is in: it goes out in a batch with the next
 *                  ones, when the batch is full or a millisecond old, and
 *                  at once when the program waits (mpx_graph_next, a poll
 *                  with a timeout, a put that waits) or after a pause;
 *   MPX_EAGAIN     no room, and it did not wait: the program holds output
 *                  it has not taken (mpx_graph_poll would return an item
 *                  now), or the graph is set non-blocking.  Take output
 *                  (poll with a timeout of 0 until MPX_ETIMEDOUT, or wait
 *                  in poll) and put again;
 *   MPX_EINTR      a signal the program handles came while it waited (as
 *                  for mpx_graph_poll); the item is not in;
 *   MPX_ESTOPPED   the graph has ended (join gives the outcome), or every
 *                  stage fed by the program has stopped reading (the
 *                  input then ends by itself: nothing more can go in);
 *   MPX_ESTATE     the graph has no stage fed by the program, or the
 *                  input was closed;
 *   MPX_EINVAL, MPX_ERANGE  bad arguments (more than 65535 parts, a part
 *                  over 4 GiB, an item over the first stages' maximum,
 *                  mpx_node_set_max_item on the root), or the start's
 *                  error.
 *
 * The input is bounded as any edge is: the capacity of the stages it feeds
 * (mpx_node_set_capacity), shared as credit, plus at most one batch held
 * in the program.  Without room a put waits, serving the graph as
 * mpx_graph_poll does (crashes handled, timeouts enforced), while the
 * graph can make room without the program; when room could come only
 * from the program taking output — output is waiting for it — it returns
 * MPX_EAGAIN at once instead.  So a single thread that alternates puts
 * and polls can never deadlock, whatever the capacities and however many
 * items a stage puts per input:
 *
 *     for (each input x) {
 *         while ((rc = mpx_graph_put(g, &x, sizeof x)) == MPX_EAGAIN)
 *             while (mpx_graph_poll(g, 0, &it) == 1)  (or wait: poll(g, -1))
 *                 use(it);
 *         if (rc != 0) break;
 *     }
 *     mpx_graph_close_input(g);
 *     while ((it = mpx_graph_next(g))) use(it);
 *     rc = mpx_graph_join(g);
 *
 * mpx_graph_close_input(g): no more input; its end of stream follows what
 * was put (it never waits).  0; MPX_ESTATE when the graph takes no input.
 * join and collect close the input first (nothing can be put while they
 * wait), and so does mpx_graph_next when nothing was ever put (the graph
 * then runs on its sources alone, as a graph without input would).  Once
 * items were put, mpx_graph_next with the input open waits for output
 * like any wait: close the input, or use mpx_graph_poll.  mpx_graph_poll
 * and the descriptor close nothing (an event loop may put later): a
 * graph whose first stage has a process callback, mpx_exec's included,
 * which started the command in setup and ended on its own before input
 * from the program existed, now ends under them only once the input is
 * closed.
 *
 * A stage fed by the program is restarted like any stage with input
 * (mpx_node_on_error, mpx_node_set_retries): what it held is put again
 * to its siblings or its replacement by the program's side, as credit
 * allows, during the program's calls on the graph.  That is at least
 * once: an input a dead worker had finished but not confirmed is
 * processed again, and its result may come a second time, even long
 * after the first; tell repeats apart by mpx.index (the pool map,
 * mpx/imap.h, drops them itself).
 *
 * mpx_graph_set_nonblocking(g, on): puts never wait (MPX_EAGAIN instead);
 * for event loops, which learn of room from mpx_graph_fd and
 * MPX_DISPATCH_INPUT.  Also before start.
 *
 * The input meta: what every following put carries (besides mpx.index),
 * until changed; set before or after start.  mpx_graph_meta_set refuses
 * "mpx.index" (MPX_EINVAL); mpx_graph_meta_del of a key not set gives
 * MPX_EINVAL.  mpx_graph_input_count: the items put so far. */
MPX_MUST_CHECK int mpx_graph_put(mpx_graph_t *g, const void *data, size_t size);
MPX_MUST_CHECK int mpx_graph_put_str(mpx_graph_t *g, const char *s);
MPX_MUST_CHECK int mpx_graph_put_parts(mpx_graph_t *g, const mpx_part_t *parts, size_t n);
int mpx_graph_close_input(mpx_graph_t *g);
MPX_MUST_CHECK int mpx_graph_set_nonblocking(mpx_graph_t *g, bool on);
MPX_MUST_CHECK int mpx_graph_meta_set(mpx_graph_t *g, const char *key, const void *value,
                                      size_t size);
MPX_MUST_CHECK int mpx_graph_meta_set_str(mpx_graph_t *g, const char *key, const char *value);
MPX_MUST_CHECK int mpx_graph_meta_set_i64(mpx_graph_t *g, const char *key, int64_t value);
int mpx_graph_meta_del(mpx_graph_t *g, const char *key);
void mpx_graph_meta_clear(mpx_graph_t *g);
uint64_t mpx_graph_input_count(const mpx_graph_t *g);

/* Wait until the graph ends, discarding items nobody took with
 * mpx_graph_next().  Every process has exited and the runtime directory is
 * removed when it returns.  Returns 0 on success, MPX_ESTAGE /
 * MPX_ECRASH / MPX_ESTOPPED / ... otherwise.  Starts the graph when needed;
 * once ended, returns the same outcome again. */
MPX_MUST_CHECK int mpx_graph_join(mpx_graph_t *g);

/* Stop a running graph: every process is asked to end at once (teardown
 * does not run) and killed if it has not within a short grace period.
 * Returns once every process is gone; join then returns MPX_ESTOPPED. */
int mpx_graph_stop(mpx_graph_t *g);

/* Run to the end and collect every output item (with its meta).  Items
 * whose parts are in the graph's pool stay there, held by the list, while
 * the pool is less than half full (read in place, no copy); later ones are
 * copied out.  The list keeps the pool mapped: it may outlive the graph,
 * and mpx_list_destroy lets its blocks go. */
typedef struct mpx_list mpx_list_t;
MPX_MUST_CHECK int mpx_graph_collect(mpx_graph_t *g, mpx_list_t **out);
size_t mpx_list_size(const mpx_list_t *list);
mpx_item_t *mpx_list_at(const mpx_list_t *list, size_t i);
void mpx_list_destroy(mpx_list_t **list);

/* Start, join and destroy `g`; prints the error to stderr when it fails.
 * Returns what join returned. */
MPX_MUST_CHECK int mpx_run(mpx_graph_t *g);

/* Message of the first failure ("" when none): the one that ended the
 * run; what failed after it is its consequence. */
const char *mpx_graph_error(const mpx_graph_t *g);
bool mpx_graph_started(const mpx_graph_t *g);
bool mpx_graph_finished(const mpx_graph_t *g); /* ended, processes gone */

/* Private directory (mode 0700) holding the graph's sockets while it runs;
 * NULL before start.  It is removed when the graph ends; its path stays
 * readable here afterwards. */
const char *mpx_graph_runtime_dir(const mpx_graph_t *g);

/* One stage process, in plan order (the order of the declaration). */
typedef struct mpx_instance_info {
    const char *name;  /* stage name */
    int instance;      /* index among the node's instances */
    int instances;     /* n of mpx_as / mpx_by, else 1 */
    pid_t pid;         /* 0 before start */
    bool exited;       /* the process has been reaped */
    int wait_status;   /* as from waitpid, once exited */
    long max_rss_kib;  /* peak resident set size, once exited */
    unsigned long long items_in, items_out, items_dropped;
    /* Under a policy other than stop (see mpx_node_on_error), over all
     * the processes the instance had: items given up on, items sent again
     * after a consumer died, and how many times it was replaced.  The
     * other counts are those of its last process. */
    unsigned long long items_failed, items_resent;
    int restarts;
} mpx_instance_info_t;

/* Number of stage processes of a started (or checked) graph.  An elastic
 * group (mpx_node_set_elastic) counts its most: each of its slots is one
 * entry, and a slot that never had a process has pid 0 and is exited. */
size_t mpx_graph_instance_count(const mpx_graph_t *g);
MPX_MUST_CHECK int mpx_graph_instance_info(const mpx_graph_t *g, size_t i, mpx_instance_info_t *out);

#ifdef __cplusplus
}
#endif
#endif
