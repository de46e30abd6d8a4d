#!/usr/bin/env bash
# tests/test_feed_model.sh — check the Promela model of a program feeding
# a graph from one thread (lib/feed.pml) with SPIN, exhaustively, in a few
# small configurations: capacities of 1 and 2, stages that put 0 to 3
# items per input, one stage or a chain of two, with and without a Seq
# whose halves run in the program (SEQ).  Each correct
# configuration must show no error (no assertion violated, no invalid end
# state: nothing waits for ever); each deliberately broken variant must
# fail on the property it names.  A few seconds of one core.
#
#   test_feed_model.sh SOURCE_ROOT [NAME...]
#
# As test_pool_model.sh (tests/model_common.sh does the work).
set -uo pipefail

model_file=feed.pml tmp_prefix=mpx-feed-model
# shellcheck source=tests/model_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/model_common.sh"

panflags=(-w -DSAFETY -DCOLLAPSE -DMEMLIM=2000)

# name | model | expectation | model macros | what it shows
configs=(
    "three_per_input|feed.pml|pass|-DNIN=5 -DK=3 -DW_IN=1 -DW_OUT=1|capacity 1, a stage putting 3 items per input"
    "none_per_input|feed.pml|pass|-DNIN=6 -DK=0 -DW_IN=1 -DW_OUT=1|a stage that puts nothing"
    "one_wide_out|feed.pml|pass|-DNIN=5 -DK=1 -DW_IN=1 -DW_OUT=3|one item per input, a wider output"
    "chain|feed.pml|pass|-DNIN=5 -DK=3 -DW_IN=2 -DW_OUT=1 -DCHAIN|a chain of two stages, 9 outputs per input"
    "chain_two|feed.pml|pass|-DNIN=5 -DK=2 -DW_IN=2 -DW_OUT=2 -DCHAIN|a chain, capacities 2"
    "broken_wait|feed.pml|fail=end|-DNIN=5 -DK=3 -DW_IN=1 -DW_OUT=1 -DBROKEN_WAIT|a put without room waits although output waits for the program"
    "broken_chain_wait|feed.pml|fail=end|-DNIN=5 -DK=3 -DW_IN=2 -DW_OUT=1 -DCHAIN -DBROKEN_WAIT|the same through a chain"
    "broken_eos_first|feed.pml|fail=lost|-DNIN=3 -DK=1 -DW_IN=1 -DW_OUT=1 -DBROKEN_EOS_FIRST|the end of stream leaves before the record held in the batch"
    "seq|feed.pml|pass|-DSEQ -DNIN=4 -DK=2 -DW_IN=1 -DW_OUT=1|a Seq around the stage, numbered and reordered by the program"
    "seq_chain|feed.pml|pass|-DSEQ -DNIN=3 -DK=2 -DW_IN=2 -DW_OUT=1 -DCHAIN|the same around a chain"
    "seq_none|feed.pml|pass|-DSEQ -DNIN=4 -DK=0 -DW_IN=1 -DW_OUT=2|a Seq around a stage that puts nothing"
    "seq_rounds|feed.pml|pass|-DSEQ -DNIN=4 -DK=2 -DW_IN=1 -DW_OUT=1 -DROUNDS=2|a program that waits for each round's outputs"
    "broken_no_pause_mark|feed.pml|fail=end|-DSEQ -DNIN=4 -DK=2 -DW_IN=1 -DW_OUT=1 -DROUNDS=2 -DBROKEN_NO_PAUSE_MARK|no mark when the program waits: it waits for ever on what its reorder holds"
    "broken_mark_first|feed.pml|fail=overtaken|-DSEQ -DNIN=3 -DK=1 -DW_IN=1 -DW_OUT=1 -DBROKEN_MARK_FIRST|a mark goes before the record still in the batch"
)

want=("$@")
# The configurations whose search takes seconds: their pan is built with
# -O2 (tests/model_common.sh).
optimised=()
# Puts, takes, credit, marks and the end of stream.
explain_pattern='in1|in2|sink|cr_|outputs|pend|ended|lost|held|marked|owed|overtaken|assert|violated'
check_configs
