#!/usr/bin/env python3
"""The benchmark program keeps its promised output: one JSON object per
line, each with bench, value, unit, baseline and ratio = value/baseline,
and the fields the README documents for each benchmark.  Figures are not
judged (speed is for bench/run, never for a test), only their form and
sense.  The run must leave no process and no file behind.

usage: test_bench.py MPX_BENCH [--sanitized]

--sanitized (the ASan build): the benchmarks that take longest there
(elastic, pachinko, wide) are left out; the optimised build checks them."""
import json
import os
import signal
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def session_procs(sid):
    """Processes still alive in session sid (zombies count too)."""
    left = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid:  # state ppid pgrp session
            left.append(int(pid))
    return left


# Left out of the ASan build's run (--sanitized), and the lines they print.
SKIPPED_SANITIZED = ("elastic", "pachinko", "wide")
SKIPPED_LINES = ("elastic", "elastic_lock", "pachinko", "wide")


def on_signal(signum, frame):
    """meson's timeout (SIGTERM), ^C or a hang-up: unwind, so that the
    finally below stops the benchmark's session and the temporary
    directory goes (Python's default would end the test at once and leave
    both behind)."""
    raise SystemExit(128 + signum)


def stop_session(proc):
    """Kill what is left of the benchmark's session; the pids killed."""
    left = session_procs(proc.pid)
    for pid in left:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    if proc.poll() is None:
        proc.wait()
    return left


def main():
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    exe = sys.argv[1]
    sanitized = "--sanitized" in sys.argv[2:]
    with tempfile.TemporaryDirectory(prefix="mpx-test-bench-") as tmp:
        env = dict(os.environ, TMPDIR=tmp)
        env.pop("XDG_RUNTIME_DIR", None)  # runtime directories go to TMPDIR
        bad = subprocess.run([exe, "--quick", "no_such_bench"], env=env,
                             capture_output=True, text=True)
        check(bad.returncode == 2 and "no_such_bench" in bad.stderr and bad.stdout == "",
              f"an unknown benchmark is refused before anything runs: {bad}")

        args = [exe, "--quick"]
        if sanitized:
            # The names the usage lists, but the longest under ASan.
            listed = [l for l in bad.stderr.splitlines() if l.startswith("benchmarks:")]
            check(len(listed) == 1, f"the usage lists the benchmarks: {bad.stderr}")
            names = listed[0].split(":", 1)[1].split() if listed else []
            args += [n for n in names if n not in SKIPPED_SANITIZED]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            try:
                out, err = proc.communicate(timeout=540)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                out, err = proc.communicate()
            check(proc.returncode == 0, f"mpx-bench exits 0 (got {proc.returncode}): {err}")
            left = session_procs(proc.pid)
            check(not left, f"no process left behind: {left}")
        finally:
            stop_session(proc)  # leave nothing behind, even when failing or stopped
        check(os.listdir(tmp) == [], f"no file left in TMPDIR: {os.listdir(tmp)}")

    lines = [l for l in out.splitlines() if l.strip()]
    rows = []
    for l in lines:
        try:
            rows.append(json.loads(l))
        except ValueError:
            check(False, f"not a JSON line: {l!r}")
    by = {}
    for r in rows:
        for key, kind in (("bench", str), ("unit", str), ("value", (int, float)),
                          ("baseline", (int, float)), ("ratio", (int, float))):
            check(isinstance(r.get(key), kind), f"{key} is a {kind}: {r}")
        if isinstance(r.get("baseline"), (int, float)) and r["baseline"] > 0:
            want = r["value"] / r["baseline"]
            check(abs(r["ratio"] - want) <= 0.001 * want + 1e-4, f"ratio = value/baseline: {r}")
        check(r.get("value", 0) > 0 and r.get("baseline", 0) > 0, f"figures are positive: {r}")
        by.setdefault(r.get("bench"), []).append(r)

    expect = {"small_items": "items/s", "small_items_recoverable": "items/s", "memory": "KiB", "latency": "us", "scaling": "x",
              "large_items": "MB/s", "startup": "ms", "chain": "items/s",
              "parallel": "items/s", "grain": "x", "pachinko": "ms", "wide": "ms",
              "chunks": "x", "frames": "frames/s", "pool_map": "x", "seq": "x",
              "elastic": "items/s", "elastic_lock": "items/s"}
    if sanitized:
        expect = {k: v for k, v in expect.items() if k not in SKIPPED_LINES}
    check(set(by) == set(expect), f"the benchmarks are {sorted(expect)}: got {sorted(by)}")
    for name, unit in expect.items():
        for r in by.get(name, []):
            check(r["unit"] == unit, f"{name} is in {unit}: {r}")

    for r in by.get("small_items", []):
        check(r.get("stages") == 3 and r.get("cpu_ns_per_item", 0) > 0,
              f"small_items says its stages and CPU per item: {r}")
    for r in by.get("memory", []):
        check(0 < r.get("private_kib", 0) <= r["value"],
              f"private memory is part of the peak RSS: {r}")
    for r in by.get("latency", []):
        check(r.get("stages") == 3 and r.get("p99", 0) >= r["value"],
              f"latency has 3 stages and p99 >= p50: {r}")
    workers = sorted(r.get("workers", 0) for r in by.get("scaling", []))
    check(workers == list(range(1, max(2, os.cpu_count() or 1) + 1))[:16],
          f"scaling has a line per worker count from 1: {workers}")
    for r in by.get("scaling", []):
        check(0 < r.get("seconds", 0) <= r.get("wall_seconds", 0),
              f"scaling's timed span lies within the run: {r}")
        if r.get("workers") == 1:
            check(r["value"] == 1 and r["baseline"] == 1, f"1 worker is the unit: {r}")
    for r in by.get("large_items", []):
        check(r.get("item_bytes") == 1 << 20 and r.get("stages") == 3,
              f"large items are 1 MiB through 3 stages: {r}")
        check(r.get("cpu_us_per_item", 0) > 0 and r.get("baseline_cpu_us_per_item", 0) > 0,
              f"large_items says its CPU per item: {r}")
        kept = r.get("baseline_heap_kept", 0)
        check(kept > 0 and abs(r.get("ratio_heap_kept", 0) - r["value"] / kept) <=
              0.001 * r["value"] / kept + 1e-4, f"ratio_heap_kept = value/baseline_heap_kept: {r}")
    check(len(by.get("frames", [])) == 1, f"frames is one line: {by.get('frames')}")
    for r in by.get("frames", []):
        check(r.get("frame_bytes") == 1920 * 1080 * 3 and r.get("stages") == 3 and
              r.get("frames") == 20, f"frames carries 20 frames of 1080p rgb24 through 3 stages "
              f"with --quick: {r}")
        for key, per_s in (("mb_per_s", "value"), ("baseline_mb_per_s", "baseline")):
            want = r.get(per_s, 0) * r.get("frame_bytes", 0) / 1e6
            check(abs(r.get(key, 0) - want) <= 0.001 * want + 0.1,
                  f"{key} = {per_s} (frames/s) * frame_bytes / 1e6: {r}")
        check(all(r.get(k, 0) > 0 for k in (
            "cpu_us_per_frame", "baseline_cpu_us_per_frame", "p50_hop1_us", "p50_hop2_us",
            "without_pool_frames_per_s", "without_pool_cpu_us_per_frame",
            "without_pool_p50_hop1_us", "without_pool_p50_hop2_us", "write_only_frames_per_s",
            "pool_peak_mb")),
              f"frames says its CPU per frame and the p50 of each hop, with and without "
              f"the pool: {r}")
    for r in by.get("startup", []):
        check(r.get("processes") == 17 and r.get("items") == 100,
              f"startup runs 17 processes carrying 100 items: {r}")
        check(r.get("cpu_ms", 0) > 0 and r.get("baseline_cpu_ms", 0) > 0,
              f"startup says the CPU its run took: {r}")
    cpus = os.cpu_count() or 1
    counts = [2] + ([cpus] if cpus > 2 else [])
    want = sorted((g, w) for g in (1, 10, 40, 1000) for w in counts)
    got = sorted((r.get("us_per_item"), r.get("workers")) for r in by.get("grain", []))
    check(got == want, f"grain has a line per grain and worker count {want}: got {got}")
    for r in by.get("grain", []):
        check(r.get("items", 0) > 0 and r.get("seconds", 0) > 0 and
              isinstance(r.get("overhead_cpu_us_per_item"), (int, float)) and
              r.get("pipeline_x", 0) > 0,
              f"grain says its items, time, CPU beyond the work and the raw pipeline's "
              f"speed-up: {r}")
    got = sorted((r.get("us_per_item"), r.get("workers")) for r in by.get("pool_map", []))
    check(got == [(1, 2), (40, 2)], f"pool_map has a line at 1 and 40 us with 2 workers: {got}")
    for r in by.get("pool_map", []):
        check(r.get("items", 0) > 0 and r.get("unordered_speedup", 0) > 0 and
              isinstance(r.get("overhead_cpu_us_per_item"), (int, float)) and
              isinstance(r.get("unordered_overhead_cpu_us_per_item"), (int, float)),
              f"pool_map says its items, the unordered speed-up and the CPU beyond the work "
              f"with and without ordering: {r}")
    got = sorted((r.get("us_per_item"), r.get("workers")) for r in by.get("seq", []))
    check(got == [(1, 2), (40, 2)], f"seq has a line at 1 and 40 us with 2 workers: {got}")
    for r in by.get("seq", []):
        # Seq around the map costs no process: range, 2 workers, as without it.
        check(r.get("processes") == 3 and r.get("unordered_processes") == 3 and
              r.get("unordered_speedup", 0) > 0 and
              isinstance(r.get("overhead_cpu_us_per_item"), (int, float)),
              f"seq says its processes, the unordered speed-up and the CPU beyond the work: {r}")
    for r in by.get("pachinko", []):
        check(r.get("processes") == 42 and r.get("items") == 5 and r.get("cpu_ms", 0) > 0,
              f"pachinko runs 42 processes carrying 5 items: {r}")
    widths = sorted(r.get("workers") for r in by.get("wide", []))
    check(sanitized or widths == [16, 64],
          f"wide runs groups of 16 and 64 workers with --quick: {widths}")
    for r in by.get("wide", []):
        check(r.get("processes") == r.get("workers", 0) + 2 and r.get("cpu_ms_per_worker", 0) > 0,
              f"wide says its processes and CPU per worker: {r}")
    check(sorted(r.get("memory", "") for r in by.get("chunks", [])) == ["readonly", "shared"],
          f"chunks is a line for mpx_shared_new's memory and one for mpx_shared_new_readonly's: "
          f"{by.get('chunks')}")
    for r in by.get("chunks", []):
        check(r.get("workers") == 2 and r.get("bytes") == 32 << 20 and r.get("chunks", 0) >= 1,
              f"chunks sums 32 MiB with --quick over 2 workers, in chunks: {r}")
        check(all(r.get(k, 0) > 0 for k in ("seconds", "baseline_seconds", "loop_seconds",
                                             "fork_split_x")),
              f"chunks says its times and the fork split's speed-up: {r}")
        if r.get("seconds", 0) > 0 and r.get("baseline_seconds", 0) > 0:
            # value and baseline are the loop's time over mpx's and OpenMP's
            check(abs(r["value"] * r["seconds"] - r["baseline"] * r["baseline_seconds"]) <=
                  0.25 * r["value"] * r["seconds"],
                  f"chunks' speed-ups agree with its times: {r}")
    check(sanitized or sorted(r.get("phase", 0) for r in by.get("elastic", [])) == [1, 2, 3],
          f"elastic has a line per phase, 1 to 3: {by.get('elastic')}")

    def split(alloc):
        """"a:b" -> (a, b), or None."""
        try:
            a, b = (int(x) for x in alloc.split(":"))
            return a, b
        except (AttributeError, ValueError):
            return None

    number = (int, float)
    for r in by.get("elastic", []):
        a_us, b_us, phase = r.get("a_us", 0), r.get("b_us", 0), r.get("phase")
        want = {1: a_us == 3 * b_us, 2: b_us == 3 * a_us, 3: a_us == b_us}.get(phase, False)
        check(a_us > 0 and b_us > 0 and want,
              f"elastic's costs swap: A 3x B, then B 3x A, then equal: {r}")
        check(r.get("budget") == 5 and r.get("start") == "1:1" and r.get("phase_seconds", 0) > 0,
              f"elastic says its budget (the source and 4), start and phase length: {r}")
        fixed = {k: r.get(f"fixed_{k.replace(':', '_')}") for k in ("1:3", "2:2", "3:1")}
        check(all(isinstance(v, number) and v > 0 for v in fixed.values()),
              f"elastic gives each fixed allocation's items/s: {r}")
        best = r.get("best_fixed")
        check(best in fixed and isinstance(fixed[best], number) and
              abs(r["baseline"] - fixed[best]) <= 0.001 * r["baseline"] + 0.1 and
              all(isinstance(v, number) and v <= fixed[best] for v in fixed.values()),
              f"elastic's baseline is the best fixed allocation: {r}")
        for key in ("allocation", "most"):
            ab = split(r.get(key))
            check(ab is not None and 1 <= ab[0] <= 3 and 1 <= ab[1] <= 3 and sum(ab) <= 4,
                  f"elastic's {key} is A:B within 1..3 each and 4 together: {r}")
        check(isinstance(r.get("settle_s"), number) and r["settle_s"] >= 0 and
              isinstance(r.get("settled"), bool) and r.get("measured_s", 0) > 0 and
              r.get("whole_phase_items_per_s", 0) > 0,
              f"elastic says when it settled, over what it measured, and the whole phase: {r}")
        check(isinstance(r.get("changes"), int) and isinstance(r.get("reversals"), int) and
              0 <= r["reversals"] < max(r["changes"], 1),
              f"elastic counts its changes and the reversals among them: {r}")
    check(sanitized or len(by.get("elastic_lock", [])) == 1, f"elastic_lock is one line: "
          f"{by.get('elastic_lock')}")
    for r in by.get("elastic_lock", []):
        check(r.get("min") == 1 and r.get("max") == 4 and r.get("budget") == 5 and
              r.get("us_per_item", 0) > 0 and r.get("seconds", 0) > 0,
              f"elastic_lock says its bounds, budget, cost and length: {r}")
        check(isinstance(r.get("grown_to"), int) and isinstance(r.get("ended_at"), int) and
              1 <= r["ended_at"] <= r["grown_to"] <= 4,
              f"elastic_lock says how far it grew and where it ended: {r}")
        check(isinstance(r.get("changes"), int) and isinstance(r.get("reversals"), int) and
              0 <= r["reversals"] < max(r["changes"], 1) and
              r.get("two_instances_items_per_s", 0) > 0,
              f"elastic_lock counts its changes and gives two instances' items/s: {r}")
    check(sorted(r.get("stages") for r in by.get("chain", [])) == [1, 4, 16],
          "chain of 1, 4, 16 stages")
    check(sorted(r.get("workers") for r in by.get("parallel", [])) == [1, 4, 16],
          "parallel groups of 1, 4, 16 workers")

    for f in failures:
        print("FAIL:", f)
    print(f"{len(rows)} lines checked, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
