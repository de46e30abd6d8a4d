/* lib/pool_handoff.pml — a Promela model of how a record that refers to a
 * pool block crosses an edge (issue 15): the producer's holds, the
 * consumer's pool_hold_if, the confirmation that lets the producer drop
 * its hold, and the supervisor's pool_reclaim of whoever dies, at any
 * instruction.  tests/test_pool_model.sh checks it with SPIN,
 * exhaustively, beside lib/pool.pml (the allocator's holder protocol on
 * its own).
 *
 * One block (the whole pool: a replacement that allocates gets the same
 * block again, so a stale reference meets a block made anew), two holder
 * words, one edge P -> C.  P makes one record, C takes it.  A killer may
 * kill P or C at any step, MAXCRASH times in all; the supervisor (never
 * killed) reclaims every incarnation that ends, killed or not, and
 * replaces a killed one with the next generation.
 *
 * Where the C code is (the model's names first):
 *
 *   proctype Producer   a recoverable stage that allocates (slot 0):
 *     alloc             pool_alloc, with child.c's wait for a free
 *                       (pool_wait) when the pool is full: the lock, the
 *                       holder words written, then the state HELD
 *     the send          flush_port -> send_run -> deliver: send_to, then
 *                       keep (msg_pool hold: p_hold), then the put's hold
 *                       dropped (msg_pool release: p_release)
 *     the settle loop   child.c settle_all: a chained stage waits until
 *                       what it put is confirmed before its end of stream;
 *                       read_credit -> release_kept (p_release) on the
 *                       confirmation; edge_out_restart (add_redo's hold,
 *                       then free_kept's release) and edge_out_recover
 *                       (send_run: send, keep's hold, then the redo's
 *                       hold dropped) on a consumer's replacement
 *     ENDED             finish: box->ended, edge_out_eos; then the wait
 *                       to be released (a restart sends the end again);
 *                       released once C has reported done, it exits with
 *                       whatever it still holds (reap reclaims it)
 *     fin               CHILD_FINISHED (child_died: b->ended): only the
 *                       end of stream again (end_again)
 *   proctype Consumer   a stage reading the edge (slot 1), lib/edge_in.c:
 *     receive           next_slow's receive: a stream older than the one
 *                       it follows is dropped unread, a newer one
 *                       followed (new_generation)
 *     hold_if           take_record -> take_ref -> pool_hold_if: live_block,
 *                       give, the giver's word looked for a word at a
 *                       time, bump; refused: drop, no_holder, try_free
 *     read              the stage processes the item (the block's bytes)
 *     c_release         count_done -> release_records -> pool_release
 *     confirm           done_one (also for a stale record) -> send_credit
 *                       with `confirmable`
 *     done              edge_in_complete at P's end of stream: DONE, and
 *                       (no consumers of its own) it exits
 *   proctype Supervisor supervisor.c reap -> pool_reclaim, then child_died
 *                       -> restart_child (the resume mode; send_restart:
 *                       P hears of C's new generation)
 *   pool operations     lib/pool.c, at the grain of lib/pool.pml: a
 *                       holder word's CAS is one step, no_holder reads a
 *                       word at a time, try_free takes the lock, reads the
 *                       state (epoch), the words, then CASes to FREEING;
 *                       pool_reclaim marks, recovers the lock, looks,
 *                       moves the epoch, clears, frees what nobody holds
 *
 *   q[cg * NG + pg]     the zmq connection from P's process of generation
 *                       pg to the inbox of C's process of generation cg:
 *                       WIRE_DATA (the record: which allocation it refers
 *                       to, a ghost) and WIRE_EOS, in order.  Each pair has
 *                       its own pipe (zmq reads an inbox's pipes in any
 *                       order); an inbox dies with its process.  What a
 *                       killed P had not yet got across is lost: a suffix
 *                       of its stream, decided when C would read it.
 *   conf[pg]            WIRE_CREDIT's `confirmed` from C to P's process pg:
 *                       the generation + 1 of the C that confirmed (one
 *                       record per stream: confirmed or not)
 *   ccur                a restart (WIRE_RESTART) telling P of C's new
 *                       generation: P heard it when its cg catches up
 *
 * What is checked (each named, so that pan's message says which failed):
 *   read_unheld         while C reads a record's block, the block is HELD
 *                       and is the allocation the record refers to: not
 *                       free, nor freed and allocated again (a monitor)
 *   stale_but_alive     C takes a record for stale (its producer's word
 *                       not on the block) only when that producer is dead:
 *                       a live producer's record is never dropped
 *   freed_while_held    the free (the CAS to FREEING) never comes while an
 *                       incarnation not yet reclaimed counts a hold of the
 *                       block (P: its put, kept and redo holds; C: from a
 *                       pool_hold_if that succeeded to its release): with
 *                       not_freed_once, "freed exactly once" (a free while
 *                       held is the one its holder's release would repeat,
 *                       or would make of another allocation)
 *   holder_lost_block   P finds its own allocation HELD whenever it gives
 *                       itself or drops a hold of it
 *   held_at_the_end, leaked, not_freed_once: once every incarnation has
 *                       ended and been reclaimed, no word names anyone,
 *                       the block is FREE, and every allocation was freed
 *                       exactly once
 *   no_word_free        (the model's own bound) a give always finds a word
 *   and no invalid end state: nobody waits for ever (P's replacement waits
 *   for the block to be freed, C for its producer's end of stream).
 *
 * Abstractions: one record of one part; P's own pool_hold is one step
 * (its word is there already and only P changes it: no free can race it,
 * and the dead check cannot fire for a live caller); P's pool_release
 * skips no_holder while its own word is left; the look at the words
 * before try_free may be skipped, as in lib/pool.pml; the allocator's
 * free map and counts are left out; a confirmation and a restart are
 * shared variables read where the code polls; C processes with a side
 * effect (a forwarding C, a chain, a broadcast are not modelled).
 *
 * Variants:
 *   BYSTANDER             a third process, holding nothing, ends at any
 *                         time: its reclaim (every end is reclaimed) scans
 *                         the block and frees it if it sees no holder,
 *                         racing the hand-off.  Correct still.  (This
 *                         model, with or without it, also passes with no
 *                         epoch move in pool_hold_if or pool_reclaim, or
 *                         none in the free's CAS: P's word, made by the
 *                         allocation in word 0, stays there until C has
 *                         released (C confirms after), and a free reads
 *                         word 0 first.  The epoch is for holds that move
 *                         between words, which lib/pool.pml checks.)
 * Broken variants (each must fail, on the property named):
 *   CODE_EINVAL           C takes pool_hold_if's MPX_EINVAL for a block no
 *                         longer live (P died, and its reclaim freed the
 *                         block) for a malformed record, and fails
 *                         (stale_taken_for_malformed).  lib/edge_in.c does
 *                         this at the time of writing: take_record returns
 *                         pool_hold_if's live_block refusal, and next_slow
 *                         calls it proto_error
 *   BROKEN_HOLD           C takes its hold with pool_hold (unconditional),
 *                         not pool_hold_if (read_unheld: the block P's
 *                         replacement allocated again)
 *   BROKEN_LOOK_FIRST     pool_hold_if looks for the giver's word before it
 *                         gives its own (read_unheld)
 *   BROKEN_DROP_AT_SEND   P keeps no hold with the message it keeps: its
 *                         put's hold goes when the batch is sent
 *                         (stale_but_alive)
 *   BROKEN_CONFIRM_FIRST  C confirms a record when it receives it, before
 *                         taking its hold (stale_but_alive)
 *   BROKEN_REDO_ORDER     on a consumer's restart P drops the kept copy's
 *                         hold before the redo takes its own
 *                         (holder_lost_block)
 *   BROKEN_NO_UNDO_FREE   a refused pool_hold_if takes its hold back but
 *                         does not free a block it was the last holder of:
 *                         the block leaks, and P's replacement waits for it
 *                         for ever (an invalid end state)
 */

#ifndef MAXCRASH
#define MAXCRASH 1   /* kills, in all */
#endif
#if MAXCRASH > 2
#error "the consumer reads at most three producer generations (MAXCRASH <= 2)"
#endif
#define NG (MAXCRASH + 1)   /* generations a slot can reach */
#define NA (NG + 1)         /* allocations + 1: only P allocates, once a generation */
#define W 2          /* holder words */
#define PS 0         /* P's slot */
#define CS 1         /* C's slot */
#define XS 2         /* the bystander's slot */
#define SUP 3        /* the supervisor as a lock owner */
#define NONE 255

#define FREE 0
#define HELD 1
#define FREEING 2

#define DATA 1
#define EOS 2

byte st = FREE;       /* the block's state word: state and epoch */
byte ep = 0;
byte wslot[W];        /* holder words: slot, generation, count (0: empty) */
byte wgen[W];
byte wcnt[W];
byte dead[3];         /* a slot's last reclaimed generation + 1, 0: none */
byte lk_slot = NONE;  /* the robust mutex's owner */
byte lk_gen;

bit palive[NG];       /* P's process of that generation runs */
bit calive[NG];
bit pended[NG];       /* it had set box->ended (its resume mode) */
bit kill[2];
byte crashes = 0;
byte pcur = 0;        /* the supervisor's current generations */
byte ccur = 0;
bit cdone = 0;        /* C reported done: P may be released */
byte conf[NG];        /* C's confirmation to P's process pg: C's gen + 1 */

chan q[NG * NG] = [2] of { byte, byte };   /* type, allocation (ghost) */
chan ended = [3 + MAXCRASH] of { byte, byte, bit };

/* Ghosts.  nalloc: allocations so far; cur_aid: the one the block is
 * now (0: never allocated); freed[a]: frees of allocation a.  phold[g]:
 * the holds P's process g counts; chold[g]: C's process g counts one;
 * both forgotten when reclaim marks the incarnation dead.  reading: C
 * is reading the block for a record of allocation raid. */
byte nalloc = 0;
byte cur_aid = 0;
byte freed[NA];
byte phold[NG];
bit chold[NG];
bit reading = 0;
byte raid = 0;

/* The properties: each is set and asserted 0 in one step (no state added). */
byte read_unheld, stale_but_alive, freed_while_held, holder_lost_block;
byte held_at_the_end, leaked, not_freed_once, no_word_free, stale_taken_for_malformed;

#define ALIVE(s, g) ((s) == PS && palive[g] || (s) == CS && calive[g])
#define OWNER_DEAD (lk_slot != NONE && lk_slot != SUP && !ALIVE(lk_slot, lk_gen))
#define NAMES(i, s, g) (wcnt[i] != 0 && wslot[i] == (s) && wgen[i] == (g))
/* A word naming an incarnation the table says was reclaimed. */
#define DEAD_WORD(i) (wcnt[i] != 0 && wgen[i] < dead[wslot[i]])

#if NG == 1
#define BELIEVED (phold[0] + chold[0])
#elif NG == 2
#define BELIEVED (phold[0] + phold[1] + chold[0] + chold[1])
#else
#define BELIEVED (phold[0] + phold[1] + phold[2] + chold[0] + chold[1] + chold[2])
#endif

/* Wait for the lock (or its owner's death: EOWNERDEAD, and the rebuild
 * finishes the free it was making).  Inside an atomic step. */
inline lock_take(s, g) {
    (lk_slot == NONE || OWNER_DEAD) ->
    if
    :: lk_slot != NONE && st == FREEING -> st = FREE; ep++
    :: else -> skip
    fi;
    lk_slot = s;
    lk_gen = g
}

/* no_holder: the words read one at a time. */
inline scan(seen) {
    seen = 0;
    i = 0;
    do
    :: i < W -> atomic { seen = seen || wcnt[i] != 0; i++ }
    :: else -> i = 0; break
    od
}

/* try_free: under the lock, the state (with its epoch), then the words,
 * then the CAS to FREEING; FREE after (free_locked). */
inline try_free(s, g) {
    atomic { lock_take(s, g); s_st = st; s_ep = ep };
    do
    :: s_st != HELD -> break
    :: else ->
        scan(seen);
        if
        :: seen -> break
        :: else -> skip
        fi;
        atomic {
            if
            :: st == s_st && ep == s_ep ->
                freed_while_held = BELIEVED;
                assert(freed_while_held == 0);
                freed[cur_aid]++;
                st = FREEING;
                won = 1
            :: else -> won = 0
            fi
        };
        if
        :: won -> atomic { st = FREE; ep++ }; break
        :: else -> atomic { s_st = st; s_ep = ep }   /* a hold given, or reclaim moved the epoch: again */
        fi
    od;
    atomic { lk_slot = NONE; s_st = 0; s_ep = 0; seen = 0; won = 0 }
}

/* What follows a drop that may have emptied the last word (pool_release,
 * a refused hold's take-back): the look before try_free may be skipped. */
inline free_if_none(s, g) {
    if
    :: scan(seen);
        if
        :: !seen -> try_free(s, g)
        :: else -> seen = 0
        fi
    :: try_free(s, g)
    fi
}

/* give: one more hold for (s, g), its word's count + 1 or an empty word. */
inline give(s, g) {
    if
    :: NAMES(0, s, g) -> wcnt[0]++
    :: NAMES(W - 1, s, g) -> wcnt[W - 1]++
    :: else ->
        if
        :: wcnt[0] == 0 -> wslot[0] = s; wgen[0] = g; wcnt[0] = 1
        :: wcnt[W - 1] == 0 -> wslot[W - 1] = s; wgen[W - 1] = g; wcnt[W - 1] = 1
        :: else -> no_word_free = 1; assert(no_word_free == 0)
        fi
    fi
}

/* drop: one hold of (s, g) fewer, if a word names it. */
inline drop(s, g) {
    if
    :: NAMES(0, s, g) -> wcnt[0]--;
        if :: wcnt[0] == 0 -> wslot[0] = 0; wgen[0] = 0 :: else -> skip fi
    :: NAMES(W - 1, s, g) -> wcnt[W - 1]--;
        if :: wcnt[W - 1] == 0 -> wslot[W - 1] = 0; wgen[W - 1] = 0 :: else -> skip fi
    :: else -> skip
    fi
}

/* ---- P's pool calls ---- */

#define OWN_BLOCK_CHECK \
    holder_lost_block = st != HELD || cur_aid != myaid; \
    assert(holder_lost_block == 0)

/* pool_alloc by P's process g, waiting (pool_wait) while the block is in
 * use: the lock, then the words, then the state; the lock dropped. */
inline alloc() {
    do
    :: atomic {
           (lk_slot == NONE || OWNER_DEAD) -> lock_take(PS, g);
           if
           :: st == FREE -> won = 1
           :: else -> lk_slot = NONE; won = 0
           fi
       };
       if
       :: won -> won = 0; break
       :: else -> (st == FREE || OWNER_DEAD)   /* a free wakes it; a dead owner is found at the next try */
       fi
    od;
    atomic { wslot[0] = PS; wgen[0] = g; wcnt[0] = 1 };   /* SET(holders[0], self | 1) */
    atomic { wslot[W - 1] = 0; wgen[W - 1] = 0; wcnt[W - 1] = 0 };
    atomic { st = HELD; ep++; nalloc++; cur_aid = nalloc; myaid = nalloc; phold[g] = 1 };
    atomic { lk_slot = NONE }
}

/* pool_hold(self) on a block P holds: one step (see Abstractions). */
inline p_hold() {
    atomic { OWN_BLOCK_CHECK; give(PS, g); ep++; phold[g]++ }
}

/* pool_release(self). */
inline p_release() {
    atomic { OWN_BLOCK_CHECK; drop(PS, g); phold[g]--; won = NAMES(0, PS, g) || NAMES(W - 1, PS, g) };
    if
    :: won -> won = 0   /* its own word is still there: no_holder says no */
    :: else -> free_if_none(PS, g)
    fi
}

/* P sends on the connection to C's process cg (lost if that one died). */
#define SEND(t, a) q[cg * NG + g] ! t, a

/* ---- C's pool calls ---- */

/* pool_hold_if(blk, me = (CS, cg), giver = (PS, x)): ok (the record is
 * read), or refused (stale) with inval when live_block said no. */
inline hold_if() {
    ok = 0;
    inval = 0;
    atomic { inval = st != HELD };   /* live_block */
    if
    :: inval -> skip
    :: else ->
#ifdef BROKEN_HOLD
        /* pool_hold(me): give, bump (refused when not HELD), and the dead
         * check, which a live caller passes. */
        atomic { give(CS, cg) };
        atomic { if :: st == HELD -> ep++; ok = 1; chold[cg] = 1; reading = 1; raid = aid :: else -> skip fi };
        if
        :: !ok -> atomic { drop(CS, cg) }; inval = 1;
            free_if_none(CS, cg)
        :: else -> skip
        fi
#else
#ifdef BROKEN_LOOK_FIRST
        i = 0;
        do
        :: i < W -> atomic { there = there || NAMES(i, PS, x); i++ }
        :: else -> i = 0; break
        od;
        atomic { give(CS, cg) };
#else
        atomic { give(CS, cg) };
        /* the giver's word, a word at a time, stopping at the first */
        i = 0;
        do
        :: i < W && !there -> atomic { there = NAMES(i, PS, x); i++ }
        :: else -> i = 0; break
        od;
#endif
        atomic {
            if
            :: there && st == HELD -> ep++; ok = 1; chold[cg] = 1; reading = 1; raid = aid
            :: else -> skip
            fi;
            there = 0
        };
        if
        :: !ok ->
            atomic { drop(CS, cg) };
#ifndef BROKEN_NO_UNDO_FREE
            free_if_none(CS, cg)
#endif
        :: else -> skip
        fi
#endif
    fi
}

/* count_done: C's hold dropped. */
inline c_release() {
    atomic { drop(CS, cg); chold[cg] = 0; reading = 0 };
    free_if_none(CS, cg)
}

/* ---- the processes ---- */

proctype Producer(byte g; bit fin)
{
    byte cg, myaid, i, s_st, s_ep;
    bit seen, won;
    cg = ccur;   /* peer_gens at its start */
    {
        if
        :: fin -> skip   /* CHILD_FINISHED: what it put was confirmed */
        :: else ->
            alloc();
            /* The put: the record waits in the batch with the put's hold.
             * A restart may be heard before the batch goes. */
            if
            :: atomic { ccur != cg -> cg = ccur }
            :: skip
            fi;
            atomic { SEND(DATA, myaid) };   /* deliver: send_to */
#ifndef BROKEN_DROP_AT_SEND
            p_hold();                       /* keep */
#endif
            p_release();                    /* the put's hold, once the batch went */
            /* settle_all: wait for the confirmation, serving restarts */
            do
            :: atomic { conf[g] == cg + 1 -> skip };
#ifndef BROKEN_DROP_AT_SEND
                p_release();                /* release_kept */
#endif
                break
            :: atomic { ccur != cg -> cg = ccur };
                /* edge_out_restart: the kept copy becomes a redo */
#ifdef BROKEN_REDO_ORDER
                p_release();                /* free_kept first */
                p_hold();                   /* add_redo */
#else
#ifndef BROKEN_DROP_AT_SEND
                p_hold();                   /* add_redo */
                p_release();                /* free_kept */
#endif
#endif
                /* edge_out_recover: send_run sends, keeps, then the redo's hold goes */
                atomic { SEND(DATA, myaid) };
#ifndef BROKEN_DROP_AT_SEND
                p_hold();
                p_release()
#endif
            od
        fi;
        /* finish: ended, the end of stream, then the wait to be released */
        atomic { pended[g] = 1; SEND(EOS, 0) };
        do
        :: atomic { ccur != cg -> cg = ccur; SEND(EOS, 0) }   /* eos_due */
        :: atomic { cdone -> palive[g] = 0; ended ! PS, g, 0 }; break   /* released: exit */
        od
    } unless {
        kill[PS] == 1 ->
        atomic { palive[g] = 0; ended ! PS, g, 1 }
    }
}

proctype Consumer(byte cg)
{
    byte pg, x, typ, aid, i, s_st, s_ep, lost = 0;
    bit there, ok, inval, seen, won;
    pg = pcur;   /* peer_gens at its start */
    {
        do
        :: if
           :: q[cg * NG + 0] ? typ, aid -> x = 0
#if NG > 1
           :: q[cg * NG + 1] ? typ, aid -> x = 1
#endif
#if NG > 2
           :: q[cg * NG + 2] ? typ, aid -> x = 2
#endif
           fi;
            if
            :: (lost >> x) & 1 -> skip                       /* the rest of a lost stream */
            :: !((lost >> x) & 1) && !palive[x] -> lost = lost | (1 << x)   /* lost with its sender */
            :: !((lost >> x) & 1) && x < pg -> skip           /* from a producer since replaced */
            :: !((lost >> x) & 1) && x >= pg && typ == EOS ->
                atomic { cdone = 1; calive[cg] = 0; ended ! CS, cg, 0 }; break   /* done: exits */
            :: !((lost >> x) & 1) && x >= pg && typ == DATA ->
                pg = x;
#ifdef BROKEN_CONFIRM_FIRST
                conf[x] = cg + 1;
#endif
                hold_if();
                if
                :: ok ->
                    /* read: the monitor watches the block meanwhile */
                    c_release()
                :: !ok && inval ->
#ifdef CODE_EINVAL
                    atomic { stale_taken_for_malformed = 1; assert(stale_taken_for_malformed == 0) }
#else
                    atomic { stale_but_alive = palive[x]; assert(stale_but_alive == 0) }
#endif
                :: !ok && !inval ->
                    atomic { stale_but_alive = palive[x]; assert(stale_but_alive == 0) }
                fi;
                conf[x] = cg + 1;   /* done_one: confirmed (to a dead P, lost) */
                ok = 0; inval = 0; aid = 0; typ = 0
            fi
        od
    } unless {
        kill[CS] == 1 ->
        atomic { calive[cg] = 0; reading = 0; ended ! CS, cg, 1 }
    }
}

#define KILL(s, cond) :: atomic { crashes < MAXCRASH && (cond) && kill[s] == 0 -> kill[s] = 1; crashes++ }
#ifdef BYSTANDER
/* Another stage of the graph, holding none of this block, that ends at
 * any time: its reclaim (every end is reclaimed) scans every block, and
 * frees one it finds no holder of, racing the hand-off. */
proctype Bystander()
{
    atomic { ended ! XS, 0, 0 }
}
#define NPROC 3
#else
#define NPROC 2
#endif

proctype Killer()
{
end:
    do
    KILL(PS, palive[pcur])
    KILL(CS, calive[ccur])
    od
}

/* pool_reclaim(ds, dg), in the supervisor. */
inline reclaim(ds, dg) {
    atomic {
        dead[ds] = (dead[ds] > dg + 1 -> dead[ds] : dg + 1);
        if
        :: ds == PS -> phold[dg] = 0
        :: ds == CS -> chold[dg] = 0
        :: else -> skip
        fi
    };
    atomic { lock_take(SUP, 0); lk_slot = NONE };   /* recover a dead owner's lock */
    if
    :: st == HELD ->
        any = 0;
        i = 0;
        do
        :: i < W -> atomic { any = any || NAMES(i, ds, dg) || DEAD_WORD(i); i++ }
        :: else -> i = 0; break
        od;
        if
        :: any -> atomic { if :: st == HELD -> ep++ :: else -> any = 0 fi }
        :: else -> skip
        fi;
        if
        :: any ->
            i = 0;
            do
            :: i < W -> atomic {
                    if
                    :: NAMES(i, ds, dg) || DEAD_WORD(i) -> wcnt[i] = 0; wslot[i] = 0; wgen[i] = 0
                    :: else -> skip
                    fi;
                    i++
                }
            :: else -> i = 0; break
            od
        :: else -> skip
        fi;
        free_if_none(SUP, 0);
        any = 0
    :: else -> skip
    fi
}

proctype Supervisor()
{
    byte ds, dg, live = NPROC, i, s_st, s_ep, a;
    bit crashed, seen, won, any;
    do
    :: ended ? ds, dg, crashed ->
        reclaim(ds, dg);
        if
        :: crashed ->   /* the next incarnation: before it starts, the dead is reclaimed */
            atomic {
                kill[ds] = 0;
                if
                :: ds == PS ->
                    pcur = dg + 1;
                    palive[dg + 1] = 1;
                    pended[dg + 1] = pended[dg];   /* a replacement that dies takes the same part */
                    run Producer(dg + 1, pended[dg])
                :: else ->
                    ccur = dg + 1;
                    calive[dg + 1] = 1;
                    run Consumer(dg + 1)
                fi
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
        assert(leaked == 0);
        a = 1;
        do
        :: a <= nalloc -> not_freed_once = freed[a] != 1; assert(not_freed_once == 0); a++
        :: else -> break
        od
    }
}

/* C reads only the allocation its record refers to, and only while it
 * is HELD. */
active proctype Monitor()
{
end:
    atomic {
        reading && !(st == HELD && cur_aid == raid) ->
        read_unheld = 1;
        assert(read_unheld == 0)
    }
}

init
{
    atomic {
        palive[0] = 1;
        calive[0] = 1;
        run Producer(0, 0);
        run Consumer(0);
        run Supervisor();
        run Killer();
#ifdef BYSTANDER
        run Bystander()
#endif
    }
}
