/* mpx/shared.h — memory that every stage process and the parent see at
 * the same address: a zeroed array (mpx_shared_new) or a file
 * (mpx_shared_map), for a parallel group that works on one large array in
 * place (what mpaio does for Python).
 *
 * Make it in the parent before the graph starts and hand the pointer to
 * stages through their args.  Every stage process inherits the mapping
 * when it is forked, at the same address as in the parent, so the bytes
 * one process writes are the bytes every other one reads: nothing is
 * copied, nothing crosses an edge.  A pointer into the memory means the
 * same in every process of the graph, so it may even be stored inside
 * it.  Memory made after mpx_graph_start() is not seen by that graph's
 * stages.
 *
 *     typedef struct { mpx_shared_t *in, *out; } sq_args;
 *     static int sq_process(mpx_stage_t *st, mpx_item_t *it) {   // a worker
 *         const sq_args *a = mpx_args(st);
 *         const double *x = mpx_shared_data(a->in);
 *         double *y = mpx_shared_data(a->out);
 *         int64_t first, count;
 *         if (mpx_item_get_i64(it, 0, &first) != 0 || mpx_item_get_i64(it, 1, &count) != 0)
 *             return mpx_fail(st, "not a chunk");
 *         for (int64_t i = first; i < first + count; i++)
 *             y[i] = x[i] * x[i];                                  // in place, no copy
 *         return 0;
 *     }
 *     static const mpx_stage_def_t Square = {
 *         .name = "square", .args_size = sizeof(sq_args), .process = sq_process};
 *     ...
 *     mpx_shared_t *in = mpx_shared_new(n * sizeof(double));   // fill it here
 *     mpx_shared_t *out = mpx_shared_new(n * sizeof(double));
 *     int rc = mpx_run(MPX_EZ(mpx_chunks(n, 0),
 *                             mpx_as(4, &Square, &(sq_args){in, out})));
 *     ...read out here, then:
 *     mpx_shared_destroy(&in);
 *     mpx_shared_destroy(&out);
 *
 * Writers.  Nothing orders the writes of two processes to the same bytes:
 * give each worker its own part (mpx_chunks hands out disjoint ranges), or
 * use atomic operations.  What the stages wrote is all there for the
 * parent once mpx_graph_join() has returned (every stage process has then
 * exited); while the graph runs, a write reaches another process with no
 * promise of when, as between threads without a lock.  A worker replaced
 * after it died (mpx_node_set_retries) sees the same memory, and the
 * chunk it died on is handed out again, possibly after part of it was
 * written: a worker that writes its results to places of their own (y[i],
 * a slot per chunk) gives the same output either way; one that adds into
 * a shared total would count that chunk twice.
 *
 * Lifetime.  Destroy it after join: the parent's view is gone at destroy
 * (reading it after is a use after free), while each stage process keeps
 * its own until it exits, and the memory is given back when the last
 * process lets go.  Only the process that made an mpx_shared_t destroys
 * it; stages only read mpx_shared_data and mpx_shared_size.  A command a
 * stage runs (mpx_exec, exec*) does not see it.
 *
 * Memory use.  A page of it counts in the resident size (RSS, as "shmem")
 * of every process that touched it, but exists once: add up private
 * memory per process, and shared memory once (/proc/PID/smaps_rollup:
 * Rss minus Shared_*; or Pss, which splits each shared page among its
 * users).
 */
#ifndef MPX_SHARED_H
#define MPX_SHARED_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_shared mpx_shared_t;

/* `bytes` of zeroed memory shared by this process and every process it
 * forks afterwards (an anonymous shared mapping: nothing is made in any
 * file system, so nothing can outlive the program).  The data is
 * page-aligned, so it suits any element type.  The whole size is charged
 * to the system's commit limit here, as malloc's memory is: under strict
 * overcommit (vm.overcommit_memory = 2) a size beyond what is left fails
 * here with ENOMEM, under the default heuristic a size beyond RAM and
 * swap does.  Pages are then filled in as they are first touched; running
 * out of memory later is the OOM killer's business as for any memory,
 * never a SIGBUS (which is what shared memory charged only when touched
 * gives: a memfd, or /dev/shm when full).  bytes 0 gives a valid object
 * of size 0 whose data is NULL (so that an empty array needs no special
 * case; mpx_chunks(0, ...) puts nothing).
 * NULL with errno set on failure: ENOMEM (too large, or out of memory). */
MPX_MUST_CHECK mpx_shared_t *mpx_shared_new(size_t bytes);

/* `bytes` of zeroed memory for input that stages only read: the parent
 * fills it before mpx_graph_start(), and every stage process sees it as
 * it was when the process was forked.  For a graph's stages, their
 * replacements and elastic joiners (forked from the fork server, which is
 * forked at start) that is its content at the graph's start; a
 * replacement the parent has to fork itself, when the fork server cannot
 * make it (it failed to start, or clone was refused), sees the parent's
 * memory as it is then.  In a stage
 * process it is read-only: a write is a SIGSEGV, which ends the run as a
 * crash (MPX_ECRASH) naming the stage.  The parent may write to it
 * afterwards; the stages do not see that (it is copied on write), and
 * neither does a graph started later by a fork that already happened.
 *
 * Why it exists: it is private memory, so a forked process inherits the
 * parent's page tables and reads without a fault of its own, in 2 MiB
 * pages where the system gives them to private memory (transparent huge
 * pages "always" or "madvise", the usual settings), which fork passes on
 * as one entry per 2 MiB.  mpx_shared_new's memory is faulted in again by
 * every process that reads it (fork copies no page table of shared
 * memory), a 4 KiB page at a time where huge pages are not allowed for
 * shared memory (shmem_enabled "never", the kernel's default): a light
 * pass over 1 GiB by two processes gained 1.2-1.3x over one process with
 * that memory on the machine mpx is measured on, and 1.8-1.95x with this.
 *
 * Charged to the commit limit as mpx_shared_new is here, and again in
 * every process forked while it exists (each stage, and the fork server)
 * for as long as that process lives: Linux does not give a private
 * mapping's charge back when it is made read-only.  Under strict
 * overcommit (vm.overcommit_memory = 2) a graph of N stages needs N + 2
 * times its size, and a start may fail where mpx_shared_new's memory,
 * charged once, would not.  bytes 0 gives a valid object of size
 * 0 whose data is NULL.  NULL with errno set on failure (ENOMEM).  Destroy
 * it with mpx_shared_destroy, after join. */
MPX_MUST_CHECK mpx_shared_t *mpx_shared_new_readonly(size_t bytes);

/* The regular file at `path`, mapped shared: read-only (PROT_READ; a
 * write into it is a SIGSEGV) or, when `writable`, read and write (the
 * file must be open for writing to this user).  Its size is the file's
 * size now: bytes written by anyone into the file show through the
 * mapping, and the process's writes reach the file — at once for every
 * reader of the file (read(2) sees them: it is the same page cache), and
 * the disk when the kernel writes back (msync or fsync for durability, as
 * after write(2)).  Growing the file does not grow the mapping.
 *
 * An empty file gives a valid object of size 0 whose data is NULL.
 *
 * A file that shrinks while mapped is a trap: reading or writing a page
 * past its new end raises SIGBUS in whichever process touches it (a stage
 * then dies and the run fails with MPX_ECRASH naming the signal; the
 * parent dies).  Map only files that nothing truncates meanwhile — not a
 * log that is rotated, not a file another program rewrites in place —
 * or copy the file into mpx_shared_new memory.
 *
 * NULL with errno set on failure: EINVAL (path NULL or empty, or not a
 * regular file), EISDIR (a directory), EFBIG (larger than the address
 * space), or the error of open, fstat or mmap (ENOENT, EACCES, ENOMEM...).
 * The file is not kept open. */
MPX_MUST_CHECK mpx_shared_t *mpx_shared_map(const char *path, bool writable);

/* The first byte (NULL when the size is 0, or s NULL). */
void *mpx_shared_data(mpx_shared_t *s);
/* Its size in bytes (0 for s NULL). */
size_t mpx_shared_size(const mpx_shared_t *s);

/* Unmap this process's view and free the object; sets *s to NULL (NULL
 * and *s NULL are fine).  After mpx_graph_join() of every graph that uses
 * it (see Lifetime above). */
void mpx_shared_destroy(mpx_shared_t **s);

#ifdef __cplusplus
}
#endif
#endif
