/* tests/test_monitor.c — what a user watching a graph sees: the watch
 * table on stderr, the JSON stream, the figures through the C API, the
 * stats socket in the runtime directory, and states after a failure.
 * Nothing here asserts on time: a slow machine makes fewer snapshots, and
 * every check holds for any number of them above the minimum a run of
 * this length must produce. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <pty.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "harness.h"
#include "stages.h"

/* Sleeps a little per item: slow enough that queues fill and several
 * snapshots are taken while items flow. */
static int nap(mpx_stage_t *st, mpx_item_t *it)
{
    usleep(*(const int *)mpx_args(st));
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Nap = {.name = "nap", .args_size = sizeof(int), .process = nap};

static int crash_at_50(mpx_stage_t *st, mpx_item_t *it)
{
    if (mpx_item_i64(it) == 50)
        raise(SIGSEGV);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t CrashAt50 = {.name = "crasher", .process = crash_at_50};

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void run_watched(void *arg)
{
    mpx_graph_t *g = arg;
    CHECK_EQ(mpx_graph_join(g), 0);
}

/* A stage's row in the watch table that begins at `table`, with the
 * columns up to out as printed; NULL when that table has no such row.
 * Only that table is searched, and a row only by its name column, so a
 * figure can never be taken from another row or table. */
typedef struct watch_row {
    char inst[16], state[16], in[16], out[16];
} watch_row_t;

static const char *watch_row(const char *table, const char *name, watch_row_t *row)
{
    for (const char *nl = strchr(table, '\n'); nl && nl[1]; nl = strchr(nl + 1, '\n')) {
        const char *line = nl + 1;
        if (strncmp(line, "mpx ", 4) == 0)
            break; /* the next table */
        char stage[64];
        if (sscanf(line, "%63s %15s %15s %15s %15s", stage, row->inst, row->state, row->in,
                   row->out) == 5 &&
            strcmp(stage, name) == 0)
            return line;
    }
    return NULL;
}

/* mpx_graph_watch: a table per interval, one line per stage in graph
 * order, and a last one at the end with the final counts. */
static void watch_prints_table(void)
{
    int us = 3000;
    mpx_graph_t *g = MPX_EZ(range_node(0, 300), mpx_as(2, &Nap, &us), mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_set_stats_interval(g, 50), 0);
    CHECK_EQ(mpx_graph_watch(g, 50), 0);
    char *err = capture_stderr(run_watched, g);
    /* 300 items at 3 ms over 2 workers last at least 0.45 s: several
     * tables, however slow the machine. */
    CHECK(count_of(err, "mpx ") >= 3, "tables: %d\n%s", count_of(err, "mpx "), err);
    CHECK_EQ(count_of(err, "(ended)"), 1);
    const char *last = strstr(err, "(ended)");
    REQUIRE(last, "%s", err);
    watch_row_t r, n, d;
    const char *rl = watch_row(last, "range", &r), *nl = watch_row(last, "nap", &n),
               *dl = watch_row(last, "drop", &d);
    REQUIRE(rl && nl && dl, "a stage is missing from the last table:\n%s", last);
    CHECK(rl < nl && nl < dl, "graph order in the last table:\n%s", last);
    /* The last table has the final counts: 300 through every stage, and
     * every instance done. */
    CHECK(strcmp(r.inst, "1") == 0 && strcmp(r.state, "done") == 0 && strcmp(r.out, "300") == 0,
          "range row: %s", last);
    CHECK(strcmp(n.inst, "0/2") == 0 && strcmp(n.state, "done") == 0 &&
              strcmp(n.in, "300") == 0 && strcmp(n.out, "300") == 0,
          "nap row: %s", last);
    CHECK(strcmp(d.inst, "1") == 0 && strcmp(d.state, "done") == 0 && strcmp(d.in, "300") == 0 &&
              strcmp(d.out, "0") == 0,
          "drop row: %s", last);
    free(err);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void unwatched_prints_nothing(void)
{
    int us = 1000;
    mpx_graph_t *g = MPX_EZ(range_node(0, 100), mpx_stage(&Nap, &us), mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_set_stats_interval(g, 20), 0);
    CHECK_EQ(mpx_graph_watch(g, 20), 0);
    CHECK_EQ(mpx_graph_unwatch(g), 0);
    char *err = capture_stderr(run_watched, g);
    CHECK_EQ(strlen(err), 0);
    free(err);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void bad_settings_refused(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 3), mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_set_stats_interval(g, 5), MPX_EINVAL);
    CHECK_EQ(mpx_graph_set_stats_interval(g, 70000), MPX_EINVAL);
    CHECK_EQ(mpx_graph_watch(g, -1), MPX_EINVAL);
    CHECK_EQ(mpx_graph_watch(NULL, 100), MPX_EINVAL);
    CHECK_EQ(mpx_graph_stage_count(g), 0);
    mpx_stage_stats_t s;
    CHECK_EQ(mpx_graph_stage_stats(g, 0, &s), MPX_ERANGE);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(mpx_graph_set_stats_interval(g, 100), MPX_ESTATE);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A fresh file for the JSON stream, in the case's private directory. */
static FILE *stats_file(char *path, size_t cap)
{
    snprintf(path, cap, "%s/stats.jsonl", harness_tmpdir());
    FILE *f = fopen(path, "w");
    REQUIRE(f, "%s", strerror(errno));
    return f;
}

/* Run a python script with the JSON lines file as argv[1]; its exit
 * status (0 when every assert held).  The file is removed. */
static int check_stream(const char *path, const char *script)
{
    char *cmd = NULL;
    REQUIRE(asprintf(&cmd, "python3 - '%s' <<'EOF'\nimport json, sys\n"
                           "rows = [json.loads(l) for l in open(sys.argv[1])]\n%sEOF",
                     path, script) >= 0,
            "out of memory");
    int rc = system(cmd);
    free(cmd);
    unlink(path);
    return rc;
}

/* The JSON stream: every line a JSON object python accepts, with the
 * documented fields; the last says the graph ended well, with the final
 * counts. */
static void json_stream(void)
{
    char path[512];
    FILE *f = stats_file(path, sizeof path);
    int us = 2000;
    mpx_graph_t *side = MPX_EZ(mpx_stage(&Drop, NULL));
    mpx_graph_t *g = MPX_EZ(mpx_range(0, 200, 1), mpx_by(2, &Nap, &us), mpx_stage(&Inc, NULL));
    REQUIRE(mpx_graph_xcut(g, "side", side) == 0, "xcut");
    CHECK_EQ(mpx_graph_set_stats_interval(g, 40), 0);
    CHECK_EQ(mpx_graph_stats_to(g, f), 0);
    int64_t count = 0;
    drain_sum(g, &count);
    CHECK_EQ(count, 400);
    CHECK_EQ(mpx_graph_join(g), 0);
    fclose(f);
    CHECK_EQ(check_stream(path,
                          "assert len(rows) >= 3, len(rows)\n"
                          "for r in rows:\n"
                          "    assert r['mpx_stats'] == 1 and r['interval_ms'] == 40\n"
                          "    assert [s['name'] for s in r['stages']] == ['range', 'nap', 'inc', 'drop'], r\n"
                          "    assert r['tree']['kind'] == 'serial' and r['tree']['xcuts'][0]['name'] == 'side'\n"
                          "    for s in r['stages']:\n"
                          "        assert 0 <= s['busy'] <= 1 and 0 <= s['depth'] <= s['capacity'], s\n"
                          "        assert len(s['inst']) == s['instances']\n"
                          "assert not any(r['ended'] for r in rows[:-1])\n"
                          "last = rows[-1]\n"
                          "assert last['ended'] and last['outcome'] == 'ok', last\n"
                          "nap = last['stages'][1]\n"
                          "assert nap['mode'] == 'broadcast' and nap['in'] == 400 and nap['out'] == 400, nap\n"
                          "assert all(s['state'] == 'done' for s in last['stages']), last\n"
                          "assert last['output']['in'] == 400, last['output']\n"
                          "assert last['stages'][0]['progress'] == {'done': 200, 'total': 200}\n"),
             0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* The C API while running: the slow stage's queue fills to its
 * capacity and it is seen busy; at the end, the final figures. */
static void figures_while_running(void)
{
    int us = 2000;
    mpx_graph_t *g = MPX_EZ(mpx_range(0, 400, 1), mpx_stage(&Nap, &us));
    CHECK_EQ(mpx_node_set_capacity(g, 64, 0), 0);
    CHECK_EQ(mpx_graph_set_stats_interval(g, 20), 0);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(mpx_graph_stage_count(g), 2);
    uint64_t deepest = 0;
    double busiest = 0;
    int seen = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        mpx_stage_stats_t s;
        REQUIRE(mpx_graph_stage_stats(g, 1, &s) == 0, "stats");
        CHECK_EQ(s.capacity, 64);
        CHECK(s.depth <= s.capacity, "depth %llu", (unsigned long long)s.depth);
        if (s.depth > deepest)
            deepest = s.depth;
        if (s.busy > busiest)
            busiest = s.busy;
        seen++;
    }
    CHECK_EQ(seen, 400);
    /* The source is far faster than 2 ms an item: the queue fills. */
    CHECK(deepest >= 32, "deepest queue %llu of 64", (unsigned long long)deepest);
    /* Sleeping in process is not waiting for input: busy. */
    CHECK(busiest > 0.5, "busiest %.2f", busiest);
    CHECK_EQ(mpx_graph_join(g), 0);
    mpx_stage_stats_t s;
    REQUIRE(mpx_graph_stage_stats(g, 1, &s) == 0, "stats");
    CHECK_EQ(s.items_in, 400);
    CHECK_EQ(s.items_out, 400);
    CHECK_EQ(s.state, MPX_STATE_DONE);
    CHECK_EQ(s.running, 0);
    CHECK(strcmp(s.name, "nap") == 0, "%s", s.name);
    REQUIRE(mpx_graph_stage_stats(g, 0, &s) == 0, "stats");
    CHECK_EQ(s.progress_total, 400);
    CHECK_EQ(s.progress_done, 400);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A crash: the final figures say which stage failed, and the stream's
 * last line carries the error. */
static void failure_in_figures(void)
{
    char path[512];
    FILE *f = stats_file(path, sizeof path);
    mpx_graph_t *g = MPX_EZ(range_node(0, 1000), mpx_stage(&CrashAt50, NULL),
                            mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_stats_to(g, f), 0);
    CHECK_EQ(mpx_graph_join(g), MPX_ECRASH);
    fclose(f);
    mpx_stage_stats_t s;
    REQUIRE(mpx_graph_stage_stats(g, 1, &s) == 0, "stats");
    CHECK_EQ(s.state, MPX_STATE_FAILED);
    CHECK_EQ(check_stream(path,
                          "last = rows[-1]\n"
                          "assert last['ended'] and 'crasher' in last['outcome'], last['outcome']\n"
                          "assert last['stages'][1]['state'] == 'failed', last['stages'][1]\n"),
             0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- the stats socket ----------------------------------------------------- *
 * A subscriber thread reads snapshots while the test's main thread drives
 * the graph (the parent publishes only from inside mpx calls).  The stage
 * holds its first item until the subscriber has a snapshot, so at least
 * one arrives while the graph runs, whatever the machine's pace; the
 * subscriber then reads until the snapshot that says the graph ended.  Its
 * time limit only catches a snapshot that never comes. */

#define SUB_GUARD_S 30

typedef struct subscriber {
    const char *ep;
    mpx_event_t *first; /* set at the first snapshot */
    int connected, got, bad, ended;
    char bad_head[64];
} subscriber_t;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *subscribe(void *arg)
{
    subscriber_t *s = arg;
    void *ctx = zmq_ctx_new();
    void *sub = ctx ? zmq_socket(ctx, ZMQ_SUB) : NULL;
    int zero = 0;
    if (sub && zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero) == 0 &&
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0) == 0 && zmq_connect(sub, s->ep) == 0)
        s->connected = 1;
    double deadline = mono_s() + SUB_GUARD_S;
    char buf[8192];
    while (s->connected && !s->ended) {
        long left = (long)((deadline - mono_s()) * 1000);
        if (left <= 0)
            break;
        zmq_pollitem_t pi = {sub, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&pi, 1, left);
        if (rc < 0 && errno != EINTR)
            break;
        int n = rc > 0 ? zmq_recv(sub, buf, sizeof buf - 1, ZMQ_DONTWAIT) : -1;
        if (n < 0)
            continue;
        buf[n < (int)sizeof buf - 1 ? n : (int)sizeof buf - 1] = 0;
        if (strncmp(buf, "{\"mpx_stats\": 1", 15) != 0 && s->bad++ == 0)
            snprintf(s->bad_head, sizeof s->bad_head, "%.60s", buf);
        if (++s->got == 1)
            mpx_event_set(s->first);
        s->ended = strstr(buf, "\"ended\": true") != NULL;
    }
    if (sub)
        zmq_close(sub);
    if (ctx)
        zmq_ctx_term(ctx);
    return NULL;
}

/* Passes items on once `*(mpx_event_t **)args` is set. */
static int gated(mpx_stage_t *st, mpx_item_t *it)
{
    bool *open = mpx_state(st);
    if (!*open) {
        if (mpx_event_wait(*(mpx_event_t *const *)mpx_args(st), SUB_GUARD_S * 1000) != 1)
            return mpx_fail(st, "no snapshot reached the subscriber");
        *open = true;
    }
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Gated = {.name = "gated", .args_size = sizeof(mpx_event_t *),
                                      .state_size = sizeof(bool), .process = gated};

/* The stats socket lives in the runtime directory, which only the
 * graph's user may enter, and serves snapshots to a subscriber while the
 * graph runs, the last of them saying it ended. */
/* Threads of this process whose name zmq gives its own (ZMQbg/...). */
static int zmq_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], name[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            n += fgets(name, sizeof name, f) && strncmp(name, "ZMQbg", 5) == 0;
            fclose(f);
        }
    }
    closedir(d);
    return n;
}

/* The socket is there from the start, and a run starts zmq (its context
 * and threads) only once a monitor connects: until then, the parent has
 * no thread of zmq's. */
static void stats_socket_serves_owner(void)
{
    mpx_event_t *first = mpx_event_new();
    REQUIRE(first, "mpx_event_new: %s", strerror(errno));
    mpx_graph_t *g = MPX_EZ(range_node(0, 300), mpx_stage(&Gated, &first));
    CHECK_EQ(mpx_graph_set_stats_interval(g, 20), 0);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    const char *dir = mpx_graph_runtime_dir(g);
    struct stat sb;
    REQUIRE(stat(dir, &sb) == 0, "%s", strerror(errno));
    CHECK_EQ(sb.st_mode & 0777, 0700);
    char sock[600];
    snprintf(sock, sizeof sock, "%s/stats", dir);
    REQUIRE(stat(sock, &sb) == 0 && S_ISSOCK(sb.st_mode), "%s: no socket", sock);
    CHECK(zmq_threads() == 0, "%d zmq threads before any monitor connected", zmq_threads());

    char ep[620];
    snprintf(ep, sizeof ep, "ipc://%s", sock);
    subscriber_t s = {.ep = ep, .first = first};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, subscribe, &s) == 0, "pthread_create");
    int64_t n;
    drain_sum(g, &n);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(n, 300);
    pthread_join(t, NULL);
    CHECK(s.connected, "cannot connect to %s", ep);
    CHECK(s.bad == 0, "%d snapshots not JSON of the documented form, the first: %.60s", s.bad,
          s.bad_head);
    /* One while the stage waited for it, and the last. */
    CHECK(s.got >= 2, "snapshots received: %d", s.got);
    CHECK(s.ended, "no snapshot saying the graph ended (%d received)", s.got);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&first);
}

static void progress_from_stage_api(void)
{
    /* Outside a stage process the calls are refused. */
    CHECK_EQ(mpx_progress_total(NULL, 3), MPX_EINVAL);
    CHECK_EQ(mpx_progress_add(NULL, 3), MPX_EINVAL);
    char path[512];
    snprintf(path, sizeof path, "%s/in.txt", harness_tmpdir());
    FILE *f = fopen(path, "w");
    REQUIRE(f, "%s", strerror(errno));
    for (int i = 0; i < 1000; i++)
        fprintf(f, "line %d\n", i);
    long size = ftell(f);
    fclose(f);
    mpx_graph_t *g = MPX_EZ(mpx_read(path), mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_join(g), 0);
    mpx_stage_stats_t s;
    REQUIRE(mpx_graph_stage_stats(g, 0, &s) == 0, "stats");
    /* Read counts bytes, not lines. */
    CHECK_EQ(s.progress_total, size);
    CHECK_EQ(s.progress_done, size);
    CHECK_EQ(s.items_out, 1000);
    unlink(path);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Run a small graph in a child whose stderr is a terminal (a pty), and
 * return what the terminal showed.  progress: 1 on, -1 off, 0 default. */
static char *on_terminal(int progress, const char *env)
{
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    REQUIRE(pid >= 0, "forkpty: %s", strerror(errno));
    if (pid == 0) {
        if (env)
            setenv("MPX_PROGRESS", env, 1);
        int us = 1000;
        mpx_graph_t *g = MPX_EZ(mpx_range(0, 300, 1), mpx_stage(&Nap, &us), mpx_stage(&Drop, NULL));
        CHECK_EQ(mpx_graph_set_stats_interval(g, 20), 0);
        if (progress)
            CHECK_EQ(mpx_graph_set_progress(g, progress > 0), 0);
        int rc = mpx_graph_join(g);
        mpx_node_destroy(&g);
        _exit(rc == 0 ? 0 : 1);
    }
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    char buf[4096];
    ssize_t n;
    /* EIO once the child and its terminal are gone. */
    while ((n = read(master, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0)
            fwrite(buf, 1, (size_t)n, m);
    fclose(m);
    close(master);
    int status;
    REQUIRE(wait_child(pid, &status, 60), "the child did not end");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    return out;
}

/* On a terminal a source that knows its size gets a bar with its count,
 * rate and ETA, ending at 100 %; off by flag or by MPX_PROGRESS=0. */
static void progress_bar_on_terminal(void)
{
    char *out = on_terminal(0, NULL);
    CHECK(strstr(out, "range [") && strstr(out, "100% 300/300") && strstr(out, "/s"),
          "%s", out);
    CHECK(strstr(out, "ETA") || strstr(out, " in "), "%s", out);
    free(out);
    out = on_terminal(-1, NULL);
    CHECK(!strstr(out, "range ["), "off by flag: %s", out);
    free(out);
    out = on_terminal(0, "0");
    CHECK(!strstr(out, "range ["), "off by MPX_PROGRESS=0: %s", out);
    free(out);
}

/* Not a terminal: no bar unless asked for. */
static void no_progress_bar_off_terminal(void)
{
    int us = 100;
    mpx_graph_t *g = MPX_EZ(mpx_range(0, 100, 1), mpx_stage(&Nap, &us), mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_set_stats_interval(g, 10), 0);
    char *err = capture_stderr(run_watched, g);
    CHECK_EQ(strlen(err), 0);
    free(err);
    expect_clean(g);
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(watch_prints_table),
        TEST_CASE(unwatched_prints_nothing),
        TEST_CASE(bad_settings_refused),
        TEST_CASE(json_stream),
        TEST_CASE(figures_while_running),
        TEST_CASE(failure_in_figures),
        TEST_CASE(stats_socket_serves_owner),
        TEST_CASE(progress_from_stage_api),
        TEST_CASE(progress_bar_on_terminal),
        TEST_CASE(no_progress_bar_off_terminal),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
