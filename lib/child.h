/* lib/child.h — the life of one stage process after fork, and the stage
 * context (struct mpx_stage) shared with the parent's initialize/finalize.
 */
#ifndef MPX_LIB_CHILD_H
#define MPX_LIB_CHILD_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "edge.h"
#include "graph/plan.h"
#include "meta.h"

struct child_rt;
struct pollfd;

struct mpx_stage {
    const plan_t *plan;
    int id;
    const plan_inst_t *pi;
    void *state;
    struct child_rt *rt; /* NULL in the parent */
    char *fail_msg;      /* from mpx_fail */
    bool stop_self;      /* mpx_stop was called */
    /* A put refused for any reason but a stop is a failure of the callback
     * that made it, even one that went on as if it had gone through: the
     * item is lost.  The first such refusal in the running callback, named
     * for the message (stage.c): the code, and the call and why, as in
     * "mpx_put_i64 called in initialize". */
    const char *callback; /* the callback running: "setup", "initialize"... */
    int refused_rc;       /* 0: no put refused in it */
    char refused[224];
    char put_err[160];    /* why the put being made is refused, when it says more */
};

/* A callback begins: name it, with no refusal noted. */
static inline void stage_begin(struct mpx_stage *st, const char *callback)
{
    st->callback = callback;
    st->refused_rc = 0;
}

/* Why a callback that returned rc failed, in words (its mpx_fail message,
 * the refused put it passed on or went on after, or the code); NULL when
 * it did not fail: rc is 0 and no put was refused.  buf holds the words
 * when they are made here; 512 bytes hold any. */
const char *stage_failure(const struct mpx_stage *st, int rc, char *buf, size_t cap);

/* What the supervisor can read of a stage process after it died: a slot
 * per instance in memory shared with the parent (mapped before fork),
 * written by the child as it takes each item.  It costs a few stores per
 * item; it is what lets a crash report name the item in hand. */
#define BLACKBOX_META 432
typedef struct blackbox {
    volatile uint32_t busy;    /* process is running on the item below */
    volatile uint32_t ended;   /* end of stream sent: nothing to recover */
    volatile uint32_t stopped; /* the stage called mpx_stop */
    volatile uint32_t at_end;  /* its input ended: in teardown or leaving */
    /* Items in, out and dropped, noted when it ended or stopped. */
    uint64_t items_in, items_out, items_dropped;
    volatile uint64_t item_no; /* items taken so far; the one in hand is the last */
    volatile uint64_t failed, resent; /* as in DONE, kept up to date */
    uint32_t producer, prod_gen;
    uint64_t rec;              /* its index in the producer's stream */
    uint32_t meta_size;        /* 0 with cut set: too large to keep */
    uint16_t nmeta, cut;
    uint8_t meta[BLACKBOX_META];
    /* Kept across replacements (everything above is cleared then).  A
     * process the fork server makes claims its place in `spawn`: the
     * generation in the high half, its pid in the low, where the parent
     * left 0 (wanted).  If the parent gave up on the server first (all
     * ones), it leaves at once and notes its pid in `late`, to be reaped. */
    volatile uint64_t spawn;
    volatile int32_t late;
} blackbox_t;

typedef enum child_phase {
    PHASE_INIT,
    PHASE_SETUP,
    PHASE_PROCESS,
    PHASE_TEARDOWN,
    PHASE_END,
} child_phase_t;

/* Child processes a stage may own (mpx_own_child). */
#define CHILD_OWNED_MAX 8

typedef struct child_rt {
    mpx_stage_t st;
    const plan_t *plan;
    int id;
    uint32_t gen;        /* 0, or how many times this instance was replaced */
    blackbox_t *box;
    bool recover_due;    /* a consumer was replaced: send again what it held */
    unsigned restarts_seen;
    /* Its elastic group let it go (WIRE_LEAVE): it ends like any stage
     * whose input ended, and exits once its consumers took its end. */
    bool leaving;
    uint64_t failed;     /* items given up on under skip / dead_letter */
    const char *dir;
    xport_t *ctl;     /* the control channel (edge.h) */
    bool parent_seen; /* the parent connected to it */
    edge_in_t *in;   /* NULL for a stage nobody feeds */
    edge_out_t *out;
    meta_cur_t meta;
    child_phase_t phase;
    bool ready_sent, go, released;
    bool in_process; /* inside the process callback (timing applies) */
    uint64_t ctl_at; /* ticks when the control channel was last read */
    uint64_t tick_at; /* ticks when batches were last checked for age */
    unsigned puts;   /* since the control channel was last looked at */
    /* A put of up to PUT_PLAIN_MAX bytes below the pool's threshold with
     * the current meta empty may skip every other check (lib/stage.c,
     * put_plain): the run has gone, the phase allows puts, nothing times
     * or stamps the stage's items, and such a put is not over the item
     * limit.  Set by child_before_put, which every put passes through at
     * least every 128 puts; cleared when puts end.  (pool_min is not in
     * it: mpx_put_alloc lifts it for one put.) */
    bool put_plain;
    int watch[8];    /* descriptors whose readiness wakes the idle hook */
    int nwatch;
    /* Processes the stage forked and owns (mpx_own_child), ended and
     * reaped before this process leaves; each with its pidfd (-1 without
     * one), so that a pid the stage reaped without disowning it, and that
     * now names another process, is never signalled. */
    pid_t owned[CHILD_OWNED_MAX];
    int owned_fd[CHILD_OWNED_MAX];
    int nowned;
    struct timespec item_start; /* when process began on the current item */
    /* For the monitor (lib/stats.c reads what is sent). */
    int state;             /* mpx_stage_state_t */
    uint64_t stats_ns;     /* reporting interval; 0: never */
    uint64_t stats_at;     /* CLOCK_MONOTONIC ns of the last report */
    uint64_t wait_in, wait_out; /* ns spent waiting for input, for room */
    uint64_t progress_total, progress_done;
    bool progress_own;     /* the stage counts its own progress */
    /* Parts of this many bytes or more travel in the graph's pool
     * (SIZE_MAX: there is none). */
    size_t pool_min;
    /* Seq's numbering of what goes out on port 0, when this process runs
     * the stamp (graph/seqhost.h): the meta entry each record gets, the
     * inputs numbered, `stamp_next` at the last mark, and bytes since. */
    const seq_args_t *stamp;
    size_t stamp_klen, stamp_entry;
    int64_t stamp_next, stamp_marked;
    size_t stamp_bytes;
    /* ... and Seq's reorder of its input (lib/reorder.h), or NULL, with
     * the items it has handed to the process callback: the number of the
     * item in hand (what arrived is counted as it arrives, long before). */
    struct reorder *reorder;
    uint64_t delivered;
    /* Blocks mpx_alloc gave outside the pool (lib/stage.c). */
    struct heap_block *heap;
    size_t nheap, capheap;
    /* Tests only (lib/testhook.h): SIGKILL itself once marked ended. */
    bool crash_when_ended;
    char err[256];
} child_rt_t;

/* What a replacement takes up from the process it replaces. */
typedef enum child_resume {
    CHILD_FRESH,    /* the whole life of the stage, setup first */
    /* The process had finished its input (and had its output confirmed)
     * and died before it was let go: only end the stream again. */
    CHILD_FINISHED,
    /* The stage had stopped itself (mpx_stop): take nothing more, only
     * drain the input to its end and end the stream. */
    CHILD_STOPPED,
    /* A new instance of an elastic group: the whole life of the stage,
     * and no mark goes on before every producer said which it sends
     * (lib/edge.h, Elastic groups). */
    CHILD_JOIN,
} child_resume_t;

/* Everything a child needs from the parent at fork time. */
typedef struct child_args {
    const plan_t *plan;
    int id;
    uint32_t gen;
    blackbox_t *box;
    const char *dir;
    pid_t parent;
    mpx_stage_t st;
    const uint32_t *gens; /* every instance's generation now, by id */
    child_resume_t resume;
    const int *close_fds; /* the parent's descriptors the child must drop */
    int nclose;
    /* Listening sockets made for it before fork (supervisor.c fork_all),
     * for its control channel and its inbox; -1: it binds its own. */
    int ctl_fd, inbox_fd;
    int stats_ms; /* how often to report to the monitor */
} child_args_t;

/* Run the stage; never returns. */
_Noreturn void child_main(const child_args_t *a);

#define CHILD_WATCH_MAX 8

/* For the stage API (lib/stage.c). */
int child_before_put(child_rt_t *rt);
void child_poll_ctl(child_rt_t *rt);
/* mpx_poll's work: poll(2) on the stage's descriptors while the control
 * channel is served (a stop leaves the process there). */
int child_poll_fds(child_rt_t *rt, struct pollfd *fds, size_t n, int timeout_ms);
/* Report counters now (the state changed, or an interval passed). */
void child_report(child_rt_t *rt);
/* mpx_reject's work: the stage's error policy applied to `parts` with the
 * current meta, as to an item that failed.  0 when the stage goes on. */
int child_reject(child_rt_t *rt, const mpx_part_t *parts, size_t n, const char *why);
/* A pool block of at least `size` bytes held by the stage, waiting while
 * the pool is full: up to `wait_ms` (-1: until a stop), counted as time
 * blocked on output.  0 with *blk; MPX_ESTOPPED, MPX_ETIMEDOUT, or the
 * pool's error. */
int child_pool_alloc(child_rt_t *rt, size_t size, int wait_ms, uint32_t *blk);
/* Close the stamp's epoch (graph/seqhost.h) if anything was numbered
 * since the last: a mark, which the reorder waits for, goes out now.
 * 0, or edge_out_mark's error. */
int child_stamp_mark(child_rt_t *rt);
/* Put on an output port (0: the graph, others: side graphs). */
int stage_put_port(mpx_stage_t *st, int port, const mpx_part_t *parts, size_t n);

#define PUT_PLAIN_MAX 64

/* What every put must do first: wait for the go, and now and then look
 * at the control channel (a stop must reach a stage that only puts). */
static inline int child_put_check(child_rt_t *rt)
{
    if (__builtin_expect(!rt->go || ++rt->puts >= 128, 0))
        return child_before_put(rt);
    return 0;
}

/* Exit codes a child uses when it cannot report over the control channel. */
#define CHILD_EXIT_SETUP_FAILED 70

#endif
