/* lib/edge.pml — a Promela model of the edge protocol (lib/edge.h): credit,
 * batches, end of stream, release, and recovery (generations, chained
 * confirmations, redelivery, replacement).  tests/test_model.sh checks it
 * with SPIN, exhaustively, in the configurations it lists.
 *
 * The graph: a source P puts N items over a parallel (ONE) choice between
 * NC recoverable consumers C[0..NC-1] (NC = 1: a plain edge), and each C
 * sends to the sink, the parent's output collector.  With FORWARD each C
 * puts every item it takes on to the sink: the chain P -> C -> sink, in
 * which C confirms an input only once the sink has confirmed what it made
 * of it.  Without FORWARD a C puts nothing: processing is the observation
 * (a stage with a side effect, as one that writes a file), and it only
 * ends its stream to the sink.  A killer may crash a C at any step, up to
 * MAXCRASH times in all; the supervisor replaces it.
 *
 * Where the C code is (the model's names first):
 *
 *   proctype Producer   lib/edge_out.c as the source P uses it, with its
 *                       stage loop (lib/child.c: setup's puts, recover,
 *                       finish).  One loop; `stage` (setup's puts,
 *                       edge_out_eos, finish's wait to be released),
 *                       `inrec` (inside edge_out_recover) and `inrun`
 *                       (inside send_run) stand for where the code is.
 *     piece, PICK, FIT  send_run, tree_fit, deliver: a run larger than the
 *                       credit goes in pieces; the choice takes the branch
 *                       with the most credit that the piece fits.
 *     send_run's wait   o->wait = child.c wait_sock/poll_serving: credit,
 *                       or a control message (handle_ctl, on_restart).
 *     read_credit_of    read_credit: generations checked, counts
 *                       cumulative, release_kept.
 *     out_restart       edge_out_restart with redo_target, rebuild,
 *                       add_redo and fresh_peer.
 *     inrec steps       edge_out_recover (+ child.c recover, flush_port).
 *     ENDING            edge_out_eos: the redo list before the ends
 *                       (cf5c516), then send_eos to each consumer, DONE.
 *   proctype Consumer   lib/edge_in.c with its one producer, chained to its
 *                       output (edge_in_chain: every recoverable stage is
 *                       chained), and child.c process_all, settle_all,
 *                       finish, end_again (`fin`: CHILD_FINISHED).
 *     take, receive     edge_in_next (gens, "message after end of stream")
 *     c_grant           grant (the rule; chained: at most two windows beyond
 *     c_send_credit     what it can confirm), send_credit (only when heard)
 *     in_hand step      count_done, done_one (a checkpoint when due)
 *     checkpoint        checkpoint (the flush is empty: every put has left)
 *     settle, stl       edge_in_settle (edge_out_poll, edge_out_settled),
 *                       as the step after the one that called it
 *     idle steps        edge_in_idle, wait_input and its settle on waking
 *     putting           the process callback's put: send_run to the sink,
 *                       its read_credit when short
 *     the escape        SIGKILL: the process, its inbox and what was
 *                       queued in it are gone
 *   proctype Sink       edge_in.c as sup_next (supervisor.c) uses it: not
 *                       chained, confirming (its producers are
 *                       recoverable), stale generations dropped,
 *                       new_generation.
 *   proctype Supervisor supervisor.c: on_ctl (DONE), try_release,
 *                       consumer_done, child_died with its resume
 *                       modes, restart_child, send_restart, reap (a clean
 *                       exit once released is no death).
 *   proctype Killer     a SIGKILL to a consumer, at any time.
 *
 *   channel             zmq connection (lib/edge.c)
 *   pdata[c]            P's ROUTER -> the inbox of C[c]'s current process:
 *                       WIRE_DATA (1..K records) and WIRE_EOS, in order
 *   pcredit[c]          the same connection back: WIRE_CREDIT
 *   sdata[c*NG+g]       C[c]'s process of generation g -> the sink's inbox:
 *                       each process has its own connection, and zmq reads
 *                       the sink's pipes in any order
 *   scredit[c]          the sink -> C[c]'s current process: WIRE_CREDIT
 *   ctl[i]              the supervisor's control channel to process i
 *                       (P is i = NC): RESTART, RELEASE.  Kept across
 *                       replacements: a replacement ignores what was meant
 *                       for the process it replaces (child.c handle_ctl).
 *                       Not ordered with the data channels.
 *   done_ch             WIRE_DONE to the supervisor
 *   death               the child's pidfd turning readable (reap), and
 *                       whether it exited cleanly
 *
 * Abstractions (what the model does not show, and why):
 *   - An item is its id and the redelivered flag (WIRE_REC_REDO, and the
 *     mpx.redelivered meta that a stage's puts carry on).  No bytes, no
 *     other meta.  Byte credit is left out; that it may cut a piece
 *     shorter than the item credit allows is covered by sending any
 *     shorter piece.  A batch is any 1..K consecutive items, whatever the
 *     timers and the quarter-window rule would choose.
 *   - A kept message is kept per record, and the redo list goes out in
 *     runs of 1..K records with one target: every grouping rebuild's one
 *     run per kept message can give, and more.
 *   - A chained consumer's output is one record per message, sent by the
 *     put itself (the code may hold puts in a batch until the checkpoint
 *     flushes it; a crash before the flush is a crash before the put).
 *     Its kept messages are then those past oconf, and settled is oconf.
 *     Puts in teardown are left out: the code checkpoints them before the
 *     process counts as ended (edge_in_settle_all: "the output moved"),
 *     which makes them what this model's puts are, settled before
 *     `ended`; without that check a process killed once ended lost the
 *     teardown's last put from its batch (tests/test_ended.c).  A stage
 *     that stopped itself settles its teardown's puts the same way
 *     (edge_in_settle_all on a closed input: its output only).
 *   - The credit target (EDGE_TARGET_TICKS at the measured pace) is any of
 *     TMIN..W at each grant.  A chained input checkpoints once CP_EVERY
 *     records are done, or at any record before (the timer).  The sink
 *     tells a confirmation at once or later (EDGE_CONFIRM_TICKS).
 *   - Marks are left out: they need a broadcast to mean anything, and
 *     after a crash they are dropped, not sent again (rebuild counts
 *     marks_lost), which is documented as such.
 *   - Left out too: stopping (mpx_stop, edge_in_close, CREDIT_CLOSED, the
 *     STOPPED resume mode), GO/HELLO/READY, owed restarts, statistics,
 *     timeouts, the item in hand (mpx.failures, and giving a poison item
 *     up: a loss on purpose), the fork server, and more than one port.
 *     Only one level is recoverable: the consumers' consumer (the sink)
 *     is not, so a chained producer never sends again (two recoverable
 *     levels, with redo seqs counted in edge_out_settled, are left to
 *     tests/test_chaos.c).
 *     P never dies (a source is not recoverable: its death fails the
 *     run), so its generation stays 0 and prod_gen never differs; the
 *     sink is the parent, which does not die either.
 *   - The parent's collector and supervisor are two proctypes here: they
 *     interleave more freely than the one thread that runs both.
 *   - What a process sent just before it was killed may never leave it
 *     (libzmq issue 4660): the sink may drop the unread rest of a crashed
 *     process's channel, and P may ignore its credit.  P's sends to a
 *     process that died are lost (CONNECT_ROUTING_ID queues them in the
 *     pipe, which edge_out_restart's disconnect drops), never refused.
 *     The sink's credit to a dead process is refused (EHOSTUNREACH: not
 *     counted as told) or lost.
 *   - Steps: an atomic block is one step; it holds at most one receive,
 *     then local work and sends, so no other process can tell it from the
 *     code's finer steps.  A consumer may crash between any two steps.  A
 *     process goes idle with nothing waiting, or once after each event
 *     with something waiting (a message still on its way).
 *   - SPIN's state vector: scratch variables are `hidden` (they live only
 *     inside one atomic step), and a process that ended forgets its state.
 *
 * Properties: assertions — every arrival of an id but one carries the flag
 * (the documented contract: README, "Delivery is at least once"; and
 * tests/test_chaos.c), a flag only after a crash, with ORDERED every
 * arrival after the first carries it; records in flight on each edge
 * within its window; no send into a full channel (so queues are bounded
 * by the capacities below); nothing after an end of stream, nothing to a
 * process that was released; at the end every id arrived, exactly once
 * when nothing crashed.  No invalid end state: every process ends (only
 * the killer may wait forever).  With pan -DNP and no progress label, no
 * cycle at all: every run is finite.
 *
 * Found: with FORWARD and NC = 2, ORDERED does not hold (the documented
 * contract does).  C1 puts item x on to the sink and is killed while that
 * message is still on its way; P sends x again, flagged, to C0, which
 * puts it on; the sink reads C0's copy first, then C1's old one: it has
 * not heard from C1's replacement yet, so it takes it.  The later arrival
 * is the unflagged one (tests/test_model.sh SOURCE_ROOT ordered_forward
 * shows it).  SINK_FENCE models a fix for the parent's collector: in
 * restart_child, before any RESTART goes out, the sink stops taking
 * anything from the dead generation (the supervisor and the sink are one
 * thread); with it ORDERED holds there too (ordered_forward_fenced).  A
 * consumer that is a stage would need the supervisor to wait for its
 * acknowledgement of such a fence before the RESTART, the control channel
 * not being ordered with the data.
 *
 * Broken variants, which the check must catch:
 *   BROKEN_EOS_FIRST      P sends its end of stream before the records a
 *                         replaced consumer held (the bug cf5c516 fixed).
 *   BROKEN_CONFIRM_EARLY  a chained consumer confirms what it did without
 *                         waiting for its output to be confirmed.
 */

#ifndef N
#define N 3          /* items the source puts */
#endif
#ifndef NC
#define NC 2         /* consumers behind the choice (1 or 2) */
#endif
#ifndef MAXCRASH
#define MAXCRASH 1   /* crashes in all */
#endif
#define NG (MAXCRASH + 1)  /* generations a consumer can reach */
#define NCH (NC * NG)
#define K 2          /* records per message at most */
#ifndef W
#define W 3          /* each consumer's window, and the start allowance */
#endif
#define TMIN 2       /* EDGE_TARGET_MIN */
/* The credit target: any of TMIN..W at each grant (it follows the
 * measured pace; W, the start allowance, before there is one). */
#define TARGET if :: tt = TMIN :: tt = W fi
#define CP_EVERY 2   /* a chained input checkpoints at least this often */
#define ROOT 255     /* the dispatch root (the choice) as a target */
#define PID NC       /* P's index in ctl[] and in messages to the supervisor */
#define DCAP (W + 1) /* a data channel: a window of messages, then EOS */
#define CCAP ((2 * N + 3) * NG) /* credit: a grant and a confirmation per record, per process */

#define MIN(a, b) ((a) < (b) -> (a) : (b))
#define MAX(a, b) ((a) > (b) -> (a) : (b))

mtype = { DATA, EOS, RESTART, RELEASE };

chan pdata[NC] = [DCAP] of { mtype, byte, byte, bit, byte, bit }; /* type, n, id, flag, id, flag */
chan pcredit[NC] = [CCAP] of { byte, byte, byte };     /* consumer gen, items, confirmed */
chan sdata[NCH] = [DCAP] of { mtype, byte, bit };      /* type, id, flag */
chan scredit[NC] = [CCAP] of { byte, byte, byte };     /* items, confirmed, prod_gen */
chan ctl[NC + 1] = [4] of { mtype, byte, byte, byte }; /* type, gen, consumer, its new gen */
chan done_ch = [2 * NC + 4] of { byte, byte };         /* who, gen */
chan death = [NC + 2 + MAXCRASH] of { byte, byte, bit }; /* who, gen, clean */

byte cgen[NC];      /* generation of C[c]'s current process */
bool alive[NC];     /* it runs */
bool ended[NC];     /* blackbox_t.ended: its end of stream is on its way */
bool gone[NC];      /* it exited, released */
bool kill[NC];      /* the killer chose it */
bool crashed[NCH];  /* process (c, g) crashed */
byte crashes;
bool sink_complete;
byte sfence[NC];    /* SINK_FENCE: the sink takes nothing from C[c] older */

/* Ghosts, for the assertions only. */
byte seen[N];         /* arrivals of each id where it is observed */
byte plain[N];        /* of them, without the redelivered flag */
byte inflight[NC];    /* records P sent C[c]'s current process, not yet taken */
byte sinflight[NCH];  /* records C[c] of gen g sent the sink, not yet taken */

/* Scratch for the inside of one atomic step, dead after it (every atomic
 * step runs to its end: sends are preceded by nfull assertions), so they
 * are shared and kept out of the state vector. */
hidden byte tx, ty, tk, tt, ti, tj, ta, tb, tc;
hidden byte tmore, trel;
hidden mtype tmt;

/* An arrival where items are observed.  The documented contract (README,
 * "Delivery is at least once"; tests/test_chaos.c): all but one arrival
 * of an id carry the flag, and a flag means a crash.  ORDERED: moreover
 * every arrival after the first carries it. */
inline observe(id, r)
{
    assert(!r || crashes > 0);
    assert(r || plain[id] == 0);
#ifdef ORDERED
    assert(seen[id] == 0 || r);
#endif
    seen[id]++;
    plain[id] = plain[id] + 1 - r
}

/* ---- the source ----------------------------------------------------------- */

#define ROOM(c) (grant[c] > sent[c] -> grant[c] - sent[c] : 0)
#if NC > 1
#define FIT (tgt != ROOT -> ROOM(tgt) : MAX(ROOM(0), ROOM(1)))
#define CREDIT_WAITING (nempty(pcredit[0]) || nempty(pcredit[1]))
#define EOS_DUE (eos_due[0] || eos_due[1])
#else
#define FIT ROOM(0)
#define CREDIT_WAITING nempty(pcredit[0])
#define EOS_DUE eos_due[0]
#endif

#define PUTTING 0 /* setup: putting the items */
#define ENDING 1  /* edge_out_eos */
#define WAITING 2 /* finish: waiting to be released */

proctype Producer()
{
    byte next;                          /* items put so far */
    byte kgen[NC], sent[NC], grant[NC], conf[NC]; /* out_peer_t */
    bool eos_due[NC];
    bool eos_sent, released;
    byte stage;                         /* PUTTING, ENDING, WAITING */
    bool inrec, inrun;
    byte run_n, tgt;                    /* the run being sent, and where */
    byte run_id[K];
    bit run_r[K];
    chan kept[NC] = [N] of { byte };    /* ids, in the order sent */
    chan redo = [N] of { byte, byte };  /* id, target */

    atomic {
        tx = 0;
        do
        :: tx < NC -> grant[tx] = W; tx++
        :: else -> break
        od
    }

/* edge_out_restart: consumer tc's process was replaced by one of gen tb.
 * What it had not confirmed goes on the redo list, to its siblings or
 * (after our end of stream) to the replacement only; its credit starts
 * afresh.  (zmq drops what waited for the dead process: see Consumer.) */
#define out_restart()                                                        \
    if                                                                       \
    :: tb <= kgen[tc] -> skip /* old news */                                 \
    :: else ->                                                               \
        tj = sent[tc] - len(kept[tc]);                                       \
        do                                                                   \
        :: nempty(kept[tc]) ->                                               \
            kept[tc] ? tx;                                                   \
            if                                                               \
            :: tj >= conf[tc] ->                                             \
                assert(nfull(redo));                                         \
                redo ! tx, (eos_sent -> tc : ROOT)                           \
            :: else -> skip                                                  \
            fi;                                                              \
            tj++                                                             \
        :: empty(kept[tc]) -> break                                          \
        od;                                                                  \
        kgen[tc] = tb; sent[tc] = 0; grant[tc] = W; conf[tc] = 0;            \
        eos_due[tc] = eos_sent                                               \
    fi

/* child.c handle_ctl: one control message */
#define handle_ctl()                                                         \
    ctl[PID] ? tmt, ta, tc, tb;                                              \
    if                                                                       \
    :: tmt == RESTART -> out_restart()                                       \
    :: tmt == RELEASE -> released = true                                     \
    fi

/* read_credit, for consumer x: every credit message waiting */
#define read_credit_of(x)                                                    \
    do                                                                       \
    :: nempty(pcredit[x]) ->                                                 \
        pcredit[x] ? ta, tb, tc;                                             \
        if                                                                   \
        :: ta != kgen[x] -> skip /* from a process since replaced */         \
        :: ta == kgen[x] && crashed[x * NG + ta] -> skip /* lost with it */  \
        :: ta == kgen[x] ->                                                  \
            grant[x] = MAX(grant[x], tb);                                    \
            if                                                               \
            :: tc > conf[x] && tc <= sent[x] ->                              \
                conf[x] = tc;                                                \
                do /* release_kept */                                        \
                :: len(kept[x]) > 0 && sent[x] - len(kept[x]) < conf[x] ->   \
                    kept[x] ? _                                              \
                :: else -> break                                             \
                od                                                           \
            :: else -> skip                                                  \
            fi                                                               \
        fi                                                                   \
    :: empty(pcredit[x]) -> break                                            \
    od

#if NC > 1
#define read_credit() read_credit_of(0); read_credit_of(1)
#else
#define read_credit() read_credit_of(0)
#endif

/* A message for consumer tx's current process (deliver's leaf, send_to);
 * one meant for a process that died is lost with it. */
#define to_consumer(T, n, i0, r0, i1, r1)                                    \
    if                                                                       \
    :: kgen[tx] == cgen[tx] && alive[tx] ->                                  \
        assert(nfull(pdata[tx]));                                            \
        pdata[tx] ! T, n, i0, r0, i1, r1                                     \
    :: else ->                                                               \
        /* never anything to a process that was released */                 \
        assert(!(kgen[tx] == cgen[tx] && gone[tx]))                          \
    fi

/* One piece of the run: as many records as the credit allows (or fewer:
 * byte credit), to the branch with the most credit that can take them. */
#define piece()                                                              \
    tk = MIN(FIT, run_n);                                                    \
    CUT;                                                                     \
    if                                                                       \
    :: tgt != ROOT -> tx = tgt                                               \
    :: tgt == ROOT -> tx = PICK                                              \
    fi;                                                                      \
    if                                                                       \
    :: tk == 1 -> to_consumer(DATA, 1, run_id[0], run_r[0], 0, 0)            \
    :: tk == 2 -> to_consumer(DATA, 2, run_id[0], run_r[0], run_id[1], run_r[1]) \
    fi;                                                                      \
    if                                                                       \
    :: kgen[tx] == cgen[tx] && alive[tx] ->                                  \
        inflight[tx] = inflight[tx] + tk;                                    \
        assert(inflight[tx] <= W)                                            \
    :: else -> skip                                                          \
    fi;                                                                      \
    sent[tx] = sent[tx] + tk;                                                \
    /* kept until confirmed: every consumer is recoverable */                \
    assert(len(kept[tx]) + tk <= N);                                         \
    kept[tx] ! run_id[0];                                                    \
    if                                                                       \
    :: tk == 2 -> kept[tx] ! run_id[1]                                       \
    :: else -> skip                                                          \
    fi;                                                                      \
    if                                                                       \
    :: tk < run_n -> run_id[0] = run_id[1]; run_r[0] = run_r[1]              \
    :: else -> skip                                                          \
    fi;                                                                      \
    run_id[1] = 0; run_r[1] = 0;                                             \
    run_n = run_n - tk;                                                      \
    if                                                                       \
    :: run_n == 0 -> run_id[0] = 0; run_r[0] = 0; tgt = 0                    \
    :: else -> skip                                                          \
    fi

#define CUT if :: tk > 1 -> tk = 1 :: true -> skip fi

/* deliver's choice: of the branches the piece fits, the one with the most
 * credit left (the first of equals) */
#if NC > 1
#define PICK ((ROOM(0) >= tk && ROOM(0) >= ROOM(1)) -> 0 : 1)
#else
#define PICK 0
#endif

/* send_eos to consumer tx */
#define send_eos()                                                           \
    to_consumer(EOS, 0, 0, 0, 0, 0);                                         \
    eos_due[tx] = false

    /* One loop; where the C code would be is kept in stage (setup's puts,
     * edge_out_eos, finish's wait to be released), inrec (inside
     * edge_out_recover) and inrun (inside send_run).  A restart is heard
     * only where the code serves its control channel: between batches,
     * in a wait for credit, and in the wait to be released; recovery is
     * never nested in a send (the code only queues then, for later). */
    do
    /* send_run: a piece while the credit allows */
    :: atomic { inrun && FIT > 0 -> piece(); inrun = (run_n > 0) }
    /* send_run's wait: credit, or a control message (a restart ends it) */
    :: atomic { inrun && FIT == 0 && CREDIT_WAITING -> read_credit() }
    :: atomic {
        nempty(ctl[PID]) && ((inrun && FIT == 0) || (!inrun && !inrec && stage != ENDING)) ->
            handle_ctl()
       }
    /* edge_out_recover: the redo list, one kept message's records at a
     * time (at most K, one target), then the ends of stream owed */
    :: atomic {
        !inrun && inrec && nempty(redo) ->
            redo ? run_id[0], tgt;
            run_r[0] = 1; run_n = 1;
            if
            :: nempty(redo) ->
                redo ? <tx, ty>;
                if
                :: ty == tgt -> redo ? run_id[1], _; run_r[1] = 1; run_n = 2
                :: true -> skip
                fi
            :: empty(redo) -> skip
            fi;
            inrun = true
       }
    :: atomic {
        !inrun && inrec && empty(redo) ->
            tx = 0;
            do
            :: tx < NC ->
                if
                :: eos_due[tx] -> send_eos()
                :: else -> skip
                fi;
                tx++
            :: else -> break
            od;
            inrec = false
       }
    /* setup: a batch of 1..K items; what replaced consumers held goes
     * first (flush_port); credit is looked at between batches
     * (poll_ctl_at) */
    :: atomic {
        !inrun && !inrec && stage == PUTTING && next < N && empty(redo) ->
            run_id[0] = next; run_r[0] = 0; run_n = 1;
            if
            :: next + 1 < N -> run_id[1] = next + 1; run_r[1] = 0; run_n = 2
            :: true -> skip
            fi;
            next = next + run_n;
            tgt = ROOT;
            inrun = true
       }
    :: atomic { !inrun && !inrec && stage == PUTTING && nempty(redo) -> inrec = true }
    :: atomic { !inrun && !inrec && stage == PUTTING && CREDIT_WAITING -> read_credit() }
    :: atomic { !inrun && !inrec && stage == PUTTING && next == N -> stage = ENDING }
    /* edge_out_eos: what replaced consumers held goes out before our end
     * of stream (cf5c516), then the ends, then DONE */
#ifndef BROKEN_EOS_FIRST
    :: atomic { !inrun && !inrec && stage == ENDING && nempty(redo) -> inrec = true }
    :: atomic {
        !inrun && !inrec && stage == ENDING && empty(redo) ->
#else
    :: atomic {
        !inrun && !inrec && stage == ENDING ->
#endif
            tx = 0;
            do
            :: tx < NC -> send_eos(); tx++
            :: else -> break
            od;
            eos_sent = true;
            done_ch ! PID, 0;
            stage = WAITING
       }
    /* finish: wait to be released; a consumer replaced meanwhile gets
     * what it had not confirmed, then our end of stream (recover runs
     * after each control message, the release too) */
    :: atomic { !inrun && !inrec && stage == WAITING && (nempty(redo) || EOS_DUE) -> inrec = true }
    :: atomic {
        !inrun && !inrec && stage == WAITING && released && empty(redo) && !EOS_DUE -> break
       }
    od;
    death ! PID, 0, 1
}

/* ---- a recoverable consumer ----------------------------------------------- */

#define RUN 0
#define SETTLING 1

proctype Consumer(byte c; byte g; bit fin)
{
    /* the input: P's stream (in_peer_t) */
    byte taken, igr, done, cpi, cfable, cfd;
    bool heard, eos;
    byte left;                  /* records of the message not yet taken */
    byte mid[K];
    bit mr[K];
    bool in_hand;
    byte idled;                 /* 0 busy, 1 idle (waiting), 2 woke for input */
    byte hid;                   /* the record in hand */
    bit hr;
    /* the output to the sink: keep_all with one record per message, so
     * the kept messages are those after oconf and settled is oconf */
    byte oseq, ogr, oconf;
    chan cps = [N + 1] of { byte, byte }; /* checkpoints: output seq, input done */
    bool stl;                   /* edge_in_settle is due next */
    bool putting;               /* the record in hand is being put */
    byte stage;                 /* RUN (process_all), SETTLING (settle_all) */

    igr = W; ogr = W;

#define CH (c * NG + g)

/* send_credit: only to a producer heard from */
#define c_send_credit()                                                      \
    if                                                                       \
    :: heard ->                                                              \
        assert(nfull(pcredit[c]));                                           \
        pcredit[c] ! g, igr, cfable;                                         \
        cfd = cfable                                                         \
    :: else -> skip                                                          \
    fi

/* grant: the credit rule; chained, so never more than two windows beyond
 * what it can confirm */
#define c_grant(confirm)                                                     \
    TARGET;                                                                  \
    tmore = false;                                                           \
    tx = (igr > taken -> igr - taken : 0);                                   \
    if                                                                       \
    :: tx <= tt / 2 ->                                                       \
        ty = MIN(taken + tt, cfable + 2 * W);                                \
        if                                                                   \
        :: ty > igr -> igr = ty; tmore = true                                \
        :: else -> skip                                                      \
        fi                                                                   \
    :: else -> skip                                                          \
    fi;                                                                      \
    if                                                                       \
    :: tmore || (confirm && cfable != cfd) -> c_send_credit()                \
    :: else -> skip                                                          \
    fi

/* the output's read_credit: every credit message from the sink waiting */
#define c_read_credit()                                                      \
    do                                                                       \
    :: nempty(scredit[c]) ->                                                 \
        scredit[c] ? ta, tb, tc;                                             \
        if                                                                   \
        :: tc == g ->                                                        \
            ogr = MAX(ogr, ta);                                              \
            if                                                               \
            :: tb > oconf && tb <= oseq -> oconf = tb                        \
            :: else -> skip                                                  \
            fi                                                               \
        :: else -> skip                                                      \
        fi                                                                   \
    :: empty(scredit[c]) -> break                                            \
    od

/* edge_in_settle: the checkpoints whose output is confirmed release what
 * was done by then */
#define settle()                                                             \
    c_read_credit();                                                         \
    trel = false;                                                            \
    do                                                                       \
    :: nempty(cps) ->                                                        \
        cps ? <tx, ty>;                                                      \
        if                                                                   \
        :: tx <= oconf ->                                                    \
            cps ? tx, ty;                                                    \
            cfable = MAX(cfable, ty);                                        \
            trel = true                                                      \
        :: else -> break                                                     \
        fi                                                                   \
    :: empty(cps) -> break                                                   \
    od;                                                                      \
    if                                                                       \
    :: trel -> c_grant(true)                                                 \
    :: else -> skip                                                          \
    fi

/* checkpoint: note what was done when the output had sent oseq messages
 * (the output is flushed first: here every put has left already); the
 * settle that follows is the next step (stl) */
#ifdef BROKEN_CONFIRM_EARLY
/* broken: what was done is confirmed before the output is */
#define checkpoint()                                                         \
    cpi = done; cfable = done; c_grant(true)
#else
#define checkpoint()                                                         \
    assert(nfull(cps));                                                      \
    cps ! oseq, done;                                                        \
    cpi = done;                                                              \
    stl = true
#endif

/* A process that has ended stays in SPIN's state vector until the ones
 * created after it end too: its state is cleared, or every state it
 * could die in would count as a different one.  (Its parameters are
 * constant, and stay: the escape below still reads c.) */
#define forget()                                                             \
    taken = 0; igr = 0; done = 0; cpi = 0; cfable = 0; cfd = 0;              \
    heard = false; eos = false; left = 0;                                    \
    mid[0] = 0; mr[0] = 0; mid[1] = 0; mr[1] = 0;                            \
    in_hand = false; idled = 0; hid = 0; hr = 0;                             \
    oseq = 0; ogr = 0; oconf = 0; stl = false; putting = false; stage = 0;   \
    do                                                                       \
    :: nempty(cps) -> cps ? _, _                                             \
    :: empty(cps) -> break                                                   \
    od

#define BUSY (stl || putting)

  {
    if
    :: fin -> goto again
    :: else -> skip
    fi;

    /* process_all (stage RUN), then settle_all (stage SETTLING) */
    do
    /* edge_in_settle, where the code calls it: after a checkpoint, when
     * idle, when woken while settling, in settle_all */
    :: atomic { stl -> settle(); stl = false }
    :: atomic {
        !BUSY && stage == RUN && in_hand ->
            /* edge_in_next first counts the one in hand done (done_one):
             * a checkpoint every CP_EVERY records, or sooner (the timer) */
            in_hand = false; hid = 0; hr = 0;
            done++;
            if
            :: done - cpi >= CP_EVERY -> checkpoint()
            :: done - cpi < CP_EVERY -> checkpoint()
            :: done - cpi < CP_EVERY -> skip
            fi
       }
    :: atomic {
        /* edge_in_next takes a record, and the stage processes it */
        !BUSY && stage == RUN && !in_hand && left > 0 ->
            hid = mid[0]; hr = mr[0];
            mid[0] = mid[1]; mr[0] = mr[1]; mid[1] = 0; mr[1] = 0;
            left--;
            taken++;
            inflight[c]--;
            c_grant(false);
            in_hand = true;
            idled = 0;
#ifdef FORWARD
            putting = true
#else
            observe(hid, hr);
            hid = 0; hr = 0
#endif
       }
#ifdef FORWARD
    /* the process callback puts it on (its meta, and so the flag, goes
     * with it): send_run to the sink, reading its credit when short */
    :: atomic {
        putting && ogr > oseq ->
            assert(nfull(sdata[CH]));
            sdata[CH] ! DATA, hid, hr;
            oseq++;
            sinflight[CH]++;
            assert(sinflight[CH] <= W);
            putting = false
       }
    :: atomic { putting && ogr <= oseq && nempty(scredit[c]) -> c_read_credit() }
#endif
    :: atomic {
        /* edge_in_next receives a message */
        !BUSY && stage == RUN && !in_hand && left == 0 && nempty(pdata[c]) ->
            pdata[c] ? tmt, left, mid[0], mr[0], mid[1], mr[1];
            assert(!eos); /* "message after end of stream" */
            heard = true;
            if
            :: tmt == EOS -> eos = true
            :: tmt == DATA -> skip
            fi;
            idled = 0
       }
    :: atomic {
        /* about to wait: edge_in_idle (nothing waiting, or a message
         * still on its way: once after each event) */
        !BUSY && stage == RUN && !in_hand && left == 0 && !eos && idled == 0 ->
            if
            :: done != cpi -> checkpoint()
            :: else -> stl = true
            fi;
            idled = 1
       }
    :: atomic {
        /* wait_input woke while settling, for the output's credit (then
         * it may go idle again) or for input (then it receives next) */
        !BUSY && stage == RUN && !in_hand && left == 0 && idled == 1 && len(cps) > 0 &&
        (nempty(scredit[c]) || nempty(pdata[c])) ->
            if
            :: nempty(scredit[c]) -> idled = 0
            :: empty(scredit[c]) -> idled = 2
            fi;
            stl = true
       }
    :: atomic {
        /* edge_in_complete: settle_all starts */
        !BUSY && stage == RUN && !in_hand && left == 0 && eos ->
            if
            :: done != cpi -> checkpoint()
            :: else -> stl = true
            fi;
            stage = SETTLING
       }
    /* settle_all: everything put is confirmed before the input is */
    :: atomic { !BUSY && stage == SETTLING && len(cps) > 0 && nempty(scredit[c]) -> stl = true }
    :: atomic { !BUSY && stage == SETTLING && len(cps) == 0 -> break }
    od;

again:
    /* finish (end_again for a replacement that only ends the stream):
     * ended, edge_out_eos, report_done, wait to be released */
    ended[c] = true;
    atomic {
        assert(nfull(sdata[CH]));
        sdata[CH] ! EOS, 0, 0
    };
    done_ch ! c, g;
    do
    :: atomic {
        ctl[c] ? tmt, ta, tb, tc ->
            if
            :: tmt == RELEASE && ta == g -> break
            :: else -> skip /* meant for the process this one replaced */
            fi
       }
    od;
    atomic {
        alive[c] = false;
        gone[c] = true;
        death ! c, g, 1;
        forget()
    }
  } unless {
    atomic {
        kill[c] ->
            kill[c] = false;
            alive[c] = false;
            crashed[CH] = true;
            /* its inbox goes, and with it what P had queued for it and
             * the sink's credit to it */
            do
            :: nempty(pdata[c]) -> pdata[c] ? _, _, _, _, _, _
            :: empty(pdata[c]) -> break
            od;
            do
            :: nempty(scredit[c]) -> scredit[c] ? _, _, _
            :: empty(scredit[c]) -> break
            od;
            inflight[c] = 0;
            death ! c, g, 0;
            forget()
    }
  }
}

/* ---- the sink: the parent's output collector ------------------------------ */

proctype Sink()
{
    byte sg[NC], stk[NC], sgr[NC], sdn[NC], scf[NC], scfd[NC]; /* in_peer_t */
    bool sheard[NC], seos[NC];
    byte eosn;
    bool left;           /* a record waits to be taken: from cur */
    byte cur, hid;
    bit hr;
    bool in_hand, idled; /* in hand: cur's */

    atomic {
        tx = 0;
        do
        :: tx < NC -> sgr[tx] = W; tx++
        :: else -> break
        od
    }

/* send_credit to producer p: refused or lost when its process is dead */
#define s_send_credit(p)                                                     \
    if                                                                       \
    :: sheard[p] ->                                                          \
        if                                                                   \
        :: alive[p] && cgen[p] == sg[p] ->                                   \
            assert(nfull(scredit[p]));                                       \
            scredit[p] ! sgr[p], scf[p], sg[p];                              \
            scfd[p] = scf[p]                                                 \
        :: !(alive[p] && cgen[p] == sg[p]) ->                                \
            scfd[p] = scf[p] /* sent, into the void */                       \
        :: !(alive[p] && cgen[p] == sg[p]) -> skip /* refused: EHOSTUNREACH */ \
        fi                                                                   \
    :: else -> skip                                                          \
    fi

#define s_grant(p)                                                           \
    TARGET;                                                                  \
    tmore = false;                                                           \
    tx = (sgr[p] > stk[p] -> sgr[p] - stk[p] : 0);                           \
    if                                                                       \
    :: tx <= tt / 2 && stk[p] + tt > sgr[p] -> sgr[p] = stk[p] + tt; tmore = true \
    :: else -> skip                                                          \
    fi;                                                                      \
    if                                                                       \
    :: tmore -> s_send_credit(p)                                             \
    :: else -> skip                                                          \
    fi

/* receive from channel i: one message of consumer i / NG's process of
 * generation i % NG (edge_in_next) */
#define SRECV(i)                                                             \
    :: atomic {                                                              \
        !in_hand && !left && nempty(sdata[i]) ->                             \
            sdata[i] ? tmt, hid, hr;                                         \
            ta = i / NG; tb = i % NG;                                        \
            if                                                               \
            :: tb < MAX(sg[ta], sfence[ta]) ->                               \
                /* from a process since replaced: dropped */                 \
                if                                                           \
                :: tmt == DATA -> sinflight[i]--                             \
                :: else -> skip                                              \
                fi;                                                          \
                hid = 0; hr = 0                                              \
            :: tb >= MAX(sg[ta], sfence[ta]) ->                              \
                if                                                           \
                :: tb > sg[ta] -> /* new_generation */                       \
                    if                                                       \
                    :: seos[ta] -> eosn--                                    \
                    :: else -> skip                                          \
                    fi;                                                      \
                    sg[ta] = tb; stk[ta] = 0; sgr[ta] = W; sdn[ta] = 0;      \
                    scf[ta] = 0; scfd[ta] = 0; sheard[ta] = false;           \
                    seos[ta] = false                                         \
                :: else -> skip                                              \
                fi;                                                          \
                assert(!seos[ta]); /* "message after end of stream" */       \
                sheard[ta] = true;                                           \
                if                                                           \
                :: tmt == EOS -> seos[ta] = true; eosn++                     \
                :: tmt == DATA -> cur = ta; left = true                      \
                fi                                                           \
            fi;                                                              \
            idled = false                                                    \
       }

/* what a crashed process sent may be lost with it (libzmq 4660) */
#define SDROP(i)                                                             \
    :: atomic {                                                              \
        crashed[i] && nempty(sdata[i]) ->                                    \
            do                                                               \
            :: nempty(sdata[i]) -> sdata[i] ? _, _, _                        \
            :: empty(sdata[i]) -> break                                      \
            od;                                                              \
            sinflight[i] = 0                                                 \
       }

    do
    :: atomic {
        in_hand ->
            /* count_done: done_one confirms, told at once or within the tick */
            in_hand = false;
            sdn[cur]++;
            scf[cur] = sdn[cur];
            if
            :: s_send_credit(cur)
            :: skip
            fi;
            cur = 0
       }
    :: atomic {
        !in_hand && left ->
            left = false;
            stk[cur]++;
            sinflight[cur * NG + sg[cur]]--;
            s_grant(cur);
            observe(hid, hr);
            hid = 0; hr = 0;
            in_hand = true;
            idled = false
       }
    SRECV(0)
    SDROP(0)
#if NCH > 1
    SRECV(1)
    SDROP(1)
#endif
#if NCH > 2
    SRECV(2)
    SDROP(2)
#endif
#if NCH > 3
    SRECV(3)
    SDROP(3)
#endif
#if NCH > 4
    SRECV(4)
    SDROP(4)
#endif
#if NCH > 5
    SRECV(5)
    SDROP(5)
#endif
    :: !in_hand && !left && eosn == NC -> break /* edge_in_complete */
    :: atomic {
        /* edge_in_idle: confirmations go out before it waits */
        !in_hand && !left && eosn < NC && !idled ->
            ti = 0;
            do
            :: ti < NC ->
                if
                :: scf[ti] != scfd[ti] -> s_send_credit(ti)
                :: else -> skip
                fi;
                ti++
            :: else -> break
            od;
            idled = true
       }
    od;
    sink_complete = true
}

/* ---- the supervisor ------------------------------------------------------- */

proctype Supervisor()
{
    bool cdone[NC], crel[NC], cexit[NC], cfin[NC];
    bool pdone, prel, pexit, snoted;

#define try_release_c(i)                                                     \
    if                                                                       \
    :: cdone[i] && !crel[i] && snoted ->                                     \
        assert(nfull(ctl[i]));                                               \
        ctl[i] ! RELEASE, cgen[i], 0, 0;                                     \
        crel[i] = true                                                       \
    :: else -> skip                                                          \
    fi

#if NC > 1
#define ALL_CDONE (cdone[0] && cdone[1])
#define ALL_CEXIT (cexit[0] && cexit[1])
#else
#define ALL_CDONE cdone[0]
#define ALL_CEXIT cexit[0]
#endif

#define try_release_p()                                                      \
    if                                                                       \
    :: pdone && !prel && ALL_CDONE ->                                        \
        assert(nfull(ctl[PID]));                                             \
        ctl[PID] ! RELEASE, 0, 0, 0;                                         \
        prel = true                                                          \
    :: else -> skip                                                          \
    fi

    do
    :: atomic {
        death ? ta, tb, tc ->
            if
            :: ta == PID -> assert(tc && prel); pexit = true
            :: ta != PID && tc -> assert(tb == cgen[ta] && crel[ta]); cexit[ta] = true
            :: ta != PID && !tc ->
                /* child_died: the replacement takes up the dead one's
                 * part: only the end of its stream once it had finished
                 * (CHILD_FINISHED), else everything (CHILD_FRESH) */
                assert(tb == cgen[ta]);
                tx = (cdone[ta] || cfin[ta] || ended[ta]);
                cgen[ta]++;
                cdone[ta] = false; crel[ta] = false; ended[ta] = false;
                cfin[ta] = tx;
                alive[ta] = true;
#ifdef SINK_FENCE
                /* a possible fix: the parent's collector stops taking what
                 * the dead process sent before anything is sent again */
                sfence[ta] = cgen[ta];
#endif
                run Consumer(ta, cgen[ta], tx);
                /* restart_child: its producer hears of it */
                if
                :: !tx ->
                    assert(nfull(ctl[PID]));
                    ctl[PID] ! RESTART, 0, ta, cgen[ta]
                :: else -> skip
                fi
            fi
       }
    :: atomic {
        done_ch ? ta, tb ->
            if
            :: ta == PID -> pdone = true
            :: ta != PID && tb == cgen[ta] -> cdone[ta] = true; try_release_c(ta)
            :: else -> skip /* from a process since replaced */
            fi;
            try_release_p()
       }
    :: atomic {
        sink_complete && !snoted ->
            /* consumer_done(sink) */
            snoted = true;
            try_release_c(0);
#if NC > 1
            try_release_c(1);
#endif
            skip
       }
    :: atomic { pexit && snoted && ALL_CEXIT -> break }
    od;

    /* every id arrived; exactly once when nothing crashed */
    atomic {
        tx = 0;
        do
        :: tx < N ->
            assert(seen[tx] > 0);
            assert(crashes > 0 || seen[tx] == 1);
            tx++
        :: else -> break
        od
    }
}

/* ---- crashes -------------------------------------------------------------- */

proctype Killer()
{
end:
    do
    :: atomic { crashes < MAXCRASH && alive[0] && !kill[0] -> kill[0] = true; crashes++ }
#if NC > 1
    :: atomic { crashes < MAXCRASH && alive[1] && !kill[1] -> kill[1] = true; crashes++ }
#endif
    od
}

init
{
    atomic {
        alive[0] = true;
        run Consumer(0, 0, 0);
#if NC > 1
        alive[1] = true;
        run Consumer(1, 0, 0);
#endif
        run Producer();
        run Sink();
        run Supervisor();
        run Killer()
    }
}
