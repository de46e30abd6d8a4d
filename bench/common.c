/* bench/common.c — see bench.h. */
#define _GNU_SOURCE
#include "bench.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_burn(double seconds)
{
    double end = thread_cpu() + seconds;
    /* The clock is read every few microseconds, not at every turn. */
    while (thread_cpu() < end)
        for (int i = 0; i < 10000; i++)
            __asm__ volatile("" ::: "memory");
}

uint64_t bench_spin(uint64_t turns, uint64_t seed)
{
    /* A chain of dependent multiply-adds: one turn takes the same few
     * cycles on every run, whatever the compiler does around it. */
    uint64_t x = seed | 1;
    for (uint64_t i = 0; i < turns; i++)
        x = x * 6364136223846793005u + 1442695040888963407u;
    return x;
}

double bench_spin_per_us(void)
{
    double v[5];
    uint64_t turns = 1000000, sink = 0;
    for (int k = 0; k < 5; k++) {
        double t0 = thread_cpu();
        sink += bench_spin(turns, (uint64_t)k);
        v[k] = (double)turns / ((thread_cpu() - t0) * 1e6);
    }
    __asm__ volatile("" ::"r"(sink));
    return bench_median(v, 5);
}

char *bench_mkdtemp(char *dir, size_t cap)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    int n = snprintf(dir, cap, "%s/mpx-bench-XXXXXX", tmp);
    if (n < 0 || (size_t)n >= cap)
        return NULL;
    return mkdtemp(dir);
}

long bench_private_kib(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f)
        return -1;
    char line[256];
    long sum = 0, v;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Private_Clean: %ld kB", &v) == 1 ||
            sscanf(line, "Private_Dirty: %ld kB", &v) == 1)
            sum += v;
    fclose(f);
    return sum;
}

double bench_children_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

double bench_children_switches(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)ru.ru_nvcsw + (double)ru.ru_nivcsw;
}

void bench_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(dir);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_percentile(double *v, size_t n, double p)
{
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

void bench_emit(const char *name, double value, const char *unit, double baseline,
                const char *extra)
{
    printf("{\"bench\": \"%s\", \"value\": %.6g, \"unit\": \"%s\", \"baseline\": %.6g, "
           "\"ratio\": %.4g%s%s}\n",
           name, value, unit, baseline, baseline != 0 ? value / baseline : 0.0,
           extra && *extra ? ", " : "", extra ? extra : "");
    fflush(stdout);
}
