/* bench/raw.h — the baselines: what hand-written libzmq code does on this
 * machine, measured in the same run as mpx.  Processes are forked as mpx
 * forks them (no zmq context before fork), talk over ipc:// in a private
 * directory, and a stream's end is acknowledged before anyone exits. */
#ifndef MPX_BENCH_RAW_H
#define MPX_BENCH_RAW_H

#include <stddef.h>
#include <stdint.h>

typedef struct raw_result {
    double seconds;    /* first send to acknowledged end */
    long rss_kib;      /* peak RSS of the receiving process */
    long private_kib;  /* its private memory at the end (bench_private_kib) */
} raw_result_t;

/* n messages of `size` bytes, PUSH -> PULL, one edge. */
raw_result_t raw_stream(uint64_t n, size_t size);

/* raw_stream in a process of its own whose malloc keeps `keep` bytes of
 * freed heap and serves blocks up to 32 MiB from it, as an mpx stage
 * process does (lib/child.c, keep_heap): what hand-written code tuned the
 * same way gets.  Seconds, as raw_stream's. */
double raw_stream_heap_kept(uint64_t n, size_t size, size_t keep);

/* n round trips of 8 bytes, REQ <-> REP; fills rtt_us[n]. */
void raw_pingpong(uint64_t n, double *rtt_us);

/* A chain of `procs` processes relaying `n` small messages, from the first
 * fork until every process has exited. */
double raw_chain_startup(int procs, uint64_t n);

/* A farm: the parent PUSHes n tasks to `workers` processes (zmq deals
 * them round robin), each burns `work` CPU seconds per task (bench_burn)
 * and PUSHes a result to the parent.  Seconds from the first task to the
 * last result. */
double raw_farm(int workers, uint64_t n, double work);

/* `workers` forked processes split items 0..n-1 statically (worker k takes
 * a contiguous share) and each applies bench_spin(turns, i) to its items:
 * the best a parallel map can do without moving items at all.  Seconds
 * from the first fork to the last exit; the sum of the results goes to
 * *sum. */
double raw_split(int workers, uint64_t n, uint64_t turns, uint64_t *sum);

/* The same map as hand-written pipelining code would move its items: a
 * forked source writes items 0..n-1 in batches of RAW_PIPE_BATCH (8 bytes
 * each; fewer when that would leave a worker less than sixteen batches)
 * round robin to `workers` forked processes over unix socket pairs,
 * each worker writes bench_spin(turns, i) for each item in batches as
 * large to the caller, which reads and adds them up (poll over the
 * workers' sockets).  Blocking writes are the flow control; no
 * acknowledgements, no recovery, no meta.  Seconds from the first fork
 * to the last exit; the sum to *sum.  What moving every item through a
 * source and the program costs on this machine, whatever the library. */
#define RAW_PIPE_BATCH 1024
double raw_pipeline(int workers, uint64_t n, uint64_t turns, uint64_t *sum);

#endif
