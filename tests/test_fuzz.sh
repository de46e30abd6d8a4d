#!/usr/bin/env bash
# tests/test_fuzz.sh — fuzz the wire decoder (tests/fuzz_wire.c, libFuzzer
# with ASan and UBSan) for a fixed time, or with --frames the framing of
# the connections its messages come on (tests/fuzz_frames.c, lib/xport.c).
# Builds the target with clang in a fresh temporary directory, copies the
# seed corpus there (the fuzzer adds to its corpus; the source tree must
# not change) — for the decoder, tests/fuzz_corpus with seeds made afresh
# by tests/fuzz_seeds.c from the current encoders; for the framing, seeds
# written below — checks that each seed runs cleanly and is accepted
# (bad_* ones rejected), then fuzzes.  Fails on any crash, leak, timeout or
# out-of-memory the fuzzer finds (a frame's header claiming gigabytes must
# not make the process allocate them: libFuzzer stops at a 2 GiB malloc),
# and prints the input that caused it.  Leaves no file behind, whatever
# happens.
#
#   test_fuzz.sh [--frames] SOURCE_ROOT [SECONDS]
#
# SECONDS of fuzzing: MPX_FUZZ_SECONDS when set, else 20, or 120 with
# MPX_LONG_TESTS=1 (the suite's long version).
# Needs clang and its libFuzzer runtime (Debian: clang, libclang-rt-14-dev).
set -uo pipefail

target=wire
if [[ ${1:-} == --frames ]]; then
    target=frames
    shift
fi
if [[ $# -lt 1 || $# -gt 2 || ! -d $1 ]]; then
    echo "usage: $0 [--frames] SOURCE_ROOT [SECONDS]" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
default_secs=20
[[ ${MPX_LONG_TESTS:-0} == 1 ]] && default_secs=120
secs=${2:-${MPX_FUZZ_SECONDS:-$default_secs}}
if [[ ! $secs =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [--frames] SOURCE_ROOT [SECONDS]  (SECONDS a positive integer, not '$secs')" >&2
    exit 2
fi

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "  ok: $*"; }

# Not exit 77 (a skip): a machine meant to run this test must have clang.
command -v clang >/dev/null || fail "clang is not installed (Debian: apt-get install clang libclang-rt-14-dev)"
for f in tests/fuzz_wire.c tests/fuzz_seeds.c tests/fuzz_frames.c lib/wire.c lib/pool.c lib/xport.c; do
    [[ -f $src/$f ]] || fail "no $src/$f"
done
compgen -G "$src/tests/fuzz_corpus/*.bin" >/dev/null || fail "no seed corpus in $src/tests/fuzz_corpus"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mpx-fuzz.XXXXXX") || exit 1
fuzz_pid=
cleanup() {
    if [[ -n $fuzz_pid ]]; then
        kill "$fuzz_pid" 2>/dev/null
        wait "$fuzz_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# ---- build ---------------------------------------------------------------

# UBSan findings must stop the run, not scroll past.
cflags=(-std=gnu17 -Wall -Wextra -Werror -g -O1 -pthread -fno-sanitize-recover=undefined
        -I"$src" -I"$src/include")
# The framing target's buffers small (lib/xport.c's IB_START, IB_MAX,
# BIG_FRAME, BIG_FIRST), so that inputs of a few hundred bytes fill,
# compact and grow them.
frames_defs=(-DIB_START=16 -DIB_MAX=64 -DBIG_FRAME=32 -DBIG_FIRST=48)
build() { # OUT SANITIZERS SOURCE [FLAGS...]
    local out=$1 san=$2 file=$3
    shift 3
    local with=("$src/lib/wire.c" "$src/lib/pool.c")
    [[ $file == tests/fuzz_frames.c ]] && with=("${frames_defs[@]}" "$src/lib/xport.c" -lzmq)
    # clang's temporary objects in the test's directory: a clang killed
    # mid-build (a timeout, ^C) leaves them behind, and the trap removes
    # that directory.
    if ! TMPDIR=$tmp clang "${cflags[@]}" "$@" -fsanitize="$san" "$src/$file" "${with[@]}" \
        -o "$tmp/$out" >"$tmp/cc.log" 2>&1; then
        cat "$tmp/cc.log" >&2
        if grep -q 'clang_rt\.fuzzer\|libFuzzer' "$tmp/cc.log"; then
            fail "clang has no libFuzzer runtime (Debian: apt-get install libclang-rt-14-dev)"
        fi
        fail "cannot build $file"
    fi
}
if [[ $target == wire ]]; then
    build fuzz_target fuzzer,address,undefined tests/fuzz_wire.c
    build fuzz_report fuzzer,address,undefined tests/fuzz_wire.c -DFUZZ_WIRE_REPORT
    build fuzz_seeds address,undefined tests/fuzz_seeds.c
else
    build fuzz_target fuzzer,address,undefined tests/fuzz_frames.c
    build fuzz_report fuzzer,address,undefined tests/fuzz_frames.c -DFUZZ_FRAMES_REPORT
fi
ok "built the $target fuzz target with $(clang --version | head -n 1)"

# ---- seeds ---------------------------------------------------------------

mkdir "$tmp/corpus" "$tmp/fresh" "$tmp/artifacts" || exit 1
if [[ $target == frames ]]; then
    # First byte: how the stream is cut into writes (fuzz_frames.c); then
    # frames, each a 4-byte length (little-endian here) and its bytes.
    hdr() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
    big=$(head -c 300 /dev/zero | tr '\0' 'b')
    seed() { printf "$2" >"$tmp/corpus/$1.bin"; }
    seed good_hello_only "\\x03$(hdr 2)ab"
    seed good_small_frames "\\x01$(hdr 4)peer$(hdr 5)hello$(hdr 1)x$(hdr 3)abc"
    seed good_large_frame "\\x15$(hdr 1)p$(hdr 300)$big$(hdr 2)ok"
    seed good_cut_short "\\x04$(hdr 1)p$(hdr 2)ok$(hdr 300)partial"
    seed good_claims_gigabytes "\\x10$(hdr 1)p$(hdr 4000000000)only-this"
    seed bad_empty_hello "\\x02$(hdr 0)$(hdr 2)ok"
    seed bad_long_hello "\\x02$(hdr 17)0123456789abcdefg$(hdr 2)ok"
    seed bad_empty_frame "\\x05$(hdr 1)p$(hdr 2)ok$(hdr 0)$(hdr 2)no"
else
    cp "$src"/tests/fuzz_corpus/*.bin "$tmp/corpus/" || fail "cannot copy the seed corpus"
    "$tmp/fuzz_seeds" "$tmp/fresh" >"$tmp/seeds.log" 2>&1 || {
        cat "$tmp/seeds.log" >&2
        fail "fuzz_seeds failed"
    }
    # A committed seed the encoders no longer produce still runs, but the
    # fresh ones are what the decoder must accept today.
    stale=()
    for f in "$tmp"/fresh/*.bin; do
        cmp -s "$f" "$tmp/corpus/${f##*/}" || stale+=("${f##*/}")
    done
    if ((${#stale[@]})); then
        echo "  note: tests/fuzz_corpus differs from what the encoders make now (${stale[*]});"
        echo "        to regenerate, in the source root: clang -std=gnu17 -I. -Iinclude tests/fuzz_seeds.c lib/wire.c lib/pool.c -o fuzz_seeds && ./fuzz_seeds tests/fuzz_corpus && rm fuzz_seeds"
    fi
    cp "$tmp"/fresh/*.bin "$tmp/corpus/" || exit 1
fi
nseeds=$(find "$tmp/corpus" -type f | wc -l)

cd "$tmp" || exit 1
# Every seed once, through the target as the fuzzer will run it...
if ! "$tmp/fuzz_target" -runs=0 -artifact_prefix="$tmp/artifacts/" "$tmp/corpus" \
    >"$tmp/seedrun.log" 2>&1; then
    tail -n 60 "$tmp/seedrun.log" >&2
    fail "a seed crashed the fuzz target"
fi
# ...and each with its verdict: bad_* rejected, every other one accepted.
for f in "$tmp"/corpus/*.bin; do
    name=${f##*/}
    out=$("$tmp/fuzz_report" "$f" 2>&1) || {
        echo "$out" | tail -n 60 >&2
        fail "seed $name crashed the fuzz target"
    }
    verdict=$(grep -o 'mpx-fuzz: .*' <<<"$out" | tail -n 1)
    case $name in
    bad_*) [[ $verdict == "mpx-fuzz: rejected"* ]] || fail "seed $name should be rejected: $verdict" ;;
    *) [[ $verdict == "mpx-fuzz: accepted" ]] || fail "seed $name should be accepted: $verdict" ;;
    esac
done
ok "$nseeds seeds run cleanly, each accepted or rejected as named"

# ---- fuzz ----------------------------------------------------------------

echo "  fuzzing for $secs s ..."
"$tmp/fuzz_target" -max_total_time="$secs" -max_len=4096 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$tmp/artifacts/" "$tmp/corpus" >"$tmp/fuzz.log" 2>&1 &
fuzz_pid=$!
wait "$fuzz_pid"
rc=$?
fuzz_pid=

found=$(find "$tmp/artifacts" -type f | sort)
if [[ $rc -ne 0 || -n $found ]]; then
    echo "---- fuzzer output (end) ----" >&2
    tail -n 80 "$tmp/fuzz.log" >&2
    for a in $found; do
        echo "---- ${a##*/} ($(stat -c %s "$a") bytes), base64:" >&2
        base64 -w 76 "$a" >&2
    done
    if [[ -n $found ]]; then
        echo "---- to reproduce: base64 -d > crash.bin (paste the above), then, in the source root," >&2
        if [[ $target == wire ]]; then
            echo "     clang ${cflags[*]//$src/.} -fsanitize=fuzzer,address,undefined tests/fuzz_wire.c lib/wire.c lib/pool.c -o fuzz_wire && ./fuzz_wire crash.bin" >&2
        else
            echo "     clang ${cflags[*]//$src/.} ${frames_defs[*]} -fsanitize=fuzzer,address,undefined tests/fuzz_frames.c lib/xport.c -lzmq -o fuzz_frames && ./fuzz_frames crash.bin" >&2
        fi
    fi
    # Never pass the fuzzer's status on: 77 (its crash code) means skipped to meson.
    fail "the fuzzer found a problem (exit status $rc)"
fi

stat_of() { sed -n "s/^stat::$1: *//p" "$tmp/fuzz.log" | tail -n 1; }
runs=$(stat_of number_of_executed_units)
done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$tmp/fuzz.log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]*' <<<"$done_line" | grep -o '[0-9]*')
ft=$(grep -o 'ft: [0-9]*' <<<"$done_line" | grep -o '[0-9]*')
corp=$(grep -o 'corp: [^ ]*' <<<"$done_line" | cut -d' ' -f2)
edges=$(sed -n 's/.*(\([0-9]*\) inline 8-bit counters).*/\1/p' "$tmp/fuzz.log" | head -n 1)
[[ -n $runs ]] || {
    tail -n 40 "$tmp/fuzz.log" >&2
    fail "no final stats from the fuzzer"
}
echo "  executions: $runs ($(stat_of average_exec_per_sec)/s), coverage: ${cov:-?} of ${edges:-?} edges," \
    "${ft:-?} features, corpus ${corp:-?} (inputs/bytes), new inputs: $(stat_of new_units_added)," \
    "slowest: $(stat_of slowest_unit_time_sec) s, peak RSS: $(stat_of peak_rss_mb) MB"
echo "found nothing in $runs runs"
