/* tests/test_builder.c — building graphs: nesting, embedding, as/by,
 * plain functions, and every mistake refused before anything forks. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>

#include <mpx/short.h>

#include "harness.h"
#include "stages.h"

static int initialized; /* initialize runs in this process */

/* Every fork() of this process, the library's included: "nothing forked"
 * holds even for a child that was reaped before the check could see it. */
static int forks;
static void count_fork(void) { forks++; }

static int count_init(mpx_stage_t *st)
{
    (void)st;
    initialized++;
    return 0;
}
static const mpx_stage_def_t Watched = {.name = "watched", .initialize = count_init,
                                        .process = NULL, .setup = NULL};
static const mpx_stage_def_t Counted = {.name = "counted", .initialize = count_init,
                                        .process = NULL, .setup = NULL};
static int pass(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }
static const mpx_stage_def_t Pass = {.name = "pass", .initialize = count_init, .process = pass};
static const mpx_stage_def_t WithArgs = {.name = "withargs", .args_size = 8, .process = pass};

/* The graph is refused with a message containing `expect`, and nothing
 * forked, initialized or created a runtime directory. */
static void expect_refused(mpx_graph_t *g, const char *expect)
{
    REQUIRE(g != NULL, "builder returned NULL");
    initialized = 0;
    int forks_before = forks;
    int rc = mpx_graph_start(g);
    CHECK_EQ(rc, MPX_EGRAPH);
    const char *msg = mpx_graph_error(g);
    CHECK(strstr(msg, expect) != NULL, "message '%s' lacks '%s'", msg, expect);
    CHECK_EQ(initialized, 0);
    CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "a process was forked");
    CHECK_EQ(dir_entries(harness_tmpdir()), 0);
    CHECK(!mpx_graph_started(g), "refused graph counts as started");
    /* join reports the same refusal */
    CHECK_EQ(mpx_graph_join(g), MPX_EGRAPH);
    CHECK_EQ(forks - forks_before, 0);
    mpx_node_destroy(&g);
}

/* A NULL may be written by the user or returned by a failed call: the
 * message names both causes and does not blame memory alone. */
static void refuse_null_node(void)
{
    expect_refused(MPX_EZ(range_node(0, 3), NULL, mpx_stage(&Pass, NULL)),
                   "NULL node at position 2 of a serial group (a NULL argument, or a builder "
                   "call that failed: out of memory or bad arguments)");
    expect_refused(MPX_EZ(range_node(0, 3), MPX_P(mpx_stage(&Pass, NULL), NULL)),
                   "NULL node at position 2 of a parallel group (a NULL argument, or a "
                   "builder call that failed: out of memory or bad arguments) (at root/2)");
}

static void refuse_empty_group(void)
{
    expect_refused(MPX_EZ(range_node(0, 3), mpx_parallel_v(NULL, 0)), "empty parallel group");
    expect_refused(MPX_EZ(range_node(0, 3), mpx_broadcast_v(NULL, 0)), "empty broadcast group");
    expect_refused(mpx_serial_v(NULL, 0), "empty serial group");
}

static void refuse_node_used_twice(void)
{
    mpx_node_t *p = mpx_stage(&Pass, NULL);
    expect_refused(MPX_EZ(range_node(0, 3), p, p), "node 'pass' is used twice");

    mpx_node_t *q = mpx_stage(&Pass, NULL);
    mpx_node_t *first = MPX_P(q, mpx_stage(&Pass, NULL));
    expect_refused(MPX_EZ(range_node(0, 3), first, MPX_B(q, mpx_stage(&Pass, NULL))),
                   "is used twice");

    /* A graph already embedded in another cannot be embedded again. */
    mpx_graph_t *g = MPX_EZ(range_node(0, 3), mpx_stage(&Pass, NULL));
    mpx_graph_t *outer = MPX_EZ(g);
    expect_refused(MPX_EZ(range_node(0, 1), g), "is used twice");
    mpx_node_destroy(&outer);
}

static void refuse_bad_counts(void)
{
    expect_refused(MPX_EZ(range_node(0, 3), mpx_as(0, &Pass, NULL)),
                   "mpx_as: n must be at least 1 (got 0)");
    expect_refused(MPX_EZ(range_node(0, 3), mpx_by(-2, &Pass, NULL)),
                   "mpx_by: n must be at least 1 (got -2)");
    expect_refused(MPX_EZ(range_node(0, 3), mpx_as(2000000000, &Pass, NULL)),
                   "mpx_as: n must be at most 65536 (got 2000000000)");
}

static void refuse_bad_definitions(void)
{
    expect_refused(MPX_EZ(range_node(0, 3), mpx_stage(&Watched, NULL)),
                   "stage 'watched' has neither setup nor process");
    expect_refused(MPX_EZ(range_node(0, 3), mpx_as(3, &Counted, NULL)),
                   "stage 'counted' has neither setup nor process");
    expect_refused(MPX_EZ(range_node(0, 3), mpx_stage(&WithArgs, NULL)),
                   "stage 'withargs': args_size is 8 but args is NULL");
    expect_refused(MPX_EZ(range_node(0, 3), mpx_stage(NULL, NULL)),
                   "mpx_stage: the stage definition is NULL");
    expect_refused(MPX_EZ(range_node(0, 3), mpx_fn("nothing", NULL)), "has neither setup nor process");
}

/* A stage at the start with a process but no setup used to be refused
 * (nothing fed it); now the program feeds it (mpx_graph_put), and a graph
 * run without input ends at once. */
static void first_stage_without_setup_takes_input(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Pass, NULL), mpx_stage(&Pass, NULL));
    CHECK_EQ(mpx_graph_check(g), 0);
    for (int64_t v = 0; v < 3; v++)
        CHECK_EQ(mpx_graph_put(g, &v, sizeof v), 0);
    CHECK_EQ(mpx_graph_close_input(g), 0);
    int64_t count = 0;
    CHECK_EQ(drain_sum(g, &count), 3);
    CHECK_EQ(count, 3);
    CHECK_EQ(mpx_graph_join(g), 0);
    mpx_node_destroy(&g);
    g = MPX_EZ(MPX_P(range_node(0, 3), mpx_stage(&Pass, NULL)));
    count = 0;
    CHECK_EQ(drain_sum(g, &count), 3);
    CHECK_EQ(count, 3);
    CHECK_EQ(mpx_graph_join(g), 0);
    mpx_node_destroy(&g);
}

static void refuse_part_of_other_graph(void)
{
    int forks_before = forks;
    mpx_node_t *inner = mpx_stage(&Pass, NULL);
    mpx_graph_t *g = MPX_EZ(range_node(0, 3), inner);
    CHECK_EQ(mpx_graph_start(inner), MPX_EGRAPH);
    CHECK(strstr(mpx_graph_error(inner), "part of another graph") != NULL, "%s",
          mpx_graph_error(inner));
    CHECK_EQ(waitpid(-1, NULL, WNOHANG), -1);
    CHECK_EQ(forks - forks_before, 0);
    mpx_node_destroy(&inner); /* ignored: it belongs to g */
    CHECK(inner != NULL, "destroying a member node must not free it");
    mpx_node_destroy(&g);
}

static void check_passes(void)
{
    int forks_before = forks;
    mpx_graph_t *g = MPX_EZ(range_node(0, 3), mpx_as(2, &Pass, NULL));
    CHECK_EQ(mpx_graph_check(g), 0);
    CHECK_EQ(mpx_graph_instance_count(g), 3);
    CHECK_EQ(waitpid(-1, NULL, WNOHANG), -1);
    CHECK_EQ(forks - forks_before, 0);
    mpx_node_destroy(&g);
}

static void started_twice(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 10), mpx_stage(&Inc, NULL));
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(mpx_graph_start(g), MPX_ESTATE);
    CHECK_EQ(mpx_graph_join(g), 0); /* the outcome again */
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* S(P(B(S(inc, P(inc, B(inc, inc))), inc), inc)): depth 6.  Each item
 * takes one of the parallel branches; a broadcast doubles it. */
static void nest_deeply(void)
{
    mpx_graph_t *g = MPX_EZ(
        range_node(0, 100),
        MPX_P(MPX_B(MPX_S(mpx_stage(&Inc, NULL),
                          MPX_P(mpx_stage(&Inc, NULL),
                                MPX_B(mpx_stage(&Inc, NULL), mpx_stage(&Inc, NULL)))),
                    mpx_stage(&Inc, NULL)),
              mpx_stage(&Inc, NULL)),
        mpx_stage(&Inc, NULL));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(mpx_graph_instance_count(g), 8);
    /* Each input x leaves as exactly one x+2 and zero to two x+3, so
     * every item's distance from its input (meta "i") tells its path. */
    int64_t plus2 = 0, plus3 = 0, other = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t i;
        REQUIRE(mpx_item_meta_i64(it, "i", &i) == 0, "meta lost");
        int64_t d = mpx_item_i64(it) - i;
        plus2 += d == 2;
        plus3 += d == 3;
        other += d != 2 && d != 3;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(plus2, 100);
    CHECK_EQ(other, 0);
    /* The instances, in declaration order: range, then inc 1 to 7 as
     * written above.  What each took says how many x+3 there must be. */
    unsigned long long in[8];
    for (size_t k = 0; k < 8; k++) {
        mpx_instance_info_t info;
        REQUIRE(mpx_graph_instance_info(g, k, &info) == 0, "no info");
        in[k] = info.items_in;
    }
    CHECK_EQ(in[1] + in[6], 100); /* the outer parallel: each item once */
    CHECK_EQ(in[5], in[1]);       /* the outer broadcast: both branches */
    CHECK_EQ(in[2] + in[3], in[1]); /* the inner parallel */
    CHECK_EQ(in[4], in[3]);       /* the inner broadcast */
    CHECK_EQ(plus3, in[2] + 2 * in[3]);
    CHECK_EQ(in[7], plus2 + plus3);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Exactly the output a single process would give, for a graph whose
 * counts are fixed: S(range, B(inc, S(inc, inc)), P(inc, inc)). */
static void broadcast_and_parallel_counts(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 1000),
                            MPX_B(mpx_stage(&Inc, NULL),
                                  MPX_S(mpx_stage(&Inc, NULL), mpx_stage(&Inc, NULL))),
                            MPX_P(mpx_stage(&Inc, NULL), mpx_stage(&Inc, NULL)));
    int64_t n;
    int64_t sum = drain_sum(g, &n);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 2000);
    CHECK_EQ(sum, 2 * 499500 + 1000 * 2 + 1000 * 3);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void embed_graph(void)
{
    mpx_graph_t *inner = MPX_EZ(mpx_stage(&Inc, NULL), mpx_as(3, &Inc, NULL));
    mpx_graph_t *g = MPX_EZ(range_node(0, 500), inner, mpx_stage(&Inc, NULL));
    int64_t n;
    int64_t sum = drain_sum(g, &n);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 500);
    CHECK_EQ(sum, 124750 + 3 * 500);
    CHECK_EQ(mpx_graph_instance_count(g), 6);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static int where(mpx_stage_t *st, mpx_item_t *it)
{
    mpx_part_t parts[2] = {{mpx_item_data(it, 0), 8},
                           {&(int64_t){mpx_stage_instance(st) * 100 + mpx_stage_instances(st)}, 8}};
    return mpx_put_parts(st, parts, 2);
}
static const mpx_stage_def_t Where = {.name = "where", .process = where};

static void as_and_by(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 300), mpx_as(4, &Where, NULL));
    int seen[4] = {0};
    int64_t n = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t tag;
        REQUIRE(mpx_item_get_i64(it, 1, &tag) == 0, "no tag");
        CHECK_EQ(tag % 100, 4);
        if (tag / 100 < 4)
            seen[tag / 100]++;
        n++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 300); /* parallel: each item once */
    CHECK_EQ(seen[0] + seen[1] + seen[2] + seen[3], 300);
    expect_clean(g);
    mpx_node_destroy(&g);

    g = MPX_EZ(range_node(0, 300), mpx_by(3, &Where, NULL));
    int per[3] = {0};
    n = 0;
    while ((it = mpx_graph_next(g))) {
        int64_t tag;
        REQUIRE(mpx_item_get_i64(it, 1, &tag) == 0, "no tag");
        CHECK_EQ(tag % 100, 3);
        if (tag / 100 < 3)
            per[tag / 100]++;
        n++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 900); /* broadcast: each item to every instance */
    CHECK(per[0] == 300 && per[1] == 300 && per[2] == 300, "%d %d %d", per[0], per[1], per[2]);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static int64_t triple(int64_t x) { return 3 * x; }
static double half(double x) { return x / 2; }
static int negate(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_i64(st, -mpx_item_i64(it)); }
static int to_f64(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_f64(st, (double)mpx_item_i64(it)); }
static int to_i64(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_i64(st, (int64_t)mpx_item_f64(it)); }

static void plain_functions(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(1, 10), MPX_FN(triple), MPX_FN(negate), MPX_FN(to_f64),
                            MPX_FN(half), MPX_FN(to_i64));
    int64_t n;
    int64_t sum = drain_sum(g, &n);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 10);
    /* -(3x)/2 truncated toward zero for x = 1..10 */
    int64_t want = 0;
    for (int64_t x = 1; x <= 10; x++)
        want += (int64_t)(-(double)(3 * x) / 2);
    CHECK_EQ(sum, want);
    mpx_instance_info_t info;
    REQUIRE(mpx_graph_instance_info(g, 1, &info) == 0, "no info");
    CHECK(strcmp(info.name, "triple") == 0, "plain function stage named '%s'", info.name);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void arrays_and_short_names(void)
{
    mpx_node_t *branches[3];
    for (int i = 0; i < 3; i++)
        branches[i] = mpx_stage(&Inc, NULL);
    mpx_node_t *steps[3] = {range_node(0, 100), mpx_broadcast_v(branches, 3),
                            As(2, &Inc, NULL)};
    mpx_graph_t *g = mpx_serial_v(steps, 3);
    int64_t n;
    int64_t sum = drain_sum(g, &n);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 300);
    CHECK_EQ(sum, 3 * 4950 + 300 * 2);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* Each item goes to the single inc, or to both By instances. */
    g = EZ(range_node(0, 10), P(S(mpx_stage(&Inc, NULL)), B(By(2, &Inc, NULL))));
    sum = drain_sum(g, &n);
    CHECK_EQ(mpx_graph_join(g), 0);
    unsigned long long in[4];
    for (size_t k = 0; k < 4; k++) {
        mpx_instance_info_t info;
        REQUIRE(mpx_graph_instance_info(g, k, &info) == 0, "no info");
        in[k] = info.items_in;
    }
    CHECK_EQ(in[1] + in[2], 10);
    CHECK_EQ(in[3], in[2]);
    CHECK_EQ(n, in[1] + 2 * in[2]);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void instances_of_any_stage(void)
{
    mpx_node_t *doubled = mpx_instances(MPX_FN(triple), 3);
    CHECK(strcmp(mpx_node_name(doubled), "triple") == 0, "%s", mpx_node_name(doubled));
    mpx_graph_t *g = MPX_EZ(range_node(0, 300), doubled);
    CHECK(strcmp(mpx_node_name(g), "serial group") == 0, "%s", mpx_node_name(g));
    CHECK_EQ(mpx_graph_instance_count(g), 4);
    int64_t n;
    CHECK_EQ(drain_sum(g, &n), 3 * 44850);
    CHECK_EQ(n, 300);
    CHECK_EQ(mpx_graph_join(g), 0);
    mpx_instance_info_t info;
    CHECK_EQ(mpx_graph_instance_info(g, 3, &info), 0);
    CHECK(info.instance == 2 && info.instances == 3, "%d of %d", info.instance, info.instances);
    expect_clean(g);
    mpx_node_destroy(&g);

    expect_refused(MPX_EZ(range_node(0, 3), mpx_instances(MPX_S(mpx_stage(&Pass, NULL)), 2)),
                   "mpx_instances(2, 'serial group'): the node is not a single stage");
    expect_refused(MPX_EZ(range_node(0, 3), mpx_instances(mpx_stage(&Pass, NULL), 0)),
                   "n is out of range");
    expect_refused(MPX_EZ(range_node(0, 3), mpx_instances(NULL, 2)), "the node is NULL");
}

/* mpx_instances on a node that already belongs to a graph, or on a graph
 * that has run, gives a node that makes the check fail; the node and its
 * graph are left as they were, each still freed by its owner. */
static void refuse_instances_of_member(void)
{
    mpx_node_t *inner = mpx_stage(&Pass, NULL);
    mpx_graph_t *g = MPX_EZ(range_node(0, 3), inner);
    mpx_node_t *bad = mpx_instances(inner, 2);
    REQUIRE(bad != NULL && bad != inner, "mpx_instances gave back the member node");
    expect_refused(MPX_EZ(range_node(0, 3), bad),
                   "mpx_instances(2, 'pass'): the node is already part of a graph");
    /* g still has one pass instance, and runs. */
    CHECK_EQ(mpx_graph_check(g), 0);
    CHECK_EQ(mpx_graph_instance_count(g), 2);
    int64_t n;
    CHECK_EQ(drain_sum(g, &n), 0 + 1 + 2);
    CHECK_EQ(n, 3);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);

    mpx_graph_t *ran = range_node(0, 3);
    CHECK_EQ(mpx_graph_join(ran), 0);
    bad = mpx_instances(ran, 2);
    REQUIRE(bad != NULL && bad != ran, "mpx_instances gave back a graph that has run");
    expect_refused(MPX_EZ(range_node(0, 3), bad),
                   "mpx_instances(2, 'range'): the node is already part of a graph");
    CHECK_EQ(mpx_graph_instance_count(ran), 1);
    CHECK_EQ(mpx_graph_join(ran), 0); /* the outcome again */
    expect_clean(ran);
    mpx_node_destroy(&ran);
}

static void node_names(void)
{
    mpx_node_t *s = mpx_stage(&Inc, NULL);
    CHECK_EQ(mpx_node_set_name(s, "renamed"), 0);
    CHECK_EQ(mpx_node_set_name(s, ""), MPX_EINVAL);
    CHECK_EQ(mpx_node_set_name(NULL, "x"), MPX_EINVAL);
    mpx_graph_t *g = MPX_EZ(range_node(0, 1), s);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    mpx_instance_info_t info;
    REQUIRE(mpx_graph_instance_info(g, 1, &info) == 0, "no info");
    CHECK(strcmp(info.name, "renamed") == 0, "%s", info.name);
    CHECK_EQ(mpx_node_set_name(s, "late"), MPX_ESTATE);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(refuse_null_node),
        TEST_CASE(refuse_empty_group),
        TEST_CASE(refuse_node_used_twice),
        TEST_CASE(refuse_bad_counts),
        TEST_CASE(refuse_bad_definitions),
        TEST_CASE(first_stage_without_setup_takes_input),
        TEST_CASE(refuse_part_of_other_graph),
        TEST_CASE(check_passes),
        TEST_CASE(started_twice),
        TEST_CASE(nest_deeply),
        TEST_CASE(broadcast_and_parallel_counts),
        TEST_CASE(embed_graph),
        TEST_CASE(as_and_by),
        TEST_CASE(plain_functions),
        TEST_CASE(arrays_and_short_names),
        TEST_CASE(node_names),
        TEST_CASE(instances_of_any_stage),
        TEST_CASE(refuse_instances_of_member),
    };
    pthread_atfork(count_fork, NULL, NULL);
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
