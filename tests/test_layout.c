/* tests/test_layout.c — the graph as a text tree and as Graphviz DOT.
 *
 * The text is compared line by line with what a reader should see; the
 * DOT is given to Graphviz's own dot, which must take it without a word,
 * and its arrows are read back by stage name and compared as a set. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

static int src_setup(mpx_stage_t *st) { return mpx_stop(st); }
static int pass(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }

static const mpx_stage_def_t Src = {.name = "src", .setup = src_setup};
static const mpx_stage_def_t A = {.name = "a", .process = pass};
static const mpx_stage_def_t B = {.name = "b", .process = pass};
static const mpx_stage_def_t C = {.name = "c", .process = pass};
static const mpx_stage_def_t D = {.name = "d", .process = pass};
static const mpx_stage_def_t E = {.name = "e", .process = pass};
static const mpx_stage_def_t F = {.name = "f", .process = pass};
static const mpx_stage_def_t W = {.name = "w", .process = pass};
static const mpx_stage_def_t Z = {.name = "z", .process = pass};

typedef int picture_fn(const mpx_graph_t *g, FILE *f);

/* What `fn` writes for g, as a malloc'd string; *rc gets its status. */
static char *capture(picture_fn *fn, const mpx_graph_t *g, int *rc)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    REQUIRE(f != NULL, "open_memstream failed");
    *rc = fn(g, f);
    REQUIRE(fclose(f) == 0, "closing the memstream failed");
    return text;
}

/* Every kind of node the pictures know: groups (one named), mpx_as and
 * mpx_by, a renamed stage, capacities and a side graph. */
static mpx_graph_t *nested_graph(void)
{
    mpx_node_t *workers = MPX_P(mpx_stage(&A, NULL), mpx_as(2, &B, NULL));
    mpx_node_t *e = mpx_stage(&E, NULL);
    mpx_node_t *last = mpx_stage(&F, NULL);
    mpx_node_t *g = MPX_S(mpx_stage(&Src, NULL), workers,
                          MPX_B(mpx_by(3, &C, NULL), MPX_S(mpx_stage(&D, NULL), e)), last);
    REQUIRE(g != NULL, "building the graph failed");
    REQUIRE(mpx_node_set_name(workers, "workers") == 0, "naming a group failed");
    REQUIRE(mpx_node_set_name(g, "main") == 0, "naming the root failed");
    REQUIRE(mpx_node_set_name(last, "last") == 0, "naming a stage failed");
    REQUIRE(mpx_node_set_capacity(g, 64, 0) == 0, "capacity on the root failed");
    REQUIRE(mpx_node_set_capacity(e, 0, 4096) == 0, "capacity on a stage failed");
    mpx_graph_t *side = MPX_EZ(mpx_as(2, &W, NULL), mpx_stage(&Z, NULL));
    REQUIRE(side && mpx_graph_xcut(g, "log", side) == 0, "attaching the side graph failed");
    return g;
}

static const char *const nested_text[] = {
    "serial \"main\" [capacity: 64 items]",
    "├── src",
    "├── parallel \"workers\"",
    "│   ├── a",
    "│   └── b ×2 (parallel)",
    "├── broadcast",
    "│   ├── c ×3 (broadcast)",
    "│   └── serial",
    "│       ├── d",
    "│       └── e [capacity: 4096 bytes]",
    "├── last",
    "└── xcut \"log\":",
    "    └── serial",
    "        ├── w ×2 (parallel)",
    "        └── z",
};

/* Compare text with the expected lines one by one, saying which differs. */
static void expect_lines(const char *text, const char *const *lines, size_t n)
{
    const char *p = text;
    for (size_t i = 0; i < n; i++) {
        const char *nl = strchr(p, '\n');
        REQUIRE(nl != NULL, "the text ends before line %zu ('%s'):\n%s", i + 1, lines[i], text);
        CHECK((size_t)(nl - p) == strlen(lines[i]) && strncmp(p, lines[i], strlen(lines[i])) == 0,
              "line %zu is '%.*s', expected '%s'", i + 1, (int)(nl - p), p, lines[i]);
        p = nl + 1;
    }
    CHECK(*p == '\0', "lines after the expected ones: '%s'", p);
}

/* Seq's halves show where they run: in the stage before, in the stage
 * after or in the program, or (after a parallel group) as stages of
 * their own. */
static void text_says_where_seq_runs(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Src, NULL), mpx_seq(mpx_as(2, &A, NULL)),
                            mpx_stage(&B, NULL), mpx_seq(mpx_as(2, &C, NULL)),
                            mpx_as(2, &D, NULL), mpx_seq(mpx_stage(&E, NULL)));
    REQUIRE(g != NULL, "building the graph failed");
    static const char *const want[] = {
        "serial",
        "├── src",
        "├── serial",
        "│   ├── seq-stamp (in 'src')",
        "│   ├── a ×2 (parallel)",
        "│   └── seq (in 'b')",
        "├── b",
        "├── serial",
        "│   ├── seq-stamp (in 'b')",
        "│   ├── c ×2 (parallel)",
        "│   └── seq",
        "├── d ×2 (parallel)",
        "└── serial",
        "    ├── seq-stamp",
        "    ├── e",
        "    └── seq (in the program)",
    };
    int rc;
    char *text = capture(mpx_graph_print_layout, g, &rc);
    CHECK_EQ(rc, 0);
    expect_lines(text, want, sizeof want / sizeof *want);
    free(text);
    text = capture(mpx_graph_write_dot, g, &rc);
    CHECK_EQ(rc, 0);
    CHECK(strstr(text, "label=\"seq-stamp\\n(in 'src')\"") != NULL, "DOT: %s", text);
    CHECK(strstr(text, "label=\"seq\\n(in the program)\"") != NULL, "DOT: %s", text);
    free(text);
    mpx_node_destroy(&g);
}

static void refuses_null(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Src, NULL));
    CHECK_EQ(mpx_graph_print_layout(NULL, stdout), MPX_EINVAL);
    CHECK_EQ(mpx_graph_write_dot(NULL, stdout), MPX_EINVAL);
    CHECK_EQ(mpx_graph_print_layout(g, NULL), MPX_EINVAL);
    CHECK_EQ(mpx_graph_write_dot(g, NULL), MPX_EINVAL);
    mpx_node_destroy(&g);
}

static void text_of_a_nested_graph(void)
{
    mpx_graph_t *g = nested_graph();
    int rc;
    char *text = capture(mpx_graph_print_layout, g, &rc);
    CHECK_EQ(rc, 0);
    expect_lines(text, nested_text, sizeof nested_text / sizeof *nested_text);
    free(text);
    mpx_node_destroy(&g);
}

/* A side graph on a stage, and one inside a side graph: each drawn under
 * the node it belongs to, after that node's children. */
static void text_of_side_graphs_anywhere(void)
{
    mpx_node_t *b = mpx_stage(&B, NULL);
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Src, NULL), b, mpx_stage(&C, NULL));
    mpx_graph_t *side = MPX_EZ(mpx_stage(&W, NULL), mpx_stage(&Z, NULL));
    mpx_graph_t *inner = mpx_stage(&D, NULL);
    REQUIRE(g && side && inner, "building failed");
    REQUIRE(mpx_graph_xcut(side, "deeper", inner) == 0, "xcut on the side graph failed");
    REQUIRE(mpx_graph_xcut(b, "db", side) == 0, "xcut on a stage failed");
    static const char *const expect[] = {
        "serial",
        "├── src",
        "├── b",
        "│   └── xcut \"db\":",
        "│       └── serial",
        "│           ├── w",
        "│           ├── z",
        "│           └── xcut \"deeper\":",
        "│               └── d",
        "└── c",
    };
    int rc;
    char *text = capture(mpx_graph_print_layout, g, &rc);
    CHECK_EQ(rc, 0);
    expect_lines(text, expect, sizeof expect / sizeof *expect);
    free(text);
    mpx_node_destroy(&g);
}

/* dot reads `text` and renders a PNG: exit status 0 and nothing said on
 * stdout or stderr (a warning would mean something is drawn wrong). */
static void expect_dot_accepts(const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/graph.dot", harness_tmpdir());
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL, "cannot write %s", path);
    fputs(text, f);
    REQUIRE(fclose(f) == 0, "writing %s failed", path);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "dot -Tpng -o /dev/null '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    REQUIRE(p != NULL, "popen(%s) failed", cmd);
    char said[4096];
    size_t n = fread(said, 1, sizeof said - 1, p);
    said[n] = '\0';
    int status = pclose(p);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "dot exited with status %d: %s",
          status, said);
    CHECK(n == 0, "dot said: %s\nabout:\n%s", said, text);
    unlink(path);
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The arrows of a DOT text by stage name ("a -> b", "a ~> w" for a dashed
 * arrow, "z -> output"), sorted, one per line. */
static char *arrows_by_name(const char *dot)
{
    char *labels[64] = {0};
    char *lines[256];
    size_t n = 0;
    for (const char *p = dot; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
        int id, end = 0;
        char label[64];
        if (sscanf(p, " n%d [label=\"%63[^\\\"]%n", &id, label, &end) == 2 && end > 0) {
            REQUIRE(id >= 0 && id < 64, "node id %d out of the test's range", id);
            labels[id] = strdup(label);
        }
    }
    for (const char *p = dot; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
        int from, to = -1, end = 0;
        char target[16];
        if (sscanf(p, " n%d -> %15[a-z0-9]%n", &from, target, &end) != 2)
            continue;
        if (target[0] == 'n')
            to = atoi(target + 1);
        REQUIRE(from >= 0 && from < 64 && labels[from], "arrow from unknown n%d", from);
        REQUIRE(to < 64 && (to < 0 || labels[to]), "arrow to unknown %s", target);
        REQUIRE(n < 256, "too many arrows");
        bool dashed = strncmp(p + end, " [style=dashed]", 15) == 0;
        REQUIRE(asprintf(&lines[n++], "%s %s %s", labels[from], dashed ? "~>" : "->",
                         to < 0 ? target : labels[to]) > 0, "asprintf failed");
    }
    qsort(lines, n, sizeof *lines, by_text);
    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);
    REQUIRE(f != NULL, "open_memstream failed");
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s\n", lines[i]);
        free(lines[i]);
    }
    fclose(f);
    for (size_t i = 0; i < 64; i++)
        free(labels[i]);
    return out;
}

static void dot_of_a_nested_graph(void)
{
    mpx_graph_t *g = nested_graph();
    int rc;
    char *dot = capture(mpx_graph_write_dot, g, &rc);
    CHECK_EQ(rc, 0);
    CHECK(strncmp(dot, "digraph mpx {\n  rankdir=LR;\n", 28) == 0, "starts with '%.40s'", dot);
    expect_dot_accepts(dot);
    /* Clusters for the parallel and the broadcast group and the side
     * graph; none for the serial groups. */
    CHECK(strstr(dot, "label=\"parallel \\\"workers\\\"\"") != NULL, "no cluster 'workers':\n%s",
          dot);
    CHECK(strstr(dot, "label=\"broadcast\"") != NULL, "no broadcast cluster:\n%s", dot);
    CHECK(strstr(dot, "label=\"xcut \\\"log\\\"\"") != NULL, "no xcut cluster:\n%s", dot);
    CHECK(strstr(dot, "serial") == NULL, "a serial group is drawn:\n%s", dot);
    CHECK(strstr(dot, "[label=\"b\\n×2 (parallel)\"]") != NULL, "b's box:\n%s", dot);
    CHECK(strstr(dot, "[label=\"c\\n×3 (broadcast)\"]") != NULL, "c's box:\n%s", dot);

    /* Serial steps connect every exit to every entry; the side graph is
     * fed by every stage of the main graph and its end goes nowhere. */
    char *arrows = arrows_by_name(dot);
    const char *expect = "a -> c\n"
                         "a -> d\n"
                         "a ~> w\n"
                         "b -> c\n"
                         "b -> d\n"
                         "b ~> w\n"
                         "c -> last\n"
                         "c ~> w\n"
                         "d -> e\n"
                         "d ~> w\n"
                         "e -> last\n"
                         "e ~> w\n"
                         "last -> output\n"
                         "last ~> w\n"
                         "src -> a\n"
                         "src -> b\n"
                         "src ~> w\n"
                         "w -> z\n";
    CHECK(strcmp(arrows, expect) == 0, "arrows:\n%s\nexpected:\n%s", arrows, expect);
    free(arrows);
    free(dot);
    mpx_node_destroy(&g);
}

/* MPX_EZ(a, mpx_as(3, b), c): one box per stage node, three arrows. */
static void dot_arrows_of_a_chain(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&A, NULL), mpx_as(3, &B, NULL), mpx_stage(&C, NULL));
    int rc;
    char *dot = capture(mpx_graph_write_dot, g, &rc);
    CHECK_EQ(rc, 0);
    expect_dot_accepts(dot);
    int count = 0;
    for (const char *p = dot; (p = strstr(p, "->")); p += 2)
        count++;
    CHECK_EQ(count, 3);
    char *arrows = arrows_by_name(dot);
    CHECK(strcmp(arrows, "a -> b\nb -> c\nc -> output\n") == 0, "arrows:\n%s", arrows);
    CHECK(strstr(dot, "cluster") == NULL, "a chain has no cluster:\n%s", dot);
    free(arrows);
    free(dot);
    mpx_node_destroy(&g);
}

/* A side graph serves the stages inside the node it is attached to; a
 * nearer one of the same name hides it, and a side graph's own stages
 * feed only what is attached inside it — as mpx_put_to decides. */
static void dot_side_graphs_nearest_wins(void)
{
    mpx_node_t *inner = MPX_S(mpx_stage(&B, NULL), mpx_stage(&C, NULL));
    mpx_graph_t *g = MPX_EZ(mpx_stage(&A, NULL), inner, mpx_stage(&D, NULL));
    mpx_graph_t *outer_log = MPX_EZ(mpx_stage(&W, NULL), mpx_stage(&E, NULL));
    mpx_graph_t *inner_log = mpx_stage(&Z, NULL);
    mpx_graph_t *other = mpx_stage(&F, NULL);
    REQUIRE(g && outer_log && inner_log && other, "building failed");
    REQUIRE(mpx_graph_xcut(g, "log", outer_log) == 0, "outer xcut failed");
    REQUIRE(mpx_graph_xcut(inner, "log", inner_log) == 0, "inner xcut failed");
    REQUIRE(mpx_graph_xcut(inner, "other", other) == 0, "second inner xcut failed");
    int rc;
    char *dot = capture(mpx_graph_write_dot, g, &rc);
    CHECK_EQ(rc, 0);
    expect_dot_accepts(dot);
    char *arrows = arrows_by_name(dot);
    const char *expect = "a -> b\n"
                         "a ~> w\n"
                         "b -> c\n"
                         "b ~> f\n"
                         "b ~> z\n"
                         "c -> d\n"
                         "c ~> f\n"
                         "c ~> z\n"
                         "d -> output\n"
                         "d ~> w\n"
                         "w -> e\n";
    CHECK(strcmp(arrows, expect) == 0, "arrows:\n%s\nexpected:\n%s", arrows, expect);
    free(arrows);
    free(dot);
    mpx_node_destroy(&g);
}

/* Names with quotes, backslashes and a line break stay inside their
 * strings, and dot takes them. */
static void dot_escapes_names(void)
{
    mpx_node_t *odd = mpx_stage(&B, NULL);
    mpx_node_t *group = MPX_P(mpx_stage(&C, NULL), mpx_stage(&D, NULL));
    mpx_graph_t *g = MPX_EZ(mpx_stage(&A, NULL), odd, group);
    mpx_graph_t *side = mpx_stage(&W, NULL);
    REQUIRE(g && side, "building failed");
    REQUIRE(mpx_node_set_name(odd, "say \"hi\" \\ there\nnow") == 0, "naming failed");
    REQUIRE(mpx_node_set_name(group, "\"q\"") == 0, "naming failed");
    REQUIRE(mpx_graph_xcut(g, "a\"b\\", side) == 0, "xcut failed");
    int rc;
    char *dot = capture(mpx_graph_write_dot, g, &rc);
    CHECK_EQ(rc, 0);
    expect_dot_accepts(dot);
    CHECK(strstr(dot, "[label=\"say \\\"hi\\\" \\\\ there\\nnow\"]") != NULL, "label:\n%s", dot);
    CHECK(strstr(dot, "label=\"parallel \\\"\\\"q\\\"\\\"\"") != NULL, "group label:\n%s", dot);
    CHECK(strstr(dot, "label=\"xcut \\\"a\\\"b\\\\\\\"\"") != NULL, "xcut label:\n%s", dot);
    free(dot);
    mpx_node_destroy(&g);
}

/* A builder mistake anywhere, a side graph included: MPX_EGRAPH and not
 * a byte written. */
static void refuses_a_graph_with_a_mistake(void)
{
    mpx_graph_t *bad[3] = {
        MPX_EZ(mpx_stage(&A, NULL), mpx_as(0, &B, NULL)),
        MPX_EZ(mpx_stage(&A, NULL), MPX_P(mpx_stage(&B, NULL), NULL)),
        MPX_EZ(mpx_stage(&A, NULL), mpx_stage(&B, NULL)),
    };
    mpx_graph_t *side = MPX_EZ(mpx_stage(&W, NULL), mpx_invalid("broken on purpose"));
    REQUIRE(bad[0] && bad[1] && bad[2] && side, "building failed");
    REQUIRE(mpx_graph_xcut(bad[2], "log", side) == 0, "xcut failed");
    for (size_t i = 0; i < 3; i++) {
        int rc;
        char *text = capture(mpx_graph_print_layout, bad[i], &rc);
        CHECK_EQ(rc, MPX_EGRAPH);
        CHECK(text[0] == '\0', "graph %zu: layout wrote '%s'", i, text);
        free(text);
        char *dot = capture(mpx_graph_write_dot, bad[i], &rc);
        CHECK_EQ(rc, MPX_EGRAPH);
        CHECK(dot[0] == '\0', "graph %zu: DOT wrote '%s'", i, dot);
        free(dot);
        mpx_node_destroy(&bad[i]);
    }
}

/* A stream that cannot be written (the device is full): MPX_ESYS. */
static void reports_a_write_error(void)
{
    mpx_graph_t *g = nested_graph();
    FILE *f = fopen("/dev/full", "w");
    REQUIRE(f != NULL, "cannot open /dev/full");
    CHECK_EQ(mpx_graph_print_layout(g, f), MPX_ESYS);
    clearerr(f);
    CHECK_EQ(mpx_graph_write_dot(g, f), MPX_ESYS);
    fclose(f);
    mpx_node_destroy(&g);
}

/* The pictures read the declaration only: the same before start, while
 * running and after the end. */
static void same_picture_after_a_run(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 100), mpx_as(2, &Inc, NULL), mpx_stage(&Drop, NULL));
    REQUIRE(g != NULL, "building failed");
    int rc;
    char *before = capture(mpx_graph_print_layout, g, &rc);
    CHECK_EQ(rc, 0);
    char *dot_before = capture(mpx_graph_write_dot, g, &rc);
    CHECK_EQ(rc, 0);
    REQUIRE(mpx_graph_start(g) == 0, "start failed: %s", mpx_graph_error(g));
    char *during = capture(mpx_graph_print_layout, g, &rc);
    CHECK_EQ(rc, 0);
    CHECK_EQ(mpx_graph_join(g), 0);
    char *after = capture(mpx_graph_print_layout, g, &rc);
    CHECK_EQ(rc, 0);
    char *dot_after = capture(mpx_graph_write_dot, g, &rc);
    CHECK_EQ(rc, 0);
    static const char *const expect[] = {"serial", "├── range", "├── inc ×2 (parallel)",
                                         "└── drop"};
    expect_lines(before, expect, sizeof expect / sizeof *expect);
    CHECK(strcmp(before, during) == 0, "while running:\n%s", during);
    CHECK(strcmp(before, after) == 0, "after the end:\n%s", after);
    CHECK(strcmp(dot_before, dot_after) == 0, "DOT after the end:\n%s", dot_after);
    expect_clean(g);
    free(before);
    free(during);
    free(after);
    free(dot_before);
    free(dot_after);
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(refuses_null),
        TEST_CASE(text_says_where_seq_runs),
        TEST_CASE(text_of_a_nested_graph),
        TEST_CASE(text_of_side_graphs_anywhere),
        TEST_CASE(dot_of_a_nested_graph),
        TEST_CASE(dot_arrows_of_a_chain),
        TEST_CASE(dot_side_graphs_nearest_wins),
        TEST_CASE(dot_escapes_names),
        TEST_CASE(refuses_a_graph_with_a_mistake),
        TEST_CASE(reports_a_write_error),
        TEST_CASE(same_picture_after_a_run),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
