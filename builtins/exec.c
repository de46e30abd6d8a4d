/* builtins/exec.c — Exec: items streamed through an external command run
 * with /bin/sh -c, what it writes on stdout put downstream.  Written with
 * the public API only.
 *
 * The command is a child of the stage process, started in setup.  Three
 * pipes join them; our ends are non-blocking, and every wait is a poll on
 * all of them at once, so the stage never blocks writing the command's
 * stdin while the command blocks writing a stdout or stderr nobody reads:
 * while stdin is full, stdout is read (and put downstream) and stderr is
 * read (its last 2 KiB kept for the error message).  Input is gathered
 * into 64 KiB writes; the idle hook writes what is gathered and puts what
 * the command has written so far, without waiting for it.  Teardown closes
 * stdin, puts the rest of the output and reaps the command.
 *
 * Writing to a command that has exited raises SIGPIPE, whose disposition
 * is the application's; the stage blocks it around each write and takes
 * the signal the write raised, so an exited command is only an EPIPE.
 *
 * Output items carry no meta: a command's output lines do not correspond
 * to the input items whose meta would otherwise ride on them.
 *
 * The stage watches the command's stdout and stderr (mpx_watch_fd), so
 * what the command writes while no input comes is put at once, by the
 * idle hook.
 *
 * Between the stage and sh stands a guard process: a child subreaper that
 * puts sh in a process group of its own and, told to end (SIGTERM), kills
 * that whole group — every process of a pipeline, not only sh — and reaps
 * it before it exits.  When sh ends, the guard kills what sh left behind
 * in its group, reaps everything, and ends as sh did, so the stage sees
 * the command's own status.
 *
 * Every process forked here is reaped before the stage process exits, so
 * none is left for another process to reap (a subreaper above us would
 * keep it a zombie), however the stage ends: at teardown; on its own
 * failure (abandon); on a stop from the parent (mpx_graph_stop, a failure
 * elsewhere), which the runtime delivers inside a put or inside mpx_poll —
 * every wait here is one — and which ends the guard first because the
 * stage owns it (mpx_own_child).  Only a stage process killed outright
 * (SIGKILL) leaves the guard behind: the kernel then sends it SIGTERM
 * (PR_SET_PDEATHSIG), it kills and reaps the command as above, and is
 * itself reaped by whichever process adopts it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mpx.h"

extern char **environ;

#define IN_CAP ((size_t)64 * 1024)     /* stdin bytes gathered into one write */
#define READ_BLOCK ((size_t)64 * 1024) /* what one read of stdout asks for */
#define ERR_TAIL 2048                  /* bytes of stderr kept */
/* The failure message travels in a few hundred bytes: the command and the
 * stderr tail shown in it are cut to these. */
#define SHOWN_COMMAND 120
#define SHOWN_TAIL 256
#define SHOWN_LINES 8

typedef struct exec_args {
    char command[MPX_COMMAND_MAX];
    mpx_exec_mode_t mode;
} exec_args_t;

typedef struct exec_state {
    pid_t pid;        /* the command (its sh); 0 once reaped */
    int in, out, err; /* our ends of its stdin, stdout, stderr; -1 once closed */
    bool in_gone;     /* it stopped reading its stdin: input is dropped */
    bool down_gone;   /* everything downstream stopped: output is dropped */
    bool unflushed;   /* something was put since the last mpx_flush */
    char *ibuf;       /* stdin bytes gathered, not yet written */
    size_t ilen;
    char *obuf;       /* stdout bytes read, not yet put (a partial line) */
    size_t olen, ocap;
    char etail[ERR_TAIL]; /* the last bytes of stderr */
    size_t elen;
} exec_state_t;

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Pipe ends numbered 3 and up: the stage process may run with 0, 1 or 2
 * closed, and then a pipe end could take that number and be overwritten by
 * another end's dup2 in the child. */
static int lift(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return moved;
}

static int make_pipe(int p[2])
{
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    p[0] = lift(p[0]);
    p[1] = lift(p[1]);
    if (p[0] < 0 || p[1] < 0) {
        close_fd(&p[0]);
        close_fd(&p[1]);
        return -1;
    }
    return 0;
}

static int set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* sh, between fork and exec.  Only async-signal-safe calls: the stage
 * process this was forked from has other threads (zmq's). */
static _Noreturn void run_sh(const char *command, pid_t guard)
{
    /* The stage process may ignore SIGPIPE (the application's choice) and
     * ignores SIGINT (mpx's); ignored signals survive exec, and a command
     * that ignores SIGPIPE would not end when its reader goes away. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL);
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGTERM, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* A process group of its own: Ctrl-C in a terminal goes to the
     * foreground group, and mpx leaves that decision to the application
     * alone (stage processes ignore SIGINT); and the guard can end the
     * whole command at once. */
    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != guard)
        _exit(127);
    char *argv[] = {(char *)"sh", (char *)"-c", (char *)command, NULL};
    execve("/bin/sh", argv, environ);
    static const char msg[] = "exec: cannot run /bin/sh\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0)
        _exit(127);
    _exit(127);
}

static volatile pid_t guarded; /* sh's pid and its group's id, in the guard process */

/* The stage died, abandons the command, or is leaving: end every process
 * of the command, and reap it here — once the guard has exited, what it
 * left would be adopted by a process that knows nothing of it.  What
 * dies in the group comes back to the guard (a subreaper) as its parent
 * dies, before that parent can be reaped, so the group is reaped whole
 * when none of it is left among our children.  A process that left the
 * group on purpose (setsid) is not waited for: it is reaped only if it
 * has ended already. */
static void guard_end(int sig)
{
    (void)sig;
    pid_t sh = guarded;
    /* Never 0 while SIGTERM is let in, but kill(-0) would be the whole
     * application's process group. */
    if (sh > 0) {
        kill(-sh, SIGKILL);
        for (;;) {
            pid_t r = waitpid(-sh, NULL, 0);
            if (r < 0 && errno != EINTR)
                break;
        }
    }
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    _exit(128 + SIGKILL);
}

/* The guard, between the stage and sh (see the top of the file).  Only
 * async-signal-safe calls, as in run_sh. */
static _Noreturn void run_guard(const char *command, pid_t stage, int in, int out, int err)
{
    /* The command's ends become 0, 1 and 2, and nothing else stays open:
     * the guard never execs, so close-on-exec does not help, and a copy of
     * the stage's end of stdin held here would keep the command from ever
     * seeing the end of its input. */
    if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
        dup2(err, STDERR_FILENO) < 0)
        _exit(127);
    if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
        for (int fd = 3; fd < 65536; fd++)
            close(fd);
    struct sigaction end;
    memset(&end, 0, sizeof end);
    end.sa_handler = guard_end;
    sigaction(SIGTERM, &end, NULL);
    /* SIGTERM waits until guard_end knows sh's pid (and sh is in its
     * group); a stage that dies meanwhile is told all the same, the
     * signal pending. */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_SETMASK, &term, NULL);
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0 || getppid() != stage)
        _exit(127);
    pid_t self = getpid();
    pid_t sh = fork();
    if (sh == 0)
        run_sh(command, self);
    if (sh < 0)
        _exit(127);
    guarded = sh;
    setpgid(sh, sh); /* whichever of the two runs first */
    sigprocmask(SIG_UNBLOCK, &term, NULL);
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3 && null >= 0; fd++)
        dup2(null, fd); /* the guard holds no end of the command's pipes */
    /* WNOWAIT (waitid is a plain system call, as waitpid is): sh stays a
     * zombie until its group has been killed, so that its pid, the
     * group's id, cannot have been taken by another process by then. */
    siginfo_t info;
    while (waitid(P_PID, (id_t)sh, &info, WEXITED | WNOWAIT) < 0 && errno == EINTR)
        ;
    /* The command has ended: the guard finishes it its own way from here,
     * and a SIGTERM now (a stage leaving) waits for the _exit. */
    sigprocmask(SIG_BLOCK, &term, NULL);
    /* What sh leaves in its group (a background job) does not outlive
     * the command; what left the group is still ours to reap. */
    kill(-sh, SIGKILL);
    int status = 0, st;
    pid_t r;
    while ((r = waitpid(sh, &status, 0)) < 0 && errno == EINTR)
        ;
    while ((r = waitpid(-1, &st, 0)) > 0 || (r < 0 && errno == EINTR))
        ;
    if (WIFSIGNALED(status)) {
        /* End as sh did, so that the stage reports its signal. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(WTERMSIG(status), &dfl, NULL);
        kill(self, WTERMSIG(status));
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}

/* The stage fails: the command (its whole process group) is killed and
 * reaped at once rather than left to the kernel when the stage process
 * ends, so that it never stays a zombie for anyone to reap.  MPX_ESTOPPED
 * is no failure: teardown still finishes the command. */
static int abandon(mpx_stage_t *st, exec_state_t *s, int rc)
{
    if (rc == 0 || rc == MPX_ESTOPPED || s->pid <= 0)
        return rc;
    mpx_disown_child(st, s->pid); /* reaped here, not by the runtime */
    kill(s->pid, SIGTERM); /* the guard ends and reaps the command's whole group */
    while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    s->pid = 0;
    return rc;
}

static int exec_setup(mpx_stage_t *st)
{
    const exec_args_t *a = mpx_args(st);
    exec_state_t *s = mpx_state(st);
    s->in = s->out = s->err = -1;
    s->ocap = 2 * READ_BLOCK;
    s->ibuf = malloc(IN_CAP);
    s->obuf = malloc(s->ocap);
    if (!s->ibuf || !s->obuf)
        return mpx_fail(st, "exec: out of memory");
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    if (make_pipe(pin) != 0 || make_pipe(pout) != 0 || make_pipe(perr) != 0) {
        int e = errno;
        int *ends[] = {&pin[0], &pin[1], &pout[0], &pout[1], &perr[0], &perr[1]};
        for (size_t i = 0; i < 6; i++)
            close_fd(ends[i]);
        return mpx_fail(st, "exec: cannot start '%.*s': pipe: %s", SHOWN_COMMAND, a->command,
                        strerror(e));
    }
    pid_t self = getpid();
    pid_t pid = fork();
    if (pid == 0)
        run_guard(a->command, self, pin[0], pout[1], perr[1]);
    int e = errno;
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    s->in = pin[1];
    s->out = pout[0];
    s->err = perr[0];
    if (pid < 0) {
        close_fd(&s->in);
        close_fd(&s->out);
        close_fd(&s->err);
        return mpx_fail(st, "exec: cannot start '%.*s': fork: %s", SHOWN_COMMAND, a->command,
                        strerror(e));
    }
    s->pid = pid;
    /* A stop from the parent ends this process inside a put or a wait,
     * never returning here: the runtime then ends the guard, which ends
     * the command, and reaps it before the process exits. */
    int rc = mpx_own_child(st, pid);
    if (rc != 0)
        return abandon(st, s, mpx_fail(st, "exec: mpx_own_child: %s", mpx_strerror(rc)));
    if (set_nonblocking(s->in) != 0 || set_nonblocking(s->out) != 0 ||
        set_nonblocking(s->err) != 0)
        return abandon(st, s, mpx_fail(st, "exec: fcntl: %s", strerror(errno)));
    /* What the command writes while no input comes is put at once. */
    if (mpx_watch_fd(st, s->out) != 0 || mpx_watch_fd(st, s->err) != 0)
        return abandon(st, s, mpx_fail(st, "exec: cannot watch the command's output"));
    return 0;
}

/* ---- output ------------------------------------------------------------- */

/* A put that failed.  MPX_ESTOPPED means everything downstream stopped:
 * the output is dropped from now on, and the callback returns the code so
 * that the stage ends like a writer into a closed pipe. */
static int put_failed(mpx_stage_t *st, exec_state_t *s, int rc)
{
    if (rc == MPX_ESTOPPED) {
        s->down_gone = true;
        return rc;
    }
    const exec_args_t *a = mpx_args(st);
    return mpx_fail(st, "exec: putting the output of '%.*s': %s", SHOWN_COMMAND, a->command,
                    mpx_strerror(rc));
}

static int emit(mpx_stage_t *st, exec_state_t *s, const char *p, size_t n)
{
    if (s->down_gone)
        return 0;
    int rc = mpx_put(st, p, n);
    if (rc != 0)
        return put_failed(st, s, rc);
    s->unflushed = true;
    return 0;
}

/* One read of stdout, put as lines (a partial last line is kept for the
 * next read, and put at end of file) or as the chunk read. */
static int read_out(mpx_stage_t *st, exec_state_t *s)
{
    const exec_args_t *a = mpx_args(st);
    bool lines = a->mode == MPX_EXEC_LINES;
    if (s->ocap - s->olen < READ_BLOCK) { /* a long line: the buffer grows */
        char *b = realloc(s->obuf, s->ocap * 2);
        if (!b)
            return mpx_fail(st, "exec: out of memory for a line of %zu bytes", s->olen);
        s->obuf = b;
        s->ocap *= 2;
    }
    ssize_t r = read(s->out, s->obuf + s->olen, s->ocap - s->olen);
    if (r < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return 0;
        return mpx_fail(st, "exec: reading the output of '%.*s': %s", SHOWN_COMMAND,
                        a->command, strerror(errno));
    }
    if (r == 0) {
        mpx_unwatch_fd(st, s->out);
        close_fd(&s->out);
        size_t rest = s->olen;
        s->olen = 0;
        return rest > 0 ? emit(st, s, s->obuf, rest) : 0; /* a last line without newline */
    }
    if (!lines)
        return emit(st, s, s->obuf, (size_t)r);
    size_t scanned = s->olen, start = 0;
    s->olen += (size_t)r;
    int rc = 0;
    char *nl;
    while (rc == 0 && (nl = memchr(s->obuf + scanned, '\n', s->olen - scanned))) {
        size_t end = (size_t)(nl - s->obuf);
        rc = emit(st, s, s->obuf + start, end - start);
        start = scanned = end + 1;
    }
    memmove(s->obuf, s->obuf + start, s->olen - start);
    s->olen -= start;
    return rc;
}

/* Keep the last ERR_TAIL bytes the command wrote on stderr. */
static void keep_tail(exec_state_t *s, const char *p, size_t n)
{
    if (n >= ERR_TAIL) {
        memcpy(s->etail, p + n - ERR_TAIL, ERR_TAIL);
        s->elen = ERR_TAIL;
        return;
    }
    if (s->elen + n > ERR_TAIL) {
        size_t drop = s->elen + n - ERR_TAIL;
        memmove(s->etail, s->etail + drop, s->elen - drop);
        s->elen -= drop;
    }
    memcpy(s->etail + s->elen, p, n);
    s->elen += n;
}

static int read_err(mpx_stage_t *st, exec_state_t *s)
{
    char buf[4096];
    ssize_t r = read(s->err, buf, sizeof buf);
    if (r < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return 0;
        const exec_args_t *a = mpx_args(st);
        return mpx_fail(st, "exec: reading the stderr of '%.*s': %s", SHOWN_COMMAND,
                        a->command, strerror(errno));
    }
    if (r == 0) {
        mpx_unwatch_fd(st, s->err);
        close_fd(&s->err);
    } else {
        keep_tail(s, buf, (size_t)r);
    }
    return 0;
}

/* Wait up to `timeout` ms (-1: as long as it takes) until stdin takes more
 * bytes (when `writing`) or stdout or stderr has something, and read what
 * they have.  *ready (if not NULL) tells whether anything was.  Returns 0
 * or the error of a put or a read. */
static int pump(mpx_stage_t *st, exec_state_t *s, bool writing, int timeout, bool *ready)
{
    struct pollfd p[3];
    int n = 0, iout = -1, ierr = -1;
    if (writing && s->in >= 0)
        p[n++] = (struct pollfd){s->in, POLLOUT, 0};
    if (s->out >= 0) {
        iout = n;
        p[n++] = (struct pollfd){s->out, POLLIN, 0};
    }
    if (s->err >= 0) {
        ierr = n;
        p[n++] = (struct pollfd){s->err, POLLIN, 0};
    }
    if (ready)
        *ready = false;
    if (n == 0)
        return 0;
    if (timeout != 0 && s->unflushed && !s->down_gone) {
        /* What was put leaves before we wait: the command may take long. */
        s->unflushed = false;
        int rc = mpx_flush(st);
        if (rc != 0)
            return put_failed(st, s, rc);
    }
    /* mpx_poll, not poll: a stop from the parent must reach a stage that
     * waits for a silent command, or its process would be killed before
     * it could end the guard. */
    int r = mpx_poll(st, p, (size_t)n, timeout);
    if (r < 0)
        return mpx_fail(st, "exec: poll: %s", mpx_strerror(r));
    if (ready)
        *ready = r > 0;
    int rc = 0;
    /* stderr first: a failing put must not leave stderr unread. */
    if (ierr >= 0 && p[ierr].revents)
        rc = read_err(st, s);
    if (rc == 0 && iout >= 0 && p[iout].revents)
        rc = read_out(st, s);
    return rc;
}

/* ---- input -------------------------------------------------------------- */

/* write(2) to the command's stdin that never raises SIGPIPE, whatever the
 * application did with that signal (the stage process keeps its
 * disposition): SIGPIPE is blocked around the write, and the one the write
 * raised (it is sent to this thread) is taken before it is unblocked.  A
 * SIGPIPE pending already was not ours and stays pending. */
static ssize_t write_quiet(int fd, const void *p, size_t n)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t w = write(fd, p, n);
    int e = errno;
    if (w < 0 && e == EPIPE && !was_pending) {
        static const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return w;
}

/* The command closed its stdin (or exited): like a program that stops
 * reading its input, it has decided it needs no more — `head -1` does.
 * That is not an error: the remaining input is dropped (the stage stops,
 * so upstream stops sending), its output is still put, and how it ended
 * is reported at teardown. */
static void stopped_reading(mpx_stage_t *st, exec_state_t *s)
{
    s->in_gone = true;
    s->ilen = 0;
    close_fd(&s->in);
    mpx_stop(st);
}

/* Write all n bytes, serving stdout and stderr while stdin is full. */
static int write_in(mpx_stage_t *st, exec_state_t *s, const char *p, size_t n)
{
    while (n > 0 && !s->in_gone) {
        ssize_t w = write_quiet(s->in, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EAGAIN) {
            int rc = pump(st, s, true, -1, NULL);
            if (rc != 0)
                return rc;
        } else if (w < 0 && errno == EPIPE) {
            stopped_reading(st, s);
        } else if (!(w < 0 && errno == EINTR)) {
            const exec_args_t *a = mpx_args(st);
            return mpx_fail(st, "exec: writing to '%.*s': %s", SHOWN_COMMAND, a->command,
                            w < 0 ? strerror(errno) : "nothing written");
        }
    }
    return 0;
}

static int flush_in(mpx_stage_t *st, exec_state_t *s)
{
    size_t n = s->ilen;
    s->ilen = 0;
    return n > 0 ? write_in(st, s, s->ibuf, n) : 0;
}

/* Gather small writes; a large one goes straight from the item. */
static int feed(mpx_stage_t *st, exec_state_t *s, const void *p, size_t n)
{
    if (s->in_gone || n == 0)
        return 0;
    if (s->ilen + n > IN_CAP) {
        int rc = flush_in(st, s);
        if (rc != 0)
            return rc;
    }
    if (n >= IN_CAP)
        return write_in(st, s, p, n);
    memcpy(s->ibuf + s->ilen, p, n);
    s->ilen += n;
    return 0;
}

static int exec_process(mpx_stage_t *st, mpx_item_t *it)
{
    const exec_args_t *a = mpx_args(st);
    exec_state_t *s = mpx_state(st);
    if (s->down_gone)
        return MPX_ESTOPPED;
    mpx_meta_clear(st);
    int rc = feed(st, s, mpx_item_data(it, 0), mpx_item_size(it, 0));
    if (rc == 0 && a->mode == MPX_EXEC_LINES)
        rc = feed(st, s, "\n", 1);
    return abandon(st, s, rc);
}

/* No input waiting (or the command wrote something): the command gets
 * what was gathered, and what it has written by now is put at once.  A
 * few reads at most, so that input is not kept waiting behind a command
 * that writes without end. */
static int exec_idle(mpx_stage_t *st)
{
    exec_state_t *s = mpx_state(st);
    if (s->down_gone)
        return MPX_ESTOPPED;
    int rc = flush_in(st, s);
    bool ready = true;
    for (int reads = 0; rc == 0 && ready && reads < 16; reads++)
        rc = pump(st, s, false, 0, &ready);
    return abandon(st, s, rc);
}

/* ---- the end ------------------------------------------------------------ */

/* The last lines of stderr, shortened to fit in the failure message. */
static void tail_text(const exec_state_t *s, char *out, size_t cap)
{
    size_t end = s->elen;
    while (end > 0 && (s->etail[end - 1] == '\n' || s->etail[end - 1] == '\r' ||
                       s->etail[end - 1] == ' ' || s->etail[end - 1] == '\t'))
        end--;
    /* The last SHOWN_LINES lines, at most SHOWN_TAIL bytes, whole lines
     * where possible. */
    size_t start = end > SHOWN_TAIL ? end - SHOWN_TAIL : 0;
    int lines = 0;
    for (size_t i = end; i > start; i--)
        if (s->etail[i - 1] == '\n' && ++lines == SHOWN_LINES) {
            start = i;
            break;
        }
    if (lines < SHOWN_LINES && start > 0) {
        const char *nl = memchr(s->etail + start, '\n', end - start);
        if (nl)
            start = (size_t)(nl - s->etail) + 1;
    }
    if (start == end) {
        snprintf(out, cap, "(nothing on stderr)");
        return;
    }
    size_t k = 0;
    if (start > 0 && cap > 4) {
        memcpy(out, "...", 3);
        k = 3;
    }
    for (size_t i = start; i < end && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)s->etail[i];
        out[k++] = (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ? '?' : (char)c;
    }
    out[k] = '\0';
}

static int exec_teardown(mpx_stage_t *st)
{
    const exec_args_t *a = mpx_args(st);
    exec_state_t *s = mpx_state(st);
    if (s->pid <= 0)
        return 0;
    /* MPX_ESTOPPED from a put only means the output is dropped from now
     * on: the command is still to be finished and reaped. */
    int rc = s->down_gone ? 0 : flush_in(st, s);
    if (rc != 0 && rc != MPX_ESTOPPED)
        return abandon(st, s, rc);
    /* End of input: the command now finishes (sort writes everything
     * here); its output is put until it closes stdout and stderr. */
    close_fd(&s->in);
    s->ilen = 0;
    while (s->out >= 0 || s->err >= 0) {
        if (s->down_gone && s->out >= 0) { /* nobody wants the output: `yes | head` */
            mpx_unwatch_fd(st, s->out);
            close_fd(&s->out);
        }
        rc = pump(st, s, false, -1, NULL);
        if (rc != 0 && rc != MPX_ESTOPPED)
            return abandon(st, s, rc);
    }
    mpx_disown_child(st, s->pid); /* reaped here, at last */
    int status = 0;
    pid_t r;
    while ((r = waitpid(s->pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (r < 0)
        return mpx_fail(st, "exec: waiting for '%.*s': %s", SHOWN_COMMAND, a->command,
                        strerror(errno));
    s->pid = 0;
    free(s->ibuf);
    free(s->obuf);
    s->ibuf = s->obuf = NULL;
    /* When downstream stopped, the command was cut off on purpose (it may
     * well have died of SIGPIPE): how it ended does not matter. */
    if (s->down_gone || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
        return 0;
    char tail[SHOWN_TAIL + 8];
    tail_text(s, tail, sizeof tail);
    int len = (int)strlen(a->command);
    const char *more = len > SHOWN_COMMAND ? "..." : "";
    int shown = len > SHOWN_COMMAND ? SHOWN_COMMAND - 3 : len;
    if (WIFSIGNALED(status))
        return mpx_fail(st, "exec: '%.*s%s' was killed by signal %d (%s): %s", shown,
                        a->command, more, WTERMSIG(status), strsignal(WTERMSIG(status)), tail);
    return mpx_fail(st, "exec: '%.*s%s' exited with status %d: %s", shown, a->command, more,
                    WEXITSTATUS(status), tail);
}

static const mpx_stage_def_t exec_def = {
    .name = "exec",
    .args_size = sizeof(exec_args_t),
    .state_size = sizeof(exec_state_t),
    .setup = exec_setup,
    .process = exec_process,
    .teardown = exec_teardown,
    .idle = exec_idle,
};

mpx_node_t *mpx_exec(const char *command, mpx_exec_mode_t mode)
{
    if (!command)
        return mpx_invalid("mpx_exec: the command is NULL");
    size_t n = strlen(command);
    if (n == 0)
        return mpx_invalid("mpx_exec: the command is empty");
    if (n >= MPX_COMMAND_MAX)
        return mpx_invalid("mpx_exec: the command is %zu bytes long, more than %d: %.60s...", n,
                           MPX_COMMAND_MAX - 1, command);
    if (mode != MPX_EXEC_LINES && mode != MPX_EXEC_CHUNKS)
        return mpx_invalid("mpx_exec: mode %d for '%.60s' is neither MPX_EXEC_LINES nor "
                           "MPX_EXEC_CHUNKS",
                           (int)mode, command);
    exec_args_t a;
    memset(&a, 0, sizeof a);
    memcpy(a.command, command, n + 1);
    a.mode = mode;
    return mpx_stage(&exec_def, &a);
}
