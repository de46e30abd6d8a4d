#!/usr/bin/env bash
# tests/test_elastic_model.sh — check the Promela model of an instance
# joining and leaving a running parallel group (lib/elastic.pml: NOTICE,
# the joiner's gate, its first mark's count; LEAVE, the producers' ends of
# stream, END-SEEN) with SPIN, exhaustively, in a few small configurations: one
# producer or two, a join, a join then a leave, a leave then a join of
# the same slot in a new generation, windows of 1 and 2, with records
# the slots put in teardown.  Each correct configuration must show no
# error (no assertion violated, no invalid end state: nothing waits for
# ever, no gate either); each deliberately broken variant, and each
# reading of the first version of the protocol that the model found wrong
# (v1_*: lib/elastic.pml, Found; the code has the fixes), must fail on the property it names.  About
# 10 s of one core for pan, as much again to build it; the long (*)
# configurations, run with MPX_LONG_TESTS=1, 35 s more; the optional (+)
# one, larger, about a minute.
#
#   test_elastic_model.sh SOURCE_ROOT [NAME...]
#
# As test_pool_model.sh (tests/model_common.sh does the work).
set -uo pipefail

model_file=elastic.pml tmp_prefix=mpx-elastic-model
# shellcheck source=tests/model_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/model_common.sh"

panflags=(-w -DSAFETY -DCOLLAPSE -DMEMLIM=2000)

# name | model | expectation | model macros | what it shows
configs=(
    "join|elastic.pml|pass|-DNREC=3 -DNMARK=2 -DOWN|one producer; J joins at any moment, before or after the producer ended"
    "join_two_x|elastic.pml|pass|-DTWO_X -DNREC=2 -DNMARK=1 -DOWN|two producers: JOIN reaches them in either order, the gate waits for both"
    "*join_two_x_three|elastic.pml|pass|-DTWO_X -DNREC=3 -DNMARK=1 -DOWN|the same with three records (20 s of pan)"
    "join_two_x_wide|elastic.pml|pass|-DTWO_X -DNREC=2 -DNMARK=1 -DWX=2 -DWD=2|the same with windows of 2"
    "join_leave|elastic.pml|pass|-DNREC=3 -DNMARK=2 -DLEAVE -DOWN|a join, then W or J leaves"
    "leave_batch|elastic.pml|pass|-DNREC=3 -DNMARK=1 -DLEAVE -DBATCH -DOWN|the same with the record chosen for the leaver waiting in a batch"
    "rejoin|elastic.pml|pass|-DNREC=3 -DNMARK=2 -DREJOIN -DOWN|a join, a leave, and the slot that left joins again (generation 2)"
    "rejoin_wide|elastic.pml|pass|-DNREC=3 -DNMARK=1 -DWX=2 -DWD=2 -DREJOIN -DOWN|the same with windows of 2"
    "leave_two_x|elastic.pml|pass|-DTWO_X -DBOTH -DLEAVE -DNREC=2 -DNMARK=1 -DOWN|two producers, W and J active: either leaves"
    "*rejoin_two_x|elastic.pml|pass|-DTWO_X -DBOTH -DREJOIN -DNREC=2 -DNMARK=1 -DOWN|two producers: a slot leaves and joins again"
    "+join_leave_two_x|elastic.pml|pass|-DTWO_X -DLEAVE -DNREC=2 -DNMARK=1|two producers: a join, then a leave (6.8M states, 1.1 GB)"
    "broken_notice_late|elastic.pml|fail=early|-DNREC=2 -DNMARK=1 -DBROKEN_NOTICE_LATE|X chooses J before its NOTICE went to the sibling"
    "broken_eos_owed|elastic.pml|fail=end|-DNREC=2 -DNMARK=1 -DBROKEN_EOS_OWED|X ends while the NOTICEs of a JOIN are owed: the joiner's gate waits for ever"
    "broken_no_gate|elastic.pml|fail=early|-DTWO_X -DNREC=2 -DNMARK=1 -DBROKEN_NO_GATE|the joiner hands marks on before every producer's NOTICE came"
    "broken_no_forward|elastic.pml|fail=lost|-DNREC=2 -DNMARK=1 -DBROKEN_NO_FORWARD|the sibling does not forward the NOTICE"
    "broken_leave_early|elastic.pml|fail=lost|-DNREC=2 -DNMARK=1 -DLEAVE -DBROKEN_LEAVE_EARLY|a leaver exits without END-SEEN, the tail of its stream is lost (D told of its exit)"
    "broken_leave_early_untold|elastic.pml|fail=end|-DNREC=2 -DNMARK=1 -DLEAVE -DBROKEN_LEAVE_EARLY -DEARLY_UNTOLD|the same, D not told: it waits for ever for the lost EOS"
    "broken_leave_eos_first|elastic.pml|fail=lost|-DNREC=2 -DNMARK=1 -DLEAVE -DBROKEN_LEAVE_EOS_FIRST|X sends the leaver its EOS before the record in its batch"
    "v1_void|elastic.pml|fail=lost|-DNREC=2 -DNMARK=1 -DOWN -DV1_VOID|v1: a join after every producer ended, no consumer hears of J"
    "v1_strict|elastic.pml|fail=end|-DNREC=2 -DNMARK=1 -DV1_STRICT|v1: a consumer that learns of J from a NOTICE only (START overtakes it)"
    "v1_endseen_flag|elastic.pml|fail=end|-DNREC=2 -DNMARK=1 -DLEAVE -DV1_ENDSEEN_FLAG|v1: END-SEEN only for an EOS sent as a leaver's"
    "v1_values|elastic.pml|fail=mlost|-DNREC=2 -DNMARK=2 -DLEAVE -DV1_VALUES|v1 with note_mark as it is: a joiner's mark ahead of the line keeps no value"
)

want=("$@")
# The configurations whose search takes seconds: their pan is built with
# -O2 (tests/model_common.sh).
optimised=(join_two_x join_two_x_three join_two_x_wide rejoin_two_x join_leave_two_x)
# Messages between the processes, the supervisor's changes, the gate,
# the ghosts.  (In the sends spin prints a message's type as its number:
# 6 REC, 5 MARK, 4 NOTICE, 3 START, 2 EOS.)
explain_pattern='xd\[|sd\[|xc\[|cx\[|cs\[|held|run Slot|sst\[|lost|early|dup|dmarks|assert|violated'
check_configs
