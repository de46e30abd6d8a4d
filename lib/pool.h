/* lib/pool.h — a graph's shared-memory pool: blocks that every process of
 * the graph sees at the same address, handed between them by a handle.
 *
 * The parent makes the pool before it forks (a memfd mapped shared, so
 * nothing in the file system outlives the run); every stage process and
 * the parent use it.  Memory is committed (fallocate) as blocks are first
 * handed out, so a pool that cannot get memory gives an error, never a
 * SIGBUS on a page touched later.
 *
 * Holders.  A block is held by processes, each hold counted: a holder is
 * (slot, generation), slot being a stage instance's index in the plan (or
 * the parent's, POOL_PARENT_SLOT(ninst)), generation its incarnation.
 * Every change to a block's holders is one atomic compare-and-swap of one
 * word, so whatever instant a process dies at, its holds are exactly the
 * words that name it: pool_reclaim, run by the supervisor once the process
 * is gone, takes them away and frees what nobody holds any more.  A block
 * nobody holds is never held again (a hold is given only by a holder), so
 * "no holder" is final and freeing it cannot race with a new hold.  A
 * process drops only its own holds (pool_release's `who` is the caller);
 * a dead one's go with pool_reclaim.
 *
 * Handing a block to another process (a record sent on an edge) is: give
 * the receiver a hold (pool_hold for it), send, then drop one's own
 * (pool_release) unless the message is kept for sending again.  A hold
 * given to an incarnation that died meanwhile would never be dropped by
 * it: pool_hold checks, after giving it, whether that incarnation was
 * reclaimed, and takes it back if so (pool_reclaim marks the incarnation
 * dead before it looks at the blocks; see pool.c for why neither order of
 * the two can leave a hold behind).  A holder word keeps the low 8 bits of
 * the generation: one slot's incarnations must run one at a time, each
 * reclaimed before the next starts, with generations that grow by less
 * than 128 from one to the next (the supervisor's count by one does).
 *
 * Allocation takes a robust, process-shared mutex.  A process that dies
 * holding it leaves the next locker EOWNERDEAD: the allocator's free map
 * is rebuilt from the block headers, which are the truth and are written
 * so that every state of them between two instructions is one the
 * rebuild reads right.  The kernel marks the owner dead only if the
 * dying thread had registered its robust list: fork() does that (glibc),
 * a raw clone does not, and a process made so (the fork server's
 * replacements) must call set_robust_list with the list its parent's
 * thread had (get_robust_list before the clone), or its death inside
 * the allocator blocks every other process's allocations for good.
 *
 * Sizes.  The pool is cut into granules (POOL_GRANULE bytes); a block is a
 * run of granules.  A block has at most POOL_HOLDERS distinct holders at a
 * time (a broadcast to more branches than that copies); counts per holder
 * go to 2^32 - 1.
 */
#ifndef MPX_LIB_POOL_H
#define MPX_LIB_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POOL_GRANULE (64u * 1024u)
#define POOL_HOLDERS 8
/* The parent's slot, after every stage instance's. */
#define POOL_PARENT_SLOT(ninst) ((uint32_t)(ninst))
/* Largest slot a holder word can name. */
#define POOL_MAX_SLOT ((1u << 24) - 2)

typedef struct pool pool_t;

/* Who holds: a slot (stage instance, or the parent) and its incarnation. */
typedef struct pool_holder {
    uint32_t slot;
    uint32_t gen;
} pool_holder_t;

typedef struct pool_stats {
    uint64_t capacity;     /* bytes the pool can hand out */
    uint64_t bytes_in_use; /* in granules held by blocks */
    uint64_t blocks_in_use;
    uint64_t peak_bytes; /* most bytes in use at once */
    /* Bytes of block memory the pool has taken so far (never given back
     * before pool_destroy); its bookkeeping, 128 bytes a granule, was
     * taken at pool_new and is not counted. */
    uint64_t committed;
    /* Counts since the start: blocks allocated and freed, pool_wait
     * calls, and holds pool_reclaim dropped.  A process killed inside
     * the allocator may leave allocs or frees one short. */
    uint64_t allocs, frees, waits, reclaimed;
} pool_stats_t;

/* Make a pool of `bytes` (rounded up to granules) for `nslots` slots
 * (stage instances plus the parent); in the parent, before fork.  NULL
 * with the reason in err. */
pool_t *pool_new(size_t bytes, uint32_t nslots, char *err, size_t errcap);
/* Drop a reference (this process's: pool_new gives the first, pool_ref
 * another); the last unmaps and closes, in the parent after every stage
 * process is gone.  *p becomes NULL. */
void pool_destroy(pool_t **p);
/* Another reference to p, for what outlives its graph (a list of items
 * collected in place); returns p. */
pool_t *pool_ref(pool_t *p);
/* In a stage process after fork: nothing to attach, the mapping is
 * inherited; the descriptor is close-on-exec (Exec's commands never see
 * it). */

/* A new block of at least `size` bytes (size > 0), held once by `self`.
 * 0 with *blk set; POOL_FULL when the pool has no room now (pool_wait
 * for a free); MPX_ERANGE when size exceeds the whole pool; MPX_ENOMEM
 * when the system would not commit the memory; MPX_EINVAL. */
#define POOL_FULL 1
int pool_alloc(pool_t *p, pool_holder_t self, size_t size, uint32_t *blk);
/* One more hold of blk for `who` (the caller holds blk, and keeps it
 * until this returns).  0; MPX_ERANGE when the block has POOL_HOLDERS
 * other holders already (or who's count is at its limit); MPX_ESTOPPED
 * when `who` was reclaimed (dead): nothing was given; MPX_EINVAL. */
int pool_hold(pool_t *p, uint32_t blk, pool_holder_t who);
/* A hold for `who`, the caller, of a block it was sent a reference to by
 * `giver`, which keeps its own hold until `who` has confirmed the record
 * (lib/edge_in.c: a pair confirms from its first pooled message on).  `who` is not yet a
 * holder, so this is the one exception to "only a holder gives": the
 * giver's word, looked for after ours is given, stands for the giver,
 * and the epoch moved after it makes a free that read the words before
 * ours fail (pool.c).  0; MPX_ESTOPPED when the giver no longer holds it
 * (it died and was reclaimed: the reference is stale and nothing was
 * taken), whether the block was freed since or taken again; MPX_ERANGE,
 * MPX_EINVAL as pool_hold.  The hand-off is modelled in
 * lib/pool_handoff.pml. */
int pool_hold_if(pool_t *p, uint32_t blk, pool_holder_t who, pool_holder_t giver);
/* Drop one hold of `who`, the caller; the last hold frees the block.  0,
 * or MPX_EINVAL when `who` holds none of blk (a bug, or reclaimed). */
int pool_release(pool_t *p, uint32_t blk, pool_holder_t who);

/* Every hold of `dead` (an incarnation that is gone and will not run
 * again) is dropped and what nobody holds is freed; holds given to it
 * later are refused.  Also frees blocks left with no holder by a process
 * that died between dropping its last hold and freeing, and drops holds
 * given to an incarnation reclaimed before by a process that died before
 * it could take them back.  Returns the number of holds dropped.  In the
 * parent (any process could).  Time: one pass over the block headers
 * (128 bytes a granule): for a GiB of pool, 0.25 ms, 0.4 ms when it frees
 * thousands of blocks, 0.7 ms the first time a process reads them. */
uint64_t pool_reclaim(pool_t *p, pool_holder_t dead);

/* Where a block's bytes are, and how many it has (granules' worth);
 * NULL / 0 for a handle that does not name a live block (a malformed
 * message must not crash: check before use). */
void *pool_data(const pool_t *p, uint32_t blk);
size_t pool_block_size(const pool_t *p, uint32_t blk);
/* True when `who` holds blk at least once. */
bool pool_holds(const pool_t *p, uint32_t blk, pool_holder_t who);

/* Frees so far: what pool_wait waits to change. */
uint32_t pool_frees(const pool_t *p);
/* Wait until pool_frees() differs from `seen`, at most timeout_ms (-1: no
 * limit): 0 (also when a signal ended the wait early: the caller looks
 * again and decides), or MPX_ETIMEDOUT.  Counts a wait in the stats. */
int pool_wait(pool_t *p, uint32_t seen, int timeout_ms);

void pool_get_stats(const pool_t *p, pool_stats_t *out);

/* The block whose bytes start at `ptr`, or POOL_NONE when ptr is not the
 * start of a live block (NULL pool included): how the edges tell that a
 * part they are given lies in the pool and travels by reference. */
#define POOL_NONE UINT32_MAX
uint32_t pool_block_at(const pool_t *p, const void *ptr);

/* Whether block blk's only holds are one of `a` and one of `b` (a single
 * hold each, no other holder): a consumer (a) and the producer whose kept
 * record (b) it read the block from.  A hold is given only by a holder,
 * so once true it stays so until a or b changes it. */
bool pool_held_only_by(const pool_t *p, uint32_t blk, pool_holder_t a, pool_holder_t b);

/* For tests (tests/test_pool.c) only.  A process that asked for a crash
 * point kills itself with SIGKILL when it gets there: the points are
 * every step of the allocator, of a free, of a hold, and of the rebuild,
 * so that a test can check what every prefix of them leaves. */
enum pool_crash_point {
    POOL_CRASH_NONE,
    POOL_CRASH_ALLOC_LOCKED,    /* the lock taken, nothing written */
    POOL_CRASH_ALLOC_COMMITTED, /* memory committed, the mark not moved */
    POOL_CRASH_ALLOC_MAPPED,    /* the run's bits set in the free map */
    POOL_CRASH_ALLOC_HEADER,    /* size and holder written, still FREE */
    POOL_CRASH_ALLOC_HELD,      /* the header says HELD */
    POOL_CRASH_ALLOC_COUNTED,   /* the stats counted it, still locked */
    POOL_CRASH_ALLOC_UNLOCKED,  /* unlocked, the handle not returned */
    POOL_CRASH_RELEASE_DROPPED, /* the last hold dropped, not freed */
    POOL_CRASH_FREE_LOCKED,     /* the lock taken to free */
    POOL_CRASH_FREE_MARKED,     /* the header says FREEING */
    POOL_CRASH_FREE_UNMAPPED,   /* the run's bits cleared */
    POOL_CRASH_FREE_COUNTED,    /* the stats no longer count it */
    POOL_CRASH_FREE_DONE,       /* the header says FREE */
    POOL_CRASH_FREE_UNLOCKED,   /* unlocked, waiters not woken */
    POOL_CRASH_HOLD_GIVEN,      /* a holder word given, epoch not moved */
    POOL_CRASH_HOLD_BUMPED,     /* the epoch moved, dead-check not made */
    POOL_CRASH_HOLD_REFUSED,    /* `who` found reclaimed, not taken back */
    POOL_CRASH_REBUILD_START,   /* EOWNERDEAD seen, nothing rebuilt */
    POOL_CRASH_REBUILD_HALF,    /* FREEING blocks finished, map not rebuilt */
    POOL_CRASH_POINTS
};
void pool_test_crash_at(pool_t *p, int point);
/* Make the next commits fail as fallocate would with ENOSPC. */
void pool_test_fail_commit(pool_t *p, bool fail);
/* Take and drop the allocation lock (recovering it as pool_alloc does). */
int pool_test_lock(pool_t *p);
void pool_test_unlock(pool_t *p);
/* Under the lock: the free map, the counts and the headers agree, no
 * block is FREEING; with `quiet` (nobody else is using the pool) also no
 * block without a holder and no hold of a reclaimed incarnation.  0, or
 * -1 with what is wrong in why. */
int pool_test_check(pool_t *p, bool quiet, char *why, size_t cap);
/* How often a locker found the lock's owner dead and rebuilt. */
uint64_t pool_test_recoveries(const pool_t *p);

#endif
