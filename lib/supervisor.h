/* lib/supervisor.h — the parent's side of a running graph: forking,
 * watching and reaping the stage processes, the control channel, the
 * output collector, stopping, and cleaning up.  Runs only inside the
 * library calls of the thread that started the graph: there is no
 * background thread.  A program's event loop gets that work done by
 * serving the graph's descriptor (sup_fd, sup_dispatch).
 */
#ifndef MPX_LIB_SUPERVISOR_H
#define MPX_LIB_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "child.h"
#include "edge.h"
#include "graph/node.h"
#include "graph/plan.h"

typedef struct run_child {
    pid_t pid;
    int pidfd; /* -1 when pidfd_open is not available */
    bool hello, ready, done, released, stop_sent, exited;
    int pending; /* consumers (the sink included) not done yet */
    int wait_status;
    long max_rss_kib;
    uint64_t items_in, items_out, items_dropped;
    /* Failures (see mpx_node_on_error): replacements so far, and the
     * current process's generation; deaths in a row before an item was
     * taken; the per-item timeout's watch. */
    uint32_t gen;
    int restarts, barren, ended_deaths;
    /* Over every process of the instance: the dead ones' from their
     * black boxes, plus the DONE of the last. */
    uint64_t items_failed, items_resent;
    uint64_t failed_before, resent_before; /* of the processes that died */
    /* What the current process took up from the one it replaced
     * (child_args_t): when not all of it, its own counts are nothing and
     * the dead one's stand. */
    child_resume_t resume;
    /* The restart last announced for this instance, for producers that
     * did not hear it (forked meanwhile, or the send failed); and
     * whether this one, as a producer, missed one. */
    wire_restart_t restart;
    int restart_hand; /* the producer the item in hand came from, or -1 */
    char restart_why[300];
    bool owe_restarts;
    bool timed_out;
    bool wedged;      /* a replacement killed for not starting */
    long forked_ms;   /* when a replacement was forked */
    uint64_t watch_no;
    long watch_since;
    mpx_stage_t st; /* args and state, for initialize/finalize */
    bool initialized;
    /* An elastic group's slot (lib/grow.c): whether it has a process. */
    int slot; /* slot_state_t */
    bool owe_joins; /* a producer that missed a join message */
} run_child_t;

typedef enum slot_state {
    SLOT_RUNS,    /* has a process that takes its share (every fixed instance) */
    SLOT_OFF,     /* no process; counted exited, done and ready */
    SLOT_JOINING, /* forked, its producers told; not ready yet */
    SLOT_LEAVING, /* told to leave: finishing what it holds */
} slot_state_t;

struct grow;

typedef enum run_state { RUN_NEW, RUN_STARTING, RUN_RUNNING, RUN_ENDED } run_state_t;

struct mpx_run {
    mpx_node_t *root;
    plan_t *plan;
    run_state_t state;
    int status;    /* outcome: 0 or the first failure's code */
    char *error;   /* the first failure's message */
    bool failing;  /* a failure is recorded: stop at the next chance */
    bool stopping; /* STOP has been sent */
    char dir[128];
    bool have_dir;
    run_child_t *ch;
    int n;
    void *zctx;
    xport_t *ctl; /* the control channel to every process (edge.h) */
    edge_in_t *sink;
    bool sink_complete;
    int nready;
    int nexited;     /* children with exited set */
    int epfd;        /* epoll over the children's pidfds, or -1 */
    bool polling;    /* some child is watched without a pidfd: poll waitpid */
    int sink_listen; /* the output's listening socket until it is adopted, or -1 */
    bool restarted;  /* some instance was replaced: look for stuck replacements */
    bool owing;      /* some producer missed a restart message */
    bool gave_up;    /* a replacement was given up on: reap late arrivals */
    bool stop_owed;  /* a stop could not be sent to some child */
    long next_check_ms; /* when check_timeouts is due */
    blackbox_t *boxes;  /* n slots shared with the children (child.h) */
    size_t boxes_size;
    struct fd_id *fds_at_fork; /* descriptors open when the stages were forked */
    int nfds_at_fork;
    int timeout_check_ms; /* 0: no stage has a per-item timeout */
    struct stats *stats; /* the monitor's figures (lib/stats.c) */
    struct forksrv *forks; /* makes replacements (lib/forksrv.h); may be NULL */
    struct ready *ready;   /* the program's descriptor (lib/ready.h), once asked for */
    mpx_item_t *stash;     /* output dispatch took, not handed out yet */
    /* The program holds the item poll or next handed out last: it stays
     * valid until the next of those calls (a run that ends meanwhile
     * keeps the output's memory until then: end_run). */
    bool holding;
    /* Seq's reorder when a Seq ends the graph (graph/seqhost.h): it keeps
     * what arrives and lets it out in order into a queue the program's
     * takes empty first.  The item handed out of it last (or stashed) is
     * ours until the program is done with it.  Off (`unordered`) once
     * join only drains the output. */
    struct reorder *reorder;
    mpx_item_t **rq;
    size_t rq_head, rq_n, rq_cap;
    mpx_item_t *popped;
    bool unordered;
    /* The program's input (mpx_graph_put; lib/feed.c), when a stage at
     * the start has a process: the parent produces into it as instance
     * n.  Closed (mpx_graph_close_input, or join) and its end of stream
     * sent; a put said MPX_EAGAIN, so room is news for the descriptor. */
    edge_out_t *feed;
    bool input_closed, input_ended, want_room;
    size_t want_size; /* the record that put could not add, in bytes */
    uint64_t input_count; /* items put: the next one's mpx.index */
    /* How long the program's puts found no room (ms), in all, and since
     * when the one under way has (0: it had room): as a stage's time
     * blocked on output, for an elastic group the program feeds. */
    long room_waited, room_since;
    uint64_t feed_tick_at; /* ticks of feed_tick's last look */
    /* When the graph begins with a Seq, the program numbers its puts for
     * it (graph/seqhost.h; lib/feed.c): numbered so far, the count its
     * last mark carried, and the bytes put since. */
    int64_t seq_next, seq_marked;
    size_t seq_bytes;
    bool seq_mark_owed; /* a mark lacked credit, or the batch before it did */
    struct grow *grow;  /* elastic groups and their controller (lib/grow.c), or NULL */
    char err[256];
};

/* The program no longer reads the output (join): it need not come in
 * order. */
void sup_output_unordered(struct mpx_run *r);

/* Build the plan, initialize, fork, and wait until every stage is ready;
 * on failure everything is cleaned up and the run is ended. */
int sup_start(struct mpx_run *r);
/* Next output item, NULL at the end (see mpx_graph_next). */
mpx_item_t *sup_next(struct mpx_run *r);
/* Next output item within timeout_ms (see mpx_graph_poll): 1 with *it,
 * 0 at the end, MPX_ETIMEDOUT or MPX_EINTR. */
int sup_poll(struct mpx_run *r, long timeout_ms, mpx_item_t **it);
/* The program's descriptor (see mpx_graph_fd), made at the first call:
 * the descriptor, or MPX_ESYS / MPX_ENOMEM. */
int sup_fd(struct mpx_run *r);
/* Do what is due without waiting (see mpx_graph_dispatch). */
int sup_dispatch(struct mpx_run *r);
/* A setting moved one of the supervisor's deadlines: the program's
 * descriptor wakes in time for it. */
void sup_deadline_moved(struct mpx_run *r);
/* Put one item into the graph's input (see mpx_graph_put), with meta
 * `meta` (NULL: none) besides its mpx.index: 0, MPX_EAGAIN, MPX_EINTR,
 * MPX_ESTOPPED once the graph has ended or nothing reads its input, or a
 * refusal of the item. */
struct meta_cur;
int sup_put(struct mpx_run *r, const mpx_part_t *parts, size_t n, const struct meta_cur *meta,
            bool nonblocking);
/* No more input: its end of stream goes as soon as what was put has. */
int sup_close_input(struct mpx_run *r);
/* Record the first failure of the run (later ones are its consequences). */
void sup_record(struct mpx_run *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* lib/feed.c: the parent's side of the program's input. */
int feed_open(struct mpx_run *r);
void feed_close(struct mpx_run *r);
void *feed_socket(struct mpx_run *r);
/* Send what may go without waiting: records to send again, the batch
 * when it is due (`all`: at once), the end of stream once closed.
 * Returns whether something is left that waits for credit. */
bool feed_service(struct mpx_run *r, bool all);
/* The input's end of stream is still to go, and nothing more can be put
 * before it: the input was closed, or every stage it feeds has stopped. */
bool feed_owes_eos(const struct mpx_run *r);
/* Whether a Seq's mark waits to go (it lacked credit, or the batch
 * before it did). */
bool feed_owes_mark(const struct mpx_run *r);
/* For a call that returns output without waiting: what of the input is
 * due goes now (looked at once a batch's time at most). */
void feed_tick(struct mpx_run *r);
/* A consumer of the input joined its elastic group (edge_out_join). */
void feed_join(struct mpx_run *r, const wire_join_t *j);
/* A consumer of the input was replaced (edge_out_restart). */
void feed_restart(struct mpx_run *r, const wire_restart_t *m, const char *why, size_t whylen);
/* A put's record in the input's batch, when there is room: 0, MPX_EAGAIN
 * (no room; nothing done), or an error. */
int feed_put(struct mpx_run *r, const mpx_part_t *parts, size_t n, const struct meta_cur *meta);
/* Room for one more put of `size` bytes now (reads the credit). */
bool feed_room(struct mpx_run *r, size_t size);
/* The deadline of the batch, for the descriptor: ms, or -1. */
long feed_due_ms(struct mpx_run *r);

/* Elastic groups (lib/grow.c decides, these act).  sup_slot_off: slot i
 * starts without a process (before the forks).  sup_slot_join: fork the
 * process of an idle slot, which joins its group; sup_slot_leave: tell
 * slot i's process to leave its group.  0, or a failure (recorded). */
void sup_slot_off(struct mpx_run *r, int i);
/* Every instance's generation now, by id (and the program's, 0), with
 * EDGE_GEN_OFF on elastic slots without a running process (a joining
 * one: in the generation before its joiner's) and EDGE_GEN_LEAVING on
 * those leaving: malloc'd, or NULL (recorded). */
uint32_t *current_gens(struct mpx_run *r);
int sup_slot_join(struct mpx_run *r, int i);
int sup_slot_leave(struct mpx_run *r, int i);

/* Stop with the given outcome (if none is recorded yet) and end. */
void sup_stop(struct mpx_run *r, int status, const char *msg);
/* Free a run in any state (stopping it first if it runs). */
void sup_free(struct mpx_run *r);

#endif
