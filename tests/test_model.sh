#!/usr/bin/env bash
# tests/test_model.sh — check the Promela model of the edge protocol
# (lib/edge.pml) with SPIN, exhaustively, in a few small configurations.
#
# Each correct configuration must show no error: no assertion violated,
# no invalid end state (a process that never ends), and, where asked, no
# cycle at all (pan -DNP with no progress label: every run is finite).
# Each deliberately broken variant must show an error, else this test
# fails: the model checker did not catch it.  The figures of every run
# (states, depth, time, memory) are printed.  Everything happens in a
# fresh temporary directory (pan writes its files where it runs), removed
# at the end whatever happens.
#
#   test_model.sh SOURCE_ROOT [NAME...]
#
# NAMEs pick configurations (all but the optional and long ones when
# none is given; the optional ones, marked + below, run only when named,
# the long ones, marked *, also with MPX_LONG_TESTS=1: about four minutes
# of one core for pan, where the default set takes under two).  Needs
# spin and a C compiler (Debian: spin, gcc).  MPX_MODEL_KEEP=1 keeps the directory and
# says where it is (trails of failures are in it).
set -uo pipefail

model_file=edge.pml tmp_prefix=mpx-model
# shellcheck source=tests/model_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/model_common.sh"

# Memory per run: pan stops (and this test fails) rather than go past it.
# COLLAPSE compresses each stored state without loss, so the search stays
# exhaustive.
memlim=2000
panflags=(-w -DCOLLAPSE "-DMEMLIM=$memlim" -DVECTORSZ=2048)

# name | expectation | checks | model macros | what it shows
#   name: +name for one that runs only when named, *name for one that
#   runs only when named or with MPX_LONG_TESTS=1
#   expectation: pass, or fail (a broken variant: an error must be found)
#   checks: safety (assertions, end states), np (cycles), or safety+np
configs=(
    "chain|pass|safety|-DNC=1 -DFORWARD -DN=3 -DW=2 -DMAXCRASH=1 -DORDERED|P -> C (chained) -> sink, one crash anywhere; credit runs out (window 2)"
    "*chain_cycles|pass|np|-DNC=1 -DFORWARD -DN=3 -DW=2 -DMAXCRASH=1 -DORDERED|the same, for cycles (parallel_cycles checks them by default)"
    "*chain_twice|pass|safety|-DNC=1 -DFORWARD -DN=2 -DW=2 -DMAXCRASH=2 -DORDERED|the same with two crashes: a replacement dies too"
    "*chain_window3|pass|safety|-DNC=1 -DFORWARD -DN=4 -DW=3 -DMAXCRASH=1 -DORDERED|window 3, credit target 2 or 3 at each grant"
    "parallel_two|pass|safety|-DNC=2 -DN=2 -DW=2 -DMAXCRASH=1 -DORDERED|P -> ONE(C0, C1), each processing with a side effect, two items, one crash anywhere"
    "*parallel|pass|safety|-DNC=2 -DN=3 -DW=2 -DMAXCRASH=1 -DORDERED|the same with three items (a minute)"
    "parallel_cycles|pass|np|-DNC=2 -DN=2 -DW=2 -DMAXCRASH=1|the same with two items, for cycles (with three the search takes a minute)"
    "*parallel_forward|pass|safety|-DNC=2 -DFORWARD -DN=2 -DW=2 -DMAXCRASH=1|P -> ONE(C0, C1) -> sink, one crash anywhere"
    "broken_eos_first|fail|safety|-DNC=2 -DN=3 -DW=2 -DMAXCRASH=1 -DBROKEN_EOS_FIRST|end of stream before the records a replaced consumer held (cf5c516)"
    "broken_confirm_early|fail|safety|-DNC=1 -DFORWARD -DN=3 -DW=2 -DMAXCRASH=1 -DBROKEN_CONFIRM_EARLY|a chained stage confirms its input before its output is confirmed"
    "+ordered_forward|fail|safety|-DNC=2 -DFORWARD -DN=2 -DW=2 -DMAXCRASH=1 -DORDERED|parallel with forwarding: a later arrival may lack the flag (edge.pml, Found)"
    "+ordered_forward_fenced|pass|safety|-DNC=2 -DFORWARD -DN=2 -DW=2 -DMAXCRASH=1 -DORDERED -DSINK_FENCE|the same with the sink fenced off a dead generation: it does not"
)

want=("$@")

# The first error pan reports, and the counterexample told by its
# messages: every send and receive, kill, replacement and arrival (pan's
# first, depth-first: not the shortest; pan -i finds shorter ones).
explain() { # DIR LOG MACROS...
    local dir=$1 log=$2
    shift 2
    grep -m 1 -E '^pan:[0-9]+:|^pan: ' "$log" >&2
    if compgen -G "$dir/*.trail" >/dev/null; then
        echo "---- counterexample, its messages (the last 80) ----" >&2
        (cd "$dir" && spin -t -p "$@" edge.pml 2>&1 |
            grep -E '[a-z_]+(\[[^]]*\])?[!?][^<=]|kill\[[^]]*\] = 1|run Consumer|seen\[[^]]*\] = |violated|failed assertion' |
            grep -v 'nfull' | sed -E 's/ *edge.pml:[0-9]+ \(state [0-9]+\)//' | tail -n 80) >&2
        echo "---- the whole trail: MPX_MODEL_KEEP=1 $0 SOURCE_ROOT $name, then in the" \
            "directory it names, cd $name && spin -t -p $* edge.pml ----" >&2
    fi
}

total=0
failed=0
for entry in "${configs[@]}"; do
    IFS='|' read -r name expect checks macros what <<<"$entry"
    picked "$name" || continue
    name=${name#[+*]}
    total=$((total + 1))
    echo "-- $name: $what"
    echo "   model: $macros; checks: $checks; expected: $expect"
    dir=$tmp/$name
    mkdir -p "$dir" && cp "$model" "$dir/edge.pml" && cd "$dir" || exit 1
    read -r -a mflags <<<"$macros"
    if ! spin -a "${mflags[@]}" edge.pml >spin.log 2>&1; then
        cat "$dir/spin.log" >&2
        fail "$name: spin cannot translate the model"
    fi
    case $checks in
    safety) modes=(safety) ;;
    np) modes=(np) ;;
    safety+np) modes=(safety np) ;;
    *) fail "$name: unknown checks '$checks'" ;;
    esac
    found=false
    for mode in "${modes[@]}"; do
        if [[ $mode == safety ]]; then
            cflags=(-DSAFETY)
            args=(-m1000000 -w24)
            # A broken variant stops at its first error: a smaller table.
            [[ $expect == pass ]] || args=(-m1000000 -w20)
        else
            cflags=(-DNP)
            args=(-l -m1000000 -w24)
        fi
        # A broken variant's search ends at its first error, in a second:
        # its pan is built without optimisation (1 s instead of 5).
        opt=-O2
        [[ $expect == pass ]] || opt=-O0
        if ! "${cc[@]}" "$opt" "${panflags[@]}" "${cflags[@]}" -o pan pan.c >cc.log 2>&1; then
            cat "$dir/cc.log" >&2
            fail "$name: cannot build pan"
        fi
        log=$dir/$mode.log
        run_pan "$log" "${args[@]}"
        errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$log" | head -n 1)
        if [[ -z $errors ]]; then
            tail -n 30 "$log" >&2
            fail "$name ($mode): pan did not finish"
        fi
        if grep -q 'Search not completed' "$log" && [[ $errors == 0 ]]; then
            tail -n 30 "$log" >&2
            fail "$name ($mode): the search was cut short (memory or depth), nothing is proved"
        fi
        if grep -q 'max search depth too small' "$log"; then
            tail -n 30 "$log" >&2
            fail "$name ($mode): the search depth limit was reached, nothing is proved"
        fi
        echo "   $mode: $errors errors; $(figures "$log")"
        if [[ $errors != 0 ]]; then
            found=true
            if [[ $expect == pass ]]; then
                explain "$dir" "$log" "${mflags[@]}"
                echo "FAIL: $name ($mode): the model checker found an error in a correct configuration" >&2
                failed=$((failed + 1))
            else
                grep -m 1 -E '^pan:[0-9]+:' "$log" | sed 's/^/   caught: /'
                # Asked for by name: how it goes wrong.
                ((${#want[@]} == 0)) || explain "$dir" "$log" "${mflags[@]}" 2>&1
            fi
            break
        fi
    done
    if [[ $expect == fail && $found == false ]]; then
        echo "FAIL: $name: the model checker did not catch the broken variant" >&2
        failed=$((failed + 1))
    fi
    cd "$tmp" || exit 1
done

((total > 0)) || fail "no configuration is named ${want[*]}"
((failed == 0)) || fail "$failed of $total configurations"
echo "all $total configurations as expected"
