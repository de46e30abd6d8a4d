/* tests/test_index.c — mpx_node_set_index: the built-in sources (Range,
 * Iter in all its forms, Read in lines and chunks, Const) number what they
 * put in meta "mpx.index" when asked and only then; the number reaches the
 * graph's error, crosses parallel groups and reaches mpx_graph_next; the
 * call refuses every node that is not such a source. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

/* ---- helpers ------------------------------------------------------------ */

/* The node, numbered; the call must accept it. */
static mpx_node_t *indexed(mpx_node_t *n)
{
    REQUIRE(n != NULL, "builder returned NULL");
    int rc = mpx_node_set_index(n, true);
    CHECK(rc == 0, "mpx_node_set_index(%s) returned %s", mpx_node_name(n), mpx_strerror(rc));
    return n;
}

/* Run g to its end; the run must succeed.  Destroys g.  `input` (or
 * NULL), a file g read, is removed first: the case's directory must be
 * empty after every graph. */
static mpx_list_t *collect_ok_reading(mpx_graph_t *g, const char *input)
{
    REQUIRE(g != NULL, "builder returned NULL");
    mpx_list_t *list = NULL;
    int rc = mpx_graph_collect(g, &list);
    CHECK(rc == 0, "collect returned %s: %s", mpx_strerror(rc), mpx_graph_error(g));
    REQUIRE(list != NULL, "no output list");
    if (input)
        CHECK(unlink(input) == 0, "unlink %s: %s", input, strerror(errno));
    expect_clean(g);
    mpx_node_destroy(&g);
    return list;
}

static mpx_list_t *collect_ok(mpx_graph_t *g) { return collect_ok_reading(g, NULL); }

/* The item's "mpx.index", which must be there as 8 bytes; -1 if not. */
static int64_t index_of(const mpx_item_t *it)
{
    size_t size = 0;
    const void *v = mpx_item_meta(it, "mpx.index", &size);
    CHECK(v != NULL && size == 8, "mpx.index is %s (%zu bytes)", v ? "there" : "absent", size);
    int64_t i = -1;
    int rc = mpx_item_meta_i64(it, "mpx.index", &i);
    CHECK(rc == 0, "mpx_item_meta_i64: %s", mpx_strerror(rc));
    return rc == 0 ? i : -1;
}

/* Every item of the list carries index 0, 1, ... in list order. */
static void check_numbered(const mpx_list_t *list, size_t n, const char *what)
{
    CHECK(mpx_list_size(list) == n, "%s: %zu items, want %zu", what, mpx_list_size(list), n);
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        int64_t got = index_of(mpx_list_at(list, i));
        CHECK(got == (int64_t)i, "%s: item %zu has mpx.index %" PRId64, what, i, got);
    }
}

/* No item of the list carries "mpx.index". */
static void check_unnumbered(const mpx_list_t *list, size_t n, const char *what)
{
    CHECK(mpx_list_size(list) == n, "%s: %zu items, want %zu", what, mpx_list_size(list), n);
    for (size_t i = 0; i < mpx_list_size(list); i++)
        CHECK(mpx_item_meta(mpx_list_at(list, i), "mpx.index", NULL) == NULL,
              "%s: item %zu has mpx.index though numbering is off", what, i);
}

static bool is_bytes(const mpx_item_t *it, const void *data, size_t size)
{
    return mpx_item_parts(it) == 1 && mpx_item_size(it, 0) == size &&
           (size == 0 || memcmp(mpx_item_data(it, 0), data, size) == 0);
}

static const char *tmp_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", harness_tmpdir(), name);
    return buf;
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0, "create %s: %s", path, strerror(errno));
    size_t len = strlen(text);
    REQUIRE(write(fd, text, len) == (ssize_t)len, "write %s: %s", path, strerror(errno));
    REQUIRE(close(fd) == 0, "close %s: %s", path, strerror(errno));
}

/* A generator of "g0", "g1", ... up to *end items. */
typedef struct gen_ctx {
    int64_t next, end;
    char text[32];
} gen_ctx_t;

static int gen(void *ctx, mpx_part_t *item)
{
    gen_ctx_t *c = ctx;
    if (c->next == c->end)
        return 0;
    int len = snprintf(c->text, sizeof c->text, "g%" PRId64, c->next++);
    *item = (mpx_part_t){c->text, (size_t)len};
    return 1;
}

/* Passes every item on unchanged (meta included). */
static int pass_process(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }
static const mpx_stage_def_t Pass = {.name = "pass", .process = pass_process};

/* Fails on the item whose value is *args, passing the others on. */
static int fail_on_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t v = mpx_item_i64(it);
    if (v == *(const int64_t *)mpx_args(st))
        return mpx_fail(st, "cannot take %" PRId64, v);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t FailOn = {
    .name = "fail_on", .args_size = sizeof(int64_t), .process = fail_on_process};

/* ---- each source numbers 0..n-1 with its values intact ------------------ */

static void index_range(void)
{
    mpx_list_t *list = collect_ok(MPX_EZ(indexed(mpx_range(10, 40, 3))));
    check_numbered(list, 10, "range(10, 40, 3)");
    for (size_t i = 0; i < mpx_list_size(list); i++)
        CHECK_EQ(mpx_item_i64(mpx_list_at(list, i)), 10 + 3 * (int64_t)i);
    mpx_list_destroy(&list);

    /* Counting down: the index still counts up from 0. */
    list = collect_ok(MPX_EZ(indexed(mpx_range(5, -5, -2))));
    check_numbered(list, 5, "range(5, -5, -2)");
    for (size_t i = 0; i < mpx_list_size(list); i++)
        CHECK_EQ(mpx_item_i64(mpx_list_at(list, i)), 5 - 2 * (int64_t)i);
    mpx_list_destroy(&list);

    list = collect_ok(MPX_EZ(indexed(mpx_range(0, 0, 1))));
    CHECK_EQ(mpx_list_size(list), 0);
    mpx_list_destroy(&list);
}

static const mpx_part_t parts[] = {{"alpha", 5}, {NULL, 0}, {"\0\1\2", 3}, {"z", 1}};
static const int64_t i64s[] = {42, -7, INT64_MAX, INT64_MIN, 0};
static const double f64s[] = {0.5, -1e300, 3.25};
static const char *const strs[] = {"one", "", "three", "four"};

static void index_iter(void)
{
    mpx_list_t *list = collect_ok(MPX_EZ(indexed(mpx_iter(parts, 4))));
    check_numbered(list, 4, "mpx_iter");
    for (size_t i = 0; i < mpx_list_size(list); i++)
        CHECK(is_bytes(mpx_list_at(list, i), parts[i].data ? parts[i].data : "", parts[i].size),
              "mpx_iter item %zu differs", i);
    mpx_list_destroy(&list);

    list = collect_ok(MPX_EZ(indexed(mpx_iter_i64(i64s, 5))));
    check_numbered(list, 5, "mpx_iter_i64");
    for (size_t i = 0; i < mpx_list_size(list); i++)
        CHECK_EQ(mpx_item_i64(mpx_list_at(list, i)), i64s[i]);
    mpx_list_destroy(&list);

    list = collect_ok(MPX_EZ(indexed(mpx_iter_f64(f64s, 3))));
    check_numbered(list, 3, "mpx_iter_f64");
    for (size_t i = 0; i < mpx_list_size(list); i++)
        CHECK(mpx_item_f64(mpx_list_at(list, i)) == f64s[i], "mpx_iter_f64 item %zu is %g", i,
              mpx_item_f64(mpx_list_at(list, i)));
    mpx_list_destroy(&list);

    list = collect_ok(MPX_EZ(indexed(mpx_iter_str(strs, 4))));
    check_numbered(list, 4, "mpx_iter_str");
    for (size_t i = 0; i < mpx_list_size(list); i++)
        CHECK(strcmp(mpx_item_str(mpx_list_at(list, i)), strs[i]) == 0,
              "mpx_iter_str item %zu is '%s'", i, mpx_item_str(mpx_list_at(list, i)));
    mpx_list_destroy(&list);

    gen_ctx_t c = {.next = 0, .end = 250};
    list = collect_ok(MPX_EZ(indexed(mpx_iter_fn("gen", gen, &c))));
    check_numbered(list, 250, "mpx_iter_fn");
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        char want[32];
        snprintf(want, sizeof want, "g%zu", i);
        CHECK(is_bytes(mpx_list_at(list, i), want, strlen(want)), "mpx_iter_fn item %zu is '%s'",
              i, mpx_item_str(mpx_list_at(list, i)));
    }
    mpx_list_destroy(&list);
}

static void index_read(void)
{
    static const char *const lines[] = {"first", "", "third line", "last, no newline"};
    const char *path = tmp_path("lines.txt");
    write_file(path, "first\n\nthird line\nlast, no newline");

    mpx_list_t *list = collect_ok_reading(MPX_EZ(indexed(mpx_read(path))), path);
    check_numbered(list, 4, "mpx_read");
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        mpx_item_t *it = mpx_list_at(list, i);
        CHECK(is_bytes(it, lines[i], strlen(lines[i])), "line %zu is '%s'", i + 1,
              mpx_item_str(it));
        int64_t line = 0;
        CHECK(mpx_item_meta_i64(it, "line", &line) == 0 && line == (int64_t)i + 1,
              "item %zu: meta line is %" PRId64, i, line);
    }
    mpx_list_destroy(&list);

    /* 34 bytes in chunks of 8: four full ones and a short one. */
    static const char text[] = "first\n\nthird line\nlast, no newline";
    write_file(path, text);
    list = collect_ok_reading(MPX_EZ(indexed(mpx_read_chunks(path, 8))), path);
    check_numbered(list, 5, "mpx_read_chunks");
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        mpx_item_t *it = mpx_list_at(list, i);
        size_t off = i * 8, len = strlen(text) - off < 8 ? strlen(text) - off : 8;
        CHECK(is_bytes(it, text + off, len), "chunk %zu differs", i);
        int64_t offset = -1;
        CHECK(mpx_item_meta_i64(it, "offset", &offset) == 0 && offset == (int64_t)off,
              "chunk %zu: meta offset is %" PRId64, i, offset);
    }
    mpx_list_destroy(&list);
}

static void index_const(void)
{
    mpx_list_t *list = collect_ok(MPX_EZ(indexed(mpx_const_i64(-9, 40))));
    check_numbered(list, 40, "mpx_const_i64");
    for (size_t i = 0; i < mpx_list_size(list); i++)
        CHECK_EQ(mpx_item_i64(mpx_list_at(list, i)), -9);
    mpx_list_destroy(&list);

    list = collect_ok(MPX_EZ(indexed(mpx_const_str("tick", 3))));
    check_numbered(list, 3, "mpx_const_str");
    for (size_t i = 0; i < mpx_list_size(list); i++)
        CHECK(is_bytes(mpx_list_at(list, i), "tick", 4), "const_str item %zu differs", i);
    mpx_list_destroy(&list);

    static const unsigned char bytes[] = {'a', 0, 0xff};
    list = collect_ok(MPX_EZ(indexed(mpx_const(bytes, sizeof bytes, 2))));
    check_numbered(list, 2, "mpx_const");
    for (size_t i = 0; i < mpx_list_size(list); i++)
        CHECK(is_bytes(mpx_list_at(list, i), bytes, sizeof bytes), "const item %zu differs", i);
    mpx_list_destroy(&list);
}

/* Files numbers the files it puts, in its (sorted) order; an unreadable
 * entry, had there been one, is not numbered. */
static void index_files(void)
{
    /* Not in the case's directory, which must be empty after each graph. */
    char dir[] = "/tmp/mpxtest-index-files-XXXXXX", path[700];
    REQUIRE(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    const char *names[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        write_file(path, names[i]);
    }
    mpx_list_t *list = collect_ok(MPX_EZ(indexed(mpx_files(dir))));
    check_numbered(list, 3, "mpx_files");
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        CHECK(strcmp(mpx_item_str(mpx_list_at(list, i)), path) == 0, "file %zu: %s", i,
              mpx_item_str(mpx_list_at(list, i)));
    }
    mpx_list_destroy(&list);
    list = collect_ok(MPX_EZ(mpx_files(dir)));
    check_unnumbered(list, 3, "mpx_files");
    mpx_list_destroy(&list);
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* Several instances of a source: each numbers its own output from 0. */
static void index_per_instance(void)
{
    mpx_node_t *src = mpx_instances(mpx_range(100, 105, 1), 3);
    mpx_list_t *list = collect_ok(MPX_EZ(indexed(src)));
    CHECK_EQ(mpx_list_size(list), 15);
    int seen[5] = {0};
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        mpx_item_t *it = mpx_list_at(list, i);
        int64_t v = mpx_item_i64(it), idx = index_of(it);
        CHECK(idx == v - 100, "value %" PRId64 " has mpx.index %" PRId64, v, idx);
        if (idx >= 0 && idx < 5)
            seen[idx]++;
    }
    for (int i = 0; i < 5; i++)
        CHECK(seen[i] == 3, "mpx.index %d seen %d times, want once per instance", i, seen[i]);
    mpx_list_destroy(&list);
}

/* ---- off: nothing ------------------------------------------------------- */

static void index_off_by_default(void)
{
    const char *path = tmp_path("off.txt");
    gen_ctx_t c = {.next = 0, .end = 3};
    struct {
        const char *what;
        mpx_node_t *node;
        size_t n;
        bool reads; /* the file at path */
    } cases[] = {
        {"mpx_range", mpx_range(0, 3, 1), 3, false},
        {"mpx_iter", mpx_iter(parts, 4), 4, false},
        {"mpx_iter_i64", mpx_iter_i64(i64s, 5), 5, false},
        {"mpx_iter_f64", mpx_iter_f64(f64s, 3), 3, false},
        {"mpx_iter_str", mpx_iter_str(strs, 4), 4, false},
        {"mpx_iter_fn", mpx_iter_fn("gen", gen, &c), 3, false},
        {"mpx_read", mpx_read(path), 3, true},
        {"mpx_read_chunks", mpx_read_chunks(path, 4), 2, true},
        {"mpx_const_i64", mpx_const_i64(1, 3), 3, false},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        if (cases[k].reads)
            write_file(path, "a\nb\nc\n");
        mpx_list_t *list = collect_ok_reading(MPX_EZ(cases[k].node), cases[k].reads ? path : NULL);
        check_unnumbered(list, cases[k].n, cases[k].what);
        mpx_list_destroy(&list);
    }

    /* Turned on, then off again. */
    mpx_node_t *r = indexed(mpx_range(0, 3, 1));
    CHECK_EQ(mpx_node_set_index(r, false), 0);
    mpx_list_t *list = collect_ok(MPX_EZ(r));
    check_unnumbered(list, 3, "range turned off again");
    mpx_list_destroy(&list);
}

/* ---- where the number shows -------------------------------------------- */

/* The run fails with MPX_ESTAGE and the error contains every string. */
static void expect_error_with(mpx_graph_t *g, const char *const *want, size_t n)
{
    REQUIRE(g != NULL, "builder returned NULL");
    CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
    const char *msg = mpx_graph_error(g);
    for (size_t i = 0; i < n; i++)
        CHECK(strstr(msg, want[i]) != NULL, "error '%s' lacks '%s'", msg, want[i]);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void index_in_error(void)
{
    /* Values 1000, 1010, ...: the failing value 1570 is the item at 57. */
    static const int64_t bad = 1570;
    const char *want[] = {"stage 'fail_on'", "cannot take 1570", "mpx.index: 57"};
    expect_error_with(MPX_EZ(indexed(mpx_range(1000, 2000, 10)), mpx_stage(&FailOn, &bad)),
                      want, 3);
    /* Through a parallel group of the consumer: the number is the
     * source's, whatever the failing instance counted. */
    expect_error_with(MPX_EZ(indexed(mpx_range(1000, 2000, 10)), mpx_as(3, &FailOn, &bad)),
                      want, 3);
    expect_error_with(MPX_EZ(indexed(mpx_range(1000, 2000, 10)), mpx_stage(&Pass, NULL),
                             MPX_P(mpx_stage(&FailOn, &bad), mpx_stage(&FailOn, &bad))),
                      want, 3);
}

/* A reader of mpx_graph_next after a parallel section gets every item
 * with the number its source gave it. */
static void index_through_parallel_to_next(void)
{
    enum { N = 3000 };
    mpx_graph_t *g = MPX_EZ(indexed(mpx_range(0, 3 * N, 3)),
                            MPX_P(mpx_as(2, &Pass, NULL), mpx_stage(&Pass, NULL)));
    REQUIRE(g != NULL, "builder returned NULL");
    char *seen = calloc(N, 1);
    REQUIRE(seen, "out of memory");
    size_t count = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t v = mpx_item_i64(it), idx = -1;
        int rc = mpx_item_meta_i64(it, "mpx.index", &idx);
        CHECK(rc == 0 && idx == v / 3, "value %" PRId64 ": mpx.index %" PRId64 " (%s)", v, idx,
              mpx_strerror(rc));
        if (rc == 0 && idx >= 0 && idx < N)
            seen[idx]++;
        count++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(count, N);
    for (size_t i = 0; i < N; i++)
        CHECK(seen[i] == 1, "mpx.index %zu seen %d times", i, seen[i]);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- refusals ----------------------------------------------------------- */

static void index_refuses_other_nodes(void)
{
    CHECK_EQ(mpx_node_set_index(NULL, true), MPX_EINVAL);

    mpx_node_t *nodes[] = {
        mpx_stage(&Pass, NULL),               /* a stage of the user's */
        range_node(0, 3),                     /* a source of the user's */
        mpx_as(2, &Pass, NULL),               /* several of them */
        mpx_print(NULL),                      /* a built-in, not a source */
        mpx_range(0, 10, 0),                  /* a source with bad arguments */
        MPX_EZ(mpx_range(0, 3, 1)),           /* a group holding a source */
        MPX_P(mpx_stage(&Pass, NULL), mpx_stage(&Pass, NULL)),
    };
    for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
        REQUIRE(nodes[i] != NULL, "builder returned NULL");
        CHECK(mpx_node_set_index(nodes[i], true) == MPX_EINVAL,
              "node %zu ('%s') accepted", i, mpx_node_name(nodes[i]));
        CHECK(mpx_node_set_index(nodes[i], false) == MPX_EINVAL,
              "node %zu ('%s') accepted off", i, mpx_node_name(nodes[i]));
        mpx_node_destroy(&nodes[i]);
    }

    /* Frozen once started. */
    mpx_node_t *r = mpx_range(0, 3, 1);
    mpx_graph_t *g = MPX_EZ(r, mpx_stage(&Drop, NULL));
    REQUIRE(g != NULL, "builder returned NULL");
    CHECK_EQ(mpx_graph_start(g), 0);
    CHECK_EQ(mpx_node_set_index(r, true), MPX_ESTATE);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(index_range),
        TEST_CASE(index_iter),
        TEST_CASE(index_read),
        TEST_CASE(index_const),
        TEST_CASE(index_files),
        TEST_CASE(index_per_instance),
        TEST_CASE(index_off_by_default),
        TEST_CASE(index_in_error),
        TEST_CASE(index_through_parallel_to_next),
        TEST_CASE(index_refuses_other_nodes),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
