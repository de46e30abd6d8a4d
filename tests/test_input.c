/* tests/test_input.c — a graph fed by the program (mpx_graph_put,
 * put_parts, close_input, the input meta, non-blocking puts): every item
 * put comes out once, numbered; a single thread alternating puts and
 * polls never deadlocks, whatever the capacities and however many items
 * a stage puts per input; a put that waits ends on a signal; a worker
 * killed while the program feeds it loses nothing under a retry policy;
 * the end of input is implied where nothing more can be put.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

/* ---- stages ------------------------------------------------------------- */

/* x -> 2x, meta kept. */
static int double_process(mpx_stage_t *st, mpx_item_t *it)
{
    return mpx_put_i64(st, 2 * mpx_item_i64(it));
}
static const mpx_stage_def_t Double = {.name = "double", .process = double_process};

/* x -> 3x, 3x+1, 3x+2: three outputs per input. */
static int triple_process(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t x = mpx_item_i64(it);
    for (int k = 0; k < 3; k++) {
        int rc = mpx_put_i64(st, 3 * x + k);
        if (rc != 0)
            return rc;
    }
    return 0;
}
static const mpx_stage_def_t Triple = {.name = "triple", .process = triple_process};

/* Puts -1 in setup, then passes its input on. */
static int hello_setup(mpx_stage_t *st) { return mpx_put_i64(st, -1); }
static int pass_process(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }
static const mpx_stage_def_t Hello = {.name = "hello", .setup = hello_setup,
                                      .process = pass_process};
static const mpx_stage_def_t Pass = {.name = "pass", .process = pass_process};

/* Blocks on the item `id` until `open` is set. */
typedef struct gate_args {
    mpx_event_t *open;
    int64_t id;
} gate_args_t;
static int gate_process(mpx_stage_t *st, mpx_item_t *it)
{
    const gate_args_t *a = mpx_args(st);
    if (mpx_item_i64(it) == a->id && mpx_event_wait(a->open, -1) != 1)
        return mpx_fail(st, "waiting for the gate failed");
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Gate = {.name = "gate", .args_size = sizeof(gate_args_t),
                                     .process = gate_process};

/* Dies by SIGKILL on item `id`, the first time any instance reaches it
 * (`*killed`, in shared memory, says it did). */
typedef struct crash_args {
    int64_t id;
    volatile int *killed;
} crash_args_t;
static int crash_process(mpx_stage_t *st, mpx_item_t *it)
{
    const crash_args_t *a = mpx_args(st);
    if (mpx_item_i64(it) == a->id && __sync_bool_compare_and_swap(a->killed, 0, 1))
        raise(SIGKILL);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Crash = {.name = "crash", .args_size = sizeof(crash_args_t),
                                      .process = crash_process};

/* The sum of a large item's bytes; dies by SIGKILL on the input whose
 * mpx.index is `id`, the first time any instance gets there. */
static int bytesum_process(mpx_stage_t *st, mpx_item_t *it)
{
    const crash_args_t *a = mpx_args(st);
    int64_t idx = -1;
    if (mpx_item_meta_i64(it, "mpx.index", &idx) == 0 && idx == a->id &&
        __sync_bool_compare_and_swap(a->killed, 0, 1))
        raise(SIGKILL);
    const uint8_t *d = mpx_item_data(it, 0);
    int64_t sum = 0;
    for (size_t i = 0; i < mpx_item_size(it, 0); i++)
        sum += d[i];
    return mpx_put_i64(st, sum);
}
static const mpx_stage_def_t ByteSum = {.name = "bytesum", .args_size = sizeof(crash_args_t),
                                        .process = bytesum_process};

/* Stops reading its input after the first item. */
static int quit_process(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    return mpx_stop(st);
}
static const mpx_stage_def_t Quit = {.name = "quit", .process = quit_process};

/* ---- helpers ------------------------------------------------------------ */

/* What came out: counts by value, and by the mpx.index each carried. */
typedef struct tally {
    int64_t n, sum;
    int64_t *by_index; /* times each index came out */
    int64_t nindex;
    int64_t bad_index; /* outputs without a valid mpx.index */
} tally_t;

static void tally_init(tally_t *t, int64_t nindex)
{
    memset(t, 0, sizeof *t);
    t->nindex = nindex;
    t->by_index = calloc((size_t)nindex + 1, sizeof *t->by_index);
    REQUIRE(t->by_index, "out of memory");
}

static void tally_add(tally_t *t, mpx_item_t *it)
{
    t->n++;
    t->sum += mpx_item_i64(it);
    int64_t idx = -1;
    if (mpx_item_meta_i64(it, "mpx.index", &idx) != 0 || idx < 0 || idx >= t->nindex)
        t->bad_index++;
    else
        t->by_index[idx]++;
}

/* Take every output waiting now; returns how many. */
static int64_t take_ready(mpx_graph_t *g, tally_t *t)
{
    int64_t k = 0;
    mpx_item_t *it;
    int rc;
    while ((rc = mpx_graph_poll(g, 0, &it)) == 1) {
        tally_add(t, it);
        k++;
    }
    REQUIRE(rc == MPX_ETIMEDOUT || rc == 0, "poll: %s", mpx_strerror(rc));
    return k;
}

/* Put 0..n-1 from one thread, taking output whenever a put says
 * MPX_EAGAIN; then close and drain.  Returns join's code.  eagain counts
 * the MPX_EAGAIN answers. */
static int feed_all(mpx_graph_t *g, int64_t n, tally_t *t, int64_t *eagain)
{
    for (int64_t x = 0; x < n; x++) {
        int rc;
        while ((rc = mpx_graph_put(g, &x, sizeof x)) == MPX_EAGAIN) {
            if (eagain)
                (*eagain)++;
            /* Nothing taken: wait for output, as a program with nothing
             * else to do would. */
            if (take_ready(g, t) == 0) {
                mpx_item_t *it;
                int prc = mpx_graph_poll(g, 100, &it);
                if (prc == 1)
                    tally_add(t, it);
            }
        }
        if (rc != 0)
            return rc;
    }
    CHECK_EQ(mpx_graph_input_count(g), n);
    CHECK_EQ(mpx_graph_close_input(g), 0);
    mpx_item_t *it;
    while ((it = mpx_graph_next(g)))
        tally_add(t, it);
    return mpx_graph_join(g);
}

static void expect_each_index(const tally_t *t, int64_t times)
{
    CHECK_EQ(t->bad_index, 0);
    int64_t wrong = 0, first = -1;
    for (int64_t i = 0; i < t->nindex; i++)
        if (t->by_index[i] != times) {
            wrong++;
            first = first < 0 ? i : first;
        }
    CHECK(wrong == 0, "%lld indexes did not come out %lld times (first: %lld, %lld times)",
          (long long)wrong, (long long)times, (long long)first,
          (long long)(first >= 0 ? t->by_index[first] : 0));
}

/* ---- cases -------------------------------------------------------------- */

/* A parallel group fed by the program: every item once, its index with it. */
static void put_through_parallel_group(void)
{
    const int64_t n = 20000;
    mpx_graph_t *g = MPX_EZ(mpx_as(3, &Double, NULL));
    tally_t t;
    tally_init(&t, n);
    CHECK_EQ(feed_all(g, n, &t, NULL), 0);
    CHECK_EQ(t.n, n);
    CHECK_EQ(t.sum, n * (n - 1));
    expect_each_index(&t, 1);
    expect_clean(g);
    mpx_node_destroy(&g);
    free(t.by_index);
}

/* Capacity 1 everywhere, a stage putting three items per input, then a
 * chain of two such: one thread never deadlocks, and says MPX_EAGAIN
 * rather than waiting on itself. */
static void capacity_one_three_per_input(void)
{
    const int64_t n = 3000;
    for (int chain = 1; chain <= 2; chain++) {
        mpx_graph_t *g = chain == 1 ? MPX_EZ(mpx_stage(&Triple, NULL))
                                    : MPX_EZ(mpx_stage(&Triple, NULL), mpx_as(2, &Triple, NULL));
        REQUIRE(mpx_node_set_capacity(g, 1, 0) == 0, "capacity");
        int64_t outs = chain == 1 ? 3 * n : 9 * n;
        tally_t t;
        tally_init(&t, n);
        int64_t eagain = 0;
        CHECK_EQ(feed_all(g, n, &t, &eagain), 0);
        CHECK_EQ(t.n, outs);
        CHECK(eagain > 0, "no put said MPX_EAGAIN with capacity 1 and nothing taken");
        expect_each_index(&t, chain == 1 ? 3 : 9);
        expect_clean(g);
        mpx_node_destroy(&g);
        free(t.by_index);
    }
}

/* A put that waits for room (the only stage blocked on its first item,
 * nothing for the program to take) returns MPX_EINTR when a signal the
 * program handles comes; nothing put before is lost, and it goes on. */
static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static void signal_interrupts_waiting_put(void)
{
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    REQUIRE(sigaction(SIGALRM, &sa, &old) == 0, "sigaction");
    mpx_event_t *open = mpx_event_new();
    REQUIRE(open, "event");
    gate_args_t ga = {open, 0};
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Gate, &ga));
    REQUIRE(mpx_node_set_capacity(g, 1, 0) == 0, "capacity");
    int64_t put = 0;
    int rc = 0;
    struct itimerval tv = {{0, 0}, {0, 200 * 1000}};
    REQUIRE(setitimer(ITIMER_REAL, &tv, NULL) == 0, "setitimer");
    /* Some go in (the gate's input and one batch); the next waits. */
    for (; put < 100 && (rc = mpx_graph_put(g, &put, sizeof put)) == 0; put++)
        ;
    CHECK_EQ(rc, MPX_EINTR);
    CHECK(put >= 1 && put < 100, "%lld items went in before the wait", (long long)put);
    CHECK(alarms >= 1, "no alarm");
    REQUIRE(mpx_event_set(open) == 0, "open");
    tally_t t;
    tally_init(&t, 100);
    for (int64_t x = put; x < 100; x++)
        while ((rc = mpx_graph_put(g, &x, sizeof x)) == MPX_EAGAIN || rc == MPX_EINTR)
            take_ready(g, &t);
    CHECK_EQ(mpx_graph_close_input(g), 0);
    mpx_item_t *it;
    while ((it = mpx_graph_next(g)))
        tally_add(&t, it);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(t.n, 100);
    expect_each_index(&t, 1);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&open);
    free(t.by_index);
    sigaction(SIGALRM, &old, NULL);
}

/* Non-blocking: a put never waits; with nothing taken it soon says
 * MPX_EAGAIN, and all arrives once the program takes output. */
static void nonblocking_put(void)
{
    const int64_t n = 5000;
    mpx_graph_t *g = MPX_EZ(mpx_as(2, &Double, NULL));
    REQUIRE(mpx_node_set_capacity(g, 4, 0) == 0, "capacity");
    CHECK_EQ(mpx_graph_set_nonblocking(g, true), 0);
    int64_t x = 0;
    int rc;
    while ((rc = mpx_graph_put(g, &x, sizeof x)) == 0)
        x++;
    CHECK_EQ(rc, MPX_EAGAIN);
    CHECK(x >= 1 && x < 100, "%lld went in before MPX_EAGAIN", (long long)x);
    tally_t t;
    tally_init(&t, n);
    while (x < n) {
        rc = mpx_graph_put(g, &x, sizeof x);
        if (rc == 0) {
            x++;
            continue;
        }
        REQUIRE(rc == MPX_EAGAIN, "put: %s", mpx_strerror(rc));
        mpx_item_t *it;
        if (take_ready(g, &t) == 0 && mpx_graph_poll(g, 100, &it) == 1)
            tally_add(&t, it);
    }
    CHECK_EQ(mpx_graph_close_input(g), 0);
    mpx_item_t *it;
    while ((it = mpx_graph_next(g)))
        tally_add(&t, it);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(t.n, n);
    CHECK_EQ(t.sum, n * (n - 1));
    expect_each_index(&t, 1);
    expect_clean(g);
    mpx_node_destroy(&g);
    free(t.by_index);
}

/* The input meta goes with every put until changed; parts arrive whole. */
static void meta_and_parts(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Pass, NULL));
    CHECK_EQ(mpx_graph_meta_set(g, "mpx.index", "x", 1), MPX_EINVAL);
    CHECK_EQ(mpx_graph_meta_set_str(g, "tag", "first"), 0);
    CHECK_EQ(mpx_graph_put_str(g, "a"), 0);
    CHECK_EQ(mpx_graph_meta_set_i64(g, "n", 7), 0);
    CHECK_EQ(mpx_graph_meta_set_str(g, "tag", "second"), 0);
    mpx_part_t parts[2] = {{"bb", 2}, {"ccc", 3}};
    CHECK_EQ(mpx_graph_put_parts(g, parts, 2), 0);
    mpx_graph_meta_clear(g);
    CHECK_EQ(mpx_graph_meta_del(g, "tag"), MPX_EINVAL);
    CHECK_EQ(mpx_graph_put(g, "d", 1), 0);
    CHECK_EQ(mpx_graph_close_input(g), 0);
    CHECK_EQ(mpx_graph_put(g, "e", 1), MPX_ESTATE);
    mpx_list_t *l = NULL;
    REQUIRE(mpx_graph_collect(g, &l) == 0, "collect: %s", mpx_graph_error(g));
    REQUIRE(mpx_list_size(l) == 3, "%zu items", mpx_list_size(l));
    mpx_item_t *a = mpx_list_at(l, 0), *b = mpx_list_at(l, 1), *c = mpx_list_at(l, 2);
    int64_t v = -1;
    CHECK(strcmp(mpx_item_str(a), "a") == 0, "%s", mpx_item_str(a));
    CHECK(mpx_item_meta_str(a, "tag") && strcmp(mpx_item_meta_str(a, "tag"), "first") == 0,
          "tag of a");
    CHECK(mpx_item_meta_i64(a, "mpx.index", &v) == 0 && v == 0, "index of a: %lld",
          (long long)v);
    CHECK_EQ(mpx_item_parts(b), 2);
    const char *p1 = mpx_item_data(b, 1);
    CHECK(p1 && mpx_item_size(b, 1) == 3 && memcmp(p1, "ccc", 3) == 0, "part 1 of b");
    CHECK(mpx_item_meta_str(b, "tag") && strcmp(mpx_item_meta_str(b, "tag"), "second") == 0,
          "tag of b");
    CHECK(mpx_item_meta_i64(b, "n", &v) == 0 && v == 7, "n of b");
    CHECK(mpx_item_meta_i64(b, "mpx.index", &v) == 0 && v == 1, "index of b");
    CHECK(mpx_item_meta_str(c, "tag") == NULL, "c has no tag after clear");
    CHECK(mpx_item_meta_i64(c, "mpx.index", &v) == 0 && v == 2, "index of c");
    mpx_list_destroy(&l);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* What a put refuses, and when. */
static void refusals(void)
{
    /* No stage takes input: a range feeds the map. */
    mpx_graph_t *g = MPX_EZ(range_node(0, 3), mpx_stage(&Double, NULL));
    CHECK_EQ(mpx_graph_put(g, "x", 1), MPX_ESTATE);
    CHECK_EQ(mpx_graph_close_input(g), MPX_ESTATE);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);

    CHECK_EQ(mpx_graph_put(NULL, "x", 1), MPX_EINVAL);
    g = MPX_EZ(mpx_stage(&Pass, NULL));
    CHECK_EQ(mpx_graph_put(g, NULL, 3), MPX_EINVAL);
    CHECK_EQ(mpx_graph_put_parts(g, NULL, 2), MPX_EINVAL);
    CHECK_EQ(mpx_graph_put(g, NULL, 0), 0); /* an empty item */
    CHECK_EQ(mpx_graph_join(g), 0);         /* closes the input */
    CHECK_EQ(mpx_graph_put(g, "x", 1), MPX_ESTATE);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* An item over the maximum. */
    g = MPX_EZ(mpx_stage(&Pass, NULL));
    REQUIRE(mpx_node_set_max_item(g, 4096) == 0, "max");
    static char big[8192];
    CHECK_EQ(mpx_graph_put(g, big, sizeof big), MPX_ERANGE);
    CHECK_EQ(mpx_graph_put(g, big, 100), 0);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* The fed stage stops reading: puts end with MPX_ESTOPPED, never hang. */
    g = MPX_EZ(mpx_stage(&Quit, NULL));
    REQUIRE(mpx_node_set_capacity(g, 2, 0) == 0, "capacity");
    int rc = 0;
    int64_t x = 0;
    for (; x < 100000 && (rc = mpx_graph_put(g, &x, sizeof x)) == 0; x++)
        ;
    CHECK_EQ(rc, MPX_ESTOPPED);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* The end of input is implied where nothing more could be put. */
static void implied_end_of_input(void)
{
    /* next before any put: runs as a graph without input would. */
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Hello, NULL));
    mpx_item_t *it = mpx_graph_next(g);
    REQUIRE(it, "hello's setup item");
    CHECK_EQ(mpx_item_i64(it), -1);
    CHECK(mpx_graph_next(g) == NULL, "only hello's item");
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* join after puts: the items are processed (and discarded). */
    g = MPX_EZ(mpx_stage(&Pass, NULL));
    for (int64_t x = 0; x < 10; x++)
        CHECK_EQ(mpx_graph_put(g, &x, sizeof x), 0);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* mpx_run of a fed graph. */
    CHECK_EQ(mpx_run(MPX_EZ(mpx_as(2, &Pass, NULL))), 0);
}

/* A stage with setup and process at the start, beside a source in a
 * parallel group: the source runs, the stage puts in setup and then takes
 * the program's input. */
static void sources_beside_fed_stages(void)
{
    mpx_graph_t *g = MPX_EZ(MPX_P(range_node(100, 5), mpx_stage(&Hello, NULL)));
    for (int64_t x = 0; x < 5; x++)
        CHECK_EQ(mpx_graph_put(g, &x, sizeof x), 0);
    CHECK_EQ(mpx_graph_close_input(g), 0);
    int64_t count = 0, sum = drain_sum(g, &count);
    CHECK_EQ(count, 11);
    CHECK_EQ(sum, (100 + 101 + 102 + 103 + 104) + (0 + 1 + 2 + 3 + 4) - 1);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A worker killed by SIGKILL while the program feeds the group: under a
 * retry policy its items go to the others or its replacement, and every
 * input comes out (twice at most, and then only a resent one). */
static void worker_killed_while_fed(void)
{
    const int64_t n = 20000;
    for (int round = 0; round < 3; round++) {
        volatile int *killed = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
                                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        REQUIRE(killed != MAP_FAILED, "mmap");
        crash_args_t ca = {round == 0 ? 10 : round == 1 ? n / 2 : n - 5, killed};
        mpx_graph_t *g = MPX_EZ(mpx_as(3, &Crash, &ca));
        REQUIRE(mpx_node_set_retries(g, 2) == 0, "retries");
        /* Small: the program waits in put when the kill comes. */
        REQUIRE(mpx_node_set_capacity(g, 8, 0) == 0, "capacity");
        tally_t t;
        tally_init(&t, n);
        CHECK_EQ(feed_all(g, n, &t, NULL), 0);
        CHECK(*killed == 1, "round %d: no worker was killed", round);
        CHECK_EQ(t.bad_index, 0);
        int64_t missing = 0, twice = 0;
        for (int64_t i = 0; i < n; i++) {
            missing += t.by_index[i] == 0;
            twice += t.by_index[i] > 1;
        }
        CHECK(missing == 0, "round %d: %lld inputs lost", round, (long long)missing);
        CHECK(twice <= 16, "round %d: %lld inputs came out twice", round, (long long)twice);
        expect_clean(g);
        mpx_node_destroy(&g);
        free(t.by_index);
        munmap((void *)killed, sizeof(int));
    }
}

/* The kill comes while the program waits in poll: the input was put
 * (polling only when a put said MPX_EAGAIN) and closed before the item
 * that kills its worker is reached. */
static void worker_killed_while_polling(void)
{
    const int64_t n = 2000;
    volatile int *killed = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(killed != MAP_FAILED, "mmap");
    crash_args_t ca = {n - 100, killed};
    mpx_graph_t *g = MPX_EZ(mpx_as(2, &Crash, &ca));
    REQUIRE(mpx_node_set_retries(g, 1) == 0, "retries");
    tally_t t;
    tally_init(&t, n);
    mpx_item_t *it;
    int rc;
    for (int64_t x = 0; x < n; x++)
        while ((rc = mpx_graph_put(g, &x, sizeof x)) != 0) {
            REQUIRE(rc == MPX_EAGAIN, "put: %s", mpx_strerror(rc));
            if (mpx_graph_poll(g, 1000, &it) == 1)
                tally_add(&t, it);
        }
    CHECK_EQ(mpx_graph_close_input(g), 0);
    while ((rc = mpx_graph_poll(g, 1000, &it)) != 0) {
        if (rc == 1)
            tally_add(&t, it);
        else
            REQUIRE(rc == MPX_ETIMEDOUT, "poll: %s", mpx_strerror(rc));
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(*killed == 1, "no worker was killed");
    int64_t missing = 0;
    for (int64_t i = 0; i < n; i++)
        missing += t.by_index[i] == 0;
    CHECK_EQ(missing, 0);
    CHECK_EQ(t.bad_index, 0);
    expect_clean(g);
    mpx_node_destroy(&g);
    free(t.by_index);
    munmap((void *)killed, sizeof(int));
}

/* Large inputs (256 KiB) go through the graph's pool, as a stage's
 * large puts do; a worker killed with one in hand loses nothing, and
 * after the run no block is in use. */
static void large_inputs_through_pool(void)
{
    enum { N = 300, SIZE = 256 * 1024 };
    volatile int *killed = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(killed != MAP_FAILED, "mmap");
    crash_args_t ca = {N / 2, killed};
    mpx_graph_t *g = MPX_EZ(mpx_as(2, &ByteSum, &ca));
    REQUIRE(mpx_node_set_retries(g, 1) == 0, "retries");
    REQUIRE(mpx_graph_set_pool(g, 32u << 20) == 0, "pool");
    uint8_t *buf = malloc(SIZE);
    REQUIRE(buf, "memory");
    int64_t *want = calloc(N, sizeof *want);
    REQUIRE(want, "memory");
    tally_t t;
    tally_init(&t, N);
    int64_t *got = calloc(N, sizeof *got);
    REQUIRE(got, "memory");
    mpx_item_t *it;
    int rc;
    for (int64_t x = 0; x < N; x++) {
        for (size_t i = 0; i < SIZE; i++)
            buf[i] = (uint8_t)(x * 7 + i * 13);
        for (size_t i = 0; i < SIZE; i++)
            want[x] += buf[i];
        while ((rc = mpx_graph_put(g, buf, SIZE)) == MPX_EAGAIN)
            while (mpx_graph_poll(g, 0, &it) == 1) {
                int64_t idx = -1;
                if (mpx_item_meta_i64(it, "mpx.index", &idx) == 0 && idx >= 0 && idx < N)
                    got[idx] = mpx_item_i64(it);
                tally_add(&t, it);
            }
        REQUIRE(rc == 0, "put: %s", mpx_strerror(rc));
    }
    CHECK_EQ(mpx_graph_close_input(g), 0);
    while ((it = mpx_graph_next(g))) {
        int64_t idx = -1;
        if (mpx_item_meta_i64(it, "mpx.index", &idx) == 0 && idx >= 0 && idx < N)
            got[idx] = mpx_item_i64(it);
        tally_add(&t, it);
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(*killed == 1, "no worker was killed");
    int64_t wrong = 0, missing = 0;
    for (int64_t x = 0; x < N; x++) {
        missing += t.by_index[x] == 0;
        wrong += got[x] != want[x];
    }
    CHECK_EQ(missing, 0);
    CHECK_EQ(wrong, 0);
    mpx_pool_stats_t ps;
    REQUIRE(mpx_graph_pool_stats(g, &ps) == 0, "pool stats");
    CHECK(ps.peak_bytes >= SIZE, "the inputs did not go through the pool (peak %zu)",
          (size_t)ps.peak_bytes);
    CHECK_EQ(ps.bytes_in_use, 0);
    CHECK_EQ(ps.blocks_in_use, 0);
    expect_clean(g);
    mpx_node_destroy(&g);
    free(buf);
    free(want);
    free(got);
    free(t.by_index);
    munmap((void *)killed, sizeof(int));
}

/* An event loop: non-blocking puts, waiting on the descriptor for room
 * (MPX_DISPATCH_INPUT) and output alike; in the second round a worker
 * is killed while the loop runs, under a retry policy. */
static void event_loop_round(bool kill)
{
    const int64_t n = 20000;
    volatile int *killed = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(killed != MAP_FAILED, "mmap");
    crash_args_t ca = {n / 2, killed};
    mpx_graph_t *g = kill ? MPX_EZ(mpx_as(2, &Crash, &ca), mpx_stage(&Triple, NULL))
                          : MPX_EZ(mpx_as(2, &Triple, NULL));
    REQUIRE(!kill || mpx_node_set_retries(g, 1) == 0, "retries");
    REQUIRE(mpx_node_set_capacity(g, 16, 0) == 0, "capacity");
    CHECK_EQ(mpx_graph_set_nonblocking(g, true), 0);
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "fd: %s", mpx_strerror(fd));
    tally_t t;
    tally_init(&t, n);
    int64_t x = 0, inputs_seen = 0;
    bool closed = false;
    for (;;) {
        while (x < n && mpx_graph_put(g, &x, sizeof x) == 0)
            x++;
        if (x == n && !closed) {
            CHECK_EQ(mpx_graph_close_input(g), 0);
            closed = true;
        }
        struct pollfd p = {fd, POLLIN, 0};
        REQUIRE(poll(&p, 1, 30000) == 1, "the descriptor stayed quiet for 30 s");
        int rc = mpx_graph_dispatch(g);
        REQUIRE(rc >= 0, "dispatch: %s", mpx_strerror(rc));
        if (rc == 0)
            break;
        inputs_seen += (rc & MPX_DISPATCH_INPUT) != 0;
        if (rc & MPX_DISPATCH_OUTPUT) {
            mpx_item_t *it;
            while ((rc = mpx_graph_poll(g, 0, &it)) == 1)
                tally_add(&t, it);
            if (rc == 0)
                break;
        }
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(!kill || *killed == 1, "no worker was killed");
    if (kill) {
        /* Each input's three results, or six for one sent again. */
        int64_t wrong = 0;
        for (int64_t i = 0; i < n; i++)
            wrong += t.by_index[i] != 3 && t.by_index[i] != 6;
        CHECK_EQ(wrong, 0);
        CHECK_EQ(t.bad_index, 0);
    } else {
        CHECK_EQ(t.n, 3 * n);
        expect_each_index(&t, 3);
    }
    CHECK(inputs_seen > 0, "dispatch never reported room for input");
    expect_clean(g);
    mpx_node_destroy(&g);
    free(t.by_index);
    munmap((void *)killed, sizeof(int));
}

static void event_loop_feeds(void) { event_loop_round(false); }
static void worker_killed_in_event_loop(void) { event_loop_round(true); }

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(put_through_parallel_group),
        TEST_CASE(capacity_one_three_per_input),
        TEST_CASE(signal_interrupts_waiting_put),
        TEST_CASE(nonblocking_put),
        TEST_CASE(meta_and_parts),
        TEST_CASE(refusals),
        TEST_CASE(implied_end_of_input),
        TEST_CASE(sources_beside_fed_stages),
        TEST_CASE(worker_killed_while_fed),
        TEST_CASE(worker_killed_while_polling),
        TEST_CASE(large_inputs_through_pool),
        TEST_CASE(event_loop_feeds),
        TEST_CASE(worker_killed_in_event_loop),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
