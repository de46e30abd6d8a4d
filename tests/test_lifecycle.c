/* tests/test_lifecycle.c — initialize in the parent, setup/process/
 * teardown in the child, sources, teardown exactly once after the input
 * drained, puts of zero or many items, mpx_stop from any stage, finalize
 * back in the parent, and what a stage process ends with: the children it
 * owns, and a stop heard while it waits in mpx_poll. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

/* ---- initialize in the parent, seen by the child ------------------------ */

typedef struct seen_state {
    pid_t init_pid;   /* set by initialize */
    int64_t table[4]; /* computed by initialize */
} seen_state_t;

static int initialized, finalized;

static int seen_init(mpx_stage_t *st)
{
    seen_state_t *s = mpx_state(st);
    s->init_pid = getpid();
    for (int i = 0; i < 4; i++)
        s->table[i] = (i + 1) * 1000 + mpx_stage_instance(st);
    initialized++;
    /* (Nothing can be put before fork: a put here fails the run,
     * test_mistakes.c.) */
    return 0;
}

static int seen_process(mpx_stage_t *st, mpx_item_t *it)
{
    seen_state_t *s = mpx_state(st);
    if (getpid() == s->init_pid || getppid() != s->init_pid)
        return mpx_fail(st, "process runs in the wrong process");
    mpx_part_t parts[3] = {{mpx_item_data(it, 0), 8},
                           {&s->table[mpx_item_i64(it) % 4], 8},
                           {&(int64_t){getpid()}, 8}};
    return mpx_put_parts(st, parts, 3);
}

/* setup and teardown run in the child too; teardown reports what it saw. */
static int seen_setup(mpx_stage_t *st)
{
    seen_state_t *s = mpx_state(st);
    return getpid() != s->init_pid && getppid() == s->init_pid
               ? 0
               : mpx_fail(st, "setup runs in the wrong process");
}

static int seen_teardown(mpx_stage_t *st)
{
    seen_state_t *s = mpx_state(st);
    if (getpid() == s->init_pid || getppid() != s->init_pid)
        return mpx_fail(st, "teardown runs in the wrong process");
    return mpx_put_str(st, "teardown in child");
}

static void seen_finalize(mpx_stage_t *st)
{
    seen_state_t *s = mpx_state(st);
    if (s->init_pid == getpid())
        finalized++;
}

static const mpx_stage_def_t Seen = {
    .name = "seen", .state_size = sizeof(seen_state_t), .initialize = seen_init,
    .setup = seen_setup, .process = seen_process, .teardown = seen_teardown,
    .finalize = seen_finalize};

static void initialize_in_parent(void)
{
    initialized = finalized = 0;
    mpx_graph_t *g = MPX_EZ(range_node(0, 200), mpx_as(3, &Seen, NULL));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(initialized, 3);
    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        mpx_instance_info_t info;
        REQUIRE(mpx_graph_instance_info(g, (size_t)i + 1, &info) == 0, "no info");
        pids[i] = info.pid;
    }
    int64_t n = 0, teardowns = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t v, t, pid;
        if (mpx_item_parts(it) == 1 && strcmp(mpx_item_str(it), "teardown in child") == 0) {
            teardowns++;
            continue;
        }
        REQUIRE(mpx_item_parts(it) == 3, "parts");
        CHECK_EQ(mpx_item_get_i64(it, 0, &v), 0);
        CHECK_EQ(mpx_item_get_i64(it, 1, &t), 0);
        CHECK_EQ(mpx_item_get_i64(it, 2, &pid), 0);
        int inst = pid == pids[0] ? 0 : pid == pids[1] ? 1 : pid == pids[2] ? 2 : -1;
        CHECK(inst >= 0, "item from unknown pid %lld", (long long)pid);
        CHECK_EQ(t, (v % 4 + 1) * 1000 + inst);
        CHECK(pid != getpid(), "process ran in the parent");
        n++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(n, 200);
    CHECK_EQ(teardowns, 3);
    CHECK_EQ(finalized, 3);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- setup / process / teardown order and counts ------------------------ */

typedef struct order_state {
    int64_t processed;
    int setups, teardowns;
} order_state_t;

static int order_setup(mpx_stage_t *st)
{
    order_state_t *s = mpx_state(st);
    s->setups++;
    return mpx_put_str(st, "setup");
}

static int order_process(mpx_stage_t *st, mpx_item_t *it)
{
    order_state_t *s = mpx_state(st);
    if (s->teardowns)
        return mpx_fail(st, "process after teardown");
    if (mpx_item_size(it, 0) == 8)
        s->processed++;
    /* Forwarded, so that an item processed after teardown would show. */
    return mpx_put_item(st, it);
}

static int order_teardown(mpx_stage_t *st)
{
    order_state_t *s = mpx_state(st);
    s->teardowns++;
    /* Teardown may still put: report what this instance saw. */
    mpx_part_t parts[3] = {{"teardown", 8}, {&s->processed, 8}, {&(int64_t){s->setups}, 8}};
    return mpx_put_parts(st, parts, 3);
}

static const mpx_stage_def_t Order = {
    .name = "order", .state_size = sizeof(order_state_t), .setup = order_setup,
    .process = order_process, .teardown = order_teardown};

/* Three parallel sources feed one stage: its setup item comes first, its
 * teardown runs once, after all three ended and it processed all 3 x 500
 * items, and its teardown item is the last it sends: every input it
 * forwards arrives before it. */
static void teardown_once_after_drain(void)
{
    mpx_graph_t *g = MPX_EZ(MPX_P(range_node(0, 500), range_node(1000, 500), range_node(5000, 500)),
                            mpx_stage(&Order, NULL));
    int64_t teardowns = 0, setups = 0, after_teardown = 0, forwarded = 0, sum = 0, other = 0;
    int64_t pos = 0, setup_pos = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        pos++;
        if (mpx_item_parts(it) == 3) {
            int64_t processed, nsetup;
            CHECK_EQ(mpx_item_get_i64(it, 1, &processed), 0);
            CHECK_EQ(mpx_item_get_i64(it, 2, &nsetup), 0);
            CHECK_EQ(processed, 1500);
            CHECK_EQ(nsetup, 1);
            teardowns++;
            continue;
        }
        after_teardown += teardowns > 0;
        if (mpx_item_parts(it) == 1 && mpx_item_size(it, 0) == 8) {
            forwarded++;
            sum += mpx_item_i64(it);
        } else if (strcmp(mpx_item_str(it), "setup") == 0) {
            setups++;
            setup_pos = pos;
        } else {
            other++;
        }
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(setups, 1);
    CHECK_EQ(setup_pos, 1);
    CHECK_EQ(teardowns, 1);
    CHECK_EQ(forwarded, 1500);
    CHECK_EQ(sum, 124750 + (500 * 1000 + 124750) + (500 * 5000 + 124750));
    CHECK_EQ(other, 0);
    CHECK_EQ(after_teardown, 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A source that returns from setup without mpx_stop still ends. */
static int quiet_setup(mpx_stage_t *st)
{
    for (int i = 0; i < 10; i++)
        if (mpx_put_i64(st, i) != 0)
            return -1;
    return 0;
}
static const mpx_stage_def_t Quiet = {.name = "quiet", .setup = quiet_setup};

static void source_ends_by_returning(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Quiet, NULL), mpx_stage(&Inc, NULL));
    int64_t n;
    CHECK_EQ(drain_sum(g, &n), 55);
    CHECK_EQ(n, 10);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* x -> x % 4 copies of x (0 to 3 puts per input). */
static int copies(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t x = mpx_item_i64(it);
    for (int64_t k = 0; k < x % 4; k++) {
        int rc = mpx_put_i64(st, x);
        if (rc != 0)
            return rc;
    }
    return 0;
}
static const mpx_stage_def_t Copies = {.name = "copies", .process = copies};

static void puts_zero_one_or_many(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 1000), mpx_as(2, &Copies, NULL), mpx_stage(&Copies, NULL));
    int64_t n, want_n = 0, want_sum = 0;
    int64_t sum = drain_sum(g, &n);
    for (int64_t x = 0; x < 1000; x++) {
        int64_t c = (x % 4) * (x % 4);
        want_n += c;
        want_sum += c * x;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, want_n);
    CHECK_EQ(sum, want_sum);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A stage with only setup in the middle passes its input through. */
static int hello_setup(mpx_stage_t *st) { return mpx_put_i64(st, 1000000); }
static const mpx_stage_def_t Hello = {.name = "hello", .setup = hello_setup};

static void setup_only_stage_passes_items(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 100), mpx_stage(&Hello, NULL));
    int64_t n;
    CHECK_EQ(drain_sum(g, &n), 4950 + 1000000);
    CHECK_EQ(n, 101);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- mpx_stop outside sources ------------------------------------------- */

typedef struct head_state {
    int64_t seen;
} head_state_t;

/* Passes the first `limit` items, then stops itself. */
static int head_process(mpx_stage_t *st, mpx_item_t *it)
{
    head_state_t *s = mpx_state(st);
    int rc = mpx_put_item(st, it);
    if (rc == 0 && ++s->seen == *(const int64_t *)mpx_args(st))
        mpx_stop(st);
    return rc;
}
static int head_teardown(mpx_stage_t *st)
{
    head_state_t *s = mpx_state(st);
    return mpx_put_i64(st, -s->seen); /* teardown still runs, once */
}
static const mpx_stage_def_t Head = {.name = "head", .args_size = sizeof(int64_t),
                                     .state_size = sizeof(head_state_t),
                                     .process = head_process, .teardown = head_teardown};

/* endless -> head(10): like `yes | head`, the graph ends. */
static void stop_ends_endless_source(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_stage(&Inc, NULL),
                            mpx_stage(&Head, &(int64_t){10}));
    int64_t n = 0, sum = 0, marker = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t v = mpx_item_i64(it);
        if (v < 0)
            marker = v;
        else {
            sum += v;
            n++;
        }
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 10);
    CHECK_EQ(sum, 55);
    CHECK_EQ(marker, -10);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* One of two parallel workers stops after 5 items: the run goes on with
 * the other, and what was sent to the stopped one is counted as dropped. */
static void stop_one_parallel_worker(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 20000),
                            MPX_P(mpx_stage(&Head, &(int64_t){5}), mpx_stage(&Inc, NULL)));
    int64_t n = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g)))
        n += mpx_item_i64(it) >= 0;
    CHECK_EQ(mpx_graph_join(g), 0);
    mpx_instance_info_t head, inc;
    REQUIRE(mpx_graph_instance_info(g, 1, &head) == 0, "info");
    REQUIRE(mpx_graph_instance_info(g, 2, &inc) == 0, "info");
    CHECK_EQ(head.items_in, 5);
    CHECK_EQ(head.items_in + head.items_dropped + inc.items_in, 20000);
    CHECK_EQ(n, 5 + (int64_t)inc.items_in);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A stage that stops at its first item closes its input; the source is
 * stopped in turn; teardown of the stopped stage still runs. */
static void stop_at_first_item(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_stage(&Head, &(int64_t){1}));
    int64_t n;
    CHECK_EQ(drain_sum(g, &n), -1);
    CHECK_EQ(n, 2);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A broadcast branch that stops leaves the other branch running. */
static void stop_one_broadcast_branch(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 5000),
                            MPX_B(mpx_stage(&Head, &(int64_t){3}), mpx_stage(&Inc, NULL)));
    int64_t pos = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g)))
        pos += mpx_item_i64(it) >= 0;
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(pos, 5003);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Passes one item in `*(int64_t *)args`. */
static int sparse(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t every = *(const int64_t *)mpx_args(st);
    return mpx_item_i64(it) % every == every - 1 ? mpx_put_item(st, it) : 0;
}
static const mpx_stage_def_t Sparse = {.name = "sparse", .args_size = sizeof(int64_t),
                                       .process = sparse};

/* A stage that puts almost nothing between an endless source and a stage
 * that stops still learns of the stop (it never runs out of credit): the
 * graph ends rather than running for the ten billion items the filter
 * would need to fill its window. */
static void stop_through_sparse_filter(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_stage(&Sparse, &(int64_t){1000000}),
                            mpx_stage(&Head, &(int64_t){1}));
    int64_t n;
    drain_sum(g, &n);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 2);
    mpx_instance_info_t src;
    CHECK_EQ(mpx_graph_instance_info(g, 0, &src), 0);
    printf("the source put %llu items before it was stopped\n", src.items_out);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Once everything downstream has stopped, a stage's own failure (with
 * mpx_fail) is still a failure; a plain -1 after a refused put is not.
 * The stage fails in teardown, which runs after the stop however the
 * stage learnt of it (a refused put, or its producer's periodic look). */
static int quiet_on_refusal(mpx_stage_t *st, mpx_item_t *it)
{
    return mpx_put_item(st, it) == 0 ? 0 : -1;
}
static int fail_in_teardown(mpx_stage_t *st)
{
    return mpx_stopping(st) ? mpx_fail(st, "cannot hand on what is left") : 0;
}
static const mpx_stage_def_t FailWhenRefused = {.name = "refused", .process = quiet_on_refusal,
                                                .teardown = fail_in_teardown};

static void failure_after_downstream_stopped(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_stage(&FailWhenRefused, NULL),
                            mpx_stage(&Head, &(int64_t){3}));
    CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
    CHECK(strstr(mpx_graph_error(g), "teardown failed: cannot hand on what is left"), "%s",
          mpx_graph_error(g));
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- failures in initialize and setup ----------------------------------- */

static int bad_init(mpx_stage_t *st)
{
    return mpx_stage_instance(st) == 1 ? mpx_fail(st, "no table for %d", 1) : 0;
}
static void count_final(mpx_stage_t *st)
{
    (void)st;
    finalized++;
}
static const mpx_stage_def_t BadInit = {.name = "badinit", .initialize = bad_init,
                                        .process = copies, .finalize = count_final};

static void initialize_fails(void)
{
    finalized = 0;
    mpx_graph_t *g = MPX_EZ(range_node(0, 10), mpx_as(3, &BadInit, NULL));
    CHECK_EQ(mpx_graph_start(g), MPX_ESTAGE);
    const char *msg = mpx_graph_error(g);
    CHECK(strstr(msg, "stage 'badinit' instance 1 of 3: initialize failed: no table for 1"),
          "%s", msg);
    CHECK_EQ(finalized, 1); /* only the instance whose initialize succeeded */
    CHECK_EQ(mpx_graph_join(g), MPX_ESTAGE);
    CHECK(no_children_left(0), "forked after a failed initialize");
    CHECK_EQ(dir_entries(harness_tmpdir()), 0);
    mpx_node_destroy(&g);
}

/* Fails its setup, but only once the source is at its first put (an
 * event the source sets), so that the put has had its chance to go
 * through before start learns of the failure. */
static int bad_setup(mpx_stage_t *st)
{
    if (mpx_event_wait(*(mpx_event_t *const *)mpx_args(st), 30000) != 1)
        return mpx_fail(st, "the source never reached its first put");
    return mpx_fail(st, "cannot open %s", "/nonexistent");
}
static const mpx_stage_def_t BadSetup = {.name = "badsetup", .args_size = sizeof(mpx_event_t *),
                                         .setup = bad_setup, .process = copies};

/* Counts, in memory shared with the test, the puts that returned. */
static volatile int64_t *puts_done;
static int counting_setup(mpx_stage_t *st)
{
    mpx_event_set(*(mpx_event_t *const *)mpx_args(st));
    for (;;) {
        int rc = mpx_put_i64(st, 1);
        if (rc != 0)
            return rc;
        __atomic_add_fetch(puts_done, 1, __ATOMIC_SEQ_CST);
    }
}
static const mpx_stage_def_t Counting = {.name = "counting", .args_size = sizeof(mpx_event_t *),
                                         .setup = counting_setup};

static void setup_fails(void)
{
    puts_done = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(puts_done != MAP_FAILED, "mmap");
    mpx_event_t *at_put = mpx_event_new();
    REQUIRE(at_put, "mpx_event_new: %s", strerror(errno));
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Counting, &at_put), mpx_stage(&Inc, NULL),
                            mpx_stage(&BadSetup, &at_put));
    CHECK_EQ(mpx_graph_start(g), MPX_ESTAGE);
    const char *msg = mpx_graph_error(g);
    CHECK(strstr(msg, "stage 'badsetup'") && strstr(msg, "setup failed: cannot open /nonexistent"),
          "%s", msg);
    /* No item flowed: the source's first put waited for a go that never
     * came, because start saw the failed setup first. */
    CHECK_EQ(*puts_done, 0);
    CHECK(mpx_graph_next(g) == NULL, "items after a failed start");
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&at_put);
    munmap((void *)puts_done, 4096);
}

/* ---- what a stage process ends with: its children, its own waits ------- */

/* Shared with the test: the pid of the child a stage forked. */
static volatile pid_t *forked_pid;

/* A child of the stage that waits to be ended; `deaf` ignores SIGTERM.
 * Forked from a process with zmq's threads: only async-signal-safe calls. */
static pid_t fork_waiter(bool deaf)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (deaf) {
            struct sigaction ign = {.sa_handler = SIG_IGN};
            sigaction(SIGTERM, &ign, NULL);
        }
        for (;;)
            pause();
    }
    return pid;
}

/* Forks a child, owns it, says so (the event), then puts without end:
 * a stop reaches it inside a put. */
static int owner_setup(mpx_stage_t *st)
{
    pid_t pid = fork_waiter(false);
    if (pid < 0)
        return mpx_fail(st, "fork: %s", strerror(errno));
    int rc = mpx_own_child(st, pid);
    if (rc != 0)
        return mpx_fail(st, "mpx_own_child: %s", mpx_strerror(rc));
    *forked_pid = pid;
    mpx_event_set(*(mpx_event_t *const *)mpx_args(st));
    for (int64_t i = 0;; i++)
        if ((rc = mpx_put_i64(st, i)) != 0)
            return rc;
}
static const mpx_stage_def_t Owner = {.name = "owner", .args_size = sizeof(mpx_event_t *),
                                      .setup = owner_setup};

/* The child is gone, reaped before join returned: nothing came back to
 * the harness (a subreaper), running or as a zombie. */
static void expect_child_reaped(pid_t pid)
{
    CHECK(pid > 0, "no child was forked");
    CHECK(kill(pid, 0) != 0 && errno == ESRCH, "child %d still exists", (int)pid);
    CHECK(no_children_left(0), "a process came back to the harness");
}

static void map_forked_pid(void)
{
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED, "mmap");
    forked_pid = m;
}

/* A stage stopped by the application ends the child it owns, and reaps
 * it, before its process exits. */
static void owned_child_ends_on_stop(void)
{
    map_forked_pid();
    mpx_event_t *owned = mpx_event_new();
    REQUIRE(owned, "mpx_event_new: %s", strerror(errno));
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Owner, &owned), mpx_stage(&Drop, NULL));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    REQUIRE(mpx_event_wait(owned, 30000) == 1, "the stage never owned its child");
    CHECK_EQ(mpx_graph_stop(g), 0);
    CHECK_EQ(mpx_graph_join(g), MPX_ESTOPPED);
    expect_child_reaped(*forked_pid);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&owned);
    munmap((void *)forked_pid, 4096);
}

/* A source that owns a child deaf to SIGTERM and simply ends: its
 * process leaves at the end of the run, and the child is killed and
 * reaped first all the same. */
static int deaf_owner_setup(mpx_stage_t *st)
{
    pid_t pid = fork_waiter(true);
    if (pid < 0)
        return mpx_fail(st, "fork: %s", strerror(errno));
    int rc = mpx_own_child(st, pid);
    if (rc != 0)
        return mpx_fail(st, "mpx_own_child: %s", mpx_strerror(rc));
    *forked_pid = pid;
    return mpx_put_i64(st, 1);
}
static const mpx_stage_def_t DeafOwner = {.name = "deafowner", .setup = deaf_owner_setup};

static void owned_child_ends_at_the_end(void)
{
    map_forked_pid();
    mpx_graph_t *g = MPX_EZ(mpx_stage(&DeafOwner, NULL), mpx_stage(&Inc, NULL));
    int64_t n;
    CHECK_EQ(drain_sum(g, &n), 2);
    CHECK_EQ(n, 1);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_child_reaped(*forked_pid);
    expect_clean(g);
    mpx_node_destroy(&g);
    munmap((void *)forked_pid, 4096);
}

/* Puts an item (so that mpx_graph_start, which waits for every setup to
 * finish or put, returns), says it is about to wait (the event), then
 * waits in mpx_poll for a pipe nobody writes to, as Exec waits for a
 * silent command. */
static int poller_setup(mpx_stage_t *st)
{
    int p[2];
    if (pipe(p) != 0)
        return mpx_fail(st, "pipe: %s", strerror(errno));
    int put = mpx_put_i64(st, 1);
    if (put != 0)
        return put;
    mpx_event_set(*(mpx_event_t *const *)mpx_args(st));
    struct pollfd fd = {p[0], POLLIN, 0};
    int rc = mpx_poll(st, &fd, 1, -1);
    return mpx_fail(st, "mpx_poll returned %d with nothing written", rc);
}
static const mpx_stage_def_t Poller = {.name = "poller", .args_size = sizeof(mpx_event_t *),
                                       .setup = poller_setup};

/* A stop reaches a stage waiting in mpx_poll: its process leaves as told
 * (exit status 0), rather than being killed when the parent's grace runs
 * out, as one waiting in poll(2) would be. */
static void stop_reaches_mpx_poll(void)
{
    mpx_event_t *waiting = mpx_event_new();
    REQUIRE(waiting, "mpx_event_new: %s", strerror(errno));
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Poller, &waiting), mpx_stage(&Drop, NULL));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    REQUIRE(mpx_event_wait(waiting, 30000) == 1, "the stage never came to its wait");
    CHECK_EQ(mpx_graph_stop(g), 0);
    CHECK_EQ(mpx_graph_join(g), MPX_ESTOPPED);
    mpx_instance_info_t info;
    REQUIRE(mpx_graph_instance_info(g, 0, &info) == 0, "info");
    CHECK(info.exited && WIFEXITED(info.wait_status) && WEXITSTATUS(info.wait_status) == 0,
          "the stage process ended with wait status %#x", (unsigned)info.wait_status);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&waiting);
}

/* What mpx_poll says, and what mpx_own_child refuses, checked in a stage
 * process (the message says which check failed). */
static int calls_setup(mpx_stage_t *st)
{
    int p[2];
    if (pipe(p) != 0)
        return mpx_fail(st, "pipe: %s", strerror(errno));
    struct pollfd fd = {p[0], POLLIN, 0};
    int rc = mpx_poll(st, &fd, 1, 0);
    if (rc != 0)
        return mpx_fail(st, "an empty pipe, no wait: %d", rc);
    if ((rc = mpx_poll(st, &fd, 1, 20)) != 0)
        return mpx_fail(st, "an empty pipe, 20 ms: %d", rc);
    if (write(p[1], "x", 1) != 1)
        return mpx_fail(st, "write: %s", strerror(errno));
    if ((rc = mpx_poll(st, &fd, 1, -1)) != 1 || fd.revents != POLLIN)
        return mpx_fail(st, "a byte to read: %d, revents %#x", rc, (unsigned)fd.revents);
    char c;
    if (read(p[0], &c, 1) != 1)
        return mpx_fail(st, "read: %s", strerror(errno));
    close(p[1]);
    if ((rc = mpx_poll(st, &fd, 1, -1)) != 1 || !(fd.revents & POLLHUP))
        return mpx_fail(st, "the writer closed: %d, revents %#x", rc, (unsigned)fd.revents);
    close(p[0]);
    if ((rc = mpx_poll(st, NULL, 0, 10)) != 0)
        return mpx_fail(st, "no descriptor, 10 ms: %d", rc);
    if ((rc = mpx_poll(st, NULL, 1, 0)) != MPX_EINVAL)
        return mpx_fail(st, "NULL fds: %d", rc);

    if ((rc = mpx_own_child(st, getppid())) != MPX_EINVAL)
        return mpx_fail(st, "owning the parent: %d", rc);
    if ((rc = mpx_own_child(st, 0)) != MPX_EINVAL)
        return mpx_fail(st, "owning pid 0: %d", rc);
    if ((rc = mpx_disown_child(st, getppid())) != MPX_EINVAL)
        return mpx_fail(st, "disowning what is not owned: %d", rc);
    pid_t kids[9];
    for (int i = 0; i < 9; i++)
        if ((kids[i] = fork_waiter(false)) < 0)
            return mpx_fail(st, "fork: %s", strerror(errno));
    for (int i = 0; i < 8; i++)
        if ((rc = mpx_own_child(st, kids[i])) != 0 || (rc = mpx_own_child(st, kids[i])) != 0)
            return mpx_fail(st, "owning child %d (twice): %d", i, rc);
    if ((rc = mpx_own_child(st, kids[8])) != MPX_ERANGE)
        return mpx_fail(st, "a ninth child: %d", rc);
    /* One disowned is the stage's own to end; the other eight the
     * runtime's, when the process leaves. */
    if ((rc = mpx_disown_child(st, kids[0])) != 0 || (rc = mpx_own_child(st, kids[8])) != 0)
        return mpx_fail(st, "disowning one to own another: %d", rc);
    kill(kids[0], SIGKILL);
    waitpid(kids[0], NULL, 0);
    return mpx_put_i64(st, 1);
}
static int calls_initialize(mpx_stage_t *st)
{
    struct pollfd fd = {0, POLLIN, 0};
    int rc = mpx_poll(st, &fd, 1, 0);
    if (rc != MPX_ESTATE)
        return mpx_fail(st, "mpx_poll in initialize: %d", rc);
    if ((rc = mpx_own_child(st, getpid())) != MPX_ESTATE)
        return mpx_fail(st, "mpx_own_child in initialize: %d", rc);
    return 0;
}
static const mpx_stage_def_t Calls = {.name = "calls", .initialize = calls_initialize,
                                      .setup = calls_setup};

static void poll_and_own_calls(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Calls, NULL), mpx_stage(&Inc, NULL));
    int64_t n;
    CHECK_EQ(drain_sum(g, &n), 2);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK(no_children_left(0), "a process came back to the harness");
    expect_clean(g);
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(initialize_in_parent),
        TEST_CASE(teardown_once_after_drain),
        TEST_CASE(source_ends_by_returning),
        TEST_CASE(puts_zero_one_or_many),
        TEST_CASE(setup_only_stage_passes_items),
        TEST_CASE(stop_ends_endless_source),
        TEST_CASE(stop_one_parallel_worker),
        TEST_CASE(stop_at_first_item),
        TEST_CASE(stop_one_broadcast_branch),
        TEST_CASE(stop_through_sparse_filter),
        TEST_CASE(failure_after_downstream_stopped),
        TEST_CASE(initialize_fails),
        TEST_CASE(setup_fails),
        TEST_CASE(owned_child_ends_on_stop),
        TEST_CASE(owned_child_ends_at_the_end),
        TEST_CASE(stop_reaches_mpx_poll),
        TEST_CASE(poll_and_own_calls),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
