/* lib/grow.c — elastic parallel groups at run time (see grow.h).
 *
 * A group is one stage node's instances, all planned (its most), of which
 * the slots from its start count up have no process at first
 * (sup_slot_off).  Samples come from the monitor's figures (lib/stats.c),
 * which every stage process of such a graph reports every GROW_TICK_MS;
 * the controller (lib/elastic.c) smooths them and decides.  The rules of
 * the edges (lib/edge.h, Elastic groups) allow one change at a time in
 * the graph, and a change only while everything around the group runs:
 * a group is frozen while one of its instances is being replaced after a
 * crash, has stopped itself, or once one of its producers has finished
 * (a new instance would get nothing, and one that finished cannot hear of
 * it).
 */
#define _GNU_SOURCE
#include "grow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elastic.h"
#include "mpx/error.h"
#include "stats.h"
#include "supervisor.h"
#include "ticks.h"

typedef struct group {
    const mpx_node_t *node;
    int first, count; /* its slots in the plan */
    int min, max;
    uint64_t *last_in; /* per slot: items taken, as last read from its blackbox */
    uint64_t taken;    /* items the group took, summed over those reads */
    uint64_t taken_at; /* ... at the previous sample */
} group_t;

struct grow {
    group_t *g;
    int ng;
    int budget;
    elastic_t *ctl;
    elastic_sample_t *samples;
    int *running;
    long next_ms, last_ms;
    long t0_ms; /* the controller's time 0: its decisions' "t" is seconds of the run */
    long room_waited; /* r->room_waited at the last sample */
    bool changing;
    int change_group, change_slot, change_delta;
    long change_ms;          /* when the change began */
    long pending_after;      /* the next report of it, this long after it began */
};

/* A change still under way after this long is reported (on the JSON
 * stream, by `watch` and in mpx-top, as action "pending", with what it
 * waits for), and again each time as long again has passed.  Nothing
 * else is done: a new instance's setup may take long, and so may a
 * leaver's producer busy in one long call; but one change at a time is
 * the rule of the edges, so a change that never completes stops every
 * other, and without a word the user would see a group that simply
 * stopped changing. */
#define GROW_PENDING_MS 5000

/* The controller's clock: seconds since the groups were opened (the
 * stats' clock starts at the same moment, give or take the set-up). */
static double run_secs(const grow_t *gr, long ms) { return (double)(ms - gr->t0_ms) / 1000.0; }

int grow_open(struct mpx_run *r)
{
    const plan_t *plan = r->plan;
    int ng = 0;
    for (int i = 0; i < r->n; i++)
        if (plan->inst[i].elastic && (i == 0 || plan->inst[i - 1].node != plan->inst[i].node))
            ng++;
    if (ng == 0)
        return 0;
    grow_t *gr = calloc(1, sizeof *gr);
    if (!gr || !(gr->g = calloc((size_t)ng, sizeof *gr->g)) ||
        !(gr->samples = calloc((size_t)ng, sizeof *gr->samples)) ||
        !(gr->running = calloc((size_t)ng, sizeof *gr->running)) ||
        !(gr->ctl = elastic_new(ng))) {
        if (gr) {
            free(gr->g);
            free(gr->samples);
            free(gr->running);
            free(gr);
        }
        sup_record(r, MPX_ENOMEM, "out of memory");
        return r->status;
    }
    r->grow = gr;
    int off = 0;
    for (int i = 0; i < r->n; i++) {
        const plan_inst_t *pi = &plan->inst[i];
        if (!pi->elastic)
            continue;
        if (i == 0 || plan->inst[i - 1].node != pi->node) {
            group_t *g = &gr->g[gr->ng++];
            g->node = pi->node;
            g->first = i;
            g->min = pi->node->elastic_min;
            g->max = pi->node->elastic_max;
            g->last_in = calloc((size_t)pi->count, sizeof *g->last_in);
            if (!g->last_in) {
                sup_record(r, MPX_ENOMEM, "out of memory");
                return r->status;
            }
        }
        group_t *g = &gr->g[gr->ng - 1];
        if (g->count == 0)
            elastic_set_name(gr->ctl, gr->ng - 1, pi->name);
        g->count++;
        if (pi->index >= pi->node->elastic_start) {
            sup_slot_off(r, i);
            off++;
        }
    }
    int start = r->n - off;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    gr->budget = r->root->budget > 0 ? r->root->budget : start + (int)(cpus > 0 ? cpus : 1);
    if (gr->budget < start) {
        sup_record(r, MPX_EGRAPH,
                   "the budget of %d stage processes (mpx_graph_set_budget) is less than the %d "
                   "the graph starts with",
                   gr->budget, start);
        return r->status;
    }
    gr->t0_ms = mono_ms();
    gr->next_ms = gr->t0_ms + GROW_TICK_MS;
    return 0;
}

void grow_free(struct mpx_run *r)
{
    grow_t *gr = r->grow;
    if (!gr)
        return;
    for (int k = 0; k < gr->ng; k++)
        free(gr->g[k].last_in);
    free(gr->g);
    free(gr->samples);
    free(gr->running);
    elastic_free(&gr->ctl);
    free(gr);
    r->grow = NULL;
}

int grow_budget(const struct mpx_run *r) { return r->grow ? r->grow->budget : 0; }

long grow_timeout(struct mpx_run *r)
{
    long left = r->grow->next_ms - mono_ms();
    return left < 0 ? 0 : left;
}

/* Whether group k may change now (see the head of this file). */
static bool frozen(const struct mpx_run *r, const group_t *g)
{
    if (r->stopping || r->failing)
        return true;
    for (int i = g->first; i < g->first + g->count; i++) {
        const run_child_t *c = &r->ch[i];
        if (c->slot == SLOT_OFF)
            continue;
        if ((c->restarts > 0 && !c->ready) || r->boxes[i].stopped || c->done)
            return true;
    }
    const plan_inst_t *pi = &r->plan->inst[g->first];
    for (int k = 0; k < pi->nproducers; k++) {
        int p = pi->producers[k];
        if (p < r->n && r->ch[p].slot == SLOT_OFF)
            continue; /* an idle slot of the elastic group before */
        if (p == r->n ? r->input_closed : r->ch[p].done || r->ch[p].exited)
            return true;
    }
    return false;
}

static void sample(struct mpx_run *r, int k, double secs)
{
    grow_t *gr = r->grow;
    group_t *g = &gr->g[k];
    elastic_sample_t *s = &gr->samples[k];
    *s = (elastic_sample_t){.min = g->min, .max = g->max, .changing = gr->changing,
                            .frozen = frozen(r, g), .busy_min = 1, .up_blocked = -1,
                            .cpu_mean = NAN};
    double busy_sum = 0, blocked_sum = 0, cpu_sum = 0;
    int cpu_n = 0;
    for (int i = g->first; i < g->first + g->count; i++) {
        const run_child_t *c = &r->ch[i];
        stats_inst_t f;
        stats_inst(r, i, &f);
        /* The items it took, read where it writes them as it takes each
         * (its blackbox, in shared memory), not from its last report: a
         * report comes every 100 ms or so by the child's clock, and one
         * that reached the parent just after a tick counted in the next,
         * so that a tick's rate jittered by a report's worth (under load,
         * a stage serialised on a lock seemed to go faster than its lock
         * allows).  What an incarnation took counts from 0: a smaller
         * count is a new process's. */
        uint64_t *last = &g->last_in[i - g->first];
        uint64_t no = r->boxes[i].item_no;
        g->taken += no >= *last ? no - *last : no;
        *last = no;
        if (c->slot != SLOT_RUNS || !c->ready || c->done)
            continue;
        s->active++;
        s->queue += f.depth;
        s->capacity += r->plan->inst[i].cap_items;
        busy_sum += f.busy;
        blocked_sum += f.blocked;
        if (!isnan(f.cpu)) {
            cpu_sum += f.cpu;
            cpu_n++;
        }
        s->busy_min = f.busy < s->busy_min ? f.busy : s->busy_min;
        s->busy_max = f.busy > s->busy_max ? f.busy : s->busy_max;
    }
    for (int i = g->first; i < g->first + g->count; i++)
        if (r->ch[i].slot == SLOT_JOINING || r->ch[i].slot == SLOT_LEAVING)
            s->changing = true;
    if (s->active) {
        s->busy_mean = busy_sum / s->active;
        s->blocked_mean = blocked_sum / s->active;
        /* Only when every instance's is known: a mean over some would not
         * be the group's CPU per item. */
        s->cpu_mean = cpu_n == s->active ? cpu_sum / s->active : NAN;
    } else {
        s->busy_min = 0;
    }
    const plan_inst_t *pi = &r->plan->inst[g->first];
    for (int j = 0; j < pi->nproducers; j++) {
        int p = pi->producers[j];
        if (p == r->n && secs > 0) {
            /* The program: the share of the time its puts found no room. */
            long waited = r->room_waited - gr->room_waited +
                          (r->room_since ? mono_ms() - r->room_since : 0);
            double b = (double)waited / 1000.0 / secs;
            b = b < 0 ? 0 : b > 1 ? 1 : b;
            if (b > s->up_blocked)
                s->up_blocked = b;
            continue;
        }
        if (p == r->n || r->ch[p].exited)
            continue;
        stats_inst_t f;
        stats_inst(r, p, &f);
        if (f.blocked > s->up_blocked)
            s->up_blocked = f.blocked;
    }
    s->rate = secs > 0 ? (double)(g->taken - g->taken_at) / secs : 0;
    g->taken_at = g->taken;
}

static const char *group_name(const struct mpx_run *r, const group_t *g)
{
    return r->plan->inst[g->first].name;
}

/* To the monitor: a change, or a note of the controller's. */
static void report(struct mpx_run *r, int k, int from, int to, const char *action,
                   const char *why, const elastic_decision_t *d)
{
    char json[1024];
    if (!d || elastic_decision_json(r->grow->ctl, d, json, sizeof json) < 0)
        json[0] = '\0';
    stats_elastic(r, group_name(r, &r->grow->g[k]), from, to, action, why, json);
}

/* Carry out a change: the lowest idle slot joins, or the highest running
 * one leaves.  Every decision the controller made is answered
 * (elastic_done), also one that cannot be carried out. */
static void act(struct mpx_run *r, int k, int delta, const char *why,
                const elastic_decision_t *d)
{
    grow_t *gr = r->grow;
    group_t *g = &gr->g[k];
    int from = gr->samples[k].active, slot = -1;
    for (int i = g->first; i < g->first + g->count; i++) {
        const run_child_t *c = &r->ch[i];
        if (delta > 0 && c->slot == SLOT_OFF) {
            slot = i;
            break;
        }
        if (delta < 0 && c->slot == SLOT_RUNS && c->ready && !c->done)
            slot = i;
    }
    const char *action = d ? elastic_kind_name(d->kind) : delta > 0 ? "grow" : "shrink";
    int rc = slot < 0 || (delta > 0 && from >= g->max) || (delta < 0 && from <= g->min)
                 ? MPX_ESTATE
             : delta > 0 ? sup_slot_join(r, slot)
                         : sup_slot_leave(r, slot);
    if (rc != 0) {
        char failed[400];
        snprintf(failed, sizeof failed, "could not be carried out (%s): %s", mpx_strerror(rc),
                 why);
        report(r, k, from, from, action, failed, d);
        elastic_done(gr->ctl, k, delta, false, run_secs(gr, mono_ms()));
        return;
    }
    report(r, k, from, from + delta, action, why, d);
    gr->changing = true;
    gr->change_group = k;
    gr->change_slot = slot;
    gr->change_delta = delta;
    gr->change_ms = mono_ms();
    gr->pending_after = r->root->grow_pending_ms > 0 ? r->root->grow_pending_ms : GROW_PENDING_MS;
}

/* Say what the change under way waits for (see GROW_PENDING_MS). */
static void report_pending(struct mpx_run *r, long now)
{
    grow_t *gr = r->grow;
    const run_child_t *c = &r->ch[gr->change_slot];
    const char *what;
    if (gr->change_delta > 0)
        what = !c->hello   ? "its new process has not started yet"
               : !c->ready ? "its new process is still in its setup, or waits for word from "
                             "its producers"
                           : "its new process is ready";
    else
        what = !c->done ? "the leaving process has not ended yet (it takes what its producers "
                          "sent it before their end of stream, tears down, and waits for its "
                          "consumers to take its own end)"
               : !c->exited ? "the leaving process has ended and been let go, but not exited"
                            : "the leaving process has exited";
    char why[400];
    snprintf(why, sizeof why, "the %s begun %.1f s ago is still under way: %s (pid %ld)",
             gr->change_delta > 0 ? "growth" : "shrink", (double)(now - gr->change_ms) / 1000.0,
             what, (long)c->pid);
    int from = gr->samples[gr->change_group].active;
    report(r, gr->change_group, from, from, "pending", why, NULL);
}

void grow_tick(struct mpx_run *r)
{
    grow_t *gr = r->grow;
    long now = mono_ms();
    if (now < gr->next_ms)
        return;
    double secs = gr->last_ms ? (double)(now - gr->last_ms) / 1000.0 : 0;
    gr->last_ms = now;
    gr->next_ms = now + GROW_TICK_MS;
    int alive = 0;
    for (int i = 0; i < r->n; i++)
        alive += !r->ch[i].exited;
    for (int k = 0; k < gr->ng; k++) {
        sample(r, k, secs);
        gr->running[k] = gr->samples[k].active;
    }
    /* What the program waited for room, counted once per sample (the
     * wait under way counts from now on in the next). */
    gr->room_waited = r->room_waited + (r->room_since ? now - r->room_since : 0);
    if (gr->changing) {
        if (now - gr->change_ms >= gr->pending_after) {
            report_pending(r, now);
            gr->pending_after *= 2;
        }
        return;
    }
    const mpx_node_t *root = r->root;
    int k = -1, delta = 0;
    char why[300];
    if (root->grow_script) {
        if (root->grow_script(root->grow_script_ctx, gr->ng, gr->running, &k, &delta) != 1 ||
            k < 0 || k >= gr->ng || (delta != 1 && delta != -1))
            return;
        if (gr->samples[k].frozen || (delta > 0 && alive >= gr->budget))
            return;
        snprintf(why, sizeof why, "test script");
        act(r, k, delta, why, NULL);
        return;
    }
    elastic_decision_t d;
    int rc = elastic_decide(gr->ctl, run_secs(gr, now), gr->samples, gr->ng,
                            gr->budget - alive, &d);
    if (rc == 0 && d.kind == ELASTIC_NOTE && d.about >= 0 && d.about < gr->ng)
        report(r, d.about, gr->samples[d.about].active, gr->samples[d.about].active,
               elastic_kind_name(d.kind), d.reason, &d);
    if (rc != 1)
        return;
    if (d.group < 0 || d.group >= gr->ng) {
        elastic_done(gr->ctl, d.group, d.delta, false, run_secs(gr, now));
        return;
    }
    act(r, d.group, d.delta, d.reason, &d);
}

void grow_changed(struct mpx_run *r, int i, bool ok)
{
    grow_t *gr = r->grow;
    if (!gr || !gr->changing || gr->change_slot != i)
        return;
    gr->changing = false;
    elastic_done(gr->ctl, gr->change_group, gr->change_delta, ok, run_secs(gr, mono_ms()));
}
