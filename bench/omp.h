/* bench/omp.h — the OpenMP baseline of the chunks benchmark, in a file of
 * its own: only omp.c is compiled with -fopenmp, so that no other figure
 * of mpx-bench comes from code built differently. */
#ifndef MPX_BENCH_OMP_H
#define MPX_BENCH_OMP_H

#include <stddef.h>

/* The sum of x[i]^2 over [0, n) by an OpenMP `parallel for` of `threads`
 * threads (static schedule, a reduction). */
double omp_sum_squares(const double *x, size_t n, int threads);

#endif
