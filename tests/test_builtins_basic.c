/* tests/test_builtins_basic.c — Const, Iter, Range, Map, Filter (and
 * MPX_FN's typed forms), Reduce, Count, Sum and Stamp: the exact items,
 * the messages of refused graphs and failed runs, and clean ends. */
#define _GNU_SOURCE
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

/* ---- helpers ------------------------------------------------------------ */

/* Run g to its end and return its output; the run must succeed. */
static mpx_list_t *collect_ok(mpx_graph_t *g)
{
    mpx_list_t *list = NULL;
    int rc = mpx_graph_collect(g, &list);
    CHECK(rc == 0, "collect returned %s: %s", mpx_strerror(rc), mpx_graph_error(g));
    REQUIRE(list != NULL, "no output list");
    return list;
}

/* The list holds exactly the one-part i64 items want[0..n-1], in order. */
static void check_i64s(const mpx_list_t *list, const int64_t *want, size_t n, const char *what)
{
    CHECK(mpx_list_size(list) == n, "%s: %zu items, want %zu", what, mpx_list_size(list), n);
    for (size_t i = 0; i < n && i < mpx_list_size(list); i++) {
        mpx_item_t *it = mpx_list_at(list, i);
        int64_t v = 0;
        CHECK(mpx_item_parts(it) == 1 && mpx_item_get_i64(it, 0, &v) == 0 && v == want[i],
              "%s: item %zu is %" PRId64 " (%zu parts), want %" PRId64, what, i, v,
              mpx_item_parts(it), want[i]);
    }
}

/* The item is one part holding exactly these bytes. */
static bool is_bytes(const mpx_item_t *it, const void *data, size_t size)
{
    return mpx_item_parts(it) == 1 && mpx_item_size(it, 0) == size &&
           (size == 0 || memcmp(mpx_item_data(it, 0), data, size) == 0);
}

/* The graph check refuses g with a message containing `expect`; nothing
 * forks, and join reports the same refusal. */
static void expect_refused(mpx_graph_t *g, const char *expect)
{
    REQUIRE(g != NULL, "builder returned NULL");
    CHECK_EQ(mpx_graph_check(g), MPX_EGRAPH);
    CHECK(strstr(mpx_graph_error(g), expect) != NULL, "message '%s' lacks '%s'",
          mpx_graph_error(g), expect);
    CHECK_EQ(mpx_graph_join(g), MPX_EGRAPH);
    CHECK(strstr(mpx_graph_error(g), expect) != NULL, "after join: '%s'", mpx_graph_error(g));
    CHECK(!mpx_graph_started(g), "a refused graph started");
    CHECK(no_children_left(0), "a process was forked");
    CHECK_EQ(dir_entries(harness_tmpdir()), 0);
    mpx_node_destroy(&g);
}

/* The run of g fails with MPX_ESTAGE and an error containing both parts. */
static void expect_stage_failure(mpx_graph_t *g, const char *stage, const char *why)
{
    REQUIRE(g != NULL, "builder returned NULL");
    CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
    const char *msg = mpx_graph_error(g);
    char named[128];
    snprintf(named, sizeof named, "stage '%s'", stage);
    CHECK(strstr(msg, named) && strstr(msg, why), "error '%s' lacks \"%s\" or \"%s\"", msg, named,
          why);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static const char *instance_name(const mpx_graph_t *g, size_t i)
{
    mpx_instance_info_t info;
    return mpx_graph_instance_info(g, i, &info) == 0 ? info.name : "(none)";
}

/* Passes the first *args items on, then stops itself (like `head`). */
static int head_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t *seen = mpx_state(st);
    int rc = mpx_put_item(st, it);
    if (rc == 0 && ++*seen == *(const int64_t *)mpx_args(st))
        mpx_stop(st);
    return rc;
}
static const mpx_stage_def_t Head = {.name = "head", .args_size = sizeof(int64_t),
                                     .state_size = sizeof(int64_t), .process = head_process};

/* ---- Const -------------------------------------------------------------- */

static void const_puts_exactly_limit_items(void)
{
    static const unsigned char bytes[] = {'a', 0, 0xff, '\n', 7};
    mpx_graph_t *g = MPX_EZ(mpx_const(bytes, sizeof bytes, 5));
    mpx_list_t *list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 5);
    for (size_t i = 0; i < mpx_list_size(list); i++)
        CHECK(is_bytes(mpx_list_at(list, i), bytes, sizeof bytes), "bytes item %zu differs", i);
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    g = MPX_EZ(mpx_const_i64(-7, 3));
    list = collect_ok(g);
    check_i64s(list, (const int64_t[]){-7, -7, -7}, 3, "const_i64");
    mpx_list_destroy(&list);
    CHECK(strcmp(instance_name(g, 0), "const") == 0, "named '%s'", instance_name(g, 0));
    expect_clean(g);
    mpx_node_destroy(&g);

    g = MPX_EZ(mpx_const_str("tick", 4), mpx_print("const:"));
    list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 4);
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        CHECK(is_bytes(mpx_list_at(list, i), "tick", 4), "str item %zu differs", i);
        CHECK(strcmp(mpx_item_str(mpx_list_at(list, i)), "tick") == 0, "not a C string");
    }
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* The largest value, the empty value, and a limit of one. */
    static unsigned char big[MPX_CONST_MAX];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7 + 3);
    g = MPX_EZ(MPX_P(mpx_const(big, sizeof big, 2), mpx_const(NULL, 0, 1)));
    list = collect_ok(g);
    int nbig = 0, nempty = 0;
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        nbig += is_bytes(mpx_list_at(list, i), big, sizeof big);
        nempty += is_bytes(mpx_list_at(list, i), "", 0);
    }
    CHECK_EQ(mpx_list_size(list), 3);
    CHECK_EQ(nbig, 2);
    CHECK_EQ(nempty, 1);
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* limit 0 never ends by itself: it ends when its consumer stops (like
 * `yes | head -100`), and when the graph is stopped. */
static void const_endless_until_stopped(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_const_i64(42, 0), mpx_stage(&Head, &(int64_t){100}));
    mpx_list_t *list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 100);
    int64_t bad = 0;
    for (size_t i = 0; i < mpx_list_size(list); i++)
        bad += mpx_item_i64(mpx_list_at(list, i)) != 42;
    CHECK_EQ(bad, 0);
    mpx_list_destroy(&list);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    mpx_instance_info_t src;
    REQUIRE(mpx_graph_instance_info(g, 0, &src) == 0, "no info");
    CHECK(src.exited && WIFEXITED(src.wait_status) && WEXITSTATUS(src.wait_status) == 0,
          "the source ended with status %x", src.wait_status);
    CHECK(src.items_out >= 100, "the source put %llu items", src.items_out);
    expect_clean(g);
    mpx_node_destroy(&g);

    g = MPX_EZ(mpx_const_str("y", 0));
    int64_t n = 0;
    mpx_item_t *it;
    while (n < 5000 && (it = mpx_graph_next(g)))
        n += is_bytes(it, "y", 1);
    CHECK_EQ(n, 5000);
    CHECK(!mpx_graph_finished(g), "the endless source ended by itself");
    CHECK_EQ(mpx_graph_stop(g), 0);
    CHECK_EQ(mpx_graph_join(g), MPX_ESTOPPED);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void const_refuses_bad_values(void)
{
    static const char big[MPX_CONST_MAX + 1];
    expect_refused(MPX_EZ(mpx_const(big, sizeof big, 1), mpx_print(NULL)),
                   "mpx_const: the value is 4097 bytes, more than MPX_CONST_MAX (4096)");
    expect_refused(MPX_EZ(mpx_const(NULL, 3, 1)), "mpx_const: data is NULL but size is 3");
    expect_refused(MPX_EZ(mpx_const_str(NULL, 1)), "mpx_const_str: the string is NULL");
}

/* ---- Iter --------------------------------------------------------------- */

static void iter_arrays_in_order(void)
{
    static char block[5000];
    memset(block, 'z', sizeof block);
    const mpx_part_t parts[] = {{"alpha", 5}, {"", 0}, {"\0\1\2", 3}, {NULL, 0},
                                {block, sizeof block}};
    mpx_graph_t *g = MPX_EZ(mpx_iter(parts, 5));
    mpx_list_t *list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 5);
    for (size_t i = 0; i < 5 && i < mpx_list_size(list); i++)
        CHECK(is_bytes(mpx_list_at(list, i), parts[i].data, parts[i].size), "part item %zu", i);
    CHECK(strcmp(instance_name(g, 0), "iter") == 0, "named '%s'", instance_name(g, 0));
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    const int64_t ints[] = {4, 8, 15, 16, 23, 42, INT64_MIN, INT64_MAX, 0, -1};
    g = MPX_EZ(mpx_iter_i64(ints, 10), mpx_print(NULL));
    list = collect_ok(g);
    check_i64s(list, ints, 10, "iter_i64");
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    const double reals[] = {0.5, -0.0, 1e-310, -1e300, INFINITY, NAN, 3.141592653589793};
    g = MPX_EZ(mpx_iter_f64(reals, 7));
    list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 7);
    for (size_t i = 0; i < 7 && i < mpx_list_size(list); i++)
        CHECK(is_bytes(mpx_list_at(list, i), &reals[i], sizeof(double)), "double item %zu", i);
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    const char *const words[] = {"one", "", "three words here", "tab\there", "\xc3\xa9t\xc3\xa9"};
    g = MPX_EZ(mpx_iter_str(words, 5));
    list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 5);
    for (size_t i = 0; i < 5 && i < mpx_list_size(list); i++) {
        mpx_item_t *it = mpx_list_at(list, i);
        CHECK(is_bytes(it, words[i], strlen(words[i])) && strcmp(mpx_item_str(it), words[i]) == 0,
              "string item %zu is '%s'", i, mpx_item_str(it));
    }
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* Many items through a consumer: still all of them, in order. */
    enum { MANY = 20000 };
    int64_t *many = malloc(MANY * sizeof *many);
    REQUIRE(many, "out of memory");
    for (int64_t i = 0; i < MANY; i++)
        many[i] = i * 3 - 7;
    g = MPX_EZ(mpx_iter_i64(many, MANY), mpx_stage(&Head, &(int64_t){MANY + 1}));
    list = collect_ok(g);
    check_i64s(list, many, MANY, "iter_i64 of 20000");
    mpx_list_destroy(&list);
    free(many);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void iter_empty_gives_nothing(void)
{
    static const int64_t one[] = {1};
    mpx_node_t *sources[] = {mpx_iter(NULL, 0), mpx_iter_i64(NULL, 0), mpx_iter_f64(NULL, 0),
                             mpx_iter_str(NULL, 0), mpx_iter_i64(one, 0)};
    for (size_t i = 0; i < sizeof sources / sizeof *sources; i++) {
        mpx_graph_t *g = MPX_EZ(sources[i], mpx_print("never:"));
        mpx_list_t *list = collect_ok(g);
        CHECK(mpx_list_size(list) == 0, "source %zu gave %zu items", i, mpx_list_size(list));
        mpx_list_destroy(&list);
        expect_clean(g);
        mpx_node_destroy(&g);
    }
}

static void iter_refuses_null_array(void)
{
    expect_refused(MPX_EZ(mpx_iter(NULL, 2)), "mpx_iter: the array is NULL but n is 2");
    expect_refused(MPX_EZ(mpx_iter_i64(NULL, 3)), "mpx_iter_i64: the array is NULL but n is 3");
    expect_refused(MPX_EZ(mpx_iter_f64(NULL, 1)), "mpx_iter_f64: the array is NULL but n is 1");
    expect_refused(MPX_EZ(mpx_iter_str(NULL, 9)), "mpx_iter_str: the array is NULL but n is 9");
    expect_refused(MPX_EZ(mpx_iter_fn("gen", NULL, NULL)),
                   "mpx_iter_fn 'gen': the generator is NULL");
}

/* A NULL element of a string array is found when the source runs. */
static void iter_null_string_fails(void)
{
    const char *const words[] = {"a", "b", NULL, "d"};
    expect_stage_failure(MPX_EZ(mpx_iter_str(words, 4)), "iter", "string 2 of 4 is NULL");
}

typedef struct countdown {
    uint64_t magic; /* set by the test before start: proves ctx reached the child */
    int64_t next, end, fail_at;
    char text[32];
} countdown_t;

#define COUNTDOWN_MAGIC 0x6d70785f67656eULL

static int countdown_gen(void *ctx, mpx_part_t *item)
{
    countdown_t *c = ctx;
    if (c->magic != COUNTDOWN_MAGIC)
        return -2;
    if (c->next == c->fail_at)
        return -1;
    if (c->next == c->end)
        return 0;
    int len = snprintf(c->text, sizeof c->text, "g%" PRId64, c->next++);
    *item = (mpx_part_t){c->text, (size_t)len};
    return 1;
}

static void iter_generator(void)
{
    countdown_t c = {.magic = COUNTDOWN_MAGIC, .next = 0, .end = 300, .fail_at = -1};
    mpx_graph_t *g = MPX_EZ(mpx_iter_fn("countdown", countdown_gen, &c));
    mpx_list_t *list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 300);
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        char want[32];
        snprintf(want, sizeof want, "g%zu", i);
        CHECK(is_bytes(mpx_list_at(list, i), want, strlen(want)), "generated item %zu is '%s'", i,
              mpx_item_str(mpx_list_at(list, i)));
    }
    CHECK(strcmp(instance_name(g, 0), "countdown") == 0, "named '%s'", instance_name(g, 0));
    mpx_list_destroy(&list);
    /* The generator ran in the source's process, on its copy of c. */
    CHECK_EQ(c.next, 0);
    expect_clean(g);
    mpx_node_destroy(&g);

    countdown_t none = {.magic = COUNTDOWN_MAGIC, .next = 5, .end = 5, .fail_at = -1};
    g = MPX_EZ(mpx_iter_fn(NULL, countdown_gen, &none));
    list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 0);
    CHECK(strcmp(instance_name(g, 0), "iter") == 0, "named '%s'", instance_name(g, 0));
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void iter_generator_failure(void)
{
    countdown_t c = {.magic = COUNTDOWN_MAGIC, .next = 0, .end = 100, .fail_at = 5};
    expect_stage_failure(MPX_EZ(mpx_iter_fn("badgen", countdown_gen, &c), mpx_print(NULL)),
                         "badgen", "the generator failed (returned -1) after 5 items");
    /* Without the right ctx the generator says so with -2. */
    countdown_t wrong = {.magic = 1, .end = 100, .fail_at = -1};
    expect_stage_failure(MPX_EZ(mpx_iter_fn("nomagic", countdown_gen, &wrong)), "nomagic",
                         "returned -2) after 0 items");
}

/* ---- Range -------------------------------------------------------------- */

/* Expected lists are Python's: list(range(start, stop, step)). */
typedef struct range_case {
    int64_t start, stop, step;
    size_t n;
    int64_t want[8];
} range_case_t;

static void range_matches_python(void)
{
    static const range_case_t cases[] = {
        {0, 10, 3, 4, {0, 3, 6, 9}},
        {10, 0, -3, 4, {10, 7, 4, 1}},
        {0, 5, 1, 5, {0, 1, 2, 3, 4}},
        {-5, 5, 4, 3, {-5, -1, 3}},
        {3, -3, -1, 6, {3, 2, 1, 0, -1, -2}},
        {-3, -10, -2, 4, {-3, -5, -7, -9}},
        {7, 8, 100, 1, {7}},
        {5, 5, 1, 0, {0}},
        {5, 0, 1, 0, {0}},
        {0, 5, -1, 0, {0}},
        {-1, -1, -1, 0, {0}},
        {INT64_MAX - 10, INT64_MAX, 4, 3, {INT64_MAX - 10, INT64_MAX - 6, INT64_MAX - 2}},
        {INT64_MIN + 10, INT64_MIN, -4, 3, {INT64_MIN + 10, INT64_MIN + 6, INT64_MIN + 2}},
        {INT64_MIN, INT64_MAX, INT64_MAX, 3, {INT64_MIN, -1, INT64_MAX - 1}},
        {INT64_MAX, INT64_MIN, INT64_MIN, 2, {INT64_MAX, -1}},
        {0, INT64_MIN, INT64_MIN, 1, {0}},
        {INT64_MIN, INT64_MIN + 1, INT64_MIN, 0, {0}},
        {INT64_MAX - 1, INT64_MAX, 1, 1, {INT64_MAX - 1}},
        {INT64_MIN, INT64_MIN + 2, 1, 2, {INT64_MIN, INT64_MIN + 1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const range_case_t *r = &cases[c];
        mpx_graph_t *g = MPX_EZ(mpx_range(r->start, r->stop, r->step));
        mpx_list_t *list = collect_ok(g);
        char what[128];
        snprintf(what, sizeof what, "range(%" PRId64 ", %" PRId64 ", %" PRId64 ")", r->start,
                 r->stop, r->step);
        check_i64s(list, r->want, r->n, what);
        mpx_list_destroy(&list);
        expect_clean(g);
        mpx_node_destroy(&g);
    }

    /* Long ranges, by count and sum: sum(range(-100000, 100001, 7)) and
     * len(...) in Python are -42858 and 28572 — and through a consumer. */
    mpx_graph_t *g = MPX_EZ(mpx_range(-100000, 100001, 7), mpx_stage(&Head, &(int64_t){1 << 30}));
    int64_t n;
    CHECK_EQ(drain_sum(g, &n), -42858);
    CHECK_EQ(n, 28572);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(instance_name(g, 0), "range") == 0, "named '%s'", instance_name(g, 0));
    expect_clean(g);
    mpx_node_destroy(&g);

    g = MPX_EZ(mpx_range(50000, -50000, -1));
    mpx_list_t *list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 100000);
    int64_t out_of_order = 0;
    for (size_t i = 0; i < mpx_list_size(list); i++)
        out_of_order += mpx_item_i64(mpx_list_at(list, i)) != 50000 - (int64_t)i;
    CHECK_EQ(out_of_order, 0);
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A range's items reach every kind of consumer intact, also when credit
 * cuts its batches into pieces.  A consumer that keeps nothing is sent
 * runs of int64 (lib/wire.h WIRE_DATA_ARITH), a recoverable one (retries)
 * the records, kept until it confirms them; a broadcast to one of each
 * serves both from the same batches; so does a parallel group, and the
 * program reading the range itself through a window of 50 items.  By
 * count and sum against Python's len and sum of range(-30003, 60000, 3)
 * (30001 and 449924997) and of range(7, -60000, -2) (30004 and
 * -899999984); in order where a chain keeps it. */
static void range_reaches_every_consumer_in_pieces(void)
{
    mpx_node_t *plain = mpx_stage(&Head, &(int64_t){1 << 30});
    mpx_node_t *kept = mpx_stage(&Head, &(int64_t){1 << 30});
    CHECK_EQ(mpx_node_set_capacity(plain, 70, 0), 0);
    CHECK_EQ(mpx_node_set_capacity(kept, 50, 0), 0);
    CHECK_EQ(mpx_node_set_retries(kept, 1), 0);
    mpx_graph_t *g = MPX_EZ(mpx_range(-30003, 60000, 3), MPX_B(plain, kept));
    int64_t n;
    CHECK_EQ(drain_sum(g, &n), 2 * (int64_t)449924997);
    CHECK_EQ(n, 2 * 30001);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);

    mpx_node_t *group = mpx_as(3, &Head, &(int64_t){1 << 30});
    CHECK_EQ(mpx_node_set_capacity(group, 110, 0), 0);
    g = MPX_EZ(mpx_range(7, -60000, -2), group);
    CHECK_EQ(drain_sum(g, &n), -899999984);
    CHECK_EQ(n, 30004);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);

    for (int chain = 0; chain < 2; chain++) {
        mpx_node_t *one = mpx_stage(&Head, &(int64_t){1 << 30});
        CHECK_EQ(mpx_node_set_capacity(one, 50, 0), 0);
        g = chain ? MPX_EZ(mpx_range(7, -60000, -2), one) : MPX_EZ(mpx_range(7, -60000, -2));
        if (!chain)
            mpx_node_destroy(&one);
        CHECK_EQ(mpx_node_set_capacity(g, 50, 0), 0);
        mpx_list_t *list = collect_ok(g);
        CHECK_EQ(mpx_list_size(list), 30004);
        size_t wrong = 0;
        for (size_t i = 0; i < mpx_list_size(list); i++)
            wrong += mpx_item_i64(mpx_list_at(list, i)) != 7 - 2 * (int64_t)i;
        CHECK(wrong == 0, "%zu of the range's values are not in their place (chain %d)", wrong,
              chain);
        mpx_list_destroy(&list);
        expect_clean(g);
        mpx_node_destroy(&g);
    }
}

static void range_refuses_step_zero(void)
{
    expect_refused(MPX_EZ(mpx_range(0, 10, 0), mpx_print(NULL)), "mpx_range: step must not be 0");
    expect_refused(MPX_EZ(mpx_range(5, 5, 0)), "mpx_range: step must not be 0");
}

/* ---- Map and Filter ----------------------------------------------------- */

static int64_t square(int64_t x) { return x * x; }

/* A map's int64 results cross each edge as packed values (lib/wire.h
 * WIRE_DATA_I64) to a consumer that keeps nothing, and as records to one
 * that keeps them until confirmed (retries): both ways every result
 * reaches the program once, also through windows small enough to cut the
 * batches into pieces.  Sum of squares of range(-3000, 3001) in Python:
 * 18009001000 over 6001 items. */
static void int64_results_reach_the_program_whole(void)
{
    for (int recoverable = 0; recoverable < 2; recoverable++) {
        mpx_node_t *map = mpx_instances(MPX_MAP(square), 3);
        CHECK_EQ(mpx_node_set_capacity(map, 40, 0), 0);
        if (recoverable)
            CHECK_EQ(mpx_node_set_retries(map, 1), 0);
        mpx_node_t *head = mpx_stage(&Head, &(int64_t){1 << 30});
        CHECK_EQ(mpx_node_set_capacity(head, 30, 0), 0);
        mpx_graph_t *g = MPX_EZ(mpx_range(-3000, 3001, 1), map, head);
        CHECK_EQ(mpx_node_set_capacity(g, 60, 0), 0);
        int64_t n;
        CHECK_EQ(drain_sum(g, &n), 18009001000);
        CHECK_EQ(n, 6001);
        CHECK_EQ(mpx_graph_join(g), 0);
        expect_clean(g);
        mpx_node_destroy(&g);
    }
}
static double halve(double x) { return x / 2; }

/* Functions whose results differ for every input, so that a result made
 * from the wrong input, or left out, shows. */
static int64_t scramble(int64_t x) { return x * 1000003 ^ (x >> 3); }
static int64_t unscramble_not(int64_t x) { return x - 7 * (x & 0xff); }
static int negate_int(int x) { return -x; }

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sorted outputs of g (each an int64) against the sorted `want`. */
static void expect_i64_multiset(mpx_graph_t *g, int64_t *want, size_t n, const char *what)
{
    mpx_list_t *list = collect_ok(g);
    size_t got_n = mpx_list_size(list);
    CHECK(got_n == n, "%s: %zu results, want %zu", what, got_n, n);
    int64_t *got = calloc(got_n ? got_n : 1, sizeof *got);
    REQUIRE(got != NULL, "out of memory");
    for (size_t i = 0; i < got_n; i++)
        got[i] = mpx_item_i64(mpx_list_at(list, i));
    qsort(got, got_n, sizeof *got, cmp_i64);
    qsort(want, n, sizeof *want, cmp_i64);
    size_t wrong = 0;
    for (size_t i = 0; i < n && i < got_n; i++)
        wrong += got[i] != want[i];
    CHECK(wrong == 0, "%s: %zu results differ from the function's", what, wrong);
    free(got);
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Map's functions of 8-byte values are applied to a run of int64 or to
 * packed int64 many items at a time (graph/i64map.h): every result is
 * the function's of its own input, once, whether the input came as a
 * run (from a range), as packed values (from another map), to a
 * parallel group or to one process; doubles as well; and a value an
 * int function cannot take, in the middle of a run, fails the run as
 * item by item. */
static void map_over_runs_gives_every_result(void)
{
    const int64_t lo = -50000, hi = 50000;
    size_t n = (size_t)(hi - lo);
    int64_t *want = malloc(n * sizeof *want);
    REQUIRE(want != NULL, "out of memory");
    for (int workers = 1; workers <= 3; workers += 2) {
        for (size_t i = 0; i < n; i++)
            want[i] = unscramble_not(scramble(lo + (int64_t)i));
        expect_i64_multiset(MPX_EZ(mpx_range(lo, hi, 1),
                                   mpx_instances(MPX_MAP(scramble), workers),
                                   mpx_instances(MPX_MAP(unscramble_not), workers)),
                            want, n, workers == 1 ? "one process each" : "groups of 3");
    }
    /* A step, and windows that cut the runs and the batches into pieces. */
    size_t m = 0;
    for (int64_t x = 99999; x > -99999; x -= 7)
        want[m++] = scramble(x);
    mpx_node_t *map = mpx_instances(MPX_MAP(scramble), 2);
    CHECK_EQ(mpx_node_set_capacity(map, 33, 0), 0);
    mpx_graph_t *g = MPX_EZ(mpx_range(99999, -99999, -7), map);
    CHECK_EQ(mpx_node_set_capacity(g, 45, 0), 0);
    expect_i64_multiset(g, want, m, "range(99999, -99999, -7) in small windows");
    free(want);

    /* Doubles, halved exactly: the halves of 0..19999 add up to 199990000 / 2. */
    static double reals[20000];
    for (int i = 0; i < 20000; i++)
        reals[i] = i;
    g = MPX_EZ(mpx_iter_f64(reals, 20000), mpx_instances(MPX_MAP(halve), 2));
    mpx_list_t *list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 20000);
    double sum = 0;
    for (size_t i = 0; i < mpx_list_size(list); i++)
        sum += mpx_item_f64(mpx_list_at(list, i));
    CHECK(sum == 199990000.0 / 2, "the halves add up to %.1f", sum);
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    expect_stage_failure(MPX_EZ(mpx_range(2147480000, 2147490000, 1), MPX_MAP(negate_int)),
                         "negate_int", "input 2147483648 is outside the range of int");
}

static char *shout(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 2);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)toupper((unsigned char)s[i]);
    memcpy(out + n, "!", 2);
    return out;
}
static int64_t add_ctx(int64_t x, void *ctx) { return x + *(const int64_t *)ctx; }
static double scale_ctx(double x, void *ctx) { return x * *(const double *)ctx; }
static char *wrap_ctx(const char *s, void *ctx)
{
    char *out;
    return asprintf(&out, "%s%s%s", (const char *)ctx, s, (const char *)ctx) < 0 ? NULL : out;
}

static void map_typed_forms(void)
{
    /* Locals: the stage processes see them because they are forked while
     * this frame is live. */
    int64_t offset = 1000;
    mpx_graph_t *g = MPX_EZ(mpx_range(-20, 30, 1), MPX_MAP(square), MPX_MAP_CTX(add_ctx, &offset));
    mpx_list_t *list = collect_ok(g);
    int64_t want[50];
    for (int64_t x = -20; x < 30; x++)
        want[x + 20] = x * x + 1000;
    check_i64s(list, want, 50, "square then add_ctx");
    mpx_list_destroy(&list);
    CHECK(strcmp(instance_name(g, 1), "square") == 0, "named '%s'", instance_name(g, 1));
    CHECK(strcmp(instance_name(g, 2), "add_ctx") == 0, "named '%s'", instance_name(g, 2));
    expect_clean(g);
    mpx_node_destroy(&g);

    double factor = -3.0;
    const double reals[] = {1.0, -2.5, 0.0, 1e10, 7.25};
    g = MPX_EZ(mpx_iter_f64(reals, 5), MPX_MAP(halve), MPX_MAP_CTX(scale_ctx, &factor));
    list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 5);
    for (size_t i = 0; i < 5 && i < mpx_list_size(list); i++) {
        double v = NAN;
        CHECK(mpx_item_get_f64(mpx_list_at(list, i), 0, &v) == 0 && v == reals[i] / 2 * -3.0,
              "double item %zu is %g", i, v);
    }
    mpx_list_destroy(&list);
    CHECK(strcmp(instance_name(g, 1), "halve") == 0, "named '%s'", instance_name(g, 1));
    CHECK(strcmp(instance_name(g, 2), "scale_ctx") == 0, "named '%s'", instance_name(g, 2));
    expect_clean(g);
    mpx_node_destroy(&g);

    char stars[] = "**";
    const char *const words[] = {"abc", "", "Mixed Case 9"};
    const char *const want_s[] = {"**ABC!**", "**!**", "**MIXED CASE 9!**"};
    g = MPX_EZ(mpx_iter_str(words, 3), MPX_MAP(shout), MPX_MAP_CTX(wrap_ctx, stars));
    list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 3);
    for (size_t i = 0; i < 3 && i < mpx_list_size(list); i++)
        CHECK(is_bytes(mpx_list_at(list, i), want_s[i], strlen(want_s[i])),
              "string item %zu is '%s'", i, mpx_item_str(mpx_list_at(list, i)));
    mpx_list_destroy(&list);
    CHECK(strcmp(instance_name(g, 1), "shout") == 0, "named '%s'", instance_name(g, 1));
    expect_clean(g);
    mpx_node_destroy(&g);

    /* The functions called directly, with the default name. */
    g = MPX_EZ(mpx_const_i64(6, 2), mpx_map_i64(NULL, square),
               mpx_map_i64_ctx("plus", add_ctx, &offset));
    list = collect_ok(g);
    check_i64s(list, (const int64_t[]){1036, 1036}, 2, "mpx_map_i64");
    mpx_list_destroy(&list);
    CHECK(strcmp(instance_name(g, 1), "map") == 0, "named '%s'", instance_name(g, 1));
    CHECK(strcmp(instance_name(g, 2), "plus") == 0, "named '%s'", instance_name(g, 2));
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* i64 -> double, keeping meta (the default). */
static int to_f64(mpx_stage_t *st, mpx_item_t *it)
{
    return mpx_put_f64(st, (double)mpx_item_i64(it));
}
/* double -> its decimal text, keeping meta. */
static int to_text(mpx_stage_t *st, mpx_item_t *it)
{
    char buf[64];
    snprintf(buf, sizeof buf, "n%.1f", mpx_item_f64(it));
    return mpx_put_str(st, buf);
}

/* Every typed Map keeps the meta of its input item. */
static void map_keeps_meta(void)
{
    int64_t offset = 5;
    mpx_graph_t *g = MPX_EZ(range_node(0, 300), MPX_MAP(square), MPX_MAP_CTX(add_ctx, &offset),
                            MPX_FN(to_f64), MPX_MAP(halve), MPX_FN(to_text), MPX_MAP(shout));
    mpx_list_t *list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 300);
    for (size_t k = 0; k < mpx_list_size(list); k++) {
        mpx_item_t *it = mpx_list_at(list, k);
        int64_t i = -1;
        CHECK(mpx_item_meta_i64(it, "i", &i) == 0 && i == (int64_t)k, "meta i of item %zu", k);
        CHECK_EQ(mpx_item_meta_count(it), 1);
        char want[64];
        snprintf(want, sizeof want, "N%.1f!", (double)(i * i + 5) / 2);
        CHECK(strcmp(mpx_item_str(it), want) == 0, "item %zu is '%s', want '%s'", k,
              mpx_item_str(it), want);
    }
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static bool odd(int64_t x) { return x % 2 != 0; }
static bool positive(double x) { return x > 0; }
static bool has_error(const char *line) { return strstr(line, "ERROR") != NULL; }
static bool short_item(const mpx_item_t *it) { return mpx_item_size(it, 0) < 4; }
static bool divisible_ctx(int64_t x, void *ctx) { return x % *(const int64_t *)ctx == 0; }
static bool above_ctx(double x, void *ctx) { return x > *(const double *)ctx; }
static bool contains_ctx(const char *s, void *ctx) { return strstr(s, ctx) != NULL; }
static bool every_third_ctx(const mpx_item_t *it, void *ctx)
{
    int64_t v;
    return mpx_item_parts(it) == 2 && mpx_item_get_i64(it, 0, &v) == 0 &&
           v % *(const int64_t *)ctx == 0;
}

/* Puts two-part items (i, "x<i>") with meta k = 10 i and tag = "pair". */
static int pairs_setup(mpx_stage_t *st)
{
    char text[32];
    int rc = mpx_meta_set_str(st, "tag", "pair");
    for (int64_t i = 0; rc == 0 && i < 100; i++) {
        int len = snprintf(text, sizeof text, "x%" PRId64, i);
        mpx_part_t parts[2] = {{&i, sizeof i}, {text, (size_t)len}};
        if ((rc = mpx_meta_set_i64(st, "k", 10 * i)) == 0)
            rc = mpx_put_parts(st, parts, 2);
    }
    return rc != 0 ? rc : mpx_stop(st);
}
static const mpx_stage_def_t Pairs = {.name = "pairs", .setup = pairs_setup};

/* The list holds one-part items with exactly these bytes, in order. */
static void check_texts(const mpx_list_t *list, const char *const *want, size_t n, const char *what)
{
    CHECK(mpx_list_size(list) == n, "%s: %zu items, want %zu", what, mpx_list_size(list), n);
    for (size_t i = 0; i < n && i < mpx_list_size(list); i++)
        CHECK(is_bytes(mpx_list_at(list, i), want[i], strlen(want[i])), "%s: item %zu is '%s'",
              what, i, mpx_item_str(mpx_list_at(list, i)));
}

static void filter_passes_the_right_items(void)
{
    /* i64, with the input's meta, then the _CTX form. */
    int64_t three = 3;
    mpx_graph_t *g =
        MPX_EZ(range_node(0, 300), MPX_FILTER(odd), MPX_FILTER_CTX(divisible_ctx, &three));
    mpx_list_t *list = collect_ok(g);
    int64_t want[50], nwant = 0;
    for (int64_t x = 0; x < 300; x++)
        if (x % 2 && x % 3 == 0)
            want[nwant++] = x;
    check_i64s(list, want, (size_t)nwant, "odd multiples of 3");
    for (size_t k = 0; k < mpx_list_size(list); k++) {
        int64_t i = -1;
        mpx_item_t *it = mpx_list_at(list, k);
        CHECK(mpx_item_meta_i64(it, "i", &i) == 0 && i == mpx_item_i64(it), "meta of item %zu", k);
    }
    mpx_list_destroy(&list);
    CHECK(strcmp(instance_name(g, 1), "odd") == 0, "named '%s'", instance_name(g, 1));
    CHECK(strcmp(instance_name(g, 2), "divisible_ctx") == 0, "named '%s'", instance_name(g, 2));
    expect_clean(g);
    mpx_node_destroy(&g);

    /* f64 */
    double limit = 2.0;
    const double reals[] = {-1.0, 0.0, 0.5, 2.0, 2.5, -0.0, 1e9, NAN};
    g = MPX_EZ(mpx_iter_f64(reals, 8), MPX_FILTER(positive), MPX_FILTER_CTX(above_ctx, &limit));
    list = collect_ok(g);
    const double want_f[] = {2.5, 1e9};
    CHECK_EQ(mpx_list_size(list), 2);
    for (size_t i = 0; i < 2 && i < mpx_list_size(list); i++)
        CHECK(is_bytes(mpx_list_at(list, i), &want_f[i], 8), "double item %zu", i);
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* strings */
    char disk[] = "disk";
    const char *const lines[] = {"ok boot", "ERROR disk full", "ERROR net down", "",
                                 "warning disk", "ERROR disk gone"};
    g = MPX_EZ(mpx_iter_str(lines, 6), MPX_FILTER(has_error));
    list = collect_ok(g);
    check_texts(list, (const char *const[]){"ERROR disk full", "ERROR net down", "ERROR disk gone"},
                3, "has_error");
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    g = MPX_EZ(mpx_iter_str(lines, 6), MPX_FILTER_CTX(contains_ctx, disk));
    list = collect_ok(g);
    check_texts(list, (const char *const[]){"ERROR disk full", "warning disk", "ERROR disk gone"},
                3, "contains_ctx");
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* whole items: any size of part 0 is fine */
    const char *const sizes[] = {"abcd", "abc", "", "abcdefgh", "a"};
    g = MPX_EZ(mpx_iter_str(sizes, 5), MPX_FILTER(short_item));
    list = collect_ok(g);
    check_texts(list, (const char *const[]){"abc", "", "a"}, 3, "short_item");
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* multi-part items with meta pass unchanged */
    g = MPX_EZ(mpx_stage(&Pairs, NULL), MPX_FILTER_CTX(every_third_ctx, &three));
    list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 34);
    for (size_t k = 0; k < mpx_list_size(list); k++) {
        mpx_item_t *it = mpx_list_at(list, k);
        int64_t i = -1, m = -1;
        char text[32];
        CHECK(mpx_item_parts(it) == 2 && mpx_item_get_i64(it, 0, &i) == 0 && i == 3 * (int64_t)k,
              "pair %zu", k);
        snprintf(text, sizeof text, "x%" PRId64, i);
        CHECK(mpx_item_size(it, 1) == strlen(text) &&
                  memcmp(mpx_item_data(it, 1), text, strlen(text)) == 0,
              "part 1 of pair %zu", k);
        CHECK(mpx_item_meta_i64(it, "k", &m) == 0 && m == 10 * i, "meta k of pair %zu", k);
        const char *tag = mpx_item_meta_str(it, "tag");
        CHECK(tag && strcmp(tag, "pair") == 0, "meta tag of pair %zu", k);
        CHECK_EQ(mpx_item_meta_count(it), 2);
    }
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* the functions called directly */
    g = MPX_EZ(mpx_range(0, 10, 1), mpx_filter_i64(NULL, odd),
               mpx_filter_item_ctx("third", every_third_ctx, &three));
    list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 0); /* one-part items: every_third_ctx wants two */
    mpx_list_destroy(&list);
    CHECK(strcmp(instance_name(g, 1), "filter") == 0, "named '%s'", instance_name(g, 1));
    CHECK(strcmp(instance_name(g, 2), "third") == 0, "named '%s'", instance_name(g, 2));
    expect_clean(g);
    mpx_node_destroy(&g);
}

static char *refuse_seven(const char *s) { return strcmp(s, "seven") ? strdup(s) : NULL; }

static void typed_forms_fail_on_wrong_input(void)
{
    expect_stage_failure(MPX_EZ(mpx_const_str("abc", 3), MPX_MAP(square)), "square",
                         "expected an 8-byte integer in part 0, got 3 bytes");
    expect_stage_failure(MPX_EZ(mpx_const_str("abcdefghij", 1), MPX_MAP(halve)), "halve",
                         "expected an 8-byte double in part 0, got 10 bytes");
    expect_stage_failure(MPX_EZ(mpx_const(NULL, 0, 1), MPX_FILTER(odd)), "odd",
                         "expected an 8-byte integer in part 0, got 0 bytes");
    int64_t three = 3;
    expect_stage_failure(MPX_EZ(mpx_const_str("1234567", 1), MPX_FILTER_CTX(divisible_ctx, &three)),
                         "divisible_ctx", "expected an 8-byte integer in part 0, got 7 bytes");
    expect_stage_failure(MPX_EZ(mpx_const_str("x", 1), MPX_FILTER(positive)), "positive",
                         "expected an 8-byte double in part 0, got 1 bytes");
    const char *const words[] = {"five", "six", "seven", "eight"};
    expect_stage_failure(MPX_EZ(mpx_iter_str(words, 4), MPX_MAP(refuse_seven)), "refuse_seven",
                         "the function returned NULL");
    /* A NULL function is refused before anything runs. */
    expect_refused(MPX_EZ(mpx_range(0, 3, 1), mpx_map_i64("nothing", NULL)),
                   "mpx_map_i64 'nothing': the function is NULL");
    expect_refused(MPX_EZ(mpx_range(0, 3, 1), mpx_map_str_ctx(NULL, NULL, NULL)),
                   "mpx_map_str_ctx 'map': the function is NULL");
    expect_refused(MPX_EZ(mpx_range(0, 3, 1), mpx_filter_f64_ctx("f", NULL, NULL)),
                   "mpx_filter_f64_ctx 'f': the predicate is NULL");
}

/* Functions of int, long and long long: what a C programmer writes first.
 * MPX_MAP picks the right one by the function's type; the results are
 * int64 items; the bounds of each type reach the function intact. */
static int sq_int(int x) { return x * x; }
static int flip_int(int x) { return -x - 1; } /* INT_MAX <-> INT_MIN */
static long pred_long(long x) { return x - 1; }
static long long half_llong(long long x) { return x / 2; }
static int add_int_ctx(int x, void *ctx) { return x + *(const int *)ctx; }
static long mul_long_ctx(long x, void *ctx) { return x * *(const long *)ctx; }
static long long sub_llong_ctx(long long x, void *ctx) { return x - *(const long long *)ctx; }
static bool odd_int(int x) { return x % 2 != 0; }
static bool big_long(long x) { return x > 1000; }
static bool negative_llong(long long x) { return x < 0; }
static bool multiple_int_ctx(int x, void *ctx) { return x % *(const int *)ctx == 0; }
static bool above_long_ctx(long x, void *ctx) { return x > *(const long *)ctx; }
static bool below_llong_ctx(long long x, void *ctx) { return x < *(const long long *)ctx; }

/* Runs g and checks its one-part int64 output. */
static void expect_i64s(mpx_graph_t *g, const int64_t *want, size_t n, const char *what)
{
    mpx_list_t *list = collect_ok(g);
    check_i64s(list, want, n, what);
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void map_and_filter_take_int_long_long_long(void)
{
    static const int64_t small[] = {-46340, -3, 0, 7, 46340};
    mpx_graph_t *g = MPX_EZ(mpx_iter_i64(small, 5), MPX_MAP(sq_int));
    mpx_list_t *list = collect_ok(g);
    check_i64s(list, (const int64_t[]){2147395600, 9, 0, 49, 2147395600}, 5, "sq_int");
    mpx_list_destroy(&list);
    CHECK(strcmp(instance_name(g, 1), "sq_int") == 0, "named '%s'", instance_name(g, 1));
    expect_clean(g);
    mpx_node_destroy(&g);

    static const int64_t ints[] = {INT_MAX, INT_MIN, 0};
    expect_i64s(MPX_EZ(mpx_iter_i64(ints, 3), MPX_MAP(flip_int)),
                (const int64_t[]){INT_MIN, INT_MAX, -1}, 3, "flip_int at int's bounds");
    static const int64_t longs[] = {LONG_MAX, 3000000000, 0};
    expect_i64s(MPX_EZ(mpx_iter_i64(longs, 3), MPX_MAP(pred_long)),
                (const int64_t[]){LONG_MAX - 1, 2999999999, -1}, 3, "pred_long");
    static const int64_t wide[] = {INT64_MAX, INT64_MIN, -7};
    expect_i64s(MPX_EZ(mpx_iter_i64(wide, 3), MPX_MAP(half_llong)),
                (const int64_t[]){INT64_MAX / 2, INT64_MIN / 2, -3}, 3, "half_llong");

    /* The _CTX forms, in one graph. */
    int ten = 10;
    long three = 3;
    long long big = 1LL << 40;
    expect_i64s(MPX_EZ(mpx_iter_i64(small, 5), MPX_MAP_CTX(add_int_ctx, &ten),
                       MPX_MAP_CTX(mul_long_ctx, &three), MPX_MAP_CTX(sub_llong_ctx, &big)),
                (const int64_t[]){-138990 - (1LL << 40), 21 - (1LL << 40), 30 - (1LL << 40),
                                  51 - (1LL << 40), 139050 - (1LL << 40)},
                5, "add_int_ctx, mul_long_ctx, sub_llong_ctx");

    /* Filters of each type, then their _CTX forms; the items pass whole. */
    static const int64_t mixed[] = {-5, -4, 1, 2, 1001, 2000, 3001, 3000000001};
    g = MPX_EZ(mpx_iter_i64(mixed, 7), MPX_FILTER(odd_int));
    expect_i64s(g, (const int64_t[]){-5, 1, 1001, 3001}, 4, "odd_int");
    g = MPX_EZ(mpx_iter_i64(mixed, 8), MPX_FILTER(big_long), MPX_FILTER(negative_llong));
    expect_i64s(g, NULL, 0, "big_long then negative_llong");
    g = MPX_EZ(mpx_iter_i64(mixed, 8), MPX_FILTER(big_long));
    expect_i64s(g, (const int64_t[]){1001, 2000, 3001, 3000000001}, 4, "big_long");
    g = MPX_EZ(mpx_iter_i64(mixed, 8), MPX_FILTER(negative_llong));
    expect_i64s(g, (const int64_t[]){-5, -4}, 2, "negative_llong");
    int two = 2;
    long limit = 0;
    long long below = 3000;
    g = MPX_EZ(mpx_iter_i64(mixed, 7), MPX_FILTER_CTX(multiple_int_ctx, &two),
               MPX_FILTER_CTX(above_long_ctx, &limit), MPX_FILTER_CTX(below_llong_ctx, &below));
    expect_i64s(g, (const int64_t[]){2, 2000}, 2, "multiple_int_ctx, above, below");

    /* The functions called directly, with the default names; a NULL
     * function is refused by name. */
    g = MPX_EZ(mpx_iter_i64(small, 5), mpx_map_int(NULL, sq_int), mpx_filter_long(NULL, big_long),
               mpx_map_int_ctx("", add_int_ctx, &ten),
               mpx_map_llong_ctx("minus", sub_llong_ctx, &big));
    list = collect_ok(g);
    check_i64s(list, (const int64_t[]){2147395610 - (1LL << 40), 2147395610 - (1LL << 40)}, 2,
               "called directly");
    mpx_list_destroy(&list);
    CHECK(strcmp(instance_name(g, 1), "map") == 0, "named '%s'", instance_name(g, 1));
    CHECK(strcmp(instance_name(g, 2), "filter") == 0, "named '%s'", instance_name(g, 2));
    CHECK(strcmp(instance_name(g, 3), "map") == 0, "named '%s'", instance_name(g, 3));
    CHECK(strcmp(instance_name(g, 4), "minus") == 0, "named '%s'", instance_name(g, 4));
    expect_clean(g);
    mpx_node_destroy(&g);
    expect_refused(MPX_EZ(mpx_range(0, 3, 1), mpx_map_long("l", NULL)),
                   "mpx_map_long 'l': the function is NULL");
    expect_refused(MPX_EZ(mpx_range(0, 3, 1), mpx_filter_llong_ctx(NULL, NULL, NULL)),
                   "mpx_filter_llong_ctx 'filter': the predicate is NULL");
}

/* An int function never sees a truncated value: an input outside int's
 * range fails the run, naming the stage and the value. */
static void int_functions_refuse_values_outside_int(void)
{
    static const int64_t too_big[] = {1, 2, 3000000000};
    expect_stage_failure(MPX_EZ(mpx_iter_i64(too_big, 3), MPX_MAP(sq_int)), "sq_int",
                         "input 3000000000 is outside the range of int");
    static const int64_t too_small[] = {(int64_t)INT_MIN - 1};
    expect_stage_failure(MPX_EZ(mpx_iter_i64(too_small, 1), MPX_FILTER(odd_int)), "odd_int",
                         "input -2147483649 is outside the range of int");
    int ten = 10;
    static const int64_t int_max_plus_1[] = {(int64_t)INT_MAX + 1};
    expect_stage_failure(
        MPX_EZ(mpx_iter_i64(int_max_plus_1, 1), MPX_MAP_CTX(add_int_ctx, &ten)), "add_int_ctx",
        "input 2147483648 is outside the range of int");
    expect_stage_failure(
        MPX_EZ(mpx_iter_i64(too_small, 1), MPX_FILTER_CTX(multiple_int_ctx, &ten)),
        "multiple_int_ctx", "input -2147483649 is outside the range of int");
    /* The part's size is checked as for int64_t functions. */
    expect_stage_failure(MPX_EZ(mpx_const_str("abc", 1), MPX_MAP(sq_int)), "sq_int",
                         "expected an 8-byte integer in part 0, got 3 bytes");
    expect_stage_failure(MPX_EZ(mpx_const_str("abc", 1), MPX_FILTER(big_long)), "big_long",
                         "expected an 8-byte integer in part 0, got 3 bytes");
}

/* MPX_FN's typed forms are Maps named "fn" by default and report like them. */
static void fn_typed_forms_are_maps(void)
{
    mpx_graph_t *g =
        MPX_EZ(range_node(0, 20), MPX_FN(square), MPX_FN(to_f64), mpx_fn_f64(NULL, halve));
    mpx_list_t *list = collect_ok(g);
    CHECK_EQ(mpx_list_size(list), 20);
    for (size_t k = 0; k < mpx_list_size(list); k++) {
        mpx_item_t *it = mpx_list_at(list, k);
        int64_t i = -1;
        double v = NAN;
        CHECK(mpx_item_meta_i64(it, "i", &i) == 0 && i == (int64_t)k, "meta of item %zu", k);
        CHECK(mpx_item_get_f64(it, 0, &v) == 0 && v == (double)(k * k) / 2, "item %zu is %g", k, v);
    }
    mpx_list_destroy(&list);
    CHECK(strcmp(instance_name(g, 1), "square") == 0, "named '%s'", instance_name(g, 1));
    CHECK(strcmp(instance_name(g, 3), "fn") == 0, "named '%s'", instance_name(g, 3));
    expect_clean(g);
    mpx_node_destroy(&g);

    expect_stage_failure(MPX_EZ(mpx_const_str("abc", 1), mpx_fn_i64(NULL, square)), "fn",
                         "expected an 8-byte integer in part 0, got 3 bytes");
    expect_refused(MPX_EZ(mpx_range(0, 3, 1), mpx_fn_i64("nothing", NULL)),
                   "has neither setup nor process");
    expect_refused(MPX_EZ(mpx_range(0, 3, 1), mpx_fn_f64(NULL, NULL)),
                   "has neither setup nor process");
}

/* Several Map nodes side by side give the same items as one, in some order. */
static void map_in_parallel_same_multiset(void)
{
    enum { N = 5000 };
    mpx_graph_t *g = MPX_EZ(mpx_range(0, N, 1),
                            MPX_P(MPX_MAP(square), MPX_MAP(square), MPX_MAP(square)));
    mpx_list_t *list = collect_ok(g);
    REQUIRE(mpx_list_size(list) == N, "%zu items", mpx_list_size(list));
    int64_t *got = malloc(N * sizeof *got);
    REQUIRE(got, "out of memory");
    for (size_t i = 0; i < N; i++)
        got[i] = mpx_item_i64(mpx_list_at(list, i));
    qsort(got, N, sizeof *got, cmp_i64);
    int64_t wrong = 0;
    for (int64_t x = 0; x < N; x++)
        wrong += got[x] != x * x;
    CHECK_EQ(wrong, 0);
    free(got);
    mpx_list_destroy(&list);
    unsigned long long in = 0;
    for (size_t i = 1; i <= 3; i++) {
        mpx_instance_info_t info;
        CHECK_EQ(mpx_graph_instance_info(g, i, &info), 0);
        in += info.items_in;
    }
    CHECK_EQ(in, N);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Allocates and touches 64 KiB per call and returns a short string: were
 * the results not freed, 16000 items would leave 1 GiB resident (the limit
 * leaves room for ASan's default 256 MiB quarantine). */
static char *heavy(const char *s)
{
    enum { SIZE = 64 * 1024 };
    char *out = malloc(SIZE);
    if (!out)
        return NULL;
    memset(out, 'h', SIZE);
    snprintf(out, SIZE, "<%s>", s);
    return out;
}

static void string_map_frees_results(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_const_str("v", 16000), MPX_MAP(heavy));
    int64_t n = 0, bad = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        bad += !is_bytes(it, "<v>", 3);
        n++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 16000);
    CHECK_EQ(bad, 0);
    mpx_instance_info_t info;
    REQUIRE(mpx_graph_instance_info(g, 1, &info) == 0, "no info");
    printf("heavy: peak RSS %ld KiB\n", info.max_rss_kib);
    CHECK(info.max_rss_kib < 448 * 1024, "the map's peak RSS is %ld KiB", info.max_rss_kib);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- Reduce, Count, Sum ------------------------------------------------- */

typedef struct minmax {
    int64_t min, max;
} minmax_t;

static int minmax_fn(void *acc, const mpx_item_t *it, void *ctx)
{
    (void)ctx;
    if ((uintptr_t)acc % 8 != 0)
        return -8; /* reduce.h promises 8-byte alignment */
    minmax_t *m = acc;
    int64_t v = mpx_item_i64(it);
    m->min = v < m->min ? v : m->min;
    m->max = v > m->max ? v : m->max;
    return 0;
}

static int weighted_fn(void *acc, const mpx_item_t *it, void *ctx)
{
    *(int64_t *)acc += mpx_item_i64(it) * *(const int64_t *)ctx;
    return 0;
}

/* A 4096-byte accumulator: how many items fall in each of 1024 buckets. */
static int histogram_fn(void *acc, const mpx_item_t *it, void *ctx)
{
    (void)ctx;
    ((uint32_t *)acc)[mpx_item_i64(it) % 1024]++;
    return 0;
}

static void reduce_exact_results(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_range(1, 1001, 1), mpx_count());
    mpx_list_t *list = collect_ok(g);
    check_i64s(list, (const int64_t[]){1000}, 1, "count");
    mpx_list_destroy(&list);
    CHECK(strcmp(instance_name(g, 1), "count") == 0, "named '%s'", instance_name(g, 1));
    expect_clean(g);
    mpx_node_destroy(&g);

    g = MPX_EZ(mpx_range(-500, 1001, 3), mpx_sum_i64());
    int64_t want = 0;
    for (int64_t x = -500; x < 1001; x += 3)
        want += x;
    list = collect_ok(g);
    check_i64s(list, &want, 1, "sum_i64");
    mpx_list_destroy(&list);
    CHECK(strcmp(instance_name(g, 1), "sum") == 0, "named '%s'", instance_name(g, 1));
    expect_clean(g);
    mpx_node_destroy(&g);

    const double reals[] = {0.5, 0.25, -4.0, 1024.0, 0.125};
    g = MPX_EZ(mpx_iter_f64(reals, 5), mpx_sum_f64());
    list = collect_ok(g);
    double sum = NAN;
    CHECK(mpx_list_size(list) == 1 && mpx_item_get_f64(mpx_list_at(list, 0), 0, &sum) == 0 &&
              sum == 1020.875,
          "sum_f64 is %g", sum);
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* Nothing in: Count and Sum put 0, a Reduce its init. */
    minmax_t init = {INT64_MAX, INT64_MIN};
    g = MPX_EZ(mpx_iter_i64(NULL, 0),
               MPX_B(mpx_count(), mpx_sum_i64(),
                     mpx_reduce("minmax", minmax_fn, &init, sizeof init, NULL)));
    list = collect_ok(g);
    int zeros = 0, inits = 0;
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        mpx_item_t *it = mpx_list_at(list, i);
        zeros += is_bytes(it, &(int64_t){0}, 8);
        inits += is_bytes(it, &init, sizeof init);
    }
    CHECK_EQ(mpx_list_size(list), 3);
    CHECK_EQ(zeros, 2);
    CHECK_EQ(inits, 1);
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* A 16-byte accumulator, aligned, starting from init; ctx reaches fn. */
    int64_t weight = -2;
    g = MPX_EZ(mpx_range(-50, 51, 7),
               MPX_B(mpx_reduce("minmax", minmax_fn, &init, sizeof init, NULL),
                     mpx_reduce(NULL, weighted_fn, &(int64_t){100}, 8, &weight)));
    list = collect_ok(g);
    REQUIRE(mpx_list_size(list) == 2, "%zu items", mpx_list_size(list));
    int64_t wsum = 100;
    for (int64_t x = -50; x < 51; x += 7)
        wsum += -2 * x;
    minmax_t mm = {-50, 48};
    int found_mm = 0, found_w = 0;
    for (size_t i = 0; i < 2; i++) {
        found_mm += is_bytes(mpx_list_at(list, i), &mm, sizeof mm);
        found_w += is_bytes(mpx_list_at(list, i), &wsum, 8);
    }
    CHECK(found_mm == 1 && found_w == 1, "minmax %d, weighted %d", found_mm, found_w);
    mpx_list_destroy(&list);
    CHECK(strcmp(instance_name(g, 1), "minmax") == 0, "named '%s'", instance_name(g, 1));
    CHECK(strcmp(instance_name(g, 2), "reduce") == 0, "named '%s'", instance_name(g, 2));
    expect_clean(g);
    mpx_node_destroy(&g);

    /* The largest accumulator. */
    static uint32_t zero[1024];
    g = MPX_EZ(mpx_range(0, 5000, 1),
               mpx_reduce("histogram", histogram_fn, zero, MPX_REDUCE_MAX, NULL));
    list = collect_ok(g);
    REQUIRE(mpx_list_size(list) == 1, "%zu items", mpx_list_size(list));
    mpx_item_t *it = mpx_list_at(list, 0);
    REQUIRE(mpx_item_size(it, 0) == MPX_REDUCE_MAX, "%zu bytes", mpx_item_size(it, 0));
    const uint32_t *buckets = mpx_item_data(it, 0);
    int64_t wrong = 0;
    for (int64_t b = 0; b < 1024; b++)
        wrong += buckets[b] != (uint32_t)(b < 5000 % 1024 ? 5 : 4);
    CHECK_EQ(wrong, 0);
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Two Count (or Sum) nodes in parallel each put their partial result. */
static void reduce_partials_add_up(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_range(0, 20000, 1), MPX_P(mpx_count(), mpx_count()));
    mpx_list_t *list = collect_ok(g);
    REQUIRE(mpx_list_size(list) == 2, "%zu partials", mpx_list_size(list));
    int64_t a = mpx_item_i64(mpx_list_at(list, 0)), b = mpx_item_i64(mpx_list_at(list, 1));
    CHECK(a >= 0 && b >= 0, "partials %" PRId64 " and %" PRId64, a, b);
    CHECK_EQ(a + b, 20000);
    mpx_list_destroy(&list);
    mpx_instance_info_t i1, i2;
    CHECK_EQ(mpx_graph_instance_info(g, 1, &i1), 0);
    CHECK_EQ(mpx_graph_instance_info(g, 2, &i2), 0);
    CHECK(i1.items_in + i2.items_in == 20000, "items in %llu + %llu", i1.items_in, i2.items_in);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* Partial sums, summed again downstream. */
    g = MPX_EZ(mpx_range(1, 10001, 1), MPX_P(mpx_sum_i64(), mpx_sum_i64(), mpx_sum_i64()),
               mpx_sum_i64());
    list = collect_ok(g);
    check_i64s(list, (const int64_t[]){50005000}, 1, "sum of partial sums");
    mpx_list_destroy(&list);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static int picky_fn(void *acc, const mpx_item_t *it, void *ctx)
{
    (void)ctx;
    *(int64_t *)acc += 1;
    return mpx_item_i64(it) == 500 ? -1 : 0;
}

static void reduce_failures(void)
{
    expect_stage_failure(
        MPX_EZ(mpx_range(0, 1000, 1), mpx_reduce("picky", picky_fn, &(int64_t){0}, 8, NULL)),
        "picky", "the reduce function failed (returned -1) on item 501");
    expect_stage_failure(MPX_EZ(mpx_const_str("abc", 2), mpx_sum_i64()), "sum",
                         "item 1: expected an 8-byte integer in part 0, got 3 bytes");
    const mpx_part_t mixed[] = {{&(double){1.5}, 8}, {&(double){2.5}, 8}, {"abcd", 4}};
    expect_stage_failure(MPX_EZ(mpx_iter(mixed, 3), mpx_sum_f64()), "sum",
                         "item 3: expected an 8-byte double in part 0, got 4 bytes");
}

static void reduce_refuses_bad_args(void)
{
    static const char init[MPX_REDUCE_MAX + 1];
    expect_refused(MPX_EZ(mpx_range(0, 3, 1), mpx_reduce("big", picky_fn, init, sizeof init, NULL)),
                   "mpx_reduce 'big': acc_size is 4097, more than MPX_REDUCE_MAX (4096)");
    expect_refused(MPX_EZ(mpx_range(0, 3, 1), mpx_reduce(NULL, NULL, init, 8, NULL)),
                   "mpx_reduce 'reduce': the function is NULL");
    expect_refused(MPX_EZ(mpx_range(0, 3, 1), mpx_reduce("r", picky_fn, NULL, 8, NULL)),
                   "mpx_reduce 'r': init is NULL");
    expect_refused(MPX_EZ(mpx_range(0, 3, 1), mpx_reduce("r", picky_fn, init, 0, NULL)),
                   "mpx_reduce 'r': acc_size must be at least 1");

}

/* ---- Stamp -------------------------------------------------------------- */

/* What the child running the Stamp graphs saw, for the test to check. */
typedef struct stamp_run {
    int fd; /* an unlinked file: stderr of the child and its stages */
    int join_rc;
    char error[256];
    int64_t items, items_wrong;
    bool finished, clean;
} stamp_run_t;

#define LONG_PREFIX "a prefix of seventy bytes, longer than the sixty-three kept.......xyz"

/* In the forked child.  Whatever expect_clean finds is written to the
 * redirected stderr too, so the test sees it as an unexpected line. */
static void stamp_child(void *arg)
{
    stamp_run_t *r = arg;
    if (dup2(r->fd, STDERR_FILENO) < 0)
        _exit(3);

    /* Single line: every item passes both stamps unchanged and in order. */
    mpx_graph_t *g = MPX_EZ(range_node(0, 500), mpx_stamp("seen"), mpx_stamp(LONG_PREFIX));
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t i = -1;
        r->items_wrong += mpx_item_parts(it) != 1 || mpx_item_i64(it) != r->items ||
                          mpx_item_meta_i64(it, "i", &i) != 0 || i != r->items;
        r->items++;
    }
    r->join_rc = mpx_graph_join(g);
    snprintf(r->error, sizeof r->error, "%s", mpx_graph_error(g));
    r->finished = mpx_graph_finished(g);
    CHECK(strcmp(instance_name(g, 1), "stamp") == 0, "named '%s'", instance_name(g, 1));
    expect_clean(g);
    mpx_node_destroy(&g);

    /* Two parallel instances with the default prefix each count from 1. */
    g = MPX_EZ(mpx_range(0, 300, 1), MPX_P(mpx_stamp(NULL), mpx_stamp(NULL)));
    int64_t sum = 0;
    while ((it = mpx_graph_next(g))) {
        sum += mpx_item_i64(it);
        r->items++;
    }
    r->items_wrong += sum != 300 * 299 / 2;
    int rc = mpx_graph_join(g);
    if (r->join_rc == 0)
        r->join_rc = rc;
    if (!r->error[0])
        snprintf(r->error, sizeof r->error, "%s", mpx_graph_error(g));
    r->finished = r->finished && mpx_graph_finished(g);
    expect_clean(g);
    mpx_node_destroy(&g);
    r->clean = no_children_left(5);
}

/* ---- Print ------------------------------------------------------------- */

static int add_seven_part(mpx_stage_t *st, mpx_item_t *it)
{
    static const int64_t seven = 7;
    mpx_part_t parts[2] = {{mpx_item_data(it, 0), mpx_item_size(it, 0)}, {&seven, 8}};
    return mpx_put_parts(st, parts, 2);
}

/* Runs in a child whose stdout is the file at arg. */
static void print_child(void *arg)
{
    int fd = *(int *)arg;
    if (dup2(fd, STDOUT_FILENO) < 0)
        _exit(20);
    static const int64_t answer = 42, minus_one = -1;
    static const unsigned char bin[3] = {0, 1, 2};
    static const mpx_part_t items[] = {
        {"hello", 5}, {&answer, 8}, {&minus_one, 8}, {"abcdefgh", 8}, {bin, 3},
        {"h\xc3\xa9llo", 6},
    };
    mpx_graph_t *g = MPX_EZ(mpx_iter(items, sizeof items / sizeof *items), mpx_print("p:"));
    int rc = mpx_graph_join(g);
    mpx_node_destroy(&g);
    /* A two-part item. */
    g = MPX_EZ(mpx_iter(items, 1), MPX_FN(add_seven_part), mpx_print("q:"));
    rc |= mpx_graph_join(g);
    mpx_node_destroy(&g);
    /* No prefix, two ways (one graph each, so that the lines come in
     * order): the value alone. */
    g = MPX_EZ(mpx_iter(items, 2), mpx_print(NULL));
    rc |= mpx_graph_join(g);
    mpx_node_destroy(&g);
    g = MPX_EZ(mpx_iter(items, 2), mpx_print(""));
    rc |= mpx_graph_join(g);
    mpx_node_destroy(&g);
    _exit(rc == 0 ? 0 : 21);
}

static void print_formats_parts(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/print-stdout", harness_tmpdir());
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0, "cannot create %s", path);
    CHECK_EQ(unlink(path), 0);
    int status = run_in_child(print_child, &fd);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child ended with status %x", status);
    char buf[1024];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    REQUIRE(n > 0, "nothing printed");
    buf[n] = 0;
    /* The prefix and a space, as mpyx's Print("A") prints "A 1"; text as
     * it is, 8-byte parts that are not text as integers (negative ones
     * too), other binary parts in hex; parts separated by a space.  With
     * no prefix, NULL or "", no space in front either. */
    const char *want = "p: hello\np: 42\np: -1\np: abcdefgh\np: <3 bytes: 00 01 02>\n"
                       "p: h\xc3\xa9llo\nq: hello 7\nhello\n42\nhello\n42\n";
    CHECK(strcmp(buf, want) == 0, "printed:\n%s", buf);
    CHECK(no_children_left(5), "children left");
}

static void stamp_prints_and_passes(void)
{
    stamp_run_t *r =
        mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(r != MAP_FAILED, "mmap");
    memset(r, 0, sizeof *r);
    /* Unlinked at once: nothing is left behind in the directory whatever
     * happens, and expect_clean finds it empty.  O_APPEND: the stage
     * processes write through the same open file. */
    char path[300];
    snprintf(path, sizeof path, "%s/stamp-stderr", harness_tmpdir());
    r->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    REQUIRE(r->fd >= 0, "cannot create %s", path);
    CHECK_EQ(unlink(path), 0);

    int status = run_in_child(stamp_child, r);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child ended with status %x", status);
    CHECK_EQ(r->join_rc, 0);
    CHECK(r->error[0] == 0, "%s", r->error);
    CHECK(r->finished && r->clean, "the child's graphs did not end clean");
    CHECK_EQ(r->items, 800);
    CHECK_EQ(r->items_wrong, 0);

    REQUIRE(lseek(r->fd, 0, SEEK_SET) == 0, "lseek");
    FILE *f = fdopen(r->fd, "r");
    REQUIRE(f, "fdopen");
    char line[256], want[256];
    int64_t seen = 0, longs = 0, items[301] = {0}, other = 0;
    while (fgets(line, sizeof line, f)) {
        long long n;
        int end = -1;
        if (sscanf(line, "seen %lld%n", &n, &end) == 1 && line[end] == '\n') {
            /* one instance: its lines come in order */
            CHECK(n == seen + 1, "'seen %lld' after 'seen %" PRId64 "'", n, seen);
            seen = n;
        } else if (sscanf(line, "item %lld%n", &n, &end) == 1 && line[end] == '\n' && n >= 1 &&
                   n <= 300) {
            items[n]++;
        } else if (snprintf(want, sizeof want, "%.63s %" PRId64 "\n", LONG_PREFIX, longs + 1) > 0 &&
                   strcmp(line, want) == 0) {
            longs++;
        } else {
            other++;
            CHECK(false, "unexpected line on stderr: '%s'", line);
        }
    }
    fclose(f);
    CHECK_EQ(seen, 500);
    CHECK_EQ(longs, 500);
    CHECK_EQ(other, 0);
    /* Two counters from 1: every n appears at most twice, never more often
     * than n - 1, and the lines add up to the items. */
    int64_t total = 0;
    for (int n = 1; n <= 300; n++) {
        CHECK(items[n] <= 2 && (n == 1 || items[n] <= items[n - 1]), "'item %d' %" PRId64 " times",
              n, items[n]);
        total += items[n];
    }
    CHECK_EQ(total, 300);
    CHECK(items[1] >= 1, "no 'item 1' line");
    munmap(r, sizeof *r);
    CHECK(no_children_left(5), "children left");
    CHECK_EQ(dir_entries(harness_tmpdir()), 0);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(const_puts_exactly_limit_items),
        TEST_CASE(const_endless_until_stopped),
        TEST_CASE(const_refuses_bad_values),
        TEST_CASE(iter_arrays_in_order),
        TEST_CASE(iter_empty_gives_nothing),
        TEST_CASE(iter_refuses_null_array),
        TEST_CASE(iter_null_string_fails),
        TEST_CASE(iter_generator),
        TEST_CASE(iter_generator_failure),
        TEST_CASE(range_matches_python),
        TEST_CASE(range_reaches_every_consumer_in_pieces),
        TEST_CASE(int64_results_reach_the_program_whole),
        TEST_CASE(range_refuses_step_zero),
        TEST_CASE(map_typed_forms),
        TEST_CASE(map_over_runs_gives_every_result),
        TEST_CASE(map_keeps_meta),
        TEST_CASE(filter_passes_the_right_items),
        TEST_CASE(typed_forms_fail_on_wrong_input),
        TEST_CASE(map_and_filter_take_int_long_long_long),
        TEST_CASE(int_functions_refuse_values_outside_int),
        TEST_CASE(fn_typed_forms_are_maps),
        TEST_CASE(map_in_parallel_same_multiset),
        TEST_CASE(string_map_frees_results),
        TEST_CASE(reduce_exact_results),
        TEST_CASE(reduce_partials_add_up),
        TEST_CASE(reduce_failures),
        TEST_CASE(reduce_refuses_bad_args),
        TEST_CASE(stamp_prints_and_passes),
        TEST_CASE(print_formats_parts),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
