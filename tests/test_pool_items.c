/* tests/test_pool_items.c — items in the graph's shared-memory pool: large
 * puts that travel by reference, mpx_alloc / mpx_put_alloc, through chains,
 * parallel and broadcast groups, kept copies, a full pool, a crash; every
 * item arrives whole, and after the run nothing is in use. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

#define MIB (1024 * 1024)

/* Byte k of item v. */
static unsigned char byte_of(int64_t v, size_t k) { return (unsigned char)(v * 31 + k * 7 + k / 4096); }

static bool item_ok(const mpx_item_t *it, int64_t v, size_t size)
{
    if (mpx_item_parts(it) != 1 || mpx_item_size(it, 0) != size)
        return false;
    const unsigned char *d = mpx_item_data(it, 0);
    for (size_t k = 0; k < size; k++)
        if (d[k] != byte_of(v, k))
            return false;
    return d[size] == 0; /* the NUL every part is followed by */
}

typedef struct src_args {
    int64_t n;
    size_t size;
    bool alloc; /* mpx_alloc + mpx_put_alloc, else mpx_put of a buffer */
} src_args_t;

/* Puts n items of `size` bytes, item v with meta "v". */
static int src_setup(mpx_stage_t *st)
{
    const src_args_t *a = mpx_args(st);
    unsigned char *buf = a->alloc ? NULL : malloc(a->size);
    if (!a->alloc && !buf)
        return mpx_fail(st, "out of memory");
    int rc = 0;
    for (int64_t v = 0; v < a->n && rc == 0; v++) {
        unsigned char *d = buf;
        if (a->alloc && !(d = mpx_alloc(st, a->size))) {
            rc = mpx_fail(st, "mpx_alloc(%zu) gave NULL", a->size);
            break;
        }
        for (size_t k = 0; k < a->size; k++)
            d[k] = byte_of(v, k);
        rc = mpx_meta_set_i64(st, "v", v);
        if (rc == 0)
            rc = a->alloc ? mpx_put_alloc(st, d, a->size) : mpx_put(st, d, a->size);
    }
    free(buf);
    return rc;
}
static const mpx_stage_def_t Src = {.name = "src", .args_size = sizeof(src_args_t),
                                    .setup = src_setup};

/* Checks each item in place and passes it on. */
static int check_pass(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t v;
    if (mpx_item_meta_i64(it, "v", &v) != 0)
        return mpx_fail(st, "no meta v");
    if (!item_ok(it, v, mpx_item_size(it, 0)))
        return mpx_fail(st, "item %lld differs", (long long)v);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t CheckPass = {.name = "checkpass", .process = check_pass};

/* Keeps up to 4 items (copies), then puts them in the order kept. */
typedef struct keep_state {
    mpx_item_t *kept[4];
    int n;
} keep_state_t;
static int keep_flush(mpx_stage_t *st)
{
    keep_state_t *s = mpx_state(st);
    int rc = 0;
    for (int i = 0; i < s->n; i++) {
        if (rc == 0 && (rc = mpx_meta_load(st, s->kept[i])) == 0)
            rc = mpx_put_item(st, s->kept[i]);
        mpx_item_free(&s->kept[i]);
    }
    s->n = 0;
    return rc;
}
static int keep_process(mpx_stage_t *st, mpx_item_t *it)
{
    keep_state_t *s = mpx_state(st);
    if (!(s->kept[s->n++] = mpx_item_dup(it)))
        return mpx_fail(st, "mpx_item_dup gave NULL");
    return s->n == 4 ? keep_flush(st) : 0;
}
static const mpx_stage_def_t Keep = {.name = "keep", .state_size = sizeof(keep_state_t),
                                     .process = keep_process, .teardown = keep_flush};

/* Dies (SIGKILL) on item `at` once per run (the event says it did). */
typedef struct die_args {
    int64_t at;
    mpx_event_t *done;
} die_args_t;
static int die_process(mpx_stage_t *st, mpx_item_t *it)
{
    const die_args_t *a = mpx_args(st);
    int64_t v = -1;
    if (mpx_item_meta_i64(it, "v", &v) == 0 && v == a->at && !mpx_event_is_set(a->done)) {
        mpx_event_set(a->done);
        kill(getpid(), SIGKILL);
    }
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Die = {.name = "die", .args_size = sizeof(die_args_t),
                                    .process = die_process};

/* Reads the whole output: every v in [0, n) once (or `times` times),
 * each whole.  Then the run's outcome must be 0 and nothing in use. */
static void drain_check(mpx_graph_t *g, int64_t n, size_t size, int times)
{
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    unsigned char *seen = calloc((size_t)n, 1);
    REQUIRE(seen, "out of memory");
    mpx_item_t *it;
    int64_t bad = 0;
    while ((it = mpx_graph_next(g))) {
        int64_t v = -1;
        if (mpx_item_meta_i64(it, "v", &v) != 0 || v < 0 || v >= n || !item_ok(it, v, size)) {
            bad++;
            continue;
        }
        seen[v]++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(!mpx_graph_error(g)[0], "%s", mpx_graph_error(g));
    CHECK_EQ(bad, 0);
    for (int64_t v = 0; v < n; v++)
        if (seen[v] != times) {
            CHECK(false, "item %lld arrived %d times", (long long)v, seen[v]);
            break;
        }
    free(seen);
    mpx_pool_stats_t s;
    CHECK_EQ(mpx_graph_pool_stats(g, &s), 0);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(s.bytes_in_use, 0);
    CHECK(s.peak_bytes >= size, "the pool was not used: peak %llu", (unsigned long long)s.peak_bytes);
    CHECK(s.peak_bytes <= s.capacity, "peak %llu over capacity %llu",
          (unsigned long long)s.peak_bytes, (unsigned long long)s.capacity);
}

/* Zeroed memory every process of a run sees (mapped before start). */
static void *shared_zeroed(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED, "mmap");
    return p;
}

/* The run used the pool and left nothing in it. */
static void pool_used_and_clear(mpx_graph_t *g, size_t size)
{
    mpx_pool_stats_t s;
    CHECK_EQ(mpx_graph_pool_stats(g, &s), 0);
    CHECK(s.peak_bytes >= size, "the pool was not used");
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(s.bytes_in_use, 0);
}

static mpx_node_t *src(int64_t n, size_t size, bool alloc)
{
    return mpx_stage(&Src, &(src_args_t){n, size, alloc});
}

static void run_checked(mpx_graph_t *g, int64_t n, size_t size, int times)
{
    drain_check(g, n, size, times);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Large puts through a chain: copied once into the pool, then referred
 * to by every hop. */
static void chain_of_large_puts(void)
{
    mpx_graph_t *g = MPX_EZ(src(200, 256 * 1024, false), mpx_stage(&CheckPass, NULL),
                            mpx_stage(&CheckPass, NULL));
    CHECK_EQ(mpx_graph_set_pool(g, 64 * MIB), 0);
    run_checked(g, 200, 256 * 1024, 1);
}

/* Blocks written in place, then through a parallel group. */
static void alloc_through_parallel(void)
{
    mpx_graph_t *g = MPX_EZ(src(300, MIB, true), mpx_as(3, &CheckPass, NULL));
    CHECK_EQ(mpx_graph_set_pool(g, 64 * MIB), 0);
    run_checked(g, 300, MIB, 1);
}

/* A broadcast shares one block among its branches. */
static void broadcast_shares_blocks(void)
{
    mpx_graph_t *g = MPX_EZ(src(100, 300 * 1024, true),
                            MPX_B(mpx_stage(&CheckPass, NULL), mpx_as(2, &CheckPass, NULL),
                                  mpx_stage(&CheckPass, NULL)));
    CHECK_EQ(mpx_graph_set_pool(g, 64 * MIB), 0);
    run_checked(g, 100, 300 * 1024, 3);
}

/* A block has at most 8 holders: a broadcast of a pool item to 10
 * branches (and its producer's copy) is more than that, and the branches
 * that find the block full copy its bytes out instead: every copy
 * arrives whole, nothing is left in use. */
static void broadcast_wider_than_holders_copies(void)
{
    mpx_graph_t *g = MPX_EZ(src(40, 100 * 1024, true), mpx_by(10, &CheckPass, NULL));
    CHECK_EQ(mpx_graph_set_pool(g, 64 * MIB), 0);
    run_checked(g, 40, 100 * 1024, 10);
}

/* Without mpx_graph_set_pool a graph has the default pool, and large
 * puts go through it. */
static void default_pool_carries_large_items(void)
{
    mpx_graph_t *g = MPX_EZ(src(50, 256 * 1024, false), mpx_stage(&CheckPass, NULL));
    drain_check(g, 50, 256 * 1024, 1);
    mpx_pool_stats_t s;
    CHECK_EQ(mpx_graph_pool_stats(g, &s), 0);
    CHECK_EQ(s.capacity, mpx_default_pool_bytes());
    CHECK(mpx_default_pool_bytes() > 0 && mpx_default_pool_bytes() <= MPX_DEFAULT_POOL_MAX,
          "default %zu", mpx_default_pool_bytes());
    expect_clean(g);
    mpx_node_destroy(&g);
    /* 0 turns it off: the same items go through the sockets. */
    g = MPX_EZ(src(50, 256 * 1024, false), mpx_stage(&CheckPass, NULL));
    CHECK_EQ(mpx_graph_set_pool(g, 0), 0);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    int64_t n = 0;
    while (mpx_graph_next(g))
        n++;
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 50);
    CHECK(mpx_graph_pool_stats(g, &s) != 0, "a graph without a pool has no pool stats");
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* The memory a pool takes is bounded by the edges' byte capacities, not
 * by its size: a part in the pool counts against its consumer's byte
 * window as if it were in the message, so a fast source ahead of a slow
 * reader is held back as it would be without a pool.  200 items of 1 MiB,
 * windows of 4 MiB, three edges (source, two stages, the parent): what is
 * in flight at once is at most a window and an item per edge and a few
 * items in hand, far below the 200 MiB a source let run ahead would
 * take.  The pool's `committed` is the memory it took (its peak). */
static void pool_memory_bounded_by_capacity(void)
{
    mpx_graph_t *g = MPX_EZ(src(200, MIB, false), mpx_stage(&CheckPass, NULL),
                            mpx_stage(&CheckPass, NULL));
    CHECK_EQ(mpx_node_set_capacity(g, 0, 4 * MIB), 0);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    mpx_item_t *it;
    int64_t n = 0;
    while ((it = mpx_graph_next(g))) {
        /* A slow reader: 2 ms of work an item, so the source runs ahead
         * as far as the graph lets it. */
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do
            clock_gettime(CLOCK_MONOTONIC, &t);
        while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 2000000L);
        n++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 200);
    mpx_pool_stats_t s;
    CHECK_EQ(mpx_graph_pool_stats(g, &s), 0);
    CHECK(s.peak_bytes >= MIB, "the pool was not used");
    CHECK(s.committed <= 32 * MIB, "the pool took %llu MiB for windows of 4 MiB",
          (unsigned long long)(s.committed / MIB));
    CHECK_EQ(s.bytes_in_use, 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Item v's size, 64-256 KiB. */
static size_t varied_size(int64_t v)
{
    uint64_t h = (uint64_t)v * 0x9e3779b97f4a7c15u;
    return 64 * 1024 + (size_t)((h >> 24) % (192 * 1024 + 1));
}

/* Puts n items of varied_size(v) bytes written in place with mpx_alloc. */
static int varied_setup(mpx_stage_t *st)
{
    int64_t n = *(const int64_t *)mpx_args(st);
    int rc = 0;
    for (int64_t v = 0; v < n && rc == 0; v++) {
        size_t size = varied_size(v);
        unsigned char *d = mpx_alloc(st, size);
        if (!d)
            return mpx_fail(st, "mpx_alloc(%zu) gave NULL", size);
        for (size_t k = 0; k < size; k++)
            d[k] = byte_of(v, k);
        rc = mpx_meta_set_i64(st, "v", v);
        if (rc == 0)
            rc = mpx_put_alloc(st, d, size);
    }
    return rc;
}
static const mpx_stage_def_t Varied = {.name = "varied", .args_size = sizeof(int64_t),
                                       .setup = varied_setup};

/* Copies each item into a block of its own and puts that. */
static int copy_alloc(mpx_stage_t *st, mpx_item_t *it)
{
    size_t size = mpx_item_size(it, 0);
    unsigned char *d = mpx_alloc(st, size);
    if (!d)
        return mpx_fail(st, "mpx_alloc(%zu) gave NULL", size);
    memcpy(d, mpx_item_data(it, 0), size);
    return mpx_put_alloc(st, d, size);
}
static const mpx_stage_def_t CopyAlloc = {.name = "copyalloc", .process = copy_alloc};

/* A pool smaller than what the inputs of stages that allocate may queue:
 * the source's items fill it, each worker waits in mpx_alloc for a block
 * only the queued items' confirmation would free, and that confirmation
 * waits for the worker.  mpx_alloc gives private memory after a while
 * instead of waiting for good: the run ends, every item whole. */
static void allocating_stages_do_not_wait_on_each_other(void)
{
    int64_t n = 600;
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Varied, &n), mpx_as(2, &CopyAlloc, NULL));
    CHECK_EQ(mpx_graph_set_pool(g, 4 * MIB), 0);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    unsigned char *seen = calloc((size_t)n, 1);
    REQUIRE(seen, "out of memory");
    mpx_item_t *it;
    int64_t bad = 0;
    while ((it = mpx_graph_next(g))) {
        int64_t v = -1;
        if (mpx_item_meta_i64(it, "v", &v) != 0 || v < 0 || v >= n ||
            !item_ok(it, v, varied_size(v)))
            bad++;
        else
            seen[v]++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(bad, 0);
    int64_t once = 0;
    for (int64_t v = 0; v < n; v++)
        once += seen[v] == 1;
    CHECK_EQ(once, n);
    free(seen);
    pool_used_and_clear(g, 64 * 1024);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Without a pool, mpx_alloc gives private memory that mpx_put_alloc puts
 * and mpx_free frees: a stage written for the pool runs unchanged. */
static void alloc_without_a_pool(void)
{
    int64_t n = 50;
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Varied, &n), mpx_stage(&CopyAlloc, NULL));
    CHECK_EQ(mpx_graph_set_pool(g, 0), 0);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    mpx_item_t *it;
    int64_t got = 0, bad = 0;
    while ((it = mpx_graph_next(g))) {
        int64_t v = -1;
        bad += !(mpx_item_meta_i64(it, "v", &v) == 0 && v == got && item_ok(it, v, varied_size(v)));
        got++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(got, n);
    CHECK_EQ(bad, 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* In setup: first a block larger than the pool (private memory, put
 * through the socket), then `n` small puts of 40 bytes each. */
static int heap_then_small_setup(mpx_stage_t *st)
{
    const int64_t n = *(const int64_t *)mpx_args(st);
    size_t big = 512 * 1024;
    unsigned char *b = mpx_alloc(st, big);
    if (!b)
        return mpx_fail(st, "mpx_alloc(%zu) gave NULL", big);
    memset(b, 7, big);
    int rc = mpx_put_alloc(st, b, big);
    char small[40];
    for (int64_t v = 0; rc == 0 && v < n; v++) {
        memset(small, (int)(v & 0x7f), sizeof small);
        rc = mpx_put(st, small, sizeof small);
    }
    return rc;
}
static const mpx_stage_def_t HeapThenSmall = {.name = "heapthensmall",
                                              .args_size = sizeof(int64_t),
                                              .setup = heap_then_small_setup};

/* A put of a private block (mpx_put_alloc when the block could not be in
 * the pool) goes through the socket; the puts after it still follow the
 * node's pool threshold, here 32 bytes: the 40-byte items travel in the
 * pool, and arrive intact. */
static void threshold_holds_after_a_private_block(void)
{
    int64_t n = 50;
    mpx_node_t *s = mpx_stage(&HeapThenSmall, &n);
    CHECK_EQ(mpx_node_set_pool_threshold(s, 32), 0);
    mpx_graph_t *g = MPX_EZ(s);
    CHECK_EQ(mpx_graph_set_pool(g, 256 * 1024), 0);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    mpx_item_t *it;
    int64_t got = 0, bad = 0;
    while ((it = mpx_graph_next(g))) {
        const unsigned char *d = mpx_item_data(it, 0);
        size_t size = mpx_item_size(it, 0);
        if (got == 0)
            bad += !(size == 512 * 1024 && d[0] == 7 && d[size - 1] == 7);
        else
            bad += !(size == 40 && d[0] == ((got - 1) & 0x7f) && d[39] == ((got - 1) & 0x7f));
        got++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(got, n + 1);
    CHECK_EQ(bad, 0);
    pool_used_and_clear(g, 40);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- writing in place --------------------------------------------------- */

/* Counts of mpx_item_writable's answers, in memory every process sees. */
typedef struct inplace_counts {
    int64_t in_place, copied;
} inplace_counts_t;

/* Adds 1 to every byte of part 0 (in place when allowed, else into a new
 * block) and passes the result on. */
static int add_one(mpx_stage_t *st, mpx_item_t *it)
{
    volatile inplace_counts_t *c = *(volatile inplace_counts_t *const *)mpx_args(st);
    size_t size = mpx_item_size(it, 0);
    const unsigned char *in = mpx_item_data(it, 0);
    unsigned char *w = mpx_item_writable(st, it, 0);
    if (w) {
        for (size_t k = 0; k < size; k++)
            w[k]++;
        __atomic_add_fetch(&c->in_place, 1, __ATOMIC_SEQ_CST);
        return mpx_put_item(st, it);
    }
    unsigned char *d = mpx_alloc(st, size);
    if (!d)
        return mpx_fail(st, "mpx_alloc(%zu) gave NULL", size);
    for (size_t k = 0; k < size; k++)
        d[k] = (unsigned char)(in[k] + 1);
    __atomic_add_fetch(&c->copied, 1, __ATOMIC_SEQ_CST);
    return mpx_put_alloc(st, d, size);
}
static const mpx_stage_def_t AddOne = {.name = "addone", .args_size = sizeof(void *),
                                       .process = add_one};

/* Keeps a copy of each item it passes on and checks, once the next item
 * came (and at the end), that its bytes did not change meanwhile. */
typedef struct recheck_state {
    mpx_item_t *last;
} recheck_state_t;
static int recheck_last(mpx_stage_t *st)
{
    recheck_state_t *s = mpx_state(st);
    int64_t v = -1;
    bool ok = !s->last || (mpx_item_meta_i64(s->last, "v", &v) == 0 &&
                           item_ok(s->last, v, mpx_item_size(s->last, 0)));
    mpx_item_free(&s->last);
    return ok ? 0 : mpx_fail(st, "a copy kept after its put changed (item %lld)", (long long)v);
}
static int recheck_process(mpx_stage_t *st, mpx_item_t *it)
{
    recheck_state_t *s = mpx_state(st);
    int rc = recheck_last(st);
    if (rc != 0)
        return rc;
    if (!(s->last = mpx_item_dup(it)))
        return mpx_fail(st, "mpx_item_dup gave NULL");
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Recheck = {.name = "recheck", .state_size = sizeof(recheck_state_t),
                                        .process = recheck_process, .teardown = recheck_last};

/* Every item v of `size` bytes, each byte byte_of(v, k) + `plus`, `times`
 * times; the run's outcome 0. */
static void drain_plus(mpx_graph_t *g, int64_t n, size_t size, int plus, int times)
{
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    int64_t got = 0, bad = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t v = -1;
        const unsigned char *d = mpx_item_data(it, 0);
        bool ok = mpx_item_meta_i64(it, "v", &v) == 0 && v >= 0 && v < n &&
                  mpx_item_size(it, 0) == size;
        for (size_t k = 0; ok && k < size; k++)
            ok = d[k] == (unsigned char)(byte_of(v, k) + plus);
        bad += !ok;
        got++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(got, n * times);
    CHECK_EQ(bad, 0);
}

/* A block written with mpx_alloc and read by one stage: changed in place
 * (the source's record is its only other holder), twice in a chain. */
static void item_written_in_place(void)
{
    volatile inplace_counts_t *c = shared_zeroed(sizeof(inplace_counts_t));
    mpx_graph_t *g = MPX_EZ(src(100, 100 * 1024, true), mpx_stage(&AddOne, &c),
                            mpx_stage(&AddOne, &c));
    drain_plus(g, 100, 100 * 1024, 2, 1);
    CHECK(c->in_place > 0, "never written in place (%lld copied)", (long long)c->copied);
    CHECK_EQ(c->in_place + c->copied, 200);
    pool_used_and_clear(g, 100 * 1024);
    expect_clean(g);
    mpx_node_destroy(&g);
    munmap((void *)c, sizeof *c);
}

/* Never in place while others read the block, or where it could be sent
 * again: a broadcast's branches, a stage upstream that keeps a copy, a
 * stage replaced when it dies. */
static void item_not_written_in_place_when_shared(void)
{
    volatile inplace_counts_t *c = shared_zeroed(sizeof(inplace_counts_t));
    mpx_graph_t *g = MPX_EZ(src(30, 100 * 1024, true), mpx_by(2, &AddOne, &c));
    /* In place only once the other branch is done with the block (its
     * record confirmed, its hold dropped): a branch that changed it while
     * the other still read it would show +2 there. */
    drain_plus(g, 30, 100 * 1024, 1, 2);
    CHECK_EQ(c->in_place + c->copied, 60);
    expect_clean(g);
    mpx_node_destroy(&g);

    c->in_place = c->copied = 0;
    g = MPX_EZ(src(30, 100 * 1024, true), mpx_stage(&Recheck, NULL), mpx_stage(&AddOne, &c));
    /* In place only once Recheck has let its copy go: a copy changed
     * while kept fails the run. */
    drain_plus(g, 30, 100 * 1024, 1, 1);
    expect_clean(g);
    mpx_node_destroy(&g);

    c->in_place = c->copied = 0;
    mpx_node_t *w = mpx_stage(&AddOne, &c);
    CHECK_EQ(mpx_node_set_retries(w, 1), 0);
    g = MPX_EZ(src(30, 100 * 1024, true), w);
    drain_plus(g, 30, 100 * 1024, 1, 1);
    CHECK_EQ(c->in_place, 0);
    CHECK_EQ(c->copied, 30);
    expect_clean(g);
    mpx_node_destroy(&g);
    munmap((void *)c, sizeof *c);
}

/* Copies kept across calls hold their blocks until freed. */
static void kept_copies_hold_blocks(void)
{
    mpx_graph_t *g = MPX_EZ(src(101, 200 * 1024, false), mpx_stage(&Keep, NULL),
                            mpx_stage(&CheckPass, NULL));
    CHECK_EQ(mpx_graph_set_pool(g, 64 * MIB), 0);
    run_checked(g, 101, 200 * 1024, 1);
}

/* A pool of room for a few blocks only: the source waits, the run goes
 * on, everything arrives. */
static void full_pool_waits(void)
{
    mpx_graph_t *g = MPX_EZ(src(200, 100 * 1024, true), mpx_stage(&CheckPass, NULL),
                            mpx_as(2, &CheckPass, NULL));
    CHECK_EQ(mpx_graph_set_pool(g, 8 * 64 * 1024), 0);
    run_checked(g, 200, 100 * 1024, 1);
}

/* Large puts into a full pool go through the socket after a while. */
static void full_pool_large_puts_still_go(void)
{
    mpx_graph_t *g = MPX_EZ(src(100, 200 * 1024, false), mpx_stage(&Keep, NULL),
                            mpx_stage(&CheckPass, NULL));
    CHECK_EQ(mpx_graph_set_pool(g, 4 * 64 * 1024), 0);
    run_checked(g, 100, 200 * 1024, 1);
}

/* A worker of a recoverable group killed with items in hand: its holds
 * are reclaimed, what it had is sent again, nothing is left in use. */
static void killed_worker_holds_reclaimed(void)
{
    mpx_event_t *done = mpx_event_new();
    REQUIRE(done, "event");
    mpx_node_t *w = mpx_as(2, &Die, &(die_args_t){77, done});
    CHECK_EQ(mpx_node_set_retries(w, 1), 0);
    mpx_graph_t *g = MPX_EZ(src(300, 128 * 1024, true), w, mpx_stage(&CheckPass, NULL));
    CHECK_EQ(mpx_graph_set_pool(g, 64 * MIB), 0);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    unsigned char seen[300] = {0};
    mpx_item_t *it;
    int64_t bad = 0;
    while ((it = mpx_graph_next(g))) {
        int64_t v = -1;
        if (mpx_item_meta_i64(it, "v", &v) != 0 || v < 0 || v >= 300 ||
            !item_ok(it, v, 128 * 1024))
            bad++;
        else
            seen[v]++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(bad, 0);
    CHECK(mpx_event_is_set(done), "the worker did not die");
    for (int v = 0; v < 300; v++)
        CHECK(seen[v] >= 1, "item %d lost", v);
    mpx_pool_stats_t s;
    CHECK_EQ(mpx_graph_pool_stats(g, &s), 0);
    CHECK_EQ(s.blocks_in_use, 0);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_event_destroy(&done);
}

/* ---- chaos: workers killed while pool items flow ------------------------ */

/* Size of chaos item v: 64 KiB to 4 MiB, spread by a hash of v. */
static size_t chaos_size(int64_t v)
{
    uint64_t h = (uint64_t)v * 0x9e3779b97f4a7c15u;
    return 64 * 1024 + (size_t)((h >> 20) % (4 * MIB - 64 * 1024 + 1));
}

/* A checksum that reads every byte. */
static uint64_t checksum(const unsigned char *d, size_t n)
{
    uint64_t s = 1469598103934665603u;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        s = (s ^ w) * 1099511628211u;
    }
    for (; i < n; i++)
        s = (s ^ d[i]) * 1099511628211u;
    return s;
}

typedef struct chaos_args {
    int64_t n;
} chaos_args_t;

/* Puts n items written in place, each with meta "v" and "sum". */
static int chaos_setup(mpx_stage_t *st)
{
    const chaos_args_t *a = mpx_args(st);
    for (int64_t v = 0; v < a->n; v++) {
        size_t size = chaos_size(v);
        unsigned char *d = mpx_alloc(st, size);
        if (!d)
            return mpx_fail(st, "mpx_alloc(%zu) gave NULL", size);
        uint64_t x = (uint64_t)v * 0x2545f4914f6cdd1du + 1;
        for (size_t i = 0; i + 8 <= size; i += 8) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            memcpy(d + i, &x, 8);
        }
        memset(d + size - size % 8, (int)v, size % 8);
        int64_t sum = (int64_t)checksum(d, size);
        int rc = mpx_meta_set_i64(st, "v", v);
        if (rc == 0)
            rc = mpx_meta_set_i64(st, "sum", sum);
        if (rc == 0)
            rc = mpx_put_alloc(st, d, size);
        if (rc != 0)
            return rc;
    }
    return 0;
}
static const mpx_stage_def_t ChaosSrc = {.name = "chaossrc", .args_size = sizeof(chaos_args_t),
                                         .setup = chaos_setup};

/* Checks the bytes against the sum, then passes the item on; says in
 * shared memory which process of its instance took an item last, so that
 * the test kills only workers past their setup (a replacement killed
 * three times before its setup ends is not replaced again, by design). */
typedef struct verify_args {
    mpx_shared_t *pids; /* one pid_t per instance */
} verify_args_t;
static int verify(mpx_stage_t *st, mpx_item_t *it)
{
    const verify_args_t *a = mpx_args(st);
    ((volatile pid_t *)mpx_shared_data(a->pids))[mpx_stage_instance(st)] = getpid();
    int64_t v, sum;
    if (mpx_item_meta_i64(it, "v", &v) != 0 || mpx_item_meta_i64(it, "sum", &sum) != 0)
        return mpx_fail(st, "no meta");
    if (mpx_item_size(it, 0) != chaos_size(v) ||
        checksum(mpx_item_data(it, 0), mpx_item_size(it, 0)) != (uint64_t)sum)
        return mpx_fail(st, "item %lld damaged", (long long)v);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Verify = {.name = "verify", .args_size = sizeof(verify_args_t),
                                       .process = verify};

/* Items of 64 KiB to 4 MiB written into the pool by a source, through a
 * recoverable group of 3 workers of which one is killed (SIGKILL) after
 * every 40 arrivals: every item arrives, intact, and nothing is in use at
 * the end.  MPX_POOL_CHAOS_ITEMS sets the count (3000 here; the README
 * gives a soak's). */
static void pool_chaos(void)
{
    const char *env = getenv("MPX_POOL_CHAOS_ITEMS");
    int64_t n = env && atoll(env) > 0 ? atoll(env) : 3000;
    mpx_shared_t *pids = mpx_shared_new(3 * sizeof(pid_t));
    REQUIRE(pids, "mpx_shared_new");
    volatile pid_t *took = mpx_shared_data(pids);
    mpx_node_t *w = mpx_as(3, &Verify, &(verify_args_t){pids});
    CHECK_EQ(mpx_node_set_retries(w, 3), 0);
    mpx_graph_t *g = MPX_EZ(mpx_stage(&ChaosSrc, &(chaos_args_t){n}), w);
    CHECK_EQ(mpx_graph_set_pool(g, 256 * MIB), 0);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    unsigned char *seen = calloc((size_t)n, 1);
    REQUIRE(seen, "out of memory");
    int64_t arrivals = 0, bad = 0, kills = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        int64_t v = -1, sum = 0;
        if (mpx_item_meta_i64(it, "v", &v) != 0 || mpx_item_meta_i64(it, "sum", &sum) != 0 ||
            v < 0 || v >= n || mpx_item_size(it, 0) != chaos_size(v) ||
            checksum(mpx_item_data(it, 0), mpx_item_size(it, 0)) != (uint64_t)sum)
            bad++;
        else
            seen[v] = 1;
        if (++arrivals % 40 == 0) {
            /* A worker, in turn, once it has taken an item since it
             * started. */
            for (int k = 0; k < 3; k++) {
                int i = (int)((kills + k) % 3);
                pid_t pid = took[i];
                if (pid > 0) {
                    took[i] = 0;
                    if (kill(pid, SIGKILL) == 0)
                        kills++;
                    break;
                }
            }
        }
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK(!mpx_graph_error(g)[0], "%s", mpx_graph_error(g));
    CHECK_EQ(bad, 0);
    int64_t missing = 0;
    for (int64_t v = 0; v < n; v++)
        missing += !seen[v];
    CHECK_EQ(missing, 0);
    CHECK(kills >= n / 80, "only %lld kills", (long long)kills);
    mpx_pool_stats_t s;
    CHECK_EQ(mpx_graph_pool_stats(g, &s), 0);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(s.bytes_in_use, 0);
    printf("pool_chaos: %lld items, %lld arrivals, %lld kills, peak %.1f MiB of %.0f\n",
           (long long)n, (long long)arrivals, (long long)kills, (double)s.peak_bytes / MIB,
           (double)s.capacity / MIB);
    free(seen);
    expect_clean(g);
    mpx_node_destroy(&g);
    mpx_shared_destroy(&pids);
}

/* ---- pool items through the built-ins that keep, join and divert ----- */

/* Counters every process of a run sees (mapped before start). */
typedef struct side_counts {
    int64_t ok, bad;
} side_counts_t;

/* A side graph's stage: counts whole items, and any that differ. */
static int side_check(mpx_stage_t *st, mpx_item_t *it)
{
    volatile side_counts_t *c = *(volatile side_counts_t *const *)mpx_args(st);
    int64_t v;
    bool ok = mpx_item_meta_i64(it, "v", &v) == 0 && item_ok(it, v, mpx_item_size(it, 0));
    __atomic_add_fetch(ok ? &c->ok : &c->bad, 1, __ATOMIC_SEQ_CST);
    return 0;
}
static const mpx_stage_def_t SideCheck = {.name = "sidecheck", .args_size = sizeof(void *),
                                          .process = side_check};

/* Puts each item's bytes into side graph "side" as well as passing it on. */
static int tee_side(mpx_stage_t *st, mpx_item_t *it)
{
    int rc = mpx_put_to(st, "side", mpx_item_data(it, 0), mpx_item_size(it, 0));
    return rc != 0 ? rc : mpx_put_item(st, it);
}
static const mpx_stage_def_t TeeSide = {.name = "teeside", .process = tee_side};

/* Fails every fifth item (v % 5 == 0), passes the others on. */
static int fail_fifth(mpx_stage_t *st, mpx_item_t *it)
{
    int64_t v = -1;
    if (mpx_item_meta_i64(it, "v", &v) == 0 && v % 5 == 0)
        return mpx_fail(st, "item %lld refused", (long long)v);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t FailFifth = {.name = "failfifth", .process = fail_fifth};

/* Zip joins two branches' pool items into one item of two parts, each
 * the input's bytes. */
static void pool_items_through_zip(void)
{
    size_t size = 100 * 1024;
    mpx_graph_t *g = MPX_EZ(src(60, size, true),
                            MPX_ZIP(mpx_stage(&CheckPass, NULL), mpx_as(2, &CheckPass, NULL)));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    mpx_item_t *it;
    int64_t next = 0, bad = 0;
    while ((it = mpx_graph_next(g))) {
        int64_t v = -1;
        bool ok = mpx_item_meta_i64(it, "v", &v) == 0 && v == next && mpx_item_parts(it) == 2;
        for (size_t p = 0; ok && p < 2; p++) {
            const unsigned char *d = mpx_item_data(it, p);
            ok = mpx_item_size(it, p) == size;
            for (size_t k = 0; ok && k < size; k++)
                ok = d[k] == byte_of(v, k);
        }
        bad += !ok;
        next++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(next, 60);
    CHECK_EQ(bad, 0);
    pool_used_and_clear(g, size);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Seq restores the input order of pool items after a parallel group. */
static void pool_items_through_seq(void)
{
    size_t size = 100 * 1024;
    mpx_graph_t *g = MPX_EZ(src(150, size, true), mpx_seq(mpx_as(3, &CheckPass, NULL)));
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    mpx_item_t *it;
    int64_t next = 0, bad = 0;
    while ((it = mpx_graph_next(g))) {
        int64_t v = -1;
        bad += !(mpx_item_meta_i64(it, "v", &v) == 0 && v == next && item_ok(it, v, size));
        next++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(next, 150);
    CHECK_EQ(bad, 0);
    pool_used_and_clear(g, size);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A side graph (xcut) receives large puts through the pool. */
static void pool_items_into_side_graph(void)
{
    size_t size = 100 * 1024;
    volatile side_counts_t *c = shared_zeroed(sizeof(side_counts_t));
    mpx_graph_t *g = MPX_EZ(src(80, size, true), mpx_as(2, &TeeSide, NULL));
    CHECK_EQ(mpx_graph_xcut(g, "side", MPX_EZ(mpx_stage(&SideCheck, &c))), 0);
    drain_check(g, 80, size, 1);
    CHECK_EQ(c->ok, 80);
    CHECK_EQ(c->bad, 0);
    expect_clean(g);
    mpx_node_destroy(&g);
    munmap((void *)c, sizeof *c);
}

/* Failed pool items go whole to the dead-letter graph; the rest go on. */
static void pool_items_to_dead_letters(void)
{
    size_t size = 100 * 1024;
    volatile side_counts_t *c = shared_zeroed(sizeof(side_counts_t));
    mpx_node_t *f = mpx_as(2, &FailFifth, NULL);
    CHECK_EQ(mpx_node_on_error(f, MPX_ON_ERROR_DEAD_LETTER, "dl"), 0);
    mpx_graph_t *g = MPX_EZ(src(100, size, true), f);
    CHECK_EQ(mpx_graph_xcut(g, "dl", MPX_EZ(mpx_stage(&SideCheck, &c))), 0);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    mpx_item_t *it;
    int64_t n = 0, bad = 0;
    while ((it = mpx_graph_next(g))) {
        int64_t v = -1;
        bad += !(mpx_item_meta_i64(it, "v", &v) == 0 && v % 5 != 0 && item_ok(it, v, size));
        n++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(n, 80);
    CHECK_EQ(bad, 0);
    CHECK_EQ(c->ok, 20);
    CHECK_EQ(c->bad, 0);
    pool_used_and_clear(g, size);
    expect_clean(g);
    mpx_node_destroy(&g);
    munmap((void *)c, sizeof *c);
}

/* Collected items stay in the pool, held by the list, which keeps the
 * pool mapped: they outlive the graph. */
static void collected_items_outlive_the_graph(void)
{
    mpx_graph_t *g = MPX_EZ(src(20, 100 * 1024, true), mpx_stage(&CheckPass, NULL));
    CHECK_EQ(mpx_graph_set_pool(g, 16 * MIB), 0);
    mpx_list_t *list = NULL;
    CHECK_EQ(mpx_graph_collect(g, &list), 0);
    mpx_pool_stats_t s;
    CHECK_EQ(mpx_graph_pool_stats(g, &s), 0);
    CHECK_EQ(s.blocks_in_use, 20); /* read in place: the list holds them */
    expect_clean(g);
    mpx_node_destroy(&g);
    CHECK_EQ(mpx_list_size(list), 20);
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        int64_t v = -1;
        const mpx_item_t *it = mpx_list_at(list, i);
        CHECK(mpx_item_meta_i64(it, "v", &v) == 0 && item_ok(it, v, 100 * 1024), "item %zu", i);
    }
    mpx_list_destroy(&list);
}

/* Destroying the list lets its blocks go; beyond half the pool, items
 * are copied out instead of held, so that a long output collected whole
 * does not fill the pool the stages need. */
static void collected_items_let_go_and_copied_beyond_half(void)
{
    mpx_graph_t *g = MPX_EZ(src(40, 100 * 1024, true), mpx_stage(&CheckPass, NULL));
    CHECK_EQ(mpx_graph_set_pool(g, 2 * MIB), 0); /* 32 granules, 2 an item */
    /* Windows of 256 KiB: what is in flight stays well under half the
     * pool, so the first items collected are held in place. */
    CHECK_EQ(mpx_node_set_capacity(g, 0, 256 * 1024), 0);
    mpx_list_t *list = NULL;
    CHECK_EQ(mpx_graph_collect(g, &list), 0);
    CHECK_EQ(mpx_list_size(list), 40);
    mpx_pool_stats_t s;
    CHECK_EQ(mpx_graph_pool_stats(g, &s), 0);
    CHECK(s.blocks_in_use > 0 && s.bytes_in_use * 2 <= s.capacity + 2 * 64 * 1024,
          "%llu blocks, %llu bytes of %llu held by the list", (unsigned long long)s.blocks_in_use,
          (unsigned long long)s.bytes_in_use, (unsigned long long)s.capacity);
    for (size_t i = 0; i < mpx_list_size(list); i++) {
        int64_t v = -1;
        const mpx_item_t *it = mpx_list_at(list, i);
        CHECK(mpx_item_meta_i64(it, "v", &v) == 0 && v == (int64_t)i && item_ok(it, v, 100 * 1024),
              "item %zu", i);
    }
    mpx_list_destroy(&list);
    CHECK_EQ(mpx_graph_pool_stats(g, &s), 0);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(s.bytes_in_use, 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Settings and calls without a pool. */
static void pool_settings_checked(void)
{
    mpx_graph_t *g = MPX_EZ(src(1, 10, false), mpx_stage(&CheckPass, NULL));
    mpx_pool_stats_t s;
    CHECK_EQ(mpx_graph_pool_stats(g, &s), MPX_ESTATE);
    CHECK_EQ(mpx_node_set_pool_threshold(g, 0), MPX_EINVAL);
    CHECK_EQ(mpx_graph_set_pool(NULL, 1), MPX_EINVAL);
    REQUIRE(mpx_graph_start(g) == 0, "%s", mpx_graph_error(g));
    while (mpx_graph_next(g))
        ;
    CHECK_EQ(mpx_graph_join(g), 0);
    /* The default pool, unused by items this small. */
    CHECK_EQ(mpx_graph_pool_stats(g, &s), 0);
    CHECK_EQ(s.peak_bytes, 0);
    CHECK_EQ(s.committed, 0);
    CHECK_EQ(mpx_graph_set_pool(g, MIB), MPX_ESTATE);
    expect_clean(g);
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(chain_of_large_puts),
        TEST_CASE(alloc_through_parallel),
        TEST_CASE(threshold_holds_after_a_private_block),
        TEST_CASE(broadcast_shares_blocks),
        TEST_CASE(broadcast_wider_than_holders_copies),
        TEST_CASE(default_pool_carries_large_items),
        TEST_CASE(pool_memory_bounded_by_capacity),
        TEST_CASE(pool_items_through_zip),
        TEST_CASE(pool_items_through_seq),
        TEST_CASE(pool_items_into_side_graph),
        TEST_CASE(pool_items_to_dead_letters),
        TEST_CASE(allocating_stages_do_not_wait_on_each_other),
        TEST_CASE(alloc_without_a_pool),
        TEST_CASE(item_written_in_place),
        TEST_CASE(item_not_written_in_place_when_shared),
        TEST_CASE(kept_copies_hold_blocks),
        TEST_CASE(full_pool_waits),
        TEST_CASE(full_pool_large_puts_still_go),
        TEST_CASE(killed_worker_holds_reclaimed),
        TEST_CASE(collected_items_outlive_the_graph),
        TEST_CASE(collected_items_let_go_and_copied_beyond_half),
        TEST_CASE(pool_chaos),
        TEST_CASE(pool_settings_checked),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
