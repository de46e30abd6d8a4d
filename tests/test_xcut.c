/* tests/test_xcut.c — side graphs (xcut): every stage can put into one by
 * name; the side graph starts with the main graph and ends after the main
 * graph has drained into it. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

/* Each main stage reports every item it handles to "log", by name. */
static int report(mpx_stage_t *st)
{
    const char *name = mpx_stage_name(st);
    return mpx_put_to(st, "log", name, strlen(name));
}

static int src_setup(mpx_stage_t *st)
{
    for (int64_t v = 0; v < 3000; v++) {
        int rc = report(st);
        if (rc == 0)
            rc = mpx_put_i64(st, v);
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Src = {.name = "src", .setup = src_setup};

static int work_process(mpx_stage_t *st, mpx_item_t *it)
{
    int rc = report(st);
    return rc ? rc : mpx_put_item(st, it);
}
static const mpx_stage_def_t Work = {.name = "work", .process = work_process};

/* (A put to an unknown side graph fails the stage: test_mistakes.c.) */
static int sink_process(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    return report(st);
}
static const mpx_stage_def_t Sink = {.name = "sink", .process = sink_process};

/* The single writer: counts reports per stage name; at teardown writes
 * "name count" lines to the file named in its args. */
typedef struct writer_state {
    int64_t src, work, sink, other;
} writer_state_t;

static int writer_process(mpx_stage_t *st, mpx_item_t *it)
{
    writer_state_t *s = mpx_state(st);
    const char *name = mpx_item_str(it);
    int64_t *c = !strcmp(name, "src") ? &s->src : !strcmp(name, "work") ? &s->work
                : !strcmp(name, "sink")                                  ? &s->sink
                                                                         : &s->other;
    ++*c;
    /* (Inside the side graph there is no side graph to put into: a put
     * into its own name fails the stage, test_mistakes.c.) */
    return 0;
}

static int writer_teardown(mpx_stage_t *st)
{
    writer_state_t *s = mpx_state(st);
    FILE *f = fopen(mpx_args(st), "w");
    if (!f)
        return mpx_fail(st, "cannot write %s", (const char *)mpx_args(st));
    fprintf(f, "%lld %lld %lld %lld\n", (long long)s->src, (long long)s->work, (long long)s->sink,
            (long long)s->other);
    return fclose(f) == 0 ? 0 : mpx_fail(st, "cannot write the counts");
}

static const mpx_stage_def_t Writer = {.name = "writer", .args_size = 256,
                                       .state_size = sizeof(writer_state_t),
                                       .process = writer_process, .teardown = writer_teardown};

static void every_stage_reports_to_one_writer(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/counts", harness_tmpdir());
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Src, NULL), mpx_as(3, &Work, NULL), mpx_stage(&Sink, NULL));
    CHECK_EQ(mpx_graph_xcut(g, "log", MPX_EZ(mpx_stage(&Writer, path))), 0);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(mpx_graph_instance_count(g), 6);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    long long src = -1, work = -1, sink = -1, other = -1;
    FILE *f = fopen(path, "r");
    REQUIRE(f, "the writer wrote nothing");
    CHECK(fscanf(f, "%lld %lld %lld %lld", &src, &work, &sink, &other) == 4, "format");
    fclose(f);
    unlink(path);
    CHECK_EQ(src, 3000);
    CHECK_EQ(work, 3000);
    CHECK_EQ(sink, 3000);
    CHECK_EQ(other, 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A side graph attached to an inner node serves the stages inside it
 * only; a nearer side graph of the same name hides an outer one. */
static int tag_process(mpx_stage_t *st, mpx_item_t *it)
{
    int rc = mpx_put_to(st, "log", mpx_stage_name(st), strlen(mpx_stage_name(st)));
    return rc ? rc : mpx_put_item(st, it);
}
static const mpx_stage_def_t Tag = {.name = "work", .process = tag_process};
static const mpx_stage_def_t TagSink = {.name = "sink", .process = tag_process};

static void side_graph_of_inner_node(void)
{
    char outer_path[256], inner_path[256];
    snprintf(outer_path, sizeof outer_path, "%s/outer", harness_tmpdir());
    snprintf(inner_path, sizeof inner_path, "%s/inner", harness_tmpdir());
    mpx_node_t *inner = MPX_S(mpx_as(2, &Tag, NULL));
    CHECK_EQ(mpx_graph_xcut(inner, "log", MPX_EZ(mpx_stage(&Writer, inner_path))), 0);
    mpx_graph_t *g = MPX_EZ(range_node(0, 500), inner, mpx_stage(&TagSink, NULL));
    CHECK_EQ(mpx_graph_xcut(g, "log", MPX_EZ(mpx_stage(&Writer, outer_path))), 0);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    long long c[2][4];
    const char *paths[2] = {inner_path, outer_path};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "r");
        REQUIRE(f, "no counts in %s", paths[i]);
        CHECK(fscanf(f, "%lld %lld %lld %lld", &c[i][0], &c[i][1], &c[i][2], &c[i][3]) == 4,
              "format");
        fclose(f);
        unlink(paths[i]);
    }
    /* inner writer: only "work"; outer writer: only "sink" */
    CHECK(c[0][0] == 0 && c[0][1] == 500 && c[0][2] == 0 && c[0][3] == 0, "inner %lld %lld %lld",
          c[0][0], c[0][1], c[0][2]);
    CHECK(c[1][0] == 0 && c[1][1] == 0 && c[1][2] == 500 && c[1][3] == 0, "outer %lld %lld %lld",
          c[1][0], c[1][1], c[1][2]);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void xcut_refusals(void)
{
    mpx_graph_t *side = MPX_EZ(mpx_stage(&Drop, NULL));
    mpx_graph_t *g = MPX_EZ(range_node(0, 10), mpx_stage(&Inc, NULL));
    CHECK_EQ(mpx_graph_xcut(g, "log", side), 0);
    /* Refused: the caller keeps the side graph. */
    mpx_graph_t *spare = MPX_EZ(mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_xcut(g, "log", spare), MPX_EINVAL); /* the name is taken */
    CHECK_EQ(mpx_graph_xcut(g, "", spare), MPX_EINVAL);
    CHECK_EQ(mpx_graph_xcut(g, "other", side), MPX_EINVAL); /* already attached */
    CHECK_EQ(mpx_graph_xcut(g, "self", g), MPX_EINVAL);
    mpx_node_destroy(&spare);
    mpx_node_destroy(&g);

    /* A broken side graph is refused before anything forks. */
    g = MPX_EZ(range_node(0, 10), mpx_stage(&Inc, NULL));
    CHECK_EQ(mpx_graph_xcut(g, "log", MPX_EZ(mpx_as(0, &Drop, NULL))), 0);
    CHECK_EQ(mpx_graph_start(g), MPX_EGRAPH);
    CHECK(strstr(mpx_graph_error(g), "n must be at least 1") &&
              strstr(mpx_graph_error(g), "xcut 'log'"),
          "%s", mpx_graph_error(g));
    CHECK(no_children_left(0), "forked");
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(every_stage_reports_to_one_writer),
        TEST_CASE(side_graph_of_inner_node),
        TEST_CASE(xcut_refusals),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
