/* tests/stages.h — small stages the tests share. */
#ifndef MPX_TESTS_STAGES_H
#define MPX_TESTS_STAGES_H

#include <stdint.h>

#include <mpx.h>

/* Source: puts start, start+1, ... (n items), each with meta "i" = value. */
typedef struct range_args {
    int64_t start, n;
} range_args_t;
extern const mpx_stage_def_t Range;
mpx_node_t *range_node(int64_t start, int64_t n);

/* Source: puts 0, 1, 2, ... until stopped. */
extern const mpx_stage_def_t Endless;

/* x -> x + 1 */
extern const mpx_stage_def_t Inc;

/* Takes every item, puts nothing. */
extern const mpx_stage_def_t Drop;

/* Forwards every item after spinning `*(long *)args` iterations. */
extern const mpx_stage_def_t Spin;

/* A well-mixed 64-bit hash of x (splitmix64's finalizer): pseudo-random
 * delays and choices that repeat from run to run. */
uint64_t test_mix(uint64_t x);

/* Sum of the i64 values of a graph's output; *count gets the number. */
int64_t drain_sum(mpx_graph_t *g, int64_t *count);

#endif
