#!/usr/bin/env python3
"""Summarise Criterion results as the tables of docs/benchmarks.md.

Reads <target>/criterion/<group>/<impl>/<case>/new/sample.json (per-sample
total time and iteration count) and prints, per case, the median and the
min-max of the per-iteration times of all samples, the throughput at the
median, and the ratio of each implementation's median to the first one's.

Usage: benches/tools/bench_table.py [CRITERION_DIR]
       (default: $CARGO_TARGET_DIR/criterion, else target/criterion)
"""

import json
import os
import statistics
import sys

# group -> (implementations, first is the reference, unit of throughput)
GROUPS = {
    "frame_decode": (["zerows", "tungstenite"], "bytes"),
    "handshake": (["zerows", "tungstenite"], None),
    "echo_session": (["zerows", "tungstenite"], "messages"),
    "utf8": (["zerows", "std"], "bytes"),
    "unmask": (["mask_apply", "copy"], "bytes"),
}


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def per_iter(path):
    with open(path) as f:
        s = json.load(f)
    return [t / n for t, n in zip(s["times"], s["iters"])]


def throughput(path):
    """Bytes or elements per iteration, from benchmark.json."""
    try:
        with open(path) as f:
            t = json.load(f).get("throughput") or {}
    except FileNotFoundError:
        return None
    for key in ("Bytes", "BytesDecimal", "Elements"):
        if key in t:
            return t[key]
    return None


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
    for group, (impls, unit) in GROUPS.items():
        gdir = os.path.join(root, group)
        if not os.path.isdir(gdir):
            continue
        print(f"\n### {group}\n")
        cols = []
        for imp in impls:
            cols += [f"{imp} median (min–max)"]
            if unit:
                cols += [f"{imp} " + ("GB/s" if unit == "bytes" else "M msg/s")]
        cols += [f"{impls[1]} / {impls[0]}"]
        print("| case | " + " | ".join(cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        ref = os.path.join(gdir, impls[0])
        # A group without parameters keeps its samples directly under the
        # implementation's folder.
        cases = sorted(
            (c for c in os.listdir(ref) if c != "report"
             and os.path.isdir(os.path.join(ref, c, "new"))),
            key=lambda c: throughput(os.path.join(ref, c, "new", "benchmark.json")) or 0,
        ) or ["."]
        for case in cases:
            row, medians = [case if case != "." else group], []
            for imp in impls:
                d = os.path.join(gdir, imp, case, "new")
                xs = per_iter(os.path.join(d, "sample.json"))
                m = statistics.median(xs)
                medians.append(m)
                row.append(f"{fmt_time(m)} ({fmt_time(min(xs))}–{fmt_time(max(xs))})")
                if unit:
                    q = throughput(os.path.join(d, "benchmark.json")) or 0
                    rate = q / m  # per ns: GB/s for bytes, G/s for elements
                    row.append(f"{rate:.2f}" if unit == "bytes" else f"{rate * 1e3:.2f}")
            row.append(f"{medians[1] / medians[0]:.2f}×")
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
