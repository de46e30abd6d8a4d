/* bench/omp.c — see omp.h.  The loop is what a C programmer writes with
 * OpenMP: one pragma over the plain loop, the same loop as the
 * single-process one in mpx_bench.c. */
#include "omp.h"

double omp_sum_squares(const double *x, size_t n, int threads)
{
    double s = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : s)
    for (size_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return s;
}
