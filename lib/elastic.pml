/* lib/elastic.pml — an instance joining and leaving a running parallel
 * group (elastic groups, lib/edge.h "Elastic groups": joins: NOTICE, the
 * joiner's gate; leaves: LEAVE on the credit path, the producers' ends of
 * stream, END-SEEN), checked by SPIN (tests/test_elastic_model.sh).
 *
 * How the model's messages are the code's (the model was written from the
 * first version of the protocol, and found the faults listed under Found;
 * the code has each fix):
 *   NOTICE     a WIRE_REC_NOTICE record (wire_notice_t): send_notices and
 *              edge_out_notice_forward in edge_out.c, take_notice and
 *              apply_notice in edge_in.c.  Its count is the number of the
 *              next mark of each origin the producer will send
 *              (edge_out.c mark_next).
 *   START      the code has no START record: every mark carries its number
 *              among its origin's marks (wire_mark_put), and a consumer
 *              takes a path's count from the numbers its marks carry
 *              (note_mark: got = number + 1), from the notices' least
 *              count until the path's first mark.  A START with the
 *              joiner's count, ahead of its first mark, tells the same
 *              thing earlier; the rule "wait for J on mark k iff k >= the
 *              least count the notices gave" is what WAITOK checks before
 *              START.
 *   the gate   edge_in_gate_scan, before setup (child.c await_gate): the
 *              joiner takes no record before every producer was heard of,
 *              which is stronger than the model's holding of its output
 *              behind START; a void gate: edge_out_void, no setup.
 *   LEAVE      WIRE_LEAVE (supervisor to slot), then WIRE_CREDIT_LEAVE on
 *              the slot's credit to each producer (edge_in_leave);
 *              read_credit in edge_out.c sends the EOS at once.
 *   END-SEEN   WIRE_CREDIT_ENDED, sent for every end of stream taken from
 *              an elastic group's producer (next_slow in edge_in.c);
 *              edge_out_ends_seen; finish in child.c.
 *   a newer generation: new_generation, on any message (next_slow).
 *   mark values kept by index: note_mark's pending list.
 *
 * What it shows: while records and marks flow, a supervisor may add an
 * instance to a parallel group and make one leave, one change at a time,
 * at any moment (also once some producers have ended, and a slot that
 * left may join again in a new generation); and still every record
 * reaches the consumer exactly once, a mark is handed on only after every
 * record put before it, every process ends (no joiner's gate waits for
 * ever), and every queue stays within its bound.  It also shows where v1
 * as written is wrong or silent (Found, below), with the fixes modelled.
 *
 * The graph: a source S puts NREC records with NMARK marks (origin S)
 * evenly between them into the producers X0 (and X1 with TWO_X: S's ONE
 * choice picks either for a record; marks go to both); each X sends each
 * record to one slot of the group (its ONE choice) and every mark to
 * every slot it has; the group has two slots, W = slot 0 (active from the
 * start) and J = slot 1 (inactive at the start; BOTH: active too); each
 * slot puts what it takes on to the consumer D, which checks.  Each slot
 * incarnation has a generation (a slot joined is one newer than its
 * last).
 *
 * Processes, and the code each stands for (lib/edge_in.c, lib/edge_out.c,
 * lib/child.c, lib/supervisor.c and lib/grow.c):
 *   Sup     supervisor.c: the controller's decision, carried out one
 *           change at a time (busy), none once every producer reported
 *           DONE.  sup_join = join step 1: fork J (the fork server, as
 *           spawn_one / fork_one) and JOIN(J, g) to each producer on its
 *           control channel, in either order; sup_leave = leave step 1:
 *           LEAVE to the leaver.  A change ends (sst, busy) in the step of
 *           the event that ends it: the joiner's gate opening (a report
 *           from J), the leaver's exit (reap: the slot INACTIVE).
 *   Src     S: edge_out.c's ONE choice (deliver) between X0 and X1, with
 *           a window of WS records per X.
 *   Xp      a producer of the group: edge_out.c, with child.c's control
 *           channel (handle_ctl) and its stage loop.
 *     x_take    a record is chosen for an active slot with credit (deliver,
 *               send_run) and sent (BATCH: it waits in that slot's batch,
 *               x_flush sends it);
 *     on_join   join step 2, from handle_ctl: after X's EOS, J gets only
 *               an EOS (send_eos); else the NOTICEs are owed (join_due)
 *     x_notices ... and go at X's next safe point (recover, send_notices):
 *               NOTICE(J, g, X, counts) to every active sibling and to J,
 *               behind what was sent, then J may be chosen (counts: the
 *               marks X handed on by then, edge_out_mark);
 *     on_leave  leave step 3, from read_credit: LEAVE from L: never chosen
 *               again, what waits in L's batch goes, then L's EOS;
 *     the end   edge_out_eos: the NOTICEs still owed (x_notices; the
 *               end waits for them: NOT_OWED), then an EOS to every slot
 *               it has, DONE
 *               (report_done); then finish, which still serves JOIN and
 *               LEAVE (end_fin) until released.
 *   Slot    an instance of the group: edge_in.c (its producers' streams,
 *           note_mark / complete_mark, credit), edge_out.c (its stream to
 *           D) and child.c (process_all, on_mark, teardown, finish).  An
 *           initial slot knows every producer and has its gate open; a
 *           joiner starts with its gate closed (join steps 5 and 6):
 *     s_take    edge_in_next: a record is taken with room for its output
 *               (D's credit: while the gate is closed it is held, behind
 *               START), and grants its producer credit; a mark is counted
 *               (got); a NOTICE about the slot itself is the gate's (known,
 *               cnt: its count); any other NOTICE is forwarded to D at
 *               once (join step 3, not to the process callback); an EOS
 *               ends that producer;
 *     gate_check  join step 5: every producer sent a NOTICE or an EOS:
 *               start = the least count, START(J, g, start) first, then
 *               the held records, then the queued marks by the rule; a
 *               gate with no NOTICE is void (Found, V1_VOID);
 *     align     complete_mark: a mark goes on once every producer that has
 *               not ended delivered it;
 *     on_ctl    leave step 2: LEAVE on the credit path to each producer
 *               (send_credit with a LEAVE flag);
 *     teardown  leave step 4: input complete (edge_in_complete), OWN's
 *               put, EOS to D; a leaver waits for END-SEEN and exits
 *               (reported and reaped); any other slot waits in finish
 *               (end_rel) to be released or told to leave.
 *   Dst     the consumer D: edge_in.c (note_mark, complete_mark,
 *           new_generation, fresh_peer) with the new rules.  d_notice =
 *           join step 4: a NOTICE about a newer generation of its slot
 *           makes it a peer not ended, start unknown (start_D the least
 *           count, deduplicated per producer); any message from a newer
 *           generation does the same (new_generation: Found, V1_STRICT);
 *           START gives the start; WAITOK: a slot not ended is waited
 *           for on mark k from its START's count on, before it from
 *           start_D on; END-SEEN for every EOS taken (leave steps 4, 5;
 *           Found, V1_ENDSEEN_FLAG).
 *
 *   channel         zmq connection (lib/edge.c)
 *   sx[x]           S -> X_x: records, marks, EOS
 *   xd[x*NS+s]      X_x -> slot s, each message tagged with the generation
 *                   it is meant for: records, marks, NOTICE, EOS
 *   xc[x*NS+s]      slot s -> X_x: LEAVE (the credit path)
 *   sd[s]           slot s -> D, tagged likewise: records, marks, NOTICE,
 *                   START, EOS (with a leaver's flag, V1_ENDSEEN_FLAG)
 *   cx[x], cs[s]    the supervisor's control channels: JOIN, LEAVE (not
 *                   ordered with the data)
 *   xcred, dcred    credit: what a producer may still send a slot, a slot
 *                   D; raised by the consumer's take
 *   endseen[s]      END-SEEN: the generation whose EOS D took
 *   sst, busy, js   the supervisor's view of the slots and its change
 *
 * Abstractions (what is left out, and why that loses nothing here):
 *   - One origin of marks (S), so a NOTICE's counts are one number and the
 *     marks a closed gate queues are counts per producer (got); with
 *     several origins the code keeps them per origin, in arrival order.
 *     Marks are counted, not valued: D keeps a mark's value by its index
 *     (V1_VALUES does as note_mark does today: Found).
 *   - Credit counts records only: marks, NOTICE, START and EOS are few
 *     (bounded by NMARK and the changes) and go without it.  Credit and
 *     END-SEEN arrive at once (a counter, a flag): a later arrival only
 *     delays its receiver, which the interleavings do anyway.  A slot
 *     takes a record only with room for its output; a batch is one
 *     record; S's window is the length of X's queue.
 *   - Without BATCH a record goes to its slot in the step that chose it:
 *     one waiting in the batch and sent before the leaver's EOS cannot be
 *     told from one sent at once and still on its way.
 *   - A producer serves its control channel between steps, never inside
 *     the sending of a mark to its slots (one step): its counts never
 *     stand for a mark half sent.  Its one input is S, so it hands a mark
 *     on at once.
 *   - With two slots a joiner has one sibling (no NOTICE comes twice: the
 *     dedupe is there, unused); one consumer D, one port.
 *   - Releases are not modelled: a producer after its EOS and a slot after
 *     its EOS wait for them at end labels (a valid end).  So every
 *     producer is still there at a joiner's fork and the gate waits for
 *     all of them (one reaped before the fork the supervisor would leave
 *     out of the gate).  No crash, no replacement, no stop.  (A process
 *     replaced during a change learns of the slots from the generations
 *     the supervisor hands it, current_gens in supervisor.c: a joining
 *     slot off in the generation before the joiner's, a leaving one
 *     EDGE_GEN_LEAVING.  Not modelled; tests/test_elastic.c kills the
 *     neighbours of a group at those moments: *_replaced_during_a_*.)
 *   - What a slot sent just before it exited may never leave it (libzmq
 *     issue 4660): at its exit the unread rest of its stream to D may be
 *     dropped.  (A correct run exits with nothing unread.)
 *   - DONE reaches the supervisor at once (a flag); its JOIN may still
 *     reach a producer after that producer's EOS.
 *   - The supervisor makes every change it can (MAXCHG) until every
 *     producer is done: runs with fewer changes are those of the smaller
 *     configurations.
 *   - Steps: an atomic block is one step with at most one receive, then
 *     local work and sends, each asserted not to block.  Scratch variables
 *     are hidden (they live inside one step).
 *
 * Properties (assertions; the names are pan's words when one fails):
 *   lost==0   every record S put, and every record a slot put in its
 *             teardown (OWN), reaches D; nothing is dropped on the way (a
 *             stale generation, after an EOS, an exit's lost tail);
 *   dup==0    no record reaches D twice;
 *   early==0  when D hands on S's k-th mark, every record S put before
 *             it has reached D;
 *   mlost==0  D handed on every mark S put;
 *   nfull     no send into a full channel: queues within the capacities;
 *   and no invalid end state: D completes, every process ends or waits at
 *   an end label (finish), and no joiner's gate nor leaver waits for ever.
 *   Every run is finite (no cycle: pan -DNP -l finds none; checked by
 *   hand, the test checks safety).
 *
 * Macros: NREC, NMARK (<= 7); TWO_X; WX (a slot's window for each
 * producer), WD (D's window for each slot), 1 or 2; LEAVE (the supervisor
 * may make a slot leave: join then leave, MAXCHG 2); REJOIN (and join a
 * slot that left again, in a new generation: MAXCHG 3); BOTH (J active
 * from the start: leave, or with REJOIN leave and join again, MAXCHG 1 or
 * 2); MAXCHG; OWN (each slot incarnation puts one record of its own in
 * teardown); BATCH.
 *
 * Found: v1 as written is wrong in one case and silent in three (each an
 * expected failure of the check):
 *   V1_VOID   A join can come after every producer ended: the supervisor
 *             decides while one still runs, and its JOIN reaches that
 *             producer after its EOS (DONE was on its way).  Every
 *             producer then sends J only its EOS: no consumer ever hears
 *             of J, D may complete and go before J's START, and what J
 *             puts (setup, teardown) is lost (lost, with OWN).  Fix,
 *             modelled: a gate that opens with no NOTICE at all is void:
 *             J has joined nothing, puts nothing and sends nothing (no
 *             START, no EOS), reports and exits; the supervisor marks the
 *             slot INACTIVE.  So J must let nothing out before its gate
 *             opened: run setup after the gate (or never in a void one).
 *   V1_STRICT A consumer learns of J from a NOTICE (join step 4) only, and
 *             drops what comes from a generation it does not know.  But J's
 *             START and what follows come on J's own connection, which D
 *             may read before the sibling's forwarded NOTICE (zmq reads
 *             the pipes in any order): D drops them and then waits for J
 *             for ever (end), or loses J's records.  Fix, modelled: any
 *             message from a newer generation makes it the peer's
 *             generation, not ended (as new_generation does); a START then
 *             gives the start; a later NOTICE about a generation it has
 *             changes nothing (never makes it not ended).
 *   V1_ENDSEEN_FLAG  "a consumer sends END-SEEN when it takes a leaver's
 *             EOS": a consumer does not know who leaves, and a slot whose
 *             input completed before LEAVE came sent its EOS as any slot
 *             does; if only an EOS flagged as a leaver's is acknowledged,
 *             that leaver waits for ever (end) and the change never ends.
 *             Fix, modelled: END-SEEN for every EOS a consumer takes.
 *   V1_VALUES D keeps a mark's value only for the index next in line
 *             (note_mark: idx == done + nvals), as every path counts from
 *             0 today.  A joiner's START makes it count from start_J, so
 *             its mark k can come before any copy of mark k-1; if the
 *             sibling then leaves before mark k, no copy of k ever comes
 *             in line and D never hands it on (mlost).  Fix: keep values
 *             by index (a mark ahead of the line fills its place).
 *
 * Broken variants, which the check must catch:
 *   BROKEN_NOTICE_LATE    X chooses J before its NOTICE went to the
 *                         sibling (sent at some later step): D hands a
 *                         mark on before J's records (early).
 *   BROKEN_EOS_OWED       X's EOS goes while the NOTICEs of a JOIN are
 *                         still owed (J, not yet active, gets none), and
 *                         nothing sends them after: J's gate waits for
 *                         ever (end).  The code did this when the JOIN
 *                         came inside edge_out_eos's wait for credit.
 *   BROKEN_NO_GATE        the joiner's gate opens at the first NOTICE and
 *                         its marks wait only for the producers it knows:
 *                         J hands a mark on before a record another
 *                         producer sent it ahead of that mark (early).
 *   BROKEN_NO_FORWARD     the sibling drops the NOTICEs: D completes
 *                         before J's stream comes (lost).
 *   BROKEN_LEAVE_EARLY    a leaver exits once it sent its EOS, without
 *                         END-SEEN, and the unread tail of its stream is
 *                         lost with it: its EOS too, so D would wait for
 *                         ever (EARLY_UNTOLD: end); told of the exit (the
 *                         supervisor reaps it) D takes that for its end
 *                         and the records in the tail are lost (lost).
 *   BROKEN_LEAVE_EOS_FIRST  X sends a leaver its EOS before the record
 *                         already in the leaver's batch (implies BATCH):
 *                         lost.
 */

#ifdef BROKEN_LEAVE_EOS_FIRST
#ifndef BATCH
#define BATCH
#endif
#endif

#ifndef NREC
#define NREC 2       /* records S puts */
#endif
#ifndef NMARK
#define NMARK 1      /* marks S puts between them */
#endif
#ifdef TWO_X
#define NX 2         /* producers of the group */
#else
#define NX 1
#endif
#define NS 2         /* slots: W = 0, J = 1 */
#ifndef WX
#define WX 1         /* a slot's window for each producer */
#endif
#ifndef WD
#define WD 1         /* D's window for each slot */
#endif
#define WS 1         /* an X's window for S */
#ifdef REJOIN
#ifndef LEAVE
#define LEAVE
#endif
#endif
#ifndef MAXCHG
#if defined(BOTH) && defined(REJOIN)
#define MAXCHG 2
#elif defined(BOTH)
#define MAXCHG 1
#elif defined(REJOIN)
#define MAXCHG 3
#elif defined(LEAVE)
#define MAXCHG 2
#else
#define MAXCHG 1
#endif
#endif
#ifdef REJOIN
#define NG 2         /* generations a slot can reach */
#else
#define NG 1
#endif

/* S's k-th mark comes after this many records (evenly spread) */
#define BEFORE(k) (((k) + 1) * NREC / (NMARK + 1))
/* record ids: S's 0..NREC-1, then each slot incarnation's own (OWN) */
#define OWNID(s, g) (NREC + (s) * NG + (g) - 1)
#define NID (NREC + NS * NG)
/* a NOTICE's two bytes: about slot j in generation gj; from producer x,
 * which had sent c marks */
#define NOTE_A(j, gj) ((j) * 8 + (gj))
#define NOTE_B(x, c) ((x) * 8 + (c))
#define C(x, s) ((x) * NS + (s))
#define NOMARK 15    /* start_D with no count: no mark waits for the slot */

/* capacities: a window of records, every mark, a NOTICE and an EOS per
 * generation (to a slot), the NOTICEs forwarded, START, OWN's record and
 * EOS (to D) */
#define XDCAP (WX + NMARK + 2 * NG + 1)
#define SDCAP (WD + NMARK + NX * MAXCHG + 3)

mtype = {
    D_REC, D_MARK, D_NOTICE, D_START, D_EOS, /* the data, one way */
    C_LEAVE                                  /* on the credit path back */
};

chan sx[NX] = [WS + NMARK + 1] of { mtype, byte };
chan xd[NX * NS] = [XDCAP] of { mtype, byte, byte, byte }; /* type, gen, a, b */
chan xc[NX * NS] = [NG] of { byte };                       /* LEAVE: gen */
chan sd[NS] = [SDCAP] of { mtype, byte, byte, byte };
chan cx[NX] = [MAXCHG] of { byte, byte };                  /* JOIN: slot, gen */
chan cs[NS] = [NG] of { byte };                            /* LEAVE: gen */

/* Credit, as counters the consumer raises when it takes a record (it
 * arrives at once); END-SEEN as the generation whose EOS D took. */
byte xcred[NX * NS]; /* X_x may send slot s this many more records */
byte dcred[NS];      /* slot s may send D this many more */
byte endseen[NS];

byte sgen[NS];      /* each slot's newest generation (0: never ran) */
/* The supervisor's view: each slot's state, the change in flight (busy,
 * on slot js, told: the producers JOIN went to).  Global so that what
 * ends a change (the joiner's gate opening, the leaver's exit and reaping)
 * ends it in the same step: the supervisor may wait before its next
 * change anyway. */
#define INACTIVE 0
#define ACTIVE 1
#define JOINING 2
#define LEAVING 3
byte sst[NS];
bool busy;
byte js;
bool told[2];
bool xdone[NX];     /* DONE from each producer (after its EOS) */
bool d_complete;
#ifdef BROKEN_LEAVE_EARLY
#ifndef EARLY_UNTOLD
byte reaped[NS];    /* D told of a leaver's exit: its end */
#endif
#endif

/* Ghosts, for the assertions. */
byte arrived[NID];  /* arrivals of each record at D */
bool own_put[NID];  /* a slot incarnation put its own record */
byte dmarks;        /* marks D handed on */
#ifdef V1_VALUES
byte dvals;         /* marks whose value D keeps, beyond dmarks */
#endif
byte lost, dup, early, mlost;

/* scratch, inside one step */
hidden byte tg, ta, tb, ti, tj;
hidden mtype tm;

/* ---- the source ------------------------------------------------------------ */

proctype Src()
{
    byte r, m;
    do
    /* a record, to an X with room (S's ONE choice) */
    :: atomic { r < NREC && (m == NMARK || r < BEFORE(m)) && len(sx[0]) < WS ->
        sx[0] ! D_REC, r; r++ }
#if NX > 1
    :: atomic { r < NREC && (m == NMARK || r < BEFORE(m)) && len(sx[1]) < WS ->
        sx[1] ! D_REC, r; r++ }
#endif
    /* a mark, to both */
    :: atomic { m < NMARK && r == BEFORE(m) ->
        assert(nfull(sx[0])); sx[0] ! D_MARK, m;
#if NX > 1
        assert(nfull(sx[1])); sx[1] ! D_MARK, m;
#endif
        m++ }
    :: atomic { r == NREC && m == NMARK ->
        assert(nfull(sx[0])); sx[0] ! D_EOS, 0;
#if NX > 1
        assert(nfull(sx[1])); sx[1] ! D_EOS, 0;
#endif
        break }
    od
}

/* ---- a producer of the group ------------------------------------------------ */

/* to slot t in the generation X knows */
inline x_send(t, m, a, b)
{
    assert(nfull(xd[C(i, t)]));
    xd[C(i, t)] ! m, xg[t], a, b
}

/* A record from S, chosen for slot t (its credit taken).  BATCH: it
 * waits in t's batch, which the flush step sends.  A record in the batch
 * that goes before L's EOS (on_leave) cannot be told from one sent at
 * the choice and still on its way, so the batch is left out unless the
 * broken variant that sends the EOS first is checked (or BATCH asks). */
inline x_take(t)
{
    sx[i] ? _, rid; /* which gives S room (WS: X's queue's length) */
    xcred[C(i, t)]--;
#ifdef BATCH
    ptgt = t; pend = true
#else
    x_send(t, D_REC, rid, 0); rid = 0
#endif
}

inline x_flush()
{
    x_send(ptgt, D_REC, rid, 0); pend = false; rid = 0; ptgt = 0
}

/* Leave step 3: LEAVE from slot t of generation tg, on its credit path:
 * never chosen again; what waits in its batch goes, then its EOS.  After
 * X's own EOS (or from an incarnation since gone): nothing. */
inline on_leave(t)
{
    xc[C(i, t)] ? tg;
    if
    :: tg == xg[t] && act[t] ->
        act[t] = false;
#ifndef BROKEN_LEAVE_EOS_FIRST
        if
        :: pend && ptgt == t -> x_flush()
        :: else -> skip
        fi;
#endif
        x_send(t, D_EOS, 0, 0)
    :: else -> skip
    fi
}

/* Join step 2: JOIN(ta, tg) on the control channel. */
inline on_join()
{
    cx[i] ? ta, tg;
    assert(!act[ta]);
    xg[ta] = tg;
    if
    :: ended -> x_send(ta, D_EOS, 0, 0) /* J gets only an EOS */
    :: else ->
        /* NOTICE to the sibling and to J, behind what was sent; then J
         * may be chosen */
        xcred[C(i, ta)] = WX;
#ifdef BROKEN_NOTICE_LATE
        if
        :: act[1 - ta] -> owe = true; owe_j = ta; owe_c = mcount
        :: else -> skip
        fi;
        x_send(ta, D_NOTICE, NOTE_A(ta, tg), NOTE_B(i, mcount));
        act[ta] = true
#else
        /* As the code does: handle_ctl only notes the notices as owed
         * (join_due); they go at the next safe point (x_notices) */
        owe = true; owe_j = ta
#endif
    fi
}

#ifndef BROKEN_NOTICE_LATE
/* recover (edge_out_recover, send_notices): the owed NOTICEs, to the
 * sibling and to J, with the marks handed on by now; then J may be chosen */
inline x_notices()
{
    if
    :: act[1 - owe_j] -> x_send(1 - owe_j, D_NOTICE, NOTE_A(owe_j, xg[owe_j]), NOTE_B(i, mcount))
    :: else -> skip
    fi;
    x_send(owe_j, D_NOTICE, NOTE_A(owe_j, xg[owe_j]), NOTE_B(i, mcount));
    act[owe_j] = true;
    owe = false; owe_j = 0
}
#endif

#ifdef BROKEN_EOS_OWED
#define NOT_OWED true
#else
#define NOT_OWED (!owe) /* the owed NOTICEs go before X's EOS (edge_out_eos) */
#endif

proctype Xp(byte i)
{
    byte xg[NS];            /* the generation it sends each slot */
    bool act[NS];           /* it may choose the slot, and sends it marks */
    byte mcount;            /* marks it has sent (handed on) */
    bool pend;              /* a record in a slot's batch (LEAVE) */
    byte rid, ptgt;
    bool ended;
    bool owe;               /* NOTICEs owed (BROKEN_NOTICE_LATE: the sibling's) */
    byte owe_j;             /* about which slot */
#ifdef BROKEN_NOTICE_LATE
    byte owe_c;             /* with which count */
#endif

    atomic {
        xg[0] = 1; act[0] = true; xcred[C(i, 0)] = WX;
#ifdef BOTH
        xg[1] = 1; act[1] = true; xcred[C(i, 1)] = WX
#endif
    }
    do
    /* a record from S: the ONE choice, among the slots with credit */
    :: atomic { !pend && sx[i]?[D_REC, _] && act[0] && xcred[C(i, 0)] > 0 -> x_take(0) }
    :: atomic { !pend && sx[i]?[D_REC, _] && act[1] && xcred[C(i, 1)] > 0 -> x_take(1) }
    /* a mark: S is its one input, so it goes on at once, to every slot
     * it has */
    :: atomic { !pend && sx[i]?[D_MARK, _] ->
        sx[i] ? _, _;
        if
        :: act[0] -> x_send(0, D_MARK, 0, 0)
        :: else -> skip
        fi;
        if
        :: act[1] -> x_send(1, D_MARK, 0, 0)
        :: else -> skip
        fi;
        mcount++ }
    /* its end: an EOS to every slot it has, and DONE */
    :: atomic { !pend && sx[i]?[D_EOS, _] && NOT_OWED ->
        sx[i] ? _, _;
        if
        :: act[0] -> x_send(0, D_EOS, 0, 0); act[0] = false
        :: else -> skip
        fi;
        if
        :: act[1] -> x_send(1, D_EOS, 0, 0); act[1] = false
        :: else -> skip
        fi;
        ended = true; xdone[i] = true;
        break }
    :: atomic { pend -> x_flush() }
    :: atomic { nempty(xc[C(i, 0)]) -> on_leave(0) }
    :: atomic { nempty(xc[C(i, 1)]) -> on_leave(1) }
    /* the control channel, between batches */
    :: atomic { !pend && nempty(cx[i]) -> on_join() }
#ifdef BROKEN_NOTICE_LATE
    /* the sibling's NOTICE, at some later step */
    :: atomic { owe ->
        x_send(1 - owe_j, D_NOTICE, NOTE_A(owe_j, xg[owe_j]), NOTE_B(i, owe_c));
        owe = false; owe_j = 0; owe_c = 0 }
#else
    /* the owed NOTICEs, at the next safe point (recover) */
    :: atomic { !pend && owe -> x_notices() }
#endif
    od;
    /* finish: it still serves JOIN and LEAVE until released (the release,
     * at the run's end, is not modelled: waiting here is a valid end) */
end_fin:
    do
    :: atomic { nempty(xc[C(i, 0)]) -> on_leave(0) }
    :: atomic { nempty(xc[C(i, 1)]) -> on_leave(1) }
    :: atomic { !pend && nempty(cx[i]) -> on_join() }
    od
}

/* ---- a slot of the group ---------------------------------------------------- */

inline to_d(m, a, b)
{
    assert(nfull(sd[s]));
    sd[s] ! m, g, a, b
}

/* Mark k = done is complete once every producer that has not ended has
 * delivered it, and some producer did.  (After the gate, a producer not
 * known has ended; BROKEN_NO_GATE: it is not waited for.) */
#if NX > 1
#define ANY_GOT (got[0] > done || got[1] > done)
#define ALL_GOT ((xend[0] || !known[0] || got[0] > done) && (xend[1] || !known[1] || got[1] > done))
#define ALL_END (xend[0] && xend[1])
#define GATE_READY ((known[0] || xend[0]) && (known[1] || xend[1]))
#define NONE_KNOWN (!known[0] && !known[1])
#define SOME_KNOWN (known[0] || known[1])
#else
#define ANY_GOT (got[0] > done)
#define ALL_GOT (xend[0] || !known[0] || got[0] > done)
#define ALL_END (xend[0])
#define GATE_READY (known[0] || xend[0])
#define NONE_KNOWN (!known[0])
#define SOME_KNOWN (known[0])
#endif

inline align()
{
    do
    :: gate && ANY_GOT && ALL_GOT -> to_d(D_MARK, 0, 0); done++
    :: else -> break
    od
}

/* Join step 5: the gate opens once every producer sent a NOTICE about
 * this slot or an EOS.  start = the least count; START first, then what
 * was held; the queued marks then follow the rule (align). */
inline gate_check()
{
    if
#ifdef BROKEN_NO_GATE
    :: !gate && !isvoid && (SOME_KNOWN || ALL_END) ->
#else
    :: !gate && !isvoid && GATE_READY ->
#endif
        if
#ifndef V1_VOID
        :: NONE_KNOWN ->
            /* void: no consumer heard of it, and nothing will come */
            isvoid = true
#endif
        :: else ->
            tj = NOMARK;
            if
            :: known[0] && cnt[0] < tj -> tj = cnt[0]
            :: else -> skip
            fi;
            cnt[0] = 0;
#if NX > 1
            if
            :: known[1] && cnt[1] < tj -> tj = cnt[1]
            :: else -> skip
            fi;
            cnt[1] = 0;
#endif
            if
            :: tj == NOMARK -> tj = 0 /* no producer listed S */
            :: else -> skip
            fi;
            done = tj;
            to_d(D_START, tj, 0);
            do
            :: nempty(held) -> held ? ta; to_d(D_REC, ta, 0)
            :: empty(held) -> break
            od;
            gate = true;
            assert(busy && js == s && sst[s] == JOINING);
            sst[s] = ACTIVE; busy = false; js = 0; told[0] = false; told[1] = false
        fi
    :: else -> skip
    fi
}

/* The next message from producer x. */
inline s_take(x)
{
    xd[C(x, s)] ? tm, tg, ta, tb;
    if
    :: tg != g || xend[x] ->
        /* meant for an older incarnation, or after that producer's EOS */
        if
        :: tm == D_REC -> lost++; assert(lost == 0)
        :: else -> skip
        fi
    :: else ->
        if
        :: tm == D_REC ->
            dcred[s]--;
            xcred[C(x, s)]++; /* the take grants its producer one more */
            if
            :: gate -> to_d(D_REC, ta, 0)
            :: else -> assert(nfull(held)); held ! ta /* behind START */
            fi
        :: tm == D_MARK -> got[x]++
        :: tm == D_NOTICE && ta / 8 == s ->
            /* about this slot: its gate's */
            assert(ta % 8 == g && !known[x] && tb / 8 == x);
            known[x] = true; got[x] = tb % 8;
            if
            :: !gate -> cnt[x] = got[x] /* its count, for start */
            :: else -> skip
            fi
        :: tm == D_NOTICE && ta / 8 != s ->
            /* join step 3: forwarded at once, behind what it put */
            assert(gate);
#ifndef BROKEN_NO_FORWARD
            to_d(D_NOTICE, ta, tb)
#else
            skip
#endif
        :: tm == D_EOS -> xend[x] = true
        fi;
        gate_check();
        if
        :: isvoid -> goto gone /* it exits at once, having put nothing */
        :: else -> skip
        fi;
        align()
    fi
}

/* Leave step 2: LEAVE on the credit path to each producer whose EOS has
 * not come. */
inline on_ctl()
{
    cs[s] ? tg;
    assert(tg == g);
    leaving = true;
    if
    :: !xend[0] -> assert(nfull(xc[C(0, s)])); xc[C(0, s)] ! g
    :: else -> skip
    fi;
#if NX > 1
    if
    :: !xend[1] -> assert(nfull(xc[C(1, s)])); xc[C(1, s)] ! g
    :: else -> skip
    fi;
#endif
    skip
}

#ifdef OWN
#define OWN_ROOM (dcred[s] > 0) /* the teardown's put needs credit */
#else
#define OWN_ROOM true
#endif

proctype Slot(byte s; byte g; bool joiner)
{
    bool xend[NX], known[NX]; /* a producer's EOS came; its NOTICE came */
    byte got[NX];             /* marks it delivered (from its count on) */
    byte cnt[NX];             /* the counts in the NOTICEs, until the gate */
    byte done;                /* marks handed on */
    bool gate, isvoid, leaving;
    chan held = [WD] of { byte }; /* output made while the gate is closed */

    atomic {
        dcred[s] = WD;
        gate = !joiner;
        known[0] = !joiner;
#if NX > 1
        known[1] = !joiner;
#endif
    }
    do
    /* a record only with room for its output; anything else at once */
    :: atomic { xd[C(0, s)]?[D_REC, _, _, _] && dcred[s] > 0 && !isvoid -> s_take(0) }
    :: atomic { nempty(xd[C(0, s)]) && !xd[C(0, s)]?[D_REC, _, _, _] && !isvoid -> s_take(0) }
#if NX > 1
    :: atomic { xd[C(1, s)]?[D_REC, _, _, _] && dcred[s] > 0 && !isvoid -> s_take(1) }
    :: atomic { nempty(xd[C(1, s)]) && !xd[C(1, s)]?[D_REC, _, _, _] && !isvoid -> s_take(1) }
#endif
    :: atomic { nempty(cs[s]) -> on_ctl() }
    /* input complete (every mark handed on by now): teardown, EOS */
    :: atomic { gate && ALL_END && OWN_ROOM ->
#ifdef OWN
        own_put[OWNID(s, g)] = true; to_d(D_REC, OWNID(s, g), 0); dcred[s]--;
#endif
        to_d(D_EOS, leaving, 0); break }
    od;
    /* after its EOS: any slot but a leaver waits to be released (not
     * modelled: a valid end) or told to leave; a leaver waits for
     * END-SEEN (leave step 4) */
    if
    :: !leaving ->
end_rel:
        atomic { nempty(cs[s]) -> on_ctl() }
    :: else -> skip
    fi;
#ifndef BROKEN_LEAVE_EARLY
    (endseen[s] == g);
#endif
gone:
    atomic {
        /* What it sent just before it exited may never leave it (libzmq
         * issue 4660): the unread rest of its stream may be dropped. */
        if
        :: nempty(sd[s]) ->
            do
            :: sd[s] ? tm, tg, ta, tb ->
                if
                :: tm == D_REC -> lost++
                :: else -> skip
                fi
            :: empty(sd[s]) -> break
            od;
            assert(lost == 0)
        :: true -> skip
        fi;
        /* reaped: the change is over, the slot INACTIVE */
        assert(busy && js == s && (sst[s] == LEAVING || isvoid));
#ifdef BROKEN_LEAVE_EARLY
#ifndef EARLY_UNTOLD
        reaped[s] = g;
#endif
#endif
        sst[s] = INACTIVE; busy = false; js = 0; told[0] = false; told[1] = false
    }
}

/* ---- the consumer ----------------------------------------------------------- */

/* Slot j becomes a peer in generation gj: not ended, start unknown. */
inline adopt(j, gj)
{
    dg[j] = gj; dend[j] = false; sknown[j] = false; dgot[j] = 0;
    startd[j] = NOMARK; seen[j] = 0
}

/* A slot that has not ended is waited for on the next mark: after its
 * START by the count, before it from start_D on. */
#define WAITOK(j) (dend[j] || (sknown[j] && dgot[j] > dmarks) || (!sknown[j] && startd[j] > dmarks))
#ifdef V1_VALUES
#define ANY_D (dvals > 0)
#else
#define ANY_D ((sknown[0] && dgot[0] > dmarks) || (sknown[1] && dgot[1] > dmarks))
#endif

inline align_d()
{
    do
    :: ANY_D && WAITOK(0) && WAITOK(1) ->
        /* mark order: every record S put before this mark is here */
        ti = 0;
        do
        :: ti < BEFORE(dmarks) ->
            if
            :: arrived[ti] == 0 -> early++
            :: else -> skip
            fi;
            ti++
        :: else -> break
        od;
        assert(early == 0);
#ifdef V1_VALUES
        dvals--;
#endif
        dmarks++
    :: else -> break
    od
}

/* Join step 4: NOTICE about slot j in generation gj, from producer x,
 * which had sent c marks. */
inline d_notice(j, gj, x, c)
{
    if
    :: gj > dg[j] -> adopt(j, gj); startd[j] = c; seen[j] = 1 << x
    :: gj == dg[j] && !sknown[j] && (seen[j] & (1 << x)) == 0 ->
        if
        :: c < startd[j] -> startd[j] = c
        :: else -> skip
        fi;
        seen[j] = seen[j] | (1 << x)
    :: else -> skip /* seen, after START, or about an older generation */
    fi
}

inline d_take(j)
{
    sd[j] ? tm, tg, ta, tb;
    if
    :: tg < dg[j] ->
        /* from an older incarnation (only once a peer was superseded) */
        if
        :: tm == D_REC -> lost++; assert(lost == 0)
        :: else -> skip
        fi
#ifdef V1_STRICT
    :: tg > dg[j] ->
        /* a generation no NOTICE told of: dropped */
        if
        :: tm == D_REC -> lost++; assert(lost == 0)
        :: else -> skip
        fi
#endif
    :: else ->
        if
        :: tg > dg[j] -> adopt(j, tg) /* as new_generation: a joiner's START */
        :: else -> skip
        fi;
        if
        :: dend[j] ->
            /* after its EOS */
            if
            :: tm == D_REC -> lost++; assert(lost == 0)
            :: else -> skip
            fi
        :: else ->
            if
            :: tm == D_REC ->
                arrived[ta]++;
                if
                :: arrived[ta] > 1 -> dup++
                :: else -> skip
                fi;
                assert(dup == 0);
                if /* the take grants the slot one more */
                :: tg == sgen[j] -> dcred[j]++
                :: else -> skip
                fi
            :: tm == D_MARK ->
#ifdef V1_VALUES
                /* note_mark: a value is kept only for the index next in
                 * line (done + nvals) */
                if
                :: dgot[j] == dmarks + dvals -> dvals++
                :: else -> skip
                fi;
#endif
                dgot[j]++
            :: tm == D_START ->
                assert(!sknown[j]);
                sknown[j] = true; dgot[j] = ta; startd[j] = NOMARK; seen[j] = 0
            :: tm == D_EOS ->
                dend[j] = true;
#ifdef V1_ENDSEEN_FLAG
                if /* END-SEEN only for an EOS sent as a leaver's */
                :: ta -> endseen[j] = tg
                :: else -> skip
                fi
#else
                endseen[j] = tg /* END-SEEN, for every EOS */
#endif
            :: tm == D_NOTICE -> d_notice(ta / 8, ta % 8, tb / 8, tb % 8)
            fi
        fi;
        align_d()
    fi
}

#ifdef BROKEN_LEAVE_EARLY
#ifndef EARLY_UNTOLD
/* told of a leaver's exit (its reaping), D takes it for its end */
#define REAPED(j) (!dend[j] && reaped[j] == dg[j])
#else
#define REAPED(j) false
#endif
#else
#define REAPED(j) false
#endif

/* input complete: every slot ended (in the step that ended the last) */
inline d_end()
{
    if
    :: dend[0] && dend[1] -> d_complete = true; break
    :: else -> skip
    fi
}

proctype Dst()
{
    byte dg[NS], dgot[NS], startd[NS], seen[NS];
    bool dend[NS], sknown[NS];

    atomic {
        /* W runs from the start; J is inactive: ended, generation 0
         * (BOTH: J runs from the start too) */
        dg[0] = 1; sknown[0] = true; startd[0] = NOMARK;
        sknown[1] = true; startd[1] = NOMARK;
#ifdef BOTH
        dg[1] = 1
#else
        dend[1] = true
#endif
    }
    do
    :: atomic { nempty(sd[0]) -> d_take(0); d_end() }
    :: atomic { nempty(sd[1]) -> d_take(1); d_end() }
    :: atomic { REAPED(0) -> dend[0] = true; align_d(); d_end() }
    :: atomic { REAPED(1) -> dend[1] = true; align_d(); d_end() }
    od
}

/* ---- the supervisor --------------------------------------------------------- */

#if NX > 1
#define ALL_XDONE (xdone[0] && xdone[1])
#else
#define ALL_XDONE (xdone[0])
#endif
#ifdef REJOIN
#define CAN_JOIN(j) (sst[j] == INACTIVE)
#else
#define CAN_JOIN(j) (sst[j] == INACTIVE && sgen[j] == 0)
#endif
#define CAN_CHANGE (!busy && changes < MAXCHG && !ALL_XDONE)

/* Join step 1: fork J (setup), then JOIN(J, g) to each producer, the
 * first in the same step (nothing can tell them apart), the other in a
 * later one. */
inline sup_join(j, x)
{
    sgen[j]++; sst[j] = JOINING; js = j; busy = true; changes++;
    run Slot(j, sgen[j], true);
    assert(nfull(cx[x])); cx[x] ! j, sgen[j]; told[x] = true
}

/* Leave step 1. */
inline sup_leave(j)
{
    sst[j] = LEAVING; js = j; busy = true; changes++;
    assert(nfull(cs[j])); cs[j] ! sgen[j]
}

/* One change at a time (busy), none once every producer is done, at most
 * MAXCHG.  Its end comes with the event that ends it (see sst); with no
 * change left to make it waits (for the run's end: a valid end). */
proctype Sup()
{
    byte changes;

end_sup:
    do
    :: atomic { CAN_CHANGE && CAN_JOIN(1) -> sup_join(1, 0) }
#if NX > 1
    :: atomic { CAN_CHANGE && CAN_JOIN(1) -> sup_join(1, 1) }
#endif
#ifdef REJOIN
    :: atomic { CAN_CHANGE && CAN_JOIN(0) -> sup_join(0, 0) }
#if NX > 1
    :: atomic { CAN_CHANGE && CAN_JOIN(0) -> sup_join(0, 1) }
#endif
#endif
#ifdef LEAVE
    :: atomic { CAN_CHANGE && sst[0] == ACTIVE && sst[1] == ACTIVE -> sup_leave(0) }
    :: atomic { CAN_CHANGE && sst[0] == ACTIVE && sst[1] == ACTIVE -> sup_leave(1) }
#endif
#if NX > 1
    /* JOIN(J, g) to the other producer */
    :: atomic { busy && sst[js] == JOINING && !told[0] ->
        assert(nfull(cx[0])); cx[0] ! js, sgen[js]; told[0] = true }
    :: atomic { busy && sst[js] == JOINING && !told[1] ->
        assert(nfull(cx[1])); cx[1] ! js, sgen[js]; told[1] = true }
#endif
    od
}

init
{
    atomic {
        sgen[0] = 1; sst[0] = ACTIVE;
        run Src();
        run Xp(0);
#if NX > 1
        run Xp(1);
#endif
        run Slot(0, 1, false);
#ifdef BOTH
        sgen[1] = 1; sst[1] = ACTIVE;
        run Slot(1, 1, false);
#endif
        run Dst();
        run Sup()
    }
    /* the end: D completed and nothing else can move */
    atomic {
        timeout && d_complete;
        ti = 0;
        do
        :: ti < NID ->
            if
            :: (ti < NREC || own_put[ti]) && arrived[ti] == 0 -> lost++
            :: else -> skip
            fi;
            ti++
        :: else -> break
        od;
        assert(lost == 0);
        mlost = NMARK - dmarks;
        assert(mlost == 0)
    }
}
