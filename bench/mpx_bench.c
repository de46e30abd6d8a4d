/* bench/mpx_bench.c — mpx against hand-written libzmq, measured in one run.
 *
 *     mpx-bench [--quick] [--decisions] [NAME...]
 *
 * Prints one JSON object per line (see README, "Benchmarks"):
 *     {"bench": NAME, "value": V, "unit": U, "baseline": B, "ratio": V/B, ...}
 * Every figure is the median of several runs; the baseline (raw libzmq
 * between forked processes over ipc://, bench/raw.c; for chunks, OpenMP
 * threads, bench/omp.c) is measured here too.
 * --quick runs everything small, to check that the benchmarks work.
 * --decisions copies the elastic controller's JSON lines (every change and
 * note, with its reason and figures) to stderr, each after the seconds of
 * the benchmark's clock at which the program read it.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mpx.h>

#include "bench.h"
#include "omp.h"
#include "raw.h"

static bool quick;
static bool decisions; /* --decisions: the controller's lines of the elastic runs to stderr */
static int reps = 3;

static void fail(mpx_graph_t *g, const char *what)
{
    fprintf(stderr, "mpx-bench: %s: %s\n", what, mpx_graph_error(g));
    exit(1);
}

/* ---- stages ------------------------------------------------------------- */

static int count_setup(mpx_stage_t *st)
{
    int64_t n = *(const int64_t *)mpx_args(st);
    for (int64_t v = 0; v < n; v++) {
        int rc = mpx_put_i64(st, v);
        if (rc != 0)
            return rc;
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Count = {.name = "src", .args_size = sizeof(int64_t),
                                      .setup = count_setup};

/* The map stage of small_items: +1, as MPX_FN(plus_one) would do, and at
 * the end it reports its private memory through a page it shares with the
 * parent (args: where). */
static int plus_process(mpx_stage_t *st, mpx_item_t *it)
{
    (void)st;
    return mpx_put_i64(st, mpx_item_i64(it) + 1);
}
static int plus_teardown(mpx_stage_t *st)
{
    long *where = *(long *const *)mpx_args(st);
    *where = bench_private_kib();
    return 0;
}
static const mpx_stage_def_t Plus = {.name = "plus_one", .args_size = sizeof(long *),
                                     .process = plus_process, .teardown = plus_teardown};

static int sink_process(mpx_stage_t *st, mpx_item_t *it)
{
    (void)st;
    (void)it;
    return 0;
}
static const mpx_stage_def_t Sink = {.name = "sink", .process = sink_process};

static int pass(mpx_stage_t *st, mpx_item_t *it) { return mpx_put_item(st, it); }
static const mpx_stage_def_t Pass = {.name = "pass", .process = pass};

typedef struct block_args {
    int64_t n;
    size_t size;
} block_args_t;

static int blocks_setup(mpx_stage_t *st)
{
    const block_args_t *a = mpx_args(st);
    char *block = calloc(1, a->size);
    if (!block)
        return mpx_fail(st, "out of memory");
    int rc = 0;
    for (int64_t i = 0; i < a->n && rc == 0; i++)
        rc = mpx_put(st, block, a->size);
    free(block);
    return rc ? rc : mpx_stop(st);
}
static const mpx_stage_def_t Blocks = {.name = "blocks", .args_size = sizeof(block_args_t),
                                       .setup = blocks_setup};

static int work(mpx_stage_t *st, mpx_item_t *it)
{
    bench_burn(*(const double *)mpx_args(st));
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t Work = {.name = "work", .args_size = sizeof(double),
                                     .process = work};

static double mpx_switches; /* context switches of the last run() */

/* CPU seconds used so far by this process and its reaped children. */
static double cpu_all(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6 + bench_children_cpu();
}

/* Runs g to the end; seconds from start to the end of join.  The CPU time
 * of every process of the run (the parent's too) goes to *cpu. */
static double run_cpu(mpx_graph_t *g, double *cpu)
{
    double c0 = cpu_all(), s0 = bench_children_switches();
    double t0 = bench_now();
    if (mpx_graph_join(g) != 0)
        fail(g, "run");
    double t = bench_now() - t0;
    if (cpu)
        *cpu = cpu_all() - c0;
    mpx_switches = bench_children_switches() - s0;
    return t;
}

static double run(mpx_graph_t *g) { return run_cpu(g, NULL); }

static mpx_node_t *source(int64_t n) { return mpx_stage(&Count, &n); }

/* ---- the benchmarks ----------------------------------------------------- */

/* CPU time per item of the last measurement, summed over its processes:
 * steadier than wall time on a shared machine. */
static double raw_cpu_ns, mpx_cpu_ns, raw_switches;

static double raw_msgs_per_s(uint64_t n, size_t size, long *rss, long *priv)
{
    double t[8], c[8];
    long peak = 0, peak_priv = 0;
    for (int r = 0; r < reps; r++) {
        double c0 = cpu_all(), s0 = bench_children_switches();
        raw_result_t res = raw_stream(n, size);
        raw_switches = (bench_children_switches() - s0) / (double)n * 1000;
        c[r] = cpu_all() - c0;
        t[r] = res.seconds;
        peak = res.rss_kib > peak ? res.rss_kib : peak;
        peak_priv = res.private_kib > peak_priv ? res.private_kib : peak_priv;
    }
    if (rss)
        *rss = peak;
    if (priv)
        *priv = peak_priv;
    raw_cpu_ns = bench_median(c, (size_t)reps) / (double)n * 1e9;
    return (double)n / bench_median(t, (size_t)reps);
}

static void small_items(void)
{
    int64_t n = quick ? 100000 : 3000000;
    long raw_rss, raw_priv;
    double base = raw_msgs_per_s((uint64_t)n, 8, &raw_rss, &raw_priv);
    double t[8], c[8];
    long rss = 0, priv = 0;
    long *shared = mmap(NULL, sizeof(long), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                        -1, 0);
    if (shared == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    /* The same graph with the map stage recoverable (mpx_node_set_retries):
     * what acknowledged delivery costs when nothing fails.  Runs alternate
     * with the plain ones, so that both see the same machine. */
    double tr[8], cr[8], plain_switches = 0;
    for (int r = 0; r < reps; r++) {
        mpx_graph_t *g = MPX_EZ(source(n), mpx_stage(&Plus, &shared), mpx_stage(&Sink, NULL));
        t[r] = run_cpu(g, &c[r]);
        plain_switches = mpx_switches;
        mpx_instance_info_t info;
        if (mpx_graph_instance_info(g, 1, &info) != 0)
            info.max_rss_kib = 0;
        rss = info.max_rss_kib > rss ? info.max_rss_kib : rss;
        priv = *shared > priv ? *shared : priv;
        mpx_node_destroy(&g);
        mpx_node_t *map = mpx_stage(&Plus, &shared);
        if (mpx_node_set_retries(map, 1) != 0)
            fail(map, "cannot set retries");
        g = MPX_EZ(source(n), map, mpx_stage(&Sink, NULL));
        tr[r] = run_cpu(g, &cr[r]);
        mpx_node_destroy(&g);
    }
    munmap(shared, sizeof(long));
    mpx_switches = plain_switches;
    mpx_cpu_ns = bench_median(c, (size_t)reps) / (double)n * 1e9;
    char extra[200];
    snprintf(extra, sizeof extra,
             "\"items\": %lld, \"stages\": 3, \"cpu_ns_per_item\": %.0f, "
             "\"baseline_cpu_ns_per_item\": %.0f, \"switches_per_kitem\": %.1f, "
             "\"baseline_switches_per_kitem\": %.1f",
             (long long)n, mpx_cpu_ns, raw_cpu_ns, mpx_switches / (double)n * 1000, raw_switches);
    double plain = (double)n / bench_median(t, (size_t)reps);
    bench_emit("small_items", plain, "items/s", base, extra);
    double recoverable = (double)n / bench_median(tr, (size_t)reps);
    snprintf(extra, sizeof extra,
             "\"items\": %lld, \"stages\": 3, \"retries\": 1, \"cpu_ns_per_item\": %.0f, "
             "\"of_plain\": %.3f",
             (long long)n, bench_median(cr, (size_t)reps) / (double)n * 1e9, recoverable / plain);
    bench_emit("small_items_recoverable", recoverable, "items/s", base, extra);
    /* (f) memory: the map stage of that run, against the raw receiver. */
    snprintf(extra, sizeof extra,
             "\"process\": \"the map stage of small_items\", \"private_kib\": %ld, "
             "\"baseline_private_kib\": %ld",
             priv, raw_priv);
    bench_emit("memory", (double)rss, "KiB", (double)raw_rss, extra);
}

/* ---- latency: one item at a time ----------------------------------------- *
 * Three stages: the source puts a timestamped item, the middle stage
 * passes it on, the last stage records how long it took (in memory
 * shared with the parent) and lets the source put the next one.  Two
 * hops between processes, as in the raw ping-pong's round trip. */

typedef struct lat_args {
    int64_t n;
    mpx_event_t *next;
    double *latency_us; /* n entries, shared with the parent */
} lat_args_t;

static int paced_setup(mpx_stage_t *st)
{
    const lat_args_t *a = mpx_args(st);
    for (int64_t i = 0; i < a->n; i++) {
        double t = bench_now();
        int rc = mpx_put(st, &t, sizeof t);
        if (rc == 0)
            rc = mpx_flush(st); /* a source that then waits flushes */
        if (rc != 0)
            return rc;
        if (mpx_event_wait(a->next, 10000) != 1)
            return mpx_fail(st, "item %lld did not arrive", (long long)i);
        mpx_event_clear(a->next);
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Paced = {.name = "paced", .args_size = sizeof(lat_args_t),
                                      .setup = paced_setup};

static int arrive(mpx_stage_t *st, mpx_item_t *it)
{
    const lat_args_t *a = mpx_args(st);
    int64_t *k = mpx_state(st);
    double sent;
    memcpy(&sent, mpx_item_data(it, 0), sizeof sent);
    if (*k < a->n)
        a->latency_us[(*k)++] = (bench_now() - sent) * 1e6;
    return mpx_event_set(a->next);
}
static const mpx_stage_def_t Arrive = {.name = "arrive", .args_size = sizeof(lat_args_t),
                                       .state_size = sizeof(int64_t), .process = arrive};

static void latency(void)
{
    uint64_t n = quick ? 200 : 5000;
    double *raw = malloc(n * sizeof *raw);
    double *lat = mmap(NULL, n * sizeof *lat, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                       -1, 0);
    raw_pingpong(n, raw);
    double raw_p50 = bench_median(raw, n), raw_p99 = bench_percentile(raw, n, 99);

    lat_args_t a = {(int64_t)n, mpx_event_new(), lat};
    mpx_graph_t *g = MPX_EZ(mpx_stage(&Paced, &a), mpx_stage(&Pass, NULL),
                            mpx_stage(&Arrive, &a));
    if (mpx_graph_join(g) != 0)
        fail(g, "latency");
    mpx_node_destroy(&g);
    mpx_event_destroy(&a.next);
    double p50 = bench_median(lat, n), p99 = bench_percentile(lat, n, 99);
    char extra[200];
    snprintf(extra, sizeof extra,
             "\"p99\": %.1f, \"stages\": 3, \"hops\": 2, \"baseline_p99\": %.1f, "
             "\"baseline_hops\": 2",
             p99, raw_p99);
    bench_emit("latency", p50, "us", raw_p50, extra);
    free(raw);
    munmap(lat, n * sizeof *lat);
}

/* ---- scaling: 1 ms of CPU per item ---------------------------------------- *
 * Timed as the raw farm is: from the first task sent to the last result
 * received.  The source notes when its first put returned (every stage is
 * set up then), the sink when each result came, in memory shared with the
 * parent; start-up and exit, which the raw farm does outside its clock,
 * are left out (the run's wall time is reported too). */

typedef struct span_args {
    int64_t n;
    double *at; /* [0]: first put returned; [1]: last item taken */
} span_args_t;

static int timed_setup(mpx_stage_t *st)
{
    const span_args_t *a = mpx_args(st);
    for (int64_t v = 0; v < a->n; v++) {
        int rc = mpx_put_i64(st, v);
        if (rc != 0)
            return rc;
        if (v == 0)
            a->at[0] = bench_now();
    }
    return mpx_stop(st);
}
static const mpx_stage_def_t Timed = {.name = "src", .args_size = sizeof(span_args_t),
                                      .setup = timed_setup};

static int last_process(mpx_stage_t *st, mpx_item_t *it)
{
    (void)it;
    const span_args_t *a = mpx_args(st);
    a->at[1] = bench_now();
    return 0;
}
static const mpx_stage_def_t Last = {.name = "sink", .args_size = sizeof(span_args_t),
                                     .process = last_process};

static void scaling(void)
{
    double work = 1e-3;
    int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int most = cpus > 1 ? cpus : 2;
    if (most > 16)
        most = 16;
    int64_t n = quick ? 40 : 1000;
    int r_max = quick ? 1 : 5;
    /* The speed of this machine's CPUs drifts by tens of percent from one
     * second to the next (other guests on the host).  So each repetition
     * runs every worker count back to back, the speed-up is taken within
     * that repetition, and the median over repetitions is reported. */
    double t[17][16], wall[17][16], rt[17][16], up[17][16], rup[17][16];
    double *at = mmap(NULL, 2 * sizeof *at, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                      -1, 0);
    if (at == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    span_args_t a = {n, at};
    for (int r = 0; r < r_max; r++) {
        for (int w = 1; w <= most; w++) {
            mpx_graph_t *g =
                MPX_EZ(mpx_stage(&Timed, &a), mpx_as(w, &Work, &work), mpx_stage(&Last, &a));
            wall[w][r] = run(g);
            t[w][r] = at[1] - at[0];
            mpx_node_destroy(&g);
            rt[w][r] = raw_farm(w, (uint64_t)n, work);
        }
        for (int w = 1; w <= most; w++) {
            up[w][r] = t[1][r] / t[w][r];
            rup[w][r] = rt[1][r] / rt[w][r];
        }
    }
    munmap(at, 2 * sizeof *at);
    for (int w = 1; w <= most; w++) {
        char extra[200];
        snprintf(extra, sizeof extra,
                 "\"workers\": %d, \"items\": %lld, \"ms_per_item\": 1, \"seconds\": %.3f, "
                 "\"wall_seconds\": %.3f",
                 w, (long long)n, bench_median(t[w], (size_t)r_max),
                 bench_median(wall[w], (size_t)r_max));
        bench_emit("scaling", bench_median(up[w], (size_t)r_max), "x",
                   bench_median(rup[w], (size_t)r_max), extra);
    }
}

/* ---- large items ---------------------------------------------------------- */

static void large_items(void)
{
    size_t size = 1 << 20;
    int64_t n = quick ? 50 : 2000;
    double base = raw_msgs_per_s((uint64_t)n, size, NULL, NULL) * (double)size / 1e6;
    /* The same edge with malloc keeping what mpx's stage processes keep
     * (an edge's default capacity). */
    double kt[8];
    for (int r = 0; r < reps; r++)
        kt[r] = raw_stream_heap_kept((uint64_t)n, size, MPX_DEFAULT_CAPACITY_BYTES);
    double kept = (double)n * (double)size / 1e6 / bench_median(kt, (size_t)reps);
    /* Through the default pool (each put copied into it once, then a
     * reference at every hop), and interleaved with it the same graph
     * without a pool, every byte through every socket. */
    double t[8], c[8], ts[8], cs[8];
    for (int r = 0; r < reps; r++) {
        for (int pooled = 1; pooled >= 0; pooled--) {
            block_args_t a = {n, size};
            mpx_graph_t *g = MPX_EZ(mpx_stage(&Blocks, &a), mpx_stage(&Pass, NULL),
                                    mpx_stage(&Sink, NULL));
            if (!pooled && mpx_graph_set_pool(g, 0) != 0)
                fail(g, "mpx_graph_set_pool");
            if (pooled)
                t[r] = run_cpu(g, &c[r]);
            else
                ts[r] = run_cpu(g, &cs[r]);
            mpx_node_destroy(&g);
        }
    }
    double value = (double)n * (double)size / 1e6 / bench_median(t, (size_t)reps);
    double socket = (double)n * (double)size / 1e6 / bench_median(ts, (size_t)reps);
    char extra[400];
    snprintf(extra, sizeof extra,
             "\"items\": %lld, \"item_bytes\": %zu, \"stages\": 3, \"cpu_us_per_item\": %.0f, "
             "\"baseline_cpu_us_per_item\": %.0f, \"baseline_heap_kept\": %.6g, "
             "\"ratio_heap_kept\": %.4g, \"without_pool\": %.6g, "
             "\"without_pool_cpu_us_per_item\": %.0f",
             (long long)n, size, bench_median(c, (size_t)reps) / (double)n * 1e6,
             raw_cpu_ns / 1e3, kept, value / kept, socket,
             bench_median(cs, (size_t)reps) / (double)n * 1e6);
    bench_emit("large_items", value, "MB/s", base, extra);
}

/* ---- frames: 6 MB video frames through the pool ---------------------------- *
 * source -> pass -> sink with frames of 1920x1080 rgb24 (6,220,800 bytes):
 * the source takes a block with mpx_alloc, writes a whole frame into it
 * and puts it with mpx_put_alloc; pass forwards it with mpx_put_item; sink
 * checks a byte.  Only a reference to each frame crosses a socket.
 * Against a raw one-edge copy of frames of the same size (raw_stream: the
 * sender copies each frame into a message, as it would write one), in the
 * same run.  The same graph without a pool (mpx_graph_set_pool(g, 0): the
 * source writes the frame into its own buffer and mpx_puts it, so every
 * frame crosses both sockets) runs interleaved with the pooled one, to
 * show what the pool gains, and so does one process that only writes the
 * frames (write_only_frames_per_s): the most the pipeline could carry.
 *
 * Hand-off latency per hop: from just before a stage's put to the start of
 * the next stage's process callback for that frame, both read from
 * CLOCK_MONOTONIC (one clock for every process) and written into a table
 * shared with the parent, indexed by the frame's number (its first 8
 * bytes).  Measured in the throughput run itself: a hop's time includes
 * any wait behind frames queued ahead (none when the consumer keeps up,
 * as pass and sink do here) and the put's own wait for room. */

#define FRAME_W 1920
#define FRAME_H 1080
#define FRAME_BYTES ((size_t)FRAME_W * FRAME_H * 3)

enum { STAMP_PUT0, STAMP_IN1, STAMP_PUT1, STAMP_IN2, STAMPS };

typedef struct frame_args {
    int64_t n;
    bool pooled;    /* the source writes into pool blocks (mpx_alloc) */
    double *stamps; /* STAMPS * n seconds, shared with the parent */
} frame_args_t;

/* A frame: its number, then bytes of the number's low byte, as a frame of
 * video is written once by whoever makes it. */
static void write_frame(uint8_t *p, int64_t i)
{
    memset(p, (int)(i & 0xff), FRAME_BYTES);
    memcpy(p, &i, sizeof i);
}

static int64_t frame_number(const mpx_item_t *it)
{
    int64_t i = -1;
    if (mpx_item_size(it, 0) == FRAME_BYTES)
        memcpy(&i, mpx_item_data(it, 0), sizeof i);
    return i;
}

static int frame_source_setup(mpx_stage_t *st)
{
    const frame_args_t *a = mpx_args(st);
    uint8_t *own = a->pooled ? NULL : malloc(FRAME_BYTES);
    if (!a->pooled && !own)
        return mpx_fail(st, "out of memory");
    int rc = 0;
    for (int64_t i = 0; i < a->n && rc == 0; i++) {
        uint8_t *p = own ? own : mpx_alloc(st, FRAME_BYTES);
        if (!p) {
            rc = mpx_stopping(st) ? MPX_ESTOPPED : mpx_fail(st, "no pool block");
            break;
        }
        write_frame(p, i);
        a->stamps[STAMP_PUT0 * a->n + i] = bench_now();
        rc = own ? mpx_put(st, p, FRAME_BYTES) : mpx_put_alloc(st, p, FRAME_BYTES);
    }
    free(own);
    return rc ? rc : mpx_stop(st);
}
static const mpx_stage_def_t FrameSource = {.name = "frames", .args_size = sizeof(frame_args_t),
                                            .setup = frame_source_setup};

static int frame_pass(mpx_stage_t *st, mpx_item_t *it)
{
    double now = bench_now();
    const frame_args_t *a = mpx_args(st);
    int64_t i = frame_number(it);
    if (i < 0 || i >= a->n)
        return mpx_fail(st, "not a frame");
    a->stamps[STAMP_IN1 * a->n + i] = now;
    a->stamps[STAMP_PUT1 * a->n + i] = bench_now();
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t FramePass = {.name = "pass", .args_size = sizeof(frame_args_t),
                                          .process = frame_pass};

static int frame_sink(mpx_stage_t *st, mpx_item_t *it)
{
    double now = bench_now();
    const frame_args_t *a = mpx_args(st);
    int64_t i = frame_number(it);
    if (i < 0 || i >= a->n)
        return mpx_fail(st, "not a frame");
    if (((const uint8_t *)mpx_item_data(it, 0))[FRAME_BYTES - 1] != (uint8_t)(i & 0xff))
        return mpx_fail(st, "frame %lld arrived damaged", (long long)i);
    a->stamps[STAMP_IN2 * a->n + i] = now;
    return 0;
}
static const mpx_stage_def_t FrameSink = {.name = "sink", .args_size = sizeof(frame_args_t),
                                          .process = frame_sink};

static double frames_pool_peak_mb; /* the most the pool held at once, of the last pooled run */

/* One run of the three stages: seconds; CPU of every process to *cpu and
 * the p50 of each hop (µs) to hop[2]. */
static double frames_run(frame_args_t *a, double *cpu, double hop[2])
{
    for (int64_t k = 0; k < STAMPS * a->n; k++)
        a->stamps[k] = -1;
    mpx_graph_t *g = MPX_EZ(mpx_stage(&FrameSource, a), mpx_stage(&FramePass, a),
                            mpx_stage(&FrameSink, a));
    /* 256 MiB, about 40 frames: room to spare for what the two edges'
     * byte windows hold (16 MiB of pool parts each: two frames), the
     * blocks producers keep until their consumers confirm them, and the
     * frame being written.  pool_peak_mb says how much it held. */
    int rc = mpx_graph_set_pool(g, a->pooled ? (size_t)256 << 20 : 0);
    if (rc != 0)
        fail(g, "frames: mpx_graph_set_pool");
    double t = run_cpu(g, cpu);
    mpx_pool_stats_t ps;
    if (a->pooled) {
        if (mpx_graph_pool_stats(g, &ps) != 0)
            fail(g, "frames: mpx_graph_pool_stats");
        frames_pool_peak_mb = (double)ps.peak_bytes / 1e6;
    }
    mpx_node_destroy(&g);
    double *d = malloc((size_t)a->n * sizeof *d);
    if (!d) {
        perror("mpx-bench: frames");
        exit(1);
    }
    for (int h = 0; h < 2; h++) {
        const double *put = a->stamps + (h ? STAMP_PUT1 : STAMP_PUT0) * a->n;
        const double *in = a->stamps + (h ? STAMP_IN2 : STAMP_IN1) * a->n;
        for (int64_t i = 0; i < a->n; i++) {
            if (put[i] < 0 || in[i] < 0) {
                fprintf(stderr, "mpx-bench: frames: frame %lld did not arrive\n", (long long)i);
                exit(1);
            }
            d[i] = (in[i] - put[i]) * 1e6;
        }
        hop[h] = bench_median(d, (size_t)a->n);
    }
    free(d);
    return t;
}

static void frames(void)
{
    /* 300 frames: about half a second through mpx, whose start-up (some
     * milliseconds) is then a small part.  The raw sender may queue most
     * of its frames in memory (zmq's high-water mark is 1000 messages):
     * 1.9 GB at most, as large_items' 2000 MiB. */
    int64_t n = quick ? 20 : 300;
    double base = raw_msgs_per_s((uint64_t)n, FRAME_BYTES, NULL, NULL);
    double *stamps = mmap(NULL, STAMPS * (size_t)n * sizeof(double), PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (stamps == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    /* The ceiling: one process writing the frames and nothing else, into
     * as many buffers as the pool would cycle through (four). */
    uint8_t *bufs[4];
    for (int b = 0; b < 4; b++)
        if (!(bufs[b] = malloc(FRAME_BYTES))) {
            perror("mpx-bench: frames");
            exit(1);
        }
    double t[8], c[8], h1[8], h2[8], ts[8], cs[8], s1[8], s2[8], tw[8];
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        for (int64_t i = 0; i < n; i++)
            write_frame(bufs[i % 4], i);
        tw[r] = bench_now() - t0;
        __asm__ volatile("" ::"r"(bufs[0]) : "memory"); /* the writes are kept */
        frame_args_t a = {n, true, stamps};
        double hop[2];
        t[r] = frames_run(&a, &c[r], hop);
        h1[r] = hop[0];
        h2[r] = hop[1];
        a.pooled = false;
        ts[r] = frames_run(&a, &cs[r], hop);
        s1[r] = hop[0];
        s2[r] = hop[1];
    }
    munmap(stamps, STAMPS * (size_t)n * sizeof(double));
    for (int b = 0; b < 4; b++)
        free(bufs[b]);
    double fps = (double)n / bench_median(t, (size_t)reps);
    double socket_fps = (double)n / bench_median(ts, (size_t)reps);
    char extra[600];
    snprintf(extra, sizeof extra,
             "\"frames\": %lld, \"frame_bytes\": %zu, \"stages\": 3, \"mb_per_s\": %.1f, "
             "\"baseline_mb_per_s\": %.1f, \"cpu_us_per_frame\": %.0f, "
             "\"baseline_cpu_us_per_frame\": %.0f, \"p50_hop1_us\": %.1f, "
             "\"p50_hop2_us\": %.1f, \"without_pool_frames_per_s\": %.1f, "
             "\"without_pool_cpu_us_per_frame\": %.0f, \"without_pool_p50_hop1_us\": %.1f, "
             "\"without_pool_p50_hop2_us\": %.1f, \"write_only_frames_per_s\": %.1f, "
             "\"pool_peak_mb\": %.1f",
             (long long)n, FRAME_BYTES, fps * (double)FRAME_BYTES / 1e6,
             base * (double)FRAME_BYTES / 1e6, bench_median(c, (size_t)reps) / (double)n * 1e6,
             raw_cpu_ns / 1e3, bench_median(h1, (size_t)reps), bench_median(h2, (size_t)reps),
             socket_fps, bench_median(cs, (size_t)reps) / (double)n * 1e6,
             bench_median(s1, (size_t)reps), bench_median(s2, (size_t)reps),
             (double)n / bench_median(tw, (size_t)reps), frames_pool_peak_mb);
    bench_emit("frames", fps, "frames/s", base, extra);
}

/* ---- start-up: a 17-process graph carrying 100 items ---------------------- */

static void startup(void)
{
    int runs = quick ? 3 : 11;
    double t[16], rt[16], c[16], rc[16];
    for (int r = 0; r < runs; r++) {
        mpx_graph_t *g = MPX_EZ(source(100), mpx_as(3, &Pass, NULL), mpx_as(7, &Pass, NULL),
                                mpx_as(3, &Pass, NULL), mpx_as(3, &Sink, NULL));
        t[r] = run_cpu(g, &c[r]) * 1e3;
        c[r] *= 1e3;
        mpx_node_destroy(&g);
        double c0 = cpu_all();
        rt[r] = raw_chain_startup(17, 100) * 1e3;
        rc[r] = (cpu_all() - c0) * 1e3;
    }
    char extra[200];
    snprintf(extra, sizeof extra,
             "\"processes\": 17, \"items\": 100, \"baseline_shape\": \"a chain of 17\", "
             "\"cpu_ms\": %.1f, \"baseline_cpu_ms\": %.1f",
             bench_median(c, (size_t)runs), bench_median(rc, (size_t)runs));
    bench_emit("startup", bench_median(t, (size_t)runs), "ms", bench_median(rt, (size_t)runs),
               extra);
}

/* ---- how cost grows ------------------------------------------------------- */

static void growth(void)
{
    int64_t n = quick ? 50000 : 1000000;
    double base = raw_msgs_per_s((uint64_t)n, 8, NULL, NULL);
    static const int sizes[] = {1, 4, 16};
    for (size_t i = 0; i < 3; i++) {
        double t[8];
        for (int r = 0; r < reps; r++) {
            mpx_node_t *steps[18];
            steps[0] = source(n);
            for (int s = 0; s < sizes[i]; s++)
                steps[1 + s] = mpx_stage(&Pass, NULL);
            steps[1 + sizes[i]] = mpx_stage(&Sink, NULL);
            mpx_graph_t *g = mpx_serial_v(steps, (size_t)sizes[i] + 2);
            t[r] = run(g);
            mpx_node_destroy(&g);
        }
        char extra[64];
        snprintf(extra, sizeof extra, "\"stages\": %d, \"items\": %lld", sizes[i], (long long)n);
        bench_emit("chain", (double)n / bench_median(t, (size_t)reps), "items/s", base, extra);
    }
    for (size_t i = 0; i < 3; i++) {
        double t[8];
        for (int r = 0; r < reps; r++) {
            mpx_graph_t *g =
                MPX_EZ(source(n), mpx_as(sizes[i], &Pass, NULL), mpx_stage(&Sink, NULL));
            t[r] = run(g);
            mpx_node_destroy(&g);
        }
        char extra[64];
        snprintf(extra, sizeof extra, "\"workers\": %d, \"items\": %lld", sizes[i], (long long)n);
        bench_emit("parallel", (double)n / bench_median(t, (size_t)reps), "items/s", base, extra);
    }
}

/* ---- grain: a parallel map at every grain of work ------------------------ *
 * MPX_EZ(mpx_range(0, n, 1), mpx_instances(MPX_MAP(f), w)) read with
 * mpx_graph_next in the parent, where f spins for a fixed number of turns
 * (1 us to 1 ms of CPU).  Its speed-up over a single-process loop doing
 * the same work is set against the speed-up of w forked processes that
 * split the loop statically (raw_split): the best a parallel map can do.
 * pipeline_x is the speed-up of hand-written code that moves the items
 * as mpx does, source -> w workers -> program over unix sockets in
 * batches (raw_pipeline): what moving them costs here, whatever the
 * library.  Whole runs are timed, start-up and exit included, as a user
 * would see them; runs are long enough (about a second of work) that
 * start-up is a small part.  Each repetition runs the loop, the split, the pipeline and
 * mpx back to back, and the speed-ups are taken within it. */

static uint64_t grain_turns; /* set before each graph is built: its processes inherit it */

static int64_t grain_work(int64_t i) { return (int64_t)bench_spin(grain_turns, (uint64_t)i); }

/* The map, or (ordered) the map inside mpx_seq with the range numbering
 * its items, each output checked to come in its place; *procs gets the
 * processes the graph ran. */
static double map_mpx(int workers, int64_t n, bool ordered, uint64_t *sum, double *cpu,
                      size_t *procs)
{
    double c0 = cpu_all(), t0 = bench_now();
    mpx_node_t *src = mpx_range(0, n, 1);
    if (ordered && mpx_node_set_index(src, true) != 0) {
        fprintf(stderr, "mpx-bench: seq: cannot number the range\n");
        exit(1);
    }
    mpx_node_t *map = mpx_instances(MPX_MAP(grain_work), workers);
    mpx_graph_t *g = MPX_EZ(src, ordered ? mpx_seq(map) : map);
    if (mpx_graph_start(g) != 0)
        fail(g, ordered ? "seq" : "grain");
    *procs = mpx_graph_instance_count(g);
    uint64_t s = 0;
    int64_t got = 0;
    for (mpx_item_t *it; (it = mpx_graph_next(g)) != NULL; got++) {
        s += (uint64_t)mpx_item_i64(it);
        int64_t index;
        if (ordered && (mpx_item_meta_i64(it, "mpx.index", &index) != 0 || index != got)) {
            fprintf(stderr, "mpx-bench: seq: output %lld is not in its place\n", (long long)got);
            exit(1);
        }
    }
    if (mpx_graph_join(g) != 0)
        fail(g, ordered ? "seq" : "grain");
    double t = bench_now() - t0;
    *cpu = cpu_all() - c0;
    mpx_node_destroy(&g);
    if (got != n) {
        fprintf(stderr, "mpx-bench: grain: %lld items of %lld came out\n", (long long)got,
                (long long)n);
        exit(1);
    }
    *sum = s;
    return t;
}

static double grain_mpx(int workers, int64_t n, uint64_t *sum, double *cpu)
{
    size_t procs;
    return map_mpx(workers, n, false, sum, cpu, &procs);
}

static void grain_line(double us, int workers, double per_us)
{
    grain_turns = (uint64_t)(us * per_us + 0.5);
    double work_s = quick ? 0.05 : 1.0;
    int64_t n = (int64_t)(work_s * 1e6 / us);
    int r_max = quick ? 1 : 3;
    double up[8], rup[8], pup[8], over[8], t_mpx[8];
    for (int r = 0; r < r_max; r++) {
        double t0 = bench_now(), c0 = cpu_all();
        uint64_t s1 = 0, s2, s3, s4;
        for (int64_t i = 0; i < n; i++)
            s1 += bench_spin(grain_turns, (uint64_t)i);
        double t_one = bench_now() - t0, c_one = cpu_all() - c0;
        double t_raw = raw_split(workers, (uint64_t)n, grain_turns, &s2);
        double t_pipe = raw_pipeline(workers, (uint64_t)n, grain_turns, &s4);
        double cpu;
        t_mpx[r] = grain_mpx(workers, n, &s3, &cpu);
        if (s1 != s2 || s1 != s3 || s1 != s4) {
            fprintf(stderr, "mpx-bench: grain: the results differ\n");
            exit(1);
        }
        up[r] = t_one / t_mpx[r];
        rup[r] = t_one / t_raw;
        pup[r] = t_one / t_pipe;
        /* CPU of every process beyond the work itself (the loop's CPU
         * time), per item. */
        over[r] = (cpu - c_one) / (double)n * 1e6;
    }
    char extra[300];
    snprintf(extra, sizeof extra,
             "\"us_per_item\": %g, \"workers\": %d, \"items\": %lld, \"seconds\": %.3f, "
             "\"overhead_cpu_us_per_item\": %.2f, \"pipeline_x\": %.4g",
             us, workers, (long long)n, bench_median(t_mpx, (size_t)r_max),
             bench_median(over, (size_t)r_max), bench_median(pup, (size_t)r_max));
    bench_emit("grain", bench_median(up, (size_t)r_max), "x", bench_median(rup, (size_t)r_max),
               extra);
}

static void grain(void)
{
    double per_us = bench_spin_per_us();
    int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    static const double grains[] = {1, 10, 40, 1000};
    for (size_t i = 0; i < sizeof grains / sizeof *grains; i++) {
        grain_line(grains[i], 2, per_us);
        if (cpus > 2)
            grain_line(grains[i], cpus, per_us);
    }
}

/* ---- seq: what restoring the order costs ----------------------------------- *
 * grain's map of 2 workers, as it is and inside mpx_seq (the range
 * numbering its items so that each output is checked to come in its
 * place): the ordered map's speed-up over a single-process loop against
 * raw_split's, the unordered map's in the same repetition, the CPU of
 * every process beyond the work per item for both (their difference is
 * what ordering costs), and the processes each ran. */

static void seq_line(double us, int workers, double per_us)
{
    grain_turns = (uint64_t)(us * per_us + 0.5);
    double work_s = quick ? 0.05 : 1.0;
    int64_t n = (int64_t)(work_s * 1e6 / us);
    int r_max = quick ? 1 : 3;
    double up[8], rup[8], unup[8], over[8], over_un[8];
    size_t procs = 0, procs_un = 0;
    for (int r = 0; r < r_max; r++) {
        double t0 = bench_now(), c0 = cpu_all();
        uint64_t s1 = 0, s2, s3, s4;
        for (int64_t i = 0; i < n; i++)
            s1 += bench_spin(grain_turns, (uint64_t)i);
        double t_one = bench_now() - t0, c_one = cpu_all() - c0;
        double t_raw = raw_split(workers, (uint64_t)n, grain_turns, &s2);
        double cpu, cpu_un;
        double t_seq = map_mpx(workers, n, true, &s3, &cpu, &procs);
        double t_un = map_mpx(workers, n, false, &s4, &cpu_un, &procs_un);
        if (s1 != s2 || s1 != s3 || s1 != s4) {
            fprintf(stderr, "mpx-bench: seq: the results differ\n");
            exit(1);
        }
        up[r] = t_one / t_seq;
        unup[r] = t_one / t_un;
        rup[r] = t_one / t_raw;
        over[r] = (cpu - c_one) / (double)n * 1e6;
        over_un[r] = (cpu_un - c_one) / (double)n * 1e6;
    }
    char extra[320];
    snprintf(extra, sizeof extra,
             "\"us_per_item\": %g, \"workers\": %d, \"items\": %lld, \"processes\": %zu, "
             "\"unordered_processes\": %zu, \"unordered_speedup\": %.3f, "
             "\"overhead_cpu_us_per_item\": %.2f, \"unordered_overhead_cpu_us_per_item\": %.2f",
             us, workers, (long long)n, procs, procs_un, bench_median(unup, (size_t)r_max),
             bench_median(over, (size_t)r_max), bench_median(over_un, (size_t)r_max));
    bench_emit("seq", bench_median(up, (size_t)r_max), "x", bench_median(rup, (size_t)r_max),
               extra);
}

static void seq(void)
{
    double per_us = bench_spin_per_us();
    seq_line(1, 2, per_us);
    seq_line(40, 2, per_us);
}

/* ---- pool_map: the program's own inputs through mpx_imap ------------------ *
 * mpx_imap_run over n inputs from a generator in the parent (fed with
 * mpx_graph_put), 2 workers, results in order (and, on a second line, as
 * they finish), each worker spinning as grain does: the speed-up over a
 * single-process loop, against raw_split's.  The fields give the CPU of
 * every process beyond the work, per item, with and without ordering:
 * their difference is what ordering costs. */

static int pool_work(mpx_stage_t *st, mpx_item_t *in)
{
    int64_t i = mpx_item_i64(in);
    return mpx_put_i64(st, (int64_t)bench_spin(grain_turns, (uint64_t)i));
}
static const mpx_stage_def_t PoolWork = {.name = "pool-work", .process = pool_work};

typedef struct pool_gen {
    int64_t next, n, v;
    uint64_t sum;
    int64_t got;
} pool_gen_t;

static int pool_input(void *ctx, mpx_part_t *in)
{
    pool_gen_t *g = ctx;
    if (g->next == g->n)
        return 0;
    g->v = g->next++;
    *in = (mpx_part_t){&g->v, sizeof g->v};
    return 1;
}

static int pool_output(void *ctx, const mpx_item_t *r)
{
    pool_gen_t *g = ctx;
    g->sum += (uint64_t)mpx_item_i64(r);
    g->got++;
    return 0;
}

static double pool_mpx(int workers, bool ordered, int64_t n, uint64_t *sum, double *cpu)
{
    double c0 = cpu_all(), t0 = bench_now();
    pool_gen_t g = {0, n, 0, 0, 0};
    mpx_imap_opts_t o = {.workers = workers, .ordered = ordered, .progress = -1};
    int rc = mpx_imap_run(&PoolWork, NULL, &o, pool_input, &g, pool_output, &g);
    double t = bench_now() - t0;
    *cpu = cpu_all() - c0;
    if (rc != 0 || g.got != n) {
        fprintf(stderr, "mpx-bench: pool_map: %s, %lld results of %lld\n", mpx_strerror(rc),
                (long long)g.got, (long long)n);
        exit(1);
    }
    *sum = g.sum;
    return t;
}

static void pool_map_line(double us, int64_t n, int workers, double per_us)
{
    grain_turns = (uint64_t)(us * per_us + 0.5);
    n = quick ? n / 20 : n;
    int r_max = quick ? 1 : 3;
    double up[8], rup[8], unup[8], over[8], over_un[8], t_mpx[8];
    for (int r = 0; r < r_max; r++) {
        double t0 = bench_now(), c0 = cpu_all();
        uint64_t s1 = 0, s2, s3, s4;
        for (int64_t i = 0; i < n; i++)
            s1 += bench_spin(grain_turns, (uint64_t)i);
        double t_one = bench_now() - t0, c_one = cpu_all() - c0;
        double t_raw = raw_split(workers, (uint64_t)n, grain_turns, &s2);
        double cpu, cpu_un;
        t_mpx[r] = pool_mpx(workers, true, n, &s3, &cpu);
        double t_un = pool_mpx(workers, false, n, &s4, &cpu_un);
        if (s1 != s2 || s1 != s3 || s1 != s4) {
            fprintf(stderr, "mpx-bench: pool_map: the results differ\n");
            exit(1);
        }
        up[r] = t_one / t_mpx[r];
        unup[r] = t_one / t_un;
        rup[r] = t_one / t_raw;
        over[r] = (cpu - c_one) / (double)n * 1e6;
        over_un[r] = (cpu_un - c_one) / (double)n * 1e6;
    }
    char extra[320];
    snprintf(extra, sizeof extra,
             "\"us_per_item\": %g, \"workers\": %d, \"items\": %lld, \"seconds\": %.3f, "
             "\"unordered_speedup\": %.3f, \"overhead_cpu_us_per_item\": %.2f, "
             "\"unordered_overhead_cpu_us_per_item\": %.2f",
             us, workers, (long long)n, bench_median(t_mpx, (size_t)r_max),
             bench_median(unup, (size_t)r_max), bench_median(over, (size_t)r_max),
             bench_median(over_un, (size_t)r_max));
    bench_emit("pool_map", bench_median(up, (size_t)r_max), "x", bench_median(rup, (size_t)r_max),
               extra);
}

static void pool_map(void)
{
    double per_us = bench_spin_per_us();
    pool_map_line(1, 1000000, 2, per_us);
    pool_map_line(40, 100000, 2, per_us);
}

/* ---- elastic: the autonomic-farm test (issue 17) --------------------------- *
 * source -> A -> B -> the program.  A and B burn CPU for each item
 * (bench_burn: CPU time, not sleep) at costs that swap in three phases:
 * A three times B (300 and 100 us), then B three times A, then equal (200
 * and 200 us).  The source tags each item with its phase, by its own
 * clock, so the costs switch exactly between two items, and notes when
 * each phase began (CLOCK_MONOTONIC, in memory shared with the parent).
 *
 * The elastic graph: A and B each mpx_node_set_elastic(1, 3), starting
 * with one instance each (the min), and mpx_graph_set_budget(g, 5): the
 * source and 4 for A and B together (the program, which takes the
 * results, is not a stage process).  Its baseline: the three fixed
 * allocations of those 4 processes (A:B = 1:3, 2:2, 3:1), each run
 * through the same phases in the same invocation (3 s a phase against the
 * elastic graph's 8: there is nothing to settle; 0.3 and 0.4 s with
 * --quick), in the order 1:3, 2:2, elastic, 3:1, so that a drift of the
 * machine's speed favours neither side.  Every item put must come out,
 * once (the run fails otherwise): joins and leaves lose nothing.  The
 * changes the controller made are read from the monitor's JSON stream
 * (mpx_graph_stats_to: a line {"mpx_elastic": 1, ...} per change),
 * stamped with the parent's clock as it writes them; nothing is guessed
 * from throughput.  Per phase:
 *
 *   settle     seconds from the phase's first put to the controller's
 *              last change in that phase (0: it changed nothing); the
 *              allocation held from then to the end of the phase;
 *   value      items/s of the phase's items as the program took them,
 *              from EL_WARM after the later of that change and the
 *              phase's first item out, to the next phase's first item out
 *              (the last phase: its own last); the margin lets the change
 *              complete and the items put under the old costs leave.  A
 *              fixed allocation is measured the same way from its phase's
 *              first item out.  When less than the phase's last second
 *              (0.1 s with --quick) would be left, that last second is
 *              measured ("settled": false);
 *   reversals  changes of a group opposite to its previous change in the
 *              same phase (a grow then a shrink, or the reverse).
 *
 * A second line, elastic_lock: source -> a stage that does all its work
 * holding one process-shared mutex (in mpx_shared_new memory) -> the
 * program, elastic 1..4 from 1, budget 5, 8 s: how far the controller
 * grew it, and its throughput from EL_WARM after its first item out
 * (its trials included) against one instance, and two, fixed (3 s). */

#define EL_PHASES 3
#define EL_MAX_CHANGES 256
#define EL_WARM 0.5 /* seconds */

static const double el_cost_a[EL_PHASES] = {300e-6, 100e-6, 200e-6};
static const double el_cost_b[EL_PHASES] = {100e-6, 300e-6, 200e-6};

typedef struct el_shared { /* written by the source, read by the parent */
    double begin[EL_PHASES + 1]; /* each phase's first put; [phases]: the end */
    int64_t items;               /* items put */
} el_shared_t;

typedef struct el_source_args {
    double phase_s;
    int phases;
    el_shared_t *sh;
} el_source_args_t;

typedef struct el_item {
    int64_t phase, n;
} el_item_t;

static int el_source_setup(mpx_stage_t *st)
{
    const el_source_args_t *a = mpx_args(st);
    el_item_t item = {0, 0};
    for (int p = 0; p < a->phases; p++) {
        /* Each phase lasts phase_s from its own first put: a put that
         * waited long on a loaded machine shortens no phase. */
        a->sh->begin[p] = bench_now();
        double end = a->sh->begin[p] + a->phase_s;
        item.phase = p;
        do {
            int rc = mpx_put(st, &item, sizeof item);
            if (rc != 0)
                return rc;
            item.n++;
        } while (bench_now() < end);
    }
    a->sh->begin[a->phases] = bench_now();
    a->sh->items = item.n;
    return mpx_stop(st);
}
static const mpx_stage_def_t ElSource = {.name = "src", .args_size = sizeof(el_source_args_t),
                                         .setup = el_source_setup};

typedef struct el_work_args {
    double cost[EL_PHASES]; /* CPU seconds per item, by phase */
} el_work_args_t;

static int el_work(mpx_stage_t *st, mpx_item_t *it)
{
    const el_work_args_t *a = mpx_args(st);
    el_item_t item;
    memcpy(&item, mpx_item_data(it, 0), sizeof item);
    bench_burn(a->cost[item.phase]);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t ElA = {.name = "A", .args_size = sizeof(el_work_args_t),
                                    .process = el_work};
static const mpx_stage_def_t ElB = {.name = "B", .args_size = sizeof(el_work_args_t),
                                    .process = el_work};

typedef struct el_lock_args {
    mpx_shared_t *lock; /* a process-shared pthread mutex */
    double cost;
} el_lock_args_t;

static int el_locked(mpx_stage_t *st, mpx_item_t *it)
{
    const el_lock_args_t *a = mpx_args(st);
    pthread_mutex_t *m = mpx_shared_data(a->lock);
    if (pthread_mutex_lock(m) != 0)
        return mpx_fail(st, "cannot take the lock");
    bench_burn(a->cost);
    pthread_mutex_unlock(m);
    return mpx_put_item(st, it);
}
static const mpx_stage_def_t ElLocked = {.name = "locked", .args_size = sizeof(el_lock_args_t),
                                         .process = el_locked};

/* The controller's changes, from the monitor's JSON stream as the parent
 * writes it into a stdio stream of ours (fopencookie): every line that
 * starts {"mpx_elastic": 1, is a change of one group, "from" and "to"
 * instances, stamped with bench_now() when written (the clock the source
 * stamps its phases with).  A change the runtime could not make is
 * logged too ("from" = "to", "reason": "could not be carried out ..."),
 * and so is a note of the controller's that changes nothing ("action":
 * "note"): both are left out. */
typedef struct el_change {
    double t;
    char stage[16], action[16];
    int from, to;
} el_change_t;

typedef struct el_log {
    char line[2048]; /* the start of the line being written */
    size_t len;
    el_change_t change[EL_MAX_CHANGES];
    int n;
} el_log_t;

/* The value of "key" in a JSON line: where it starts, or NULL. */
static const char *el_json_at(const char *line, const char *key)
{
    char want[40];
    snprintf(want, sizeof want, "\"%s\": ", key);
    const char *at = strstr(line, want);
    return at ? at + strlen(want) : NULL;
}

static int el_json_int(const char *line, const char *key)
{
    const char *at = el_json_at(line, key);
    return at ? atoi(at) : -1;
}

/* The string value of "key" (no escapes: the names and reasons compared
 * here have none), cut to cap; false when absent. */
static bool el_json_str(const char *line, const char *key, char *out, size_t cap)
{
    const char *at = el_json_at(line, key);
    if (!at || *at != '"')
        return false;
    size_t k = 0;
    for (at++; *at && *at != '"' && k + 1 < cap; at++)
        out[k++] = *at;
    out[k] = '\0';
    return true;
}

static void el_log_line(el_log_t *l)
{
    static const char tag[] = "{\"mpx_elastic\": 1,";
    l->line[l->len] = '\0';
    if (strncmp(l->line, tag, sizeof tag - 1) != 0)
        return;
    if (decisions)
        fprintf(stderr, "%.3f %s\n", bench_now(), l->line);
    el_change_t c = {.t = bench_now(), .from = el_json_int(l->line, "from"),
                     .to = el_json_int(l->line, "to")};
    char reason[64] = "";
    el_json_str(l->line, "action", c.action, sizeof c.action);
    el_json_str(l->line, "reason", reason, sizeof reason);
    if (!el_json_str(l->line, "stage", c.stage, sizeof c.stage) || c.from < 1 || c.to < 1 ||
        c.from == c.to || strcmp(c.action, "note") == 0 ||
        strncmp(reason, "could not be", 12) == 0)
        return;
    if (l->n < EL_MAX_CHANGES)
        l->change[l->n++] = c;
}

static ssize_t el_log_write(void *cookie, const char *buf, size_t size)
{
    el_log_t *l = cookie;
    for (size_t i = 0; i < size; i++) {
        if (buf[i] == '\n') {
            el_log_line(l);
            l->len = 0;
        } else if (l->len + 1 < sizeof l->line) {
            l->line[l->len++] = buf[i];
        }
    }
    return (ssize_t)size;
}

/* One run: when its phases began, when each phase's items came out, and
 * the controller's changes. */
typedef struct el_out {
    int phases;
    double begin[EL_PHASES + 1];
    double *at[EL_PHASES];
    size_t n[EL_PHASES], cap[EL_PHASES];
    el_log_t log;
} el_out_t;

/* Runs g, whose source's arguments are a, to its end, taking every
 * result in the program. */
static void el_run(mpx_graph_t *g, const el_source_args_t *a, el_out_t *o, const char *what)
{
    memset(o, 0, sizeof *o);
    o->phases = a->phases;
    FILE *json = fopencookie(&o->log, "w", (cookie_io_functions_t){.write = el_log_write});
    if (!json || mpx_graph_stats_to(g, json) != 0) {
        fprintf(stderr, "mpx-bench: %s: cannot read the monitor's stream\n", what);
        exit(1);
    }
    int64_t got = 0;
    for (mpx_item_t *it; (it = mpx_graph_next(g)) != NULL; got++) {
        double now = bench_now();
        el_item_t item;
        memcpy(&item, mpx_item_data(it, 0), sizeof item);
        int p = (int)item.phase;
        if (o->n[p] == o->cap[p]) {
            o->cap[p] = o->cap[p] ? 2 * o->cap[p] : 4096;
            if (!(o->at[p] = realloc(o->at[p], o->cap[p] * sizeof *o->at[p]))) {
                perror("mpx-bench");
                exit(1);
            }
        }
        o->at[p][o->n[p]++] = now;
    }
    if (mpx_graph_join(g) != 0)
        fail(g, what);
    mpx_node_destroy(&g);
    fclose(json);
    memcpy(o->begin, a->sh->begin, sizeof o->begin);
    if (got != a->sh->items) {
        fprintf(stderr, "mpx-bench: %s: %lld items of %lld came out\n", what, (long long)got,
                (long long)a->sh->items);
        exit(1);
    }
}

static void el_out_free(el_out_t *o)
{
    for (int p = 0; p < EL_PHASES; p++)
        free(o->at[p]);
}

/* Phase p as the program saw it: from its first item out to the next
 * phase's first item out (the last phase: to its own last).  Items take
 * some time through the graph, more on a loaded machine: a span taken at
 * the source would count the previous phase's last items in it. */
static void el_span(const el_out_t *o, int p, double *first, double *end)
{
    *first = o->n[p] ? o->at[p][0] : o->begin[p];
    *end = p + 1 < o->phases && o->n[p + 1] ? o->at[p + 1][0]
           : o->n[p]                        ? o->at[p][o->n[p] - 1]
                                            : o->begin[p + 1];
}

/* Items/s of phase p's items that came out from `lo` to the end of its
 * span, but over at least its last `least` seconds (false then). */
static bool el_rate(const el_out_t *o, int p, double lo, double least, double *rate,
                    double *span)
{
    double first, end;
    el_span(o, p, &first, &end);
    bool whole = lo <= end - least;
    if (!whole)
        lo = end - least;
    size_t k = 0;
    for (size_t i = 0; i < o->n[p]; i++)
        k += o->at[p][i] >= lo && o->at[p][i] <= end;
    *span = end - lo;
    *rate = *span > 0 ? (double)k / *span : 0;
    return whole;
}

/* What the controller did to the groups named in `names` (ngroups) from
 * `from` to `to` seconds (bench_now): changes, reversals, when the last
 * came (`from` when none), the most instances each group reached, each
 * change in a few words ("A 1->2 grow at 0.9 s", after `zero`), and each
 * group's allocation at `to`, which starts from `alloc` as it was at
 * `from` (the caller's running copy, updated here). */
typedef struct el_phase_changes {
    int changes, reversals;
    double last;
    int most[2];
    char steps[400];
} el_phase_changes_t;

static el_phase_changes_t el_changes(const el_log_t *l, const char *const *names, int ngroups,
                                     double from, double to, double zero, int *alloc)
{
    el_phase_changes_t pc = {0, 0, from, {alloc[0], ngroups > 1 ? alloc[1] : 0}, ""};
    size_t len = 0;
    int dir[2] = {0, 0};
    for (int i = 0; i < l->n; i++) {
        const el_change_t *c = &l->change[i];
        int k = 0;
        while (k < ngroups && strcmp(c->stage, names[k]) != 0)
            k++;
        if (k == ngroups || c->t < from || c->t >= to)
            continue;
        if (c->from != alloc[k])
            fprintf(stderr, "mpx-bench: elastic: %s went from %d, but had %d\n", c->stage,
                    c->from, alloc[k]);
        int d = c->to > c->from ? 1 : -1;
        pc.reversals += dir[k] == -d;
        dir[k] = d;
        pc.changes++;
        pc.last = c->t;
        alloc[k] = c->to;
        pc.most[k] = c->to > pc.most[k] ? c->to : pc.most[k];
        if (len < sizeof pc.steps) {
            int w = snprintf(pc.steps + len, sizeof pc.steps - len, "%s%s %d->%d %s at %.1f s",
                             len ? "; " : "", c->stage, c->from, c->to, c->action,
                             c->t - zero);
            len += w > 0 ? (size_t)w : 0;
        }
    }
    return pc;
}

static mpx_graph_t *el_farm(el_source_args_t *a, int na, int nb, bool elastic)
{
    el_work_args_t ca, cb;
    memcpy(ca.cost, el_cost_a, sizeof ca.cost);
    memcpy(cb.cost, el_cost_b, sizeof cb.cost);
    mpx_node_t *sa = mpx_as(na, &ElA, &ca), *sb = mpx_as(nb, &ElB, &cb);
    if (elastic && (mpx_node_set_elastic(sa, 1, 3) != 0 || mpx_node_set_elastic(sb, 1, 3) != 0)) {
        fprintf(stderr, "mpx-bench: elastic: cannot make A and B elastic\n");
        exit(1);
    }
    mpx_graph_t *g = MPX_EZ(mpx_stage(&ElSource, a), sa, sb);
    /* The source and 4 for A and B together. */
    if (elastic && mpx_graph_set_budget(g, 5) != 0)
        fail(g, "elastic: cannot set the budget");
    return g;
}

static void elastic_farm(el_shared_t *sh, double min_span)
{
    static const int fixed[3][2] = {{1, 3}, {2, 2}, {3, 1}};
    double phase_s = quick ? 0.4 : 8, fixed_s = quick ? 0.3 : 3;
    double warm = quick ? 0.05 : EL_WARM;
    el_out_t *o = malloc(sizeof *o);
    if (!o) {
        perror("mpx-bench");
        exit(1);
    }
    double rate_fixed[3][EL_PHASES];
    int alloc[2] = {1, 1};
    double value[EL_PHASES], whole[EL_PHASES], settle[EL_PHASES], span[EL_PHASES];
    bool settled[EL_PHASES];
    el_phase_changes_t pc[EL_PHASES];
    int settled_on[EL_PHASES][2];
    for (int k = 0; k < 4; k++) {
        /* 1:3, 2:2, elastic, 3:1 */
        int f = k < 2 ? k : k - 1;
        bool elastic = k == 2;
        el_source_args_t a = {elastic ? phase_s : fixed_s, EL_PHASES, sh};
        mpx_graph_t *g = elastic ? el_farm(&a, 1, 1, true)
                                 : el_farm(&a, fixed[f][0], fixed[f][1], false);
        el_run(g, &a, o, "elastic");
        static const char *const names[] = {"A", "B"};
        for (int p = 0; p < EL_PHASES; p++) {
            double b = o->begin[p], e = o->begin[p + 1], first, end, ignore;
            el_span(o, p, &first, &end);
            if (!elastic) {
                el_rate(o, p, first + warm, min_span, &rate_fixed[f][p], &ignore);
                continue;
            }
            /* A phase's changes are those the parent wrote while the
             * source put its items; any before the first item count in
             * the first phase. */
            pc[p] = el_changes(&o->log, names, 2, p ? b : 0, e, b, alloc);
            settle[p] = pc[p].last > b ? pc[p].last - b : 0;
            double lo = (pc[p].last > first ? pc[p].last : first) + warm;
            settled[p] = el_rate(o, p, lo, min_span, &value[p], &span[p]);
            whole[p] = (double)o->n[p] / (e - b);
            settled_on[p][0] = alloc[0];
            settled_on[p][1] = alloc[1];
        }
        el_out_free(o);
    }
    free(o);
    for (int p = 0; p < EL_PHASES; p++) {
        int best = 0;
        for (int f = 1; f < 3; f++)
            best = rate_fixed[f][p] > rate_fixed[best][p] ? f : best;
        char extra[1200];
        snprintf(extra, sizeof extra,
                 "\"phase\": %d, \"a_us\": %.0f, \"b_us\": %.0f, \"phase_seconds\": %g, "
                 "\"start\": \"1:1\", \"budget\": 5, \"settle_s\": %.2f, \"settled\": %s, "
                 "\"measured_s\": %.2f, \"changes\": %d, \"reversals\": %d, "
                 "\"allocation\": \"%d:%d\", \"most\": \"%d:%d\", \"best_fixed\": \"%d:%d\", "
                 "\"fixed_1_3\": %.1f, \"fixed_2_2\": %.1f, \"fixed_3_1\": %.1f, "
                 "\"whole_phase_items_per_s\": %.1f, \"steps\": \"%s\"",
                 p + 1, el_cost_a[p] * 1e6, el_cost_b[p] * 1e6, phase_s, settle[p],
                 settled[p] ? "true" : "false", span[p], pc[p].changes,
                 pc[p].reversals, settled_on[p][0], settled_on[p][1], pc[p].most[0],
                 pc[p].most[1], fixed[best][0], fixed[best][1], rate_fixed[0][p],
                 rate_fixed[1][p], rate_fixed[2][p], whole[p], pc[p].steps);
        bench_emit("elastic", value[p], "items/s", rate_fixed[best][p], extra);
    }
}

/* The stage that cannot scale: every item's work is done holding one
 * lock.  Elastic from 1 (max 4, budget 5: the source and 4), against 1
 * and 2 instances fixed, one phase each. */
static void elastic_lock(el_shared_t *sh, double min_span)
{
    double cost = 200e-6, run_s = quick ? 0.4 : 8, fixed_s = quick ? 0.3 : 3;
    double warm = quick ? 0.05 : EL_WARM;
    mpx_shared_t *lock = mpx_shared_new(sizeof(pthread_mutex_t));
    pthread_mutexattr_t ma;
    if (!lock || pthread_mutexattr_init(&ma) != 0 ||
        pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) != 0 ||
        pthread_mutex_init(mpx_shared_data(lock), &ma) != 0) {
        fprintf(stderr, "mpx-bench: elastic_lock: cannot make a process-shared lock\n");
        exit(1);
    }
    pthread_mutexattr_destroy(&ma);
    el_lock_args_t la = {lock, cost};
    el_out_t *o = malloc(sizeof *o);
    if (!o) {
        perror("mpx-bench");
        exit(1);
    }
    double rate[3];
    el_phase_changes_t pc = {0};
    int alloc[1] = {1};
    for (int k = 0; k < 3; k++) {
        /* 1 fixed, elastic, 2 fixed */
        el_source_args_t a = {k == 1 ? run_s : fixed_s, 1, sh};
        mpx_node_t *l = mpx_as(k == 2 ? 2 : 1, &ElLocked, &la);
        if (k == 1 && mpx_node_set_elastic(l, 1, 4) != 0) {
            fprintf(stderr, "mpx-bench: elastic_lock: cannot make the stage elastic\n");
            exit(1);
        }
        mpx_graph_t *g = MPX_EZ(mpx_stage(&ElSource, &a), l);
        if (k == 1 && mpx_graph_set_budget(g, 5) != 0)
            fail(g, "elastic_lock: cannot set the budget");
        el_run(g, &a, o, "elastic_lock");
        double first, end, span;
        el_span(o, 0, &first, &end);
        el_rate(o, 0, first + warm, min_span, &rate[k], &span);
        if (k == 1) {
            static const char *const names[] = {"locked"};
            pc = el_changes(&o->log, names, 1, 0, o->begin[1], o->begin[0], alloc);
        }
        el_out_free(o);
    }
    free(o);
    pthread_mutex_destroy(mpx_shared_data(lock));
    mpx_shared_destroy(&lock);
    char extra[800];
    snprintf(extra, sizeof extra,
             "\"us_per_item\": %.0f, \"seconds\": %g, \"min\": 1, \"max\": 4, \"budget\": 5, "
             "\"grown_to\": %d, \"ended_at\": %d, \"changes\": %d, \"reversals\": %d, "
             "\"two_instances_items_per_s\": %.1f, \"steps\": \"%s\"",
             cost * 1e6, run_s, pc.most[0], alloc[0], pc.changes, pc.reversals, rate[2],
             pc.steps);
    bench_emit("elastic_lock", rate[1], "items/s", rate[0], extra);
}

static void elastic(void)
{
    el_shared_t *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                           -1, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    elastic_farm(sh, quick ? 0.1 : 1);
    elastic_lock(sh, quick ? 0.1 : 1);
    munmap(sh, sizeof *sh);
}

/* ---- pachinko: mpyx's 42-process demo graph --------------------------------- *
 * Const -> 8 parallel groups of 5 in series -> sink, 5 items, from the
 * first builder call to the end of join, against a raw chain of as many
 * processes carrying as many items. */

static void pachinko(void)
{
    int runs = quick ? 3 : 9;
    double t[16], rt[16], c[16];
    for (int r = 0; r < runs; r++) {
        double c0 = cpu_all(), t0 = bench_now();
        mpx_node_t *steps[10];
        steps[0] = mpx_const_i64(1, 5);
        for (int s = 1; s <= 8; s++)
            steps[s] = mpx_as(5, &Pass, NULL);
        steps[9] = mpx_stage(&Sink, NULL);
        mpx_graph_t *g = mpx_serial_v(steps, 10);
        if (mpx_graph_join(g) != 0)
            fail(g, "pachinko");
        mpx_node_destroy(&g);
        t[r] = (bench_now() - t0) * 1e3;
        c[r] = (cpu_all() - c0) * 1e3;
        rt[r] = raw_chain_startup(42, 5) * 1e3;
    }
    char extra[200];
    snprintf(extra, sizeof extra,
             "\"processes\": 42, \"items\": 5, \"baseline_shape\": \"a chain of 42\", "
             "\"cpu_ms\": %.1f",
             bench_median(c, (size_t)runs));
    bench_emit("pachinko", bench_median(t, (size_t)runs), "ms", bench_median(rt, (size_t)runs),
               extra);
}

/* ---- wide: start-up and exit of one wide parallel group ------------------ *
 * source -> w pass workers -> sink with 1000 items, for w = 16, 64, 256:
 * milliseconds per worker from the first builder call to the end of join.
 * The baseline is a raw chain of as many processes, per process: what
 * forking, connecting and exiting cost anyway. */

static void wide(void)
{
    static const int widths[] = {16, 64, 256};
    int runs = quick ? 1 : 3;
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++) {
        int w = widths[i];
        if (quick && w > 64)
            break;
        double t[8], rt[8], c[8];
        for (int r = 0; r < runs; r++) {
            double c0 = cpu_all(), t0 = bench_now();
            mpx_graph_t *g = MPX_EZ(source(1000), mpx_as(w, &Pass, NULL), mpx_stage(&Sink, NULL));
            if (mpx_graph_join(g) != 0)
                fail(g, "wide");
            mpx_node_destroy(&g);
            t[r] = (bench_now() - t0) * 1e3 / w;
            c[r] = (cpu_all() - c0) * 1e3 / w;
            rt[r] = raw_chain_startup(w + 2, 1000) * 1e3 / (w + 2);
        }
        char extra[200];
        snprintf(extra, sizeof extra,
                 "\"workers\": %d, \"processes\": %d, \"items\": 1000, \"cpu_ms_per_worker\": %.2f, "
                 "\"baseline_shape\": \"a chain of %d, per process\"",
                 w, w + 2, bench_median(c, (size_t)runs), w + 2);
        bench_emit("wide", bench_median(t, (size_t)runs), "ms", bench_median(rt, (size_t)runs),
                   extra);
    }
}

/* ---- chunks: a light pass over a large shared array ------------------------ *
 * The sum of squares of 1 GiB of doubles (32 MiB with --quick) in memory
 * from mpx_shared_new: MPX_EZ(mpx_chunks(n, 0), mpx_as(2, SumSq)), each
 * worker writing its chunk's sum into the chunk's slot of a shared output
 * array (numbered by mpx_node_set_index), added up in the parent after
 * join.  Its speed-up over a single-process loop is set against that of
 * an OpenMP `parallel for` of 2 threads (bench/omp.c) over the same
 * array.  Whole runs are timed, start-up and exit included, as a user
 * would see them.  A third figure shows what processes cost whatever the
 * framework: two forked processes that split the array statically, with
 * no mpx at all (fork_split_x).  Threads share the parent's page tables;
 * a process maps every 4 KiB page of the array it reads anew (a fault per
 * 16 pages) and unmaps it at exit, which on this machine costs 40–50 ms
 * per 512 MiB.  Each repetition runs the loop, OpenMP, the fork split and
 * mpx back to back, and the speed-ups are taken within it. */

typedef struct sumsq_args {
    mpx_shared_t *in, *out; /* doubles; a double per chunk */
} sumsq_args_t;

/* The loop every contender runs (OpenMP's is the same under its pragma):
 * one add after another, as written; no -ffast-math reordering. */
static double sum_squares(const double *x, size_t first, size_t count)
{
    double s = 0;
    for (size_t i = first; i < first + count; i++)
        s += x[i] * x[i];
    return s;
}

static int sumsq_process(mpx_stage_t *st, mpx_item_t *it)
{
    const sumsq_args_t *a = mpx_args(st);
    int64_t first, count, k;
    if (mpx_item_get_i64(it, 0, &first) != 0 || mpx_item_get_i64(it, 1, &count) != 0 ||
        mpx_item_meta_i64(it, "mpx.index", &k) != 0)
        return mpx_fail(st, "not a numbered chunk");
    ((double *)mpx_shared_data(a->out))[k] =
        sum_squares(mpx_shared_data(a->in), (size_t)first, (size_t)count);
    return 0;
}
static const mpx_stage_def_t SumSq = {.name = "sum_sq", .args_size = sizeof(sumsq_args_t),
                                      .process = sumsq_process};

/* One mpx run; seconds from the first builder call to the end of join. */
static double chunks_mpx(sumsq_args_t *a, size_t n, int workers, double *sum)
{
    double t0 = bench_now();
    mpx_node_t *src = mpx_chunks(n, 0);
    if (!src || mpx_node_set_index(src, true) != 0)
        fail(src, "chunks: cannot number the chunks");
    mpx_graph_t *g = MPX_EZ(src, mpx_as(workers, &SumSq, a));
    if (mpx_graph_join(g) != 0)
        fail(g, "chunks");
    const double *out = mpx_shared_data(a->out);
    size_t size = mpx_chunks_size(n, 0), nchunks = n / size + (n % size != 0);
    double s = 0;
    for (size_t k = 0; k < nchunks; k++)
        s += out[k];
    double t = bench_now() - t0;
    mpx_node_destroy(&g);
    *sum = s;
    return t;
}

/* Seconds for `workers` forked processes to sum static shares of x[0, n)
 * into slots of `out` (shared), and the parent to add them up. */
static double fork_split(const double *x, size_t n, int workers, double *out, double *sum)
{
    double t0 = bench_now();
    pid_t pid[16];
    for (int w = 0; w < workers; w++) {
        size_t first = n / (size_t)workers * (size_t)w;
        size_t count = w + 1 < workers ? n / (size_t)workers : n - first;
        if ((pid[w] = fork()) == 0) {
            out[w] = sum_squares(x, first, count);
            _exit(0);
        }
        if (pid[w] < 0) {
            perror("mpx-bench: chunks: fork");
            exit(1);
        }
    }
    double s = 0;
    for (int w = 0; w < workers; w++) {
        int status;
        if (waitpid(pid[w], &status, 0) != pid[w] || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "mpx-bench: chunks: a forked worker failed\n");
            exit(1);
        }
        s += out[w];
    }
    *sum = s;
    return bench_now() - t0;
}

/* One line per kind of input memory: mpx_shared_new's (shared, faulted
 * in by each process that reads it) and mpx_shared_new_readonly's
 * (private, its page tables passed on by fork).  The loop, OpenMP and the
 * fork split read the same memory as mpx in each line. */
static void chunks_line(bool readonly)
{
    const int workers = 2;
    size_t bytes = quick ? (size_t)32 << 20 : (size_t)1 << 30, n = bytes / sizeof(double);
    size_t size = mpx_chunks_size(n, 0), nchunks = n / size + (n % size != 0);
    /* out: a slot per chunk, and per forked worker of the fork split. */
    size_t slots = nchunks > (size_t)workers ? nchunks : (size_t)workers;
    sumsq_args_t a = {readonly ? mpx_shared_new_readonly(bytes) : mpx_shared_new(bytes),
                      mpx_shared_new(slots * sizeof(double))};
    if (!a.in || !a.out) {
        perror("mpx-bench: chunks: mpx_shared_new");
        exit(1);
    }
    /* Every page is written here, before any timing: no contender pays
     * for first touches the others do not. */
    double *x = mpx_shared_data(a.in);
    for (size_t i = 0; i < n; i++)
        x[i] = (double)(i % 1000) * 1e-3;
    int r_max = quick ? 1 : 5;
    double up[8], oup[8], fup[8], t_mpx[8], t_omp[8], t_one[8];
    for (int r = 0; r < r_max; r++) {
        double t0 = bench_now();
        double s1 = sum_squares(x, 0, n);
        t_one[r] = bench_now() - t0;
        t0 = bench_now();
        double s2 = omp_sum_squares(x, n, workers);
        t_omp[r] = bench_now() - t0;
        double s3, s4;
        double t_fork = fork_split(x, n, workers, mpx_shared_data(a.out), &s4);
        t_mpx[r] = chunks_mpx(&a, n, workers, &s3);
        /* Four orders of additions: equal to far better than 1e-9. */
        if (!(fabs(s2 - s1) <= 1e-9 * s1 && fabs(s3 - s1) <= 1e-9 * s1 &&
              fabs(s4 - s1) <= 1e-9 * s1)) {
            fprintf(stderr, "mpx-bench: chunks: the sums differ: %.17g %.17g %.17g %.17g\n", s1,
                    s2, s3, s4);
            exit(1);
        }
        up[r] = t_one[r] / t_mpx[r];
        oup[r] = t_one[r] / t_omp[r];
        fup[r] = t_one[r] / t_fork;
    }
    mpx_shared_destroy(&a.in);
    mpx_shared_destroy(&a.out);
    char extra[300];
    snprintf(extra, sizeof extra,
             "\"memory\": \"%s\", \"workers\": %d, \"bytes\": %zu, \"chunks\": %zu, "
             "\"seconds\": %.4f, \"baseline_seconds\": %.4f, \"loop_seconds\": %.4f, "
             "\"fork_split_x\": %.4g",
             readonly ? "readonly" : "shared", workers, bytes, nchunks,
             bench_median(t_mpx, (size_t)r_max),
             bench_median(t_omp, (size_t)r_max), bench_median(t_one, (size_t)r_max),
             bench_median(fup, (size_t)r_max));
    bench_emit("chunks", bench_median(up, (size_t)r_max), "x", bench_median(oup, (size_t)r_max),
               extra);
}

static void chunks(void)
{
    chunks_line(false);
    chunks_line(true);
}

static const struct {
    const char *name;
    void (*fn)(void);
} benches[] = {
    {"small_items", small_items}, /* also prints "memory" */
    {"latency", latency},
    {"scaling", scaling},
    {"large_items", large_items},
    {"frames", frames},
    {"startup", startup},
    {"growth", growth}, /* prints "chain" and "parallel" */
    {"grain", grain},
    {"pool_map", pool_map},
    {"seq", seq},
    {"elastic", elastic}, /* prints "elastic" (a line per phase) and "elastic_lock" */
    {"pachinko", pachinko},
    {"wide", wide},
    {"chunks", chunks},
};

int main(int argc, char **argv)
{
    int first = 1;
    for (; first < argc && strncmp(argv[first], "--", 2) == 0; first++) {
        if (strcmp(argv[first], "--quick") == 0) {
            quick = true;
            reps = 1;
        } else if (strcmp(argv[first], "--decisions") == 0) {
            decisions = true;
        } else {
            fprintf(stderr, "mpx-bench: unknown option '%s'\n", argv[first]);
            return 2;
        }
    }
    size_t nb = sizeof benches / sizeof *benches;
    for (int a = first; a < argc; a++) {
        bool known = false;
        for (size_t i = 0; i < nb; i++)
            known |= strcmp(argv[a], benches[i].name) == 0;
        if (!known) {
            fprintf(stderr, "usage: mpx-bench [--quick] [--decisions] [BENCHMARK...]\nbenchmarks:");
            for (size_t i = 0; i < nb; i++)
                fprintf(stderr, " %s", benches[i].name);
            fprintf(stderr, "\nmpx-bench: no benchmark named '%s'\n", argv[a]);
            return 2;
        }
    }
    for (size_t i = 0; i < nb; i++) {
        bool wanted = first >= argc;
        for (int a = first; a < argc; a++)
            wanted |= strcmp(argv[a], benches[i].name) == 0;
        if (wanted)
            benches[i].fn();
    }
    return 0;
}
