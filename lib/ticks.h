/* lib/ticks.h — a cheap monotonic counter for the hot path's "how long
 * since" questions.  On x86-64 it is the TSC (about 10 ns to read here,
 * against 23 ns for clock_gettime); thresholds assume about 3 ticks per ns,
 * which is right within a factor of two on any current CPU, enough for
 * deciding when to flush a batch. */
#ifndef MPX_LIB_TICKS_H
#define MPX_LIB_TICKS_H

#include <stdint.h>
#include <time.h>

/* Milliseconds of CLOCK_MONOTONIC, for deadlines off the hot path. */
static inline long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static inline uint64_t ticks_now(void) { return __rdtsc(); }
#define TICKS_PER_US 3000u
#else
static inline uint64_t ticks_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#define TICKS_PER_US 1000u
#endif

#define TICKS_US(us) ((uint64_t)(us) * TICKS_PER_US)

#endif
