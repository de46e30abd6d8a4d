/* tests/test_output.c — the graph's output in the parent: a lazy iterator
 * while the graph runs, collect-all, and graphs that put nothing. */
#define _GNU_SOURCE
#include <string.h>

#include "harness.h"
#include "stages.h"

/* An endless graph can only be consumed lazily: take 1000 items while it
 * runs, then stop it. */
static void iterate_while_running(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_as(2, &Inc, NULL));
    int64_t n = 0, bad = 0;
    mpx_item_t *it;
    while (n < 1000 && (it = mpx_graph_next(g))) {
        bad += mpx_item_i64(it) < 1;
        n++;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(n, 1000);
    CHECK(!mpx_graph_finished(g), "the endless graph ended");
    CHECK_EQ(mpx_graph_stop(g), 0);
    CHECK(mpx_graph_finished(g), "stop returned before the end");
    CHECK(mpx_graph_next(g) == NULL, "items after stop");
    CHECK_EQ(mpx_graph_join(g), MPX_ESTOPPED);
    CHECK(strstr(mpx_graph_error(g), "stopped") != NULL, "%s", mpx_graph_error(g));
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void iterate_with_meta(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(10, 500), mpx_stage(&Inc, NULL));
    int64_t n = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t i;
        CHECK(mpx_item_meta_i64(it, "i", &i) == 0 && mpx_item_i64(it) == i + 1, "meta");
        n++;
    }
    CHECK_EQ(n, 500);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(mpx_graph_next(g) == NULL, "items after the end");
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void collect_all(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 2000), mpx_as(3, &Inc, NULL));
    mpx_list_t *list = NULL;
    CHECK_EQ(mpx_graph_collect(g, &list), 0);
    REQUIRE(list != NULL, "no list");
    CHECK_EQ(mpx_list_size(list), 2000);
    char seen[2001] = {0};
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        mpx_item_t *it = mpx_list_at(list, i);
        int64_t v = mpx_item_i64(it), m;
        CHECK(v >= 1 && v <= 2000, "value %lld", (long long)v);
        if (v >= 1 && v <= 2000)
            seen[v]++;
        CHECK(mpx_item_meta_i64(it, "i", &m) == 0 && m == v - 1, "meta of collected item");
    }
    for (int v = 1; v <= 2000; v++)
        if (seen[v] != 1) {
            CHECK_EQ(seen[v], 1);
            break;
        }
    CHECK(mpx_list_at(list, 2000) == NULL, "past the end");
    mpx_list_destroy(&list);
    CHECK(list == NULL, "destroy clears the pointer");
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void collect_failure(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_invalid("refused on purpose"));
    mpx_list_t *list = (mpx_list_t *)&list;
    CHECK_EQ(mpx_graph_collect(g, &list), MPX_EGRAPH);
    CHECK(list == NULL, "list on failure");
    mpx_node_destroy(&g);
}

static void last_stage_puts_nothing(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 10000), mpx_stage(&Inc, NULL), mpx_as(2, &Drop, NULL));
    CHECK(mpx_graph_next(g) == NULL, "an item from a graph that puts none");
    CHECK_EQ(mpx_graph_join(g), 0);
    mpx_instance_info_t a, b;
    CHECK_EQ(mpx_graph_instance_info(g, 2, &a), 0);
    CHECK_EQ(mpx_graph_instance_info(g, 3, &b), 0);
    CHECK_EQ(a.items_in + b.items_in, 10000);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A graph in which nothing is ever put ends cleanly, every time: it must
 * not finish before start() has let it go. */
static int empty_setup(mpx_stage_t *st) { return mpx_stop(st); }
static const mpx_stage_def_t Empty = {.name = "empty", .setup = empty_setup};

static void nothing_put_at_all(void)
{
    for (int round = 0; round < 40; round++) {
        mpx_graph_t *g = MPX_EZ(mpx_stage(&Empty, NULL), mpx_as(2, &Inc, NULL),
                                mpx_stage(&Drop, NULL));
        int rc = mpx_graph_join(g);
        CHECK(rc == 0, "round %d: %s", round, mpx_graph_error(g));
        expect_clean(g);
        mpx_node_destroy(&g);
        if (rc != 0)
            break;
    }
}

/* Part data is 8-byte aligned wherever an item is read, whatever its size
 * (zmq hands small messages out at any offset of its read buffer). */
static int sized_setup(mpx_stage_t *st)
{
    static const uint64_t block[512];
    static const size_t sizes[] = {1, 8, 13, 40, 100, 1000, 3000, 4096};
    for (int round = 0; round < 50; round++)
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            mpx_part_t parts[2] = {{block, sizes[i]}, {block, 8}};
            int rc = mpx_put_parts(st, parts, 1 + (size_t)(round % 2));
            if (rc != 0)
                return rc;
        }
    return mpx_stop(st);
}
static const mpx_stage_def_t Sized = {.name = "sized", .setup = sized_setup};

static int aligned_or_fail(mpx_stage_t *st, mpx_item_t *it)
{
    for (size_t i = 0; i < mpx_item_parts(it); i++)
        if ((uintptr_t)mpx_item_data(it, i) & 7)
            return mpx_fail(st, "part %zu of %zu bytes at %p", i, mpx_item_size(it, i),
                            mpx_item_data(it, i));
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Aligned = {.name = "aligned", .process = aligned_or_fail};

static void parts_are_aligned(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Sized, NULL), mpx_as(2, &Aligned, NULL),
                            mpx_stage(&Aligned, NULL));
    int64_t n = 0, misaligned = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        for (size_t i = 0; i < mpx_item_parts(it); i++)
            misaligned += ((uintptr_t)mpx_item_data(it, i) & 7) != 0;
        n++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(n, 400);
    CHECK_EQ(misaligned, 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* join alone discards the output and still ends cleanly. */
static void join_discards_output(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 100000), mpx_stage(&Inc, NULL));
    CHECK_EQ(mpx_graph_join(g), 0);
    mpx_instance_info_t info;
    CHECK_EQ(mpx_graph_instance_info(g, 1, &info), 0);
    CHECK_EQ(info.items_out, 100000);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void run_helper(void)
{
    CHECK_EQ(mpx_run(MPX_EZ(range_node(0, 10), mpx_stage(&Inc, NULL))), 0);
    CHECK_EQ(mpx_run(MPX_EZ(range_node(0, 10), NULL)), MPX_EGRAPH);
    CHECK_EQ(mpx_run(NULL), MPX_EINVAL);
    CHECK(no_children_left(0), "children left");
    CHECK_EQ(dir_entries(harness_tmpdir()), 0);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(iterate_while_running),
        TEST_CASE(iterate_with_meta),
        TEST_CASE(collect_all),
        TEST_CASE(collect_failure),
        TEST_CASE(last_stage_puts_nothing),
        TEST_CASE(nothing_put_at_all),
        TEST_CASE(parts_are_aligned),
        TEST_CASE(join_discards_output),
        TEST_CASE(run_helper),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
