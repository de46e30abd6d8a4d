/* examples/monitor_demo.c — a pipeline to watch with mpx-top.  A source
 * counts 1, 2, 3, ... for about --seconds; N workers spend a millisecond
 * of CPU on each number; a tally at the end is slower than the workers
 * together (from three of them on), so the queues in front of it fill up
 * and the workers wait for room, which is what a monitor is for.  Every
 * thousandth item, a worker reports how long the work took to a side
 * graph (xcut "log") whose one stage sums the reports up.
 *
 *     monitor_demo [--workers N] [--elastic MAX] [--seconds S] [--dot]
 *
 *     numbers ──▶ work ×N ──▶ tally ──▶ "processed N items" on stdout
 *                   └─ every 1000th ─▶ xcut "log": logger ──▶ stderr
 *
 * Watch it from another terminal with the command it prints on stderr
 * (mpx-top PID).  --elastic MAX lets mpx size the workers from N up to
 * MAX while it runs (mpx_node_set_elastic): mpx-top's header then shows
 * the budget and the controller's last decision.  --dot prints the graph
 * in Graphviz DOT and exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <mpx.h>

#define WORK_SECONDS 0.001
#define TALLY_SECONDS 0.0005
#define REPORT_EVERY 1000
/* Queues short enough to drain within a second of the source's end, long
 * enough to be seen filling. */
#define QUEUE_ITEMS 256

static double clock_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Spend `seconds` of this thread's CPU time stirring x, so that the work
 * has a result and is not optimised away. */
static uint64_t burn(double seconds, uint64_t x)
{
    double end = clock_s(CLOCK_THREAD_CPUTIME_ID) + seconds;
    do
        for (int i = 0; i < 1000; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    while (clock_s(CLOCK_THREAD_CPUTIME_ID) < end);
    return x;
}

/* ---- numbers: 1, 2, 3, ... until the time is up ------------------------ */

typedef struct numbers_ctx {
    double seconds;
    double deadline; /* set by the first call, in the source's process */
    int64_t value;
} numbers_ctx;

static int numbers_next(void *ctx, mpx_part_t *item)
{
    numbers_ctx *c = ctx;
    double now = clock_s(CLOCK_MONOTONIC);
    if (c->deadline == 0)
        c->deadline = now + c->seconds;
    else if (now >= c->deadline)
        return 0;
    c->value++;
    *item = (mpx_part_t){&c->value, sizeof c->value};
    return 1;
}

/* ---- work: a millisecond of CPU per item --------------------------------- */

static int work_process(mpx_stage_t *st, mpx_item_t *item)
{
    int64_t x = mpx_item_i64(item);
    double t0 = clock_s(CLOCK_MONOTONIC);
    int64_t y = (int64_t)(burn(WORK_SECONDS, (uint64_t)x | 1) >> 1);
    if (x % REPORT_EVERY == 0) {
        /* Wall time: with more processes than cores it exceeds the CPU time. */
        double took = clock_s(CLOCK_MONOTONIC) - t0;
        int rc = mpx_put_to(st, "log", &took, sizeof took);
        if (rc != 0)
            return rc;
    }
    return mpx_put_i64(st, y);
}

static const mpx_stage_def_t Work = {.name = "work", .process = work_process};

/* ---- tally: counts what arrives, slowly ----------------------------------- */

static int tally_process(mpx_stage_t *st, mpx_item_t *item)
{
    int64_t *n = mpx_state(st);
    burn(TALLY_SECONDS, (uint64_t)mpx_item_i64(item));
    ++*n;
    return 0;
}

static int tally_teardown(mpx_stage_t *st)
{
    return mpx_put_i64(st, *(int64_t *)mpx_state(st));
}

static const mpx_stage_def_t Tally = {
    .name = "tally",
    .state_size = sizeof(int64_t),
    .process = tally_process,
    .teardown = tally_teardown,
};

/* ---- logger: the side graph every worker reports to ----------------------- */

typedef struct logger_state {
    double sum;
    long n;
} logger_state;

static int logger_process(mpx_stage_t *st, mpx_item_t *item)
{
    logger_state *s = mpx_state(st);
    s->sum += mpx_item_f64(item);
    s->n++;
    return 0;
}

static int logger_teardown(mpx_stage_t *st)
{
    const logger_state *s = mpx_state(st);
    if (s->n)
        fprintf(stderr, "monitor_demo: work took %.2f ms per item (mean of %ld samples)\n",
                1000 * s->sum / (double)s->n, s->n);
    return 0;
}

static const mpx_stage_def_t Logger = {
    .name = "logger",
    .state_size = sizeof(logger_state),
    .process = logger_process,
    .teardown = logger_teardown,
};

/* ---- main ------------------------------------------------------------------ */

static mpx_graph_t *demo_graph(int workers, int elastic_max, numbers_ctx *numbers)
{
    mpx_node_t *work = mpx_as(workers, &Work, NULL);
    if (work && elastic_max > 0 && mpx_node_set_elastic(work, workers, elastic_max) != 0)
        mpx_node_destroy(&work);
    mpx_graph_t *g = work ? MPX_EZ(mpx_iter_fn("numbers", numbers_next, numbers), work,
                                   mpx_stage(&Tally, NULL))
                          : NULL;
    mpx_graph_t *log = mpx_stage(&Logger, NULL);
    if (!g || !log || mpx_node_set_name(g, "monitor_demo") != 0 ||
        mpx_node_set_capacity(g, QUEUE_ITEMS, 0) != 0 || mpx_graph_xcut(g, "log", log) != 0) {
        mpx_node_destroy(&g);
        mpx_node_destroy(&log);
        return NULL;
    }
    return g;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: monitor_demo [--workers N] [--elastic MAX] [--seconds S] [--dot]\n"
               "Run a pipeline for about S seconds (default 20) with N workers (default 3)\n"
               "for mpx-top to watch, then print how many items it processed.\n"
               "--elastic lets mpx run from N up to MAX workers as it sees fit.\n"
               "--dot prints the graph in Graphviz DOT instead.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"workers", required_argument, NULL, 'w'},
        {"seconds", required_argument, NULL, 's'},
        {"elastic", required_argument, NULL, 'e'},
        {"dot", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long workers = 3, elastic_max = 0;
    bool dot = false;
    numbers_ctx numbers = {.seconds = 20};
    for (int opt; (opt = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        char *end;
        errno = 0;
        switch (opt) {
        case 'w':
            workers = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || workers < 1 || workers > 256) {
                fprintf(stderr, "monitor_demo: --workers wants a count from 1 to 256\n");
                return EXIT_FAILURE;
            }
            break;
        case 's':
            numbers.seconds = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(numbers.seconds > 0 && numbers.seconds <= 86400)) {
                fprintf(stderr, "monitor_demo: --seconds wants a duration from 0 to 86400\n");
                return EXIT_FAILURE;
            }
            break;
        case 'e':
            elastic_max = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || elastic_max < 1 || elastic_max > 256) {
                fprintf(stderr, "monitor_demo: --elastic wants a count from 1 to 256\n");
                return EXIT_FAILURE;
            }
            break;
        case 'd': dot = true; break;
        case 'h': usage(stdout); return EXIT_SUCCESS;
        default: usage(stderr); return EXIT_FAILURE;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return EXIT_FAILURE;
    }
    if (elastic_max > 0 && elastic_max < workers) {
        fprintf(stderr, "monitor_demo: --elastic %ld is fewer than the %ld workers to start with\n",
                elastic_max, workers);
        return EXIT_FAILURE;
    }

    mpx_graph_t *g = demo_graph((int)workers, (int)elastic_max, &numbers);
    if (!g) {
        fprintf(stderr, "monitor_demo: out of memory\n");
        return EXIT_FAILURE;
    }
    if (dot) {
        int rc = mpx_graph_write_dot(g, stdout);
        if (rc != 0)
            fprintf(stderr, "monitor_demo: cannot write the graph: %s\n", mpx_strerror(rc));
        mpx_node_destroy(&g);
        return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    }

    int rc = mpx_graph_start(g);
    if (rc == 0) {
        fprintf(stderr, "monitor_demo: running for %g s in %s; watch it with: mpx-top %ld\n",
                numbers.seconds, mpx_graph_runtime_dir(g), (long)getpid());
        /* One item leaves the graph: the tally's count.  Waiting for it here
         * is also what keeps the figures flowing to mpx-top. */
        int64_t processed = 0;
        for (mpx_item_t *it; (it = mpx_graph_next(g));)
            processed = mpx_item_i64(it);
        rc = mpx_graph_join(g);
        if (rc == 0)
            printf("processed %lld items\n", (long long)processed);
    }
    if (rc != 0)
        fprintf(stderr, "monitor_demo: %s\n", mpx_graph_error(g));
    mpx_node_destroy(&g);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
