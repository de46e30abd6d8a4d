/* tests/harness.c — see harness.h. */
#define _GNU_SOURCE
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;
static char tmpdir[256];
static pid_t harness_pid;

const char *harness_tmpdir(void) { return tmpdir; }

bool harness_sanitized(void)
{
#ifdef __SANITIZE_ADDRESS__
    return true;
#else
    return false;
#endif
}

bool harness_long(void)
{
    const char *v = getenv("MPX_LONG_TESTS");
    return v && strcmp(v, "1") == 0;
}

static void vreport(const char *file, int line, const char *what, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static void vreport(const char *file, int line, const char *what, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s:%d: %s ", file, line, what);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void harness_fail(const char *file, int line, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(file, line, what, fmt, ap);
    va_end(ap);
    failures++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Pids whose parent is this process, excluding zombies we can reap. */
static int list_children(pid_t *out, int cap)
{
    DIR *d = opendir("/proc");
    int n = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *rp = strrchr(buf, ')');
        char state;
        long ppid;
        if (!rp || sscanf(rp + 1, " %c %ld", &state, &ppid) != 2)
            continue;
        if (ppid == (long)getpid() && n < cap)
            out[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

bool no_children_left(double seconds)
{
    double end = now_s() + seconds;
    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        pid_t pids[64];
        if (list_children(pids, 64) == 0)
            return true;
        if (now_s() > end)
            return false;
        usleep(2000);
    }
}

bool wait_child(pid_t pid, int *status, double seconds)
{
    double end = now_s() + seconds;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
        if (now_s() > end)
            return false;
        usleep(1000);
    }
}

int run_in_child(void (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        fn(arg);
        fflush(NULL);
        _exit(0);
    }
    int status = -1;
    if (pid > 0 && !wait_child(pid, &status, 120)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    return status;
}

int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

void expect_clean(mpx_graph_t *g)
{
    CHECK(mpx_graph_finished(g), "graph not finished");
    size_t n = mpx_graph_instance_count(g);
    for (size_t i = 0; i < n; i++) {
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, i, &info) != 0 || info.pid <= 0)
            continue;
        CHECK(info.exited, "instance %zu (%s) not reaped", i, info.name);
        CHECK(kill(info.pid, 0) != 0 && errno == ESRCH, "process %d (%s) still exists",
              (int)info.pid, info.name);
    }
    const char *dir = mpx_graph_runtime_dir(g);
    if (dir)
        CHECK(access(dir, F_OK) != 0, "runtime directory %s still exists", dir);
    CHECK(waitpid(-1, NULL, WNOHANG) <= 0, "an unreaped child is left");
    CHECK(dir_entries(tmpdir) == 0, "files left in %s", tmpdir);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Whatever the outcome: nothing of the case may stay behind. */
static void sweep(void)
{
    if (getpid() != harness_pid)
        return;
    pid_t pids[64];
    int n = list_children(pids, 64);
    if (n > 0) {
        fprintf(stderr, "harness: %d process(es) left behind by the case\n", n);
        failures++;
        for (int i = 0; i < n; i++)
            kill(pids[i], SIGKILL);
        no_children_left(5);
    }
    if (tmpdir[0]) {
        int left = dir_entries(tmpdir);
        if (left > 0) {
            fprintf(stderr, "harness: %d file(s) left behind in %s\n", left, tmpdir);
            failures++;
        }
        nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
        tmpdir[0] = 0;
    }
}

_Noreturn void harness_abort(const char *file, int line, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(file, line, what, fmt, ap);
    va_end(ap);
    failures++;
    sweep();
    fprintf(stderr, "FAIL\n");
    exit(1);
}

static volatile sig_atomic_t interrupted;
static void on_interrupt(int sig) { interrupted = sig; }

/* The case runs in a child of its own, so that whatever becomes of it —
 * a failed REQUIRE, a crash in test code, a SIGTERM from meson's timeout —
 * this process, a subreaper, is left to kill what remains and remove the
 * case's directory. */
static int run_case(const test_case_t *c)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mpxtest-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    fflush(NULL);
    pid_t runner = fork();
    if (runner < 0) {
        perror("fork");
        return 1;
    }
    if (runner == 0) {
        harness_pid = getpid();
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGINT, &dfl, NULL);
        setenv("TMPDIR", tmpdir, 1);
        unsetenv("XDG_RUNTIME_DIR");
        failures = 0;
        c->fn();
        sweep();
        printf("%s: %s\n", c->name, failures ? "FAIL" : "ok");
        /* exit, not _exit: LeakSanitizer checks the case's process at exit. */
        exit(failures ? 1 : 0);
    }
    int status = 0;
    for (;;) {
        pid_t r = waitpid(runner, &status, 0);
        if (r == runner)
            break;
        if (r < 0 && errno == EINTR && interrupted) {
            fprintf(stderr, "harness: %s while running %s\n", strsignal(interrupted), c->name);
            kill(runner, SIGKILL);
        }
    }
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!WIFEXITED(status))
        fprintf(stderr, "harness: the case ended by signal %d\n", WTERMSIG(status));
    failures = 0;
    sweep(); /* what a runner that did not finish left */
    return ok && failures == 0 && !interrupted ? 0 : 1;
}

int harness_main(int argc, char **argv, const test_case_t *cases, size_t n)
{
    harness_pid = getpid();
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = {.sa_handler = on_interrupt};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    int bad = 0;
    bool found = argc < 2;
    for (size_t i = 0; i < n && !interrupted; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        found = true;
        bad |= run_case(&cases[i]);
    }
    if (!found) {
        fprintf(stderr, "no test case named '%s'\n", argv[1]);
        return 2;
    }
    return bad;
}

char *capture_stderr(void (*fn)(void *), void *arg)
{
    char path[512];
    snprintf(path, sizeof path, "%s/stderr.txt", harness_tmpdir());
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(saved >= 0 && fd >= 0, "%s", strerror(errno));
    dup2(fd, STDERR_FILENO);
    close(fd);
    fn(arg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    FILE *f = fopen(path, "r");
    REQUIRE(f, "%s", strerror(errno));
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    unlink(path);
    if (n < 0) {
        free(text);
        return strdup("");
    }
    return text;
}
