# tests/model_common.sh — what the SPIN checks (test_model.sh,
# test_pool_model.sh) share, sourced by each after it sets model_file (the
# Promela file under lib/) and tmp_prefix: the SOURCE_ROOT argument (taken
# off the script's arguments), spin and a C compiler (cc, an array: CC may
# be a command with arguments), and a fresh temporary directory (tmp),
# removed at the end whatever happens, with any pan still running in it
# (pan_pid) ended first.  MPX_MODEL_KEEP=1 keeps the directory and says
# where it is.  Defines fail, picked (which reads the script's `want`),
# run_pan, figures, and check_configs (the loop over a script's
# configurations).

if [[ $# -lt 1 || ! -d $1 ]]; then
    echo "usage: $0 SOURCE_ROOT [NAME...]" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
shift
model=$src/lib/$model_file

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Not a skip: a machine meant to run this test must have spin.
command -v spin >/dev/null || fail "spin is not installed (Debian: apt-get install spin)"
read -r -a cc <<<"${CC:-cc}"
if ((${#cc[@]} == 0)) || ! command -v "${cc[0]}" >/dev/null; then
    fail "no C compiler (${CC:-cc}) to build pan"
fi
[[ -f $model ]] || fail "no $model"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/$tmp_prefix.XXXXXX") || exit 1
pan_pid=
cleanup() {
    cd / || true
    if [[ -n $pan_pid ]]; then
        kill "$pan_pid" 2>/dev/null
        wait "$pan_pid" 2>/dev/null
    fi
    if [[ ${MPX_MODEL_KEEP:-0} == 1 ]]; then
        echo "kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# The configurations asked for (NAME...: each, whatever its mark; none:
# every configuration but the optional ones, marked +, and the long ones,
# marked *, which run only with MPX_LONG_TESTS=1).
picked() { # NAME (with its mark, if any)
    local n
    if ((${#want[@]} == 0)); then
        case $1 in
        +*) return 1 ;;
        \**) [[ ${MPX_LONG_TESTS:-0} == 1 ]] ;;
        *) return 0 ;;
        esac
        return
    fi
    for n in "${want[@]}"; do
        [[ $n == "${1#[+*]}" ]] && return 0
    done
    return 1
}

# Run pan (in the current directory) in the background and wait for it,
# so that a signal to this script ends it too: a trap runs during `wait`,
# not while a command in the foreground (or a subshell) still runs.
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

# States, depth, seconds and memory of a pan run, from its log.
figures() { # LOG
    local states depth secs mem
    states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$1" | head -n 1)
    depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$1" | head -n 1)
    secs=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\) seconds.*/\1/p' "$1" | head -n 1)
    mem=$(sed -n 's/^ *\([0-9.]*\).total actual memory usage.*/\1/p' "$1" | head -n 1)
    echo "${states:-?} states, depth ${depth:-?}, ${secs:-?} s, ${mem:-?} MB"
}

# The counterexample: the steps that matter (explain_pattern, a grep -E
# pattern the script sets), pan's first, depth-first.
explain() { # DIR FILE MACROS...
    local dir=$1 file=$2
    shift 2
    if compgen -G "$dir/*.trail" >/dev/null; then
        echo "---- counterexample (the last 60 steps that matter) ----" >&2
        (cd "$dir" && spin -t -p "$@" "$file" 2>&1 |
            grep -E "$explain_pattern" |
            sed -E "s/ *${file//./\\.}:[0-9]+ \\(state [0-9]+\\)//" | tail -n 60) >&2
    fi
}

# Check every configuration picked (the script's `configs`, `panflags`),
# as the header of test_pool_model.sh says, pan built with -O2 for those
# named in the script's `optimised` (without optimisation for the rest);
# exits with the outcome.
check_configs() {
total=0
failed=0
for entry in "${configs[@]}"; do
    IFS='|' read -r name file expect macros what <<<"$entry"
    picked "$name" || continue
    name=${name#[+*]}
    total=$((total + 1))
    echo "-- $name: $what"
    echo "   model: $file $macros; expected: $expect"
    dir=$tmp/$name
    [[ -f $src/lib/$file ]] || fail "no $src/lib/$file"
    mkdir -p "$dir" && cp "$src/lib/$file" "$dir/$file" && cd "$dir" || exit 1
    read -r -a mflags <<<"$macros"
    if ! spin -a "${mflags[@]}" "$file" >spin.log 2>&1; then
        cat "$dir/spin.log" >&2
        fail "$name: spin cannot translate the model"
    fi
    # pan builds in about 1 s without optimisation and 5-6 s with -O2,
    # and searches 1.5 times faster with it: worth it only where the
    # search takes seconds (the script's `optimised` names).
    opt=-O0
    for n in "${optimised[@]}"; do
        [[ $n == "$name" ]] && opt=-O2
    done
    if ! "${cc[@]}" "$opt" "${panflags[@]}" -o pan pan.c >cc.log 2>&1; then
        cat "$dir/cc.log" >&2
        fail "$name: cannot build pan"
    fi
    log=$dir/safety.log
    # A broken variant's search stops at its first error: a hash table of
    # 2^20 slots (8 MB, not pan's default 128 MB to zero) serves it.
    hashw=()
    [[ $expect == pass ]] || hashw=(-w20)
    run_pan "$log" -m1000000 "${hashw[@]}"
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
    # What pan says of the property named: its assertion, or a process
    # left waiting for ever.
    property=${expect#fail=}
    says="(${property}==0)"
    [[ $property == end ]] && says="invalid end state"
    if [[ $expect == pass ]]; then
        if [[ $errors != 0 ]]; then
            echo "   $caught" >&2
            explain "$dir" "$file" "${mflags[@]}"
            echo "FAIL: $name: the model checker found an error in a correct configuration" >&2
            failed=$((failed + 1))
        fi
    elif [[ $errors == 0 ]]; then
        echo "FAIL: $name: the model checker did not catch the broken variant" >&2
        failed=$((failed + 1))
    elif [[ $caught != *"$says"* ]]; then
        echo "   $caught" >&2
        explain "$dir" "$file" "${mflags[@]}"
        echo "FAIL: $name: caught, but not as $property" >&2
        failed=$((failed + 1))
    else
        echo "   caught: $caught"
        ((${#want[@]} == 0)) || explain "$dir" "$file" "${mflags[@]}" 2>&1
    fi
    cd "$tmp" || exit 1
done

((total > 0)) || fail "no configuration is named ${want[*]}"
((failed == 0)) || fail "$failed of $total configurations"
echo "all $total configurations as expected"
}
