#!/usr/bin/env bash
# examples/test_examples.sh — runs each example and checks what it prints
# against the same figures computed independently with find, wc, tr, gzip,
# od, ffmpeg and python3 (lineserver: as its clients, with python3's zlib),
# and that its --dot picture is one Graphviz renders.
#
#   test_examples.sh BUILD_DIR [CASE...]
#
# BUILD_DIR holds the example programs (meson passes examples/ of the build
# tree).  CASEs: count_addx wordfreq compress meta_filename chunk_stats
# frames lineserver monitor_demo (only its picture: its own test is
# elsewhere); none means all that are built.  Exits non-zero at the first mismatch.
#
# Every example runs under no_leftovers (built at the top of the build
# tree; $MPX_NO_LEFTOVERS names it when set): with a private TMPDIR, as a
# child subreaper, so that a stage process or a runtime directory the
# example leaves behind fails the case, as tests/harness.c does for the C
# tests.
set -uo pipefail
export LC_ALL=C # wc -w, tr and sort must see bytes, as the examples do

if [[ $# -lt 1 || ! -d $1 ]]; then
    echo "usage: $0 BUILD_DIR [count_addx|wordfreq|compress|meta_filename|chunk_stats|frames|lineserver|monitor_demo]..." >&2
    exit 2
fi
bin=$1
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) # the helpers beside this script
licenses=/usr/share/common-licenses
guard=${MPX_NO_LEFTOVERS:-$bin/../no_leftovers}
if [[ ! -x $guard ]]; then
    echo "FAIL: no $guard (build the tree, or set MPX_NO_LEFTOVERS)" >&2
    exit 1
fi

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "  ok: $*"; }

# Run an example under the guard; its stdout goes to the file named by $1.
# A non-zero exit is a failure in every case; 125 is the guard's: the
# example left a process or a file behind (named on stderr above).
run() {
    local out=$1 rc
    shift
    echo "running: $*"
    "$guard" "$@" >"$out"
    rc=$?
    ((rc == 125)) && fail "$* left a process or a file behind, or could not be run (see above)"
    ((rc == 0)) || fail "$* exited with status $rc"
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_examples.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

case_count_addx() {
    run "$tmp/out" "$bin/count_addx"
    printf '%s\n' 11 12 13 14 15 | cmp -s - "$tmp/out" ||
        fail "count_addx printed $(tr '\n' ' ' <"$tmp/out")instead of 11 12 13 14 15"
    ok "count_addx printed 11..15, one per line"
}

# The demo runs about a second and says how many items went through.
case_monitor_demo() {
    run "$tmp/out" "$bin/monitor_demo" --seconds 1 --workers 2
    grep -qxE 'processed [1-9][0-9]* items' "$tmp/out" && (($(wc -l <"$tmp/out") == 1)) ||
        fail "monitor_demo printed: $(cat "$tmp/out")"
    ok "monitor_demo ran and printed $(cat "$tmp/out")"
}

# The files wordfreq counts under a directory, NUL-separated: regular files
# and links to them (links to directories are not walked), at most 8 MiB,
# not compressed by name, with no NUL in the first 4 KiB.
wordfreq_files() {
    local f size
    while IFS= read -r -d '' f; do
        case $f in *.gz | *.xz | *.bz2 | *.zst) continue ;; esac
        size=$(stat -L -c %s -- "$f") || fail "stat $f"
        ((size <= 8388608)) || continue
        (($(head -c 4096 -- "$f" | tr -cd '\000' | wc -c) == 0)) || continue
        printf '%s\0' "$f"
    done < <(find "$1" -xtype f -print0)
}

case_wordfreq() {
    local -a files
    mapfile -d '' files < <(wordfreq_files "$licenses")
    ((${#files[@]} > 0)) || fail "no files in $licenses to compare with"
    local f words=0 bytes=0
    # File by file: cat would join the last word of one file to the first
    # of the next, which wordfreq does not.
    for f in "${files[@]}"; do
        words=$((words + $(wc -w <"$f")))
        bytes=$((bytes + $(wc -c <"$f")))
    done
    local expect_head="files: ${#files[@]}  bytes: $bytes  words (wc -w): $words"

    run "$tmp/out" "$bin/wordfreq" "$licenses"
    local head
    head=$(head -n 1 "$tmp/out")
    [[ $head == "$expect_head" ]] || fail "wordfreq header is '$head', expected '$expect_head'"
    ok "header: $head"

    # The same ranking from tr, sort and uniq: ASCII letter runs, lowercased,
    # by count then by word.
    # shellcheck disable=SC2018,SC2019 # ASCII letters only, as wordfreq's
    for f in "${files[@]}"; do
        tr -cs 'A-Za-z' '\n' <"$f"
        echo
    done | tr 'A-Z' 'a-z' | grep -v '^$' | sort | uniq -c | sort -k1,1nr -k2,2 |
        awk '{ printf "%8d  %s\n", $1, $2 }' >"$tmp/ranking"
    head -n 20 "$tmp/ranking" >"$tmp/top20"
    tail -n +2 "$tmp/out" >"$tmp/got20"
    (($(wc -l <"$tmp/got20") == 20)) || fail "wordfreq listed $(wc -l <"$tmp/got20") words, not 20"
    grep -qvE '^ *[0-9]+  [a-z]+$' "$tmp/got20" && fail "a top-20 line is not '%8lu  word'"
    diff -u "$tmp/top20" "$tmp/got20" || fail "wordfreq's top 20 differs from tr|sort|uniq's"
    ok "top 20 words equal tr | sort | uniq -c's, in order"

    run "$tmp/out" "$bin/wordfreq" -n 5 -j 3 "$licenses"
    { echo "$expect_head"; head -n 5 "$tmp/ranking"; } | diff -u - "$tmp/out" ||
        fail "wordfreq -n 5 -j 3 differs"
    ok "-n 5 -j 3 gives the same header and the top 5"
}

case_compress() {
    local out=$tmp/gz
    run "$tmp/out" "$bin/compress" "$out" "$licenses"
    local summary
    summary=$(cat "$tmp/out")
    [[ $summary =~ ^files:\ ([0-9]+)\ \ in:\ ([0-9]+)\ bytes\ \ out:\ ([0-9]+)\ bytes\ \ ratio:\ [0-9.]+$ ]] ||
        fail "compress printed '$summary'"
    local nfiles=${BASH_REMATCH[1]} nin=${BASH_REMATCH[2]} nout=${BASH_REMATCH[3]}
    ok "summary: $summary"

    local f rel count=0 bytes_in=0
    while IFS= read -r -d '' f; do
        rel=${f#"$licenses"/}
        [[ -f $out/$rel.gz ]] || fail "no $out/$rel.gz for $f"
        gzip -t "$out/$rel.gz" || fail "gzip -t $out/$rel.gz"
        zcat "$out/$rel.gz" | cmp -s - "$f" || fail "zcat $out/$rel.gz differs from $f"
        count=$((count + 1))
        bytes_in=$((bytes_in + $(wc -c <"$f")))
    done < <(find "$licenses" -xtype f -print0)
    ok "$count files pass gzip -t and zcat to their original"

    local made bytes_out
    made=$(find "$out" -type f | wc -l)
    bytes_out=$(find "$out" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    ((made == count)) || fail "compress wrote $made files for $count inputs"
    ((nfiles == count)) || fail "compress reported $nfiles files, there are $count"
    ((nin == bytes_in)) || fail "compress reported $nin bytes in, the files hold $bytes_in"
    ((nout == bytes_out)) || fail "compress reported $nout bytes out, it wrote $bytes_out"
    ok "file count, bytes in and bytes out match the files"
}

case_meta_filename() {
    run "$tmp/out" "$bin/meta_filename" "$licenses"
    local expect
    expect=$(find "$licenses" -mindepth 1 -maxdepth 1 -xtype f | wc -l)
    (($(wc -l <"$tmp/out") == expect)) ||
        fail "meta_filename printed $(wc -l <"$tmp/out") lines for $expect files"
    local line name n seen=""
    while IFS= read -r line; do
        [[ $line =~ ^([^/]+):\ ([0-9]+)\ lines$ ]] || fail "meta_filename printed '$line'"
        name=${BASH_REMATCH[1]} n=${BASH_REMATCH[2]}
        [[ -f $licenses/$name ]] || fail "meta_filename named '$name', not a file in $licenses"
        (($(wc -l <"$licenses/$name") == n)) ||
            fail "$name: meta_filename says $n lines, wc -l says $(wc -l <"$licenses/$name")"
        [[ $seen == *"/$name/"* ]] && fail "meta_filename printed $name twice"
        seen+="/$name/"
    done <"$tmp/out"
    ok "$expect lines, one per file, each count equal to wc -l's"
}

# A file of every kind of byte for chunk_stats: the licenses' text many
# times over (about 8 MB), each copy followed by the 256 byte values,
# words glued by control bytes and bytes above 0x7e (which wc takes as
# neither part of a word nor a separator) and such bytes alone between
# spaces (no word), ending without a newline.
make_stats_input() {
    local f=$1 i all=$tmp/all256
    for i in {0..255}; do printf "\\$(printf %03o "$i")"; done >"$all"
    (($(wc -c <"$all") == 256)) || fail "could not make the 256 byte values"
    for ((i = 0; i < 30; i++)); do
        cat "$licenses"/*
        cat "$all"
        printf 'x\001y \200z\t\r\f\v\001\001w\377\n \200 \001\001 \377\376 \177 a\n'
    done >"$f"
    printf 'the end, no newline' >>"$f"
}

# The line chunk_stats prints first, from wc.
wc_line() {
    echo "lines: $(wc -l <"$1")  words: $(wc -w <"$1")  bytes: $(wc -c <"$1")"
}

case_chunk_stats() {
    local f=$tmp/stats.in expect got
    make_stats_input "$f"
    expect=$(wc_line "$f")

    run "$tmp/out" "$bin/chunk_stats" "$f"
    got=$(cat "$tmp/out")
    [[ $got == "$expect" ]] || fail "chunk_stats printed '$got', wc says '$expect'"
    ok "$(stat -c %s "$f") bytes, chunks chosen by mpx_chunks: $got, as wc"

    # Many chunks, so that words and runs of control bytes straddle their
    # boundaries everywhere.
    run "$tmp/out" "$bin/chunk_stats" -j 3 -c 1000 "$f"
    got=$(cat "$tmp/out")
    [[ $got == "$expect" ]] || fail "chunk_stats -j 3 -c 1000 printed '$got', wc says '$expect'"
    ok "-j 3 -c 1000: as wc"

    # A chunk per byte.
    head -c 3000 "$f" >"$tmp/small.in"
    printf ' \001\001a\001' >>"$tmp/small.in"
    expect=$(wc_line "$tmp/small.in")
    run "$tmp/out" "$bin/chunk_stats" -j 4 -c 1 "$tmp/small.in"
    got=$(cat "$tmp/out")
    [[ $got == "$expect" ]] || fail "chunk_stats -j 4 -c 1 printed '$got', wc says '$expect'"
    ok "-j 4 -c 1 on 3005 bytes: as wc"

    # The histogram against od's bytes, counted by awk.
    run "$tmp/out" "$bin/chunk_stats" --hist "$f"
    od -An -v -tu1 "$f" | awk '{ for (i = 1; i <= NF; i++) c[$i]++ }
        END { for (v in c) print v, c[v] }' | sort -n >"$tmp/od.hist"
    tail -n +2 "$tmp/out" | diff -u "$tmp/od.hist" - >"$tmp/hist.diff" ||
        fail "chunk_stats --hist differs from od's bytes: $(head -n 20 "$tmp/hist.diff")"
    (($(wc -l <"$tmp/od.hist") == 256)) || fail "the input lacks some byte values"
    ok "--hist: the 256 byte counts equal od's"

    : >"$tmp/empty.in"
    run "$tmp/out" "$bin/chunk_stats" "$tmp/empty.in"
    got=$(cat "$tmp/out")
    [[ $got == "lines: 0  words: 0  bytes: 0" ]] || fail "chunk_stats of an empty file printed '$got'"
    ok "an empty file: $got"

    local rc
    "$guard" "$bin/chunk_stats" "$tmp/no-such-file" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    ((rc == 1)) && grep -q 'no-such-file: No such file or directory' "$tmp/err" ||
        fail "chunk_stats of a missing file: status $rc, said '$(cat "$tmp/err")'"
    ok "a missing file: $(cat "$tmp/err")"
}

# ---- frames ------------------------------------------------------------------
# What the frames example encoded, decoded again by ffmpeg, against a
# computation of its own: ffmpeg's test pattern as raw frames, the
# brightness curve applied by python3 (v -> 255 - (255 - v)^2 / 255, in
# integers), one "size md5" line per frame.  Equal lists mean every frame
# arrived, in order, with the right bytes.

# The frames the example should have encoded: W H RATE COUNT.
frames_expected() {
    ffmpeg -nostdin -v error -f lavfi -i "testsrc=size=${1}x$2:rate=$3" -frames:v "$4" \
        -f rawvideo -pix_fmt rgb24 - |
        python3 -c '
import hashlib, sys
size = int(sys.argv[1])
curve = bytes(255 - (255 - v) * (255 - v) // 255 for v in range(256))
while True:
    frame = sys.stdin.buffer.read(size)  # up to size bytes: only the last may be short
    if not frame:
        break
    print(len(frame), hashlib.md5(frame.translate(curve)).hexdigest())
' "$(($1 * $2 * 3))"
}

# The frames in a video file, as rgb24: one "size md5" line each.
frames_decoded() {
    ffmpeg -nostdin -v error -i "$1" -f framemd5 -pix_fmt rgb24 - |
        awk -F', *' '!/^#/ { print $5, $6 }'
}

# Run frames with ARGS, writing OUT, and check what it printed and wrote:
# W H RATE COUNT OUT ARGS...
check_frames() {
    local w=$1 h=$2 rate=$3 n=$4 out=$5
    shift 5
    run "$tmp/out" "$bin/frames" -s "${w}x$h" -r "$rate" -n "$n" "$@" "$out"
    local line
    line=$(cat "$tmp/out")
    [[ $line =~ ^frames:\ $n\ \ size:\ ${w}x$h\ \ seconds:\ [0-9]+\.[0-9]{3}\ \ frames/s:\ [0-9]+\.[0-9]\ \ MB/s:\ [0-9]+\.[0-9]$ ]] ||
        fail "frames printed '$line'"
    [[ -s $out ]] || fail "frames wrote no $out"
    local codec
    codec=$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height \
        -of csv=p=0 "$out") || fail "ffprobe cannot read $out"
    [[ $codec == "ffv1,$w,$h" ]] || fail "$out holds '$codec', not ffv1 video of ${w}x$h"
    frames_expected "$w" "$h" "$rate" "$n" >"$tmp/expected" || fail "cannot compute the expected frames"
    (($(wc -l <"$tmp/expected") == n)) || fail "ffmpeg made $(wc -l <"$tmp/expected") frames, not $n"
    frames_decoded "$out" >"$tmp/decoded" || fail "ffmpeg cannot decode $out"
    diff "$tmp/expected" "$tmp/decoded" >"$tmp/frames.diff" ||
        fail "the frames of $out differ from the expected ones (<: expected, >: decoded; a line is 'bytes md5'): $(head -n 20 "$tmp/frames.diff")"
    ok "$line; the $n frames decode to the expected bytes, in order"
}

case_frames() {
    # Not a skip: a machine meant to run this test must have them.
    command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null ||
        fail "ffmpeg is not installed (Debian: apt-get install ffmpeg; tools/install-deps installs it)"
    command -v python3 >/dev/null || fail "python3 is not installed"

    # Many small frames and more workers than CPUs: workers finish out of
    # order all the time, and seq must put them back.
    check_frames 320 240 25 150 "$tmp/small.mkv" -j 3
    # The issue's size: 1080p, 6,220,800 bytes a frame; a path that needs
    # quoting in the encoder's command line.
    check_frames 1920 1080 25 16 "$tmp/it's 1080p.mkv" -j 2
    # One worker, an odd rate.
    check_frames 64 48 7 20 "$tmp/one.mkv" -j 1
    # A long run of one worker: each pool block is used many times over,
    # seq keeps up to 128 of these small frames at a time (an epoch), and
    # the worker must still get a block for every frame it filters.
    check_frames 160 120 25 2000 "$tmp/long.mkv" -j 1

    # An encoder that cannot write fails the run, naming the command.
    local rc
    "$guard" "$bin/frames" -s 64x48 -n 5 "$tmp/no-such-dir/x.mkv" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    ((rc == 1)) && grep -q "exec: 'exec ffmpeg .*' exited with status" "$tmp/err" ||
        fail "frames into a missing directory: status $rc, said '$(cat "$tmp/err")'"
    ok "an output in a missing directory: status 1, $(head -c 200 "$tmp/err")"
}

# ---- lineserver ---------------------------------------------------------------
# The server under its clients: examples/test_lineserver.py starts it (under
# the guard), runs 20 clients of 200 requests each and a few that misbehave
# while a worker kills itself, checks every reply against python3's zlib,
# ends it with SIGTERM, then interrupts a second run with SIGINT mid-flight.

case_lineserver() {
    command -v python3 >/dev/null || fail "python3 is not installed"
    python3 "$here/test_lineserver.py" "$guard" "$bin/lineserver" ||
        fail "examples/test_lineserver.py (above)"

    local rc
    "$guard" "$bin/lineserver" "$tmp/no-such-dir" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    ((rc == 1)) && [[ ! -s $tmp/out ]] && grep -q 'no-such-dir: No such file or directory' "$tmp/err" ||
        fail "lineserver of a missing directory: status $rc, said '$(cat "$tmp/err")'"
    ok "a missing directory: status 1, $(cat "$tmp/err")"
}

# Every example takes --dot: it builds its graph, prints it in DOT and
# exits without running it.  dot must render that to a PNG without a
# warning (a warning means something is drawn wrong).
check_dot() {
    local name=$1
    rm -f "$tmp/x.png"
    echo "running: $bin/$name --dot | dot -Tpng"
    "$guard" "$bin/$name" --dot >"$tmp/x.dot" ||
        fail "$name --dot exited with status $? (125: it left something behind, see above)"
    dot -Tpng -o "$tmp/x.png" "$tmp/x.dot" 2>"$tmp/dot.err" ||
        fail "$name --dot | dot -Tpng failed: $(cat "$tmp/dot.err")"
    [[ -s $tmp/dot.err ]] && fail "dot warned about $name --dot: $(cat "$tmp/dot.err")"
    [[ -s $tmp/x.png && $(head -c 4 "$tmp/x.png" | tail -c 3) == PNG ]] ||
        fail "$name --dot | dot -Tpng made no PNG"
    ok "$name --dot renders to a $(stat -c %s "$tmp/x.png")-byte PNG"
}

cases=("$@")
if ((${#cases[@]} == 0)); then
    cases=(count_addx wordfreq compress meta_filename chunk_stats frames lineserver)
    [[ -x $bin/monitor_demo ]] && cases+=(monitor_demo)
fi
for c in "${cases[@]}"; do
    [[ -x $bin/$c ]] || fail "no program $bin/$c"
    declare -F "case_$c" >/dev/null || fail "no test case '$c'"
    echo "== $c"
    "case_$c"
    check_dot "$c"
done
echo "all passed: ${cases[*]}"
