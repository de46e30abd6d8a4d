/* tests/harness.h — the small test harness every test program uses.
 *
 * A program holds several cases; meson runs each as its own test
 * (`prog CASE`), `prog --list` prints them.  Around every case the harness
 * makes the process a child subreaper (so orphaned stage processes come
 * back to it), points TMPDIR at a fresh private directory (so every
 * runtime directory mpx makes lands there), and afterwards checks that no
 * process and no file was left behind.  Whatever happens, it kills and
 * reaps what is left and removes the directory, so a failing test litters
 * nothing either.
 */
#ifndef MPX_TESTS_HARNESS_H
#define MPX_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include <mpx.h>

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case_t;

#define TEST_CASE(fn) {#fn, fn}

int harness_main(int argc, char **argv, const test_case_t *cases, size_t n);

/* `what` is the failed condition; fmt and what follows say more. */
void harness_fail(const char *file, int line, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
_Noreturn void harness_abort(const char *file, int line, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Non-fatal: record the failure and go on. */
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond))                                                           \
            harness_fail(__FILE__, __LINE__, "CHECK(" #cond ")", __VA_ARGS__);   \
    } while (0)
/* Fatal: clean up and end the case. */
#define REQUIRE(cond, ...)                                                       \
    do {                                                                         \
        if (!(cond))                                                             \
            harness_abort(__FILE__, __LINE__, "REQUIRE(" #cond ")", __VA_ARGS__);   \
    } while (0)
#define CHECK_EQ(a, b)                                                               \
    do {                                                                             \
        long long a_ = (long long)(a), b_ = (long long)(b);                          \
        if (a_ != b_)                                                                \
            harness_fail(__FILE__, __LINE__, "CHECK_EQ(" #a ", " #b ")", "%lld != %lld",  \
                         a_, b_);                                                    \
    } while (0)

/* True when MPX_LONG_TESTS=1: the soak sizes (more random graphs, more
 * inputs) instead of the shorter ones the suite runs by default. */
bool harness_long(void);
/* True in the AddressSanitizer build, where a process runs 3-10 times
 * slower: soaks take their smaller sizes there. */
bool harness_sanitized(void);

/* The private directory TMPDIR points at during the case. */
const char *harness_tmpdir(void);

/* After a graph ended: every stage process was reaped and is gone, the
 * runtime directory was removed, and nothing else of ours is waiting to
 * be reaped.  Call before destroying the graph. */
void expect_clean(mpx_graph_t *g);

/* Wait for pid (a child of this process) at most seconds; true when it
 * exited, with its status.  Used only to detect hangs, never to time. */
bool wait_child(pid_t pid, int *status, double seconds);
/* True when no process whose parent is this one is still running (waits
 * at most `seconds` for them to go, reaping what exits). */
bool no_children_left(double seconds);

/* Run `fn` in a forked child; returns its wait status. */
int run_in_child(void (*fn)(void *), void *arg);

/* Number of entries in a directory, or -1 when it does not exist. */
int dir_entries(const char *path);
/* Run fn(arg) with stderr going to a file in the case's directory (stage
 * processes forked meanwhile inherit it); returns what was written
 * (malloc'd, "" when nothing). */
char *capture_stderr(void (*fn)(void *), void *arg);

#endif
