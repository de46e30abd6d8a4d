/* bench/bench.h — what the benchmarks share: a clock, JSON lines, medians,
 * and removing a scratch directory. */
#ifndef MPX_BENCH_H
#define MPX_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

double bench_now(void); /* seconds, monotonic */
/* CPU seconds (user + system) of this process's reaped children so far. */
double bench_children_cpu(void);
/* Context switches of this process's reaped children so far. */
double bench_children_switches(void);
void bench_rmdir(const char *dir);
/* A new private directory "$TMPDIR/mpx-bench-XXXXXX" (TMPDIR unset: /tmp)
 * for a baseline's sockets, written to dir; NULL on failure. */
char *bench_mkdtemp(char *dir, size_t cap);
/* This process's private memory in KiB (pages no other process maps:
 * what it really costs), from /proc/self/smaps_rollup; -1 if unknown. */
long bench_private_kib(void);
/* Keep the CPU busy until this thread has used `seconds` of CPU time.
 * Measured in CPU time, not in loop iterations: the speed of this
 * machine's CPUs drifts (other guests on the host), and the work of an
 * item should not. */
void bench_burn(double seconds);
/* Work of a fixed size for fine grains, where reading a CPU clock per item
 * would cost as much as the work: bench_spin(n) turns a loop n times and
 * returns a value that depends on every turn (so it cannot be optimised
 * away); bench_spin_per_us() measures how many turns take a microsecond of
 * CPU on this machine now (median of a few tries). */
uint64_t bench_spin(uint64_t turns, uint64_t seed);
double bench_spin_per_us(void);
double bench_median(double *v, size_t n); /* sorts v */
double bench_percentile(double *v, size_t n, double p); /* v sorted */

/* One JSON line: {"bench": name, "value": v, "unit": unit, "baseline": b,
 * "ratio": v/b, <extra>} where extra is either "" or `"key": value, ...`. */
void bench_emit(const char *name, double value, const char *unit, double baseline,
                const char *extra);

#endif
