#!/usr/bin/env bash
# tests/test_mpx_top.sh — mpx-top watching a real graph, on a machine
# without a display: monitor_demo runs in the background, one mpx-top draws
# it inside a detached tmux session of fixed size, another streams --json,
# two more attach and leave at once.  Checks what the screen shows and that
# its figures move, that the stream is valid JSON ending with the outcome,
# that q ends mpx-top, and that the demo, watched or not, finishes its work.
# Then the demo with an elastic group of workers: the header shows the
# budget and the controller's last decision.
# Leaves no process and no file behind, whatever happens.
#
#   test_mpx_top.sh BUILD_ROOT
#
# BUILD_ROOT is the top of the build tree (tools/mpx-top and
# examples/monitor_demo under it).  Exits 77 (skipped) without tmux.
set -uo pipefail

if [[ $# -ne 1 || ! -d $1 ]]; then
    echo "usage: $0 BUILD_ROOT" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
top=$build/tools/mpx-top
demo=$build/examples/monitor_demo
for exe in "$top" "$demo"; do
    [[ -x $exe ]] || { echo "FAIL: no $exe (build first)" >&2; exit 1; }
done
command -v tmux >/dev/null || { echo "SKIP: tmux is not installed (tools/install-deps)"; exit 77; }

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "  ok: $*"; }

# The demo's runtime directory goes to $tmp/run (TMPDIR; XDG_RUNTIME_DIR
# would come first), tmux's socket to $tmp/tmux, so that both are ours
# alone and $tmp/run can be checked empty at the end.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mpxtop.XXXXXX") || exit 1
mkdir -m 700 "$tmp/run" "$tmp/tmux" || exit 1
tmuxsock=mpxtop
tm() { TMUX_TMPDIR=$tmp/tmux tmux -L "$tmuxsock" -f /dev/null "$@"; }
run_env=(env -u XDG_RUNTIME_DIR "TMPDIR=$tmp/run")

demo_pid='' json_pid='' brief1='' brief2='' tmux_pid='' stage_pids='' edemo_pid=''
cleanup() {
    local p
    for p in $demo_pid $json_pid $brief1 $brief2 $edemo_pid; do
        pkill -P "$p" 2>/dev/null # a brief monitor's mpx-top
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    tm kill-server 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# A process that ended but is not yet reaped (a zombie) counts as gone.
alive() {
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]
}

# Wait up to $1 seconds for the command after it to succeed.
wait_for() {
    local tries=$(($1 * 10))
    shift
    while ((tries-- > 0)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

"${run_env[@]}" "$demo" --seconds 10 >"$tmp/demo.out" 2>"$tmp/demo.err" &
demo_pid=$!
echo "== monitor_demo --seconds 10 started, pid $demo_pid"

# The stats socket of the graph run by process $1.
stats_socket() {
    local s
    for s in "$tmp/run/mpx-$1-"*/stats; do
        [[ -S $s ]] && return 0
    done
    return 1
}
wait_for 10 stats_socket "$demo_pid" || fail "no $tmp/run/mpx-$demo_pid-*/stats after 10 s ($(cat "$tmp/demo.err"))"
rundir=$(dirname "$tmp/run/mpx-$demo_pid-"*/stats)
ok "runtime directory $rundir holds the stats socket"
stage_pids=$(pgrep -P "$demo_pid" | tr '\n' ' ')
[[ -n $stage_pids ]] || fail "monitor_demo has no stage processes"

echo "== mpx-top --json alongside, and two monitors that come and go"
"${run_env[@]}" "$top" --json "$demo_pid" >"$tmp/json.out" 2>"$tmp/json.err" &
json_pid=$!
# These two run while the tmux one starts; checked below.
# A monitor that attaches (it has printed a snapshot: waited for, at most
# 20 s), is sent SIGTERM, and must leave within 20 s with status 0 (in the
# sanitizer build, under the load of the other tests, one took more than
# 5 s twice in eleven suite runs: the leak check at exit is the suspect);
# one that does not is described on its stderr file (its threads, their
# states, whether something traces it) and killed.
brief() { # target, name
    "${run_env[@]}" "$top" --json "$1" >"$tmp/$2.out" 2>"$tmp/$2.err" &
    local pid=$! tries=200 t attached=0
    # A whole line that is a snapshot: the monitor is attached.
    wait_for 20 grep -q '^{"mpx_stats": *1,.*}$' "$tmp/$2.out" && attached=1
    ((attached)) || echo "mpx-top --json $1 printed no snapshot within 20 s" >>"$tmp/$2.err"
    kill -TERM "$pid" 2>/dev/null
    while ((tries-- > 0)) && alive "$pid"; do sleep 0.1; done
    if alive "$pid"; then
        {
            echo "mpx-top (pid $pid) still runs 20 s after SIGTERM:"
            grep -E '^(State|TracerPid|Threads|SigBlk|SigCgt)' "/proc/$pid/status"
            for t in /proc/"$pid"/task/*; do
                echo "  thread ${t##*/} $(cat "$t/comm") state $(cut -d' ' -f3 "$t/stat")" \
                    "wchan $(cat "$t/wchan" 2>/dev/null)"
            done
        } >>"$tmp/$2.err" 2>&1
        kill -KILL "$pid"
    fi
    wait "$pid" && ((attached))
}
brief "$rundir" brief1 &
brief1=$!
brief "$demo_pid" brief2 &
brief2=$!

echo "== mpx-top in a detached tmux session, 120x40"
tm new-session -d -s top -x 120 -y 40 \
    "env -u XDG_RUNTIME_DIR TMPDIR='$tmp/run' TERM=screen '$top' $demo_pid; echo \$? >'$tmp/top.rc'" ||
    fail "tmux new-session failed"
tmux_pid=$(tm display-message -p -t top '#{pid}')
capture() { tm capture-pane -p -t top >"$1" 2>/dev/null; }
drawn() { capture "$tmp/screen1" && grep -q 'tally' "$tmp/screen1"; }
wait_for 10 drawn || fail "mpx-top drew no stage within 10 s; the screen was:
$(cat "$tmp/screen1")"

# Row "work": name, INST, STATE, IN, OUT, ...
counts() { awk '$1 == "work" || $1 == "tally" { print $1, $4, $5 }' "$1"; }
c1=$(counts "$tmp/screen1")
[[ $(wc -l <<<"$c1") -eq 2 ]] || fail "no rows for work and tally on the first screen: '$c1'"
# A later screen with other figures (20 s: a guard against a hang, not a
# measure of how fast mpx-top redraws).
moved() { capture "$tmp/screen2" && [[ $(counts "$tmp/screen2") != "$c1" ]]; }
wait_for 20 moved || fail "the in/out counts of work and tally did not change in 20 s: $c1"
echo "--- the screen:"
cat "$tmp/screen2"
echo "---"

grep -q "pid $demo_pid" "$tmp/screen2" || fail "the header does not name pid $demo_pid"
grep -q 'running' "$tmp/screen2" || fail "the screen does not say 'running'"
for name in numbers work tally logger 'xcut "log"' 'serial "monitor_demo"'; do
    grep -q -- "$name" "$tmp/screen2" || fail "'$name' is not on the screen"
done
ok "header, group, stage and xcut names are on the screen"

c2=$(counts "$tmp/screen2")
[[ $(wc -l <<<"$c2") -eq 2 ]] || fail "no rows for work and tally: '$c2'"
ok "counts moved: $(tr '\n' ' ' <<<"$c1")-> $(tr '\n' ' ' <<<"$c2")"
# How full the queues are at one instant depends on the machine; that a
# bar with its figures is drawn does not.
grep -qE '^ +work .*\[[# ]{10}\] [0-9.]+[kM]?/768$' "$tmp/screen2" ||
    fail "no queue bar [...] depth/768 on the row of work"
ok "the queue of work is drawn as a bar with depth/capacity"

tm send-keys -t top i
instances() { capture "$tmp/screen3" && grep -qE "#2 pid [0-9]+" "$tmp/screen3"; }
wait_for 10 instances || fail "'i' did not show the instances of work within 10 s"
ok "'i' shows one row per instance"

tm send-keys -t top q
wait_for 20 test -s "$tmp/top.rc" || fail "mpx-top did not exit within 20 s of 'q'"
[[ $(cat "$tmp/top.rc") == 0 ]] || fail "mpx-top exited with status $(cat "$tmp/top.rc") after 'q'"
alive "$demo_pid" || fail "the demo ended before mpx-top was done watching it"
ok "'q' ended mpx-top with status 0 while the graph still ran"

wait "$brief1"
rc1=$?
wait "$brief2"
rc2=$?
brief1='' brief2=''
if ((rc1 != 0 || rc2 != 0)); then
    cat "$tmp/brief1.err" "$tmp/brief2.err" >&2
    fail "monitors sent SIGTERM once attached exited with status $rc1 and $rc2, not 0, or never attached"
fi
ok "two more monitors attached (each printed a snapshot) and left while the graph ran"

# A demo ($1: pid, $2: name of its .out/.err files in $tmp, $3: how to
# call it) ended with status 0 and printed its count.
demo_finished() {
    wait "$1"
    local rc=$?
    ((rc == 0)) || fail "$3 exited with status $rc: $(cat "$tmp/$2.err")"
    grep -qE '^processed [1-9][0-9]* items$' "$tmp/$2.out" ||
        fail "$3 printed '$(cat "$tmp/$2.out")', not 'processed N items'"
    ok "$3: $(cat "$tmp/$2.out")"
}

echo "== the demo finishes on its own"
demo_finished "$demo_pid" demo monitor_demo
demo_pid=''

wait "$json_pid"
rc=$?
json_pid=''
((rc == 0)) || fail "mpx-top --json exited with status $rc: $(cat "$tmp/json.err")"
python3 - "$tmp/json.out" <<'EOF' || fail "the --json stream is wrong"
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert len(lines) >= 4, f"only {len(lines)} snapshots"
snaps = [json.loads(line) for line in lines]
for s in snaps:
    assert s["mpx_stats"] == 1, s.get("mpx_stats")
    assert isinstance(s["stages"], list) and isinstance(s["tree"], dict)
assert all(not s["ended"] for s in snaps[:-1]), "a snapshot before the last says ended"
last = snaps[-1]
assert last["ended"] is True and last["outcome"] == "ok", (last["ended"], last["outcome"])
ts = [s["t"] for s in snaps]
assert ts == sorted(ts), "time goes backwards"
names = [s["name"] for s in last["stages"]]
assert names == ["numbers", "work", "tally", "logger"], names
tally = last["stages"][2]
assert tally["in"] > 0 and tally["state"] == "done", tally
print(f"  ok: --json gave {len(snaps)} snapshots, valid JSON, mpx_stats 1, "
      f"the last ended ok; tally took {tally['in']} items")
EOF

echo "== an elastic group: the header shows the budget and the controller's last decision"
# One worker that limits the graph (the tally is faster than one): the
# controller grows it within a second or so; whatever it does next (keep,
# undo, grow again), the header shows its last decision.
"${run_env[@]}" "$demo" --workers 1 --elastic 3 --seconds 3 >"$tmp/edemo.out" 2>"$tmp/edemo.err" &
edemo_pid=$!
wait_for 10 stats_socket "$edemo_pid" || fail "no stats socket for the elastic demo after 10 s ($(cat "$tmp/edemo.err"))"
estage_pids=$(pgrep -P "$edemo_pid" | tr '\n' ' ')
tm new-session -d -s etop -x 160 -y 30 \
    "env -u XDG_RUNTIME_DIR TMPDIR='$tmp/run' TERM=screen '$top' $edemo_pid; echo \$? >'$tmp/etop.rc'" ||
    fail "tmux new-session for the elastic demo failed"
decided() {
    tm capture-pane -p -t etop >"$tmp/escreen" 2>/dev/null &&
        grep -qE "budget [0-9]+; at [0-9.]+s 'work' [0-9]+ -> [0-9]+: " "$tmp/escreen"
}
wait_for 20 decided || fail "mpx-top showed no decision of the controller within 20 s; the screen was:
$(cat "$tmp/escreen")"
ok "the header shows: $(grep -oE "budget [0-9]+; at [0-9.]+s 'work' [0-9]+ -> [0-9]+: .{0,40}" "$tmp/escreen")"
tm send-keys -t etop q
wait_for 20 test -s "$tmp/etop.rc" || fail "mpx-top (elastic demo) did not exit within 20 s of 'q'"
demo_finished "$edemo_pid" edemo "monitor_demo --elastic"
edemo_pid=''
stage_pids="$stage_pids $estage_pids"

echo "== nothing left behind"
tm kill-server 2>/dev/null
for p in $stage_pids $tmux_pid; do
    wait_for 3 eval "! alive $p" || fail "process $p is still there"
done
ok "the stage processes and the tmux server are gone"
leftover=$(ls -A "$tmp/run")
[[ -z $leftover ]] || fail "left in the runtime base: $leftover"
ok "the runtime base $tmp/run is empty"
echo "all passed"
