#!/usr/bin/env bash
# tests/test_pool_model.sh — check the Promela model of the pool's holder
# protocol (lib/pool.pml) with SPIN, exhaustively, in a few small
# configurations.
#
# Each correct configuration must show no error (no assertion violated,
# no invalid end state).  Each deliberately broken variant must fail, and
# on the property it names (freed_while_held, held_by_the_dead_after_reclaim,
# held_at_the_end, leaked): else the model checker did not catch it and
# this test fails.  The figures of every run are printed.  Everything
# happens in a fresh temporary directory, removed at the end whatever
# happens.  About 50 s of one core, 1.2 GB at most.
#
#   test_pool_model.sh SOURCE_ROOT [NAME...]
#
# NAMEs pick configurations (all but the optional ones, marked + below,
# when none is given).  Needs spin and a C compiler.  MPX_MODEL_KEEP=1
# keeps the directory and says where it is (trails of failures are in it).
set -uo pipefail

model_file=pool.pml tmp_prefix=mpx-pool-model
# shellcheck source=tests/model_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/model_common.sh"

# COLLAPSE compresses each stored state without loss: the search stays
# exhaustive.  pan stops (and this test fails) rather than pass the limit.
# A broken variant's search ends at its first error, in well under a
# second: its pan is built without optimisation, which saves 2 s a build.
panflags=(-w -DSAFETY -DCOLLAPSE -DMEMLIM=3000)

# name | expectation | model macros | what it shows
#   expectation: pass, or fail=PROPERTY (a broken variant)
configs=(
    "two|pass|-DNP=2 -DMAXCRASH=1|two processes hand the block to each other (two holds given), one kill anywhere"
    "two_lock_late|pass|-DNP=2 -DMAXCRASH=1 -DLOCK_LATE|the same, reclaim taking the lock after its scan: the epoch it moves before clearing suffices"
    "two_kills|pass|-DNP=2 -DMAXCRASH=2|two kills: a replacement dies too"
    "three|pass|-DNP=3 -DMAXCRASH=0|three processes, broadcast and chains, no kill"
    "+two_three_gives|pass|-DNP=2 -DMAXCRASH=1 -DMAXGIVE=3|three holds given, one kill"
    "broken_scan_first|fail=held_by_the_dead_after_reclaim|-DNP=2 -DMAXCRASH=1 -DBROKEN_SCAN_FIRST|reclaim scans the words before marking the incarnation dead"
    "broken_no_check|fail=held_by_the_dead_after_reclaim|-DNP=2 -DMAXCRASH=1 -DBROKEN_NO_CHECK|pool_hold does not look for the mark after giving"
    "broken_no_epoch|fail=freed_while_held|-DNP=2 -DMAXCRASH=0 -DBROKEN_NO_EPOCH|the free's CAS ignores the epoch: a hold moving between words is missed"
    "broken_bump_after|fail=freed_while_held|-DNP=2 -DMAXCRASH=1 -DLOCK_LATE -DBROKEN_BUMP_AFTER|reclaim (lock taken late) moves the epoch after clearing a dead giver's word"
    "broken_exact|fail=held_at_the_end|-DNP=2 -DMAXCRASH=1 -DBROKEN_EXACT|reclaim clears only the dead's own words: a giver killed before its take-back leaves a hold"
    "broken_no_free|fail=leaked|-DNP=2 -DMAXCRASH=1 -DBROKEN_NO_FREE|reclaim does not free what nobody holds"
)

want=("$@")
picked() { # NAME (with its + when optional)
    local n
    if ((${#want[@]} == 0)); then
        [[ $1 != +* ]]
        return
    fi
    for n in "${want[@]}"; do
        [[ $n == "${1#+}" ]] && return 0
    done
    return 1
}

# pan in the background, waited for, so that a signal to this script
# ends it too (a trap runs during `wait`).
run_pan() { # LOG ARGS...
    local log=$1
    shift
    ./pan "$@" >"$log" 2>&1 &
    pan_pid=$!
    wait "$pan_pid"
    local rc=$?
    pan_pid=
    return $rc
}

figures() { # LOG
    local states depth secs mem
    states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$1" | head -n 1)
    depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$1" | head -n 1)
    secs=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\) seconds.*/\1/p' "$1" | head -n 1)
    mem=$(sed -n 's/^ *\([0-9.]*\).total actual memory usage.*/\1/p' "$1" | head -n 1)
    echo "${states:-?} states, depth ${depth:-?}, ${secs:-?} s, ${mem:-?} MB"
}

# The counterexample: every step that touches the block's words, state,
# the marks and the processes' lives (pan's first, depth-first).
explain() { # DIR MACROS...
    local dir=$1
    shift
    if compgen -G "$dir/*.trail" >/dev/null; then
        echo "---- counterexample (the last 60 steps that matter) ----" >&2
        (cd "$dir" && spin -t -p "$@" pool.pml 2>&1 |
            grep -E 'wcnt\[|st = |dead\[[a-z]+\] = |kill\[s\] = 1|ended|run Worker|assert|violated' |
            sed -E 's/ *pool.pml:[0-9]+ \(state [0-9]+\)//' | tail -n 60) >&2
    fi
}

total=0
failed=0
for entry in "${configs[@]}"; do
    IFS='|' read -r name expect macros what <<<"$entry"
    picked "$name" || continue
    name=${name#+}
    total=$((total + 1))
    echo "-- $name: $what"
    echo "   model: $macros; expected: $expect"
    dir=$tmp/$name
    mkdir -p "$dir" && cp "$model" "$dir/pool.pml" && cd "$dir" || exit 1
    read -r -a mflags <<<"$macros"
    if ! spin -a "${mflags[@]}" pool.pml >spin.log 2>&1; then
        cat "$dir/spin.log" >&2
        fail "$name: spin cannot translate the model"
    fi
    opt=-O2
    [[ $expect == pass ]] || opt=-O0
    if ! "${cc[@]}" "$opt" "${panflags[@]}" -o pan pan.c >cc.log 2>&1; then
        cat "$dir/cc.log" >&2
        fail "$name: cannot build pan"
    fi
    log=$dir/safety.log
    run_pan "$log" -m1000000
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$log" | head -n 1)
    if [[ -z $errors ]]; then
        tail -n 30 "$log" >&2
        fail "$name: pan did not finish"
    fi
    if [[ $errors == 0 ]] && grep -q 'Search not completed' "$log"; then
        tail -n 30 "$log" >&2
        fail "$name: the search was cut short (memory), nothing is proved"
    fi
    if grep -q 'max search depth too small' "$log"; then
        tail -n 30 "$log" >&2
        fail "$name: the search depth limit was reached, nothing is proved"
    fi
    echo "   $errors errors; $(figures "$log")"
    caught=$(grep -m 1 -E '^pan:[0-9]+:' "$log")
    if [[ $expect == pass ]]; then
        if [[ $errors != 0 ]]; then
            echo "   $caught" >&2
            explain "$dir" "${mflags[@]}"
            echo "FAIL: $name: the model checker found an error in a correct configuration" >&2
            failed=$((failed + 1))
        fi
    elif [[ $errors == 0 ]]; then
        echo "FAIL: $name: the model checker did not catch the broken variant" >&2
        failed=$((failed + 1))
    elif [[ $caught != *"(${expect#fail=}==0)"* ]]; then
        echo "   $caught" >&2
        explain "$dir" "${mflags[@]}"
        echo "FAIL: $name: caught, but not as ${expect#fail=}" >&2
        failed=$((failed + 1))
    else
        echo "   caught: $caught"
        ((${#want[@]} == 0)) || explain "$dir" "${mflags[@]}" 2>&1
    fi
    cd "$tmp" || exit 1
done

((total > 0)) || fail "no configuration is named ${want[*]}"
((failed == 0)) || fail "$failed of $total configurations"
echo "all $total configurations as expected"
