/* tests/test_random.c — random nested graphs against a single-process
 * evaluation of the same graph.
 *
 * Each graph is a source of N numbers followed by a random tree of depth
 * at least 3 mixing serial, parallel and broadcast groups, mpx_as/mpx_by
 * and small capacities, with slow stages (a sleep per item, for the first
 * 30 ms of each process's work) among fast ones, so that slow consumers
 * get their work in small batches and fast ones in large ones.  Every
 * stage maps an input to 0..3 outputs by a
 * hash of (stage function, value), appends its function id to the item's
 * meta trace, and some put one more item in teardown.  The branches of a
 * parallel group compute the same function (they are clones that differ
 * in how they are replicated), so the output multiset of (value, trace)
 * is determined and must equal the reference exactly: nothing lost,
 * nothing duplicated, meta carried with its item.
 *
 * The seed is printed; MPX_TEST_SEED repeats a run.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "lib/testhook.h"
#include "stages.h"

#define MAX_PROCS 18
#define MAX_OUTPUT 40000

static uint64_t rng_state;
/* Some stages are elastic groups, changed at random while the graph runs
 * (random_graphs_elastic). */
static bool elastic_mode;
static uint64_t script_rng;
static int last_total, changes_seen; /* instances running over the groups, changes seen */
static uint32_t rnd(uint32_t n) { return (uint32_t)((rng_state = test_mix(rng_state)) % n); }

/* ---- what a stage computes ---------------------------------------------- */

typedef struct fn_args {
    int fid;
    int teardown; /* puts one item in teardown */
    int delay_us; /* a slow stage sleeps this long per item... */
} fn_args_t;
#define SLOW_BUDGET_US 30000 /* ...until it has slept this long in all */

static int outputs(int fid, int64_t x) { return (int)(test_mix((uint64_t)fid * 1000003u + (uint64_t)x) % 4); }
static int64_t output(int fid, int64_t x, int j)
{
    return (int64_t)(test_mix(test_mix((uint64_t)fid) ^ ((uint64_t)x * 31 + (uint64_t)j)) % 100000);
}
static int64_t teardown_value(int fid) { return 100000 + fid; }

static int trace_append(mpx_stage_t *st, int fid)
{
    const char *t = mpx_meta_str(st, "t");
    char buf[512];
    snprintf(buf, sizeof buf, "%s.%d", t ? t : "", fid);
    return mpx_meta_set_str(st, "t", buf);
}

static int fn_process(mpx_stage_t *st, mpx_item_t *it)
{
    const fn_args_t *a = mpx_args(st);
    int *slept = mpx_state(st);
    if (a->delay_us && *slept < SLOW_BUDGET_US) {
        usleep((useconds_t)a->delay_us);
        *slept += a->delay_us;
    }
    int64_t x = mpx_item_i64(it);
    int rc = trace_append(st, a->fid);
    for (int j = 0; rc == 0 && j < outputs(a->fid, x); j++)
        rc = mpx_put_i64(st, output(a->fid, x, j));
    return rc;
}

static int fn_teardown(mpx_stage_t *st)
{
    const fn_args_t *a = mpx_args(st);
    if (!a->teardown)
        return 0;
    int rc = trace_append(st, a->fid);
    return rc ? rc : mpx_put_i64(st, teardown_value(a->fid));
}

static const mpx_stage_def_t Fn = {.name = "rfn", .args_size = sizeof(fn_args_t),
                                   .state_size = sizeof(int), .process = fn_process,
                                   .teardown = fn_teardown};

static int source_setup(mpx_stage_t *st)
{
    int64_t n = *(const int64_t *)mpx_args(st);
    int rc = mpx_meta_set_str(st, "t", "s");
    for (int64_t v = 0; rc == 0 && v < n; v++)
        rc = mpx_put_i64(st, v);
    return rc ? rc : mpx_stop(st);
}
static const mpx_stage_def_t Source = {.name = "rsrc", .args_size = sizeof(int64_t),
                                       .setup = source_setup};

/* ---- the random tree ---------------------------------------------------- */

typedef enum { SP_STAGE, SP_SERIAL, SP_PARALLEL, SP_BROADCAST } sp_kind_t;

typedef struct spec {
    sp_kind_t kind;
    int fid, teardown, count, by, delay_us; /* stage */
    int elastic; /* an elastic group of 1..3 (its teardown puts nothing: how many
                  * processes it will have had is not known) */
    size_t cap;                   /* 0: inherit */
    struct spec *kids[3];
    int nkids;
} spec_t;

static int next_fid;

static spec_t *sp_new(sp_kind_t kind)
{
    spec_t *s = calloc(1, sizeof *s);
    REQUIRE(s, "oom");
    s->kind = kind;
    return s;
}

static void sp_free(spec_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nkids; i++)
        sp_free(s->kids[i]);
    free(s);
}

/* A clone computing the same function, replicated differently. */
static spec_t *sp_variant(const spec_t *s)
{
    spec_t *c = sp_new(s->kind);
    *c = *s;
    for (int i = 0; i < s->nkids; i++)
        c->kids[i] = sp_variant(s->kids[i]);
    if (c->kind == SP_STAGE && !c->by)
        c->count = 1 + (int)rnd(2);
    if (c->kind == SP_STAGE && !c->by && elastic_mode && !c->elastic && rnd(2) == 0) {
        c->elastic = 1;
        c->teardown = 0;
    }
    c->cap = rnd(4) == 0 ? 2 + rnd(6) : 0;
    return c;
}

static spec_t *sp_gen(int depth)
{
    if (depth >= 4 || (depth >= 1 && rnd(100) < 35)) {
        spec_t *s = sp_new(SP_STAGE);
        s->fid = ++next_fid;
        s->teardown = rnd(3) == 0;
        s->delay_us = rnd(4) == 0 ? 20 + 20 * (int)rnd(10) : 0;
        s->by = rnd(6) == 0;
        s->count = 1 + (rnd(3) == 0);
        s->cap = rnd(5) == 0 ? 2 + rnd(6) : 0;
        if (elastic_mode && !s->by && rnd(2) == 0) {
            s->elastic = 1;
            s->teardown = 0;
            s->delay_us = 30 + 10 * (int)rnd(5);
        }
        return s;
    }
    sp_kind_t kind = (sp_kind_t)(1 + rnd(3));
    spec_t *s = sp_new(kind);
    s->cap = rnd(6) == 0 ? 2 + rnd(6) : 0;
    if (kind == SP_PARALLEL) {
        spec_t *first = sp_gen(depth + 1);
        s->kids[s->nkids++] = first;
        s->kids[s->nkids++] = sp_variant(first);
    } else {
        int n = 2 + (kind == SP_SERIAL ? (int)rnd(2) : 0);
        for (int i = 0; i < n; i++)
            s->kids[s->nkids++] = sp_gen(depth + 1);
    }
    return s;
}

static int sp_depth(const spec_t *s)
{
    int d = 0;
    for (int i = 0; i < s->nkids; i++) {
        int k = sp_depth(s->kids[i]);
        d = k > d ? k : d;
    }
    return s->kind == SP_STAGE ? 0 : d + 1;
}

static int sp_procs(const spec_t *s)
{
    int n = s->kind == SP_STAGE ? s->count : 0;
    for (int i = 0; i < s->nkids; i++)
        n += sp_procs(s->kids[i]);
    return n;
}

static void sp_print(const spec_t *s, FILE *f)
{
    if (s->kind == SP_STAGE) {
        fprintf(f, "%s%d(f%d%s%s", s->by ? "by" : "as", s->count, s->fid,
                s->teardown ? ",td" : "", s->elastic ? ",elastic 1..3" : "");
        if (s->delay_us)
            fprintf(f, ",slow %dus", s->delay_us);
        fputc(')', f);
    } else {
        fputs(s->kind == SP_SERIAL ? "S(" : s->kind == SP_PARALLEL ? "P(" : "B(", f);
        for (int i = 0; i < s->nkids; i++) {
            if (i)
                fputs(", ", f);
            sp_print(s->kids[i], f);
        }
        fputc(')', f);
    }
    if (s->cap)
        fprintf(f, "[cap %zu]", s->cap);
}

static mpx_node_t *sp_build(const spec_t *s)
{
    mpx_node_t *n;
    if (s->kind == SP_STAGE) {
        fn_args_t a = {s->fid, s->teardown, s->delay_us};
        n = s->by ? mpx_by(s->count, &Fn, &a) : mpx_as(s->count, &Fn, &a);
        if (n && s->elastic)
            CHECK_EQ(mpx_node_set_elastic(n, 1, 3), 0);
    } else {
        mpx_node_t *kids[3];
        for (int i = 0; i < s->nkids; i++)
            kids[i] = sp_build(s->kids[i]);
        n = s->kind == SP_SERIAL     ? mpx_serial_v(kids, (size_t)s->nkids)
            : s->kind == SP_PARALLEL ? mpx_parallel_v(kids, (size_t)s->nkids)
                                     : mpx_broadcast_v(kids, (size_t)s->nkids);
    }
    if (n && s->cap)
        CHECK_EQ(mpx_node_set_capacity(n, s->cap, 0), 0);
    return n;
}

/* ---- the single-process reference --------------------------------------- */

typedef struct entry {
    int64_t v;
    char t[200];
} entry_t;

typedef struct bag {
    entry_t *e;
    size_t n, cap;
    bool overflow;
} bag_t;

static void bag_add(bag_t *b, int64_t v, const char *t)
{
    if (b->n >= MAX_OUTPUT) {
        b->overflow = true;
        return;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->e = realloc(b->e, b->cap * sizeof *b->e);
        REQUIRE(b->e, "oom");
    }
    b->e[b->n].v = v;
    snprintf(b->e[b->n].t, sizeof b->e[b->n].t, "%s", t);
    b->n++;
}

static void bag_merge(bag_t *into, bag_t *from)
{
    for (size_t i = 0; i < from->n; i++)
        bag_add(into, from->e[i].v, from->e[i].t);
    into->overflow |= from->overflow;
    free(from->e);
    *from = (bag_t){0};
}

static bag_t eval(const spec_t *s, const bag_t *in)
{
    bag_t out = {0};
    out.overflow = in->overflow;
    if (s->kind == SP_STAGE) {
        int copies = s->by ? s->count : 1;
        for (int c = 0; c < copies; c++)
            for (size_t i = 0; i < in->n; i++) {
                char t[200];
                REQUIRE(snprintf(t, sizeof t, "%s.%d", in->e[i].t, s->fid) < (int)sizeof t,
                        "trace too long");
                for (int j = 0; j < outputs(s->fid, in->e[i].v); j++)
                    bag_add(&out, output(s->fid, in->e[i].v, j), t);
            }
        /* Every instance tears down once; its item has an empty trace. */
        for (int c = 0; s->teardown && c < s->count; c++) {
            char t[32];
            snprintf(t, sizeof t, ".%d", s->fid);
            bag_add(&out, teardown_value(s->fid), t);
        }
        return out;
    }
    if (s->kind == SP_SERIAL) {
        bag_t cur = {0};
        for (size_t i = 0; i < in->n; i++)
            bag_add(&cur, in->e[i].v, in->e[i].t);
        cur.overflow = in->overflow;
        for (int k = 0; k < s->nkids; k++) {
            bag_t next = eval(s->kids[k], &cur);
            free(cur.e);
            cur = next;
        }
        return cur;
    }
    bag_t empty = {0};
    for (int k = 0; k < s->nkids; k++) {
        /* Parallel branches are equivalent: all input may go to the first,
         * the others still tear down. */
        bag_t part = eval(s->kids[k], s->kind == SP_PARALLEL && k > 0 ? &empty : in);
        bag_merge(&out, &part);
    }
    return out;
}

static int cmp_entry(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return strcmp(x->t, y->t);
}

/* ---- the run ------------------------------------------------------------ */

static uint64_t base_seed(void)
{
    static uint64_t seed;
    if (!seed) {
        const char *env = getenv("MPX_TEST_SEED");
        seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) * 2654435761u;
        if (!seed)
            seed = 1;
    }
    return seed;
}

static int random_change(void *ctx, int ngroups, const int *running, int *group, int *delta);

static bool one_graph(uint64_t seed, int index)
{
    rng_state = seed;
    next_fid = 0;
    spec_t *body;
    int64_t n;
    bag_t want;
    for (;;) {
        body = sp_new(SP_SERIAL);
        int nk = 1 + (int)rnd(2);
        for (int i = 0; i < nk; i++)
            body->kids[body->nkids++] = sp_gen(1);
        n = elastic_mode ? 2000 + rnd(3000) : 20 + rnd(200);
        bag_t in = {0};
        for (int64_t v = 0; v < n; v++)
            bag_add(&in, v, "s");
        want = eval(body, &in);
        free(in.e);
        /* Depth with the source's serial root of 3 or more. */
        if (sp_depth(body) >= 3 && sp_procs(body) + 1 <= MAX_PROCS && !want.overflow)
            break;
        free(want.e);
        sp_free(body);
    }
    mpx_node_t *kids[3] = {mpx_stage(&Source, &n)};
    for (int i = 0; i < body->nkids; i++)
        kids[i + 1] = sp_build(body->kids[i]);
    mpx_graph_t *g = mpx_serial_v(kids, (size_t)body->nkids + 1);
    if (rnd(3) == 0)
        CHECK_EQ(mpx_node_set_capacity(g, 1 + rnd(16), 0), 0);
    if (elastic_mode) {
        script_rng = seed;
        last_total = 0;
        CHECK_EQ(testhook_elastic_script(g, random_change, NULL), 0);
        CHECK_EQ(mpx_graph_set_budget(g, 64), 0);
    }

    bag_t got = {0};
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        const char *t = mpx_item_meta_str(it, "t");
        bag_add(&got, mpx_item_i64(it), t ? t : "(no trace)");
    }
    int rc = mpx_graph_join(g);
    qsort(want.e, want.n, sizeof *want.e, cmp_entry);
    qsort(got.e, got.n, sizeof *got.e, cmp_entry);
    bool same = rc == 0 && got.n == want.n;
    for (size_t i = 0; same && i < got.n; i++)
        same = cmp_entry(&got.e[i], &want.e[i]) == 0;
    if (!same) {
        fprintf(stderr, "graph %d (seed %llu): rc %d (%s), %zu items, expected %zu\n  ", index,
                (unsigned long long)seed, rc, mpx_graph_error(g), got.n, want.n);
        sp_print(body, stderr);
        fputc('\n', stderr);
        for (size_t i = 0; i < got.n || i < want.n; i++) {
            if (i < got.n && i < want.n && cmp_entry(&got.e[i], &want.e[i]) == 0)
                continue;
            fprintf(stderr, "  first difference at %zu: got %lld %s, expected %lld %s\n", i,
                    i < got.n ? (long long)got.e[i].v : -1LL, i < got.n ? got.e[i].t : "-",
                    i < want.n ? (long long)want.e[i].v : -1LL, i < want.n ? want.e[i].t : "-");
            break;
        }
    }
    CHECK(same, "graph %d differs from its single-process evaluation", index);
    expect_clean(g);
    mpx_node_destroy(&g);
    sp_free(body);
    free(want.e);
    free(got.e);
    return same;
}

static void run_batch(int batch)
{
    uint64_t seed = base_seed();
    printf("seed=%llu batch %d (MPX_TEST_SEED=%llu repeats it)\n", (unsigned long long)seed, batch,
           (unsigned long long)seed);
    /* A new seed each run, so runs add up: MPX_LONG_TESTS=1 for the
     * soak's count, fewer under ASan (an elastic graph there takes 10 s). */
    int graphs = harness_long() ? (elastic_mode ? 17 : 50)
                 : harness_sanitized() ? (elastic_mode ? 2 : 10)
                                       : (elastic_mode ? 7 : 20);
    int ok = 0;
    for (int i = 0; i < graphs; i++)
        ok += one_graph(test_mix(seed + (uint64_t)batch * 1000 + (uint64_t)i), i);
    printf("%d of %d random graphs matched\n", ok, graphs);
    if (elastic_mode) {
        printf("%d changes of elastic groups seen\n", changes_seen);
        CHECK(changes_seen >= graphs, "only %d changes in %d graphs", changes_seen, graphs);
    }
}

/* The elastic groups' changes: at each tick, one group grows or shrinks
 * by one, at random, within 1..3. */
static int random_change(void *ctx, int ngroups, const int *running, int *group, int *delta)
{
    (void)ctx;
    if (ngroups == 0)
        return 0;
    int total = 0;
    for (int k = 0; k < ngroups; k++)
        total += running[k];
    changes_seen += last_total && total != last_total;
    last_total = total;
    script_rng = test_mix(script_rng);
    int k = (int)(script_rng % (uint64_t)ngroups);
    int d = (script_rng >> 32) & 1 ? 1 : -1;
    if (running[k] + d < 1 || running[k] + d > 3)
        d = -d;
    *group = k;
    *delta = d;
    return 1;
}

static void random_graphs_a(void) { run_batch(0); }
static void random_graphs_b(void) { run_batch(1); }
static void random_graphs_c(void) { run_batch(2); }
static void random_graphs_d(void) { run_batch(3); }
static void random_graphs_elastic(void)
{
    elastic_mode = true;
    run_batch(4);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(random_graphs_a),
        TEST_CASE(random_graphs_b),
        TEST_CASE(random_graphs_c),
        TEST_CASE(random_graphs_d),
        TEST_CASE(random_graphs_elastic),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
