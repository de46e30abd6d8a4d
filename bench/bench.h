/* bench/bench.h — what the benchmarks share: a clock, JSON lines, medians,
 * and removing a scratch directory. */
#ifndef MPX_BENCH_H
#define MPX_BENCH_H

#include <stdbool.h>
#include <stddef.h>

double bench_now(void); /* seconds, monotonic */
/* CPU seconds (user + system) of this process's reaped children so far. */
double bench_children_cpu(void);
/* Context switches of this process's reaped children so far. */
double bench_children_switches(void);
void bench_rmdir(const char *dir);
double bench_median(double *v, size_t n); /* sorts v */
double bench_percentile(double *v, size_t n, double p); /* v sorted */

/* One JSON line: {"bench": name, "value": v, "unit": unit, "baseline": b,
 * "ratio": v/b, <extra>} where extra is either "" or `"key": value, ...`. */
void bench_emit(const char *name, double value, const char *unit, double baseline,
                const char *extra);

#endif
