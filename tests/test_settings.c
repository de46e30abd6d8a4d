/* tests/test_settings.c — per-stage environment variables and per-stage
 * timing in meta. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "stages.h"

/* Puts, per item, the values of MPX_A, MPX_B and HOME as seen in setup
 * (or "-" when unset). */
typedef struct env_state {
    char seen[3][64];
} env_state_t;

static int env_setup(mpx_stage_t *st)
{
    env_state_t *s = mpx_state(st);
    const char *names[3] = {"MPX_A", "MPX_B", "HOME"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);
        snprintf(s->seen[i], sizeof s->seen[i], "%s", v ? v : "-");
    }
    return 0;
}

static int env_process(mpx_stage_t *st, mpx_item_t *it)
{
    env_state_t *s = mpx_state(st);
    mpx_part_t parts[4] = {{mpx_stage_name(st), strlen(mpx_stage_name(st))},
                           {s->seen[0], strlen(s->seen[0])},
                           {s->seen[1], strlen(s->seen[1])},
                           {s->seen[2], strlen(s->seen[2])}};
    (void)it;
    int rc = mpx_put_parts(st, parts, 4);
    return rc ? rc : mpx_put_item(st, it);
}
static const mpx_stage_def_t Env = {.name = "env", .state_size = sizeof(env_state_t),
                                    .setup = env_setup, .process = env_process};

static void environment_per_stage(void)
{
    setenv("HOME", "/home/parent", 1);
    unsetenv("MPX_A");
    mpx_node_t *outer = mpx_stage(&Env, NULL), *inner = mpx_stage(&Env, NULL),
               *bare = mpx_stage(&Env, NULL);
    CHECK_EQ(mpx_node_set_name(outer, "outer"), 0);
    CHECK_EQ(mpx_node_set_name(inner, "inner"), 0);
    CHECK_EQ(mpx_node_set_name(bare, "bare"), 0);
    mpx_node_t *group = MPX_S(inner, bare);
    CHECK_EQ(mpx_node_setenv(group, "MPX_A", "group"), 0);
    CHECK_EQ(mpx_node_setenv(inner, "MPX_A", "inner"), 0); /* nearer wins */
    CHECK_EQ(mpx_node_setenv(inner, "MPX_B", "b"), 0);
    CHECK_EQ(mpx_node_setenv(inner, "HOME", NULL), 0);    /* removed */
    CHECK_EQ(mpx_node_setenv(inner, "BAD=NAME", "x"), MPX_EINVAL);
    mpx_graph_t *g = MPX_EZ(range_node(0, 1), outer, group);
    CHECK_EQ(mpx_node_setenv(g, "MPX_A", "root"), 0);

    const char *want[3][4] = {{"outer", "root", "-", "/home/parent"},
                              {"inner", "inner", "b", "-"},
                              {"bare", "group", "-", "/home/parent"}};
    int seen = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        if (mpx_item_parts(it) != 4)
            continue;
        for (int k = 0; k < 3; k++) {
            if (strcmp(mpx_item_data(it, 0), want[k][0]) != 0)
                continue;
            seen |= 1 << k;
            for (int j = 1; j < 4; j++)
                CHECK(strcmp(mpx_item_data(it, (size_t)j), want[k][j]) == 0,
                      "%s saw %s where %s was expected", want[k][0],
                      (const char *)mpx_item_data(it, (size_t)j), want[k][j]);
        }
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(seen, 7);
    /* The parent's environment is its own. */
    CHECK(getenv("MPX_A") == NULL && getenv("MPX_B") == NULL, "parent environment changed");
    CHECK(getenv("HOME") && strcmp(getenv("HOME"), "/home/parent") == 0, "HOME changed");
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Sleeps 2 ms on every item before passing it on. */
static int nap(mpx_stage_t *st, mpx_item_t *it)
{
    struct timespec ts = {0, 2000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Nap = {.name = "nap", .process = nap};

static void timing_in_meta(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 20), mpx_stage(&Inc, NULL), mpx_stage(&Nap, NULL),
                            mpx_stage(&Inc, NULL));
    CHECK_EQ(mpx_node_set_timing(g, true), 0);
    int64_t n = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t a = -1, b = -1, nap_ns = -1;
        CHECK_EQ(mpx_item_meta_i64(it, "time/inc", &a), 0);
        CHECK_EQ(mpx_item_meta_i64(it, "time/inc#2", &b), 0);
        CHECK_EQ(mpx_item_meta_i64(it, "time/nap", &nap_ns), 0);
        /* nanosleep sleeps at least as long as asked: a lower bound holds. */
        CHECK(a >= 0 && b >= 0 && nap_ns >= 2000000, "%lld %lld %lld", (long long)a,
              (long long)b, (long long)nap_ns);
        CHECK(mpx_item_meta(it, "time/range", NULL) == NULL, "a source has no process time");
        n++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 20);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* Off by default, and off where a nearer node says so. */
    mpx_node_t *quiet = mpx_stage(&Inc, NULL);
    CHECK_EQ(mpx_node_set_timing(quiet, false), 0);
    g = MPX_EZ(range_node(0, 5), mpx_stage(&Inc, NULL), MPX_S(quiet));
    mpx_graph_t *g2 = MPX_EZ(range_node(0, 5), mpx_stage(&Inc, NULL));
    CHECK_EQ(mpx_node_set_timing(g, true), 0);
    while ((it = mpx_graph_next(g))) {
        CHECK(mpx_item_meta(it, "time/inc", NULL) != NULL, "timing lost");
        CHECK(mpx_item_meta(it, "time/inc#2", NULL) == NULL, "timing where it was turned off");
    }
    while ((it = mpx_graph_next(g2)))
        CHECK_EQ(mpx_item_meta_count(it), 1); /* only range's "i" */
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(mpx_graph_join(g2), 0);
    expect_clean(g);
    expect_clean(g2);
    mpx_node_destroy(&g);
    mpx_node_destroy(&g2);
}

/* Puts 5 items, then a mark. */
static int five_and_mark(mpx_stage_t *st)
{
    for (int64_t v = 0; v < 5; v++) {
        int rc = mpx_put_i64(st, v);
        if (rc != 0)
            return rc;
    }
    int rc = mpx_put_mark(st, 1);
    return rc ? rc : mpx_stop(st);
}
static const mpx_stage_def_t FiveAndMark = {.name = "five", .setup = five_and_mark};

/* Passes items on, and puts one more from its mark hook: no process time
 * belongs to that one. */
static int pass_on(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }
static int extra_on_mark(mpx_stage_t *st, uint64_t value)
{
    (void)value;
    return mpx_put_i64(st, -1);
}
static const mpx_stage_def_t HolderPass = {.name = "holder", .process = pass_on,
                                           .mark = extra_on_mark};

static void timing_only_in_process(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&FiveAndMark, NULL), mpx_stage(&HolderPass, NULL));
    CHECK_EQ(mpx_node_set_timing(g, true), 0);
    int64_t extra = 0, timed = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        bool has = mpx_item_meta(it, "time/holder", NULL) != NULL;
        if (mpx_item_i64(it) == -1) {
            extra++;
            CHECK(!has, "an item put from a hook has a process time");
        } else {
            timed += has;
        }
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(extra, 1);
    CHECK_EQ(timed, 5);
    expect_clean(g);
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(environment_per_stage),
        TEST_CASE(timing_in_meta),
        TEST_CASE(timing_only_in_process),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
