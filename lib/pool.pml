/* lib/pool.pml — a Promela model of the pool's holder protocol (lib/pool.c):
 * holds given and dropped by single-word CAS, the free by whoever sees no
 * holder (a CAS of the state word from the value read before the holder
 * words), hand-offs between processes, and pool_reclaim racing holds
 * given to the incarnation it reclaims.  tests/test_pool_model.sh checks
 * it with SPIN, exhaustively, in the configurations it lists.
 *
 * One block, two holder words (W: enough for a hold to move to a word
 * already read), NP stage processes (slots 0..NP-1).  Slot 0's first
 * incarnation allocated the block before anything else ran.  A process
 * that knows of a hold may give another slot a hold and send it the
 * handle (pool_hold, then a message tagged with the generation it last
 * heard the receiver has), then drop its own or keep it; or drop a hold
 * (pool_release); or end once it knows of none.  A killer may kill any
 * process at any step (SIGKILL), MAXCRASH times in all.  The supervisor
 * (never killed) reclaims every incarnation that ends, killed or not (a
 * hold given to a process whose giver died before sending the handle is
 * known to nobody), and replaces a killed one with the next generation,
 * which ignores handles meant for its predecessor.
 *
 * Where the C code is:
 *   hold                 pool_hold: give, the epoch's move, the dead check,
 *                        the take-back (drop), and a free if that was last
 *   release_own          pool_release: drop, no_holder, try_free
 *   scan                 no_holder, a word at a time
 *   try_free             try_free: the lock, the state read, the words,
 *                        the CAS to FREEING, then FREE (free_locked)
 *   lock_take            lock(): EOWNERDEAD finishes a FREEING block (the
 *                        rebuild)
 *   reclaim              pool_reclaim: mark, lock (recovery), each word
 *                        of a dead incarnation cleared after the epoch's
 *                        move, free what nobody holds
 *
 * What is checked:
 *   - no block is freed while held (freed_while_held): at the CAS to
 *     FREEING every holder word is empty; and whoever gives or drops a
 *     hold finds the block HELD (a holder never sees its block freed);
 *   - none stays held by a dead incarnation after reclaim
 *     (held_by_the_dead_after_reclaim): at any step, a word names an
 *     incarnation whose reclaim is done only while a process is inside
 *     pool_hold giving it that hold, or died there and is not reclaimed
 *     yet (its own reclaim clears it);
 *   - at the end, when every incarnation has ended and been reclaimed,
 *     no word names anyone (held_at_the_end) and the block is FREE
 *     (leaked).
 *
 * Abstractions: the allocation and the rebuild are single steps (the
 * tests kill a process at each of their steps, see pool.h's crash
 * points); the free map and counts are left out; a word holds the whole
 * generation (the C code keeps 8 bits, read against the table as pool.h
 * says); finding a word and its CAS are one step (a CAS that fails is
 * retried, which adds no outcome); the choice of an empty word is free;
 * the look at the words that pool_release and pool_reclaim take before
 * try_free may be skipped (it only saves taking the lock, and skipping it
 * gives a superset of the code's behaviours: with it, a hold moving
 * between words must fool two looks, which needs more hand-offs than a
 * search can afford).  Handles in flight are counts per receiver and
 * generation: order does not matter to the holds.
 *
 * Variants:
 *   LOCK_LATE           reclaim takes the lock (its recovery) after its
 *                       scan: correct still, the epoch moved before a
 *                       clear is enough (before the scan, the lock alone
 *                       would order the clears after any free under way)
 * Broken variants (each must fail, on the property named):
 *   BROKEN_SCAN_FIRST   reclaim scans before marking dead (held_by_the_dead)
 *   BROKEN_NO_CHECK     pool_hold does not look for the mark (held_by_the_dead)
 *   BROKEN_NO_EPOCH     the free's CAS ignores the epoch (freed_while_held)
 *   BROKEN_BUMP_AFTER   with LOCK_LATE, reclaim moves the epoch after
 *                       clearing, not before (freed_while_held)
 *   BROKEN_EXACT        reclaim clears only `dead`'s own words: a giver
 *                       killed before its take-back leaves a hold
 *                       (held_at_the_end)
 *   BROKEN_NO_FREE      reclaim does not free what nobody holds (leaked)
 */

#ifndef NP
#define NP 3         /* stage processes */
#endif
#define W 2          /* holder words (POOL_HOLDERS; the code below names words 0 and W - 1) */
#ifndef MAXGIVE
#define MAXGIVE 2    /* holds given, in all */
#endif
#ifndef MAXCRASH
#define MAXCRASH 1   /* kills, in all */
#endif
#define SUP NP       /* the supervisor as a lock owner */
#define NONE 255

#define FREE 0
#define HELD 1
#define FREEING 2

byte st = HELD;       /* the state word: state and epoch */
byte ep = 0;
byte wslot[W];        /* holder words: slot, generation, count (0: empty) */
byte wgen[W];
byte wcnt[W];
byte dead[NP];        /* last reclaimed generation + 1, 0: none */
byte curgen[NP];      /* the running incarnation's generation */
bit alive[NP];
bit kill[NP];
byte lk_slot = NONE;  /* the robust mutex's owner */
byte lk_gen;
byte gives = 0;
byte crashes = 0;
/* For the invariant: the incarnation a process is giving a hold to, as
 * slot * NG + gen + 1, from its give to the end of pool_hold (kept when
 * it dies there, until its own reclaim is done); and a slot's last
 * reclaim that is done, as generation + 1. */
byte ingive[NP];
byte rdone[NP];

#define NG (MAXCRASH + 1)   /* generations a slot can reach */
/* Handles sent and not yet taken, by receiver slot and the generation the
 * sender tagged them with (a receiver takes its own and drops the rest,
 * in any order: a count is all that matters). */
byte pend[NP * NG];
chan ended = [NP + MAXCRASH] of { byte, byte, bit };

/* The properties, named so that pan's message says which failed: each
 * is set, asserted 0 and cleared in one step, so it adds no state. */
byte freed_while_held, held_at_the_end, leaked, held_by_the_dead_after_reclaim;

#define OWNER_DEAD (lk_slot != NONE && lk_slot != SUP && \
                    !(alive[lk_slot] && curgen[lk_slot] == lk_gen))

/* A word names an incarnation the table says was reclaimed. */
#ifdef BROKEN_EXACT
#define DEAD_WORD(i, ds, dg) (wcnt[i] != 0 && wslot[i] == ds && wgen[i] == dg)
#else
#define DEAD_WORD(i, ds, dg) (wcnt[i] != 0 && wgen[i] < dead[wslot[i]])
#endif

/* Wait for the lock (or its owner's death: EOWNERDEAD, and the rebuild
 * finishes the free it was making).  Called inside an atomic step. */
inline lock_take(s, g) {
    (lk_slot == NONE || OWNER_DEAD) ->
    if
    :: lk_slot != NONE ->
        if
        :: st == FREEING -> st = FREE; ep++
        :: else -> skip
        fi
    :: else -> skip
    fi;
    lk_slot = s;
    lk_gen = g
}

inline lock_drop() { lk_slot = NONE }

/* no_holder: the words read one at a time. */
inline scan(seen) {
    seen = 0;
    i = 0;
    do
    :: i < W -> atomic { seen = seen || wcnt[i] != 0; i++ }
    :: else -> i = 0; break
    od
}

/* try_free: under the lock, read the state, then the words, then CAS.
 * Taking the lock and the first read are one step: nothing another
 * process does between them depends on the lock. */
inline try_free(s, g) {
    atomic { lock_take(s, g); s_st = st; s_ep = ep };
    do
    :: true;
        if
        :: s_st != HELD -> break
        :: else -> skip
        fi;
        scan(seen);
        if
        :: seen -> break
        :: else -> skip
        fi;
        atomic {
#ifdef BROKEN_NO_EPOCH
            if
            :: st == HELD ->
#else
            if
            :: st == s_st && ep == s_ep ->
#endif
                freed_while_held = wcnt[0] + wcnt[W - 1];
                assert(freed_while_held == 0);
                st = FREEING;
                won = 1
            :: else -> won = 0
            fi
        };
        if
        :: won -> st = FREE; ep++; break
        :: else -> atomic { s_st = st; s_ep = ep }   /* a hold was given, or reclaim moved the epoch: again */
        fi
    od;
    atomic { lock_drop(); s_st = 0; s_ep = 0; seen = 0; won = 0 }
}

/* drop(): one hold of (s, g) fewer, if a word names it. */
inline drop(s, g) {
    atomic {
        if
        :: wcnt[0] != 0 && wslot[0] == s && wgen[0] == g -> wcnt[0]--;
            if :: wcnt[0] == 0 -> wslot[0] = 0; wgen[0] = 0 :: else -> skip fi
        :: wcnt[W - 1] != 0 && wslot[W - 1] == s && wgen[W - 1] == g -> wcnt[W - 1]--;
            if :: wcnt[W - 1] == 0 -> wslot[W - 1] = 0; wgen[W - 1] = 0 :: else -> skip fi
        :: else -> skip
        fi
    }
}

/* pool_release(me): the caller holds the block.  Its look at the words
 * before try_free may also be skipped: that look only saves a lock when
 * someone else still holds (a superset of the code's behaviours, and the
 * one where a hold that moves between words matters). */
inline release_own() {
    atomic { assert(st == HELD); drop(me, g); known-- };   /* a holder's block is HELD */
    if
    :: scan(seen);
        if
        :: !seen -> try_free(me, g)
        :: else -> seen = 0
        fi
    :: try_free(me, g)
    fi
}

/* pool_hold(j, tg) by a holder; ok says it stands. */
inline hold() {
    atomic {
        gives++;
        if
        :: me != 0 -> j = 0
        :: me != 1 -> j = 1
#if NP > 2
        :: me != 2 -> j = 2
#endif
        fi;
        tg = curgen[j];
        ingive[me] = j * NG + tg + 1;
        assert(st == HELD);
        if
        :: wcnt[0] != 0 && wslot[0] == j && wgen[0] == tg -> wcnt[0]++; ok = 1
        :: wcnt[W - 1] != 0 && wslot[W - 1] == j && wgen[W - 1] == tg -> wcnt[W - 1]++; ok = 1
        :: else ->
            if
            :: wcnt[0] == 0 -> wslot[0] = j; wgen[0] = tg; wcnt[0] = 1; ok = 1
            :: wcnt[W - 1] == 0 -> wslot[W - 1] = j; wgen[W - 1] = tg; wcnt[W - 1] = 1; ok = 1
            :: else -> ok = 0   /* MPX_ERANGE: nothing given */
            fi
        fi
    };
    if
    :: ok ->
        atomic { assert(st == HELD); ep++ };          /* bump, after the give */
#ifndef BROKEN_NO_CHECK
        if
        :: tg < dead[j] ->                            /* reclaimed: take it back */
            ok = 0;
            drop(j, tg);
            scan(seen);
            if
            :: !seen -> try_free(me, g)
            :: else -> seen = 0
            fi
        :: else -> skip
        fi;
#endif
        ingive[me] = 0
    :: else -> ingive[me] = 0
    fi
}

/* pool_reclaim(ds, dg), in the supervisor. */
inline reclaim(ds, dg) {
#ifndef BROKEN_SCAN_FIRST
    dead[ds] = (dead[ds] > dg + 1 -> dead[ds] : dg + 1);
#endif
#ifndef LOCK_LATE
    atomic { lock_take(SUP, 0); lock_drop() };   /* recover a dead owner's lock */
#endif
    if
    :: st == HELD ->
        any = 0;
        i = 0;
        do
        :: i < W -> atomic { any = any || DEAD_WORD(i, ds, dg) || (wcnt[i] != 0 && wslot[i] == ds && wgen[i] == dg); i++ }
        :: else -> i = 0; break
        od;
#ifndef BROKEN_BUMP_AFTER
        if
        :: any -> atomic { if :: st == HELD -> ep++ :: else -> any = 0 fi }
        :: else -> skip
        fi;
#endif
        if
        :: any ->
            i = 0;
            do
            :: i < W -> atomic {
                    if
                    :: DEAD_WORD(i, ds, dg) || (wcnt[i] != 0 && wslot[i] == ds && wgen[i] == dg) ->
                        wcnt[i] = 0; wslot[i] = 0; wgen[i] = 0
                    :: else -> skip
                    fi;
                    i++
                }
            :: else -> i = 0; break
            od
        :: else -> skip
        fi;
#ifdef BROKEN_BUMP_AFTER
        if
        :: any -> atomic { if :: st == HELD -> ep++ :: else -> skip fi }
        :: else -> skip
        fi;
#endif
#ifndef BROKEN_NO_FREE
        if   /* its look before try_free may be skipped, as release's */
        :: scan(seen);
            if
            :: !seen -> try_free(SUP, 0)
            :: else -> seen = 0
            fi
        :: try_free(SUP, 0)
        fi;
#endif
        any = 0
    :: else -> skip
    fi;
#ifdef BROKEN_SCAN_FIRST
    dead[ds] = (dead[ds] > dg + 1 -> dead[ds] : dg + 1);
#endif
#ifdef LOCK_LATE
    atomic { lock_take(SUP, 0); lock_drop() };
#endif
    atomic { rdone[ds] = (rdone[ds] > dg + 1 -> rdone[ds] : dg + 1); ingive[ds] = 0 }
}

proctype Worker(byte me; byte g)
{
    byte known = 0, j, tg, i, s_st, s_ep;
    bit seen, won, ok;
    if
    :: me == 0 && g == 0 -> known = 1   /* the allocator */
    :: else -> skip
    fi;
    {
        do
        :: atomic { pend[me * NG + g] > 0 -> pend[me * NG + g]--; known++ }
        :: known > 0 && gives < MAXGIVE ->
            /* To another slot, at the generation this one last heard of:
             * it may have died since.  Choosing and giving are one step
             * (hold's first). */
            hold();
            atomic {
                if
                :: ok -> pend[j * NG + tg]++   /* the handle is sent */
                :: else -> skip
                fi;
                ok = 0; j = 0; tg = 0
            };
            if
            :: release_own()   /* a hand-off */
            :: skip            /* a broadcast: keep one's own */
            fi
        :: known > 0 -> release_own()
        :: atomic { known == 0 -> alive[me] = 0; ended ! me, g, 0 };   /* no kill after this */
            break
        od
    } unless {
        kill[me] == 1 ->
        atomic { alive[me] = 0; ended ! me, g, 1 }
    }
}

#define KILL(s) :: atomic { crashes < MAXCRASH && alive[s] && kill[s] == 0 -> kill[s] = 1; crashes++ }
proctype Killer()
{
end:
    do
    KILL(0)
    KILL(1)
#if NP > 2
    KILL(2)
#endif
    od
}

proctype Supervisor()
{
    byte ds, dg, live = NP, i, s_st, s_ep;
    bit crashed, seen, won, any;
    do
    :: ended ? ds, dg, crashed ->
        reclaim(ds, dg);
        if
        :: crashed ->   /* the next incarnation */
            atomic {
                curgen[ds] = dg + 1;
                kill[ds] = 0;
                alive[ds] = 1;
                run Worker(ds, dg + 1)
            }
        :: else -> live--
        fi
    :: live == 0 -> break
    od;
    /* Every incarnation ended and was reclaimed. */
    atomic {
        held_at_the_end = wcnt[0] + wcnt[W - 1];
        assert(held_at_the_end == 0);
        leaked = st != FREE;
        assert(leaked == 0)
    }
}

/* A word naming an incarnation whose reclaim is done, while nobody is
 * (or died) inside pool_hold giving it that hold. */
#if NP > 2
#define GIVING(c) (ingive[0] == (c) || ingive[1] == (c) || ingive[2] == (c))
#else
#define GIVING(c) (ingive[0] == (c) || ingive[1] == (c))
#endif
#define STALE(i) (wcnt[i] != 0 && rdone[wslot[i]] > wgen[i] && \
                  !GIVING(wslot[i] * NG + wgen[i] + 1))

active proctype Monitor()
{
end:
    atomic {
        STALE(0) || STALE(W - 1) ->
        held_by_the_dead_after_reclaim = 1;
        assert(held_by_the_dead_after_reclaim == 0)
    }
}

init
{
    atomic {
        /* pool_alloc by slot 0, generation 0 */
        wslot[0] = 0; wgen[0] = 0; wcnt[0] = 1;
        byte k = 0;
        do
        :: k < NP -> alive[k] = 1; run Worker(k, 0); k++
        :: else -> break
        od;
        run Supervisor();
        run Killer()
    }
}
