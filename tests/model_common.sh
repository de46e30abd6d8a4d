# tests/model_common.sh — what the SPIN checks (test_model.sh,
# test_pool_model.sh) share, sourced by each after it sets model_file (the
# Promela file under lib/) and tmp_prefix: the SOURCE_ROOT argument (taken
# off the script's arguments), spin and a C compiler (cc, an array: CC may
# be a command with arguments), and a fresh temporary directory (tmp),
# removed at the end whatever happens, with any pan still running in it
# (pan_pid) ended first.  MPX_MODEL_KEEP=1 keeps the directory and says
# where it is.  Defines fail, picked (which reads the script's `want`),
# run_pan and figures.

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

# The configurations asked for (NAME...: each, and the optional ones,
# marked +, only when named; none: every configuration but the optional).
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
