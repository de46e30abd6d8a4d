/* tests/test_faults.c — what happens when a stage fails: error policies
 * (stop, skip, dead letter, retries), a process killed by a signal (the
 * report, the replacement, nothing lost), per-item timeouts, failing
 * setup and teardown, items over the size limit, and malformed messages
 * on an edge or the control channel.  Every case ends with the harness's
 * check that no process and no file is left.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "harness.h"
#include "stages.h"

/* ---- stages ------------------------------------------------------------- */

static int pass(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }

/* Fails (returns an error through mpx_fail) on ids divisible by `every`,
 * the first `times` attempts at each such item in this process (times < 0:
 * always). */
typedef struct flaky_args {
    int64_t every;
    int times;
} flaky_args_t;
typedef struct flaky_state {
    int64_t last_id;
    int attempts;
} flaky_state_t;

static int flaky_process(mpx_stage_t *st, mpx_item_t *it)
{
    const flaky_args_t *a = mpx_args(st);
    flaky_state_t *s = mpx_state(st);
    int64_t id = mpx_item_i64(it);
    if (id % a->every == 0) {
        s->attempts = s->last_id == id ? s->attempts + 1 : 1;
        s->last_id = id;
        if (a->times < 0 || s->attempts <= a->times)
            return mpx_fail(st, "cannot handle %lld (attempt %d)", (long long)id, s->attempts);
    }
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Flaky = {.name = "flaky",
                                      .args_size = sizeof(flaky_args_t),
                                      .state_size = sizeof(flaky_state_t),
                                      .process = flaky_process};

/* Dies by `sig` on item `id` (any item when id < 0): only once over the
 * run (the event is set by the process that dies) unless `always`, and
 * only once `after` is set when there is one.  With `hold`, the process
 * that takes the item waits for `after` instead of passing the item on,
 * so that the death comes at a moment the test chose. */
typedef struct crash_args {
    mpx_event_t *once;
    int64_t id;
    int sig;
    bool always;
    mpx_event_t *after;
    bool hold;
} crash_args_t;

static int crash_process(mpx_stage_t *st, mpx_item_t *it)
{
    const crash_args_t *a = mpx_args(st);
    if ((a->id < 0 || mpx_item_i64(it) == a->id) && (a->always || !mpx_event_is_set(a->once))) {
        if (a->after && a->hold && mpx_event_wait(a->after, -1) != 1)
            return mpx_fail(st, "waiting for the gate failed");
        if (!a->after || mpx_event_is_set(a->after)) {
            if (a->once)
                mpx_event_set(a->once);
            raise(a->sig);
        }
    }
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Crash = {.name = "crash",
                                      .args_size = sizeof(crash_args_t),
                                      .process = crash_process};

/* Hangs on item `*(int64_t *)args`. */
static int hang_process(mpx_stage_t *st, mpx_item_t *it)
{
    if (mpx_item_i64(it) == *(const int64_t *)mpx_args(st))
        for (;;)
            pause();
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Hang = {.name = "hang", .args_size = sizeof(int64_t),
                                     .process = hang_process};

/* Appends "<id> <mpx.stage> <mpx.instance> <mpx.error>" to the file named
 * by args for every item: the end of a dead-letter side graph. */
static int letters_process(mpx_stage_t *st, mpx_item_t *it)
{
    FILE *f = fopen(mpx_args(st), "a");
    if (!f)
        return mpx_fail(st, "%s: %s", (const char *)mpx_args(st), strerror(errno));
    int64_t index = -1;
    if (mpx_item_meta_i64(it, "mpx.instance", &index) != 0)
        index = -1; /* written as such, and the test says so */
    const char *stage = mpx_item_meta_str(it, "mpx.stage");
    const char *error = mpx_item_meta_str(it, "mpx.error");
    fprintf(f, "%lld %s %lld %s\n", (long long)mpx_item_i64(it), stage ? stage : "-",
            (long long)index, error ? error : "-");
    fclose(f);
    return 0;
}
static const mpx_stage_def_t Letters = {.name = "letters", .args_size = 256,
                                        .process = letters_process};

static mpx_node_t *letters_node(char *path, size_t cap, const char *name)
{
    snprintf(path, cap, "%s/%s", harness_tmpdir(), name);
    char args[256] = {0};
    REQUIRE(strlen(path) < sizeof args, "path too long: %s", path);
    memcpy(args, path, strlen(path));
    return mpx_stage(&Letters, args);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    char *text = NULL;
    size_t cap = 0;
    if (getdelim(&text, &cap, '\0', f) < 0) {
        free(text);
        text = strdup("");
    }
    fclose(f);
    return text;
}

/* Count how often each id in [0, n) arrives; the output's ids must all be
 * in range.  Returns the counts (malloc'd); *total gets all arrivals and
 * *redelivered those marked as sent again. */
static unsigned char *collect_ids(mpx_graph_t *g, int64_t n, int64_t *total,
                                  int64_t *redelivered)
{
    unsigned char *seen = calloc((size_t)n, 1);
    REQUIRE(seen, "out of memory");
    *total = 0;
    if (redelivered)
        *redelivered = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t id = mpx_item_i64(it);
        REQUIRE(id >= 0 && id < n, "id %lld out of range", (long long)id);
        if (seen[id] < 255)
            seen[id]++;
        (*total)++;
        if (redelivered && mpx_item_meta(it, "mpx.redelivered", NULL))
            (*redelivered)++;
    }
    return seen;
}

typedef struct collected {
    mpx_graph_t *g;
    int64_t n, total;
    unsigned char *seen;
    int outcome; /* of the join, which the caller may ask again */
} collected_t;

static void collect_all(void *arg)
{
    collected_t *c = arg;
    REQUIRE(mpx_graph_start(c->g) == 0, "%s", mpx_graph_error(c->g));
    c->seen = collect_ids(c->g, c->n, &c->total, NULL);
    c->outcome = mpx_graph_join(c->g);
}

/* Run g to its end, expect it to fail with `rc` and a message holding
 * every string of `parts` (NULL-terminated), then check it left nothing
 * and destroy it. */
static void expect_error(mpx_graph_t *g, int rc, const char *const *parts)
{
    CHECK_EQ(mpx_graph_join(g), rc);
    const char *msg = mpx_graph_error(g);
    for (size_t i = 0; parts[i]; i++)
        CHECK(strstr(msg, parts[i]), "'%s' not in the message: %s", parts[i], msg);
    expect_clean(g);
    mpx_node_destroy(&g);
}
#define EXPECT_ERROR(g, rc, ...) expect_error(g, rc, (const char *const[]){__VA_ARGS__, NULL})

static long long sum_info(mpx_graph_t *g, const char *name, int what)
{
    long long v = 0;
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) != 0 || strcmp(info.name, name) != 0)
            continue;
        v += what == 0 ? info.restarts : what == 1 ? (long long)info.items_failed
                                                   : (long long)info.items_resent;
    }
    return v;
}
#define RESTARTS 0
#define FAILED 1
#define RESENT 2

/* ---- error returns ------------------------------------------------------ */

static void stop_names_stage_instance_and_meta(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(1, 1000),
                            mpx_as(2, &Flaky, &(flaky_args_t){.every = 700, .times = -1}));
    EXPECT_ERROR(g, MPX_ESTAGE, "stage 'flaky' instance ", " of 2 (pid ", "process failed on item ",
                 "{i: 700}", "cannot handle 700 (attempt 1)");
}

static void skip_drops_counts_and_logs(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 1000),
                            mpx_as(3, &Flaky, &(flaky_args_t){.every = 10, .times = -1}));
    CHECK_EQ(mpx_node_on_error(g, MPX_ON_ERROR_SKIP, NULL), 0);
    /* Stderr captured (the stage processes inherit it): the skipped
     * items are logged. */
    collected_t c = {g, 1000, 0, NULL, 0};
    char *err = capture_stderr(collect_all, &c);
    int64_t total = c.total;
    unsigned char *seen = c.seen;
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(total, 900);
    for (int64_t id = 0; id < 1000; id++)
        if (seen[id] != (id % 10 ? 1 : 0)) {
            CHECK(false, "id %lld arrived %d times", (long long)id, seen[id]);
            break;
        }
    CHECK_EQ(sum_info(g, "flaky", FAILED), 100);
    CHECK(strstr(err, "mpx: stage 'flaky' instance ") && strstr(err, " skipped item ") &&
              strstr(err, "{i: 990}: cannot handle 990 (attempt 1)"),
          "stderr: %.300s", err);
    free(err);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void retries_then_success(void)
{
    /* Every tenth item fails twice; two retries see each through. */
    mpx_graph_t *g = MPX_EZ(range_node(0, 500),
                            mpx_as(2, &Flaky, &(flaky_args_t){.every = 10, .times = 2}));
    CHECK_EQ(mpx_node_set_retries(g, 2), 0);
    int64_t total;
    unsigned char *seen = collect_ids(g, 500, &total, NULL);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(total, 500);
    for (int64_t id = 0; id < 500; id++)
        CHECK(seen[id] == 1, "id %lld arrived %d times", (long long)id, seen[id]);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* One retry is not enough: the policy (stop) applies. */
    g = MPX_EZ(range_node(0, 500), mpx_stage(&Flaky, &(flaky_args_t){.every = 10, .times = 2}));
    CHECK_EQ(mpx_node_set_retries(g, 1), 0);
    EXPECT_ERROR(g, MPX_ESTAGE, "cannot handle 0 (attempt 2)");
}

static void dead_letter_gets_item_meta_and_error(void)
{
    char path[512];
    mpx_node_t *flaky = mpx_as(2, &Flaky, &(flaky_args_t){.every = 100, .times = -1});
    mpx_graph_t *g = MPX_EZ(range_node(0, 1000), flaky, mpx_stage(&Inc, NULL));
    CHECK_EQ(mpx_graph_xcut(g, "dead", MPX_EZ(letters_node(path, sizeof path, "dead.txt"))), 0);
    /* Set on the stage's node: the nearest setting wins over the root's. */
    CHECK_EQ(mpx_node_on_error(g, MPX_ON_ERROR_SKIP, NULL), 0);
    CHECK_EQ(mpx_node_on_error(flaky, MPX_ON_ERROR_DEAD_LETTER, "dead"), 0);
    CHECK_EQ(mpx_node_set_retries(flaky, 1), 0);
    int64_t count;
    drain_sum(g, &count);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(count, 990);
    CHECK_EQ(sum_info(g, "flaky", FAILED), 10);
    char *text = slurp(path);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        long long id, index;
        char stage[64], error[256];
        REQUIRE(sscanf(line, "%lld %63s %lld %255[^\n]", &id, stage, &index, error) == 4,
                "line: %s", line);
        char want[128];
        snprintf(want, sizeof want, "cannot handle %lld (attempt 2)", id);
        CHECK(id % 100 == 0 && strcmp(stage, "flaky") == 0 && (index == 0 || index == 1) &&
                  strcmp(error, want) == 0,
              "line: %s", line);
        lines++;
    }
    CHECK_EQ(lines, 10);
    free(text);
    unlink(path);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A source that finds every tenth of its values (3, 13, ...) bad and
 * hands it to the error policy with mpx_reject, putting the others with
 * the meta it set once ("run") and the value's ("v"). */
static int picky_initialize(mpx_stage_t *st)
{
    int64_t v = 1;
    mpx_part_t part = {&v, sizeof v};
    if (mpx_reject(st, &part, 1, "in initialize") != MPX_ESTATE)
        return mpx_fail(st, "mpx_reject in initialize did not give MPX_ESTATE");
    return 0;
}
static int picky_setup(mpx_stage_t *st)
{
    int rc = mpx_meta_set_str(st, "run", "r");
    for (int64_t v = 0; rc == 0 && v < 100; v++) {
        rc = mpx_meta_set_i64(st, "v", v);
        mpx_part_t part = {&v, sizeof v};
        if (rc == 0)
            rc = v % 10 == 3 ? mpx_reject(st, &part, 1, "bad %lld", (long long)v)
                             : mpx_put_i64(st, v);
    }
    return rc;
}
static const mpx_stage_def_t Picky = {.name = "picky", .initialize = picky_initialize,
                                      .setup = picky_setup};

/* What the rejecting source put came through with its own meta only. */
static void check_picky_output(mpx_graph_t *g)
{
    int n = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t v = mpx_item_i64(it), mv = -1;
        const char *run = mpx_item_meta_str(it, "run");
        CHECK(v % 10 != 3 && mpx_item_meta_i64(it, "v", &mv) == 0 && mv == v && run &&
                  strcmp(run, "r") == 0 && !mpx_item_meta(it, "mpx.error", NULL) &&
                  !mpx_item_meta(it, "mpx.stage", NULL),
              "item %lld", (long long)v);
        n++;
    }
    CHECK_EQ(n, 90);
}

static void reject_run(void *arg)
{
    mpx_graph_t *g = arg;
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    check_picky_output(g);
    CHECK_EQ(mpx_graph_join(g), 0);
}

static void reject_follows_policy(void)
{
    /* Stop (the default): the first rejection ends the run with its
     * message. */
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Picky, NULL));
    EXPECT_ERROR(g, MPX_ESTAGE, "stage 'picky' (pid ", "setup failed: bad 3");

    /* Skip: logged with the current meta, counted, and the source goes on. */
    g = MPX_EZ(mpx_stage(&Picky, NULL));
    CHECK_EQ(mpx_node_on_error(g, MPX_ON_ERROR_SKIP, NULL), 0);
    char *err = capture_stderr(reject_run, g);
    CHECK_EQ(sum_info(g, "picky", FAILED), 10);
    CHECK(strstr(err, "mpx: stage 'picky' skipped ") &&
              strstr(err, " skipped {run: \"r\", v: 93}: bad 93"),
          "stderr: %.400s", err);
    free(err);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* Dead letter: the rejected parts with the reason; the source's own
     * meta is as it was for what it puts next. */
    char path[512];
    mpx_node_t *picky = mpx_stage(&Picky, NULL);
    g = MPX_EZ(picky);
    CHECK_EQ(mpx_graph_xcut(g, "dead", MPX_EZ(letters_node(path, sizeof path, "rejected.txt"))), 0);
    CHECK_EQ(mpx_node_on_error(picky, MPX_ON_ERROR_DEAD_LETTER, "dead"), 0);
    reject_run(g);
    CHECK_EQ(sum_info(g, "picky", FAILED), 10);
    char *text = slurp(path);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        char want[64];
        snprintf(want, sizeof want, "%d picky 0 bad %d", lines * 10 + 3, lines * 10 + 3);
        CHECK(strcmp(line, want) == 0, "line %d: %s", lines, line);
    }
    CHECK_EQ(lines, 10);
    free(text);
    unlink(path);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Forks made by this process (pthread_atfork), whoever made them. */
static int forks_seen;
static void count_fork(void) { forks_seen++; }

static void policy_settings_checked(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 10), mpx_stage(&Inc, NULL));
    CHECK_EQ(mpx_node_on_error(g, MPX_ON_ERROR_DEAD_LETTER, NULL), MPX_EINVAL);
    CHECK_EQ(mpx_node_on_error(g, (mpx_on_error_t)9, NULL), MPX_EINVAL);
    CHECK_EQ(mpx_node_set_retries(g, -1), MPX_EINVAL);
    CHECK_EQ(mpx_node_set_retries(g, MPX_MAX_RETRIES + 1), MPX_EINVAL);
    CHECK_EQ(mpx_node_set_timeout(g, -5), MPX_EINVAL);
    CHECK_EQ(mpx_node_set_max_item(g, 1), MPX_EINVAL);
    /* A dead-letter graph nobody attached is refused before any fork. */
    CHECK_EQ(mpx_node_on_error(g, MPX_ON_ERROR_DEAD_LETTER, "nowhere"), 0);
    CHECK_EQ(mpx_graph_check(g), MPX_EGRAPH);
    CHECK(strstr(mpx_graph_error(g), "dead-letter side graph 'nowhere'"), "message: %s",
          mpx_graph_error(g));
    REQUIRE(pthread_atfork(count_fork, NULL, NULL) == 0, "pthread_atfork");
    CHECK_EQ(mpx_graph_start(g), MPX_EGRAPH);
    CHECK_EQ(forks_seen, 0);
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        CHECK(mpx_graph_instance_info(g, i, &info) != 0 || info.pid == 0, "forked %s",
              info.name);
    }
    mpx_node_destroy(&g);
}

/* ---- processes that die ------------------------------------------------- */

static void crash_under_stop_names_signal_and_item(void)
{
    /* SIGABRT rather than SIGSEGV: AddressSanitizer turns a SIGSEGV into
     * an exit with status 1. */
    /* The source never ends: only a crash noticed at once ends this run. */
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_stage(&Inc, NULL),
                            mpx_as(2, &Crash,
                                   &(crash_args_t){.id = 5000, .sig = SIGABRT, .always = true}));
    EXPECT_ERROR(g, MPX_ECRASH, "stage 'crash' instance ", " of 2 (pid ",
                 "was killed by signal 6 (Aborted)", "while processing item ");
}

static void crashed_worker_is_replaced_nothing_lost(void)
{
    mpx_event_t *once = mpx_event_new();
    REQUIRE(once, "event");
    const int64_t n = 20000;
    mpx_graph_t *g = MPX_EZ(range_node(0, n),
                            mpx_as(3, &Crash,
                                   &(crash_args_t){.once = once, .id = 777, .sig = SIGKILL}),
                            mpx_stage(&Inc, NULL));
    CHECK_EQ(mpx_node_set_retries(g, 2), 0);
    int64_t total, redelivered;
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    unsigned char *seen = collect_ids(g, n + 1, &total, &redelivered);
    CHECK_EQ(mpx_graph_join(g), 0);
    int64_t dups = 0;
    for (int64_t id = 1; id <= n; id++) {
        CHECK(seen[id] >= 1, "id %lld lost", (long long)id);
        dups += seen[id] > 1 ? seen[id] - 1 : 0;
    }
    CHECK(seen[0] == 0, "id 0 arrived");
    CHECK(mpx_event_is_set(once), "the crash happened");
    CHECK(sum_info(g, "crash", RESTARTS) >= 1, "no restart");
    long long resent = sum_info(g, "range", RESENT);
    CHECK(resent >= 1, "items sent again: %lld", resent);
    CHECK(dups <= redelivered && redelivered <= resent,
          "duplicates %lld, redelivered arrivals %lld, resent %lld", (long long)dups,
          (long long)redelivered, resent);
    printf("%lld items, %lld duplicates, %lld sent again\n", (long long)total, (long long)dups,
           resent);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&once);
}

static void poison_item_handled_by_policy(void)
{
    /* Item 13 kills whoever takes it: retried once (a second death), then
     * skipped; everything else arrives. */
    const int64_t n = 2000;
    mpx_graph_t *g = MPX_EZ(range_node(0, n),
                            mpx_as(2, &Crash,
                                   &(crash_args_t){.id = 13, .sig = SIGABRT, .always = true}));
    CHECK_EQ(mpx_node_set_retries(g, 1), 0);
    CHECK_EQ(mpx_node_on_error(g, MPX_ON_ERROR_SKIP, NULL), 0);
    int64_t total;
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    unsigned char *seen = collect_ids(g, n, &total, NULL);
    CHECK_EQ(mpx_graph_join(g), 0);
    for (int64_t id = 0; id < n; id++)
        if (id != 13)
            CHECK(seen[id] >= 1, "id %lld lost", (long long)id);
    CHECK(seen[13] == 0, "the poison item arrived");
    CHECK_EQ(sum_info(g, "crash", RESTARTS), 2);
    CHECK_EQ(sum_info(g, "crash", FAILED), 1);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Crash, whose replacement (the crash has happened) sets `replaced` in
 * its setup. */
typedef struct crash_then_args {
    crash_args_t crash; /* first: crash_process reads it */
    mpx_event_t *replaced;
} crash_then_args_t;
static int crash_then_setup(mpx_stage_t *st)
{
    const crash_then_args_t *a = mpx_args(st);
    if (mpx_event_is_set(a->crash.once))
        mpx_event_set(a->replaced);
    return 0;
}
static const mpx_stage_def_t CrashThen = {.name = "crash", .args_size = sizeof(crash_then_args_t),
                                          .setup = crash_then_setup, .process = crash_process};

/* Two recoverable stages in a row, one process each.  The consumer dies
 * first and is replaced; then the producer dies: its replacement must send
 * to the consumer's replacement, not to the process that died before it
 * was forked.  The producer dies on its first item after the consumer's
 * replacement ran its setup: had it died as soon as the consumer had,
 * both could be replaced in one go.  It has items left then: credit keeps
 * it within a few windows of the consumer, which died at item 100. */
static void replaced_producer_finds_replaced_consumer(void)
{
    mpx_event_t *second_died = mpx_event_new(), *first_died = mpx_event_new(),
                *replaced = mpx_event_new();
    REQUIRE(second_died && first_died && replaced, "event");
    const int64_t n = 100000;
    crash_args_t producer = {.once = first_died, .id = -1, .sig = SIGKILL, .after = replaced};
    crash_then_args_t consumer = {{.once = second_died, .id = 100, .sig = SIGKILL}, replaced};
    mpx_graph_t *g = MPX_EZ(range_node(0, n), mpx_stage(&Crash, &producer),
                            mpx_stage(&CrashThen, &consumer));
    CHECK_EQ(mpx_node_set_retries(g, 2), 0);
    int64_t total;
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    unsigned char *seen = collect_ids(g, n, &total, NULL);
    CHECK_EQ(mpx_graph_join(g), 0);
    for (int64_t id = 0; id < n; id++)
        if (seen[id] < 1) {
            CHECK(false, "id %lld lost", (long long)id);
            break;
        }
    CHECK(mpx_event_is_set(second_died) && mpx_event_is_set(first_died), "both crashed");
    CHECK_EQ(sum_info(g, "crash", RESTARTS), 2);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&second_died);
    mpx_event_destroy(&first_died);
    mpx_event_destroy(&replaced);
}

/* Notes its pid on a pipe in setup, then passes items on. */
static int note_pid_setup(mpx_stage_t *st)
{
    pid_t pid = getpid();
    if (write(*(const int *)mpx_args(st), &pid, sizeof pid) != (ssize_t)sizeof pid)
        return mpx_fail(st, "pid pipe: %s", strerror(errno));
    return 0;
}
static const mpx_stage_def_t NotePid = {.name = "notepid", .args_size = sizeof(int),
                                        .setup = note_pid_setup, .process = pass};

/* In teardown: says so on one pipe, then waits for a byte on another. */
typedef struct gate_args {
    int said, hold;
} gate_args_t;
static int gate_teardown(mpx_stage_t *st)
{
    const gate_args_t *a = mpx_args(st);
    char c = 't';
    if (write(a->said, &c, 1) != 1 || read(a->hold, &c, 1) != 1)
        return mpx_fail(st, "gate pipes: %s", strerror(errno));
    return 0;
}
static const mpx_stage_def_t Gate = {.name = "gate", .args_size = sizeof(gate_args_t),
                                     .teardown = gate_teardown, .process = pass};

typedef struct killer {
    int pids, said, hold;
    int again; /* replacements to kill as soon as they appear */
    int killed;
    bool saw_gate;
    int late; /* written to once the killing is over (-1: none) */
} killer_t;

/* The processes the main thread forked (it starts the graph). */
static int children(pid_t *out, int cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    FILE *f = fopen(path, "r");
    int n = 0;
    long v;
    while (f && n < cap && fscanf(f, "%ld", &v) == 1)
        out[n++] = (pid_t)v;
    if (f)
        fclose(f);
    return n;
}

/* Once the gate is in its teardown, every stage before it has ended its
 * stream (or stopped) and waits to be let go: kill one, and `again`
 * replacements as soon as each is forked; then open the gate. */
static void *kill_after_end(void *arg)
{
    killer_t *k = arg;
    struct pollfd p = {k->said, POLLIN, 0};
    char c;
    pid_t victim, known[64];
    k->saw_gate = poll(&p, 1, 60000) == 1 && read(k->said, &c, 1) == 1;
    int nknown = children(known, 60);
    if (k->saw_gate && read(k->pids, &victim, sizeof victim) == sizeof victim &&
        kill(victim, SIGKILL) == 0)
        k->killed++;
    for (int tries = 0; k->killed > 0 && k->killed <= k->again && tries < 20000; tries++) {
        pid_t now[64];
        int n = children(now, 64);
        for (int i = 0; i < n && nknown < 64; i++) {
            bool seen = false;
            for (int j = 0; j < nknown && !seen; j++)
                seen = known[j] == now[i];
            if (!seen) {
                known[nknown++] = now[i];
                if (kill(now[i], SIGKILL) == 0)
                    k->killed++;
                break;
            }
        }
        usleep(500);
    }
    c = 'o';
    /* Both, whatever the first did: a stage left waiting would hang the
     * test instead of failing it. */
    bool held = write(k->hold, &c, 1) == 1;
    if (k->late >= 0 && write(k->late, &c, 1) != 1)
        held = false;
    if (!held)
        k->saw_gate = false;
    return NULL;
}

/* Run g, in which stage `name` notes its pid on fds[1] and a later stage
 * (or its own teardown) holds at the gate fds[2..5]; kill a process of
 * `name` there, and `again` of its replacements.  Ids [0, expect) must
 * arrive once each, and `name`'s instances must count `in` items taken:
 * those of the processes that did the work.  `late` (or -1) is written to
 * once the killing is over, for a stage that holds the replacements until
 * then. */
static void run_killed_at_gate(mpx_graph_t *g, const int fds[6], const char *name, int again,
                               int64_t n, int64_t expect, long long in, int late)
{
    CHECK_EQ(mpx_node_set_retries(g, 3), 0);
    killer_t k = {fds[0], fds[2], fds[5], again, 0, false, late};
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, kill_after_end, &k) == 0, "thread");
    int64_t total;
    unsigned char *seen = collect_ids(g, n, &total, NULL);
    int rc = mpx_graph_join(g);
    pthread_join(t, NULL);
    CHECK(k.saw_gate, "the gate was not reached");
    CHECK_EQ(k.killed, 1 + again);
    CHECK_EQ(rc, 0);
    if (rc != 0)
        printf("error: %s\n", mpx_graph_error(g));
    CHECK_EQ(total, expect);
    for (int64_t id = 0; id < expect; id++)
        if (seen[id] != 1) {
            CHECK(false, "id %lld arrived %d times", (long long)id, seen[id]);
            break;
        }
    CHECK_EQ(sum_info(g, name, RESTARTS), 1 + again);
    long long got = 0;
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) == 0 && strcmp(info.name, name) == 0)
            got += (long long)info.items_in;
    }
    CHECK_EQ(got, in);
    free(seen);
    for (int i = 0; i < 6; i++)
        close(fds[i]);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A recoverable worker killed after its end of stream, while it waits to
 * be let go, is replaced by one that only ends its stream again (and so
 * is a replacement of that one killed at once): the run goes on, and
 * every item arrives exactly once. */
static void worker_killed_after_its_end_is_replaced(void)
{
    for (int again = 0; again <= 2; again += 2) {
        int fds[6]; /* pids, said, hold: read and write ends */
        REQUIRE(pipe(fds) == 0 && pipe(fds + 2) == 0 && pipe(fds + 4) == 0, "pipe");
        const int64_t n = 5000;
        mpx_graph_t *g = MPX_EZ(range_node(0, n), mpx_as(2, &NotePid, &fds[1]),
                                mpx_stage(&Gate, &(gate_args_t){fds[3], fds[4]}));
        run_killed_at_gate(g, fds, "notepid", again, n, n, n, -1);
    }
}

/* Passes ids up to `at`, then stops itself; its teardown waits at a gate
 * like Gate's. */
typedef struct stop_at_args {
    int pids; /* first, for note_pid_setup */
    int64_t at;
    gate_args_t gate;
} stop_at_args_t;
static int stop_at_process(mpx_stage_t *st, mpx_item_t *it)
{
    const stop_at_args_t *a = mpx_args(st);
    int rc = mpx_put_item(st, it);
    if (rc == 0 && mpx_item_i64(it) >= a->at)
        rc = mpx_stop(st);
    return rc;
}
static int stop_at_teardown(mpx_stage_t *st)
{
    const stop_at_args_t *a = mpx_args(st);
    char c = 't';
    if (write(a->gate.said, &c, 1) != 1 || read(a->gate.hold, &c, 1) != 1)
        return mpx_fail(st, "gate pipes: %s", strerror(errno));
    return 0;
}
static const mpx_stage_def_t StopAt = {.name = "stopat", .args_size = sizeof(stop_at_args_t),
                                       .setup = note_pid_setup, .process = stop_at_process,
                                       .teardown = stop_at_teardown};

/* Waits for a byte on a pipe in teardown: until then the ends of stream
 * of the stages before it are not confirmed, so they wait to be let go. */
static int hold_teardown(mpx_stage_t *st)
{
    char c;
    if (read(*(const int *)mpx_args(st), &c, 1) != 1)
        return mpx_fail(st, "hold pipe: %s", strerror(errno));
    return 0;
}
static const mpx_stage_def_t Hold = {.name = "hold", .args_size = sizeof(int),
                                     .teardown = hold_teardown, .process = pass};

/* A recoverable stage that stopped itself and is killed afterwards stays
 * stopped, and so do its replacements: none takes an item, and what it
 * put before it stopped arrives once.  A replacement of a stopped stage
 * only ends its stream again; the stage after it holds in its teardown
 * until the killer is done, so that each replacement waits to be let go
 * (instead of being gone before the killer looks). */
static void stopped_stage_killed_stays_stopped(void)
{
    for (int again = 0; again <= 2; again += 2) {
        int fds[6], late[2];
        REQUIRE(pipe(fds) == 0 && pipe(fds + 2) == 0 && pipe(fds + 4) == 0 && pipe(late) == 0,
                "pipe");
        const int64_t n = 100000, at = 500;
        stop_at_args_t args = {fds[1], at, {fds[3], fds[4]}};
        mpx_graph_t *g = MPX_EZ(range_node(0, n), mpx_stage(&StopAt, &args),
                                mpx_stage(&Hold, &late[0]));
        run_killed_at_gate(g, fds, "stopat", again, n, at + 1, at + 1, late[1]);
        close(late[0]);
        close(late[1]);
    }
}

/* After a run in which one process of `name` died once (setting *once):
 * every id in [0, n) arrived and `restarts` replacements were made (0: at
 * least one); then the run must have left nothing, and is destroyed with
 * the rest. */
static void expect_restarts(mpx_graph_t *g, unsigned char *seen, int64_t n, mpx_event_t **once,
                            const char *name, int restarts)
{
    for (int64_t id = 0; id < n; id++)
        if (seen[id] < 1) {
            CHECK(false, "id %lld lost", (long long)id);
            break;
        }
    CHECK(mpx_event_is_set(*once), "the crash happened");
    if (restarts)
        CHECK_EQ(sum_info(g, name, RESTARTS), restarts);
    else
        CHECK(sum_info(g, name, RESTARTS) >= 1, "no restart");
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(once);
}

/* The application holds a lock while a replacement is made.  A process
 * forked from the application's would copy it held (and wait on it
 * forever in a real program); the fork server's copy is the state the
 * stages were first forked in, unlocked.  Setup tries the lock rather than
 * waiting on it, so that a copy held fails the run at once, saying so. */
static pthread_mutex_t app_lock = PTHREAD_MUTEX_INITIALIZER;
static int lock_setup(mpx_stage_t *st)
{
    if (pthread_mutex_trylock(&app_lock) != 0)
        return mpx_fail(st, "this process started with the application's lock held");
    pthread_mutex_unlock(&app_lock);
    return 0;
}
static const mpx_stage_def_t LockSetup = {.name = "locksetup", .args_size = sizeof(crash_args_t),
                                          .setup = lock_setup, .process = crash_process};

static void *start_graph(void *g) { return (void *)(intptr_t)mpx_graph_start(g); }

/* Also with the graph started from a thread that has ended since (the
 * kernel's parent-death signal would come then, for the whole process).
 * The process that takes item 777 waits until the lock is held before it
 * dies, and the replacement is made inside mpx_graph_next, which runs only
 * while the lock is held. */
static void replacement_does_not_inherit_held_locks(void)
{
    for (int from_thread = 0; from_thread < 2; from_thread++) {
        mpx_event_t *once = mpx_event_new(), *locked = mpx_event_new();
        REQUIRE(once && locked, "event");
        const int64_t n = 20000;
        mpx_graph_t *g = MPX_EZ(
            range_node(0, n),
            mpx_as(2, &LockSetup, &(crash_args_t){.once = once, .id = 777, .sig = SIGKILL,
                                                     .after = locked, .hold = true}));
        CHECK_EQ(mpx_node_set_retries(g, 2), 0);
        if (from_thread) {
            pthread_t t;
            void *rc;
            REQUIRE(pthread_create(&t, NULL, start_graph, g) == 0, "thread");
            pthread_join(t, &rc);
            REQUIRE(rc == 0, "%s", mpx_graph_error(g));
        } else {
            REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
        }
        pthread_mutex_lock(&app_lock);
        mpx_event_set(locked);
        int64_t total;
        unsigned char *seen = collect_ids(g, n, &total, NULL);
        int rc = mpx_graph_join(g);
        pthread_mutex_unlock(&app_lock);
        CHECK_EQ(rc, 0);
        if (rc != 0)
            printf("error: %s\n", mpx_graph_error(g));
        mpx_event_destroy(&locked);
        expect_restarts(g, seen, n, &once, "locksetup", 1);
    }
}

/* What the application's memory says: 0 until its graph started, 1 after.
 * The fork server, and every process it clones, has the 0 it was forked
 * with; a process forked from the application's later has the 1. */
static volatile int app_epoch;

typedef struct fallback_args {
    crash_args_t crash; /* first: crash_process reads it */
    int notes, hold;    /* pipe ends */
} fallback_args_t;
typedef struct fallback_note {
    pid_t pid;
    int epoch;
} fallback_note_t;

/* Notes its pid and app_epoch; a replacement (the crash has happened)
 * then waits for a byte on `hold`, so that the run is still under way
 * while the test looks at the fork server. */
static int fallback_setup(mpx_stage_t *st)
{
    const fallback_args_t *a = mpx_args(st);
    fallback_note_t note = {getpid(), app_epoch};
    char c;
    if (write(a->notes, &note, sizeof note) != (ssize_t)sizeof note ||
        (mpx_event_is_set(a->crash.once) && read(a->hold, &c, 1) != 1))
        return mpx_fail(st, "note pipes: %s", strerror(errno));
    return 0;
}
static const mpx_stage_def_t FallbackCrash = {.name = "crash",
                                              .args_size = sizeof(fallback_args_t),
                                              .setup = fallback_setup,
                                              .process = crash_process};

typedef struct server_watch {
    int notes, hold, pidfd;
    pid_t server;
    fallback_note_t note; /* the replacement's */
    bool noted, gone;
    siginfo_t how; /* how the server ended */
} server_watch_t;

/* Once a replacement is in its setup, look whether the server has been
 * killed; then let the replacement go on.  The parent kills the server
 * before it forks the replacement, but the kernel ends the server only
 * when it next runs it: its pidfd says when.  The time limits only guard
 * against a hang. */
static void *watch_server(void *arg)
{
    server_watch_t *w = arg;
    struct pollfd p = {w->notes, POLLIN, 0};
    w->noted = poll(&p, 1, 60000) == 1 &&
               read(w->notes, &w->note, sizeof w->note) == (ssize_t)sizeof w->note;
    if (w->noted) {
        struct pollfd q = {w->pidfd, POLLIN, 0};
        w->how.si_pid = 0;
        /* WNOWAIT: the server stays the library's to reap. */
        w->gone = poll(&q, 1, 30000) == 1 &&
                  waitid(P_PID, (id_t)w->server, &w->how, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                  w->how.si_pid == w->server;
    }
    char c = 'o';
    if (write(w->hold, &c, 1) != 1)
        w->noted = false;
    return NULL;
}

/* The fork server does not answer (it is stopped before the crash):
 * the parent kills it, and forks the replacement from the application's
 * process instead.  The replacement's memory tells which of the two made
 * it. */
static void stopped_fork_server_is_replaced_by_fork(void)
{
    mpx_event_t *once = mpx_event_new(), *stopped = mpx_event_new();
    REQUIRE(once && stopped, "event");
    int fds[4]; /* notes, hold: read and write ends */
    REQUIRE(pipe(fds) == 0 && pipe(fds + 2) == 0, "pipe");
    const int64_t n = 20000;
    fallback_args_t args = {
        {.once = once, .id = 777, .sig = SIGKILL, .after = stopped, .hold = true}, fds[1], fds[2]};
    mpx_graph_t *g = MPX_EZ(range_node(0, n), mpx_as(2, &FallbackCrash, &args));
    CHECK_EQ(mpx_node_set_retries(g, 2), 0);
    app_epoch = 0;
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    app_epoch = 1;
    /* Both ran their setup before the start returned. */
    fallback_note_t first[2];
    for (int i = 0; i < 2; i++) {
        REQUIRE(read(fds[0], &first[i], sizeof first[i]) == (ssize_t)sizeof first[i], "notes");
        CHECK_EQ(first[i].epoch, 0);
    }
    /* The server is the one child that is not a stage process. */
    pid_t kids[64], server = 0;
    int nkids = children(kids, 64), others = 0;
    for (int i = 0; i < nkids; i++) {
        bool stage = false;
        for (size_t k = 0; k < mpx_graph_instance_count(g) && !stage; k++) {
            mpx_instance_info_t info;
            stage = mpx_graph_instance_info(g, k, &info) == 0 && info.pid == kids[i];
        }
        if (!stage) {
            server = kids[i];
            others++;
        }
    }
    REQUIRE(others == 1, "%d children besides the stages", others);
    int pidfd = (int)syscall(SYS_pidfd_open, server, 0);
    REQUIRE(pidfd >= 0, "pidfd_open: %s", strerror(errno));
    REQUIRE(kill(server, SIGSTOP) == 0, "SIGSTOP: %s", strerror(errno));
    siginfo_t si = {0};
    REQUIRE(waitid(P_PID, (id_t)server, &si, WSTOPPED | WNOWAIT) == 0 && si.si_code == CLD_STOPPED,
            "the server did not stop");
    mpx_event_set(stopped);
    server_watch_t w = {.notes = fds[0], .hold = fds[3], .pidfd = pidfd, .server = server};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, watch_server, &w) == 0, "thread");
    int64_t total;
    unsigned char *seen = collect_ids(g, n, &total, NULL);
    CHECK_EQ(mpx_graph_join(g), 0);
    pthread_join(t, NULL);
    CHECK(w.noted, "no replacement ran its setup");
    if (w.noted) {
        CHECK(w.note.pid != first[0].pid && w.note.pid != first[1].pid, "pid %d noted again",
              (int)w.note.pid);
        CHECK(w.note.epoch == 1,
              "the replacement has the fork server's memory: it was not forked from the "
              "application's process");
    }
    CHECK(w.gone && w.how.si_code == CLD_KILLED && w.how.si_status == SIGKILL,
          "the server was not killed before the replacement started (ended: %d, code %d, "
          "status %d)",
          w.gone, w.how.si_code, w.how.si_status);
    close(pidfd);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    mpx_event_destroy(&stopped);
    /* Forked from this threaded process, a replacement may wait forever on
     * a lock (AddressSanitizer's allocator does that now and then), and is
     * then replaced again after 5 s. */
    expect_restarts(g, seen, n, &once, "crash", 0);
}

/* The limit is far above what an item that is not meant to hang takes:
 * its process call only forwards it, waiting at most for credit from this
 * process, which takes items all along.  Only a process kept off the CPU
 * that long in the middle of an item (the stage's, or this one while the
 * stage waits for its credit) could be killed by mistake, which a loaded
 * machine does not do for seconds.  The hung item waits forever, so any
 * limit catches it; a larger one only makes the case longer. */
#define TIMEOUT_MS 3000

static void timeout_kills_and_replaces(void)
{
    /* Under skip: the hung item is given up, the rest arrive (those the
     * killed process had not confirmed perhaps twice, marked so). */
    const int64_t n = 300;
    mpx_graph_t *g = MPX_EZ(range_node(0, n), mpx_as(2, &Hang, &(int64_t){42}));
    CHECK_EQ(mpx_node_set_timeout(g, TIMEOUT_MS), 0);
    CHECK_EQ(mpx_node_on_error(g, MPX_ON_ERROR_SKIP, NULL), 0);
    int64_t total, redelivered, dups = 0;
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    unsigned char *seen = collect_ids(g, n, &total, &redelivered);
    CHECK_EQ(mpx_graph_join(g), 0);
    for (int64_t id = 0; id < n; id++) {
        CHECK(id == 42 ? seen[id] == 0 : seen[id] >= 1, "id %lld arrived %d times",
              (long long)id, seen[id]);
        dups += seen[id] > 1 ? seen[id] - 1 : 0;
    }
    CHECK(dups <= redelivered, "%lld duplicates, %lld marked as sent again", (long long)dups,
          (long long)redelivered);
    CHECK_EQ(sum_info(g, "hang", RESTARTS), 1);
    CHECK_EQ(sum_info(g, "hang", FAILED), 1);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);

    /* Under stop: the run ends, saying so. */
    g = MPX_EZ(range_node(0, n), mpx_stage(&Hang, &(int64_t){42}));
    CHECK_EQ(mpx_node_set_timeout(g, TIMEOUT_MS), 0);
    char want[64];
    snprintf(want, sizeof want, "exceeded its per-item timeout of %d ms", TIMEOUT_MS);
    EXPECT_ERROR(g, MPX_ECRASH, want, "while processing item 43 {i: 42}");
}

/* A map applied to runs of int64 many items at a time (graph/i64map.h)
 * notes each item in hand as it goes: a crash or a hang names the item
 * that caused it, the 7778th of a range from 0 for the value 7777 (items
 * counted from 1), as item by item. */
static int64_t abort_at_7777(int64_t x)
{
    if (x == 7777)
        abort();
    return x + 1;
}

static int64_t hang_at_4242(int64_t x)
{
    while (x == 4242)
        pause();
    return x - 1;
}

static void map_over_runs_names_the_item_in_hand(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_range(0, 20000, 1), MPX_MAP(abort_at_7777));
    EXPECT_ERROR(g, MPX_ECRASH, "stage 'abort_at_7777'", "was killed by signal 6 (Aborted)",
                 "while processing item 7778");
    g = MPX_EZ(mpx_range(0, 20000, 1), MPX_MAP(hang_at_4242));
    CHECK_EQ(mpx_node_set_timeout(g, TIMEOUT_MS), 0);
    char want[64];
    snprintf(want, sizeof want, "exceeded its per-item timeout of %d ms", TIMEOUT_MS);
    EXPECT_ERROR(g, MPX_ECRASH, want, "while processing item 4243");
}

/* ---- setup, teardown, sizes, bad messages -------------------------------- */

static int bad_setup(mpx_stage_t *st) { return mpx_fail(st, "no model file"); }
static const mpx_stage_def_t BadSetup = {.name = "badsetup", .setup = bad_setup,
                                         .process = pass};

static int bad_teardown(mpx_stage_t *st) { return mpx_fail(st, "cannot flush the index"); }
static const mpx_stage_def_t BadTeardown = {.name = "badteardown", .teardown = bad_teardown,
                                            .process = pass};

static void setup_failure_fails_before_items(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 100), mpx_as(2, &BadSetup, NULL));
    CHECK_EQ(mpx_graph_start(g), MPX_ESTAGE);
    CHECK(strstr(mpx_graph_error(g), "stage 'badsetup' instance ") &&
              strstr(mpx_graph_error(g), "setup failed: no model file"),
          "message: %s", mpx_graph_error(g));
    CHECK(mpx_graph_next(g) == NULL, "an item flowed");
    CHECK_EQ(mpx_graph_instance_count(g), 3);
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        REQUIRE(mpx_graph_instance_info(g, i, &info) == 0, "instance %zu", i);
        CHECK(info.items_out == 0 && info.items_in == 0, "%s moved items", info.name);
    }
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void teardown_failure_reported(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 100), mpx_stage(&BadTeardown, NULL));
    EXPECT_ERROR(g, MPX_ESTAGE, "stage 'badteardown'", "teardown failed: cannot flush the index");
}

/* A process that dies on its way out (here: _exit in teardown), each
 * time, under a retry policy: its replacements take again what was not
 * confirmed and die the same way.  They are not made for ever: after
 * three in a row after the input's end the run fails, naming the exit. */
static int exit_in_teardown(mpx_stage_t *st)
{
    (void)st;
    fflush(NULL);
    _exit(99);
}
static const mpx_stage_def_t ExitAtEnd = {.name = "exitatend", .process = pass,
                                          .teardown = exit_in_teardown};

static void death_at_exit_not_replaced_for_ever(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 10), mpx_as(2, &ExitAtEnd, NULL));
    REQUIRE(mpx_node_set_retries(g, 2) == 0, "retries");
    EXPECT_ERROR(g, MPX_ECRASH, "stage 'exitatend'", "exited with status 99",
                 "times in a row after its input ended, so it is not replaced again");
}

static int big_setup(mpx_stage_t *st)
{
    static char buf[4096];
    int rc = mpx_put(st, buf, 100);
    if (rc == 0)
        rc = mpx_put(st, buf, sizeof buf);
    return rc;
}
static const mpx_stage_def_t Big = {.name = "big", .setup = big_setup};

/* An item of exactly the limit (parts and framing) put by one stage is
 * passed on by the next (mpx_put_item) within the same limit, with and
 * without a pool (where passing on takes the pool's path): an item is
 * judged the same at every stage. */
static int limit_setup(mpx_stage_t *st)
{
    static char buf[1024];
    /* 16 bytes of head, 8 of length, 992 + NUL padded to 1000: 1024. */
    const size_t *n = mpx_args(st);
    memset(buf, 'x', sizeof buf);
    return mpx_put(st, buf, *n);
}
static const mpx_stage_def_t AtLimit = {
    .name = "at_limit", .args_size = sizeof(size_t), .setup = limit_setup};
static int pass_on(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }
static const mpx_stage_def_t PassOn = {.name = "pass_on", .process = pass_on};

static void item_limit_same_at_every_stage(void)
{
    for (int pool = 0; pool < 2; pool++) {
        mpx_graph_t *g = MPX_EZ(mpx_stage(&AtLimit, &(size_t){992}), mpx_stage(&PassOn, NULL),
                                mpx_stage(&PassOn, NULL));
        CHECK_EQ(mpx_node_set_max_item(g, 1024), 0);
        CHECK_EQ(mpx_graph_set_pool(g, pool ? (size_t)8 << 20 : 0), 0);
        mpx_list_t *out = NULL;
        int rc = mpx_graph_collect(g, &out);
        CHECK(rc == 0, "pool %d: %s", pool, mpx_graph_error(g));
        CHECK(out && mpx_list_size(out) == 1 && mpx_item_size(mpx_list_at(out, 0), 0) == 992,
              "pool %d: the item did not come through whole", pool);
        mpx_list_destroy(&out);
        expect_clean(g);
        mpx_node_destroy(&g);
        /* Eight bytes more: refused where it is put, not further on. */
        g = MPX_EZ(mpx_stage(&AtLimit, &(size_t){1000}), mpx_stage(&PassOn, NULL));
        CHECK_EQ(mpx_node_set_max_item(g, 1024), 0);
        CHECK_EQ(mpx_graph_set_pool(g, pool ? (size_t)8 << 20 : 0), 0);
        EXPECT_ERROR(g, MPX_ESTAGE, "stage 'at_limit'",
                     "an item of 1032 bytes is larger than the maximum of 1024");
    }
}

static void oversize_item_refused(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Big, NULL), mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_node_set_max_item(g, 1024), 0);
    EXPECT_ERROR(g, MPX_ESTAGE, "stage 'big'",
                 "an item of 4128 bytes is larger than the maximum of 1024");
}

/* Send raw bytes to a socket of a running graph, as a stray or hostile
 * process could, on a connection of our own that frames as mpx does
 * (lib/xport.h: a 4-byte length, then the bytes; first the routing id,
 * one of our choosing when none is given); false when that failed.  They
 * are in the peer's socket when this returns. */
static bool send_raw_inbox(const char *path, const void *rid, size_t ridlen, const void *data,
                           size_t len)
{
    /* A new one each time: a connection's id is refused while an earlier
     * connection with it may not be seen to have ended yet. */
    static uint8_t ours[5] = {0, 'r', 'a', 'w', 0};
    if (!rid) {
        ours[4]++;
        rid = ours;
        ridlen = sizeof ours;
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path)
        return false;
    memcpy(a.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    uint32_t rl = (uint32_t)ridlen, dl = (uint32_t)len;
    /* In one call: a peer that refuses the hello (an id already
     * connected) closes the connection, and a later write would raise
     * SIGPIPE here. */
    struct iovec iov[4] = {{&rl, 4}, {(void *)rid, ridlen}, {&dl, 4}, {(void *)data, len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 4};
    bool sent = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)(8 + ridlen + len);
    close(fd); /* what was written is read before the end of the connection */
    return sent;
}

/* Into an inbox ("i<id>") or a control channel ("c<id>"): both are
 * framed connections (lib/xport.h). */
static bool send_raw_as(mpx_graph_t *g, const void *rid, size_t ridlen, const char *name,
                        const void *data, size_t len)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", mpx_graph_runtime_dir(g), name);
    return send_raw_inbox(path, rid, ridlen, data, len);
}

/* Raw bytes into an inbox or a control channel, from a sender of our
 * choosing. */
static bool send_raw(mpx_graph_t *g, const char *name, const void *data, size_t len)
{
    return send_raw_as(g, NULL, 0, name, data, len);
}

/* A 16-byte message header (lib/wire.h): magic, version, type, flags,
 * then the sender, the record count and the sender's generation. */
static void put_header(uint8_t *buf, uint8_t type, uint32_t sender, uint32_t count,
                       uint32_t gen)
{
    const uint32_t w[3] = {sender, count, gen};
    buf[0] = 0x6d;
    buf[1] = 2; /* WIRE_VERSION */
    buf[2] = type;
    buf[3] = 0;
    memcpy(buf + 4, w, sizeof w);
}

/* Endless feeds inc (instance 1), which feeds drop (instance 2).  Into the
 * inbox of inc, in a run each (the first one fails the stage): garbage; a
 * well-formed DATA message of one item from drop, a sender that does not
 * feed it; a header of the real producer's from another connection (an
 * edge's messages come on its own connection, under the producer's
 * routing id); and a header of an unknown type from a connection with the
 * routing id a replacement of the producer would have; and from that
 * connection, a DATA message of three records whose second says it is 8
 * bytes long, too short for its own header and part (a length that wraps
 * around when subtracted, to a part of 4 GiB): the first record is taken
 * with the message, the second on the common record's short path; and
 * two runs of int64 and a message of packed int64 that are not well
 * formed.  The source never ends, so
 * inc takes messages until the stray one comes. */
static void malformed_edge_message_reported(void)
{
    static const char junk[] = "this is not an mpx message";
    uint8_t foreign[16 + 40] = {0}, impostor[16] = {0}, unknown[16] = {0}, shortrec[16 + 40 + 40] = {0};
    put_header(foreign, 1, 2, 1, 0);
    /* One record: size, one part and no meta, meta size, flags; the part:
     * its length, the i64, the NUL and padding. */
    const uint32_t rec[4] = {40, 1, 0, 0};
    const uint64_t part[2] = {8, 7};
    memcpy(foreign + 16, rec, sizeof rec);
    memcpy(foreign + 32, part, sizeof part);
    put_header(impostor, 2, 0, 0, 0);
    put_header(unknown, 99, 0, 0, 1);
    put_header(shortrec, 1, 0, 3, 1);
    memcpy(shortrec + 16, rec, sizeof rec);
    memcpy(shortrec + 32, part, sizeof part);
    const uint32_t tiny[4] = {8, 1, 0, 0};
    const uint64_t huge = 0xFFFFFFE8u;
    memcpy(shortrec + 56, tiny, sizeof tiny);
    memcpy(shortrec + 72, &huge, sizeof huge);
    /* A run of int64 (lib/wire.h WIRE_DATA_ARITH) one number short, and
     * one that also says it refers to the pool. */
    uint8_t runshort[16 + 8] = {0}, runpool[16 + 16] = {0}, packshort[16 + 24] = {0};
    put_header(runshort, 1, 0, 4, 1);
    runshort[3] = 2;
    put_header(runpool, 1, 0, 4, 1);
    runpool[3] = 2 | 1;
    /* Packed int64 (WIRE_DATA_I64) that says four and holds three. */
    put_header(packshort, 1, 0, 4, 1);
    packshort[3] = 4;
    /* The routing id of instance 0 in generation 1 (lib/edge.c edge_rid). */
    const uint8_t replacement[9] = {'m', 0, 0, 0, 0, 1, 0, 0, 0};
    const struct {
        const void *data;
        size_t len;
        const uint8_t *rid;
        const char *what;
    } bad[] = {
        {junk, sizeof junk, NULL, "malformed message on an edge (header, sender 0)"},
        {foreign, sizeof foreign, NULL,
         "malformed message on an edge (unknown sender, sender 2)"},
        {impostor, sizeof impostor, NULL,
         "malformed message on an edge (not from its sender's connection, sender 0)"},
        {unknown, sizeof unknown, replacement, "malformed message on an edge (data, sender 0)"},
        {shortrec, sizeof shortrec, replacement,
         "malformed message on an edge (record, sender 0)"},
        {runshort, sizeof runshort, replacement, "malformed message on an edge (data, sender 0)"},
        {runpool, sizeof runpool, replacement, "malformed message on an edge (data, sender 0)"},
        {packshort, sizeof packshort, replacement,
         "malformed message on an edge (data, sender 0)"},
        /* A frame of no bytes, which the framing refuses. */
        {"", 0, NULL, "malformed message on an edge (framing, sender 0)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mpx_graph_t *g =
            MPX_EZ(mpx_stage(&Endless, NULL), mpx_stage(&Inc, NULL), mpx_stage(&Drop, NULL));
        REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
        REQUIRE(send_raw_as(g, bad[i].rid, bad[i].rid ? sizeof replacement : 0, "i1",
                            bad[i].data, bad[i].len),
                "send: %s", zmq_strerror(errno));
        CHECK(mpx_graph_next(g) == NULL, "an item came out of drop");
        EXPECT_ERROR(g, MPX_ESTAGE, "stage 'inc'", bad[i].what);
    }
}

/* Puts 0 .. n-1, but waits for `go` before it puts `at`. */
typedef struct gated_range_args {
    int64_t n, at;
    mpx_event_t *go;
} gated_range_args_t;
static int gated_range_setup(mpx_stage_t *st)
{
    const gated_range_args_t *a = mpx_args(st);
    for (int64_t v = 0; v < a->n; v++) {
        if (v == a->at && mpx_event_wait(a->go, -1) != 1)
            return mpx_fail(st, "waiting for the go-ahead failed");
        int rc = mpx_put_i64(st, v);
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t GatedRange = {.name = "gatedrange",
                                           .args_size = sizeof(gated_range_args_t),
                                           .setup = gated_range_setup};

/* Append what `fd` has to text (NUL-terminated, cap bytes) until it holds
 * both `a` and `b`; false when the time limit, a guard against a hang,
 * passes first. */
static bool read_until(int fd, char *text, size_t cap, const char *a, const char *b)
{
    size_t len = strlen(text);
    while (!strstr(text, a) || !strstr(text, b)) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t got;
        if (len + 1 >= cap || poll(&p, 1, 60000) != 1 ||
            (got = read(fd, text + len, cap - len - 1)) <= 0)
            return false;
        len += (size_t)got;
        text[len] = 0;
    }
    return true;
}

/* A stray connection can talk to the control channel of 'spin'.  Unknown
 * and malformed messages are reported on stderr and ignored.
 * The source holds half of its items back until both reports are on
 * stderr (a pipe here, which the stage processes inherit), so spin is mid
 * stream meanwhile: it reads its control channel while it waits for input,
 * and sends nothing the parent needs while the stray peer, which would
 * take its turn of what spin sends, is connected. */
static void malformed_control_message_reported(void)
{
    static const char want_unknown[] = "stage spin[0]: ignored control message 99",
                      want_malformed[] = "stage spin[0]: ignored a malformed control message";
    mpx_event_t *go = mpx_event_new();
    REQUIRE(go, "event");
    long spins = 1000;
    const int64_t n = 3000;
    mpx_graph_t *g = MPX_EZ(mpx_stage(&GatedRange, &(gated_range_args_t){n, n / 2, go}),
                            mpx_stage(&Spin, &spins));
    int p[2];
    REQUIRE(pipe(p) == 0, "pipe");
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    REQUIRE(saved >= 0 && dup2(p[1], STDERR_FILENO) == STDERR_FILENO, "dup");
    close(p[1]);
    /* Until stderr is back, failures are only noted. */
    int started = mpx_graph_start(g);
    char text[8192] = "";
    bool sent = false, heard = false;
    if (started == 0) {
        uint8_t unknown[16] = {0};
        put_header(unknown, 99, 0, 0, 0);
        sent = send_raw(g, "c1", unknown, sizeof unknown) && send_raw(g, "c1", "xx", 2);
        heard = sent && read_until(p[0], text, sizeof text, want_unknown, want_malformed);
    }
    mpx_event_set(go);
    int64_t count = 0;
    drain_sum(g, &count);
    int rc = mpx_graph_join(g);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(p[0]);
    REQUIRE(started == 0, "%s", mpx_graph_error(g));
    CHECK(sent, "could not send");
    CHECK(heard, "stderr: %s", text);
    CHECK_EQ(rc, 0);
    CHECK_EQ(count, n);
    mpx_event_destroy(&go);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void no_faults_exactly_once_with_recovery_on(void)
{
    const int64_t n = 200000;
    mpx_graph_t *g = MPX_EZ(range_node(0, n), mpx_as(4, &Inc, NULL), mpx_as(2, &Inc, NULL));
    CHECK_EQ(mpx_node_set_retries(g, 3), 0);
    int64_t total;
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    unsigned char *seen = collect_ids(g, n + 2, &total, NULL);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(total, n);
    for (int64_t id = 2; id < n + 2; id++)
        if (seen[id] != 1) {
            CHECK(false, "id %lld arrived %d times", (long long)id, seen[id]);
            break;
        }
    CHECK_EQ(sum_info(g, "inc", RESTARTS), 0);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(stop_names_stage_instance_and_meta),
        TEST_CASE(skip_drops_counts_and_logs),
        TEST_CASE(retries_then_success),
        TEST_CASE(dead_letter_gets_item_meta_and_error),
        TEST_CASE(policy_settings_checked),
        TEST_CASE(reject_follows_policy),
        TEST_CASE(crash_under_stop_names_signal_and_item),
        TEST_CASE(crashed_worker_is_replaced_nothing_lost),
        TEST_CASE(poison_item_handled_by_policy),
        TEST_CASE(replaced_producer_finds_replaced_consumer),
        TEST_CASE(worker_killed_after_its_end_is_replaced),
        TEST_CASE(stopped_stage_killed_stays_stopped),
        TEST_CASE(replacement_does_not_inherit_held_locks),
        TEST_CASE(stopped_fork_server_is_replaced_by_fork),
        TEST_CASE(timeout_kills_and_replaces),
        TEST_CASE(map_over_runs_names_the_item_in_hand),
        TEST_CASE(setup_failure_fails_before_items),
        TEST_CASE(teardown_failure_reported),
        TEST_CASE(death_at_exit_not_replaced_for_ever),
        TEST_CASE(oversize_item_refused),
        TEST_CASE(item_limit_same_at_every_stage),
        TEST_CASE(malformed_edge_message_reported),
        TEST_CASE(malformed_control_message_reported),
        TEST_CASE(no_faults_exactly_once_with_recovery_on),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
