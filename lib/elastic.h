/* lib/elastic.h — the controller that sizes elastic parallel groups: from
 * one sample per group every tick (about 100 ms), it says which group
 * should gain or lose one instance now, and why, with the figures.
 *
 * It only decides.  The supervisor (lib/supervisor.c) feeds it samples,
 * carries a decision out (fork and join, or leave) and reports back with
 * elastic_done.  The controller reads no clock, does no I/O and keeps no
 * global state: every answer is a function of the samples and the times
 * it was given, so a test can drive it with a simulated pipeline
 * (tests/test_elastic_ctl.c).  How it decides, in words: the README,
 * "Elastic groups", "How it decides".
 */
#ifndef MPX_LIB_ELASTIC_H
#define MPX_LIB_ELASTIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct elastic_sample { /* one elastic group, one tick */
    int active;                 /* instances running now */
    int min, max;               /* its bounds (mpx_node_set_elastic) */
    bool changing;              /* a join/leave of ANY group is in flight: decide nothing */
    bool frozen;                /* this group may not change now (a crash replacement,
                                 * an instance stopped, its input has ended) */
    double busy_min, busy_mean, busy_max; /* over active instances, last stats window, 0..1:
                                 * time neither waiting for input nor for room */
    double blocked_mean;        /* instances' time waiting for room downstream, 0..1 */
    double cpu_mean;            /* CPU seconds per second of its instances' processes, mean;
                                 * NaN or <= 0: unknown (then the busy time stands in) */
    double up_blocked;          /* max over the group's producers of their time waiting
                                 * for room, 0..1; < 0 when unknown (the program feeds it) */
    double rate;                /* items the group took per second over the window */
    uint64_t queue, capacity;   /* items waiting at its input, and the input capacity */
} elastic_sample_t;

/* What a decision (or a hold) is; the JSON "action" is the name in
 * elastic_kind_name. */
typedef enum elastic_kind {
    ELASTIC_HOLD = 0,  /* nothing to do; reason says why not when something wanted to */
    ELASTIC_NOTE,      /* nothing to do, but something worth logging happened: a growth
                        * was checked and kept, a hold-off ended, a verdict was dropped */
    ELASTIC_GROW,      /* +1: the group limits throughput */
    ELASTIC_SHRINK,    /* -1: the group is idle enough to run with one fewer */
    ELASTIC_MAKE_ROOM, /* -1: the budget is full and another group (for_group) must grow */
    ELASTIC_UNDO,      /* -1: the last growth of this group did not raise its rate */
    ELASTIC_BOUNDS,    /* +-1: the group is outside min..max */
    ELASTIC_BUDGET,    /* -1: the graph runs more processes than its budget */
} elastic_kind_t;

/* The figures a decision used, smoothed over its window (NaN: not used). */
typedef struct elastic_figures {
    double busy_min, busy_mean, blocked; /* of the group's instances */
    double up_blocked;                   /* its producers'; NaN when unknown */
    double queue_fill;                   /* queue / capacity at its input */
    double rate;                         /* items/s the group took */
    double work;                         /* busy seconds per item: busy_mean * n / rate */
    double cpu_work;                     /* CPU seconds per item: waiting adds none */
    double projected;                    /* busy_mean * n / (n - 1): with one fewer */
    double rate_before, work_before;     /* an undo or a kept growth: before the growth */
    double cpu_work_before;
    double gain;                         /* an undo or a kept growth: the rate's rise as a
                                          * share of rate_before / n (one instance's worth) */
} elastic_figures_t;

typedef struct elastic_decision {
    int group;         /* -1: hold */
    int delta;         /* +1 grow, -1 shrink */
    char reason[256];  /* one line with the figures, for the JSON stream/watch */
    elastic_kind_t kind;
    double t;          /* the `now` of the call */
    int from, to;      /* instances before and after */
    int for_group;     /* ELASTIC_MAKE_ROOM: the group that will grow next; else -1 */
    int about;         /* the group a change, note or hold is about; -1: none */
    elastic_figures_t fig;
} elastic_decision_t;

/* The constants of the rule; elastic_new sets the defaults below, which
 * the README explains.  Times in seconds, shares 0..1. */
typedef struct elastic_params {
    double window;        /* 0.5: figures are means over the last `window` seconds ... */
    int min_samples;      /* 5: ... and over at least this many samples, all taken after
                           * the last change settled: no reaction to one sample */
    double shrink_window; /* 2.0: an idle shrink looks at this longer window */
    double cooldown;      /* 0.3: after a change completes, samples are ignored this long
                           * (a new instance fills its queue; a stats window covering the
                           * change passes) */
    double grow_above;    /* 0.85: smoothed minimum busy over the instances to grow */
    double up_blocked_above; /* 0.20: ... and its producers wait for room at least this */
    double queue_above;   /* 0.80: ... or, producers unknown, its input is this full */
    double shrink_below;  /* 0.70: idle shrink when busy_mean * n / (n-1) is below */
    double donor_below;   /* 0.75: to make room, a group gives one up when with one fewer
                           * it would stay below this (so it would not want it back) */
    double undo_gain_below; /* 0.15: undo a growth that raised the rate by less than this
                           * share of one instance's worth ... */
    double wasted_above;  /* 0.5: ... while the busy time per item rose by more than this
                           * share of 1/n (the new instance's time went into waiting) */
    double changed_above; /* 1.5: where the CPU time is not known, no undo when the busy time
                           * per item rose by more than this share of 1/n: more than a new
                           * instance's waiting could add (1/n), so the work per item itself
                           * changed during the check */
    double check_margin;  /* 0.1: an undo for a gain this close below undo_gain_below
                           * waits for up to two windows of samples */
    double holdoff;       /* 30: after an undo, do not grow past the size for this long;
                           * after a shrink grown back within it, do not give up an
                           * instance below that size for this long */
    double holdoff_max;   /* 240: a repeated undo at the same size doubles it, up to this */
    double workload_change; /* 0.3: the work per item changed when its CPU time (where not
                           * known, its busy time) moved by more than this share, up or down
                           * by as much (in a growth's check, with the busy time moving the
                           * same way: cpu_explains): the check then keeps the growth; a
                           * hold-off (or floor) ends early when this happens at the held
                           * size */
    double cpu_share;     /* 0.5: the CPU time per item, not the busy time, says whether the
                           * work changed when it was at least this share of the busy time
                           * per item (a stage that mostly waits has too little of it) */
    double cpu_explains;  /* 0.8: a rise of the CPU time per item during a growth's check is a
                           * change of work only when it is at least this share of the busy
                           * time per item's rise (as ratios after/before): the rest of that
                           * rise is waiting */
    double fail_holdoff;  /* 5: after a change that failed, that group waits this long */
} elastic_params_t;

typedef struct elastic elastic_t;

/* Defaults; NULL on ENOMEM or ngroups < 1. */
elastic_t *elastic_new(int ngroups);
void elastic_free(elastic_t **e);
/* Read or change the constants (tests, and a program that must tune). */
elastic_params_t elastic_params(const elastic_t *e);
int elastic_set_params(elastic_t *e, const elastic_params_t *p);
/* The name reasons and JSON use for group g (its stage's name; copied,
 * truncated to 31 bytes).  Default: "group G". */
int elastic_set_name(elastic_t *e, int group, const char *name);

/* `now` seconds (monotonic); `room`: how many more stage processes the budget allows now
 * (negative: over budget).  Returns 1 with *d filled when a change should be made now, 0 to
 * hold (*d filled too: kind HOLD or NOTE, group -1, reason "" or why), MPX_EINVAL on bad
 * arguments (ngroups not the one given to elastic_new, NULL).  Every 1 must be answered by
 * exactly one elastic_done; until then the controller holds. */
int elastic_decide(elastic_t *e, double now, const elastic_sample_t *s, int ngroups, int room,
                   elastic_decision_t *d);
/* The supervisor reports that a decision was carried out (or failed): the change is
 * complete at `now`. */
void elastic_done(elastic_t *e, int group, int delta, bool ok, double now);

/* The group's current hold-off: it may not grow past *size until *until (returns true), or
 * has none (false). */
bool elastic_holdoff(const elastic_t *e, int group, int *size, double *until);

/* "grow", "shrink", "make_room", "undo", "bounds", "budget", "hold", "note". */
const char *elastic_kind_name(elastic_kind_t k);
/* Decision d as one JSON object (no newline) into buf; returns its length, or MPX_ERANGE
 * when cap is too small (buf then holds a truncated, NUL-terminated prefix). */
int elastic_decision_json(const elastic_t *e, const elastic_decision_t *d, char *buf,
                          size_t cap);

#endif
