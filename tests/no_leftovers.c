/* tests/no_leftovers.c — run a program and fail when it leaves a process
 * or a file behind: what tests/harness.c checks around every C test case,
 * for the shell tests that run whole programs (the examples, the install
 * test).
 *
 *     no_leftovers COMMAND [ARG...]
 *
 * COMMAND runs with TMPDIR set to a fresh private directory and
 * XDG_RUNTIME_DIR unset, so that every mpx runtime directory it makes
 * (mpx-<pid>-XXXXXX) lands there.  This process is a child subreaper:
 * whatever COMMAND forked and did not reap before it exited — a stage
 * process still running, one that exited but was never waited for, a
 * fork server, a grandchild — is re-parented here, however it was
 * detached (setsid, double fork).  Once COMMAND has exited, every such
 * process and every entry left in the private directory is named on
 * stderr; the processes are then killed and the directory removed.
 *
 * Exit status: COMMAND's (128 + the signal when a signal ended it), or
 * 125 when something was left behind or COMMAND could not be run.
 * Nothing is written to stdout, which stays COMMAND's.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LEFT_BEHIND 125

static volatile sig_atomic_t pending_signal;
static void on_signal(int sig) { pending_signal = sig; }

/* The pids whose parent is this process, zombies included: a zombie here
 * is a process COMMAND never reaped. */
static int list_children(pid_t *out, int cap)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = 0;
        /* comm may hold spaces and parentheses: the state follows the last ')' */
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

static void read_proc(pid_t pid, const char *what, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t len = read(fd, buf, cap - 1);
    close(fd);
    if (len < 0)
        len = 0;
    buf[len] = 0;
    /* cmdline separates arguments with NULs; comm ends with a newline */
    for (ssize_t i = 0; i < len; i++)
        if (buf[i] == 0 || buf[i] == '\n')
            buf[i] = ' ';
    while (len > 0 && buf[len - 1] == ' ')
        buf[--len] = 0;
}

static void describe(pid_t pid)
{
    char comm[64], stat[512], cmdline[512];
    read_proc(pid, "comm", comm, sizeof comm);
    read_proc(pid, "stat", stat, sizeof stat);
    read_proc(pid, "cmdline", cmdline, sizeof cmdline);
    char *rp = strrchr(stat, ')');
    char state = rp && rp[1] == ' ' ? rp[2] : '?';
    fprintf(stderr, "no_leftovers: left behind: process %d (%s), %s%s%s\n", (int)pid, comm,
            state == 'Z' ? "exited but never reaped" : "still running",
            cmdline[0] ? ": " : "", cmdline);
}

static void now_plus(struct timespec *t, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static bool past(const struct timespec *t)
{
    struct timespec n;
    clock_gettime(CLOCK_MONOTONIC, &n);
    return n.tv_sec > t->tv_sec || (n.tv_sec == t->tv_sec && n.tv_nsec >= t->tv_nsec);
}

/* Kill and reap what is left, so that a failing run litters nothing
 * either; true when something was there. */
static bool sweep_processes(void)
{
    pid_t pids[256];
    int n = list_children(pids, 256);
    if (n < 0) {
        fprintf(stderr, "no_leftovers: cannot read /proc: %s\n", strerror(errno));
        return true;
    }
    for (int i = 0; i < n; i++)
        describe(pids[i]);
    if (n == 0)
        return false;
    /* A killed process may fork no more, but one caught between fork and
     * our kill can add a child: go round until nothing is left. */
    struct timespec limit;
    now_plus(&limit, 10000);
    while (n > 0 && !past(&limit)) {
        for (int i = 0; i < n; i++)
            kill(pids[i], SIGKILL);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        usleep(2000);
        n = list_children(pids, 256);
    }
    if (n > 0)
        fprintf(stderr, "no_leftovers: %d process(es) would not go\n", n);
    return true;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static bool sweep_dir(const char *dir)
{
    bool left = false;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "no_leftovers: %s is gone: %s\n", dir, strerror(errno));
        return true;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        left = true;
        fprintf(stderr, "no_leftovers: left behind in $TMPDIR: %s/%s%s\n", dir, e->d_name,
                strncmp(e->d_name, "mpx-", 4) == 0 ? " (an mpx runtime directory)" : "");
    }
    closedir(d);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return left;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s COMMAND [ARG...]\n", argv[0]);
        return 2;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        fprintf(stderr, "no_leftovers: PR_SET_CHILD_SUBREAPER: %s\n", strerror(errno));
        return LEFT_BEHIND;
    }
    const char *base = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/mpxclean-XXXXXX", base && base[0] == '/' ? base : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "no_leftovers: mkdtemp %s: %s\n", dir, strerror(errno));
        return LEFT_BEHIND;
    }

    /* Until COMMAND has been waited for, a signal meant for the test (a
     * time limit, ^C) goes on to it; the sweep below still runs. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "no_leftovers: fork: %s\n", strerror(errno));
        sweep_dir(dir);
        return LEFT_BEHIND;
    }
    if (pid == 0) {
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGHUP, &dfl, NULL);
        setenv("TMPDIR", dir, 1);
        unsetenv("XDG_RUNTIME_DIR");
        execvp(argv[1], argv + 1);
        fprintf(stderr, "no_leftovers: cannot run %s: %s\n", argv[1], strerror(errno));
        _exit(127);
    }

    int status = 0;
    bool forwarded = false;
    for (;;) {
        if (pending_signal && !forwarded) {
            kill(pid, pending_signal);
            forwarded = true;
        }
        pid_t r = waitpid(pid, &status, 0);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "no_leftovers: waitpid: %s\n", strerror(errno));
            status = -1;
            break;
        }
    }

    int rc;
    if (status == -1)
        rc = LEFT_BEHIND;
    else if (WIFEXITED(status))
        rc = WEXITSTATUS(status);
    else
        rc = 128 + WTERMSIG(status);
    bool left = sweep_processes();
    left |= sweep_dir(dir);
    if (left) {
        fprintf(stderr, "no_leftovers: FAIL:");
        for (int i = 1; i < argc; i++)
            fprintf(stderr, " %s", argv[i]);
        fprintf(stderr, " (exit status %d) left the above behind\n", rc);
        return LEFT_BEHIND;
    }
    return rc;
}
