/* tests/test_exit.c — every way a graph ends: success, a stage error, a
 * stage that crashes or exits, mpx_graph_stop, destroy while running, and
 * SIGINT/SIGTERM/SIGKILL to the parent.  Each checks that no process and
 * no runtime file is left.  Durations are printed, never asserted: the
 * generous limits only keep a hang from blocking the suite. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void success_is_clean(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 1000), mpx_as(3, &Inc, NULL), mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        CHECK_EQ(mpx_graph_instance_info(g, i, &info), 0);
        CHECK(WIFEXITED(info.wait_status) && WEXITSTATUS(info.wait_status) == 0,
              "%s exited with %x", info.name, info.wait_status);
    }
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Fails on item 500; the endless source upstream must be stopped. */
static int boom(mpx_stage_t *st, mpx_item_t *it)
{
    if (mpx_item_i64(it) == 500)
        return mpx_fail(st, "bad item %lld", (long long)mpx_item_i64(it));
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Boom = {.name = "boom", .process = boom};

static void stage_error_stops_graph(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_as(3, &Boom, NULL),
                            mpx_stage(&Inc, NULL));
    double t0 = now_s();
    int rc = mpx_graph_join(g);
    CHECK_EQ(rc, MPX_ESTAGE);
    const char *msg = mpx_graph_error(g);
    CHECK(strstr(msg, "stage 'boom' instance ") && strstr(msg, " of 3 (pid ") &&
              strstr(msg, "process failed on item ") && strstr(msg, ": bad item 500"),
          "message: %s", msg);
    printf("error: %s (graph ended %.0f ms after start)\n", msg, (now_s() - t0) * 1000);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static int crash(mpx_stage_t *st, mpx_item_t *it)
{
    if (mpx_item_i64(it) == 100)
        abort();
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Crash = {.name = "crasher", .process = crash};

static void crash_is_reported(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_stage(&Crash, NULL),
                            mpx_stage(&Inc, NULL));
    CHECK_EQ(mpx_graph_join(g), MPX_ECRASH);
    const char *msg = mpx_graph_error(g);
    CHECK(strstr(msg, "stage 'crasher' (pid ") && strstr(msg, "was killed by signal 6"), "%s", msg);
    printf("error: %s\n", msg);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static int quit(mpx_stage_t *st, mpx_item_t *it)
{
    if (mpx_item_i64(it) == 10)
        exit(3);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Quit = {.name = "quitter", .process = quit};

static void unexpected_exit_is_reported(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_as(2, &Quit, NULL));
    CHECK_EQ(mpx_graph_join(g), MPX_ECRASH);
    const char *msg = mpx_graph_error(g);
    CHECK(strstr(msg, "stage 'quitter' instance") && strstr(msg, "exited with status 3"), "%s",
          msg);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Counts its teardowns in memory shared with the test. */
static volatile int *teardowns_run;
static int count_teardown(mpx_stage_t *st)
{
    (void)st;
    __atomic_add_fetch(teardowns_run, 1, __ATOMIC_SEQ_CST);
    return 0;
}
static int pass_on(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }
static const mpx_stage_def_t Tally = {.name = "tally", .process = pass_on,
                                      .teardown = count_teardown};

/* README "Stop": every process is asked to end at once, and teardown does
 * not run. */
static void stop_endless_graph(void)
{
    teardowns_run = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(teardowns_run != MAP_FAILED, "mmap");
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_as(2, &Inc, NULL),
                            mpx_stage(&Tally, NULL));
    int64_t n = 0;
    while (n < 5000 && mpx_graph_next(g))
        n++;
    CHECK_EQ(n, 5000);
    double t0 = now_s();
    CHECK_EQ(mpx_graph_stop(g), 0);
    printf("stop took %.1f ms\n", (now_s() - t0) * 1000);
    CHECK_EQ(mpx_graph_join(g), MPX_ESTOPPED);
    CHECK_EQ(*teardowns_run, 0);
    expect_clean(g);
    mpx_node_destroy(&g);
    munmap((void *)teardowns_run, 4096);
}

/* A stage busy in its own code does not see the stop: README "Stop" says
 * mpx_graph_stop kills it after the grace period, and the run still counts
 * as stopped, not crashed.  The stage sets an event once it is inside its
 * callback, so the stop comes when it certainly is. */
static int busy(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    mpx_event_set(*(mpx_event_t *const *)mpx_args(st));
    for (;;)
        pause();
    return 0;
}
static const mpx_stage_def_t Busy = {.name = "busy", .args_size = sizeof(mpx_event_t *),
                                     .process = busy};

static void stop_stage_in_user_code(void)
{
    mpx_event_t *inside = mpx_event_new();
    REQUIRE(inside, "mpx_event_new: %s", strerror(errno));
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_stage(&Busy, &inside));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    /* A hang guard only: the stage gets its first item at once. */
    REQUIRE(mpx_event_wait(inside, 60000) == 1, "the stage never entered process");
    double t0 = now_s();
    CHECK_EQ(mpx_graph_stop(g), 0);
    printf("stop took %.1f ms\n", (now_s() - t0) * 1000);
    CHECK_EQ(mpx_graph_join(g), MPX_ESTOPPED);
    const char *msg = mpx_graph_error(g);
    CHECK(strstr(msg, "stopped by mpx_graph_stop"), "%s", msg);
    mpx_instance_info_t src, stage;
    REQUIRE(mpx_graph_instance_info(g, 0, &src) == 0 && mpx_graph_instance_info(g, 1, &stage) == 0,
            "no info");
    CHECK(stage.exited && WIFSIGNALED(stage.wait_status) && WTERMSIG(stage.wait_status) == SIGKILL,
          "the stage busy in its own code ended with status %x, not by SIGKILL", stage.wait_status);
    /* The source waits for credit inside mpx, so it normally sees the stop
     * and leaves by itself; on a starved machine the grace period may run
     * out first, so this is printed, not checked. */
    printf("the source %s\n", WIFEXITED(src.wait_status) ? "left by itself" : "was killed");
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&inside);
}

static void destroy_while_running(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_as(3, &Inc, NULL));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    pid_t pids[4];
    for (size_t i = 0; i < 4; i++) {
        mpx_instance_info_t info;
        CHECK_EQ(mpx_graph_instance_info(g, i, &info), 0);
        pids[i] = info.pid;
    }
    char dir[256];
    snprintf(dir, sizeof dir, "%s", mpx_graph_runtime_dir(g));
    mpx_node_destroy(&g);
    CHECK(g == NULL, "destroy clears the pointer");
    for (int i = 0; i < 4; i++)
        CHECK(kill(pids[i], 0) != 0 && errno == ESRCH, "process %d left", (int)pids[i]);
    CHECK(access(dir, F_OK) != 0, "runtime directory left");
    CHECK(no_children_left(0), "children left");
}

static void runtime_dir_is_private(void)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_stage(&Inc, NULL));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    const char *dir = mpx_graph_runtime_dir(g);
    REQUIRE(dir != NULL, "no runtime directory");
    CHECK(strncmp(dir, harness_tmpdir(), strlen(harness_tmpdir())) == 0, "%s not under TMPDIR",
          dir);
    struct stat sb;
    REQUIRE(stat(dir, &sb) == 0, "stat %s", dir);
    CHECK(S_ISDIR(sb.st_mode) && (sb.st_mode & 0777) == 0700 && sb.st_uid == getuid(),
          "mode %o", (unsigned)sb.st_mode);
    CHECK(dir_entries(dir) > 0, "no sockets in %s", dir);
    mpx_graph_stop(g);
    CHECK(access(dir, F_OK) != 0, "runtime directory left");
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Without $XDG_RUNTIME_DIR and $TMPDIR the directory goes to /dev/shm
 * (memory) when it can be made there, else to /tmp; either way it is
 * private and gone at the end, whatever the run's outcome. */
static void runtime_dir_default_base(void)
{
    char keep[4096];
    snprintf(keep, sizeof keep, "%s", getenv("TMPDIR") ? getenv("TMPDIR") : "");
    unsetenv("TMPDIR");
    char probe[] = "/dev/shm/mpx-probe-XXXXXX";
    bool shm = mkdtemp(probe) != NULL;
    if (shm)
        rmdir(probe);
    const char *want = shm ? "/dev/shm/mpx-" : "/tmp/mpx-";
    for (int fail_it = 0; fail_it < 2; fail_it++) {
        mpx_graph_t *g = fail_it ? MPX_EZ(mpx_stage(&Endless, NULL), mpx_stage(&Boom, NULL))
                                 : MPX_EZ(range_node(0, 100), mpx_stage(&Inc, NULL));
        REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", mpx_graph_runtime_dir(g));
        CHECK(strncmp(dir, want, strlen(want)) == 0, "%s is not under %s", dir, want);
        struct stat sb;
        CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0700, "%s not private", dir);
        int rc = mpx_graph_join(g);
        CHECK(fail_it ? rc != 0 : rc == 0, "join: %d (%s)", rc, mpx_graph_error(g));
        CHECK(access(dir, F_OK) != 0, "runtime directory %s left", dir);
        expect_clean(g);
        mpx_node_destroy(&g);
    }
    setenv("TMPDIR", keep, 1);
}

static const mpx_stage_def_t LongName = {.name = "a-very-long-stage-name", .process = boom};

static void processes_named_after_stages(void)
{
    mpx_node_t *renamed = mpx_stage(&Inc, NULL);
    CHECK_EQ(mpx_node_set_name(renamed, "wordcount"), 0);
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_as(2, &Inc, NULL), renamed,
                            mpx_stage(&LongName, NULL));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    const char *want[] = {"endless", "inc", "inc", "wordcount", "a-very-long-sta"};
    for (size_t i = 0; i < 5; i++) {
        mpx_instance_info_t info;
        CHECK_EQ(mpx_graph_instance_info(g, i, &info), 0);
        char path[64], comm[64] = "";
        snprintf(path, sizeof path, "/proc/%d/comm", (int)info.pid);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f))
                comm[0] = 0;
            fclose(f);
        }
        comm[strcspn(comm, "\n")] = 0;
        /* The kernel keeps 15 bytes of a name. */
        CHECK(strncmp(comm, want[i], 15) == 0, "process %zu is named '%s', not '%s'", i, comm,
              want[i]);
    }
    mpx_graph_stop(g);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- an application that reaps children itself -------------------------- *
 * With SIGCHLD ignored the kernel reaps stage processes itself; with a
 * handler that calls waitpid(-1) the application does.  Either way mpx
 * must still see each process end, and still tell a crash from a normal
 * end (it knows which stages finished), though it loses the signal. */

static void reap_all(int sig)
{
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    errno = saved;
}

static void with_sigchld(void (*handler)(int))
{
    struct sigaction sa = {.sa_handler = handler}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, &old);

    mpx_graph_t *g = MPX_EZ(range_node(0, 20000), mpx_as(2, &Inc, NULL), mpx_stage(&Drop, NULL));
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK(mpx_graph_finished(g), "not finished");
    mpx_node_destroy(&g);

    g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_stage(&Crash, NULL));
    CHECK_EQ(mpx_graph_join(g), MPX_ECRASH);
    CHECK(strstr(mpx_graph_error(g), "stage 'crasher'") &&
              (strstr(mpx_graph_error(g), "taken by another wait") ||
               strstr(mpx_graph_error(g), "killed by signal 6")),
          "%s", mpx_graph_error(g));
    mpx_node_destroy(&g);

    sigaction(SIGCHLD, &old, NULL);
    CHECK(no_children_left(5), "children left");
    CHECK_EQ(dir_entries(harness_tmpdir()), 0);
}

static void sigchld_ignored(void) { with_sigchld(SIG_IGN); }
static void sigchld_handled(void) { with_sigchld(reap_all); }

/* The thread that started a graph may end before it: its stage processes
 * are told (the kernel ties their parent-death signal to the thread), and
 * must tell that from the death of the whole process. */
static void *start_in_thread(void *arg)
{
    mpx_graph_t *g = arg;
    return (void *)(intptr_t)mpx_graph_start(g);
}

static void started_from_a_thread_that_ends(void)
{
    mpx_graph_t *g = MPX_EZ(range_node(0, 50000), mpx_as(2, &Spin, &(long){50}),
                            mpx_stage(&Inc, NULL));
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, start_in_thread, g) == 0, "thread");
    void *rc;
    pthread_join(t, &rc);
    CHECK_EQ((intptr_t)rc, 0);
    int64_t n;
    drain_sum(g, &n);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(strcmp(mpx_graph_error(g), "") == 0, "%s", mpx_graph_error(g));
    CHECK_EQ(n, 50000);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A graph needing more open files than allowed is refused before fork;
 * the soft limit is raised when the hard limit allows.  Limits are
 * lowered in a child process of the test, as they cannot be raised back. */
static void fd_limit_case(void *arg)
{
    (void)arg;
    struct rlimit rl = {256, 4096};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        _exit(10);
    mpx_graph_t *g = MPX_EZ(range_node(0, 1000), mpx_as(100, &Inc, NULL));
    if (mpx_graph_join(g) != 0)
        _exit(11);
    mpx_node_destroy(&g);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur <= 256)
        _exit(12);
    rl.rlim_cur = rl.rlim_max = 256;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        _exit(13);
    g = MPX_EZ(range_node(0, 1000), mpx_as(100, &Inc, NULL));
    int rc = mpx_graph_join(g);
    const char *msg = mpx_graph_error(g);
    bool ok = rc == MPX_EGRAPH && strstr(msg, "open files") && strstr(msg, "ulimit -n");
    mpx_node_destroy(&g);
    _exit(ok ? 0 : 14);
}

static void open_file_limit(void)
{
    int status = run_in_child(fd_limit_case, NULL);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "case ended with status %x", status);
    CHECK(no_children_left(5), "children left");
    CHECK_EQ(dir_entries(harness_tmpdir()), 0);
}

/* ---- signals to the parent ---------------------------------------------- *
 * An application process (forked here) starts an endless graph, reports
 * its stage pids and runtime directory, and blocks in join.  We signal the
 * application only; as the harness is a child subreaper, its orphaned
 * stage processes become our children, so we can see them leave. */

typedef struct app_report {
    int n;
    pid_t pids[8];
    char dir[200];
} app_report_t;

static void app_main(int fd)
{
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Endless, NULL), mpx_as(3, &Inc, NULL),
                            mpx_stage(&Drop, NULL));
    if (mpx_graph_start(g) != 0)
        _exit(90);
    app_report_t r = {0};
    r.n = (int)mpx_graph_instance_count(g);
    for (int i = 0; i < r.n && i < 8; i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, (size_t)i, &info) != 0)
            _exit(94);
        r.pids[i] = info.pid;
    }
    snprintf(r.dir, sizeof r.dir, "%s", mpx_graph_runtime_dir(g));
    if (write(fd, &r, sizeof r) != (ssize_t)sizeof r)
        _exit(91);
    _exit(mpx_graph_join(g) == 0 ? 92 : 93); /* never: the graph is endless */
}

static void parent_killed_by(int sig)
{
    int fds[2];
    REQUIRE(pipe(fds) == 0, "pipe");
    fflush(NULL);
    pid_t app = fork();
    REQUIRE(app >= 0, "fork");
    if (app == 0) {
        close(fds[0]);
        app_main(fds[1]);
    }
    close(fds[1]);
    app_report_t r;
    REQUIRE(read(fds[0], &r, sizeof r) == (ssize_t)sizeof r, "no report from the application");
    close(fds[0]);
    REQUIRE(r.n == 5, "%d stages", r.n);
    REQUIRE(access(r.dir, F_OK) == 0, "no runtime directory");
    usleep(20000); /* let items flow */

    double t0 = now_s();
    REQUIRE(kill(app, sig) == 0, "kill");
    int status;
    REQUIRE(wait_child(app, &status, 10), "the application did not end");
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == sig, "application status %x", status);
    /* Every stage process leaves by itself; the last removes the runtime
     * directory. */
    CHECK(no_children_left(10), "stage processes outlived the parent");
    double gone = now_s() - t0;
    for (int i = 0; i < r.n; i++)
        CHECK(kill(r.pids[i], 0) != 0 && errno == ESRCH, "stage process %d left", (int)r.pids[i]);
    while (access(r.dir, F_OK) == 0 && now_s() - t0 < 10)
        usleep(1000);
    CHECK(access(r.dir, F_OK) != 0, "runtime directory %s left", r.dir);
    if (access(r.dir, F_OK) == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "ls -la %s >&2", r.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot list %s\n", r.dir);
    }
    printf("after %s to the parent: all stage processes gone in %.1f ms, directory in %.1f ms\n",
           strsignal(sig), gone * 1000, (now_s() - t0) * 1000);
    CHECK_EQ(dir_entries(harness_tmpdir()), 0);
}

static void parent_sigint(void) { parent_killed_by(SIGINT); }
static void parent_sigterm(void) { parent_killed_by(SIGTERM); }
static void parent_sigkill(void) { parent_killed_by(SIGKILL); }

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(success_is_clean),
        TEST_CASE(stage_error_stops_graph),
        TEST_CASE(crash_is_reported),
        TEST_CASE(unexpected_exit_is_reported),
        TEST_CASE(stop_endless_graph),
        TEST_CASE(stop_stage_in_user_code),
        TEST_CASE(destroy_while_running),
        TEST_CASE(runtime_dir_is_private),
        TEST_CASE(runtime_dir_default_base),
        TEST_CASE(processes_named_after_stages),
        TEST_CASE(sigchld_ignored),
        TEST_CASE(sigchld_handled),
        TEST_CASE(started_from_a_thread_that_ends),
        TEST_CASE(open_file_limit),
        TEST_CASE(parent_sigint),
        TEST_CASE(parent_sigterm),
        TEST_CASE(parent_sigkill),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
