# tests/model_common.sh — what the SPIN checks (test_model.sh,
# test_pool_model.sh) share, sourced by each after it sets model_file (the
# Promela file under lib/) and tmp_prefix: the SOURCE_ROOT argument (taken
# off the script's arguments), spin and a C compiler (cc, an array: CC may
# be a command with arguments), and a fresh temporary directory (tmp),
# removed at the end whatever happens, with any pan still running in it
# (pan_pid) ended first.  MPX_MODEL_KEEP=1 keeps the directory and says
# where it is.  Defines fail.

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
