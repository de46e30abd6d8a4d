#!/usr/bin/env bash
# tests/test_pool_model.sh — check the Promela models of the pool with
# SPIN, exhaustively, in a few small configurations each: its holder
# protocol (lib/pool.pml), and how a record that refers to a block crosses
# an edge (lib/pool_handoff.pml: the producer's holds, pool_hold_if,
# confirmation, reclaim).
#
# Each correct configuration must show no error (no assertion violated,
# no invalid end state).  Each deliberately broken variant must fail, and
# on the property it names (an assertion's variable, as freed_while_held
# or read_unheld, or `end` for an invalid end state: a process that waits
# for ever): else the model checker did not catch it and this test fails.
# The figures of every run are printed.  Everything happens in a fresh
# temporary directory, removed at the end whatever happens.  About 20 s of
# one core for pan and 60 s to build it, 400 MB at most.
#
#   test_pool_model.sh SOURCE_ROOT [NAME...]
#
# NAMEs pick configurations (when none is given, all but the optional
# ones, marked + below, and the long ones, marked *, which also run with
# MPX_LONG_TESTS=1: another 60 s of one core and 1.2 GB).  Needs spin and a C compiler.  MPX_MODEL_KEEP=1
# keeps the directory and says where it is (trails of failures are in it).
set -uo pipefail

model_file=pool.pml tmp_prefix=mpx-pool-model
# shellcheck source=tests/model_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/model_common.sh"

# COLLAPSE compresses each stored state without loss: the search stays
# exhaustive.  pan stops (and this test fails) rather than pass the limit.
# A search that ends in well under a second (a broken variant's at its
# first error, a small configuration's) runs a pan built without
# optimisation, which saves 4-5 s a build: see `optimised` below.
panflags=(-w -DSAFETY -DCOLLAPSE -DMEMLIM=3000)

# name | model | expectation | model macros | what it shows
#   model: the file under lib/
#   expectation: pass, or fail=PROPERTY (a broken variant)
configs=(
    "two|pool.pml|pass|-DNP=2 -DMAXCRASH=1|two processes hand the block to each other (two holds given), one kill anywhere"
    "*two_lock_late|pool.pml|pass|-DNP=2 -DMAXCRASH=1 -DLOCK_LATE|the same, reclaim taking the lock after its scan: the epoch it moves before clearing suffices"
    "*two_kills|pool.pml|pass|-DNP=2 -DMAXCRASH=2|two kills: a replacement dies too"
    "*three|pool.pml|pass|-DNP=3 -DMAXCRASH=0|three processes, broadcast and chains, no kill"
    "+two_three_gives|pool.pml|pass|-DNP=2 -DMAXCRASH=1 -DMAXGIVE=3|three holds given, one kill"
    "broken_scan_first|pool.pml|fail=held_by_the_dead_after_reclaim|-DNP=2 -DMAXCRASH=1 -DBROKEN_SCAN_FIRST|reclaim scans the words before marking the incarnation dead"
    "broken_no_check|pool.pml|fail=held_by_the_dead_after_reclaim|-DNP=2 -DMAXCRASH=1 -DBROKEN_NO_CHECK|pool_hold does not look for the mark after giving"
    "broken_no_epoch|pool.pml|fail=freed_while_held|-DNP=2 -DMAXCRASH=0 -DBROKEN_NO_EPOCH|the free's CAS ignores the epoch: a hold moving between words is missed"
    "broken_bump_after|pool.pml|fail=freed_while_held|-DNP=2 -DMAXCRASH=1 -DLOCK_LATE -DBROKEN_BUMP_AFTER|reclaim (lock taken late) moves the epoch after clearing a dead giver's word"
    "broken_exact|pool.pml|fail=held_at_the_end|-DNP=2 -DMAXCRASH=1 -DBROKEN_EXACT|reclaim clears only the dead's own words: a giver killed before its take-back leaves a hold"
    "broken_no_free|pool.pml|fail=leaked|-DNP=2 -DMAXCRASH=1 -DBROKEN_NO_FREE|reclaim does not free what nobody holds"
    "handoff|pool_handoff.pml|pass|-DMAXCRASH=1|a record's block from P to C: one kill anywhere (P or C), the supervisor reclaims and replaces"
    "handoff_two_kills|pool_handoff.pml|pass|-DMAXCRASH=2|the same with two kills: both die, or a replacement dies too"
    "handoff_bystander|pool_handoff.pml|pass|-DMAXCRASH=1 -DBYSTANDER|one kill, and a third process ends at any time: its reclaim races the hand-off"
    "handoff_code_einval|pool_handoff.pml|fail=stale_taken_for_malformed|-DMAXCRASH=1 -DCODE_EINVAL|C takes pool_hold_if's MPX_EINVAL (the block was freed by its dead producer's reclaim) for a malformed record, as lib/edge_in.c does"
    "handoff_broken_hold|pool_handoff.pml|fail=read_unheld|-DMAXCRASH=1 -DBROKEN_HOLD|C takes its hold with pool_hold, not pool_hold_if: it reads the block P's replacement allocated again"
    "handoff_broken_look_first|pool_handoff.pml|fail=read_unheld|-DMAXCRASH=1 -DBROKEN_LOOK_FIRST|pool_hold_if looks for the giver's word before giving its own"
    "handoff_broken_drop_at_send|pool_handoff.pml|fail=stale_but_alive|-DMAXCRASH=1 -DBROKEN_DROP_AT_SEND|P drops its hold once the batch is sent, keeping none with the message"
    "handoff_broken_confirm_first|pool_handoff.pml|fail=stale_but_alive|-DMAXCRASH=1 -DBROKEN_CONFIRM_FIRST|C confirms a record on receiving it, before taking its hold"
    "handoff_broken_redo_order|pool_handoff.pml|fail=holder_lost_block|-DMAXCRASH=1 -DBROKEN_REDO_ORDER|on C's restart P drops the kept copy's hold before the redo takes its own"
    "handoff_broken_no_undo_free|pool_handoff.pml|fail=end|-DMAXCRASH=1 -DBROKEN_NO_UNDO_FREE|a refused pool_hold_if does not free the block it held last: P's replacement waits for it for ever"
)

want=("$@")
# The configurations whose search takes seconds: their pan is built with
# -O2 (tests/model_common.sh).
optimised=(two two_lock_late two_kills three two_three_gives handoff_two_kills handoff_bystander)
# Every step that touches the block's words, state, the marks, the
# messages and the processes' lives.
explain_pattern='wcnt\[|st = |dead\[[a-z]+\] = |kill\[[a-z0-9]+\] = 1|ended|run [A-Z]|assert|violated|q\[.*[?!]|conf\[x\]|cdone = 1|inval = '
check_configs
