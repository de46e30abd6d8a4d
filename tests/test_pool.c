/* tests/test_pool.c — the shared-memory pool on its own (lib/pool.h):
 * sizes and handles, a full pool and its wait, holds handed between
 * processes, the holder limit, reclaim of dead incarnations, a death at
 * every step of the allocator, of a free and of a hold (the crash points
 * of pool.h), a lock owner killed, and a torture run in which forked
 * processes hand blocks to each other while they are killed hundreds of
 * times.  Processes are forked; the pool is a memfd, so no file is left. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "lib/pool.h"

#define G ((size_t)POOL_GRANULE)

static pool_t *mk(size_t bytes, uint32_t nslots)
{
    char err[256];
    pool_t *p = pool_new(bytes, nslots, err, sizeof err);
    REQUIRE(p, "pool_new: %s", err);
    return p;
}

static pool_holder_t H(uint32_t slot, uint32_t gen) { return (pool_holder_t){slot, gen}; }

static pool_stats_t stats(const pool_t *p)
{
    pool_stats_t s;
    pool_get_stats(p, &s);
    return s;
}

#define EXPECT_CONSISTENT(p, quiet)                                            \
    do {                                                                       \
        char why_[256];                                                        \
        CHECK(pool_test_check(p, quiet, why_, sizeof why_) == 0, "%s", why_);  \
    } while (0)

/* In a forked child: report and leave with a status the parent checks. */
#define CHILD_REQUIRE(cond, ...)                                                   \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: in child: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
            _exit(3);                                                              \
        }                                                                          \
    } while (0)

static pid_t spawn(void (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    return pid;
}

/* The child's wait status; a hang fails the case. */
static int reap(pid_t pid)
{
    int status = 0;
    if (!wait_child(pid, &status, 60)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        REQUIRE(false, "child %d did not end", (int)pid);
    }
    return status;
}

static bool exited_ok(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
static bool killed(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL; }

static void send_u32(int fd, uint32_t v)
{
    ssize_t n = write(fd, &v, sizeof v);
    (void)n;
}

/* A message from a pipe; UINT32_MAX after a minute without one. */
static uint32_t recv_u32(int fd)
{
    struct pollfd q = {fd, POLLIN, 0};
    uint32_t v = UINT32_MAX;
    if (poll(&q, 1, 60000) == 1 && read(fd, &v, sizeof v) == (ssize_t)sizeof v)
        return v;
    fprintf(stderr, "no message on the pipe\n");
    return UINT32_MAX;
}

/* The state letter of a process (/proc/PID/stat): 'S' while it sleeps. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' ? rp[2] : '?';
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* In a child: until pool_wait was called `waits` times in all and `pid`
 * sleeps (in it: the process has no other sleep then). */
static void await_sleeping(pid_t pid, pool_t *p, uint64_t waits)
{
    double end = now_s() + 60;
    while (stats(p).waits < waits || proc_state(pid) != 'S') {
        CHILD_REQUIRE(now_s() < end, "process %d never slept", (int)pid);
        sched_yield();
    }
}

/* A block's bytes: a pattern made of its id, checked whole. */
static void fill(void *data, size_t size, uint64_t id)
{
    uint64_t *w = data;
    for (size_t i = 0; i < size / 8; i++)
        w[i] = id ^ (i * 0x9e3779b97f4a7c15ull);
    for (size_t i = size / 8 * 8; i < size; i++)
        ((uint8_t *)data)[i] = (uint8_t)(id + i);
}

static bool intact(const void *data, size_t size, uint64_t id)
{
    const uint64_t *w = data;
    for (size_t i = 0; i < size / 8; i++)
        if (w[i] != (id ^ (i * 0x9e3779b97f4a7c15ull)))
            return false;
    for (size_t i = size / 8 * 8; i < size; i++)
        if (((const uint8_t *)data)[i] != (uint8_t)(id + i))
            return false;
    return true;
}

/* ---- sizes, handles, stats ---- */

static void alloc_sizes(void)
{
    char err[256];
    CHECK(pool_new(0, 2, err, sizeof err) == NULL && strstr(err, "0 bytes"), "0 bytes: %s", err);
    CHECK(pool_new(G, 0, err, sizeof err) == NULL, "no slot");
    CHECK(pool_new(G, POOL_MAX_SLOT + 2u, err, sizeof err) == NULL, "too many slots");
    pool_t *r = mk(G + 1, 1);
    CHECK_EQ(stats(r).capacity, 2 * G); /* rounded up to granules */
    pool_destroy(&r);
    CHECK(r == NULL, "destroy nulls the pointer");
    pool_destroy(&r);

    pool_t *p = mk(16 * G, 2);
    pool_holder_t me = H(1, 0);
    pool_stats_t s = stats(p);
    CHECK_EQ(s.capacity, 16 * G);
    CHECK_EQ(s.committed, 0);
    CHECK_EQ(s.bytes_in_use + s.blocks_in_use + s.peak_bytes + s.allocs + s.frees, 0);
    uint32_t b[3];
    CHECK_EQ(pool_alloc(p, me, 0, &b[0]), MPX_EINVAL);
    CHECK_EQ(pool_alloc(p, H(2, 0), 1, &b[0]), MPX_EINVAL); /* no such slot */
    CHECK_EQ(pool_alloc(p, me, 16 * G + 1, &b[0]), MPX_ERANGE);
    CHECK_EQ(pool_alloc(p, me, SIZE_MAX, &b[0]), MPX_ERANGE);
    const size_t sizes[3] = {1, G, G + 1};
    const size_t have[3] = {G, G, 2 * G};
    for (int i = 0; i < 3; i++) {
        REQUIRE(pool_alloc(p, me, sizes[i], &b[i]) == 0, "alloc %zu", sizes[i]);
        CHECK_EQ(pool_block_size(p, b[i]), have[i]);
        uint8_t *d = pool_data(p, b[i]);
        REQUIRE(d != NULL, "data of block %u", b[i]);
        CHECK(((uintptr_t)d & 4095) == 0, "block data page-aligned");
        fill(d, have[i], 100 + (uint64_t)i); /* every byte is there: no SIGBUS */
        CHECK(pool_holds(p, b[i], me), "the allocator holds it");
    }
    for (int i = 0; i < 3; i++)
        CHECK(intact(pool_data(p, b[i]), have[i], 100 + (uint64_t)i), "block %d overlaps", i);
    s = stats(p);
    CHECK_EQ(s.blocks_in_use, 3);
    CHECK_EQ(s.bytes_in_use, 4 * G);
    CHECK_EQ(s.committed, 4 * G); /* committed as blocks first reach it */
    CHECK_EQ(s.allocs, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pool_release(p, b[i], me), 0);
        CHECK(pool_data(p, b[i]) == NULL, "freed block %d still has data", i);
        CHECK_EQ(pool_block_size(p, b[i]), 0);
    }
    s = stats(p);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(s.bytes_in_use, 0);
    CHECK_EQ(s.frees, 3);
    CHECK_EQ(s.peak_bytes, 4 * G);
    CHECK_EQ(s.committed, 4 * G); /* kept */
    /* Freed memory is used again first: nothing more is committed. */
    REQUIRE(pool_alloc(p, me, 2 * G, &b[0]) == 0, "again");
    CHECK_EQ(stats(p).committed, 4 * G);
    CHECK_EQ(pool_release(p, b[0], me), 0);

    uint32_t all;
    REQUIRE(pool_alloc(p, me, 16 * G, &all) == 0, "the whole pool");
    CHECK_EQ(pool_block_size(p, all), 16 * G);
    fill(pool_data(p, all), 16 * G, 7);
    CHECK(intact(pool_data(p, all), 16 * G, 7), "whole pool");
    s = stats(p);
    CHECK_EQ(s.committed, 16 * G);
    CHECK_EQ(s.peak_bytes, 16 * G);
    uint32_t more;
    CHECK_EQ(pool_alloc(p, me, 1, &more), POOL_FULL);
    CHECK_EQ(pool_release(p, all, me), 0);
    EXPECT_CONSISTENT(p, true);
    pool_destroy(&p);
}

static void bad_handles(void)
{
    pool_t *p = mk(8 * G, 2);
    pool_holder_t me = H(0, 0), other = H(1, 0);
    uint32_t a, b;
    REQUIRE(pool_alloc(p, me, 2 * G, &a) == 0 && pool_alloc(p, me, 1, &b) == 0, "alloc");
    const uint32_t bad[] = {a + 1, b + 1, 7, 8, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(pool_data(p, bad[i]) == NULL, "data of handle %u", bad[i]);
        CHECK_EQ(pool_block_size(p, bad[i]), 0);
        CHECK(!pool_holds(p, bad[i], me), "holds %u", bad[i]);
        CHECK_EQ(pool_hold(p, bad[i], me), MPX_EINVAL);
        CHECK_EQ(pool_release(p, bad[i], me), MPX_EINVAL);
    }
    CHECK_EQ(pool_release(p, a, other), MPX_EINVAL); /* not a holder */
    CHECK_EQ(pool_hold(p, a, H(2, 0)), MPX_EINVAL);  /* no such slot */
    CHECK_EQ(pool_release(p, a, H(5, 0)), MPX_EINVAL);
    CHECK(!pool_holds(p, a, H(9, 0)), "no such slot");
    CHECK_EQ(pool_reclaim(p, H(2, 0)), 0);
    CHECK(pool_data(p, a) != NULL, "still there");
    CHECK_EQ(pool_release(p, a, me), 0);
    /* A freed handle is no longer one. */
    CHECK(pool_data(p, a) == NULL, "freed");
    CHECK_EQ(pool_release(p, a, me), MPX_EINVAL);
    CHECK_EQ(pool_hold(p, a, me), MPX_EINVAL);
    CHECK_EQ(pool_release(p, b, me), 0);
    EXPECT_CONSISTENT(p, true);
    pool_destroy(&p);
}

/* The descriptor is a memfd, close-on-exec, the only one the pool opens,
 * and closed by pool_destroy; the memory is committed as blocks first
 * reach it, and a refusal to commit is MPX_ENOMEM with nothing taken. */
static int count_fds(int *memfd)
{
    int n = 0;
    *memfd = -1;
    for (int fd = 0; fd < 1024; fd++) {
        if (fcntl(fd, F_GETFD) < 0)
            continue;
        n++;
        char path[64], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t l = readlink(path, link, sizeof link - 1);
        if (l > 0) {
            link[l] = 0;
            if (strstr(link, "memfd:mpx-pool"))
                *memfd = fd;
        }
    }
    return n;
}

static void commit_and_descriptor(void)
{
    int memfd;
    int before = count_fds(&memfd);
    CHECK(memfd < 0, "a pool before the first");
    pool_t *p = mk(8 * G, 2);
    CHECK_EQ(count_fds(&memfd), before + 1);
    REQUIRE(memfd >= 0, "no memfd:mpx-pool descriptor");
    CHECK(fcntl(memfd, F_GETFD) & FD_CLOEXEC, "close-on-exec");
    pool_holder_t me = H(0, 0);
    uint32_t a, b;
    REQUIRE(pool_alloc(p, me, G, &a) == 0, "alloc");
    CHECK_EQ(stats(p).committed, G);
    pool_test_fail_commit(p, true);
    CHECK_EQ(pool_alloc(p, me, 3 * G, &b), MPX_ENOMEM);
    pool_stats_t s = stats(p);
    CHECK_EQ(s.committed, G);
    CHECK_EQ(s.blocks_in_use, 1);
    CHECK_EQ(s.allocs, 1);
    EXPECT_CONSISTENT(p, true);
    /* What is committed already needs no commit. */
    CHECK_EQ(pool_release(p, a, me), 0);
    REQUIRE(pool_alloc(p, me, G, &a) == 0, "within the committed part");
    pool_test_fail_commit(p, false);
    REQUIRE(pool_alloc(p, me, 3 * G, &b) == 0, "alloc after");
    CHECK_EQ(stats(p).committed, 4 * G);
    CHECK_EQ(pool_release(p, a, me), 0);
    CHECK_EQ(pool_release(p, b, me), 0);
    EXPECT_CONSISTENT(p, true);
    pool_destroy(&p);
    CHECK_EQ(count_fds(&memfd), before);
    CHECK(memfd < 0, "the memfd outlived pool_destroy");
}

/* ---- a full pool, and the wait for a free ---- */

typedef struct {
    pool_t *p;
    pid_t parent;
    uint32_t blk;
    pool_holder_t who;
    uint64_t waits;
} waker_t;

static void release_when_waiting(void *arg)
{
    waker_t *w = arg;
    await_sleeping(w->parent, w->p, w->waits);
    CHILD_REQUIRE(pool_release(w->p, w->blk, w->who) == 0, "release");
}

static void full_then_wait(void)
{
    pool_t *p = mk(4 * G, 3);
    pool_holder_t parent = H(2, 0), child = H(0, 0);
    uint32_t b[4], x;
    for (int i = 0; i < 4; i++)
        REQUIRE(pool_alloc(p, parent, G, &b[i]) == 0, "fill %d", i);
    /* The child becomes the only holder of b[2]. */
    CHECK_EQ(pool_hold(p, b[2], child), 0);
    CHECK_EQ(pool_release(p, b[2], parent), 0);
    uint32_t seen = pool_frees(p);
    CHECK_EQ(pool_alloc(p, parent, 1, &x), POOL_FULL);
    CHECK_EQ(pool_wait(p, seen, 0), MPX_ETIMEDOUT);
    CHECK_EQ(pool_wait(p, seen, 20), MPX_ETIMEDOUT);
    CHECK_EQ(stats(p).waits, 2);
    /* The child frees once this process sleeps in pool_wait: only a wake
     * ends that wait before its minute. */
    waker_t w = {p, getpid(), b[2], child, 3};
    pid_t pid = spawn(release_when_waiting, &w);
    CHECK_EQ(pool_wait(p, seen, 60000), 0);
    CHECK(pool_frees(p) != seen, "a free was counted");
    CHECK(exited_ok(reap(pid)), "child");
    CHECK_EQ(pool_alloc(p, parent, 1, &x), 0);
    CHECK_EQ(x, b[2]);
    CHECK_EQ(stats(p).waits, 3);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pool_release(p, i == 2 ? x : b[i], parent), 0);
    EXPECT_CONSISTENT(p, true);
    pool_destroy(&p);
}

static volatile sig_atomic_t got_signal;
static void on_usr1(int sig) { got_signal = sig; }

typedef struct {
    pool_t *p;
    pid_t parent;
} poker_t;

static void signal_when_waiting(void *arg)
{
    poker_t *k = arg;
    await_sleeping(k->parent, k->p, 1);
    kill(k->parent, SIGUSR1);
}

/* A signal ends the wait with 0: the caller looks again and decides. */
static void wait_interrupted(void)
{
    pool_t *p = mk(G, 1);
    struct sigaction sa = {.sa_handler = on_usr1}, old;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGUSR1, &sa, &old) == 0, "sigaction");
    poker_t k = {p, getpid()};
    pid_t pid = spawn(signal_when_waiting, &k);
    uint32_t seen = pool_frees(p);
    CHECK_EQ(pool_wait(p, seen, 60000), 0);
    CHECK(got_signal == SIGUSR1, "the signal came");
    CHECK_EQ(pool_frees(p), seen);
    CHECK(exited_ok(reap(pid)), "child");
    sigaction(SIGUSR1, &old, NULL);
    pool_destroy(&p);
}

/* ---- holds across processes ---- */

typedef struct {
    pool_t *p;
    int in, out; /* pipes: handles come in, go out */
    pool_holder_t me, next;
    size_t size;
    uint64_t id;
    int releases; /* of its own holds */
    bool last;    /* its last release frees the block */
} relay_t;

/* Take a handle, check the block, hand it on (or drop it). */
static void relay(void *arg)
{
    relay_t *r = arg;
    uint32_t blk = recv_u32(r->in);
    CHILD_REQUIRE(pool_holds(r->p, blk, r->me), "handed a block it does not hold");
    CHILD_REQUIRE(pool_block_size(r->p, blk) >= r->size, "size");
    CHILD_REQUIRE(intact(pool_data(r->p, blk), r->size, r->id), "the bytes changed");
    if (r->next.slot != UINT32_MAX) {
        CHILD_REQUIRE(pool_hold(r->p, blk, r->next) == 0, "hold for the next");
        send_u32(r->out, blk);
    }
    for (int i = 0; i < r->releases; i++) {
        CHILD_REQUIRE(pool_data(r->p, blk) != NULL, "freed while held (release %d)", i);
        CHILD_REQUIRE(pool_release(r->p, blk, r->me) == 0, "release %d", i);
    }
    if (r->last)
        CHILD_REQUIRE(pool_data(r->p, blk) == NULL, "the last release did not free");
    CHILD_REQUIRE(pool_release(r->p, blk, r->me) == MPX_EINVAL, "released once too often");
    send_u32(r->out, UINT32_MAX - 1); /* done */
}

static void holds_across_processes(void)
{
    pool_t *p = mk(8 * G, 3);
    pool_holder_t parent = H(2, 0), c0 = H(0, 4), c1 = H(1, 9);
    int a[2], b[2], back[2];
    REQUIRE(pipe(a) == 0 && pipe(b) == 0 && pipe(back) == 0, "pipe");
    /* A broadcast: the parent gives both children holds (c1 two), drops
     * its own; c0 drops first, then c1 twice: the block lives until the
     * last. */
    uint32_t x;
    size_t size = 3 * G - 5;
    REQUIRE(pool_alloc(p, parent, size, &x) == 0, "alloc");
    fill(pool_data(p, x), size, 42);
    CHECK_EQ(pool_hold(p, x, c0), 0);
    CHECK_EQ(pool_hold(p, x, c1), 0);
    CHECK_EQ(pool_hold(p, x, c1), 0);
    CHECK_EQ(pool_release(p, x, parent), 0);
    CHECK_EQ(pool_release(p, x, parent), MPX_EINVAL);
    CHECK(!pool_holds(p, x, parent) && pool_holds(p, x, c0) && pool_holds(p, x, c1), "holders");
    relay_t r0 = {p, a[0], back[1], c0, H(UINT32_MAX, 0), size, 42, 1, false};
    relay_t r1 = {p, b[0], back[1], c1, H(UINT32_MAX, 0), size, 42, 2, true};
    pid_t p0 = spawn(relay, &r0);
    send_u32(a[1], x);
    CHECK_EQ(recv_u32(back[0]), UINT32_MAX - 1);
    CHECK(exited_ok(reap(p0)), "c0");
    CHECK(pool_data(p, x) != NULL, "freed while c1 holds it");
    CHECK_EQ(stats(p).blocks_in_use, 1);
    CHECK(!pool_holds(p, x, c0) && pool_holds(p, x, c1), "holders after c0");
    pid_t p1 = spawn(relay, &r1);
    send_u32(b[1], x);
    CHECK_EQ(recv_u32(back[0]), UINT32_MAX - 1);
    CHECK(exited_ok(reap(p1)), "c1");
    pool_stats_t s = stats(p);
    CHECK(pool_data(p, x) == NULL, "not freed by the last holder");
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(s.bytes_in_use, 0);
    CHECK_EQ(s.frees, 1);

    /* A chain: the parent -> c0 -> c1 -> the parent, each giving the next
     * a hold and dropping its own. */
    REQUIRE(pool_alloc(p, parent, size, &x) == 0, "alloc");
    fill(pool_data(p, x), size, 43);
    r0 = (relay_t){p, a[0], b[1], c0, c1, size, 43, 1, false};
    r1 = (relay_t){p, b[0], back[1], c1, parent, size, 43, 1, false};
    p0 = spawn(relay, &r0);
    p1 = spawn(relay, &r1);
    CHECK_EQ(pool_hold(p, x, c0), 0);
    send_u32(a[1], x);
    CHECK_EQ(pool_release(p, x, parent), 0);
    CHECK_EQ(recv_u32(back[0]), x);
    CHECK_EQ(recv_u32(back[0]), UINT32_MAX - 1);
    CHECK(exited_ok(reap(p0)) && exited_ok(reap(p1)), "relays");
    CHECK(pool_holds(p, x, parent) && !pool_holds(p, x, c0) && !pool_holds(p, x, c1), "at home");
    CHECK(intact(pool_data(p, x), size, 43), "bytes after the round");
    CHECK_EQ(stats(p).blocks_in_use, 1);
    CHECK_EQ(pool_release(p, x, parent), 0);
    CHECK_EQ(stats(p).blocks_in_use, 0);
    EXPECT_CONSISTENT(p, true);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
        close(back[i]);
    }
    pool_destroy(&p);
}

static void holder_limit(void)
{
    pool_t *p = mk(2 * G, 20);
    uint32_t x;
    REQUIRE(pool_alloc(p, H(0, 0), 1, &x) == 0, "alloc");
    for (uint32_t s = 1; s < POOL_HOLDERS; s++)
        CHECK_EQ(pool_hold(p, x, H(s, 0)), 0);
    CHECK_EQ(pool_hold(p, x, H(POOL_HOLDERS, 0)), MPX_ERANGE);
    CHECK(!pool_holds(p, x, H(POOL_HOLDERS, 0)), "given although refused");
    /* Another incarnation of a holder's slot is another holder. */
    CHECK_EQ(pool_hold(p, x, H(3, 1)), MPX_ERANGE);
    /* A holder's own count still grows. */
    CHECK_EQ(pool_hold(p, x, H(3, 0)), 0);
    CHECK_EQ(pool_release(p, x, H(5, 0)), 0);
    CHECK(!pool_holds(p, x, H(5, 0)), "5 dropped its only hold");
    CHECK_EQ(pool_hold(p, x, H(POOL_HOLDERS, 0)), 0);
    /* Every hold dropped, each once: the last frees. */
    for (uint32_t s = 0; s <= POOL_HOLDERS; s++) {
        if (s == 5)
            continue;
        CHECK(pool_data(p, x) != NULL, "freed early, before %u", s);
        CHECK_EQ(pool_release(p, x, H(s, 0)), 0);
    }
    CHECK(pool_data(p, x) != NULL, "3 holds twice");
    CHECK_EQ(pool_release(p, x, H(3, 0)), 0);
    CHECK(pool_data(p, x) == NULL, "not freed");
    EXPECT_CONSISTENT(p, true);
    pool_destroy(&p);
}

/* ---- reclaim ---- */

static void hold_for_reclaimed_refused(void)
{
    pool_t *p = mk(2 * G, 3);
    pool_holder_t parent = H(2, 0);
    uint32_t x;
    REQUIRE(pool_alloc(p, parent, 1, &x) == 0, "alloc");
    CHECK_EQ(pool_reclaim(p, H(1, 3)), 0);
    CHECK_EQ(pool_hold(p, x, H(1, 3)), MPX_ESTOPPED);
    CHECK(!pool_holds(p, x, H(1, 3)), "a hold for the dead stayed");
    CHECK_EQ(pool_hold(p, x, H(1, 2)), MPX_ESTOPPED); /* older: dead too */
    CHECK(!pool_holds(p, x, H(1, 2)), "a hold for the dead stayed");
    CHECK_EQ(pool_hold(p, x, H(1, 4)), 0); /* its replacement */
    CHECK(pool_holds(p, x, H(1, 4)), "the replacement's hold");
    CHECK_EQ(pool_hold(p, x, H(0, 3)), 0); /* another slot */
    /* A hold given before the death goes with the reclaim. */
    CHECK_EQ(pool_reclaim(p, H(0, 3)), 1);
    CHECK(!pool_holds(p, x, H(0, 3)), "reclaimed");
    CHECK_EQ(pool_hold(p, x, H(0, 3)), MPX_ESTOPPED);
    CHECK(pool_data(p, x) != NULL, "others still hold it");
    CHECK_EQ(pool_release(p, x, H(1, 4)), 0);
    CHECK_EQ(pool_release(p, x, parent), 0);
    CHECK(pool_data(p, x) == NULL, "freed");
    CHECK_EQ(stats(p).reclaimed, 1);
    EXPECT_CONSISTENT(p, true);
    pool_destroy(&p);
}

/* A reference from a giver that died is stale whether its block was
 * freed since or taken again: MPX_ESTOPPED both ways (a consumer drops the
 * record), never MPX_EINVAL (a malformed message, which fails the run). */
static void hold_if_from_reclaimed_giver_is_stale(void)
{
    pool_t *p = mk(2 * G, 4);
    pool_holder_t giver = H(1, 0), who = H(3, 0);
    uint32_t b, again;
    REQUIRE(pool_alloc(p, giver, 1000, &b) == 0, "alloc");
    CHECK_EQ(pool_reclaim(p, giver), 1); /* the giver died: b is freed */
    CHECK(pool_data(p, b) == NULL, "freed");
    CHECK_EQ(pool_hold_if(p, b, who, giver), MPX_ESTOPPED);
    REQUIRE(pool_alloc(p, H(2, 0), 1000, &again) == 0 && again == b, "taken again");
    CHECK_EQ(pool_hold_if(p, b, who, giver), MPX_ESTOPPED);
    CHECK(!pool_holds(p, b, who), "nothing taken");
    /* A live giver's reference to a free block is a bad one. */
    CHECK_EQ(pool_release(p, b, H(2, 0)), 0);
    CHECK_EQ(pool_hold_if(p, b, who, H(2, 0)), MPX_EINVAL);
    EXPECT_CONSISTENT(p, true);
    pool_destroy(&p);
}

typedef struct {
    pool_t *p;
    int out;
    uint32_t shared;
    pool_holder_t me, parent;
} dier_t;

/* Allocate and hold, then say so and wait to be killed. */
static void hold_and_die(void *arg)
{
    dier_t *d = arg;
    uint32_t a, b, c;
    CHILD_REQUIRE(pool_alloc(d->p, d->me, 100, &a) == 0, "a");
    CHILD_REQUIRE(pool_alloc(d->p, d->me, G + 1, &b) == 0, "b");
    CHILD_REQUIRE(pool_alloc(d->p, d->me, 3 * G, &c) == 0, "c");
    CHILD_REQUIRE(pool_hold(d->p, b, d->parent) == 0, "b for the parent");
    CHILD_REQUIRE(pool_hold(d->p, c, d->me) == 0 && pool_hold(d->p, c, d->me) == 0, "c x3");
    CHILD_REQUIRE(pool_hold(d->p, d->shared, d->me) == 0, "shared x2");
    send_u32(d->out, a);
    send_u32(d->out, b);
    send_u32(d->out, c);
    pause();
}

static void reclaim_after_death(void)
{
    pool_t *p = mk(16 * G, 3);
    pool_holder_t parent = H(2, 0), child = H(0, 7);
    uint32_t shared;
    REQUIRE(pool_alloc(p, parent, 1, &shared) == 0, "alloc");
    CHECK_EQ(pool_hold(p, shared, child), 0);
    int fds[2];
    REQUIRE(pipe(fds) == 0, "pipe");
    dier_t d = {p, fds[1], shared, child, parent};
    pid_t pid = spawn(hold_and_die, &d);
    uint32_t a = recv_u32(fds[0]), b = recv_u32(fds[0]), c = recv_u32(fds[0]);
    kill(pid, SIGKILL);
    CHECK(killed(reap(pid)), "child");
    CHECK_EQ(stats(p).blocks_in_use, 4);
    /* 1 (a) + 1 (b) + 3 (c) + 2 (shared) */
    CHECK_EQ(pool_reclaim(p, child), 7);
    CHECK(pool_data(p, a) == NULL && pool_data(p, c) == NULL, "held by the dead only: freed");
    CHECK(pool_data(p, b) != NULL && pool_data(p, shared) != NULL, "the parent holds these");
    CHECK(!pool_holds(p, b, child) && !pool_holds(p, shared, child), "dead holder left");
    pool_stats_t s = stats(p);
    CHECK_EQ(s.blocks_in_use, 2);
    CHECK_EQ(s.bytes_in_use, 3 * G);
    CHECK_EQ(s.reclaimed, 7);
    EXPECT_CONSISTENT(p, true);
    CHECK_EQ(pool_reclaim(p, child), 0);
    CHECK_EQ(pool_release(p, b, parent), 0);
    CHECK_EQ(pool_release(p, shared, parent), 0);
    CHECK_EQ(stats(p).blocks_in_use, 0);
    close(fds[0]);
    close(fds[1]);
    pool_destroy(&p);
}

/* ---- a death at every step ---- */

enum { K_ALLOC, K_FREE, K_HOLD, K_REFUSED, K_REBUILD };
static const struct {
    int point, kind;
    bool locked; /* dies holding the lock */
} crash_table[] = {
    {POOL_CRASH_ALLOC_LOCKED, K_ALLOC, true},     {POOL_CRASH_ALLOC_COMMITTED, K_ALLOC, true},
    {POOL_CRASH_ALLOC_MAPPED, K_ALLOC, true},     {POOL_CRASH_ALLOC_HEADER, K_ALLOC, true},
    {POOL_CRASH_ALLOC_HELD, K_ALLOC, true},       {POOL_CRASH_ALLOC_COUNTED, K_ALLOC, true},
    {POOL_CRASH_ALLOC_UNLOCKED, K_ALLOC, false},  {POOL_CRASH_RELEASE_DROPPED, K_FREE, false},
    {POOL_CRASH_FREE_LOCKED, K_FREE, true},       {POOL_CRASH_FREE_MARKED, K_FREE, true},
    {POOL_CRASH_FREE_UNMAPPED, K_FREE, true},     {POOL_CRASH_FREE_COUNTED, K_FREE, true},
    {POOL_CRASH_FREE_DONE, K_FREE, true},         {POOL_CRASH_FREE_UNLOCKED, K_FREE, false},
    {POOL_CRASH_HOLD_GIVEN, K_HOLD, false},       {POOL_CRASH_HOLD_BUMPED, K_HOLD, false},
    {POOL_CRASH_HOLD_REFUSED, K_REFUSED, false},  {POOL_CRASH_REBUILD_START, K_REBUILD, true},
    {POOL_CRASH_REBUILD_HALF, K_REBUILD, true},
};

typedef struct {
    pool_t *p;
    int point, kind;
    uint32_t blk;
    pool_holder_t me, other;
} crasher_t;

static void crash_there(void *arg)
{
    crasher_t *c = arg;
    pool_test_crash_at(c->p, c->point);
    uint32_t b;
    int r = 0;
    switch (c->kind) {
    case K_ALLOC:
    case K_REBUILD:
        r = pool_alloc(c->p, c->me, 2 * G, &b);
        break;
    case K_FREE:
        r = pool_release(c->p, c->blk, c->me);
        break;
    case K_HOLD:
    case K_REFUSED:
        r = pool_hold(c->p, c->blk, c->other);
        break;
    }
    fprintf(stderr, "crash point %d not reached (r = %d)\n", c->point, r);
    _exit(5);
}

static void die_at(pool_t *p, int point, int kind, uint32_t blk, pool_holder_t me,
                   pool_holder_t other)
{
    crasher_t c = {p, point, kind, blk, me, other};
    int status = reap(spawn(crash_there, &c));
    CHECK(killed(status), "crash point %d: the child did not die there", point);
}

static void crash_points(void)
{
    size_t n = sizeof crash_table / sizeof *crash_table;
    CHECK_EQ(n, POOL_CRASH_POINTS - 1); /* every point is tried */
    for (size_t i = 0; i < n; i++) {
        int point = crash_table[i].point, kind = crash_table[i].kind;
        pool_t *p = mk(8 * G, 3);
        pool_holder_t child = H(0, 5), other = H(1, 2), parent = H(2, 0);
        uint32_t keep, x = UINT32_MAX;
        REQUIRE(pool_alloc(p, parent, 1, &keep) == 0, "keep");
        if (kind != K_ALLOC) { /* the child is x's only holder */
            REQUIRE(pool_alloc(p, parent, 2 * G, &x) == 0, "x");
            CHECK_EQ(pool_hold(p, x, child), 0);
            CHECK_EQ(pool_release(p, x, parent), 0);
        }
        if (kind == K_REFUSED)
            CHECK_EQ(pool_reclaim(p, other), 0);
        uint64_t rec = pool_test_recoveries(p);
        if (kind == K_REBUILD) {
            /* One child dies freeing x in the lock; the next locker dies
             * in the rebuild. */
            die_at(p, POOL_CRASH_FREE_MARKED, K_FREE, x, child, other);
            die_at(p, point, K_REBUILD, UINT32_MAX, other, child);
            pool_reclaim(p, other);
        } else {
            die_at(p, point, kind, x, child, other);
        }
        if (kind == K_REFUSED)
            CHECK(pool_holds(p, x, other), "point %d: the refused hold was taken back", point);
        /* The parent's reclaim of the dead is all the repair there is. */
        pool_reclaim(p, child);
        if (kind == K_HOLD) {
            CHECK(pool_holds(p, x, other), "point %d: the given hold is gone", point);
            CHECK(pool_data(p, x) != NULL, "point %d: freed while `other` holds it", point);
            pool_reclaim(p, other);
        }
        if (x != UINT32_MAX)
            CHECK(pool_data(p, x) == NULL, "point %d: the dead's block is not freed", point);
        char why[256];
        CHECK(pool_test_check(p, true, why, sizeof why) == 0, "point %d: %s", point, why);
        if (crash_table[i].locked)
            CHECK(pool_test_recoveries(p) > rec, "point %d: no recovery", point);
        pool_stats_t s = stats(p);
        CHECK(s.blocks_in_use == 1 && s.bytes_in_use == G, "point %d: %llu blocks in use", point,
              (unsigned long long)s.blocks_in_use);
        CHECK_EQ(pool_release(p, keep, parent), 0);
        uint32_t all;
        CHECK(pool_alloc(p, parent, 8 * G, &all) == 0, "point %d: the pool is not whole", point);
        CHECK_EQ(pool_release(p, all, parent), 0);
        pool_destroy(&p);
    }
}

/* ---- a lock owner killed ---- */

typedef struct {
    pool_t *p;
    int out;
} locker_t;

static void lock_and_stay(void *arg)
{
    locker_t *l = arg;
    CHILD_REQUIRE(pool_test_lock(l->p) == 0, "lock");
    send_u32(l->out, 1);
    pause();
}

typedef struct {
    pool_t *p;
    pid_t parent, victim;
} killer_t;

/* Kill the lock's owner once the parent sleeps waiting for the lock. */
static void kill_when_blocked(void *arg)
{
    killer_t *k = arg;
    double end = now_s() + 60;
    while (proc_state(k->parent) != 'S') {
        CHILD_REQUIRE(now_s() < end, "the parent never blocked");
        sched_yield();
    }
    kill(k->victim, SIGKILL);
}

static void lock_owner_killed(void)
{
    pool_t *p = mk(4 * G, 2);
    pool_holder_t me = H(1, 0);
    int fds[2];
    REQUIRE(pipe(fds) == 0, "pipe");
    locker_t l = {p, fds[1]};
    /* Killed while nobody waits: the next locker recovers. */
    for (int round = 0; round < 3; round++) {
        pid_t pid = spawn(lock_and_stay, &l);
        CHECK_EQ(recv_u32(fds[0]), 1);
        kill(pid, SIGKILL);
        CHECK(killed(reap(pid)), "locker");
        uint32_t b;
        CHECK_EQ(pool_alloc(p, me, G, &b), 0);
        CHECK_EQ(pool_test_recoveries(p), (uint64_t)round + 1);
        CHECK_EQ(pool_release(p, b, me), 0);
        EXPECT_CONSISTENT(p, true);
    }
    /* Killed while this process sleeps on the lock in pool_alloc: the
     * kernel wakes it (a robust mutex), and it recovers. */
    pid_t owner = spawn(lock_and_stay, &l);
    CHECK_EQ(recv_u32(fds[0]), 1);
    killer_t k = {p, getpid(), owner};
    pid_t killer = spawn(kill_when_blocked, &k);
    uint32_t b;
    CHECK_EQ(pool_alloc(p, me, G, &b), 0);
    CHECK(killed(reap(owner)), "owner");
    CHECK(exited_ok(reap(killer)), "killer");
    CHECK_EQ(pool_test_recoveries(p), 4);
    CHECK_EQ(pool_release(p, b, me), 0);
    EXPECT_CONSISTENT(p, true);
    close(fds[0]);
    close(fds[1]);
    pool_destroy(&p);
}

/* ---- torture: processes hand blocks around while being killed ---- */

#define TW 4        /* workers */
#define RING 8      /* entries from one worker to another */
#define KILLS 2000  /* deaths, counted */
#define TPOOL 32    /* granules: small enough to be full often */
#define NO_TARGET UINT64_MAX

typedef struct {
    _Atomic uint32_t blk, gen;
    _Atomic uint64_t id;
    _Atomic uint64_t size;
} t_entry;

typedef struct {
    _Atomic uint32_t head, tail;
    t_entry e[RING];
} t_ring;

typedef struct {
    t_ring ring[TW][TW]; /* [from][to] */
    _Atomic uint32_t gen[TW];
    _Atomic uint64_t ops[TW], target[TW];
    _Atomic uint64_t next_id, handed, verified, fulls, bad;
    _Atomic int stop;
    char msg[256];
} torture_t;

typedef struct {
    pool_t *p;
    torture_t *t;
    int pipe_w;
    uint32_t i, gen;
    int crash;
    uint64_t seed;
} worker_t;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static _Noreturn void worker_bad(torture_t *t, const char *what, uint32_t blk)
{
    snprintf(t->msg, sizeof t->msg, "%s (block %u, pid %d)", what, blk, (int)getpid());
    atomic_fetch_add(&t->bad, 1);
    _exit(2);
}

typedef struct {
    uint32_t blk;
    uint64_t id, size;
} held_t;

static void hand(worker_t *w, held_t h, uint32_t to)
{
    torture_t *t = w->t;
    pool_holder_t me = H(w->i, w->gen);
    t_ring *r = &t->ring[w->i][to];
    uint32_t tail = atomic_load(&r->tail);
    if (tail - atomic_load(&r->head) < RING) {
        uint32_t g = atomic_load(&t->gen[to]);
        int rc = pool_hold(w->p, h.blk, H(to, g));
        if (rc == 0) {
            t_entry *e = &r->e[tail % RING];
            atomic_store(&e->blk, h.blk);
            atomic_store(&e->gen, g);
            atomic_store(&e->id, h.id);
            atomic_store(&e->size, h.size);
            atomic_store(&r->tail, tail + 1);
            atomic_fetch_add(&t->handed, 1);
        } else if (rc != MPX_ESTOPPED && rc != MPX_ERANGE) {
            worker_bad(t, "pool_hold failed", h.blk);
        }
    }
    if (pool_release(w->p, h.blk, me) != 0)
        worker_bad(t, "release after handing failed", h.blk);
}

static void worker(void *arg)
{
    worker_t *w = arg;
    torture_t *t = w->t;
    pool_t *p = w->p;
    pool_test_crash_at(p, w->crash);
    pool_holder_t me = H(w->i, w->gen);
    uint64_t s = w->seed | 1;
    held_t kept[4];
    int nkept = 0;
    bool full = false; /* the last alloc found no room: free what comes in */
    while (!atomic_load(&t->stop)) {
        int came = 0;
        uint64_t ops = atomic_fetch_add(&t->ops[w->i], 1) + 1;
        if (ops == atomic_load(&t->target[w->i]))
            send_u32(w->pipe_w, w->i);
        /* What the others handed this incarnation. */
        for (uint32_t f = 0; f < TW; f++) {
            t_ring *r = &t->ring[f][w->i];
            uint32_t head;
            while ((head = atomic_load(&r->head)) != atomic_load(&r->tail)) {
                t_entry *e = &r->e[head % RING];
                held_t h = {atomic_load(&e->blk), atomic_load(&e->id), atomic_load(&e->size)};
                uint32_t gen = atomic_load(&e->gen);
                atomic_store(&r->head, head + 1);
                if (gen != w->gen)
                    continue; /* for a dead predecessor: reclaimed with it */
                if (!pool_holds(p, h.blk, me))
                    worker_bad(t, "handed a block it does not hold", h.blk);
                const void *d = pool_data(p, h.blk);
                if (!d || pool_block_size(p, h.blk) < h.size || !intact(d, h.size, h.id))
                    worker_bad(t, "a handed block's bytes changed", h.blk);
                atomic_fetch_add(&t->verified, 1);
                came++;
                uint64_t c = full ? 3 : rnd(&s) % 4;
                if (c < 2)
                    hand(w, h, (w->i + 1 + (uint32_t)(rnd(&s) % (TW - 1))) % TW);
                else if (c == 2 && nkept < 4)
                    kept[nkept++] = h;
                else if (pool_release(p, h.blk, me) != 0)
                    worker_bad(t, "release failed", h.blk);
            }
        }
        uint64_t c = rnd(&s) % 8;
        if (c < 4) {
            held_t h = {0, atomic_fetch_add(&t->next_id, 1), 8 + rnd(&s) % (3 * G - 8)};
            uint32_t seen = pool_frees(p);
            int rc = pool_alloc(p, me, h.size, &h.blk);
            if (rc == POOL_FULL) {
                /* Room comes from what this one keeps, or from the others. */
                atomic_fetch_add(&t->fulls, 1);
                full = true;
                if (nkept > 0 && pool_release(p, kept[--nkept].blk, me) != 0)
                    worker_bad(t, "release failed", kept[nkept].blk);
                else if (nkept == 0 && came == 0)
                    pool_wait(p, seen, 5);
                continue;
            }
            if (rc != 0)
                worker_bad(t, "pool_alloc failed", 0);
            full = false;
            fill(pool_data(p, h.blk), h.size, h.id);
            if (rnd(&s) % 2 || nkept == 4)
                hand(w, h, (w->i + 1 + (uint32_t)(rnd(&s) % (TW - 1))) % TW);
            else
                kept[nkept++] = h;
        } else if (nkept > 0) {
            held_t h = kept[--nkept];
            if (!intact(pool_data(p, h.blk), h.size, h.id))
                worker_bad(t, "a kept block's bytes changed", h.blk);
            if (c < 6) {
                if (pool_release(p, h.blk, me) != 0)
                    worker_bad(t, "release failed", h.blk);
            } else {
                hand(w, h, (w->i + 1 + (uint32_t)(rnd(&s) % (TW - 1))) % TW);
            }
        }
    }
}

static int pidfd_of(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/* Crash points a worker reaches in its normal work. */
static const int torture_points[] = {
    POOL_CRASH_ALLOC_LOCKED,   POOL_CRASH_ALLOC_MAPPED,   POOL_CRASH_ALLOC_HEADER,
    POOL_CRASH_ALLOC_HELD,     POOL_CRASH_ALLOC_COUNTED,  POOL_CRASH_ALLOC_UNLOCKED,
    POOL_CRASH_RELEASE_DROPPED, POOL_CRASH_FREE_LOCKED,   POOL_CRASH_FREE_MARKED,
    POOL_CRASH_FREE_UNMAPPED,  POOL_CRASH_FREE_COUNTED,   POOL_CRASH_FREE_DONE,
    POOL_CRASH_FREE_UNLOCKED,  POOL_CRASH_HOLD_GIVEN,     POOL_CRASH_HOLD_BUMPED,
};

static bool locked_point(int point)
{
    for (size_t i = 0; i < sizeof crash_table / sizeof *crash_table; i++)
        if (crash_table[i].point == point)
            return crash_table[i].locked;
    return false;
}

typedef struct {
    pool_t *p;
    torture_t *t;
    int pipe_r, pipe_w;
    pid_t pid[TW];
    int pidfd[TW], crash[TW];
    uint64_t seed, incarnations, next_point;
    uint64_t deaths, self_deaths, locked_deaths, dropped;
} boss_t;

static void start_worker(boss_t *b, uint32_t i)
{
    size_t npoints = sizeof torture_points / sizeof *torture_points;
    /* Every third incarnation dies by itself at a crash point, in turn. */
    b->crash[i] = ++b->incarnations % 3 == 0 ? torture_points[b->next_point++ % npoints] : 0;
    worker_t w = {b->p, b->t, b->pipe_w, i, atomic_load(&b->t->gen[i]), b->crash[i], rnd(&b->seed)};
    b->pid[i] = spawn(worker, &w);
    b->pidfd[i] = pidfd_of(b->pid[i]);
    REQUIRE(b->pidfd[i] >= 0, "pidfd_open: %s", strerror(errno));
}

/* Reap worker i (dead, or killed now), reclaim it, start its next
 * incarnation. */
static void replace_worker(boss_t *b, uint32_t i, bool by_us)
{
    if (by_us)
        kill(b->pid[i], SIGKILL);
    int status = reap(b->pid[i]);
    close(b->pidfd[i]);
    REQUIRE(killed(status), "worker %u: status %#x: %s", i, status, b->t->msg);
    if (!by_us) {
        REQUIRE(b->crash[i] != 0, "worker %u died by itself", i);
        b->self_deaths++;
        b->locked_deaths += locked_point(b->crash[i]);
    }
    uint32_t gen = atomic_load(&b->t->gen[i]);
    b->dropped += pool_reclaim(b->p, H(i, gen));
    if (++b->deaths % 32 == 0) {
        char why[256];
        REQUIRE(pool_test_check(b->p, false, why, sizeof why) == 0, "after %llu deaths: %s",
                (unsigned long long)b->deaths, why);
    }
    atomic_store(&b->t->gen[i], gen + 1);
    start_worker(b, i);
}

static void torture(void)
{
    boss_t b = {.p = mk(TPOOL * G, TW + 1), .seed = 0x2545f4914f6cdd1dull};
    pool_t *p = b.p;
    pool_holder_t parent = H(POOL_PARENT_SLOT(TW), 0);
    torture_t *t = mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(t != MAP_FAILED, "mmap");
    b.t = t;
    int fds[2];
    REQUIRE(pipe2(fds, O_CLOEXEC) == 0, "pipe");
    b.pipe_r = fds[0];
    b.pipe_w = fds[1];
    for (uint32_t i = 0; i < TW; i++)
        atomic_store(&t->target[i], NO_TARGET);
    for (uint32_t i = 0; i < TW; i++)
        start_worker(&b, i);
    /* A victim works a little (a count of its steps, not a time) and is
     * killed; meanwhile any worker that dies at its crash point is
     * replaced at once. */
    uint32_t victim = TW;
    while (b.deaths < KILLS) {
        if (victim == TW) {
            victim = (uint32_t)(rnd(&b.seed) % TW);
            uint64_t steps = 1 + (b.crash[victim] ? 2000 : rnd(&b.seed) % 40);
            atomic_store(&t->target[victim], atomic_load(&t->ops[victim]) + steps);
        }
        struct pollfd q[TW + 1];
        for (uint32_t i = 0; i < TW; i++)
            q[i] = (struct pollfd){b.pidfd[i], POLLIN, 0};
        q[TW] = (struct pollfd){fds[0], POLLIN, 0};
        REQUIRE(poll(q, TW + 1, 60000) > 0, "no worker worked or died for a minute");
        for (uint32_t i = 0; i < TW; i++) {
            if (!(q[i].revents & POLLIN))
                continue;
            if (i == victim) {
                atomic_store(&t->target[i], NO_TARGET);
                victim = TW;
            }
            replace_worker(&b, i, false);
        }
        if (q[TW].revents & POLLIN) {
            uint32_t who[16];
            ssize_t n = read(fds[0], who, sizeof who);
            for (ssize_t k = 0; k < n / 4; k++) {
                if (who[k] != victim)
                    continue; /* late, from a victim already replaced */
                atomic_store(&t->target[victim], NO_TARGET);
                replace_worker(&b, victim, true);
                victim = TW;
            }
        }
    }
    /* The end: they stop, leaving what they hold to the reclaim. */
    atomic_store(&t->stop, 1);
    for (uint32_t i = 0; i < TW; i++) {
        int status = reap(b.pid[i]);
        close(b.pidfd[i]);
        CHECK(exited_ok(status) || (b.crash[i] && killed(status)), "worker %u: status %#x: %s",
              i, status, t->msg);
        b.dropped += pool_reclaim(p, H(i, atomic_load(&t->gen[i])));
    }
    CHECK_EQ(atomic_load(&t->bad), 0);
    pool_stats_t s = stats(p);
    printf("torture: %llu deaths (%llu at a crash point, %llu of them holding the lock), "
           "%llu lock recoveries, %llu holds reclaimed; %llu allocs, %llu frees, %llu handed, "
           "%llu verified, %llu times full, %llu waits\n",
           (unsigned long long)b.deaths, (unsigned long long)b.self_deaths,
           (unsigned long long)b.locked_deaths, (unsigned long long)pool_test_recoveries(p),
           (unsigned long long)b.dropped, (unsigned long long)s.allocs,
           (unsigned long long)s.frees, (unsigned long long)t->handed,
           (unsigned long long)t->verified, (unsigned long long)t->fulls,
           (unsigned long long)s.waits);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(s.bytes_in_use, 0);
    CHECK_EQ(s.reclaimed, b.dropped);
    EXPECT_CONSISTENT(p, true);
    uint32_t all;
    CHECK_EQ(pool_alloc(p, parent, TPOOL * G, &all), 0);
    CHECK_EQ(pool_release(p, all, parent), 0);
    /* The run did what it is for. */
    CHECK(b.locked_deaths >= 50, "only %llu deaths holding the lock",
          (unsigned long long)b.locked_deaths);
    CHECK(pool_test_recoveries(p) >= b.locked_deaths, "a death in the lock was not recovered");
    CHECK(t->verified > 1000 && t->fulls > 0 && b.dropped > 0, "too little happened");
    close(fds[0]);
    close(fds[1]);
    munmap(t, sizeof *t);
    pool_destroy(&p);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(alloc_sizes),
        TEST_CASE(bad_handles),
        TEST_CASE(commit_and_descriptor),
        TEST_CASE(full_then_wait),
        TEST_CASE(wait_interrupted),
        TEST_CASE(holds_across_processes),
        TEST_CASE(holder_limit),
        TEST_CASE(hold_for_reclaimed_refused),
        TEST_CASE(hold_if_from_reclaimed_giver_is_stale),
        TEST_CASE(reclaim_after_death),
        TEST_CASE(crash_points),
        TEST_CASE(lock_owner_killed),
        TEST_CASE(torture),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
