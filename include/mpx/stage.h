/* mpx/stage.h — what a stage is and what it may do while it runs.
 *
 * A stage is a struct of lifecycle callbacks (mpx_stage_def_t).  mpx forks
 * one process per stage instance and calls, in this order:
 *
 *   initialize  in the parent, before fork, once per instance.  May fill
 *               the instance's state or open files: the child inherits
 *               all of it.  Cannot put (a put there fails the run).
 *   setup       in the child, once.  A source (a stage that no other
 *               stage feeds) produces its items here: when its setup
 *               returns, its output is complete (teardown may still put),
 *               so a source needs no mpx_stop.  It returns 0 when it put
 *               what it meant to, an error to fail the run, or the
 *               MPX_ESTOPPED a put gave it when downstream stopped.
 *   process     in the child, once per input item (mpyx's `do`).
 *   teardown    in the child, once, after every upstream stage finished and
 *               this stage's input is drained.  May still put.
 *   finalize    in the parent, once per instance, after the graph ended
 *               (whatever the outcome), to release what initialize took.
 *               Cannot put either: a put there fails a run that had
 *               succeeded.
 *
 * Two optional hooks serve stages that keep items across calls (batching,
 * reordering, zipping):
 *
 *   idle        in the child, whenever the stage has processed every item
 *               that arrived and is about to wait for more.  May put.
 *   mark        in the child, when a mark (see mpx_put_mark) reaches the
 *               stage.  May put; what it puts travels ahead of the mark.
 *
 * Each callback returns 0 on success and anything else on failure; a
 * failure ends the run and mpx_graph_error() names the stage, instance and
 * the message given to mpx_fail() (without one, the code: "returned -1
 * without a message", or the MPX_E... code and the call that gave it).
 *
 * A refused put sends nothing, and no item is lost silently.  A put
 * refused because every consumer downstream has stopped (MPX_ESTOPPED)
 * ends the stage: a callback that then returns MPX_ESTOPPED, -1 or 0 is
 * not an error, unless it called mpx_fail(); the stage simply ends, as a
 * writer into a closed pipe.  A put refused for any other reason
 * (MPX_ESTATE outside setup, process, teardown, idle and mark; MPX_ERANGE;
 * MPX_EINVAL; a system error: each a mistake in the stage or a failure of
 * the process, never a condition to work around) fails the callback that
 * made it when the callback returns, whatever it returns, and the message
 * names the call and why, e.g.
 * "process failed on item 7: mpx_put_parts: 70000 parts, more than the
 * 65535 an item may have; process ignored the MPX_ERANGE it returned, and
 * the item was lost" or "initialize failed: mpx_put_i64 called in
 * initialize, ...".  In process, that failure is the item's, under the
 * stage's error policy (mpx_node_on_error) like any other.
 *
 * Items are one or more parts of bytes plus meta (string keys to byte
 * values).  Pointers an item hands out stay valid until the callback that
 * received it returns; part data is 8-byte aligned and followed by a NUL
 * byte, so a part put with mpx_put_str() reads back as a C string.
 */
#ifndef MPX_STAGE_H
#define MPX_STAGE_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_stage mpx_stage_t; /* a running stage instance */
typedef struct mpx_item mpx_item_t;   /* an item received or produced */

typedef struct mpx_stage_def {
    const char *name;  /* process name (ps, top) and name in errors */
    size_t args_size;  /* bytes copied from the args given to mpx_stage() */
    size_t state_size; /* bytes of zeroed per-instance state */
    int (*initialize)(mpx_stage_t *st);
    int (*setup)(mpx_stage_t *st);
    int (*process)(mpx_stage_t *st, mpx_item_t *item);
    int (*teardown)(mpx_stage_t *st);
    void (*finalize)(mpx_stage_t *st);
    int (*idle)(mpx_stage_t *st);
    /* Return 0 to pass the mark on, MPX_MARK_CONSUMED to end it here. */
    int (*mark)(mpx_stage_t *st, uint64_t value);
} mpx_stage_def_t;

#define MPX_MARK_CONSUMED 1

/* One part of a multi-part item, for mpx_put_parts(). */
typedef struct mpx_part {
    const void *data;
    size_t size;
} mpx_part_t;

/* ---- the stage's own context -------------------------------------------- */

/* The copy of the args given to mpx_stage() (shared by all instances of
 * that node, read-only), or NULL when args_size is 0. */
const void *mpx_args(const mpx_stage_t *st);

/* This instance's state_size bytes, zeroed before initialize; NULL when
 * state_size is 0.  What initialize writes here is seen by the child. */
void *mpx_state(mpx_stage_t *st);

const char *mpx_stage_name(const mpx_stage_t *st);
int mpx_stage_instance(const mpx_stage_t *st);  /* 0 .. instances-1 */
int mpx_stage_instances(const mpx_stage_t *st); /* n of mpx_as/mpx_by, else 1 */

/* ---- output ------------------------------------------------------------- */

/* Send an item downstream, with the current meta (see below).  The bytes
 * are copied before the call returns.  A put blocks while every edge it
 * could use is full (backpressure).  Returns 0, or:
 *   MPX_ESTOPPED  every consumer downstream has stopped: end the callback
 *                 and return the code; the stage ends without error.
 *   MPX_ESTATE    outside setup, process, teardown, idle and mark (in
 *                 initialize or finalize, which run in the parent).
 *   MPX_ERANGE    the item is too large: a part over 4 GiB, over 65535
 *                 parts, or over the node's mpx_node_set_max_item.
 *   MPX_EINVAL    NULL data with a nonzero size, a NULL string or item
 *                 (or st NULL).
 *   MPX_ENOMEM, MPX_ESYS  the stage process cannot send.
 * Every code but MPX_ESTOPPED means the item was lost, and fails the
 * running callback when it returns, even if it returns 0 (see the top of
 * this file): check the result and return it, or return mpx_fail() to say
 * more.  The message names the call and why it was refused. */
MPX_MUST_CHECK int mpx_put(mpx_stage_t *st, const void *data, size_t size);
MPX_MUST_CHECK int mpx_put_str(mpx_stage_t *st, const char *s);
MPX_MUST_CHECK int mpx_put_i64(mpx_stage_t *st, int64_t v);
MPX_MUST_CHECK int mpx_put_f64(mpx_stage_t *st, double v);
MPX_MUST_CHECK int mpx_put_parts(mpx_stage_t *st, const mpx_part_t *parts, size_t n);
/* Send the parts of `item` (typically the input item) unchanged, with the
 * current meta.  The input item in hand, 64 KiB or more and with its meta
 * untouched, leaves in the message it came in, without being copied.
 * Returns as mpx_put. */
MPX_MUST_CHECK int mpx_put_item(mpx_stage_t *st, const mpx_item_t *item);

/* Zero copy through the graph's pool (graph.h, mpx_graph_set_pool).
 *
 * mpx_alloc gives a block of at least `size` bytes in the pool, which only
 * this stage holds: write the item into it, then mpx_put_alloc puts it
 * (`size` at most what was asked for) with the current meta — only a
 * reference crosses the edge, and the consumer's mpx_item_data points
 * into the block.  After mpx_put_alloc the block is no longer the stage's,
 * whether or not the put went through; mpx_free returns a block that was
 * not put.  A block is read-only from the moment it is put: its consumers,
 * a copy kept to send again after a crash, a broadcast's branches and
 * mpx_item_dup copies all read the same bytes, so nobody may write into a
 * block they did not get from mpx_alloc unless mpx_item_writable gives
 * them a pointer to it (else, to change an item, mpx_alloc a new block and
 * write the result there: one read and one write of each byte, as an
 * in-place pass costs).
 *
 * mpx_alloc waits while the pool is full (time counted as blocked in the
 * stats), up to 100 ms: then, as when the graph has no pool or the block
 * could not fit in it, it gives private memory instead, which
 * mpx_put_alloc sends through the socket (a copy) and frees, and mpx_free
 * frees — so stages that allocate while the pool is full of items queued
 * before them slow down rather than wait on each other for good.  It
 * returns NULL when size is 0, outside setup/process/teardown/idle/mark,
 * when memory runs out, or when a stop ends the wait.  Blocks a stage
 * still holds in the pool when its process ends are freed by the
 * supervisor. */
void *mpx_alloc(mpx_stage_t *st, size_t size);
/* In process: a writable pointer to part `part` of the item in hand when
 * the stage may change its bytes in place, else NULL (then mpx_alloc a
 * block and write the result there).  It may when the part is in a pool
 * block that only this stage and the record it came in hold: not a
 * broadcast's (its other branches read the block too), not one another
 * stage or this one keeps a copy of (mpx_item_dup), not one a stage
 * upstream still holds, and never in a stage that is replaced when it
 * dies (retries or an error policy): its replacement would be sent the
 * block again, changed.  Change the bytes, not the size; mpx_put_item
 * then passes the changed item on by reference. */
void *mpx_item_writable(mpx_stage_t *st, const mpx_item_t *it, size_t part);
MPX_MUST_CHECK int mpx_put_alloc(mpx_stage_t *st, void *block, size_t size);
int mpx_free(mpx_stage_t *st, void *block);

/* Put into the side graph attached under `name` with mpx_graph_xcut()
 * (see graph.h), with the current meta.  As mpx_put, and MPX_EINVAL when
 * the graph has no side graph of that name.  MPX_ESTOPPED when every
 * consumer of that side graph has stopped: the item is not sent, and a
 * stage that ignores the code goes on without error. */
MPX_MUST_CHECK int mpx_put_to(mpx_stage_t *st, const char *name, const void *data, size_t size);
MPX_MUST_CHECK int mpx_put_parts_to(mpx_stage_t *st, const char *name, const mpx_part_t *parts, size_t n);

/* Send a mark downstream: a punctuation that travels behind everything
 * this stage put before it.  A stage downstream sees it (its `mark` hook
 * runs) once it has arrived through every path that leads there from this
 * stage, after every item that came before it on those paths, so that by
 * then everything this stage put before the mark, and everything made
 * from those items, has been processed there (unless a stage in between
 * keeps items to put them later, as Batch does).  Then the mark goes on.
 * Marks cost one small message per consumer; stages without a `mark` hook
 * simply pass them on.  Returns as mpx_put (a refused mark fails the
 * callback in the same way). */
MPX_MUST_CHECK int mpx_put_mark(mpx_stage_t *st, uint64_t value);

/* Have the idle hook run again whenever `fd` turns readable while the
 * stage waits for input — for a stage that gets data from elsewhere too,
 * like the output of a command it runs.  Up to 8 descriptors per stage;
 * meaningful only with an idle hook.  0, MPX_EINVAL, MPX_ERANGE (full),
 * MPX_ESTATE outside the stage process. */
MPX_MUST_CHECK int mpx_watch_fd(mpx_stage_t *st, int fd);
int mpx_unwatch_fd(mpx_stage_t *st, int fd);

/* Wait as poll(2) does for the stage's own descriptors (a command's
 * pipes, a socket), while the stage still hears the runtime: a stop from
 * the parent (mpx_graph_stop, a failure elsewhere) ends the process
 * inside the call, as it would inside a put, and the monitor's counters
 * stay current.  A stage that waits in plain poll(2) hears no stop until
 * it returns, and if that takes longer than the parent's grace (300 ms)
 * its process is killed with SIGKILL.  fds and timeout_ms as for poll(2)
 * (negative: no limit); POLLIN, POLLOUT and POLLPRI are waited for,
 * errors and hang-ups always wake it, and revents are filled by poll(2)
 * itself.  Returns the number of descriptors with revents, 0 when the
 * time passed, or MPX_EINVAL, MPX_ENOMEM, MPX_ESYS, or MPX_ESTATE outside
 * the stage process. */
MPX_MUST_CHECK int mpx_poll(mpx_stage_t *st, struct pollfd *fds, size_t n, int timeout_ms);

/* Tie a process the stage forked (a command it runs) to the stage's
 * process: whenever that process ends — its work done, after its own
 * failure, or stopped by the parent (mpx_graph_stop, a failure
 * elsewhere) — the child is sent SIGTERM, SIGKILL if it is still there
 * 100 ms later, and is reaped first, so that by the time
 * mpx_graph_join returns no process of the stage is left for another
 * process to reap.  A stage that ends the child itself calls
 * mpx_disown_child before it reaps it (once reaped, its pid may name
 * another process).  Nothing runs when the stage process is killed
 * (SIGKILL: a timeout, a stage that did not hear a stop in time): a child
 * that must not outlive it asks the kernel to end it (prctl
 * PR_SET_PDEATHSIG), and is then reaped by whichever process adopts it
 * (init, or the nearest subreaper).  Up to 8 per stage.  0, MPX_EINVAL
 * (pid is no child of this process), MPX_ERANGE (full), MPX_ESTATE
 * outside the stage process. */
MPX_MUST_CHECK int mpx_own_child(mpx_stage_t *st, pid_t pid);
/* 0, or MPX_EINVAL when pid is not owned. */
int mpx_disown_child(mpx_stage_t *st, pid_t pid);

/* Items are sent in batches while an edge is busy; a stage that puts an
 * item and then works for a long time before its next put may call this
 * so that the item leaves at once. */
int mpx_flush(mpx_stage_t *st);

/* End this stage early.  After the current callback returns, process is
 * not called again; teardown runs once and may still put; the stage's
 * downstream then sees its end of stream.  Items that upstream stages still
 * send to a stopped stage are received and discarded (counted as dropped),
 * so no producer ever waits on it; a producer all of whose consumers have
 * stopped is stopped in turn, like a writer into a closed pipe.  A source
 * need not call it: its output ends when setup returns (see above).
 * Returns 0 (MPX_ESTATE in initialize). */
int mpx_stop(mpx_stage_t *st);
/* True once the stage stopped itself or is being stopped. */
bool mpx_stopping(const mpx_stage_t *st);

/* Record why the stage fails and return MPX_ESTAGE, so that a callback can
 * `return mpx_fail(st, "cannot open %s", path);`.  The graph's error
 * message keeps up to about 3900 bytes of it. */
int mpx_fail(mpx_stage_t *st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Hand what the stage could not handle, though it never came as an input
 * item (a source's unreadable directory, a bad record inside a file), to
 * the stage's error policy (mpx_node_on_error), as if an item of `parts`
 * with the current meta had failed with this message:
 *   stop (the default)  the message is recorded as by mpx_fail() and
 *                       MPX_ESTAGE returned: return it from the callback
 *                       and the run fails with that message;
 *   skip                a line on stderr names the stage, the current meta
 *                       and the message; counted in items_failed; returns 0;
 *   dead letter         the parts go to the dead-letter side graph with the
 *                       current meta plus mpx.error, mpx.stage and
 *                       mpx.instance; counted; returns 0.
 * After 0 the stage goes on, its current meta as it was.  Retries do not
 * apply.  MPX_ESTATE in initialize and finalize, MPX_EINVAL for NULL. */
MPX_MUST_CHECK int mpx_reject(mpx_stage_t *st, const mpx_part_t *parts, size_t n,
                              const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* ---- meta of the item being made ---------------------------------------- *
 * Every put carries the stage's current meta.  While process runs, the
 * current meta starts as the input item's meta, so a stage that does not
 * touch it passes it on unchanged.  In setup and teardown it starts empty
 * and keeps what the stage sets across puts.  Keys are C strings of at most
 * 255 bytes; values are bytes (a NUL byte is kept after each value).
 */
MPX_MUST_CHECK int mpx_meta_set(mpx_stage_t *st, const char *key, const void *value, size_t size);
MPX_MUST_CHECK int mpx_meta_set_str(mpx_stage_t *st, const char *key, const char *value);
MPX_MUST_CHECK int mpx_meta_set_i64(mpx_stage_t *st, const char *key, int64_t value);
/* The value, or NULL when the key is absent; *size (if not NULL) gets its
 * length.  Valid until the meta changes or the callback returns. */
const void *mpx_meta_get(const mpx_stage_t *st, const char *key, size_t *size);
const char *mpx_meta_str(const mpx_stage_t *st, const char *key);
/* 0 and *out set, MPX_EINVAL when absent, MPX_ERANGE when not 8 bytes. */
MPX_MUST_CHECK int mpx_meta_i64(const mpx_stage_t *st, const char *key, int64_t *out);
int mpx_meta_del(mpx_stage_t *st, const char *key); /* 0, or MPX_EINVAL if absent */
void mpx_meta_clear(mpx_stage_t *st);
size_t mpx_meta_count(const mpx_stage_t *st);
MPX_MUST_CHECK int mpx_meta_at(const mpx_stage_t *st, size_t i, const char **key,
                const void **value, size_t *size);

/* ---- reading an item ---------------------------------------------------- */

size_t mpx_item_parts(const mpx_item_t *it);
/* Part data (NULL when part is out of range) and its size. */
const void *mpx_item_data(const mpx_item_t *it, size_t part);
size_t mpx_item_size(const mpx_item_t *it, size_t part);
/* Part 0 read as a value; 0 when part 0 is missing or of another size.
 * Use mpx_item_get_i64()/mpx_item_get_f64() to tell those cases apart. */
int64_t mpx_item_i64(const mpx_item_t *it);
double mpx_item_f64(const mpx_item_t *it);
/* Part 0 as a C string ("" when the item has no part). */
const char *mpx_item_str(const mpx_item_t *it);
MPX_MUST_CHECK int mpx_item_get_i64(const mpx_item_t *it, size_t part, int64_t *out);
MPX_MUST_CHECK int mpx_item_get_f64(const mpx_item_t *it, size_t part, double *out);

/* Make the current meta a copy of the meta `item` carries (typically an
 * item kept with mpx_item_dup, about to be put again). */
MPX_MUST_CHECK int mpx_meta_load(mpx_stage_t *st, const mpx_item_t *item);

/* The meta the item arrived with. */
const void *mpx_item_meta(const mpx_item_t *it, const char *key, size_t *size);
const char *mpx_item_meta_str(const mpx_item_t *it, const char *key);
MPX_MUST_CHECK int mpx_item_meta_i64(const mpx_item_t *it, const char *key, int64_t *out);
size_t mpx_item_meta_count(const mpx_item_t *it);
/* An error result (MPX_ON_ERROR_RESULT, graph.h): its error text; NULL
 * for any other item. */
const char *mpx_item_error(const mpx_item_t *it);
MPX_MUST_CHECK int mpx_item_meta_at(const mpx_item_t *it, size_t i, const char **key,
                     const void **value, size_t *size);

/* A copy of an item, parts and meta, that outlives the callback: for
 * stages that keep items.  NULL when out of memory.  Free it with
 * mpx_item_free (which sets *it to NULL). */
MPX_MUST_CHECK mpx_item_t *mpx_item_dup(const mpx_item_t *it);
void mpx_item_free(mpx_item_t **it);

#ifdef __cplusplus
}
#endif
#endif
