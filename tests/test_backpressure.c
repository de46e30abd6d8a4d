/* tests/test_backpressure.c — bounded edges: a fast source never runs
 * more than an edge's capacity ahead of a slow consumer, and memory stays
 * flat however many items pass. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"
#include "stages.h"

/* The bound every process's peak resident set must stay under. */
#define RSS_BOUND_KIB (64 * 1024)

static void report_rss(mpx_graph_t *g)
{
    for (size_t i = 0; i < mpx_graph_instance_count(g); i++) {
        mpx_instance_info_t info;
        mpx_graph_instance_info(g, i, &info);
        printf("  %-8s peak RSS %6ld KiB, %llu items in, %llu out\n", info.name, info.max_rss_kib,
               info.items_in, info.items_out);
        CHECK(info.max_rss_kib > 0 && info.max_rss_kib <= RSS_BOUND_KIB,
              "%s[%d] peaked at %ld KiB", info.name, info.instance, info.max_rss_kib);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("  parent   peak RSS %6ld KiB\n", ru.ru_maxrss);
    CHECK(ru.ru_maxrss <= RSS_BOUND_KIB, "parent peaked at %ld KiB", ru.ru_maxrss);
}

/* 10 million small items from a fast source through a slower stage: no
 * process's peak RSS exceeds 64 MiB. */
static void ten_million_items_flat_memory(void)
{
    const int64_t n = 10 * 1000 * 1000;
    mpx_graph_t *g = MPX_EZ(range_node(0, n), mpx_stage(&Spin, &(long){40}),
                            mpx_stage(&Inc, NULL));
    int64_t count;
    int64_t sum = drain_sum(g, &count);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(count, n);
    CHECK_EQ(sum, n * (n - 1) / 2 + n);
    report_rss(g);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* ---- the capacity bounds what a producer sends ahead -------------------- */

static volatile int64_t *shared; /* [0]: puts returned; [1]: seen by the gate */

static int eager_setup(mpx_stage_t *st)
{
    for (int64_t v = 0;; v++) {
        int rc = mpx_put_i64(st, v);
        if (rc != 0)
            return rc;
        __atomic_add_fetch(&shared[0], 1, __ATOMIC_SEQ_CST);
    }
}
static const mpx_stage_def_t Eager = {.name = "eager", .setup = eager_setup};

/* At its first item, waits until the producer stops advancing (it must:
 * it is out of credit), records how far it got, then stops the graph's
 * flow by stopping itself. */
static int gate(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    int64_t last = -1;
    for (int still = 0; still < 5;) {
        usleep(20000);
        int64_t now = __atomic_load_n(&shared[0], __ATOMIC_SEQ_CST);
        still = now == last ? still + 1 : 0;
        last = now;
    }
    shared[1] = last;
    return mpx_stop(st);
}
static const mpx_stage_def_t Gate = {.name = "gate", .process = gate};

/* A producer is at most the window (the consumer's capacity shared among
 * its producers) plus one batch (at most a quarter of the window) ahead,
 * counting the item being processed. */
static void capacity_case(mpx_graph_t *g, int64_t capacity)
{
    int64_t bound = capacity + capacity / 4 + 1;
    CHECK_EQ(mpx_graph_join(g), 0);
    printf("capacity %lld: the producer got %lld puts ahead (bound %lld)\n", (long long)capacity,
           (long long)shared[1], (long long)bound);
    CHECK(shared[1] >= 1 && shared[1] <= bound, "%lld puts ahead with capacity %lld",
          (long long)shared[1], (long long)capacity);
    expect_clean(g);
    mpx_node_destroy(&g);
}

static void map_shared(void)
{
    shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(shared != MAP_FAILED, "mmap");
    shared[0] = shared[1] = 0;
}

static void capacity_of_graph(void)
{
    map_shared();
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Eager, NULL), mpx_stage(&Gate, NULL));
    mpx_node_set_capacity(g, 40, 0);
    capacity_case(g, 40);
}

static void capacity_of_node(void)
{
    map_shared();
    mpx_node_t *gate = mpx_stage(&Gate, NULL);
    mpx_node_set_capacity(gate, 8, 0);
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Eager, NULL), gate);
    mpx_node_set_capacity(g, 100000, 0); /* the node's own setting wins */
    capacity_case(g, 8);
}

static void capacity_default(void)
{
    map_shared();
    capacity_case(MPX_EZ(mpx_stage(&Eager, NULL), mpx_stage(&Gate, NULL)), MPX_DEFAULT_CAPACITY);
}

/* Capacity in bytes: 64 KiB items against a 1 MiB byte capacity. */
static int big_setup(mpx_stage_t *st)
{
    static char block[64 * 1024];
    for (;;) {
        int rc = mpx_put(st, block, sizeof block);
        if (rc != 0)
            return rc;
        __atomic_add_fetch(&shared[0], 1, __ATOMIC_SEQ_CST);
    }
}
static const mpx_stage_def_t Big = {.name = "big", .setup = big_setup};

static void capacity_in_bytes(void)
{
    map_shared();
    mpx_node_t *gate = mpx_stage(&Gate, NULL);
    mpx_node_set_capacity(gate, 0, 1024 * 1024);
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Big, NULL), gate);
    CHECK_EQ(mpx_graph_join(g), 0);
    printf("1 MiB capacity: the producer got %lld items of 64 KiB ahead\n", (long long)shared[1]);
    /* 16 items fill the window; a batch holds at most a quarter of it. */
    CHECK(shared[1] >= 1 && shared[1] <= 16 + 4 + 1, "%lld", (long long)shared[1]);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* Two producers feed one consumer: one puts 40 items of 1 MiB, the other
 * 300,000 small ones.  The large items use up their byte window long
 * before half their item window, so the consumer must return credit for
 * bytes too, or the large ones wait until the small ones are done. */
static int big_items_setup(mpx_stage_t *st)
{
    static char block[1 << 20];
    for (int i = 0; i < 40; i++) {
        int rc = mpx_put(st, block, sizeof block);
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t BigItems = {.name = "big", .setup = big_items_setup};

static void large_items_not_starved(void)
{
    mpx_graph_t *g = MPX_EZ(MPX_P(mpx_stage(&BigItems, NULL), range_node(0, 300000)),
                            mpx_stage(&Spin, &(long){20}));
    int64_t index = 0, last_big = -1, last_small = -1, bigs = 0;
    mpx_item_t *it;
    while ((it = mpx_graph_next(g))) {
        if (mpx_item_size(it, 0) > 8) {
            last_big = index;
            bigs++;
        } else {
            last_small = index;
        }
        index++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(bigs, 40);
    printf("the last large item came at %lld of %lld\n", (long long)last_big, (long long)index);
    /* Served alongside: the large items are all through long before the
     * small ones end. */
    CHECK(last_big < last_small - 100000, "large items starved: last at %lld, small end at %lld",
          (long long)last_big, (long long)last_small);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A slow stage in a chain: once its pace is known its producer keeps
 * only a few of its items in flight, not its whole capacity (1024 items
 * here), so items do not wait long in front of it.  The producer puts
 * 600 items as fast as it can; by the 400th taken, it has not got more
 * than a batch or two beyond that (the first 256, sent before the pace
 * was known, are long processed). */
#define SLOW_ITEMS 600
#define SLOW_AT 400
static int counted_setup(mpx_stage_t *st)
{
    for (int64_t v = 0; v < SLOW_ITEMS; v++) {
        int rc = mpx_put_i64(st, v);
        if (rc != 0)
            return rc;
        __atomic_add_fetch(&shared[0], 1, __ATOMIC_SEQ_CST);
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Counted = {.name = "counted", .setup = counted_setup};
static int slow(mpx_stage_t *st, mpx_item_t *it)
{
    usleep(1000);
    if (mpx_item_i64(it) == SLOW_AT)
        shared[1] = __atomic_load_n(&shared[0], __ATOMIC_SEQ_CST);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Slow = {.name = "slow", .process = slow};
static void slow_stage_short_queue(void)
{
    map_shared();
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Counted, NULL), mpx_stage(&Slow, NULL));
    int64_t count;
    drain_sum(g, &count);
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(count, SLOW_ITEMS);
    printf("at item %d the producer had put %lld\n", SLOW_AT, (long long)shared[1]);
    CHECK(shared[1] > SLOW_AT && shared[1] <= SLOW_AT + 64, "%lld puts at item %d",
          (long long)shared[1], SLOW_AT);
    expect_clean(g);
    mpx_node_destroy(&g);
}

/* A small item, then one larger than the whole byte window: the producer
 * must wait with almost nothing outstanding, less than would make the
 * consumer return credit by itself (half a window, or a sixteenth of it
 * at a pause).  It asks for credit, and every item arrives, in order. */
#define ASK_ROUNDS 50
#define ASK_BIG (96 * 1024)
static int small_then_big_setup(mpx_stage_t *st)
{
    static char block[ASK_BIG];
    for (int i = 0; i < ASK_ROUNDS; i++) {
        int rc = mpx_put_i64(st, i);
        if (rc == 0)
            rc = mpx_put(st, block, sizeof block);
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t SmallThenBig = {.name = "smallbig", .setup = small_then_big_setup};
static void credit_asked_for(void)
{
    mpx_node_t *pass = mpx_stage(&Spin, &(long){1000});
    mpx_node_set_capacity(pass, 0, 64 * 1024);
    mpx_graph_t *g = MPX_EZ(mpx_stage(&SmallThenBig, NULL), pass);
    mpx_item_t *it;
    int64_t index = 0, wrong = 0;
    while ((it = mpx_graph_next(g))) {
        size_t want = index % 2 ? ASK_BIG : sizeof(int64_t);
        wrong += mpx_item_size(it, 0) != want ||
                 (index % 2 == 0 && mpx_item_i64(it) != index / 2);
        index++;
    }
    CHECK_EQ(mpx_graph_join(g), 0);
    CHECK_EQ(index, 2 * ASK_ROUNDS);
    CHECK_EQ(wrong, 0);
    expect_clean(g);
    mpx_node_destroy(&g);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        TEST_CASE(ten_million_items_flat_memory),
        TEST_CASE(capacity_of_graph),
        TEST_CASE(capacity_of_node),
        TEST_CASE(capacity_default),
        TEST_CASE(capacity_in_bytes),
        TEST_CASE(large_items_not_starved),
        TEST_CASE(credit_asked_for),
        TEST_CASE(slow_stage_short_queue),
    };
    return harness_main(argc, argv, cases, sizeof cases / sizeof *cases);
}
