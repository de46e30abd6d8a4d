/* lib/pool.c — the graph's shared-memory pool (see pool.h): one memfd,
 * cut into a control area and granules of data, and the protocol that
 * lets any process of the graph die at any instant without leaking a
 * block or freeing one that is still held.  lib/pool.pml models the
 * holder protocol; tests/test_pool.c kills processes at every step.
 *
 * Layout of the memfd, mapped MAP_SHARED once before fork (offsets are
 * the same in every process, and so are the addresses):
 *
 *   control   struct pool_ctl: the robust mutex, the counts, the futex
 *   map       one bit a granule, set when a block covers it (the lock's)
 *   dead      a slot's last reclaimed generation + 1 (0: none yet)
 *   headers   struct pool_hdr, one a granule: a block's is its first
 *             granule's, the others' stay FREE
 *   data      the granules, from a granule-aligned offset
 *
 * The control part is committed (fallocate) at pool_new; the data part as
 * blocks first reach it, under the lock, up to a mark that only grows.
 *
 * A header's state word holds the state (FREE, HELD, FREEING) in its low
 * two bits and an epoch above them.  The epoch grows at every change of
 * the block's life (allocation, FREEING, FREE) and at every hold given, so
 * a state word's value is never seen twice: a compare-and-swap from a
 * value read earlier fails if anything of those happened in between.
 *
 * Holder words, 64 bits: slot + 1 (24 bits) | generation & 0xff (8) |
 * count (32).  0 is an empty word; a word naming a holder has a count of
 * at least 1 (the decrement from 1 writes 0).  Only CAS changes them.
 *
 * Allocation: first fit over the free map, from a hint below which no
 * granule is free, word by word (64 granules at a time where the map is
 * full).  First fit, not next fit: memory is committed where blocks
 * first go, and a next-fit cursor would walk every block over the whole
 * pool, committing all of it for a pipeline that uses a tenth; first fit
 * keeps the committed part near the largest use.  Worst case, one pass
 * over the map: ngran/64 words plus one step per free run, under the
 * lock (16384 granules a GiB: 256 words).
 *
 * WHY FREEING IS SAFE.  A block is freed by whoever sees no holder: the
 * last releaser, a holder taking back a refused hold, or pool_reclaim.
 * Seeing "no holder" takes several reads (one a word), and a hold can move
 * between words while they are read: a holder G gives R a hold in a word
 * already read as empty, then drops its own from a word not read yet.  So
 * the freer (try_free, under the lock) reads the state word first (s1),
 * then every holder word, and frees only by CAS of the state from s1 to
 * FREEING.  Givers move the epoch after giving (pool_hold), and
 * pool_reclaim moves it before it clears a dead holder's word.  Suppose
 * the CAS succeeds at t2, s1 read at t1, yet some word is nonzero at t2.
 * The freer read that word as 0 at some time in (t1, t2), so a give filled
 * it after: by a giver G holding the block then, whose epoch move comes
 * after t2 (none happened in (t1, t2)).  G's own word was read as 0 too.
 * If it was read after G's give, something emptied it in between: not G's
 * release (G releases only after its epoch move), not pool_reclaim of G
 * (G died after its give, so the reclaim's epoch move precedes its clear
 * and falls in (t1, t2)).  If it was read before, G's hold was itself
 * given in (t1, t2) by another holder: the same argument again, about an
 * earlier give; the chain is finite, so a contradiction: at t2 no word is
 * nonzero.  (pool_reclaim also takes the lock once before it looks at the
 * blocks, to recover a dead owner; that alone would put its clears after
 * any free under way.  The epoch keeps the argument from resting on it:
 * lib/pool.pml checks the epoch alone too, with LOCK_LATE.)  And no holder is final:
 * holds are given only by holders (the caller of pool_hold holds the
 * block), and released only by their own holder or by pool_reclaim once
 * it is dead.  A process dropping someone else's live hold would break
 * the argument: pool.h forbids it.  pool_release looks at the words
 * before it takes the lock, only to skip the lock when someone else still
 * holds; try_free looks again.
 *
 * WHY NO HOLD OUTLIVES A DEAD INCARNATION.  pool_hold (H1) gives, then
 * (H2) reads the dead table; pool_reclaim (R1) marks the incarnation dead
 * in the table, then (R2) reads every holder word.  All four are seq_cst,
 * so they have one total order.  If H2 comes before R1, H1 does too, and
 * R2 reads the word H1 wrote (or what followed it) and clears it.  If R1
 * comes before H2, H2 sees the mark and pool_hold takes its hold back.
 * Both may happen; then the take-back finds nothing, which is fine.  One
 * case is left: the giver dies between H1 and its take-back.  Its own
 * reclaim then clears the hold: pool_reclaim clears every word naming an
 * incarnation the table says is dead, not only `dead`'s (the 8 bits of
 * generation in a word are read against the table as pool.h says).
 *
 * THE LOCK AND A DEAD OWNER.  The mutex is robust: a locker that gets
 * EOWNERDEAD rebuilds the free map and the counts from the headers, then
 * marks the mutex consistent (dying in the rebuild leaves EOWNERDEAD for
 * the next).  The headers are written so that the rebuild reads any
 * prefix of an allocation or a free right:
 *   allocation: map bits, then ngran, size and the holder word {self, 1},
 *     then the state HELD.  Before HELD the header is FREE: the rebuild
 *     clears the bits.  From HELD on, the block is the dead allocator's
 *     and pool_reclaim frees it (its holder word names it).
 *   free: CAS HELD -> FREEING, map bits cleared, counts, state FREE.  A
 *     block is FREEING only while its freer holds the lock, so a FREEING
 *     block seen by the rebuild was being freed by the dead owner: the
 *     rebuild finishes the free.
 * The committed mark moves after fallocate succeeded: a prefix leaves it
 * low, and the next allocation commits the same range again, harmlessly.
 */
#define _GNU_SOURCE
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mpx/error.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

#define POOL_MAGIC 0x6d70782d706f6f6cULL /* "mpx-pool" */
/* Handles are granule indexes; this keeps every offset in 64 bits and
 * leaves UINT32_MAX free as a handle that never names a block. */
#define MAX_GRANULES (1u << 30)

enum { ST_FREE = 0, ST_HELD = 1, ST_FREEING = 2, ST_MASK = 3 };
#define EPOCH_ONE ((uint64_t)4)

#define H_COUNT ((uint64_t)0xffffffffu)
#define H_GEN_SHIFT 32
#define H_SLOT_SHIFT 40

struct pool_hdr {
    _Atomic uint64_t state;
    _Atomic uint32_t ngran;
    uint32_t pad_;
    _Atomic uint64_t size; /* as asked for; the block has ngran granules */
    _Atomic uint64_t holders[POOL_HOLDERS];
    /* 128 bytes: a header's state and first holder words share one cache
     * line, and no two headers share one. */
    char pad2_[128 - 24 - 8 * POOL_HOLDERS];
};
_Static_assert(sizeof(struct pool_hdr) == 128, "header size");

struct pool_ctl {
    uint64_t magic;
    uint32_t ngran, nslots;
    pthread_mutex_t lock;
    /* Written under the lock, read anywhere. */
    _Atomic uint32_t committed; /* data granules committed, from 0 */
    _Atomic uint32_t hint;      /* no granule below it is free */
    _Atomic uint64_t bytes_in_use, blocks_in_use, peak_bytes, allocs, frees_total;
    _Atomic uint64_t recoveries;
    /* Anywhere. */
    _Atomic uint64_t waits, reclaimed;
    /* Bumped at every free: what pool_wait sleeps on (a futex shared
     * between processes: FUTEX_WAIT without FUTEX_PRIVATE_FLAG). */
    _Alignas(64) _Atomic uint32_t frees;
    _Atomic uint32_t waiters; /* in pool_wait now (a dead one stays counted) */
};

struct pool {
    int fd;
    uint8_t *base;
    size_t len; /* of the mapping */
    uint32_t ngran, nslots; /* this process's copies: never read from shared memory */
    size_t data_off;
    struct pool_ctl *ctl;
    uint64_t *map;
    _Atomic uint64_t *dead;
    struct pool_hdr *hdr;
    uint8_t *data;
    int refs; /* this process's references (pool_ref, pool_destroy) */
    /* Test hooks (process-local). */
    int crash_at;
    bool fail_commit;
};

static inline void crash_point(const pool_t *p, int point)
{
    if (__builtin_expect(p->crash_at == point, 0))
        kill(getpid(), SIGKILL);
}

static size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

/* The counts, the hint and the committed mark are written only under the
 * lock, and read outside it only for stats: relaxed.  A new header's
 * fields are written relaxed too, before the seq_cst store of its state
 * that publishes them (a seq_cst load that sees HELD sees them).  A
 * seq_cst store is an xchg on x86: with all of them seq_cst an
 * alloc+release pair cost 138 ns here, 67 ns so. */
#define SET(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)
#define GET(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* ---- holder words ---- */

static inline uint64_t h_name(pool_holder_t w)
{
    return ((uint64_t)(w.slot + 1) << H_SLOT_SHIFT) | ((uint64_t)(w.gen & 0xffu) << H_GEN_SHIFT);
}

static inline bool h_names(uint64_t w, uint64_t name) { return w != 0 && (w & ~H_COUNT) == name; }

static inline bool holder_ok(const pool_t *p, pool_holder_t w) { return w.slot < p->nslots; }

/* A word names an incarnation the table says is dead: its slot's last
 * reclaimed generation, or one of the 127 before it (pool.h: a slot's
 * generations grow by less than 128 at a time, so its live incarnation's
 * 8 bits are never among these). */
static bool h_dead(const pool_t *p, uint64_t w)
{
    if (w == 0)
        return false;
    uint64_t slot = (w >> H_SLOT_SHIFT) - 1;
    if (slot >= p->nslots)
        return false;
    uint64_t d = atomic_load(&p->dead[slot]); /* last reclaimed gen + 1 */
    if (d == 0)
        return false;
    uint32_t behind = (uint32_t)(d - ((w >> H_GEN_SHIFT) & 0xffu)) & 0xffu;
    return behind >= 1 && behind <= 128;
}

static inline bool no_holder(const struct pool_hdr *h)
{
    for (int i = 0; i < POOL_HOLDERS; i++)
        if (atomic_load(&h->holders[i]) != 0)
            return false;
    return true;
}

/* One more hold for `name`: its word's count + 1, or an empty word. */
static int give(struct pool_hdr *h, uint64_t name)
{
    for (;;) {
        int empty = -1;
        bool retry = false;
        for (int i = 0; i < POOL_HOLDERS && !retry; i++) {
            uint64_t w = atomic_load(&h->holders[i]);
            if (h_names(w, name)) {
                if ((w & H_COUNT) == H_COUNT)
                    return MPX_ERANGE;
                if (atomic_compare_exchange_strong(&h->holders[i], &w, w + 1))
                    return 0;
                retry = true;
            } else if (w == 0 && empty < 0) {
                empty = i;
            }
        }
        if (retry)
            continue;
        if (empty < 0)
            return MPX_ERANGE;
        uint64_t zero = 0;
        if (atomic_compare_exchange_strong(&h->holders[empty], &zero, name | 1))
            return 0;
        /* The word was taken meanwhile (maybe by a hold for `name`): again. */
    }
}

/* One hold of `name` fewer: 0, or MPX_EINVAL when no word names it. */
static int drop(struct pool_hdr *h, uint64_t name)
{
    for (int i = 0; i < POOL_HOLDERS; i++) {
        uint64_t w = atomic_load(&h->holders[i]);
        while (h_names(w, name)) {
            uint64_t nw = (w & H_COUNT) == 1 ? 0 : w - 1;
            if (atomic_compare_exchange_strong(&h->holders[i], &w, nw))
                return 0;
        }
    }
    return MPX_EINVAL;
}

/* Move the epoch of a HELD block; false when it is not HELD. */
static bool bump(struct pool_hdr *h)
{
    uint64_t s = atomic_load(&h->state);
    while ((s & ST_MASK) == ST_HELD)
        if (atomic_compare_exchange_strong(&h->state, &s, s + EPOCH_ONE))
            return true;
    return false;
}

static bool live_block(const pool_t *p, uint32_t blk)
{
    return p && blk < p->ngran && (atomic_load(&p->hdr[blk].state) & ST_MASK) == ST_HELD;
}

/* ---- the free map (under the lock) ---- */

static void map_set(uint64_t *map, uint32_t g, uint32_t n, bool on)
{
    for (uint32_t e = g + n; g < e;) {
        uint32_t bit = g % 64, take = 64 - bit < e - g ? 64 - bit : e - g;
        uint64_t m = take == 64 ? ~0ull : ((1ull << take) - 1) << bit;
        if (on)
            map[g / 64] |= m;
        else
            map[g / 64] &= ~m;
        g += take;
    }
}

/* First granule in [g, end) whose bit is `want`, or end. */
static uint32_t map_find(const uint64_t *map, uint32_t g, uint32_t end, bool want)
{
    while (g < end) {
        uint64_t w = want ? map[g / 64] : ~map[g / 64];
        w &= ~0ull << (g % 64);
        if (w) {
            uint32_t f = g / 64 * 64 + (uint32_t)__builtin_ctzll(w);
            return f < end ? f : end;
        }
        g = g / 64 * 64 + 64;
    }
    return end;
}

/* First fit: the first run of n free granules from the hint; the first
 * free granule seen goes to *first (ngran when none). */
static int64_t find_run(const pool_t *p, uint32_t from, uint32_t n, uint32_t *first)
{
    uint32_t total = p->ngran;
    *first = total;
    for (uint32_t g = from; g < total;) {
        g = map_find(p->map, g, total, false);
        if (g >= total)
            break;
        if (*first == total)
            *first = g;
        if (total - g < n)
            break;
        uint32_t used = map_find(p->map, g, g + n, true);
        if (used == g + n)
            return g;
        g = used;
    }
    return -1;
}

/* ---- the lock ---- */

/* Everything the allocator keeps besides the headers, made again from
 * them; under the lock, after its owner died anywhere. */
static void rebuild(pool_t *p)
{
    struct pool_ctl *c = p->ctl;
    crash_point(p, POOL_CRASH_REBUILD_START);
    uint64_t finished = 0;
    for (uint32_t g = 0; g < p->ngran; g++) {
        uint64_t s = atomic_load(&p->hdr[g].state);
        if ((s & ST_MASK) == ST_FREEING) {
            atomic_store(&p->hdr[g].state, (s & ~(uint64_t)ST_MASK) + EPOCH_ONE + ST_FREE);
            finished++;
        }
    }
    crash_point(p, POOL_CRASH_REBUILD_HALF);
    size_t words = (p->ngran + 63) / 64;
    memset(p->map, 0, words * 8);
    if (p->ngran % 64) /* the bits past the end: never free */
        p->map[words - 1] |= ~0ull << (p->ngran % 64);
    uint64_t blocks = 0, gran = 0;
    for (uint32_t g = 0; g < p->ngran;) {
        struct pool_hdr *h = &p->hdr[g];
        uint32_t n = atomic_load(&h->ngran);
        if ((atomic_load(&h->state) & ST_MASK) != ST_HELD || n == 0 || n > p->ngran - g) {
            g++;
            continue;
        }
        map_set(p->map, g, n, true);
        blocks++;
        gran += n;
        g += n;
    }
    SET(c->blocks_in_use, blocks);
    SET(c->bytes_in_use, gran * POOL_GRANULE);
    SET(c->hint, 0);
    SET(c->frees_total, GET(c->frees_total) + finished);
    SET(c->recoveries, GET(c->recoveries) + 1);
    /* Whatever the dead owner freed may not have woken anyone. */
    atomic_fetch_add(&c->frees, 1);
}

static void wake_waiters(pool_t *p)
{
    if (atomic_load(&p->ctl->waiters) > 0)
        syscall(SYS_futex, &p->ctl->frees, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static int lock(pool_t *p)
{
    int r = pthread_mutex_lock(&p->ctl->lock);
    if (r == EOWNERDEAD) {
        rebuild(p);
        r = pthread_mutex_consistent(&p->ctl->lock);
        if (r == 0) {
            /* Waking needs no lock; woken waiters find it free soon. */
            wake_waiters(p);
        }
    }
    return r == 0 ? 0 : MPX_ESYS;
}

static void unlock(pool_t *p) { pthread_mutex_unlock(&p->ctl->lock); }

/* ---- freeing ---- */

/* Under the lock; the state was CAS'd to FREEING from s. */
static void free_locked(pool_t *p, uint32_t g, uint64_t s)
{
    struct pool_ctl *c = p->ctl;
    struct pool_hdr *h = &p->hdr[g];
    crash_point(p, POOL_CRASH_FREE_MARKED);
    uint32_t n = atomic_load(&h->ngran);
    map_set(p->map, g, n, false);
    crash_point(p, POOL_CRASH_FREE_UNMAPPED);
    SET(c->bytes_in_use, GET(c->bytes_in_use) - (uint64_t)n * POOL_GRANULE);
    SET(c->blocks_in_use, GET(c->blocks_in_use) - 1);
    crash_point(p, POOL_CRASH_FREE_COUNTED);
    atomic_store(&h->state, (s & ~(uint64_t)ST_MASK) + EPOCH_ONE + ST_FREE);
    crash_point(p, POOL_CRASH_FREE_DONE);
    SET(c->frees_total, GET(c->frees_total) + 1);
    if (g < GET(c->hint))
        SET(c->hint, g);
    atomic_fetch_add(&c->frees, 1); /* seq_cst: pool_wait's waiters count */
}

/* Free blk if nobody holds it (see WHY FREEING IS SAFE). */
static int try_free(pool_t *p, uint32_t blk)
{
    struct pool_hdr *h = &p->hdr[blk];
    int r = lock(p);
    if (r)
        return r;
    crash_point(p, POOL_CRASH_FREE_LOCKED);
    bool freed = false;
    for (;;) {
        uint64_t s = atomic_load(&h->state);
        if ((s & ST_MASK) != ST_HELD || !no_holder(h))
            break;
        if (atomic_compare_exchange_strong(&h->state, &s,
                                           (s & ~(uint64_t)ST_MASK) | ST_FREEING)) {
            free_locked(p, blk, s);
            freed = true;
            break;
        }
        /* A hold was given meanwhile, or pool_reclaim moved the epoch:
         * read the words again. */
    }
    unlock(p);
    if (freed) {
        crash_point(p, POOL_CRASH_FREE_UNLOCKED);
        wake_waiters(p);
    }
    return 0;
}

/* ---- the interface ---- */

pool_t *pool_new(size_t bytes, uint32_t nslots, char *err, size_t errcap)
{
    if (bytes == 0 || bytes > (size_t)MAX_GRANULES * POOL_GRANULE) {
        snprintf(err, errcap, "a pool of %zu bytes: between 1 and %llu", bytes,
                 (unsigned long long)MAX_GRANULES * POOL_GRANULE);
        return NULL;
    }
    if (nslots == 0 || nslots > POOL_MAX_SLOT + 1u) {
        snprintf(err, errcap, "a pool for %u slots: between 1 and %u", nslots,
                 POOL_MAX_SLOT + 1u);
        return NULL;
    }
    uint32_t ngran = (uint32_t)((bytes + POOL_GRANULE - 1) / POOL_GRANULE);
    size_t words = (ngran + 63) / 64;
    size_t map_off = align_up(sizeof(struct pool_ctl), 64);
    size_t dead_off = align_up(map_off + words * 8, 64);
    size_t hdr_off = align_up(dead_off + (size_t)nslots * 8, 128);
    size_t data_off = align_up(hdr_off + (size_t)ngran * sizeof(struct pool_hdr), POOL_GRANULE);
    size_t len = data_off + (size_t)ngran * POOL_GRANULE;

    pool_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    p->fd = memfd_create("mpx-pool", MFD_CLOEXEC | MFD_NOEXEC_SEAL);
    if (p->fd < 0 && errno == EINVAL) /* a kernel older than 6.3 */
        p->fd = memfd_create("mpx-pool", MFD_CLOEXEC);
    const char *what = "memfd_create";
    if (p->fd < 0)
        goto fail;
    what = "ftruncate";
    if (ftruncate(p->fd, (off_t)len) != 0)
        goto fail;
    what = "committing the pool's bookkeeping (fallocate)";
    int r;
    while ((r = fallocate(p->fd, 0, 0, (off_t)data_off)) != 0 && errno == EINTR)
        ;
    if (r != 0)
        goto fail;
    what = "mmap";
    void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
    if (base == MAP_FAILED)
        goto fail;
    p->base = base;
    p->len = len;
    p->refs = 1;
    p->ngran = ngran;
    p->nslots = nslots;
    p->data_off = data_off;
    p->ctl = base;
    p->map = (uint64_t *)(p->base + map_off);
    p->dead = (_Atomic uint64_t *)(p->base + dead_off);
    p->hdr = (struct pool_hdr *)(p->base + hdr_off);
    p->data = p->base + data_off;

    /* A fresh memfd reads as zeros: every header FREE, every word empty. */
    struct pool_ctl *c = p->ctl;
    c->magic = POOL_MAGIC;
    c->ngran = ngran;
    c->nslots = nslots;
    if (ngran % 64)
        p->map[words - 1] = ~0ull << (ngran % 64);
    pthread_mutexattr_t ma;
    what = "the pool's lock";
    if ((errno = pthread_mutexattr_init(&ma)) != 0)
        goto fail;
    errno = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    if (errno == 0)
        errno = pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    if (errno == 0)
        errno = pthread_mutex_init(&c->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    if (errno != 0)
        goto fail;
    return p;

fail:
    snprintf(err, errcap, "shared-memory pool of %zu bytes: %s: %s", bytes, what,
             strerror(errno));
    if (p->base)
        munmap(p->base, p->len);
    if (p->fd >= 0)
        close(p->fd);
    free(p);
    return NULL;
}

pool_t *pool_ref(pool_t *p)
{
    p->refs++;
    return p;
}

void pool_destroy(pool_t **pp)
{
    if (!pp || !*pp)
        return;
    pool_t *p = *pp;
    *pp = NULL;
    if (--p->refs > 0)
        return;
    munmap(p->base, p->len);
    close(p->fd);
    free(p);
}

/* Commit the data granules below `end` (under the lock). */
static int commit(pool_t *p, uint32_t end)
{
    uint32_t c = GET(p->ctl->committed);
    if (end <= c)
        return 0;
    if (p->fail_commit)
        return MPX_ENOMEM;
    off_t off = (off_t)(p->data_off + (size_t)c * POOL_GRANULE);
    off_t len = (off_t)(end - c) * POOL_GRANULE;
    int r;
    while ((r = fallocate(p->fd, 0, off, len)) != 0 && errno == EINTR)
        ;
    if (r != 0)
        return MPX_ENOMEM; /* ENOSPC or ENOMEM: the memory is not there */
    crash_point(p, POOL_CRASH_ALLOC_COMMITTED);
    SET(p->ctl->committed, end);
    return 0;
}

int pool_alloc(pool_t *p, pool_holder_t self, size_t size, uint32_t *blk)
{
    if (!p || !blk || size == 0 || !holder_ok(p, self))
        return MPX_EINVAL;
    if (size > (uint64_t)p->ngran * POOL_GRANULE)
        return MPX_ERANGE;
    uint32_t n = (uint32_t)((size + POOL_GRANULE - 1) / POOL_GRANULE);
    struct pool_ctl *c = p->ctl;
    int r = lock(p);
    if (r)
        return r;
    crash_point(p, POOL_CRASH_ALLOC_LOCKED);
    uint32_t hint = GET(c->hint), first;
    int64_t found = find_run(p, hint < p->ngran ? hint : p->ngran, n, &first);
    if (found < 0) {
        SET(c->hint, first);
        unlock(p);
        return POOL_FULL;
    }
    uint32_t g = (uint32_t)found;
    r = commit(p, g + n);
    if (r) {
        unlock(p);
        return r;
    }
    map_set(p->map, g, n, true);
    crash_point(p, POOL_CRASH_ALLOC_MAPPED);
    struct pool_hdr *h = &p->hdr[g];
    uint64_t old = atomic_load(&h->state); /* FREE: the map says so */
    SET(h->ngran, n);
    SET(h->size, size);
    SET(h->holders[0], h_name(self) | 1);
    for (int i = 1; i < POOL_HOLDERS; i++)
        SET(h->holders[i], 0);
    crash_point(p, POOL_CRASH_ALLOC_HEADER);
    atomic_store(&h->state, (old & ~(uint64_t)ST_MASK) + EPOCH_ONE + ST_HELD);
    crash_point(p, POOL_CRASH_ALLOC_HELD);
    uint64_t bytes = GET(c->bytes_in_use) + (uint64_t)n * POOL_GRANULE;
    SET(c->bytes_in_use, bytes);
    SET(c->blocks_in_use, GET(c->blocks_in_use) + 1);
    if (bytes > GET(c->peak_bytes))
        SET(c->peak_bytes, bytes);
    SET(c->allocs, GET(c->allocs) + 1);
    SET(c->hint, first == g ? g + n : first);
    crash_point(p, POOL_CRASH_ALLOC_COUNTED);
    unlock(p);
    crash_point(p, POOL_CRASH_ALLOC_UNLOCKED);
    *blk = g;
    return 0;
}

int pool_hold(pool_t *p, uint32_t blk, pool_holder_t who)
{
    if (!live_block(p, blk) || !holder_ok(p, who))
        return MPX_EINVAL;
    struct pool_hdr *h = &p->hdr[blk];
    uint64_t name = h_name(who);
    int r = give(h, name);
    if (r)
        return r;
    crash_point(p, POOL_CRASH_HOLD_GIVEN);
    if (!bump(h)) {
        /* Not HELD: the caller did not hold it (a bug). */
        drop(h, name);
        return MPX_EINVAL;
    }
    crash_point(p, POOL_CRASH_HOLD_BUMPED);
    if ((uint64_t)who.gen < atomic_load(&p->dead[who.slot])) {
        crash_point(p, POOL_CRASH_HOLD_REFUSED);
        /* Reclaimed: take it back, unless pool_reclaim already did. */
        if (drop(h, name) == 0 && no_holder(h))
            try_free(p, blk); /* only if the caller broke the rule */
        return MPX_ESTOPPED;
    }
    return 0;
}

int pool_hold_if(pool_t *p, uint32_t blk, pool_holder_t who, pool_holder_t giver)
{
    if (!p || blk >= p->ngran || !holder_ok(p, who) || !holder_ok(p, giver))
        return MPX_EINVAL;
    /* A block nobody holds any more was freed after its giver died (its
     * holds went with pool_reclaim): the reference is stale, as when the
     * block was taken again, below.  From a live giver it is a bad one. */
    if (!live_block(p, blk))
        return h_dead(p, h_name(giver)) ? MPX_ESTOPPED : MPX_EINVAL;
    struct pool_hdr *h = &p->hdr[blk];
    uint64_t name = h_name(who), gname = h_name(giver);
    int r = give(h, name);
    if (r)
        return r;
    /* Ours is given; the giver's, seen after it, kept the block HELD
     * since before ours (it drops it only once we confirm the record), so
     * the block is the one the reference meant.  Without it, the giver was
     * reclaimed (it died) and the block may be anything: ours goes again. */
    bool there = false;
    for (int i = 0; i < POOL_HOLDERS && !there; i++)
        there = h_names(atomic_load(&h->holders[i]), gname);
    if (!there || !bump(h)) {
        if (drop(h, name) == 0 && no_holder(h))
            try_free(p, blk);
        return MPX_ESTOPPED;
    }
    return 0;
}

int pool_release(pool_t *p, uint32_t blk, pool_holder_t who)
{
    if (!live_block(p, blk) || !holder_ok(p, who))
        return MPX_EINVAL;
    struct pool_hdr *h = &p->hdr[blk];
    int r = drop(h, h_name(who));
    if (r)
        return r;
    crash_point(p, POOL_CRASH_RELEASE_DROPPED);
    if (!no_holder(h))
        return 0; /* a holder seen now will see the others when it drops */
    return try_free(p, blk);
}

uint64_t pool_reclaim(pool_t *p, pool_holder_t dead)
{
    if (!p || !holder_ok(p, dead))
        return 0;
    /* R1: mark it dead (the table only grows). */
    uint64_t mark = (uint64_t)dead.gen + 1;
    uint64_t cur = atomic_load(&p->dead[dead.slot]);
    while (cur < mark && !atomic_compare_exchange_strong(&p->dead[dead.slot], &cur, mark))
        ;
    /* If it died holding the lock, recover now: FREEING blocks it left
     * are finished, and the counts are right when this returns. */
    if (lock(p) == 0)
        unlock(p);
    uint64_t name = h_name(dead), dropped = 0;
    /* No block lies beyond the committed granules, and one allocated past
     * the mark read now cannot be held by the dead (a hold given to it
     * after R1 is taken back by pool_hold): a pool that large items never
     * used costs nothing here, whatever its size. */
    uint32_t end = atomic_load(&p->ctl->committed);
    if (end > p->ngran)
        end = p->ngran;
    for (uint32_t g = 0; g < end; g++) {
        struct pool_hdr *h = &p->hdr[g];
        if ((atomic_load(&h->state) & ST_MASK) != ST_HELD)
            continue;
        /* R2: its words, and any of an incarnation reclaimed before. */
        bool any = false;
        for (int i = 0; i < POOL_HOLDERS && !any; i++) {
            uint64_t w = atomic_load(&h->holders[i]);
            any = h_names(w, name) || h_dead(p, w);
        }
        /* The epoch moves before a word is cleared (WHY FREEING IS SAFE). */
        if (any && bump(h)) {
            for (int i = 0; i < POOL_HOLDERS; i++) {
                uint64_t w = atomic_load(&h->holders[i]);
                while (h_names(w, name) || h_dead(p, w)) {
                    if (atomic_compare_exchange_strong(&h->holders[i], &w, 0)) {
                        dropped += w & H_COUNT;
                        break;
                    }
                }
            }
        }
        if (no_holder(h))
            try_free(p, g);
    }
    atomic_fetch_add(&p->ctl->reclaimed, dropped);
    return dropped;
}

void *pool_data(const pool_t *p, uint32_t blk)
{
    if (!live_block(p, blk))
        return NULL;
    return p->data + (size_t)blk * POOL_GRANULE;
}

size_t pool_block_size(const pool_t *p, uint32_t blk)
{
    if (!live_block(p, blk))
        return 0;
    uint32_t n = atomic_load(&p->hdr[blk].ngran);
    if (n > p->ngran - blk) /* cannot be, but the header is shared memory */
        return 0;
    return (size_t)n * POOL_GRANULE;
}

bool pool_holds(const pool_t *p, uint32_t blk, pool_holder_t who)
{
    if (!live_block(p, blk) || !holder_ok(p, who))
        return false;
    uint64_t name = h_name(who);
    for (int i = 0; i < POOL_HOLDERS; i++)
        if (h_names(atomic_load(&p->hdr[blk].holders[i]), name))
            return true;
    return false;
}

bool pool_held_only_by(const pool_t *p, uint32_t blk, pool_holder_t a, pool_holder_t b)
{
    if (!live_block(p, blk) || !holder_ok(p, a) || !holder_ok(p, b))
        return false;
    uint64_t na = h_name(a), nb = h_name(b);
    bool seen_a = false, seen_b = false;
    for (int i = 0; i < POOL_HOLDERS; i++) {
        uint64_t w = atomic_load(&p->hdr[blk].holders[i]);
        if (w == 0)
            continue;
        if ((w & H_COUNT) != 1)
            return false;
        if (h_names(w, na) && !seen_a)
            seen_a = true;
        else if (h_names(w, nb) && !seen_b)
            seen_b = true;
        else
            return false;
    }
    return seen_a && seen_b;
}

uint32_t pool_frees(const pool_t *p) { return atomic_load(&p->ctl->frees); }

int pool_wait(pool_t *p, uint32_t seen, int timeout_ms)
{
    struct pool_ctl *c = p->ctl;
    atomic_fetch_add(&c->waits, 1);
    struct timespec until;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    /* Counted before the futex compares: a freer bumps `frees`, then
     * reads `waiters`, so one of the two sees the other. */
    atomic_fetch_add(&c->waiters, 1);
    int rc = 0;
    while (atomic_load(&c->frees) == seen) {
        /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
        long r = syscall(SYS_futex, &c->frees, FUTEX_WAIT_BITSET, seen,
                         timeout_ms >= 0 ? &until : NULL, NULL, FUTEX_BITSET_MATCH_ANY);
        if (r == 0 || errno == EAGAIN)
            continue; /* woken, or it moved: look again */
        if (errno == ETIMEDOUT)
            rc = MPX_ETIMEDOUT;
        break; /* EINTR: the caller looks again and decides */
    }
    atomic_fetch_sub(&c->waiters, 1);
    return rc;
}

void pool_get_stats(const pool_t *p, pool_stats_t *out)
{
    const struct pool_ctl *c = p->ctl;
    *out = (pool_stats_t){
        .capacity = (uint64_t)p->ngran * POOL_GRANULE,
        .bytes_in_use = atomic_load_explicit(&c->bytes_in_use, memory_order_relaxed),
        .blocks_in_use = atomic_load_explicit(&c->blocks_in_use, memory_order_relaxed),
        .peak_bytes = atomic_load_explicit(&c->peak_bytes, memory_order_relaxed),
        .committed = (uint64_t)atomic_load_explicit(&c->committed, memory_order_relaxed) *
                     POOL_GRANULE,
        .allocs = atomic_load_explicit(&c->allocs, memory_order_relaxed),
        .frees = atomic_load_explicit(&c->frees_total, memory_order_relaxed),
        .waits = atomic_load_explicit(&c->waits, memory_order_relaxed),
        .reclaimed = atomic_load_explicit(&c->reclaimed, memory_order_relaxed),
    };
}

/* ---- for tests ---- */

void pool_test_crash_at(pool_t *p, int point) { p->crash_at = point; }
void pool_test_fail_commit(pool_t *p, bool fail) { p->fail_commit = fail; }
int pool_test_lock(pool_t *p) { return lock(p); }
void pool_test_unlock(pool_t *p) { unlock(p); }
uint64_t pool_test_recoveries(const pool_t *p) { return atomic_load(&p->ctl->recoveries); }

static int check_locked(pool_t *p, bool quiet, char *why, size_t cap)
{
    struct pool_ctl *c = p->ctl;
    uint64_t blocks = 0, gran = 0;
    uint32_t covered = 0, high = 0; /* granules below `covered` belong to a block seen */
    for (uint32_t g = 0; g < p->ngran; g++) {
        struct pool_hdr *h = &p->hdr[g];
        uint64_t s = atomic_load(&h->state);
        bool on = (p->map[g / 64] >> (g % 64)) & 1;
        if ((s & ST_MASK) == ST_FREEING) {
            snprintf(why, cap, "block %u is FREEING outside the lock", g);
            return -1;
        }
        if ((s & ST_MASK) == ST_HELD) {
            uint32_t n = atomic_load(&h->ngran);
            if (g < covered) {
                snprintf(why, cap, "block %u starts inside the block before it", g);
                return -1;
            }
            if (n == 0 || n > p->ngran - g) {
                snprintf(why, cap, "block %u has %u granules", g, n);
                return -1;
            }
            covered = g + n;
            high = covered;
            blocks++;
            gran += n;
            if (quiet) {
                bool held = false;
                for (int i = 0; i < POOL_HOLDERS; i++) {
                    uint64_t w = atomic_load(&h->holders[i]);
                    held |= w != 0;
                    if (h_dead(p, w)) {
                        snprintf(why, cap, "block %u is held by slot %u, reclaimed", g,
                                 (unsigned)((w >> H_SLOT_SHIFT) - 1));
                        return -1;
                    }
                }
                if (!held) {
                    snprintf(why, cap, "block %u is HELD by nobody", g);
                    return -1;
                }
            }
        } else if ((s & ST_MASK) != ST_FREE) {
            snprintf(why, cap, "header %u has state %u", g, (unsigned)(s & ST_MASK));
            return -1;
        }
        if (on != (g < covered)) {
            snprintf(why, cap, "granule %u is %s in the map but %s by the headers", g,
                     on ? "used" : "free", g < covered ? "used" : "free");
            return -1;
        }
    }
    if (blocks != atomic_load(&c->blocks_in_use) ||
        gran * POOL_GRANULE != atomic_load(&c->bytes_in_use)) {
        snprintf(why, cap, "headers: %llu blocks, %llu granules; counts: %llu blocks, %llu bytes",
                 (unsigned long long)blocks, (unsigned long long)gran,
                 (unsigned long long)atomic_load(&c->blocks_in_use),
                 (unsigned long long)atomic_load(&c->bytes_in_use));
        return -1;
    }
    if (high > atomic_load(&c->committed)) {
        snprintf(why, cap, "a block reaches granule %u, committed only up to %u", high,
                 atomic_load(&c->committed));
        return -1;
    }
    for (uint32_t g = 0; g < atomic_load(&c->hint) && g < p->ngran; g++)
        if (!((p->map[g / 64] >> (g % 64)) & 1)) {
            snprintf(why, cap, "granule %u is free, below the hint %u", g,
                     atomic_load(&c->hint));
            return -1;
        }
    return 0;
}

int pool_test_check(pool_t *p, bool quiet, char *why, size_t cap)
{
    if (lock(p) != 0) {
        snprintf(why, cap, "cannot take the lock");
        return -1;
    }
    int r = check_locked(p, quiet, why, cap);
    unlock(p);
    return r;
}

uint32_t pool_block_at(const pool_t *p, const void *ptr)
{
    if (!p || !ptr)
        return POOL_NONE;
    const uint8_t *b = ptr;
    if (b < p->data || b >= p->data + (size_t)p->ngran * POOL_GRANULE)
        return POOL_NONE;
    size_t off = (size_t)(b - p->data);
    if (off % POOL_GRANULE)
        return POOL_NONE;
    uint32_t blk = (uint32_t)(off / POOL_GRANULE);
    return live_block(p, blk) ? blk : POOL_NONE;
}

void pool_debug_dump(const pool_t *p);
void pool_debug_dump(const pool_t *p)
{
    for (uint32_t g = 0; g < p->ngran; g++) {
        if ((atomic_load(&p->hdr[g].state) & ST_MASK) != ST_HELD)
            continue;
        fprintf(stderr, "block %u:", g);
        for (int i = 0; i < POOL_HOLDERS; i++) {
            uint64_t w = atomic_load(&p->hdr[g].holders[i]);
            if (w)
                fprintf(stderr, " [slot %llu gen %llu count %llu]",
                        (unsigned long long)((w >> H_SLOT_SHIFT) - 1),
                        (unsigned long long)((w >> H_GEN_SHIFT) & 0xff),
                        (unsigned long long)(w & H_COUNT));
        }
        fprintf(stderr, "\n");
    }
}
