/* tests/test_plan.c — the plan on its own: instance numbering, dispatch
 * trees (ONE for parallel, ALL for broadcast, flattened), producers and
 * consumers, capacities and windows. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "graph/plan.h"
#include "harness.h"
#include "stages.h"

static plan_t *plan_of(mpx_graph_t *g)
{
    plan_t *p = NULL;
    char *msg = NULL;
    int rc = plan_build(g, &p, &msg);
    REQUIRE(rc == 0, "plan_build: %d %s", rc, msg ? msg : "");
    return p;
}

/* Describe dispatch tree d as text: leaf numbers, ONE(...), ALL(...). */
static void describe(const plan_t *p, int d, char *buf, size_t cap)
{
    const plan_dnode_t *dn = &p->dn[d];
    size_t len = strlen(buf);
    if (dn->kind == DN_LEAF) {
        if (dn->target == p->ninst)
            snprintf(buf + len, cap - len, "sink");
        else
            snprintf(buf + len, cap - len, "%d", dn->target);
        return;
    }
    snprintf(buf + len, cap - len, "%s(", dn->kind == DN_ONE ? "ONE" : "ALL");
    for (int i = 0; i < dn->count; i++) {
        if (i)
            strncat(buf, ",", cap - strlen(buf) - 1);
        describe(p, p->kids[dn->first + i], buf, cap);
    }
    strncat(buf, ")", cap - strlen(buf) - 1);
}

static void expect_route(const plan_t *p, int inst, const char *want)
{
    char buf[256] = "";
    describe(p, p->inst[inst].out, buf, sizeof buf);
    CHECK(strcmp(buf, want) == 0, "instance %d routes %s, expected %s", inst, buf, want);
}

static void serial_chain(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 1), mpx_stage(&Inc, NULL), mpx_stage(&Drop, NULL));
    plan_t *p = plan_of(g);
    CHECK_EQ(p->ninst, 3);
    expect_route(p, 0, "1");
    expect_route(p, 1, "2");
    expect_route(p, 2, "sink");
    CHECK_EQ(p->inst[0].nproducers, 0);
    CHECK_EQ(p->inst[1].nproducers, 1);
    CHECK_EQ(p->inst[3].nproducers, 1); /* the sink */
    CHECK(strcmp(p->inst[1].name, "inc") == 0, "name");
    plan_free(&p);
    CHECK(p == NULL, "plan_free clears");
    mpx_node_destroy(&g);
}

static void parallel_and_broadcast(void)
{
    /* 0:range  1-3:inc x3 (as)  4,5: by 2  6: inc  7: drop */
    mpx_graph_t *g = MPX_EZ(range_node(0, 1), mpx_as(3, &Inc, NULL), mpx_by(2, &Inc, NULL),
                            MPX_P(mpx_stage(&Inc, NULL), mpx_stage(&Drop, NULL)));
    plan_t *p = plan_of(g);
    CHECK_EQ(p->ninst, 8);
    expect_route(p, 0, "ONE(1,2,3)");
    for (int i = 1; i <= 3; i++)
        expect_route(p, i, "ALL(4,5)");
    expect_route(p, 4, "ONE(6,7)");
    expect_route(p, 6, "sink");
    expect_route(p, 7, "sink");
    CHECK_EQ(p->inst[4].nproducers, 3);
    CHECK_EQ(p->inst[6].nproducers, 2);
    CHECK_EQ(p->inst[8].nproducers, 2);
    CHECK(p->inst[2].index == 1 && p->inst[2].count == 3, "as index");
    plan_free(&p);
    mpx_node_destroy(&g);
}

static void nested_groups_flatten(void)
{
    /* P(P(a,b),c) is ONE(a,b,c); B(B(x,y),P(z,w)) is ALL(x,y,ONE(z,w)) */
    mpx_graph_t *g = MPX_EZ(
        range_node(0, 1),
        MPX_P(MPX_P(mpx_stage(&Inc, NULL), mpx_stage(&Inc, NULL)), mpx_stage(&Inc, NULL)),
        MPX_B(MPX_B(mpx_stage(&Inc, NULL), mpx_stage(&Inc, NULL)),
              MPX_P(mpx_stage(&Inc, NULL), MPX_S(mpx_stage(&Inc, NULL), mpx_stage(&Drop, NULL)))));
    plan_t *p = plan_of(g);
    CHECK_EQ(p->ninst, 9);
    expect_route(p, 0, "ONE(1,2,3)");
    expect_route(p, 1, "ALL(4,5,ONE(6,7))");
    expect_route(p, 7, "8");
    expect_route(p, 8, "sink");
    expect_route(p, 6, "sink");
    CHECK_EQ(p->inst[1].nconsumers, 4);
    CHECK_EQ(p->inst[9].nproducers, 4);
    plan_free(&p);
    mpx_node_destroy(&g);
}

/* What the graph sends the program has four times a stage's default in
 * items when the root sets no capacity (a setting inside the graph does
 * not count), and follows the root's setting otherwise. */
static void program_input_capacity(void)
{
    mpx_node_t *inner = mpx_as(2, &Inc, NULL);
    CHECK_EQ(mpx_node_set_capacity(inner, 10, 0), 0);
    mpx_graph_t *g = MPX_EZ(range_node(0, 1), inner);
    plan_t *p = plan_of(g);
    CHECK_EQ(p->inst[1].cap_items, 10);
    CHECK_EQ(p->inst[p->ninst].cap_items, 4 * MPX_DEFAULT_CAPACITY);
    CHECK_EQ(p->inst[p->ninst].cap_bytes, MPX_DEFAULT_CAPACITY_BYTES);
    /* shared by the two producers of the graph's output */
    CHECK_EQ(plan_window_items(p, p->ninst), 2 * MPX_DEFAULT_CAPACITY);
    plan_free(&p);
    CHECK_EQ(mpx_node_set_capacity(g, 64, 0), 0);
    p = plan_of(g);
    CHECK_EQ(p->inst[p->ninst].cap_items, 64);
    CHECK_EQ(p->inst[1].cap_items, 10);
    plan_free(&p);
    mpx_node_destroy(&g);
}

static void capacities_and_windows(void)
{
    mpx_node_t *wide = mpx_as(2, &Inc, NULL);
    CHECK_EQ(mpx_node_set_capacity(wide, 10, 4096), 0);
    mpx_graph_t *g = MPX_EZ(MPX_P(range_node(0, 1), range_node(0, 1), range_node(0, 1)), wide,
                            mpx_stage(&Inc, NULL));
    CHECK_EQ(mpx_node_set_capacity(g, 300, 0), 0);
    plan_t *p = plan_of(g);
    CHECK_EQ(p->inst[3].cap_items, 10);
    CHECK_EQ(p->inst[3].cap_bytes, 4096);
    CHECK_EQ(p->inst[5].cap_items, 300);
    CHECK_EQ(p->inst[5].cap_bytes, MPX_DEFAULT_CAPACITY_BYTES);
    /* three producers share an instance's capacity; never below one */
    CHECK_EQ(plan_window_items(p, 3), 3);
    CHECK_EQ(plan_window_bytes(p, 3), 1365);
    CHECK_EQ(plan_window_items(p, 5), 150);
    CHECK_EQ(p->inst[6].cap_items, 300); /* the sink follows the root */
    plan_free(&p);
    mpx_node_destroy(&g);
}

/* Confirmations where the consumer is recoverable, or the producer is a
 * recoverable stage with input; not on a plain chain, a broadcast or a
 * choice, nor from a recoverable source. */
static void confirms(void)
{
    /* 0: range -> 1: inc -> B(2, 3) -> P(4, 5) -> 6: recoverable -> 7: sink */
    mpx_node_t *last = mpx_stage(&Inc, NULL);
    CHECK_EQ(mpx_node_set_retries(last, 1), 0);
    mpx_graph_t *g = MPX_EZ(range_node(0, 1), mpx_stage(&Inc, NULL),
                            MPX_B(mpx_stage(&Inc, NULL), mpx_stage(&Inc, NULL)),
                            MPX_P(mpx_stage(&Inc, NULL), mpx_stage(&Drop, NULL)), last);
    plan_t *p = plan_of(g);
    CHECK_EQ(p->ninst, 7);
    expect_route(p, 1, "ALL(2,3)");
    expect_route(p, 2, "ONE(4,5)");
    expect_route(p, 4, "6");
    CHECK(!plan_confirms(p, 0, 1), "a plain chain");
    CHECK(!plan_confirms(p, 1, 2) && !plan_confirms(p, 1, 3), "a broadcast");
    CHECK(!plan_confirms(p, 2, 4) && !plan_confirms(p, 3, 5), "a parallel choice");
    CHECK(plan_confirms(p, 4, 6) && plan_confirms(p, 5, 6), "a recoverable consumer");
    CHECK(plan_confirms(p, 6, 7), "a recoverable producer with input (to the sink)");
    plan_free(&p);
    mpx_node_destroy(&g);
    /* A recoverable source has no input to confirm. */
    mpx_node_t *src = range_node(0, 1);
    CHECK_EQ(mpx_node_set_retries(src, 1), 0);
    g = MPX_EZ(src, mpx_stage(&Inc, NULL));
    p = plan_of(g);
    CHECK(!plan_confirms(p, 0, 1), "a recoverable source");
    plan_free(&p);
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(serial_chain),
        TEST_CASE(parallel_and_broadcast),
        TEST_CASE(nested_groups_flatten),
        TEST_CASE(capacities_and_windows),
        TEST_CASE(program_input_capacity),
        TEST_CASE(confirms),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
