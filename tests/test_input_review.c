/* tests/test_input_review.c — cases found in a review of the program's
 * input (mpx_graph_put & co.) and of the pool map (mpx/imap.h): each one
 * failed before the fix that came with it, or shows a limit described in
 * the review.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

/* ---- stages ------------------------------------------------------------- */

static int pass_process(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }
static const mpx_stage_def_t Pass = {.name = "pass", .process = pass_process};

/* Blocks on item `id` until `open` is set; spins `spin` rounds on every
 * item first (a slow stage). */
typedef struct gate_args {
    mpx_event_t *open;
    int64_t id;
    long spin;
} gate_args_t;
static int gate_process(mpx_stage_t *st, mpx_item_t *it)
{
    const gate_args_t *a = mpx_args(st);
    for (long i = 0; i < a->spin; i++)
        __asm__ volatile("" ::: "memory"); /* a loop the compiler keeps */
    /* What it put before goes out before it blocks. */
    if (mpx_item_i64(it) == a->id && (mpx_flush(st) < 0 || mpx_event_wait(a->open, -1) != 1))
        return mpx_fail(st, "waiting for the gate failed");
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Gate = {.name = "gate", .args_size = sizeof(gate_args_t),
                                     .process = gate_process};

/* x -> x.  The call on x == 0 waits until `*count` calls on other items
 * were made (the pool's other workers get on meanwhile); `*count` lives
 * in shared memory, `open` is set by the call that reaches it. */
typedef struct late_args {
    mpx_event_t *open;
    volatile int64_t *count;
    int64_t after;
} late_args_t;
static int late_process(mpx_stage_t *st, mpx_item_t *it)
{
    const late_args_t *a = mpx_args(st);
    int64_t x = mpx_item_i64(it);
    if (x == 0 && mpx_event_wait(a->open, -1) != 1)
        return mpx_fail(st, "waiting failed");
    if (x != 0 && __sync_add_and_fetch(a->count, 1) == a->after && mpx_event_set(a->open) != 0)
        return mpx_fail(st, "setting the event failed");
    return mpx_put_i64(st, x);
}
static const mpx_stage_def_t Late = {.name = "late", .args_size = sizeof(late_args_t),
                                     .process = late_process};

/* Passes its first input on, then stops reading. */
static int quit_process(mpx_stage_t *st, mpx_item_t *it)
{
    int rc = mpx_put_item(st, it);
    return rc ? rc : mpx_stop(st);
}
static const mpx_stage_def_t Quit = {.name = "quit", .process = quit_process};

/* x -> x with meta "branch" = tag; dies by SIGKILL on x == kill[j], the
 * first time any process of the stage gets there (killed[j] in shared
 * memory). */
#define NKILL 3
typedef struct crashy_args {
    int64_t tag;
    int64_t kill[NKILL];
    volatile int *killed;
} crashy_args_t;
static int crashy_process(mpx_stage_t *st, mpx_item_t *it)
{
    const crashy_args_t *a = mpx_args(st);
    int64_t x = mpx_item_i64(it);
    for (int j = 0; j < NKILL; j++)
        if (x == a->kill[j] && __sync_bool_compare_and_swap(&a->killed[j], 0, 1))
            raise(SIGKILL);
    int rc = mpx_meta_set_i64(st, "branch", a->tag);
    return rc ? rc : mpx_put_i64(st, x);
}
static const mpx_stage_def_t Crashy = {.name = "crashy", .args_size = sizeof(crashy_args_t),
                                       .process = crashy_process};

/* x -> `*(int64_t *)args` items x (0: none: a filter of everything), each
 * padded to `pad` bytes. */
typedef struct many_args {
    int64_t k;
    size_t pad;
} many_args_t;
static int many_process(mpx_stage_t *st, mpx_item_t *it)
{
    const many_args_t *a = mpx_args(st);
    int64_t x = mpx_item_i64(it);
    char buf[4096] = {0};
    memcpy(buf, &x, sizeof x);
    for (int64_t j = 0; j < a->k; j++) {
        int rc = mpx_put(st, buf, a->pad > sizeof x ? a->pad : sizeof x);
        if (rc != 0)
            return rc;
    }
    return 0;
}
static const mpx_stage_def_t Many = {.name = "many", .args_size = sizeof(many_args_t),
                                     .process = many_process};

/* Puts `*(int64_t *)args` items in setup, then passes its input on. */
static int chatty_setup(mpx_stage_t *st)
{
    for (int64_t j = 0; j < *(const int64_t *)mpx_args(st); j++) {
        int rc = mpx_put_i64(st, -1);
        if (rc != 0)
            return rc;
    }
    return 0;
}
static const mpx_stage_def_t Chatty = {.name = "chatty", .args_size = sizeof(int64_t),
                                       .setup = chatty_setup, .process = pass_process};

/* x -> `*(int64_t *)args` items x, each with meta "idled": whether the
 * stage had waited for input (its idle callback ran) before it took x. */
typedef struct idler_state {
    bool idled;
} idler_state_t;
static int idler_idle(mpx_stage_t *st)
{
    ((idler_state_t *)mpx_state(st))->idled = true;
    return 0;
}
static int idler_process(mpx_stage_t *st, mpx_item_t *it)
{
    idler_state_t *s = mpx_state(st);
    int rc = mpx_meta_set_i64(st, "idled", s->idled);
    s->idled = false;
    for (int64_t j = 0; rc == 0 && j < *(const int64_t *)mpx_args(st); j++)
        rc = mpx_put_i64(st, mpx_item_i64(it));
    return rc;
}
static const mpx_stage_def_t Idler = {.name = "idler", .args_size = sizeof(int64_t),
                                      .state_size = sizeof(idler_state_t),
                                      .idle = idler_idle, .process = idler_process};

/* ---- helpers ------------------------------------------------------------ */

/* Times each input index came out (outputs without one count as bad). */
typedef struct tally {
    int64_t n, nindex, bad;
    int64_t *by_index;
} tally_t;

static void tally_init(tally_t *t, int64_t nindex)
{
    memset(t, 0, sizeof *t);
    t->nindex = nindex;
    t->by_index = calloc((size_t)nindex + 1, sizeof *t->by_index);
    REQUIRE(t->by_index, "out of memory");
}

static void tally_add(tally_t *t, const mpx_item_t *it)
{
    int64_t idx = -1;
    t->n++;
    if (mpx_item_meta_i64(it, "mpx.index", &idx) != 0 || idx < 0 || idx >= t->nindex)
        t->bad++;
    else
        t->by_index[idx]++;
}

/* Indexes that did not come out exactly `times` times. */
static int64_t tally_wrong(const tally_t *t, int64_t times)
{
    int64_t wrong = t->bad;
    for (int64_t i = 0; i < t->nindex; i++)
        wrong += t->by_index[i] != times;
    return wrong;
}

/* A case body run in a child of the case, so that a hang is reported as
 * one (and the case goes on to clean up) instead of running into the
 * suite's time limit.  The child exits 0 when its body passed. */
static bool ran_to_end(void (*fn)(void *), void *arg, double seconds, const char *what)
{
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        alarm((unsigned)seconds + 30); /* never outlive the case */
        fn(arg);
        _exit(0);
    }
    int status = 0;
    bool ended = wait_child(pid, &status, seconds);
    if (!ended) {
        kill(pid, SIGKILL);
        (void)wait_child(pid, &status, 10);
    }
    CHECK(ended, "%s: still waiting after %.0f s (a hang)", what, seconds);
    if (ended && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fprintf(stderr, "%s: the body ended with %s %d\n", what,
                WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return ended && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ---- cases -------------------------------------------------------------- */

/* While the input's batch waits for credit that only the graph can give
 * (the only stage is stuck on its first item), nothing is for the program:
 * the descriptor stays quiet.  It used to be armed to fire at once (the
 * batch "due" since it could not go), so an event loop spun at full speed
 * for as long as the graph was slower than its input. */
static void descriptor_quiet_while_input_waits(void)
{
    mpx_event_t *open = mpx_event_new();
    REQUIRE(open, "event");
    gate_args_t ga = {open, 0, 0};
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Gate, &ga));
    REQUIRE(mpx_node_set_capacity(g, 1, 0) == 0, "capacity");
    CHECK_EQ(mpx_graph_set_nonblocking(g, true), 0);
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "fd: %s", mpx_strerror(fd));
    int64_t x = 0;
    int rc;
    while ((rc = mpx_graph_put(g, &x, sizeof x)) == 0)
        x++;
    CHECK_EQ(rc, MPX_EAGAIN);
    /* Serve the descriptor as an event loop would, a bounded number of
     * times, putting when told of room: each wake-up must have a reason,
     * and with the stage stuck only a few items can go in. */
    int woken = 0, idle = 0;
    for (int i = 0; i < 20; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) != 1)
            continue;
        woken++;
        rc = mpx_graph_dispatch(g);
        REQUIRE(rc > 0, "dispatch: %d", rc);
        idle += rc == MPX_DISPATCH_IDLE;
        if (rc & MPX_DISPATCH_INPUT)
            while (mpx_graph_put(g, &x, sizeof x) == 0)
                x++;
    }
    CHECK(woken <= 8,
          "the descriptor woke the program %d times of 20 (%d for nothing) while the only "
          "stage was stuck (%lld items in)", woken, idle, (long long)x);
    REQUIRE(mpx_event_set(open) == 0, "open");
    tally_t t;
    tally_init(&t, 1000);
    mpx_item_t *it;
    for (; x < 1000; x++)
        while ((rc = mpx_graph_put(g, &x, sizeof x)) == MPX_EAGAIN)
            if (mpx_graph_poll(g, 100, &it) == 1)
                tally_add(&t, it);
    CHECK_EQ(mpx_graph_close_input(g), 0);
    CHECK_EQ(mpx_graph_set_nonblocking(g, false), 0);
    while ((it = mpx_graph_next(g)))
        tally_add(&t, it);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(tally_wrong(&t, 1), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&open);
    free(t.by_index);
}

/* The documented loop, "or wait in poll": a put that says MPX_EAGAIN is
 * followed by mpx_graph_poll(g, -1), and the put is tried again while the
 * program still holds the item that poll returned.  With a recoverable fed
 * stage, its grants to the program depend on the output's confirmations,
 * which the parent withheld during the put's wait while it held an item:
 * the put waited for ever. */
static void put_while_holding_body(void *arg)
{
    const int64_t n = *(const int64_t *)arg;
    mpx_node_t *w = mpx_stage(&Pass, NULL);
    mpx_graph_t *g = MPX_EZ(w);
    if (mpx_node_set_retries(w, 1) != 0 || mpx_node_set_capacity(w, 2, 0) != 0)
        _exit(2);
    tally_t t;
    tally_init(&t, n);
    for (int64_t x = 0; x < n; x++) {
        int rc;
        while ((rc = mpx_graph_put(g, &x, sizeof x)) == MPX_EAGAIN) {
            mpx_item_t *it;
            if (mpx_graph_poll(g, -1, &it) == 1)
                tally_add(&t, it); /* held until the next call that takes */
        }
        if (rc != 0)
            _exit(3);
    }
    if (mpx_graph_close_input(g) != 0)
        _exit(4);
    mpx_item_t *it;
    while ((it = mpx_graph_next(g)))
        tally_add(&t, it);
    if (mpx_graph_join(g) != 0 || t.n != n || tally_wrong(&t, 1) != 0)
        _exit(5);
    mpx_node_destroy(&g);
    free(t.by_index);
}

static void put_while_holding_an_item(void)
{
    int64_t n = 5000;
    CHECK(ran_to_end(put_while_holding_body, &n, 60, "puts after a waiting poll"),
          "puts after a waiting poll did not deliver every input once");
    CHECK(no_children_left(5), "processes left");
}

/* The same in an event loop: non-blocking puts, one output taken per
 * wake-up and held until the next.  The descriptor must wake the program
 * for room while it holds an item, however the room depends on
 * confirmations: it stayed quiet for ever (and once the confirmations
 * went, it was due at once for ever: the program spun). */
static void event_loop_holding_body(void *arg)
{
    const int64_t n = *(const int64_t *)arg;
    mpx_node_t *w = mpx_stage(&Pass, NULL);
    mpx_graph_t *g = MPX_EZ(w);
    if (mpx_node_set_retries(w, 1) != 0 || mpx_node_set_capacity(w, 2, 0) != 0 ||
        mpx_graph_set_nonblocking(g, true) != 0)
        _exit(2);
    int fd = mpx_graph_fd(g);
    if (fd < 0)
        _exit(2);
    tally_t t;
    tally_init(&t, n);
    int64_t x = 0;
    bool closed = false;
    for (;;) {
        while (x < n && mpx_graph_put(g, &x, sizeof x) == 0)
            x++;
        if (x == n && !closed) {
            if (mpx_graph_close_input(g) != 0)
                _exit(3);
            closed = true;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 20000) != 1)
            _exit(4); /* the descriptor stayed quiet: a hang */
        int rc = mpx_graph_dispatch(g);
        if (rc < 0)
            _exit(5);
        if (rc == 0)
            break;
        /* One at a time to the end: the last one held while the program
         * waits for the end (a recoverable stage ends its stream only
         * once what it put is confirmed, the held item too). */
        mpx_item_t *it;
        if ((rc & MPX_DISPATCH_OUTPUT) && (rc = mpx_graph_poll(g, 0, &it)) == 1)
            tally_add(&t, it); /* and held until the next poll */
        if (rc == 0)
            break;
    }
    if (mpx_graph_join(g) != 0 || t.n != n || tally_wrong(&t, 1) != 0)
        _exit(6);
    mpx_node_destroy(&g);
    free(t.by_index);
}

static void event_loop_holding_an_item(void)
{
    int64_t n = 5000;
    CHECK(ran_to_end(event_loop_holding_body, &n, 120, "an event loop holding an item"),
          "an event loop holding an item between wake-ups did not deliver every input once "
          "(exit 4: its descriptor stayed quiet)");
    CHECK(no_children_left(5), "processes left");
}

/* The same with items that fill a batch's bytes before its count:
 * "room" must mean room for the item the program was told to wait with,
 * not for an empty one. */
static void descriptor_quiet_while_large_input_waits(void)
{
    mpx_event_t *open = mpx_event_new();
    REQUIRE(open, "event");
    gate_args_t ga = {open, 0, 0};
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Gate, &ga));
    /* Credit for items left when that for bytes has run out. */
    REQUIRE(mpx_node_set_capacity(g, 0, 256 * 1024) == 0, "capacity");
    CHECK_EQ(mpx_graph_set_nonblocking(g, true), 0);
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "fd: %s", mpx_strerror(fd));
    static char big[60000];
    int64_t x = 0;
    int rc;
    memcpy(big, &x, sizeof x);
    while ((rc = mpx_graph_put(g, big, sizeof big)) == 0)
        memcpy(big, &(int64_t){++x}, sizeof x);
    CHECK_EQ(rc, MPX_EAGAIN);
    int woken = 0, refused = 0;
    for (int i = 0; i < 20; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) != 1)
            continue;
        woken++;
        rc = mpx_graph_dispatch(g);
        REQUIRE(rc > 0, "dispatch: %d", rc);
        if (rc & MPX_DISPATCH_INPUT) {
            while ((rc = mpx_graph_put(g, big, sizeof big)) == 0)
                memcpy(big, &(int64_t){++x}, sizeof x);
            refused += rc == MPX_EAGAIN;
        }
    }
    CHECK(woken <= 8, "the descriptor woke the program %d times of 20 (%d times the put it "
                      "announced room for was refused) while the only stage was stuck",
          woken, refused);
    REQUIRE(mpx_event_set(open) == 0, "open");
    CHECK_EQ(mpx_graph_close_input(g), 0);
    CHECK_EQ(mpx_graph_set_nonblocking(g, false), 0);
    int64_t out = 0;
    while (mpx_graph_next(g))
        out++;
    CHECK_EQ(out, x);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&open);
}

/* Once the input's end of stream has gone, what the fed stages still
 * send back (credit as a slow stage works through what it was sent,
 * confirmations) was read by nobody: the input's socket stayed readable,
 * and with it the descriptor, until the graph ended.  An event loop spun
 * for as long as the last items took. */
static void descriptor_quiet_after_input_closed(void)
{
    const int64_t n = 100;
    mpx_event_t *open = mpx_event_new();
    REQUIRE(open, "event");
    gate_args_t ga = {open, n - 1, 300000};
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Gate, &ga));
    REQUIRE(mpx_node_set_capacity(g, 16, 0) == 0, "capacity");
    CHECK_EQ(mpx_graph_set_nonblocking(g, true), 0);
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "fd: %s", mpx_strerror(fd));
    tally_t t;
    tally_init(&t, n);
    mpx_item_t *it;
    int rc;
    for (int64_t x = 0; x < n; x++)
        while ((rc = mpx_graph_put(g, &x, sizeof x)) == MPX_EAGAIN)
            if (mpx_graph_poll(g, 100, &it) == 1)
                tally_add(&t, it);
    CHECK_EQ(mpx_graph_close_input(g), 0);
    /* Everything but the gated item comes out. */
    while (t.n < n - 1 && (rc = mpx_graph_poll(g, 10000, &it)) == 1)
        tally_add(&t, it);
    REQUIRE(t.n == n - 1, "%lld came out", (long long)t.n);
    CHECK_EQ(mpx_graph_poll(g, 0, &it), MPX_ETIMEDOUT);
    int woken = 0, idle = 0;
    for (int i = 0; i < 20; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) != 1)
            continue;
        woken++;
        rc = mpx_graph_dispatch(g);
        REQUIRE(rc > 0, "dispatch: %d", rc);
        idle += rc == MPX_DISPATCH_IDLE;
        while (mpx_graph_poll(g, 0, &it) == 1)
            tally_add(&t, it);
    }
    CHECK(woken <= 8, "the descriptor woke the program %d times of 20 (%d for nothing) while "
                      "the last item was stuck", woken, idle);
    REQUIRE(mpx_event_set(open) == 0, "open");
    CHECK_EQ(mpx_graph_set_nonblocking(g, false), 0);
    while ((it = mpx_graph_next(g)))
        tally_add(&t, it);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(tally_wrong(&t, 1), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&open);
    free(t.by_index);
}

/* The pool map's inputs: 0, 1, ... n-1. */
typedef struct count_gen {
    int64_t next, n, value;
} count_gen_t;
static int count_input(void *ctx, mpx_part_t *input)
{
    count_gen_t *g = ctx;
    if (g->next == g->n)
        return 0;
    g->value = g->next++;
    *input = (mpx_part_t){&g->value, sizeof g->value};
    return 1;
}
static int count_output(void *ctx, const mpx_item_t *r)
{
    tally_add(ctx, r);
    return 0;
}

/* As they finish, the window slides on once a result comes more than
 * UNORDERED_SPAN (2^20) numbers past the first one not seen; a result
 * behind it was then taken for a repeat and dropped.  But a first result
 * comes from that far back whenever one input is slow while a million
 * others go through: it was lost (mpx_imap_array, always unordered, left
 * its slot zeroed), where the window's own comment says only that a
 * repeat may come through from that far back. */
static void unordered_slow_input_not_dropped(void)
{
    const int64_t n = 1100000;
    volatile int64_t *count = mmap(NULL, sizeof *count, PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(count != MAP_FAILED, "mmap");
    late_args_t la = {mpx_event_new(), count, n - 20000};
    REQUIRE(la.open, "event");
    count_gen_t in = {0, n, 0};
    tally_t t;
    tally_init(&t, n);
    mpx_imap_opts_t o = {.workers = 2, .capacity = 64};
    CHECK_EQ(mpx_imap_run(&Late, &la, &o, count_input, &in, count_output, &t), 0);
    CHECK_EQ(t.n, n);
    int64_t lost = 0, first = -1;
    for (int64_t i = 0; i < n; i++)
        if (t.by_index[i] == 0) {
            lost++;
            first = first < 0 ? i : first;
        }
    CHECK(lost == 0, "%lld results lost (the first: input %lld)", (long long)lost,
          (long long)first);
    CHECK_EQ(tally_wrong(&t, 1), 0);
    mpx_event_destroy(&la.open);
    munmap((void *)count, sizeof *count);
    free(t.by_index);
}

/* A put that said MPX_EAGAIN asks for news of room (MPX_DISPATCH_INPUT);
 * a program that then closes the input instead of putting again wants
 * none.  The request outlived the close: with the batch gone, there was
 * "room" for good, and the descriptor stayed readable until the graph
 * ended. */
static void descriptor_quiet_after_close_without_put(void)
{
    mpx_event_t *open = mpx_event_new();
    REQUIRE(open, "event");
    gate_args_t ga = {open, 0, 0};
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Gate, &ga));
    REQUIRE(mpx_node_set_capacity(g, 1, 0) == 0, "capacity");
    CHECK_EQ(mpx_graph_set_nonblocking(g, true), 0);
    int fd = mpx_graph_fd(g);
    REQUIRE(fd >= 0, "fd: %s", mpx_strerror(fd));
    int64_t x = 0;
    int rc;
    while ((rc = mpx_graph_put(g, &x, sizeof x)) == 0)
        x++;
    CHECK_EQ(rc, MPX_EAGAIN);
    CHECK_EQ(mpx_graph_close_input(g), 0);
    int woken = 0, input = 0;
    for (int i = 0; i < 20; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) != 1)
            continue;
        woken++;
        rc = mpx_graph_dispatch(g);
        REQUIRE(rc > 0, "dispatch: %d", rc);
        input += (rc & MPX_DISPATCH_INPUT) != 0;
    }
    CHECK(woken <= 8 && input == 0,
          "the descriptor woke the program %d times of 20 (%d saying room for input) after "
          "the input was closed", woken, input);
    REQUIRE(mpx_event_set(open) == 0, "open");
    CHECK_EQ(mpx_graph_set_nonblocking(g, false), 0);
    int64_t out = 0;
    while (mpx_graph_next(g))
        out++;
    CHECK_EQ(out, x);
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&open);
}

/* Once every stage fed by the program has stopped reading, puts say
 * MPX_ESTOPPED and nothing more can go in: the graph ends without the
 * program closing the input, so a program that drains the output with
 * mpx_graph_next after that MPX_ESTOPPED sees the end.  It waited for
 * ever: the stopped stages waited for the input's end of stream, which
 * went only with mpx_graph_close_input. */
static void stopped_input_ends_body(void *arg)
{
    (void)arg;
    mpx_graph_t *g = MPX_EZ(mpx_as(2, &Quit, NULL));
    if (mpx_node_set_capacity(g, 2, 0) != 0)
        _exit(2);
    int rc = 0;
    int64_t x = 0, out = 0;
    mpx_item_t *it;
    for (; x < 100000; x++) {
        while ((rc = mpx_graph_put(g, &x, sizeof x)) == MPX_EAGAIN)
            while (mpx_graph_poll(g, 100, &it) == 1)
                out++;
        if (rc != 0)
            break;
    }
    if (rc != MPX_ESTOPPED)
        _exit(3);
    while (mpx_graph_next(g))
        out++;
    if (out < 1 || out > 2 || mpx_graph_join(g) != 0)
        _exit(4);
    mpx_node_destroy(&g);
}

/* The same when the program learns of it only by waiting: it put one
 * item, and waits in next for the end with the input open. */
static void stopped_while_waiting_body(void *arg)
{
    (void)arg;
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Quit, NULL));
    int64_t x = 7, out = 0;
    if (mpx_graph_put(g, &x, sizeof x) != 0)
        _exit(3);
    while (mpx_graph_next(g))
        out++;
    if (out != 1 || mpx_graph_join(g) != 0)
        _exit(4);
    mpx_node_destroy(&g);
}

static void stopped_input_ends(void)
{
    CHECK(ran_to_end(stopped_input_ends_body, NULL, 30, "next after every fed stage stopped"),
          "the graph did not end once every fed stage had stopped");
    CHECK(ran_to_end(stopped_while_waiting_body, NULL, 30, "next while the fed stage stops"),
          "the graph did not end once its fed stage had stopped, the program waiting in next");
    CHECK(no_children_left(5), "processes left");
}

/* Stage processes fed by the program killed while it feeds them, in the
 * shapes the input's recovery has to get right (what a dead one held goes
 * back through the parent's declining wait: the batch, the list to send
 * again, its head when credit runs short, the end of stream owed to a
 * replacement): every input comes out of every branch, none lost. */
typedef struct kill_case {
    const char *name;
    /* 0: parallel 3; 1: broadcast of 2; 2: parallel 2, then parallel 2;
     * 3: Seq around parallel 2 */
    int shape;
    size_t capacity;
    int64_t kill[NKILL]; /* -1: none */
    bool event_loop;     /* non-blocking puts served through the descriptor */
} kill_case_t;

static int64_t branch_of(const mpx_item_t *it)
{
    int64_t b = 0;
    return mpx_item_meta_i64(it, "branch", &b) == 0 ? b : -1;
}

static void fed_kills(void)
{
    static const kill_case_t cases[] = {
        {"parallel, capacity 1", 0, 1, {3, 700, 1999}, false},
        {"parallel, capacity 1, event loop", 0, 1, {3, 700, 1999}, true},
        {"broadcast, capacity 2", 1, 2, {10, 1000, 1990}, false},
        {"broadcast, capacity 2, event loop", 1, 2, {10, 1000, 1990}, true},
        {"parallel after parallel, capacity 4", 2, 4, {50, 1200, 1995}, false},
        {"parallel, the last items after the end of input", 0, 64, {1998, 1999, -1}, false},
        {"Seq around parallel, capacity 2", 3, 2, {5, 900, 1990}, false},
        {"Seq around parallel, capacity 2, event loop", 3, 2, {5, 900, 1990}, true},
    };
    const int64_t n = 2000;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const kill_case_t *kc = &cases[c];
        volatile int *killed = mmap(NULL, 2 * NKILL * sizeof(int), PROT_READ | PROT_WRITE,
                                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        REQUIRE(killed != MAP_FAILED, "mmap");
        /* Branch 1 is the broadcast's second; after a chain, what comes
         * out carries the last stage's tag. */
        crashy_args_t a0 = {0, {0}, killed}, a1 = {kc->shape == 1, {0}, killed + NKILL};
        for (int j = 0; j < NKILL; j++) {
            a0.kill[j] = kc->kill[j];
            a1.kill[j] = kc->shape == 0 || kc->shape == 3 ? -1 : kc->kill[j] + 1;
        }
        mpx_graph_t *g;
        int nbranch = kc->shape == 1 ? 2 : 1;
        if (kc->shape == 0)
            g = MPX_EZ(mpx_as(3, &Crashy, &a0));
        else if (kc->shape == 1)
            g = MPX_EZ(MPX_B(mpx_stage(&Crashy, &a0), mpx_stage(&Crashy, &a1)));
        else if (kc->shape == 3)
            g = MPX_EZ(mpx_seq(mpx_as(2, &Crashy, &a0)));
        else
            g = MPX_EZ(mpx_as(2, &Crashy, &a0), mpx_as(2, &Crashy, &a1));
        REQUIRE(mpx_node_set_retries(g, 3) == 0, "retries");
        REQUIRE(mpx_node_set_capacity(g, kc->capacity, 0) == 0, "capacity");
        if (kc->event_loop)
            CHECK_EQ(mpx_graph_set_nonblocking(g, true), 0);
        tally_t t[2];
        tally_init(&t[0], n);
        tally_init(&t[1], n);
        int64_t x = 0, bad = 0;
        mpx_item_t *it;
        int rc = 0;
        if (kc->event_loop) {
            int fd = mpx_graph_fd(g);
            REQUIRE(fd >= 0, "fd");
            bool closed = false;
            for (;;) {
                while (x < n && (rc = mpx_graph_put(g, &x, sizeof x)) == 0)
                    x++;
                if (x == n && !closed)
                    closed = mpx_graph_close_input(g) == 0;
                struct pollfd p = {fd, POLLIN, 0};
                REQUIRE(poll(&p, 1, 30000) == 1, "%s: the descriptor stayed quiet for 30 s",
                        kc->name);
                rc = mpx_graph_dispatch(g);
                REQUIRE(rc >= 0, "dispatch: %s", mpx_strerror(rc));
                if (rc == 0)
                    break;
                while ((rc = mpx_graph_poll(g, 0, &it)) == 1) {
                    int64_t b = branch_of(it);
                    if (b < 0 || b >= nbranch)
                        bad++;
                    else
                        tally_add(&t[b], it);
                }
                if (rc == 0)
                    break;
            }
        } else {
            for (; x < n; x++) {
                while ((rc = mpx_graph_put(g, &x, sizeof x)) == MPX_EAGAIN)
                    while (mpx_graph_poll(g, 0, &it) == 1) {
                        int64_t b = branch_of(it);
                        if (b < 0 || b >= nbranch)
                            bad++;
                        else
                            tally_add(&t[b], it);
                    }
                REQUIRE(rc == 0, "%s: put: %s", kc->name, mpx_strerror(rc));
            }
            CHECK_EQ(mpx_graph_close_input(g), 0);
            while ((it = mpx_graph_next(g))) {
                int64_t b = branch_of(it);
                if (b < 0 || b >= nbranch)
                    bad++;
                else
                    tally_add(&t[b], it);
            }
        }
        CHECK(mpx_graph_join(g) == 0, "%s: %s", kc->name, mpx_graph_error(g));
        CHECK_EQ(bad, 0);
        for (int b = 0; b < nbranch; b++) {
            int64_t missing = 0, first = -1, twice = 0;
            for (int64_t i = 0; i < n; i++) {
                if (t[b].by_index[i] == 0 && first < 0)
                    first = i;
                missing += t[b].by_index[i] == 0;
                twice += t[b].by_index[i] > 1;
            }
            CHECK(missing == 0 && t[b].bad == 0,
                  "%s, branch %d: %lld inputs lost (first %lld), %lld without an index",
                  kc->name, b, (long long)missing, (long long)first, (long long)t[b].bad);
            /* At least once: what a dead process had finished but not
             * yet confirmed (two windows at most) comes out again. */
            CHECK(twice <= 2 * NKILL * (int64_t)kc->capacity + 16,
                  "%s, branch %d: %lld inputs came out more than once", kc->name, b,
                  (long long)twice);
        }
        int kills = 0;
        for (int j = 0; j < 2 * NKILL; j++)
            kills += killed[j];
        CHECK(kills > 0, "%s: nothing was killed", kc->name);
        expect_clean(g);
        mpx_node_destroy(&g);
        free(t[0].by_index);
        free(t[1].by_index);
        munmap((void *)killed, 2 * NKILL * sizeof(int));
    }
}

/* The promise: one thread alternating puts and polls never deadlocks,
 * whatever the capacities and however many items a stage puts per input.
 * Shapes beyond those of test_input.c, each fed with the documented loop
 * (poll with 0 until MPX_ETIMEDOUT) and with the "or wait in poll" one
 * (poll(g, -1), the item held while the put is tried again). */
typedef struct shape_run {
    int shape;
    bool wait, recoverable;
    int64_t n, outs; /* inputs; outputs expected */
} shape_run_t;

static mpx_graph_t *shape_graph(int shape, int64_t *per_input, int64_t *extra)
{
    static const many_args_t three = {3, 8}, none = {0, 8}, fifty = {50, 8}, big = {2, 1000};
    static const int64_t chatty = 5000;
    *extra = 0;
    mpx_graph_t *g = NULL;
    switch (shape) {
    case 0: /* Seq around a group, three outputs per input */
        *per_input = 3;
        g = MPX_EZ(mpx_seq(mpx_as(2, &Many, &three)));
        break;
    case 1: /* a broadcast: three outputs on one side, none on the other */
        *per_input = 3;
        g = MPX_EZ(MPX_B(mpx_stage(&Many, &three), mpx_stage(&Many, &none)));
        break;
    case 2: /* fifty per input, then a group that fans each out thrice */
        *per_input = 150;
        g = MPX_EZ(mpx_stage(&Many, &fifty), mpx_as(2, &Many, &three));
        break;
    case 3: /* byte capacity smaller than an item */
        *per_input = 2;
        g = MPX_EZ(mpx_as(2, &Many, &big), mpx_stage(&Pass, NULL));
        break;
    case 4: /* a stage that puts 5000 items in setup before it takes input */
        *per_input = 1;
        *extra = chatty;
        g = MPX_EZ(mpx_stage(&Chatty, &chatty));
        break;
    case 5: /* a broadcast of groups around Seq, three per input on each side */
        *per_input = 6;
        g = MPX_EZ(MPX_B(mpx_seq(mpx_as(2, &Many, &three)), mpx_as(2, &Many, &three)));
        break;
    }
    return g;
}

static void shape_body(void *arg)
{
    shape_run_t *sr = arg;
    int64_t per = 0, extra = 0;
    mpx_graph_t *g = shape_graph(sr->shape, &per, &extra);
    if (!g || mpx_node_set_capacity(g, 1, sr->shape == 3 ? 64 : 0) != 0 ||
        (sr->recoverable && mpx_node_set_retries(g, 1) != 0))
        _exit(2);
    int64_t got = 0;
    mpx_item_t *it;
    for (int64_t x = 0; x < sr->n; x++) {
        int rc;
        while ((rc = mpx_graph_put(g, &x, sizeof x)) == MPX_EAGAIN) {
            if (sr->wait) {
                if (mpx_graph_poll(g, -1, &it) == 1)
                    got++;
                continue;
            }
            while (mpx_graph_poll(g, 0, &it) == 1)
                got++;
        }
        if (rc != 0)
            _exit(3);
    }
    if (mpx_graph_close_input(g) != 0)
        _exit(4);
    while (mpx_graph_next(g))
        got++;
    if (mpx_graph_join(g) != 0)
        _exit(5);
    if (got != sr->n * per + extra)
        _exit(6);
    mpx_node_destroy(&g);
}

static void single_thread_never_deadlocks(void)
{
    for (int shape = 0; shape <= 5; shape++)
        for (int v = 0; v < 4; v++) {
            shape_run_t sr = {shape, v & 1, v & 2,
                              harness_long() ? 500 : harness_sanitized() ? 60 : 150, 0};
            char what[80];
            snprintf(what, sizeof what, "shape %d, %s%s", shape,
                     sr.wait ? "waiting in poll" : "polling with 0",
                     sr.recoverable ? ", retries" : "");
            CHECK(ran_to_end(shape_body, &sr, 60, what), "%s failed", what);
            CHECK(no_children_left(5), "processes left");
        }
}

/* Per-worker args are `workers` pointers; with workers 0 (one per CPU)
 * the program cannot know how many the map will read: it read as many as
 * there are CPUs, past the end of a shorter array.  Refused now. */
static void worker_args_need_a_count(void)
{
    static const int64_t factor = 2;
    const void *args[1] = {&factor};
    static const mpx_stage_def_t Takes = {.name = "takes", .args_size = sizeof(int64_t),
                                          .process = pass_process};
    mpx_imap_t *m = NULL;
    mpx_imap_opts_t o = {.workers = 0, .worker_args = args};
    CHECK_EQ(mpx_imap_start(&m, &Takes, NULL, &o), MPX_EINVAL);
    CHECK(m == NULL, "no map");
    mpx_imap_destroy(&m);
    o.workers = 1;
    REQUIRE(mpx_imap_start(&m, &Takes, NULL, &o) == 0, "one worker, one args");
    CHECK_EQ(mpx_imap_close(m), 0);
    CHECK_EQ(mpx_imap_join(m), 0);
    mpx_imap_destroy(&m);
}

/* "It goes out ... when the batch is ... a millisecond old": not while
 * the program's polls (timeout 0) keep finding output.  Such a poll
 * returned before the input was looked at, so an input put while output
 * streamed waited in the parent until the output ran dry, and the stage
 * sat idle meanwhile: here input 2, put while the 100000 outputs of
 * input 0 streamed, went only once they (and input 1's) were taken. */
static void input_goes_while_output_streams(void)
{
    const int64_t per = 20000;
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Idler, &per));
    int64_t x = 0, out = 0, idled[3] = {0};
    mpx_item_t *it;
    CHECK_EQ(mpx_graph_put(g, &x, sizeof x), 0);
    while (out < 3 * per) {
        /* Once output streams, inputs 1 and 2 (the first goes at once,
         * after a quiet spell; the second joins a batch). */
        if (out == 1000)
            for (x = 1; x < 3; x++)
                CHECK_EQ(mpx_graph_put(g, &x, sizeof x), 0);
        int rc = mpx_graph_poll(g, 0, &it);
        if (rc == MPX_ETIMEDOUT)
            rc = mpx_graph_poll(g, 1000, &it);
        REQUIRE(rc == 1, "poll: %s after %lld outputs", mpx_strerror(rc), (long long)out);
        int64_t was = 0;
        x = mpx_item_i64(it);
        REQUIRE(x >= 0 && x < 3, "output %lld", (long long)x);
        CHECK(mpx_item_meta_i64(it, "idled", &was) == 0, "no meta");
        idled[x] |= was;
        out++;
        /* A program that does something with each output: slower than
         * the stage, so that output is always waiting. */
        for (volatile int k = 0; k < 20000; k++)
            ;
    }
    CHECK(idled[1] == 0 && idled[2] == 0,
          "the stage waited for inputs put long before (input 1: %lld, input 2: %lld)",
          (long long)idled[1], (long long)idled[2]);
    CHECK_EQ(mpx_graph_close_input(g), 0);
    CHECK(mpx_graph_next(g) == NULL, "no more output");
    CHECK_EQ(mpx_graph_join(g), 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Misuse: a stage that puts into the program's input of its own graph
 * (it has the parent's handle, copied by fork) is refused, never
 * reaching the parent's sockets; the refusal's code travels as its
 * output.  (MPX_ESTOPPED: the copy of the run a first process inherits
 * is still starting.  A replacement forked from the program's process,
 * where the kernel refuses the fork server's clone, inherits a running
 * one: not covered here.) */
static mpx_graph_t *own_graph;
static int putback_process(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    int64_t x = 1;
    return mpx_put_i64(st, mpx_graph_put(own_graph, &x, sizeof x));
}
static const mpx_stage_def_t PutBack = {.name = "putback", .process = putback_process};

static void put_from_a_stage_is_refused(void)
{
    own_graph = MPX_EZ(mpx_stage(&PutBack, NULL));
    int64_t x = 0;
    CHECK_EQ(mpx_graph_put(own_graph, &x, sizeof x), 0);
    CHECK_EQ(mpx_graph_close_input(own_graph), 0);
    mpx_item_t *it = mpx_graph_next(own_graph);
    REQUIRE(it, "an output");
    CHECK(mpx_item_i64(it) < 0, "a put from a stage process returned %lld",
          (long long)mpx_item_i64(it));
    CHECK(mpx_graph_next(own_graph) == NULL, "one output");
    CHECK_EQ(mpx_graph_join(own_graph), 0);
    CHECK_EQ(mpx_graph_input_count(own_graph), 1);
    expect_clean(own_graph);
    mpx_node_destroy(&own_graph);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(descriptor_quiet_while_input_waits),
        TEST_CASE(put_while_holding_an_item),
        TEST_CASE(event_loop_holding_an_item),
        TEST_CASE(descriptor_quiet_after_input_closed),
        TEST_CASE(descriptor_quiet_while_large_input_waits),
        TEST_CASE(unordered_slow_input_not_dropped),
        TEST_CASE(stopped_input_ends),
        TEST_CASE(fed_kills),
        TEST_CASE(descriptor_quiet_after_close_without_put),
        TEST_CASE(worker_args_need_a_count),
        TEST_CASE(input_goes_while_output_streams),
        TEST_CASE(put_from_a_stage_is_refused),
        TEST_CASE(single_thread_never_deadlocks),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
