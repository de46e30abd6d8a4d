/* lib/elastic.c — the elastic groups' controller (see elastic.h): a
 * window of samples per group, and the rules that turn them into at most
 * one change at a time.  It owns the rule and its memory (windows,
 * hold-offs, the growth being checked); it must not read a clock, do I/O
 * or keep anything outside the elastic_t, so that the same samples at the
 * same times always give the same decisions.
 *
 * The lessons it is built on, from the systems that size pools while they
 * run: a decision on one sample flaps (Ray issue 41956), so every figure
 * is a median over a window, and the window restarts after every change;
 * a mean over instances lets one instance with slack pass for a saturated
 * group (the skew FLINK-30652 is about, seen from the other side: there a
 * hot instance hid behind the mean), so growth asks the minimum over the
 * instances to be high; busy time counts waiting for a lock or for a
 * shared core as work, so what one more instance would give is an
 * over-estimate, and every growth is checked against the rate it actually
 * gave (FLINK-31977) and undone when it gave little; changes go one step
 * at a time with a cool-down after each (nornir waits 200 ms between
 * changes).
 */
#include "elastic.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpx/error.h"

/* Samples kept per group: the longest window (shrink_window, 2 s) at one
 * sample per 10 ms fits; at the supervisor's 100 ms it is 25 s. */
#define RING 256
/* Times are compared with this slack: a sample taken exactly at the end
 * of a cool-down belongs to the window after it. */
#define EPS 1e-9

/* Not fmin/fmax: the library does not link libm for two comparisons. */
static double lesser(double a, double b) { return a < b ? a : b; }
static double greater(double a, double b) { return a > b ? a : b; }

typedef struct rec {
    double t;
    int active;
    double busy_min, busy_mean, busy_max, blocked, up_blocked, qfill, rate;
    double cpu; /* NaN: unknown */
} rec_t;

/* A group's figures over a window (see view()). */
typedef struct view {
    int count;     /* samples in the window */
    int n;         /* instances during it */
    double span;   /* seconds from the oldest sample to now */
    double busy_min, busy_mean, busy_max, blocked;
    double up;     /* NaN: no sample knew the producers */
    double qfill, rate;
    double work;      /* busy seconds per item, NaN without items */
    double cpu_work;  /* CPU seconds per item, NaN without items or when unknown */
    double projected; /* busy_mean with one instance fewer, INFINITY when n <= 1 */
} view_t;

/* The work per item at a held size (a hold-off's, a floor's), taken at
 * the first full window there: the busy time per item, and the CPU time
 * per item where the window knew it (NaN: not taken yet, or unknown). */
typedef struct work_ref {
    double work, cpu;
} work_ref_t;

static const work_ref_t NO_REF = {NAN, NAN};

typedef struct group {
    char name[32];
    rec_t ring[RING];
    int head, count; /* ring[head - 1] is the newest */
    /* Hold-off after an undo: no growth past cap until cap_until, or
     * until the work per item at size cap moves (the work changed). */
    int cap; /* -1: none */
    double cap_until;
    work_ref_t cap_ref;
    int cap_others; /* instances of the other groups when it began */
    int fails;    /* undos in a row at size last_cap: each doubles the hold-off */
    int last_cap; /* the size of the last hold-off, over or not (-1: none) */
    double fail_until; /* after a change that failed: leave the group alone */
    /* The group's last change, when it was a growth that its check kept:
     * the figures before it, its gain, and when.  If the next growth is
     * undone, this one is looked at again with the fresh figures. */
    int kept_from; /* -1: none */
    double kept_rate, kept_work, kept_gain, kept_t;
    /* Its last shrink (idle, or to make room): the size it left, when. */
    int shrunk_from; /* -1: none */
    double shrunk_t;
    /* A floor after a shrink that was grown back: the group does not give
     * up an instance below `floor` (idle or to make room) until
     * floor_until, or until the work per item at that size moves from
     * floor_ref. */
    int floor; /* -1: none */
    double floor_until;
    work_ref_t floor_ref;
} group_t;

/* A growth waiting for its check: the figures before it. */
typedef struct verdict {
    int group; /* -1: none */
    int from;
    double rate, work, cpu_work;
    /* A growth into room a make-room shrink made: the group that gave the
     * instance up and its size after (-1: an ordinary growth). */
    int donor, donor_size;
} verdict_t;

struct elastic {
    int n;
    elastic_params_t p;
    group_t *g;
    /* Samples before this time describe another configuration: the
     * window of every group starts after it. */
    double settle;
    double first; /* the first call's time: windows hold nothing older */
    /* A decision handed out and not yet reported done. */
    bool awaiting;
    int aw_group, aw_delta, aw_from;
    elastic_kind_t aw_kind;
    /* After a growth completes: the check of its gain. */
    verdict_t verdict;
    /* After a make-room shrink completes: the growth it made room for,
     * with the figures of the group at the time (for its check). */
    int pair_group; /* -1: none */
    double pair_until;
    verdict_t pair_before;
    elastic_figures_t pair_fig, aw_fig; /* the figures it was decided on */
    /* A decision handed out, remembered until elastic_done says whether
     * it happened: a growth becomes a verdict, a make-room a pair. */
    verdict_t aw_before;
    int aw_for;
    /* After an undo: the group whose growth before it goes too. */
    int cascade; /* -1: none */
    char cascade_reason[256];
    /* After the undo of a growth into room: the donor gets its instance
     * back (until giveback_until; -1: none). */
    int giveback, giveback_size;
    double giveback_until;
    char giveback_reason[256];
};

static const elastic_params_t defaults = {
    .window = 0.5,
    .min_samples = 5,
    .shrink_window = 2.0,
    .cooldown = 0.3,
    .grow_above = 0.85,
    .up_blocked_above = 0.20,
    .queue_above = 0.80,
    .shrink_below = 0.70,
    .donor_below = 0.75,
    .undo_gain_below = 0.15,
    .wasted_above = 0.5,
    .changed_above = 1.5,
    .check_margin = 0.1,
    .holdoff = 30,
    .holdoff_max = 240,
    .workload_change = 0.3,
    .cpu_share = 0.5,
    .cpu_explains = 0.8,
    .fail_holdoff = 5,
};

elastic_t *elastic_new(int ngroups)
{
    if (ngroups < 1)
        return NULL;
    elastic_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->g = calloc((size_t)ngroups, sizeof *e->g);
    if (!e->g) {
        free(e);
        return NULL;
    }
    e->n = ngroups;
    e->p = defaults;
    e->settle = -INFINITY;
    e->first = NAN;
    e->verdict.group = -1;
    e->pair_group = -1;
    e->aw_for = -1;
    e->cascade = -1;
    e->giveback = -1;
    for (int i = 0; i < ngroups; i++) {
        snprintf(e->g[i].name, sizeof e->g[i].name, "group %d", i);
        e->g[i].cap = e->g[i].last_cap = -1;
        e->g[i].kept_from = -1;
        e->g[i].shrunk_from = -1;
        e->g[i].floor = -1;
        e->g[i].fail_until = -INFINITY;
    }
    return e;
}

void elastic_free(elastic_t **ep)
{
    if (!ep || !*ep)
        return;
    free((*ep)->g);
    free(*ep);
    *ep = NULL;
}

elastic_params_t elastic_params(const elastic_t *e) { return e ? e->p : defaults; }

int elastic_set_params(elastic_t *e, const elastic_params_t *p)
{
    if (!e || !p || !(p->window > 0) || p->min_samples < 1 || !(p->shrink_window > 0) ||
        !(p->cooldown >= 0) || !(p->grow_above > 0 && p->grow_above <= 1) ||
        !(p->shrink_below >= 0 && p->shrink_below < p->grow_above) ||
        !(p->donor_below >= 0 && p->donor_below <= p->grow_above) || !(p->holdoff >= 0) ||
        !(p->holdoff_max >= p->holdoff) || !(p->workload_change > 0) ||
        !(p->fail_holdoff >= 0) || !(p->check_margin >= 0) ||
        !(p->changed_above > p->wasted_above) || !(p->cpu_share > 0 && p->cpu_share <= 1) ||
        !(p->cpu_explains > 0 && p->cpu_explains <= 1))
        return MPX_EINVAL;
    e->p = *p;
    return 0;
}

int elastic_set_name(elastic_t *e, int group, const char *name)
{
    if (!e || group < 0 || group >= e->n || !name)
        return MPX_EINVAL;
    snprintf(e->g[group].name, sizeof e->g[group].name, "%s", name);
    return 0;
}

bool elastic_holdoff(const elastic_t *e, int group, int *size, double *until)
{
    if (!e || group < 0 || group >= e->n || e->g[group].cap < 0)
        return false;
    if (size)
        *size = e->g[group].cap;
    if (until)
        *until = e->g[group].cap_until;
    return true;
}

const char *elastic_kind_name(elastic_kind_t k)
{
    switch (k) {
    case ELASTIC_HOLD: return "hold";
    case ELASTIC_NOTE: return "note";
    case ELASTIC_GROW: return "grow";
    case ELASTIC_SHRINK: return "shrink";
    case ELASTIC_MAKE_ROOM: return "make_room";
    case ELASTIC_UNDO: return "undo";
    case ELASTIC_BOUNDS: return "bounds";
    case ELASTIC_BUDGET: return "budget";
    }
    return "?";
}

/* ---- windows ---------------------------------------------------------------- */

static double clamp01(double v) { return isnan(v) ? 0 : v < 0 ? 0 : v > 1 ? 1 : v; }

static void record(group_t *g, double now, const elastic_sample_t *s)
{
    rec_t *r = &g->ring[g->head];
    r->t = now;
    r->active = s->active;
    r->busy_min = clamp01(s->busy_min);
    r->busy_mean = clamp01(s->busy_mean);
    r->busy_max = clamp01(s->busy_max);
    r->blocked = clamp01(s->blocked_mean);
    /* Unknown producers (the program feeds the group) stay unknown: the
     * queue stands in for them then. */
    r->up_blocked = s->up_blocked < 0 || isnan(s->up_blocked) ? NAN : clamp01(s->up_blocked);
    r->qfill = s->capacity ? clamp01((double)s->queue / (double)s->capacity) : 0;
    r->rate = isnan(s->rate) || s->rate < 0 ? 0 : s->rate;
    r->cpu = s->cpu_mean > 0 ? s->cpu_mean : NAN;
    g->head = (g->head + 1) % RING;
    if (g->count < RING)
        g->count++;
}

/* Middle value of v[0..n-1] (sorted in place; n is at most RING). */
static double median(double *v, int n)
{
    for (int i = 1; i < n; i++) {
        double x = v[i];
        int j = i;
        for (; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The group's figures over the samples of the last `span` seconds, or
 * the last `least` samples if those cover more, taken after e->settle and
 * with the group at the size of the newest sample (a crash or a
 * replacement changes it without a decision: figures of two sizes do not
 * mix).  Each figure is the median of its samples, not the mean: a
 * majority of the window must agree before a rule fires, so one odd
 * sample (a spike of blocked time, a stats window that straddles a phase
 * change) neither triggers a change nor passes for the level a growth is
 * judged against. */
static view_t view(const elastic_t *e, const group_t *g, double now, double span, int least)
{
    view_t v = {.up = NAN, .work = NAN, .cpu_work = NAN, .projected = INFINITY};
    double col[8][RING];
    int up_count = 0, cpu_count = 0;
    double oldest = now;
    for (int k = 0; k < g->count; k++) {
        const rec_t *r = &g->ring[(g->head - 1 - k + RING) % RING];
        if (r->t < e->settle - EPS)
            break;
        if (k == 0)
            v.n = r->active;
        else if (r->active != v.n)
            break;
        if (v.count >= least && r->t <= now - span + EPS)
            break;
        oldest = r->t;
        col[0][v.count] = r->busy_min;
        col[1][v.count] = r->busy_mean;
        col[2][v.count] = r->busy_max;
        col[3][v.count] = r->blocked;
        col[4][v.count] = r->qfill;
        col[5][v.count] = r->rate;
        v.count++;
        if (!isnan(r->up_blocked))
            col[6][up_count++] = r->up_blocked;
        if (!isnan(r->cpu))
            col[7][cpu_count++] = r->cpu;
    }
    if (v.count == 0)
        return v;
    v.busy_min = median(col[0], v.count);
    v.busy_mean = median(col[1], v.count);
    v.busy_max = median(col[2], v.count);
    v.blocked = median(col[3], v.count);
    v.qfill = median(col[4], v.count);
    v.rate = median(col[5], v.count);
    v.span = now - oldest;
    /* Producers unknown in most samples: unknown. */
    if (2 * up_count > v.count)
        v.up = median(col[6], up_count);
    if (v.rate > 0)
        v.work = v.busy_mean * v.n / v.rate;
    /* As for the producers: unknown in most samples (a process's first
     * report has no CPU time over an interval yet), unknown. */
    if (v.rate > 0 && 2 * cpu_count > v.count)
        v.cpu_work = median(col[7], cpu_count) * v.n / v.rate;
    if (v.n > 1)
        v.projected = v.busy_mean * v.n / (v.n - 1);
    return v;
}

static bool ready(const elastic_t *e, const view_t *v) { return v->count >= e->p.min_samples; }

/* Windows for growth and its check hold one window's worth of samples
 * per two instances: one more instance adds 1/n of the rate, and a
 * median over the window must be sure to a fraction of that. */
static int windows_for(int n) { return n > 1 ? (n + 1) / 2 : 1; }

/* Whether the CPU time per item speaks for the work: known before and
 * after, and before at least cpu_share of the busy time per item.  A
 * stage that mostly waits (sleeps, reads, holds a lock while it sleeps)
 * has too little CPU time per item for a share of it to mean anything:
 * a few microseconds of futex calls more, once its lock is contended,
 * would read as a change of work. */
static bool by_cpu(const elastic_t *e, double work_before, double cpu_before, double cpu_after)
{
    return cpu_before > 0 && cpu_after > 0 && work_before > 0 &&
           cpu_before >= e->p.cpu_share * work_before;
}

/* ---- decisions -------------------------------------------------------------- */

static void figures_of(elastic_figures_t *f, const view_t *v)
{
    *f = (elastic_figures_t){
        .busy_min = v->busy_min,
        .busy_mean = v->busy_mean,
        .blocked = v->blocked,
        .up_blocked = v->up,
        .queue_fill = v->qfill,
        .rate = v->rate,
        .work = v->work,
        .cpu_work = v->cpu_work,
        .projected = v->projected,
        .rate_before = NAN,
        .work_before = NAN,
        .cpu_work_before = NAN,
        .gain = NAN,
    };
}

static void say(elastic_decision_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(elastic_decision_t *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof d->reason, fmt, ap);
    va_end(ap);
}

static void hold(elastic_decision_t *d, double now)
{
    *d = (elastic_decision_t){
        .group = -1, .kind = ELASTIC_HOLD, .t = now, .for_group = -1, .about = -1};
    d->fig = (elastic_figures_t){
        .busy_min = NAN, .busy_mean = NAN, .blocked = NAN, .up_blocked = NAN,
        .queue_fill = NAN, .rate = NAN, .work = NAN, .cpu_work = NAN, .projected = NAN,
        .rate_before = NAN, .work_before = NAN, .cpu_work_before = NAN, .gain = NAN};
}

/* Fill d with a change of group g and remember it until elastic_done. */
static int change(elastic_t *e, elastic_decision_t *d, double now, elastic_kind_t kind, int g,
                  int delta, int active, const view_t *v)
{
    hold(d, now);
    d->kind = kind;
    d->group = g;
    d->about = g;
    d->delta = delta;
    d->from = active;
    d->to = active + delta;
    if (v)
        figures_of(&d->fig, v);
    e->awaiting = true;
    e->aw_group = g;
    e->aw_delta = delta;
    e->aw_from = active;
    e->aw_kind = kind;
    e->aw_for = -1;
    return 1;
}

/* The "producers blocked" half of the growth rule: how hard the group is
 * pressed, and whether that is enough.  Producers that wait for room
 * could give more if the group took more; a full queue is what remains
 * when the producers are not known (the program feeds the group). */
static bool pressed(const elastic_t *e, const view_t *v, double *pressure)
{
    if (!isnan(v->up)) {
        *pressure = v->up;
        return v->up >= e->p.up_blocked_above;
    }
    *pressure = v->qfill;
    return v->qfill >= e->p.queue_above;
}

static void describe_pressure(char *buf, size_t cap, const view_t *v)
{
    if (!isnan(v->up))
        snprintf(buf, cap, "producers blocked %.2f", v->up);
    else
        snprintf(buf, cap, "queue %.0f%% full", 100 * v->qfill);
}

static double ms(double s) { return 1e3 * s; }

/* Instances of every group but i now. */
static int others_of(const elastic_t *e, const elastic_sample_t *s, int i)
{
    int n = 0;
    for (int j = 0; j < e->n; j++)
        n += j == i ? 0 : s[j].active;
    return n;
}

/* An undo of n -> n+1 looks again at the growth n-1 -> n before it, if
 * that was the group's last change and its check kept it: the figures at
 * n taken just before the undone growth are a second measurement of what
 * it gave.  If the two together say it gave too little, it goes too
 * (after this undo completes), and the hold-off moves down to n-1.  A
 * stage on a lock whose knee a noisy check passed once is so brought
 * back to its knee, not left one instance past it. */
static void look_again(elastic_t *e, const elastic_sample_t *s, verdict_t vd, double now,
                       double holdoff)
{
    group_t *g = &e->g[vd.group];
    int n = vd.from;
    if (g->kept_from != n - 1 || n - 1 < 1 || now - g->kept_t > e->p.holdoff ||
        !(g->kept_rate > 0) || !(g->kept_work > 0) || isnan(vd.work))
        return;
    double share = g->kept_rate / (n - 1);
    double again = (vd.rate - g->kept_rate) / share;
    double both = (g->kept_gain + again) / 2;
    double wasted = vd.work / g->kept_work - 1;
    g->kept_from = -1;
    if (!(both < e->p.undo_gain_below && wasted > e->p.wasted_above / (n - 1)))
        return;
    e->cascade = vd.group;
    g->cap = g->last_cap = n - 1;
    g->cap_until = now + holdoff;
    g->cap_ref = NO_REF; /* taken at the first full window at size cap (end_holdoffs) */
    g->cap_others = others_of(e, s, vd.group);
    snprintf(e->cascade_reason, sizeof e->cascade_reason,
             "undo %s %d->%d as well: its growth gave %+.0f%% of one instance's %.4g/s when "
             "checked and %+.0f%% measured again (< %.0f%%); busy per item %.3g->%.3g ms; not "
             "past %d for %.0f s",
             g->name, n, n - 1, 100 * g->kept_gain, share, 100 * again,
             100 * e->p.undo_gain_below, ms(g->kept_work), ms(vd.work), n - 1, holdoff);
}

/* After a growth: did the rate rise by at least undo_gain_below of one
 * instance's worth?  If not, and the busy time per item rose (the new
 * instance's time went into waiting — for a lock, a file, a shared core —
 * and not into items), undo it and hold the size.  If the busy time per
 * item stayed, the group now waits for its input or for room: the limit
 * moved to another group, which the next decisions serve, so the instance
 * stays (undoing it would forbid the co-growth of two groups that limit
 * together). */
static int check_growth(elastic_t *e, double now, const elastic_sample_t *s,
                        elastic_decision_t *d)
{
    verdict_t vd = e->verdict;
    group_t *g = &e->g[vd.group];
    if (s[vd.group].frozen || s[vd.group].active != vd.from + 1) {
        e->verdict.group = -1;
        hold(d, now);
        d->kind = ELASTIC_NOTE;
        d->about = vd.group;
        say(d, "no check of %s %d->%d: %s", g->name, vd.from, vd.from + 1,
            s[vd.group].frozen ? "the group may not change now" : "its size changed meanwhile");
        return 0;
    }
    /* All the samples since the growth settled, up to twice its window. */
    int k = windows_for(vd.from);
    view_t v = view(e, g, now, 2 * k * e->p.window, k * e->p.min_samples);
    if (v.count < k * e->p.min_samples) {
        hold(d, now);
        return 0;
    }
    double share = vd.rate / vd.from;
    double gain = share > 0 ? (v.rate - vd.rate) / share : INFINITY;
    double wasted = vd.work > 0 && !isnan(v.work) ? v.work / vd.work - 1 : 0;
    /* The work per item changed under the check (a new phase of the
     * workload): the rates before and after measure different work, and
     * say nothing about the growth, which is kept.  The CPU time per item
     * says so directly: waiting (for a lock, a file, a shared core) adds
     * none of it, nor does another program taking a core.  Without it,
     * the busy time per item stands in: a new instance whose time all
     * goes into waiting raises it by 1/from at most, so a rise well
     * beyond that is the work (or, what it cannot tell apart, a core
     * taken by another program during the check). */
    bool cpu = by_cpu(e, vd.work, vd.cpu_work, v.cpu_work);
    double cpu_moved = cpu ? v.cpu_work / vd.cpu_work - 1 : 0;
    /* ... and only if the busy time per item moved the same way, the
     * CPU time accounting for most of a rise: waiting raises the busy
     * time per item and not the CPU time, so a busy time that rose much
     * more than the CPU time went into waiting, whatever the CPU time
     * did.  (On this project's virtual machine the CPU time also counts
     * what the host took from the guest, which has no steal time: in one
     * run of the `elastic` benchmark a stage doing all its work under a
     * lock read +59 % of CPU time per item after its growth and +114 % of
     * busy time, was kept, and was grown to 4; its next check read -31 %
     * of CPU time and +54 % of busy time.) */
    bool changed = cpu ? (cpu_moved > e->p.workload_change &&
                          1 + cpu_moved >= e->p.cpu_explains * (1 + wasted)) ||
                             (-cpu_moved > e->p.workload_change && wasted < 0)
                       : wasted > e->p.changed_above / vd.from;
    /* A growth into room another group gave up (a trade) is judged on
     * its rate alone.  That its busy time per item stayed would say that
     * the limit moved on — but it may have moved to the donor, because of
     * the trade: the group then waits for input, and keeping the trade
     * keeps the donor short.  Undone, the donor gets its instance back.
     * (In the `elastic` benchmark, B 2->3 into room A gave was so kept at
     * +0 %, and the next phase, needing 2:2, stayed at 1:3.) */
    bool trade = vd.donor >= 0 && vd.donor != vd.group;
    bool undo = !changed && gain < e->p.undo_gain_below &&
                (trade || wasted > e->p.wasted_above / vd.from);
    /* An undo close to the line waits for more samples (up to two
     * windows): one window of a jittery rate can be off by a tenth, and a
     * wrong undo costs a reversal and a hold-off where a wrong keep costs
     * an instance that the next rules can still take back. */
    if (undo && gain > e->p.undo_gain_below - e->p.check_margin &&
        v.count < 2 * k * e->p.min_samples) {
        hold(d, now);
        d->about = vd.group;
        d->from = vd.from;
        d->to = vd.from + 1;
        say(d, "checking %s %d->%d: %+.0f%% of one instance's %.4g/s so far, looking longer",
            g->name, vd.from, vd.from + 1, 100 * gain, share);
        return 0;
    }
    e->verdict.group = -1;
    if (!undo) {
        /* A growth checked across a change of work is not looked at
         * again (undo_looks_again): its figures compare different work. */
        g->kept_from = changed && gain < e->p.undo_gain_below ? -1 : vd.from;
        g->kept_rate = vd.rate;
        g->kept_work = vd.work;
        g->kept_gain = gain;
        g->kept_t = now;
        hold(d, now);
        d->kind = ELASTIC_NOTE;
        d->about = vd.group;
        d->from = vd.from;
        d->to = vd.from + 1;
        figures_of(&d->fig, &v);
        d->fig.rate_before = vd.rate;
        d->fig.work_before = vd.work;
        d->fig.cpu_work_before = vd.cpu_work;
        d->fig.gain = gain;
        if (changed && gain < e->p.undo_gain_below && cpu) {
            say(d,
                "kept %s %d->%d: rate %.4g->%.4g/s, but CPU per item %.3g->%.3g ms: the work "
                "changed, the check says nothing",
                g->name, vd.from, vd.from + 1, vd.rate, v.rate, ms(vd.cpu_work), ms(v.cpu_work));
        } else if (changed && gain < e->p.undo_gain_below) {
            say(d,
                "kept %s %d->%d: rate %.4g->%.4g/s, but busy per item %.3g->%.3g ms (+%.0f%%, "
                "more than one more instance could add): the work changed, the check says nothing",
                g->name, vd.from, vd.from + 1, vd.rate, v.rate, ms(vd.work), ms(v.work),
                100 * wasted);
        } else if (gain >= e->p.undo_gain_below || isinf(gain)) {
            g->fails = 0;
            say(d, "kept %s %d->%d: rate %.4g->%.4g/s, %+.0f%% of one instance's %.4g/s",
                g->name, vd.from, vd.from + 1, vd.rate, v.rate, 100 * gain, share);
        } else if (wasted <= 0.5 * e->p.wasted_above / vd.from) {
            say(d,
                "kept %s %d->%d: rate %.4g->%.4g/s, %+.0f%% of one instance's %.4g/s, busy per "
                "item %.3g->%.3g ms: it waits for input or room now, the limit moved on",
                g->name, vd.from, vd.from + 1, vd.rate, v.rate, 100 * gain, share, ms(vd.work),
                ms(v.work));
        } else {
            say(d,
                "kept %s %d->%d: rate %.4g->%.4g/s, %+.0f%% of one instance's %.4g/s, busy per "
                "item %.3g->%.3g ms (+%.0f%%, not over +%.0f%%): it still does work",
                g->name, vd.from, vd.from + 1, vd.rate, v.rate, 100 * gain, share, ms(vd.work),
                ms(v.work), 100 * wasted, 100 * e->p.wasted_above / vd.from);
        }
        return 0;
    }
    /* A repeated failure at the same size waits longer each time: a
     * stage on a lock would otherwise be tried again every hold-off. */
    double holdoff = e->p.holdoff;
    if (g->last_cap == vd.from && g->fails > 0)
        holdoff = lesser(e->p.holdoff * (double)(1u << (g->fails < 16 ? g->fails : 16)),
                         e->p.holdoff_max);
    g->fails = g->last_cap == vd.from ? g->fails + 1 : 1;
    g->cap = g->last_cap = vd.from;
    g->cap_until = now + holdoff;
    g->cap_ref = NO_REF; /* taken at the first full window at size cap (end_holdoffs) */
    g->cap_others = others_of(e, s, vd.group);
    change(e, d, now, ELASTIC_UNDO, vd.group, -1, vd.from + 1, &v);
    d->fig.rate_before = vd.rate;
    d->fig.work_before = vd.work;
    d->fig.cpu_work_before = vd.cpu_work;
    d->fig.gain = gain;
    say(d,
        "undo %s %d->%d: rate %.4g->%.4g/s, %+.0f%% of one instance's %.4g/s (< %.0f%%); busy "
        "per item %.3g->%.3g ms (a lock, a shared core?); not past %d for %.0f s",
        g->name, vd.from + 1, vd.from, vd.rate, v.rate, 100 * gain, share,
        100 * e->p.undo_gain_below, ms(vd.work), ms(v.work), vd.from, holdoff);
    look_again(e, s, vd, now, holdoff);
    /* The instance came from a group that gave it up for this growth:
     * with the growth undone, the trade failed, and the donor gets it back
     * as soon as the undo is done (its figures before the trade still
     * stand; waiting for a window to show it limits would only add a
     * second to the phase). */
    if (vd.donor >= 0 && vd.donor != vd.group && e->cascade < 0) {
        e->giveback = vd.donor;
        e->giveback_size = vd.donor_size;
        snprintf(e->giveback_reason, sizeof e->giveback_reason,
                 "grow %s %d->%d: give back the instance it gave up for %s, whose growth "
                 "was undone",
                 e->g[vd.donor].name, vd.donor_size, vd.donor_size + 1, g->name);
    }
    return 1;
}

/* Whether the work per item in v moved from *ref by more than
 * workload_change (up, or down by as much), saying how into what; the
 * first call at a held size takes the reference and answers no.  The CPU
 * time per item when both have it: the busy time per item moves with the
 * other groups' changes and with other programs on shared cores, the CPU
 * time with the work (and, on a guest without steal time, with what the
 * host takes: see check_growth) (in the `elastic` benchmark, a program taking
 * a core for a few seconds raised A's busy time per item by 31% and ended
 * its hold-off in a phase whose work did not change). */
static bool work_moved(const elastic_t *e, work_ref_t *ref, const view_t *v, char *what,
                       size_t cap)
{
    if (!(ref->work > 0)) {
        *ref = (work_ref_t){v->work, v->cpu_work > 0 ? v->cpu_work : NAN};
        return false;
    }
    bool cpu = by_cpu(e, ref->work, ref->cpu, v->cpu_work);
    double before = cpu ? ref->cpu : ref->work, after = cpu ? v->cpu_work : v->work;
    double moved = after / before - 1;
    if (moved <= e->p.workload_change && -moved <= e->p.workload_change)
        return false;
    snprintf(what, cap, "%s per item went %.3g->%.3g ms", cpu ? "CPU" : "busy", ms(before),
             ms(after));
    return true;
}

/* A floor ends at its time, or when the work per item at its size moved
 * (as a hold-off does).  Returns true with a note in d when one ended. */
static bool end_floor(elastic_t *e, double now, const elastic_sample_t *s, int i,
                      elastic_decision_t *d)
{
    group_t *g = &e->g[i];
    if (g->floor < 0)
        return false;
    if (now >= g->floor_until - EPS) {
        hold(d, now);
        d->kind = ELASTIC_NOTE;
        d->about = i;
        say(d, "floor of %s ended: it may give up an instance below %d again", g->name,
            g->floor);
        g->floor = -1;
        return true;
    }
    /* Over the idle shrink's longer window: busy time per item moves with
     * the other groups' changes on shared cores, and only a lasting move
     * means the work changed (measured over half a second, a floor in the
     * `elastic` benchmark ended 2.4 s after it was set, in a phase whose
     * work did not change, and the group shrank and grew again). */
    view_t v = view(e, g, now, e->p.shrink_window, e->p.min_samples);
    if (s[i].active != g->floor || v.n != g->floor || !ready(e, &v) || isnan(v.work) ||
        v.span < e->p.shrink_window - e->p.window)
        return false;
    char moved[96];
    if (!work_moved(e, &g->floor_ref, &v, moved, sizeof moved))
        return false;
    hold(d, now);
    d->kind = ELASTIC_NOTE;
    d->about = i;
    figures_of(&d->fig, &v);
    d->fig.work_before = g->floor_ref.work;
    d->fig.cpu_work_before = g->floor_ref.cpu;
    say(d, "floor of %s ended: %s at %d, the work changed", g->name, moved, g->floor);
    g->floor = -1;
    return true;
}

/* A hold-off ends at its time; when the work per item at the held size
 * moved (the stage is doing other work now, and what was learnt no longer
 * holds); or when the other groups run fewer instances than when it began
 * (the cores or the lock the undone instance shared are less contended:
 * its check was made in another configuration).  Floors end the same way
 * (end_floor).  Returns true with a note in d when one ended. */
static bool end_holdoffs(elastic_t *e, double now, const elastic_sample_t *s,
                         elastic_decision_t *d)
{
    for (int i = 0; i < e->n; i++) {
        group_t *g = &e->g[i];
        if (end_floor(e, now, s, i, d))
            return true;
        if (g->cap < 0)
            continue;
        if (now >= g->cap_until - EPS) {
            hold(d, now);
            d->kind = ELASTIC_NOTE;
            d->about = i;
            say(d, "hold-off of %s ended: it may grow past %d again", g->name, g->cap);
            g->cap = -1;
            return true;
        }
        int others = others_of(e, s, i);
        if (others < g->cap_others) {
            hold(d, now);
            d->kind = ELASTIC_NOTE;
            d->about = i;
            say(d, "hold-off of %s ended: the other groups run %d instance(s), %d when it began",
                g->name, others, g->cap_others);
            g->cap = -1;
            return true;
        }
        /* As for floors (end_floor): over the longer window, against the
         * work per item measured at the held size once the undo was done,
         * not the figures from before the growth (taken in another
         * configuration, and over half a second: in the `elastic`
         * benchmark a hold-off ended 4 s after its undo, in a phase whose
         * work did not change, and the group grew again). */
        view_t v = view(e, g, now, e->p.shrink_window, e->p.min_samples);
        if (s[i].active != g->cap || v.n != g->cap || !ready(e, &v) || isnan(v.work) ||
            v.span < e->p.shrink_window - e->p.window)
            continue;
        char moved[96];
        if (work_moved(e, &g->cap_ref, &v, moved, sizeof moved)) {
            hold(d, now);
            d->kind = ELASTIC_NOTE;
            d->about = i;
            figures_of(&d->fig, &v);
            d->fig.work_before = g->cap_ref.work;
            d->fig.cpu_work_before = g->cap_ref.cpu;
            say(d, "hold-off of %s ended: %s at %d, the work changed", g->name, moved, g->cap);
            g->cap = g->last_cap = -1;
            g->fails = 0;
            return true;
        }
    }
    return false;
}

/* A group the controller may change now. */
static bool changeable(const elastic_t *e, const elastic_sample_t *s, int i, double now)
{
    return !s[i].frozen && now >= e->g[i].fail_until - EPS && s[i].active >= 1;
}

static int floor_of(const elastic_sample_t *s) { return s->min > 1 ? s->min : 1; }

/* What a donor's instances would be busy with one fewer.  The busy share
 * counts the time an instance is preempted inside process() (more
 * processes than cores), which one instance fewer relieves: where the CPU
 * time speaks for the work (by_cpu's rule), the CPU time is what the rest
 * must take over.  Sets *cpu when it was the CPU time. */
static double donor_projected(const elastic_t *e, const view_t *v, bool *cpu)
{
    *cpu = v->n > 1 && by_cpu(e, v->work, v->cpu_work, v->cpu_work);
    return *cpu ? v->cpu_work * v->rate / (v->n - 1) : v->projected;
}

/* The group that gives an instance up: the one with the lowest busy time
 * with one fewer (donor_projected), if that stays below `below`.  -1 when
 * none. */
static int pick_donor(const elastic_t *e, double now, const elastic_sample_t *s, int except,
                      double below, double span, view_t *out)
{
    int best = -1;
    view_t bv = {0};
    for (int i = 0; i < e->n; i++) {
        if (i == except || !changeable(e, s, i, now) || s[i].active <= floor_of(&s[i]) ||
            (e->g[i].floor >= 0 && s[i].active <= e->g[i].floor))
            continue;
        view_t v = view(e, &e->g[i], now, span, e->p.min_samples);
        bool cpu;
        v.projected = donor_projected(e, &v, &cpu);
        if (!ready(e, &v) || v.n != s[i].active || !(v.projected < below))
            continue;
        if (best < 0 || v.projected < bv.projected) {
            best = i;
            bv = v;
        }
    }
    if (out && best >= 0)
        *out = bv;
    return best;
}

static int grow_or_make_room(elastic_t *e, double now, const elastic_sample_t *s, int room,
                             elastic_decision_t *d)
{
    int cand = -1;
    double best = -1;
    view_t cv = {0};
    for (int i = 0; i < e->n; i++) {
        const group_t *g = &e->g[i];
        if (!changeable(e, s, i, now) || s[i].active >= s[i].max)
            continue;
        if (g->cap >= 0 && s[i].active >= g->cap)
            continue;
        int k = windows_for(s[i].active);
        view_t v = view(e, g, now, k * e->p.window, k * e->p.min_samples);
        if (v.count < k * e->p.min_samples || v.n != s[i].active || v.busy_min < e->p.grow_above)
            continue;
        double pressure;
        if (!pressed(e, &v, &pressure))
            continue;
        if (pressure > best) {
            best = pressure;
            cand = i;
            cv = v;
        }
    }
    if (cand < 0)
        return -1;
    group_t *g = &e->g[cand];
    char why[64];
    describe_pressure(why, sizeof why, &cv);
    if (room >= 1) {
        change(e, d, now, ELASTIC_GROW, cand, +1, s[cand].active, &cv);
        e->aw_before = (verdict_t){.group = cand, .from = s[cand].active, .rate = cv.rate,
                                   .work = cv.work, .cpu_work = cv.cpu_work, .donor = -1};
        say(d, "grow %s %d->%d: busy min %.2f mean %.2f, %s, %.4g/s (medians of %d samples)",
            g->name, s[cand].active, s[cand].active + 1, cv.busy_min, cv.busy_mean, why, cv.rate,
            cv.count);
        return 1;
    }
    view_t dv;
    int donor = pick_donor(e, now, s, cand, e->p.donor_below, e->p.window, &dv);
    if (donor < 0) {
        hold(d, now);
        d->about = cand;
        figures_of(&d->fig, &cv);
        say(d, "%s limits (busy min %.2f, %s) but the budget is full and no group has slack",
            g->name, cv.busy_min, why);
        return 0;
    }
    change(e, d, now, ELASTIC_MAKE_ROOM, donor, -1, s[donor].active, &dv);
    d->for_group = cand;
    e->aw_for = cand;
    figures_of(&e->aw_fig, &cv);
    e->aw_before = (verdict_t){.group = cand, .from = s[cand].active, .rate = cv.rate,
                               .work = cv.work, .cpu_work = cv.cpu_work, .donor = -1};
    bool cpu;
    (void)donor_projected(e, &dv, &cpu);
    say(d,
        "shrink %s %d->%d to make room for %s (busy min %.2f, %s): its %s %.2f would be "
        "%.2f with %d (< %.2f)",
        e->g[donor].name, s[donor].active, s[donor].active - 1, g->name, cv.busy_min, why,
        cpu ? "CPU time" : "busy", cpu ? dv.cpu_work * dv.rate / dv.n : dv.busy_mean,
        dv.projected, s[donor].active - 1, e->p.donor_below);
    return 1;
}

/* The growth a make-room shrink was for, as soon as that shrink is done:
 * it was decided on a full window already, and waiting a cool-down and a
 * window more would only double the time a phase change takes. */
static int grow_into_room(elastic_t *e, double now, const elastic_sample_t *s, int room,
                          elastic_decision_t *d)
{
    int c = e->pair_group;
    group_t *g = &e->g[c];
    if (!changeable(e, s, c, now) || s[c].active >= s[c].max || s[c].active != e->pair_before.from ||
        now > e->pair_until) {
        e->pair_group = -1;
        hold(d, now);
        d->kind = ELASTIC_NOTE;
        d->about = c;
        say(d, "%s no longer grows into the room made for it (%s)", g->name,
            now > e->pair_until ? "the budget gave no room" : "it changed meanwhile");
        return 0;
    }
    if (room < 1) {
        /* The leaver may still count against the budget for a moment. */
        hold(d, now);
        d->about = c;
        say(d, "%s waits for the room made for it", g->name);
        return 0;
    }
    e->pair_group = -1;
    change(e, d, now, ELASTIC_GROW, c, +1, s[c].active, NULL);
    d->fig = e->pair_fig;
    e->aw_before = e->pair_before;
    say(d, "grow %s %d->%d into the room made for it (%.4g/s)", g->name, s[c].active,
        s[c].active + 1, e->pair_before.rate);
    return 1;
}

static int idle_shrink(elastic_t *e, double now, const elastic_sample_t *s, elastic_decision_t *d)
{
    /* A longer window than growth's: taking an instance away from a
     * bursty stage costs a growth later, so only a steady lull counts. */
    if (now - greater(e->settle, e->first) < e->p.shrink_window - EPS)
        return -1;
    view_t v;
    int i = pick_donor(e, now, s, -1, e->p.shrink_below, e->p.shrink_window, &v);
    if (i < 0)
        return -1;
    change(e, d, now, ELASTIC_SHRINK, i, -1, s[i].active, &v);
    say(d, "shrink %s %d->%d: busy %.2f (median of %d samples, %.1f s) would be %.2f with %d "
        "(< %.2f)",
        e->g[i].name, s[i].active, s[i].active - 1, v.busy_mean, v.count, v.span, v.projected,
        s[i].active - 1, e->p.shrink_below);
    return 1;
}

/* Hard limits first: a group outside its bounds, a graph over budget. */
static int bounds(elastic_t *e, double now, const elastic_sample_t *s, int room,
                  elastic_decision_t *d)
{
    for (int i = 0; i < e->n; i++) {
        if (s[i].frozen || s[i].active < 1)
            continue;
        if (s[i].active > s[i].max && s[i].active > floor_of(&s[i])) {
            change(e, d, now, ELASTIC_BOUNDS, i, -1, s[i].active, NULL);
            say(d, "shrink %s %d->%d: above its max %d", e->g[i].name, s[i].active,
                s[i].active - 1, s[i].max);
            return 1;
        }
        if (s[i].active < s[i].min && room >= 1) {
            change(e, d, now, ELASTIC_BOUNDS, i, +1, s[i].active, NULL);
            say(d, "grow %s %d->%d: below its min %d", e->g[i].name, s[i].active,
                s[i].active + 1, s[i].min);
            return 1;
        }
    }
    if (room >= 0)
        return -1;
    /* Over budget (a replacement after a crash counts against it): the
     * group that misses an instance least gives one up, even if busy. */
    int best = -1;
    view_t bv = {0};
    for (int i = 0; i < e->n; i++) {
        if (s[i].frozen || s[i].active <= floor_of(&s[i]))
            continue;
        view_t v = view(e, &e->g[i], now, e->p.window, e->p.min_samples);
        double p = v.count ? v.projected : INFINITY;
        if (best < 0 || p < bv.projected ||
            (p == bv.projected && s[i].active > s[best].active)) {
            best = i;
            bv = v;
            bv.projected = p;
        }
    }
    if (best < 0) {
        hold(d, now);
        say(d, "%d process(es) over the budget, and every group is at its min", -room);
        return 0;
    }
    change(e, d, now, ELASTIC_BUDGET, best, -1, s[best].active, bv.count ? &bv : NULL);
    say(d, "shrink %s %d->%d: %d process(es) over the budget; busy %.2f would be %.2f with %d",
        e->g[best].name, s[best].active, s[best].active - 1, -room, bv.busy_mean, bv.projected,
        s[best].active - 1);
    return 1;
}

int elastic_decide(elastic_t *e, double now, const elastic_sample_t *s, int ngroups, int room,
                   elastic_decision_t *d)
{
    if (!e || !s || !d || ngroups != e->n || isnan(now))
        return MPX_EINVAL;
    hold(d, now);
    if (isnan(e->first))
        e->first = now;
    for (int i = 0; i < e->n; i++)
        record(&e->g[i], now, &s[i]);

    if (e->awaiting) {
        say(d, "waiting for %s of %s to complete", elastic_kind_name(e->aw_kind),
            e->g[e->aw_group].name);
        return 0;
    }
    bool changing = false;
    for (int i = 0; i < e->n; i++)
        changing |= s[i].changing;
    if (changing) {
        /* Not ours (ours are awaited above): whatever it is, the figures
         * of the configuration after it start after a cool-down. */
        e->settle = greater(e->settle, now + e->p.cooldown);
        return 0;
    }
    if (e->pair_group >= 0)
        return grow_into_room(e, now, s, room, d);
    if (e->cascade >= 0) {
        /* Decided with the undo before it: no new window needed. */
        int c = e->cascade;
        e->cascade = -1;
        if (!s[c].frozen && s[c].active == e->g[c].cap + 1 && s[c].active > floor_of(&s[c])) {
            change(e, d, now, ELASTIC_UNDO, c, -1, s[c].active, NULL);
            snprintf(d->reason, sizeof d->reason, "%s", e->cascade_reason);
            return 1;
        }
    }
    if (e->giveback >= 0) {
        int c = e->giveback;
        if (!changeable(e, s, c, now) || s[c].active != e->giveback_size ||
            s[c].active >= s[c].max || now > e->giveback_until) {
            e->giveback = -1;
        } else if (room < 1) {
            /* The undone instance may still count against the budget. */
            d->about = c;
            say(d, "%s waits for room to get its instance back", e->g[c].name);
            return 0;
        } else {
            e->giveback = -1;
            /* Back to a size it ran at before the trade: no check. */
            change(e, d, now, ELASTIC_GROW, c, +1, s[c].active, NULL);
            e->aw_before.group = -1;
            snprintf(d->reason, sizeof d->reason, "%s", e->giveback_reason);
            return 1;
        }
    }
    if (now < e->settle - EPS)
        return 0;
    if (e->verdict.group >= 0)
        return check_growth(e, now, s, d);
    int r = bounds(e, now, s, room, d);
    if (r >= 0)
        return r;
    if (end_holdoffs(e, now, s, d))
        return 0;
    r = grow_or_make_room(e, now, s, room, d);
    if (r >= 0)
        return r;
    r = idle_shrink(e, now, s, d);
    return r > 0 ? r : 0;
}

void elastic_done(elastic_t *e, int group, int delta, bool ok, double now)
{
    if (!e || group < 0 || group >= e->n)
        return;
    bool ours = e->awaiting && e->aw_group == group && e->aw_delta == delta;
    elastic_kind_t kind = ours ? e->aw_kind : ELASTIC_HOLD;
    e->awaiting = false;
    e->settle = now + e->p.cooldown;
    if (!ok) {
        /* Whatever failed (a fork, a leave refused) may fail again at
         * once: leave the group alone for a while. */
        e->g[group].fail_until = now + e->p.fail_holdoff;
        e->aw_for = -1;
        e->cascade = -1;
        e->giveback = -1;
        return;
    }
    group_t *g = &e->g[group];
    if (delta < 0)
        g->kept_from = -1;
    if (delta < 0 && (kind == ELASTIC_SHRINK || kind == ELASTIC_MAKE_ROOM)) {
        g->shrunk_from = e->aw_from;
        g->shrunk_t = now;
    }
    /* Grown back to the size it gave up: giving it up was wrong, and doing
     * it again would flap (a group on the line between shrinking and
     * growing, or a make-room whose growth was undone). */
    if (delta > 0 && kind == ELASTIC_GROW && g->shrunk_from == e->aw_from + 1 &&
        now - g->shrunk_t <= e->p.holdoff) {
        g->floor = g->shrunk_from;
        g->floor_until = now + e->p.holdoff;
        g->floor_ref = NO_REF;
        g->shrunk_from = -1;
    }
    if (kind == ELASTIC_UNDO && e->giveback >= 0)
        e->giveback_until = now + e->p.cooldown + e->p.window;
    if (kind == ELASTIC_GROW && e->aw_before.group == group) {
        e->verdict = e->aw_before;
    } else if (kind == ELASTIC_MAKE_ROOM && e->aw_for >= 0) {
        e->pair_group = e->aw_for;
        e->pair_before = e->aw_before;
        e->pair_before.donor = group;
        e->pair_before.donor_size = e->aw_from - 1;
        e->pair_fig = e->aw_fig;
        /* The room should be there at once; if the budget does not show
         * it within a window and a cool-down, the moment has passed. */
        e->pair_until = now + e->p.cooldown + e->p.window;
    }
    e->aw_for = -1;
}

/* ---- JSON ------------------------------------------------------------------- */

typedef struct out {
    char *buf;
    size_t cap, len;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    int n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static void put_str(out_t *o, const char *v)
{
    put(o, "\"");
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(o, "\\%c", *p);
        else if (*p < 0x20)
            put(o, "\\u%04x", *p);
        else
            put(o, "%c", *p);
    }
    put(o, "\"");
}

static void put_num(out_t *o, const char *key, double v)
{
    if (isfinite(v))
        put(o, ", \"%s\": %.4g", key, v);
    else
        put(o, ", \"%s\": null", key);
}

int elastic_decision_json(const elastic_t *e, const elastic_decision_t *d, char *buf, size_t cap)
{
    if (!e || !d || (!buf && cap))
        return MPX_EINVAL;
    out_t o = {buf, cap, 0};
    put(&o, "{\"t\": %.3f, \"action\": ", d->t);
    put_str(&o, elastic_kind_name(d->kind));
    if (d->about >= 0 && d->about < e->n) {
        put(&o, ", \"group\": %d, \"stage\": ", d->about);
        put_str(&o, e->g[d->about].name);
    }
    if (d->group >= 0)
        put(&o, ", \"delta\": %d", d->delta);
    if (d->from != d->to)
        put(&o, ", \"from\": %d, \"to\": %d", d->from, d->to);
    if (d->for_group >= 0 && d->for_group < e->n) {
        put(&o, ", \"for\": ");
        put_str(&o, e->g[d->for_group].name);
    }
    const elastic_figures_t *f = &d->fig;
    put(&o, ", \"figures\": {\"busy_min\": ");
    if (isfinite(f->busy_min))
        put(&o, "%.4g", f->busy_min);
    else
        put(&o, "null");
    put_num(&o, "busy_mean", f->busy_mean);
    put_num(&o, "blocked", f->blocked);
    put_num(&o, "up_blocked", f->up_blocked);
    put_num(&o, "queue_fill", f->queue_fill);
    put_num(&o, "rate", f->rate);
    put_num(&o, "work", f->work);
    put_num(&o, "projected", f->projected);
    put_num(&o, "rate_before", f->rate_before);
    put_num(&o, "work_before", f->work_before);
    put_num(&o, "cpu_work", f->cpu_work);
    put_num(&o, "cpu_work_before", f->cpu_work_before);
    put_num(&o, "gain", f->gain);
    put(&o, "}, \"reason\": ");
    put_str(&o, d->reason);
    put(&o, "}");
    if (o.len >= cap)
        return MPX_ERANGE;
    return (int)o.len;
}
