/* lib/feed.pml — the program feeding a graph from one thread
 * (mpx_graph_put, lib/feed.c and sup_put in lib/supervisor.c), checked by
 * SPIN (tests/test_feed_model.sh).
 *
 * What it shows: a single thread that puts its inputs, and takes output
 * whenever a put says MPX_EAGAIN, never waits for ever, whatever the
 * capacities and however many items each stage puts per input — because
 * a put waits only while no output waits for the program, and says
 * MPX_EAGAIN at once otherwise.  And every output arrives.
 *
 * Processes:
 *   Program  the program's loop over NIN inputs (feed_all in
 *            tests/test_input.c): put; on MPX_EAGAIN take every output
 *            waiting (poll with timeout 0 until it has none); then close
 *            the input and take outputs until the end.  Its put is
 *            sup_put: a record joins the parent's batch when there is
 *            room (edge_out_room: the batch is empty, or credit covers
 *            it), the batch goes when credit allows (feed_service); with
 *            no room it returns MPX_EAGAIN if output waits (output_pending)
 *            and otherwise waits (pump) for credit or output.
 *   Stage    a stage instance: takes an input (granting its producer a
 *            credit back, as edge_in does after a take, here one per take)
 *            and puts K outputs, each waiting for the credit of the next
 *            consumer (the next stage, or the program's inbox).
 * Channels carry records (and the end of stream, EOS); credit is a token
 * channel back from each consumer to its producer, so it arrives late,
 * as a credit message does.  W_IN and W_OUT are the windows (the first
 * stage's capacity, and every other's).
 *
 * Macros: K (outputs per input, 0..3), NIN (inputs), W_IN, W_OUT (>= 1),
 * CHAIN (a second stage after the first).  Broken variants, which the
 * check must catch: BROKEN_WAIT (a put without room waits even when
 * output waits for the program: it deadlocks, an invalid end state),
 * BROKEN_EOS_FIRST (closing sends the end of stream without the record
 * still in the batch: lost).
 *
 * SEQ: the graph begins and ends with a Seq (graph/seqhost.h), both of
 * whose halves run in the program.  Records carry the input's number;
 * the program closes an epoch with a mark (MARKB + inputs numbered) to
 * every stage, which passes it on behind what it put, after every EPOCH
 * puts, at any moment a put may have left at once (a quiet spell: any
 * time, nondeterministically), and before it waits; a mark needs the
 * batch gone and a credit, and is owed until then (feed_mark).  What the
 * program takes goes into its reorder and counts as taken only when a
 * mark (or the end) lets it out, in order: no output may arrive for an
 * input a mark has let out (asserted), none is lost.  ROUNDS: the
 * program puts ROUNDS inputs at a time and waits for all their outputs
 * before the next ones.  BROKEN_NO_PAUSE_MARK: no mark before a wait (the
 * program waits for ever on outputs its reorder holds: invalid end);
 * BROKEN_MARK_FIRST: a mark goes before the record still in the batch
 * (an output then arrives after the mark that let its input out).
 */

#ifndef K
#define K 3
#endif
#ifndef NIN
#define NIN 3
#endif
#ifndef W_IN
#define W_IN 1
#endif
#ifndef W_OUT
#define W_OUT 1
#endif

#define EOS 255
#define MARKB 100
#ifndef EPOCH
#define EPOCH 3
#endif

/* records into the first stage, the second, the program's inbox */
chan in1 = [W_IN + 1] of { byte };
chan in2 = [W_OUT + 1] of { byte };
chan sink = [W_OUT + 1] of { byte };
/* credit back: from the first stage to the program, from the second to
 * the first, from the program's inbox to the last stage */
chan cr_in1 = [W_IN + NIN + 1] of { bit };
chan cr_in2 = [W_OUT + NIN * K + 1] of { bit };
chan cr_sink = [W_OUT + NIN * K * K + 1] of { bit };

byte outputs;     /* outputs the program took */
byte lost;        /* outputs that never came */
bool program_done;
#ifdef SEQ
byte held[NIN];   /* outputs the program's reorder keeps, by input */
byte overtaken;   /* outputs that came after the mark that let their input out */
byte next_rel;    /* inputs before this one have been let out */
#endif

/* A producer's put of one record on `out`, with `credit` tokens from `cr`
 * (it waits for one, as edge_out does for a stage). */
inline stage_put(out, cr, credit, v)
{
    if
    :: credit > 0 -> skip
    :: else -> cr ? _; credit++
    fi;
    credit--;
    out ! v
}

proctype Stage(chan in; chan cr_back; chan out; chan cr; byte window; byte k)
{
    byte credit = window, v, j;
    do
    :: in ? v ->
        if
        :: v == EOS -> break
        :: else -> skip
        fi;
        cr_back ! 1; /* the take grants its producer one more */
#ifdef SEQ
        if
        :: v >= MARKB -> stage_put(out, cr, credit, v); goto next /* passed on behind */
        :: else -> skip
        fi;
#endif
        j = 0;
        do
        :: j < k -> stage_put(out, cr, credit, v); j++
        :: else -> break
        od;
next:   skip
    od;
    /* its end of stream, behind everything it put */
    out ! EOS
}

#ifdef SEQ
/* Let out what the reorder keeps for the inputs before `upto`. */
inline release(upto)
{
    do
    :: next_rel < upto -> outputs = outputs + held[next_rel]; held[next_rel] = 0; next_rel++
    :: else -> break
    od
}

/* Take one record from the inbox into the reorder: credit goes back to
 * its producer; a mark lets out what it covers. */
inline take_one()
{
    sink ? v;
    if
    :: v == EOS -> ended = true; release(NIN)
    :: v != EOS && v >= MARKB -> cr_sink ! 1; release(v - MARKB)
    :: else ->
        if
        :: v < next_rel -> overtaken++ /* a mark that covers it came first */
        :: else -> skip
        fi;
        assert(overtaken == 0);
        held[v]++;
        cr_sink ! 1
    fi
}

/* feed_mark (edge_out_mark): the batch goes first, then the mark, each
 * if credit allows; a mark that cannot go is owed. */
inline try_mark()
{
    if
    :: i > marked ->
#ifndef BROKEN_MARK_FIRST
        if
        :: pend && credit > 0 -> in1 ! pendv; credit--; pend = false
        :: else -> skip
        fi;
#endif
        if
#ifdef BROKEN_MARK_FIRST
        :: credit > 0 -> /* not behind the batch */
#else
        :: !pend && credit > 0 ->
#endif
            in1 ! MARKB + i; credit--; marked = i; owed = false
        :: else -> owed = true
        fi
    :: else -> skip
    fi
}

/* feed_service before a wait: the batch goes if credit allows, and a
 * mark closes the epoch. */
inline before_wait()
{
    do
    :: cr_in1 ? _ -> credit++
    :: empty(cr_in1) -> break
    od;
    if
    :: pend && credit > 0 -> in1 ! pendv; credit--; pend = false
    :: else -> skip
    fi;
#ifndef BROKEN_NO_PAUSE_MARK
    try_mark()
#else
    skip
#endif
}
#else
/* Take one output from the inbox: credit goes back to its producer. */
inline take_one()
{
    sink ? v;
    if
    :: v == EOS -> ended = true
    :: else -> outputs++; cr_sink ! 1
    fi
}
#endif

#ifdef CHAIN
#define PER_INPUT (K * K)
#else
#define PER_INPUT K
#endif

proctype Program()
{
    byte i = 0, credit = W_IN, v;
    bool pend = false; /* one record in the parent's batch, not yet sent */
    bool ended = false, room;
    byte pendv = 1;    /* what the batch holds (SEQ: the input's number) */
#ifdef SEQ
    byte marked = 0;   /* inputs the last mark covered */
    bool owed = false;
#endif
    do
    :: i < NIN ->
        /* feed_service: the batch goes when credit allows */
        do
        :: cr_in1 ? _ -> credit++
        :: empty(cr_in1) -> break
        od;
        if
        :: pend && credit > 0 -> in1 ! pendv; credit--; pend = false
        :: else -> skip
        fi;
#ifdef SEQ
        if
        :: owed -> try_mark()
        :: else -> skip
        fi;
#ifdef ROUNDS
        /* a round put: wait for all its outputs before the next */
        if
        :: i > 0 && i % ROUNDS == 0 && outputs < i * PER_INPUT ->
            before_wait();
            (nempty(cr_in1) || nempty(sink));
            do
            :: nempty(sink) && !ended -> take_one()
            :: empty(sink) || ended -> break
            od;
            goto again
        :: else -> skip
        fi;
#endif
#endif
        room = !pend;
        if
#ifdef SEQ
        :: room -> pend = true; pendv = i; i++;
            /* a full epoch closes; so may a put that left at once (a
             * quiet spell), at any time */
            if
            :: true -> try_mark()
            :: i - marked < EPOCH -> skip
            fi
#else
        :: room -> pend = true; i++ /* the put returns 0 */
#endif
#ifdef BROKEN_WAIT
        :: !room -> (nempty(cr_in1)) /* waits for credit only */
#else
        :: !room && nempty(sink) ->
            /* MPX_EAGAIN: take what waits (poll with timeout 0) */
            do
            :: nempty(sink) && !ended -> take_one()
            :: empty(sink) || ended -> break
            od
        :: !room && empty(sink) ->
            /* pump: wait for credit or output */
#ifdef SEQ
            before_wait();
#endif
            (nempty(cr_in1) || nempty(sink))
#endif
        fi;
again:  skip
    :: i == NIN -> break
    od;
    /* close: what waits in the batch goes first, then the end of stream
     * (feed_service), while the program takes output (next) */
#ifdef BROKEN_EOS_FIRST
    pend = false; /* the end of stream does not wait for the batch */
#endif
    do
    :: pend ->
        if
        :: credit > 0 -> in1 ! pendv; credit--; pend = false
        :: nempty(cr_in1) -> cr_in1 ? _; credit++
        :: nempty(sink) && !ended -> take_one()
        fi
    :: !pend -> break
    od;
    in1 ! EOS;
    do
    :: !ended -> take_one()
    :: ended -> break
    od;
    program_done = true
}

init
{
    atomic {
        run Program();
#ifdef CHAIN
        run Stage(in1, cr_in1, in2, cr_in2, W_OUT, K);
        run Stage(in2, cr_in2, sink, cr_sink, W_OUT, K);
#else
        run Stage(in1, cr_in1, sink, cr_sink, W_OUT, K);
#endif
    }
    (program_done);
    lost = NIN * PER_INPUT - outputs;
    assert(lost == 0)
}
