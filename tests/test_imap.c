/* tests/test_imap.c — the pool map (mpx/imap.h): arrays and generators,
 * results in order or as they finish, each input's result once even
 * when a worker is killed, per-worker args and state, the error policies
 * (stop, skip, error results), per-item timeouts, a progress bar that
 * counts results, and a parent whose memory stays flat however many
 * inputs go through.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"

/* ---- workers ------------------------------------------------------------ */

static int square_process(mpx_stage_t *st, mpx_item_t *in)
{
    int64_t x = mpx_item_i64(in);
    return mpx_put_i64(st, x * x);
}
static const mpx_stage_def_t Square = {.name = "square", .process = square_process};

/* x -> x, after work that varies with x, so that results finish out of
 * order. */
static int uneven_process(mpx_stage_t *st, mpx_item_t *in)
{
    int64_t x = mpx_item_i64(in);
    volatile uint64_t acc = 0;
    for (int64_t i = 0; i < (x % 13) * 2000; i++)
        acc += (uint64_t)i;
    return mpx_put_i64(st, x);
}
static const mpx_stage_def_t Uneven = {.name = "uneven", .process = uneven_process};

/* Each worker multiplies by its own factor (its args) and counts its
 * calls in its state from setup on; results carry meta "factor" and the
 * call number. */
typedef struct factor_state {
    int64_t calls;
    bool set_up;
} factor_state_t;
static int factor_setup(mpx_stage_t *st)
{
    factor_state_t *s = mpx_state(st);
    s->set_up = true;
    return 0;
}
static int factor_process(mpx_stage_t *st, mpx_item_t *in)
{
    factor_state_t *s = mpx_state(st);
    if (!s->set_up)
        return mpx_fail(st, "process before setup");
    int64_t f = *(const int64_t *)mpx_args(st);
    int rc = mpx_meta_set_i64(st, "factor", f);
    if (rc == 0)
        rc = mpx_meta_set_i64(st, "call", ++s->calls);
    return rc ? rc : mpx_put_i64(st, mpx_item_i64(in) * f);
}
static const mpx_stage_def_t Factor = {.name = "factor", .args_size = sizeof(int64_t),
                                       .state_size = sizeof(factor_state_t),
                                       .setup = factor_setup, .process = factor_process};

/* Fails on every x with x % 100 == 7; hangs on x == hang (never, when
 * negative). */
static int picky_process(mpx_stage_t *st, mpx_item_t *in)
{
    int64_t x = mpx_item_i64(in);
    int64_t hang = *(const int64_t *)mpx_args(st);
    if (x == hang)
        for (;;)
            pause();
    if (x % 100 == 7)
        return mpx_fail(st, "seven");
    return mpx_put_i64(st, x);
}
static const mpx_stage_def_t Picky = {.name = "picky", .args_size = sizeof(int64_t),
                                      .process = picky_process};

/* Dies by SIGKILL on x == id the first time any worker gets there. */
typedef struct crash_args {
    int64_t id;
    volatile int *killed;
} crash_args_t;
static int crash_process(mpx_stage_t *st, mpx_item_t *in)
{
    const crash_args_t *a = mpx_args(st);
    int64_t x = mpx_item_i64(in);
    if (x == a->id && __sync_bool_compare_and_swap(a->killed, 0, 1))
        raise(SIGKILL);
    return mpx_put_i64(st, x);
}
static const mpx_stage_def_t Crash = {.name = "crash", .args_size = sizeof(crash_args_t),
                                      .process = crash_process};

/* ---- inputs and outputs ------------------------------------------------- */

typedef struct gen {
    int64_t next, n, value;
} gen_t;

static int gen_input(void *ctx, mpx_part_t *input)
{
    gen_t *g = ctx;
    if (g->next == g->n)
        return 0;
    g->value = g->next++;
    *input = (mpx_part_t){&g->value, sizeof g->value};
    return 1;
}

typedef struct sink {
    int64_t n, sum, out_of_order, last, bad;
    uint8_t *times; /* per index, when counted */
    int64_t nindex;
    int64_t errors;
    const char *error_text;
} sink_t;

static int sink_output(void *ctx, const mpx_item_t *r)
{
    sink_t *s = ctx;
    int64_t idx = -1;
    if (mpx_item_meta_i64(r, "mpx.index", &idx) != 0) {
        s->bad++;
        return 0;
    }
    if (mpx_item_error(r)) {
        s->errors++;
        if (!s->error_text)
            s->error_text = strdup(mpx_item_error(r));
    } else {
        s->n++;
        s->sum += mpx_item_i64(r);
    }
    if (s->n + s->errors > 1 && idx < s->last)
        s->out_of_order++;
    s->last = idx;
    if (s->times && idx >= 0 && idx < s->nindex && s->times[idx] < 255)
        s->times[idx]++;
    return 0;
}

/* ---- cases -------------------------------------------------------------- */

static void array_of_squares(void)
{
    enum { N = 100000 };
    int64_t *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    REQUIRE(in && out, "memory");
    for (int64_t i = 0; i < N; i++)
        in[i] = i - N / 2;
    mpx_imap_opts_t o = {.workers = 2};
    CHECK_EQ(mpx_imap_array(&Square, NULL, &o, in, N, sizeof *in, out, sizeof *out), 0);
    int64_t wrong = 0;
    for (int64_t i = 0; i < N; i++)
        wrong += out[i] != in[i] * in[i];
    CHECK_EQ(wrong, 0);
    /* The defaults (a worker per CPU), and an empty input. */
    CHECK_EQ(mpx_imap_array(&Square, NULL, NULL, in, 1000, sizeof *in, out, sizeof *out), 0);
    CHECK_EQ(out[999], in[999] * in[999]);
    CHECK_EQ(mpx_imap_array(&Square, NULL, NULL, in, 0, sizeof *in, out, sizeof *out), 0);
    free(in);
    free(out);
}

static void ordered_generator(void)
{
    const int64_t n = 100000;
    for (int ordered = 0; ordered <= 1; ordered++) {
        gen_t g = {0, n, 0};
        sink_t s = {0};
        s.nindex = n;
        s.times = calloc((size_t)n, 1);
        REQUIRE(s.times, "memory");
        mpx_imap_opts_t o = {.workers = 3, .ordered = ordered};
        CHECK_EQ(mpx_imap_run(&Uneven, NULL, &o, gen_input, &g, sink_output, &s), 0);
        CHECK_EQ(s.n, n);
        CHECK_EQ(s.sum, n * (n - 1) / 2);
        CHECK_EQ(s.bad, 0);
        if (ordered)
            CHECK_EQ(s.out_of_order, 0);
        int64_t not_once = 0;
        for (int64_t i = 0; i < n; i++)
            not_once += s.times[i] != 1;
        CHECK_EQ(not_once, 0);
        free(s.times);
    }
}

/* A worker killed mid-run, with retries: every input's result exactly
 * once, in both orders (the window drops the repeat a redelivery may
 * make). */
static void killed_worker_exactly_once(void)
{
    const int64_t n = 50000;
    for (int ordered = 0; ordered <= 1; ordered++) {
        volatile int *killed = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
                                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        REQUIRE(killed != MAP_FAILED, "mmap");
        crash_args_t ca = {n / 3, killed};
        gen_t g = {0, n, 0};
        sink_t s = {0};
        s.nindex = n;
        s.times = calloc((size_t)n, 1);
        REQUIRE(s.times, "memory");
        mpx_imap_opts_t o = {.workers = 3, .ordered = ordered, .retries = 2, .capacity = 16};
        CHECK_EQ(mpx_imap_run(&Crash, &ca, &o, gen_input, &g, sink_output, &s), 0);
        CHECK(*killed == 1, "no worker was killed");
        int64_t not_once = 0;
        for (int64_t i = 0; i < n; i++)
            not_once += s.times[i] != 1;
        CHECK(not_once == 0, "ordered %d: %lld inputs did not come out exactly once", ordered,
              (long long)not_once);
        if (ordered)
            CHECK_EQ(s.out_of_order, 0);
        free(s.times);
        munmap((void *)killed, sizeof(int));
    }
}

static int collect_factors(void *ctx, const mpx_item_t *r)
{
    int64_t *seen = ctx; /* [0..2]: results per factor 2, 3, 5; [3]: wrong */
    int64_t f = 0, call = 0, idx = -1;
    if (mpx_item_meta_i64(r, "factor", &f) != 0 || mpx_item_meta_i64(r, "call", &call) != 0 ||
        mpx_item_meta_i64(r, "mpx.index", &idx) != 0 || call < 1 || mpx_item_i64(r) != idx * f)
        seen[3]++;
    else
        seen[f == 2 ? 0 : f == 3 ? 1 : f == 5 ? 2 : 3]++;
    return 0;
}

/* mtasklite's [Square(0), Square(1), ...]: each worker its own args,
 * and state kept from setup across its calls. */
static void worker_args_and_state(void)
{
    static const int64_t factors[3] = {2, 3, 5};
    const void *args[3] = {&factors[0], &factors[1], &factors[2]};
    mpx_imap_opts_t o = {.workers = 3, .worker_args = args, .capacity = 4};
    gen_t g = {0, 3000, 0};
    int64_t seen[4] = {0};
    CHECK_EQ(mpx_imap_run(&Factor, NULL, &o, gen_input, &g, collect_factors, seen), 0);
    CHECK_EQ(seen[3], 0);
    CHECK_EQ(seen[0] + seen[1] + seen[2], 3000);
    CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] > 0, "a worker got nothing: %lld %lld %lld",
          (long long)seen[0], (long long)seen[1], (long long)seen[2]);
}

static void error_policies(void)
{
    const int64_t n = 1000, never = -1;
    /* Skip: no result for the 10 failures, the rest in order. */
    gen_t g = {0, n, 0};
    sink_t s = {0};
    mpx_imap_opts_t o = {.workers = 2, .ordered = true, .on_error = MPX_ON_ERROR_SKIP};
    char *err = NULL;
    CHECK_EQ(mpx_imap_run(&Picky, &never, &o, gen_input, &g, sink_output, &s), 0);
    CHECK_EQ(s.n, n - 10);
    CHECK_EQ(s.errors, 0);
    CHECK_EQ(s.out_of_order, 0);
    /* Error results in place of values, in order. */
    g = (gen_t){0, n, 0};
    s = (sink_t){0};
    o.on_error = MPX_ON_ERROR_RESULT;
    CHECK_EQ(mpx_imap_run(&Picky, &never, &o, gen_input, &g, sink_output, &s), 0);
    CHECK_EQ(s.n, n - 10);
    CHECK_EQ(s.errors, 10);
    CHECK_EQ(s.out_of_order, 0);
    CHECK(s.error_text && strstr(s.error_text, "seven"), "error text: %s",
          s.error_text ? s.error_text : "(none)");
    free((void *)s.error_text);
    /* Stop: the map fails with the stage's error. */
    g = (gen_t){0, n, 0};
    s = (sink_t){0};
    o.on_error = MPX_ON_ERROR_STOP;
    CHECK_EQ(mpx_imap_run(&Picky, &never, &o, gen_input, &g, sink_output, &s), MPX_ESTAGE);
    free(err);
}

/* A worker that hangs on one input is killed after the timeout; its
 * input gets an error result and the rest go on. */
static void per_item_timeout(void)
{
    const int64_t n = 200, hang = 50;
    gen_t g = {0, n, 0};
    sink_t s = {0};
    mpx_imap_opts_t o = {.workers = 2, .timeout_ms = 300, .on_error = MPX_ON_ERROR_RESULT};
    CHECK_EQ(mpx_imap_run(&Picky, &hang, &o, gen_input, &g, sink_output, &s), 0);
    CHECK_EQ(s.errors, 2 + 1); /* 7, 107, and the one that hung */
    CHECK_EQ(s.n, n - 3);
    free((void *)s.error_text);
}

/* Item by item: put and next by hand, results in order. */
static void by_hand(void)
{
    mpx_imap_t *m = NULL;
    mpx_imap_opts_t o = {.workers = 2, .ordered = true, .capacity = 2};
    REQUIRE(mpx_imap_start(&m, &Uneven, NULL, &o) == 0, "start");
    int64_t expect = 0, x = 0;
    mpx_item_t *r;
    while (x < 5000) {
        int rc = mpx_imap_put(m, &x, sizeof x);
        if (rc == 0) {
            x++;
            continue;
        }
        REQUIRE(rc == MPX_EAGAIN, "put: %s", mpx_strerror(rc));
        while ((rc = mpx_imap_next(m, 0, &r)) == 1)
            CHECK_EQ(mpx_item_i64(r), expect++);
        REQUIRE(rc == MPX_ETIMEDOUT, "next: %s", mpx_strerror(rc));
    }
    CHECK_EQ(mpx_imap_close(m), 0);
    int rc;
    while ((rc = mpx_imap_next(m, -1, &r)) == 1)
        CHECK_EQ(mpx_item_i64(r), expect++);
    CHECK_EQ(rc, 0);
    CHECK_EQ(expect, 5000);
    CHECK_EQ(mpx_imap_join(m), 0);
    expect_clean(mpx_imap_graph(m));
    mpx_imap_destroy(&m);
    /* Refused: a worker without process, negative workers, dead letters. */
    static const mpx_stage_def_t NoProcess = {.name = "none", .setup = NULL};
    CHECK_EQ(mpx_imap_start(&m, &NoProcess, NULL, NULL), MPX_EINVAL);
    CHECK(m == NULL, "no map on failure");
    o = (mpx_imap_opts_t){.workers = -1};
    CHECK_EQ(mpx_imap_start(&m, &Square, NULL, &o), MPX_EINVAL);
    o = (mpx_imap_opts_t){.on_error = MPX_ON_ERROR_DEAD_LETTER};
    CHECK_EQ(mpx_imap_start(&m, &Square, NULL, &o), MPX_EINVAL);
}

/* The bar counts results, with a total and without. */
static void run_with_bar(void *arg)
{
    mpx_imap_opts_t *o = arg;
    gen_t g = {0, 20000, 0};
    sink_t s = {0};
    CHECK_EQ(mpx_imap_run(&Square, NULL, o, gen_input, &g, sink_output, &s), 0);
    CHECK_EQ(s.n, 20000);
}

static void progress_counts_results(void)
{
    mpx_imap_opts_t o = {.workers = 2, .progress = 1, .total = 20000};
    char *text = capture_stderr(run_with_bar, &o);
    CHECK(strstr(text, "results [") && strstr(text, "100%") && strstr(text, "20.0k/20.0k"),
          "the bar: %s", text);
    free(text);
    o.total = 0;
    text = capture_stderr(run_with_bar, &o);
    CHECK(strstr(text, "results 20.0k"), "the bar without a total: %s", text);
    free(text);
}

/* The parent's memory does not grow with the number of inputs: its
 * largest RSS after a million inputs (MPX_IMAP_ITEMS for more) stays
 * within a bound set by the capacities (16 MiB of each edge's bytes, a
 * batch), not by the count.  As they finish: in order, the window also
 * holds every result that finished behind a late one, which a worker
 * descheduled for a while on a loaded machine makes grow (mpx/imap.h). */
static void flat_parent_memory(void)
{
    const char *env = getenv("MPX_IMAP_ITEMS");
    int64_t n = env ? atoll(env) : 1000000;
    struct rusage before, after;
    /* A first run, so that what any run maps once is in the figure. */
    gen_t g = {0, 100000, 0};
    sink_t s = {0};
    mpx_imap_opts_t o = {.workers = 2, .ordered = true};
    CHECK_EQ(mpx_imap_run(&Uneven, NULL, &o, gen_input, &g, sink_output, &s), 0);
    getrusage(RUSAGE_SELF, &before);
    g = (gen_t){0, n, 0};
    s = (sink_t){0};
    o.ordered = false;
    CHECK_EQ(mpx_imap_run(&Square, NULL, &o, gen_input, &g, sink_output, &s), 0);
    getrusage(RUSAGE_SELF, &after);
    CHECK_EQ(s.n, n);
    long grew = after.ru_maxrss - before.ru_maxrss;
    fprintf(stderr, "parent max RSS %ld KiB before, %ld KiB after %lld inputs\n",
            before.ru_maxrss, after.ru_maxrss, (long long)n);
    CHECK(grew < 32 * 1024, "the parent grew by %ld KiB over %lld inputs", grew, (long long)n);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(array_of_squares),
        TEST_CASE(ordered_generator),
        TEST_CASE(killed_worker_exactly_once),
        TEST_CASE(worker_args_and_state),
        TEST_CASE(error_policies),
        TEST_CASE(per_item_timeout),
        TEST_CASE(by_hand),
        TEST_CASE(progress_counts_results),
        TEST_CASE(flat_parent_memory),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
