/* lib/grow.h — elastic parallel groups at run time (mpx_node_set_elastic):
 * the supervisor's side.  Each tick it samples every elastic group's
 * figures from the monitor's reports, asks the controller (lib/elastic.h)
 * what to do, and has the supervisor start or retire one process
 * (sup_slot_join, sup_slot_leave); every decision goes to the monitor
 * with its reason.  One change at a time in the whole graph: the edge
 * protocol's rules for joining and leaving (lib/edge.h) assume it.
 */
#ifndef MPX_LIB_GROW_H
#define MPX_LIB_GROW_H

#include <stdbool.h>

struct mpx_run;
typedef struct grow grow_t;

/* How often a sample is taken (and stage processes report). */
#define GROW_TICK_MS 100

/* After the plan: find the elastic groups, check the budget, and mark the
 * slots that start without a process.  r->grow stays NULL when the graph
 * has none.  0, or a failure (recorded). */
int grow_open(struct mpx_run *r);
/* Take a sample and act on it when one is due. */
void grow_tick(struct mpx_run *r);
/* Milliseconds until the next sample (-1: none). */
long grow_timeout(struct mpx_run *r);
/* Slot i's change is over: its join (it is ready) or its leave (it
 * exited); ok false when it failed. */
void grow_changed(struct mpx_run *r, int i, bool ok);
void grow_free(struct mpx_run *r);
/* The budget in force (mpx_graph_set_budget, or its default). */
int grow_budget(const struct mpx_run *r);

#endif
