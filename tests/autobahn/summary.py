#!/usr/bin/env python3
"""Summarise kosoku (Autobahn TestSuite) reports, of either mode: fuzzingclient
(tests/autobahn/autobahn.sh, the server under test) or fuzzingserver
(tests/autobahn/client.sh, the client under test).

kosoku writes, per run, an Autobahn-format report directory:
  OUTDIR/index.json                {agent: {case_id: {behavior, behaviorClose,
                                     remoteCloseCode, duration, reportfile}}}
  OUTDIR/<agent>_case_<id>.json    per-case detail (result, resultClose, received,
                                     expected, wirelog, ...)
  OUTDIR/*.html                    the usual HTML report

This script merges one or more such directories, prints counts per behaviour,
lists every case that did not pass and writes an optional markdown summary.

A case passes when both its `behavior` and its `behaviorClose` are OK or
INFORMATIONAL. Everything else fails the run: FAILED, NON-STRICT, ERROR,
UNIMPLEMENTED (except in groups 12/13, permessage-deflate, which are listed but
tolerated) and close verdicts WRONG CODE / UNCLEAN / FAILED / FAILED BY CLIENT.
Cases selected with --expect but absent from every report are MISSING (fail).

Exit status: 0 all passed, 1 some case failed or is missing, 2 no usable report.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import fnmatch
import json
import os
import sys

PASS = {"OK", "INFORMATIONAL"}
# Groups whose UNIMPLEMENTED verdict is tolerated (permessage-deflate).
OPTIONAL_GROUPS = {"12", "13"}
BEHAVIOR_ORDER = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR", "MISSING"]
# Print expectation/result lines for at most this many failing cases.
MAX_DETAILED = 40
CLOSE_ORDER = ["OK", "INFORMATIONAL", "WRONG CODE", "UNCLEAN", "FAILED BY CLIENT", "FAILED", "MISSING"]


def case_key(case_id: str) -> list[int]:
    return [int(p) if p.isdigit() else 0 for p in case_id.split(".")]


def expected_cases(patterns: list[str], excludes: list[str]) -> list[str] | None:
    """Case ids kosoku would select for these globs, or None if kosoku is unavailable."""
    if not patterns:
        return None
    try:
        from kosoku.cases import CASES  # type: ignore[import-not-found]
    except Exception as exc:  # pragma: no cover - depends on the environment
        print(f"warning: cannot import kosoku.cases ({exc}); skipping the missing-case check",
              file=sys.stderr)
        return None
    ids = [c for c in CASES if any(fnmatch.fnmatchcase(c, p) for p in patterns)]
    return [c for c in ids if not any(fnmatch.fnmatchcase(c, x) for x in excludes)]


def load_reports(dirs: list[str]) -> tuple[dict[str, dict], set[str], list[str]]:
    """Merge index.json files. Returns ({case_id: entry}, agents, problems)."""
    cases: dict[str, dict] = {}
    agents: set[str] = set()
    problems: list[str] = []
    for d in dirs:
        index = os.path.join(d, "index.json")
        if not os.path.isfile(index):
            problems.append(f"no report in {d} (index.json missing)")
            continue
        try:
            with open(index, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            problems.append(f"unreadable {index}: {exc}")
            continue
        for agent, entries in data.items():
            agents.add(agent)
            for case_id, entry in entries.items():
                entry = dict(entry)
                entry["_dir"] = d
                cases[case_id] = entry
    return cases, agents, problems


def detail(entry: dict) -> dict:
    path = os.path.join(entry.get("_dir", ""), entry.get("reportfile") or "")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def one_line(text: object, limit: int = 160) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def verdict(case_id: str, entry: dict) -> str | None:
    """None if the case passes, else a short failure label."""
    b = entry.get("behavior", "?")
    bc = entry.get("behaviorClose", "?")
    group = case_id.split(".")[0]
    if b == "UNIMPLEMENTED" and group in OPTIONAL_GROUPS:
        return None
    if b in PASS and bc in PASS:
        return None
    if b not in PASS:
        return b
    return f"close {bc}"


def md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="+", help="kosoku report directories (each with index.json)")
    ap.add_argument("--expect", action="append", default=[], metavar="GLOB",
                    help="case glob that was run (e.g. '1.*'); absent cases count as MISSING")
    ap.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                    help="case glob excluded from --expect")
    ap.add_argument("--note", action="append", default=[],
                    help="extra line (e.g. a timed-out group) shown in the summary and failing the run")
    ap.add_argument("--info", action="append", default=[],
                    help="informational line shown in the summary (does not fail the run)")
    ap.add_argument("--markdown", metavar="FILE", help="also write the summary as markdown to FILE")
    ap.add_argument("--title", default="Autobahn TestSuite (kosoku) results")
    ap.add_argument("--generator", default="`tests/autobahn/autobahn.sh` (kosoku fuzzingclient)",
                    help="what produced the reports, for the markdown summary's first line")
    args = ap.parse_args()

    cases, agents, problems = load_reports(args.reports)
    want = expected_cases(args.expect, args.exclude)
    if not cases and not want:
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        print("error: no case results found", file=sys.stderr)
        return 2

    all_ids = set(cases)
    if want is not None:
        all_ids |= set(want)
    ordered = sorted(all_ids, key=case_key)

    behavior_counts: collections.Counter[str] = collections.Counter()
    close_counts: collections.Counter[str] = collections.Counter()
    groups: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    failures: list[tuple[str, str, dict, dict]] = []
    tolerated: list[tuple[str, dict]] = []
    for cid in ordered:
        group = cid.split(".")[0]
        entry = cases.get(cid)
        if entry is None:
            behavior_counts["MISSING"] += 1
            close_counts["MISSING"] += 1
            groups[group]["MISSING"] += 1
            groups[group]["_failed"] += 1
            failures.append((cid, "MISSING", {}, {}))
            continue
        b = entry.get("behavior", "?")
        behavior_counts[b] += 1
        close_counts[entry.get("behaviorClose", "?")] += 1
        groups[group][b] += 1
        label = verdict(cid, entry)
        if label is None:
            if b == "UNIMPLEMENTED":
                tolerated.append((cid, entry))
            continue
        groups[group]["_failed"] += 1
        failures.append((cid, label, entry, detail(entry)))

    n_total = len(ordered)
    n_failed = len(failures)
    n_passed = n_total - n_failed
    ok = n_failed == 0 and not args.note and not problems

    # ---- text output -------------------------------------------------------
    out = print
    out(f"Autobahn summary: {n_total} cases, agent(s): {', '.join(sorted(agents)) or '?'}")
    out("  behavior:      " + ", ".join(f"{k}={behavior_counts[k]}" for k in
                                         sorted(behavior_counts, key=lambda k: (BEHAVIOR_ORDER + [k]).index(k))))
    out("  behaviorClose: " + ", ".join(f"{k}={close_counts[k]}" for k in
                                         sorted(close_counts, key=lambda k: (CLOSE_ORDER + [k]).index(k))))
    out("  per group:")
    for g in sorted(groups, key=int):
        c = groups[g]
        parts = ", ".join(f"{k}={v}" for k, v in sorted(c.items()) if not k.startswith("_"))
        out(f"    {g:>3}: {sum(v for k, v in c.items() if not k.startswith('_')):>4} cases  {parts}"
            + (f"  -> {c['_failed']} not passing" if c["_failed"] else ""))
    for p in problems:
        out(f"  problem: {p}")
    for n in args.note:
        out(f"  problem: {n}")
    for n in args.info:
        out(f"  info: {n}")
    if failures:
        out(f"  cases not passing ({n_failed}):")
        for i, (cid, label, entry, det) in enumerate(failures):
            if i >= MAX_DETAILED:
                det = {}
            if label == "MISSING":
                out(f"    {cid:<9} MISSING (no result: kosoku did not finish or did not run it)")
                continue
            out(f"    {cid:<9} behavior={entry.get('behavior')} close={entry.get('behaviorClose')} "
                f"remoteCloseCode={entry.get('remoteCloseCode')} ({entry.get('duration')} ms)")
            if det:
                out(f"              expected: {one_line(det.get('expectation', ''))}")
                out(f"              result:   {one_line(det.get('result', ''))} / {one_line(det.get('resultClose', ''))}")
                out(f"              report:   {os.path.join(entry['_dir'], entry.get('reportfile', '').replace('.json', '.html'))}")
    for cid, entry in tolerated:
        out(f"    {cid:<9} UNIMPLEMENTED (tolerated: group {cid.split('.')[0]} is optional)")
    out(f"autobahn: {n_passed} passed, {n_failed} failed")

    # ---- markdown ----------------------------------------------------------
    if args.markdown:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        md: list[str] = [f"# {args.title}", ""]
        md.append(f"Generated {now} by {args.generator}. "
                  f"Agent: {', '.join(f'`{a}`' for a in sorted(agents)) or '?'}.")
        md.append("")
        md.append(f"**{'PASS' if ok else 'FAIL'}**: {n_passed} of {n_total} cases passed "
                  f"(a case passes when behavior and close behavior are OK or INFORMATIONAL).")
        md.append("")
        md.append("| behavior | cases |")
        md.append("| --- | ---: |")
        for k in sorted(behavior_counts, key=lambda k: (BEHAVIOR_ORDER + [k]).index(k)):
            md.append(f"| {k} | {behavior_counts[k]} |")
        md.append("")
        md.append("| close behavior | cases |")
        md.append("| --- | ---: |")
        for k in sorted(close_counts, key=lambda k: (CLOSE_ORDER + [k]).index(k)):
            md.append(f"| {k} | {close_counts[k]} |")
        md.append("")
        md.append("| group | cases | breakdown | not passing |")
        md.append("| ---: | ---: | --- | ---: |")
        for g in sorted(groups, key=int):
            c = groups[g]
            total = sum(v for k, v in c.items() if not k.startswith("_"))
            parts = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if not k.startswith("_"))
            md.append(f"| {g} | {total} | {parts} | {c['_failed']} |")
        md.append("")
        if args.note or problems or args.info:
            md.append("## Notes")
            md.append("")
            for n in problems + args.note + args.info:
                md.append(f"- {md_escape(n)}")
            md.append("")
        if failures or tolerated:
            md.append("## Cases not passing")
            md.append("")
            md.append("| case | behavior | close | remote code | result |")
            md.append("| --- | --- | --- | --- | --- |")
            for cid, label, entry, det in failures:
                if label == "MISSING":
                    md.append(f"| {cid} | MISSING | | | no result (kosoku did not finish or did not run it) |")
                    continue
                res = one_line(f"{det.get('result', '')} / {det.get('resultClose', '')}", 200)
                md.append(f"| {cid} | {entry.get('behavior')} | {entry.get('behaviorClose')} | "
                          f"{entry.get('remoteCloseCode')} | {md_escape(res)} |")
            for cid, entry in tolerated:
                md.append(f"| {cid} | UNIMPLEMENTED | {entry.get('behaviorClose')} | "
                          f"{entry.get('remoteCloseCode')} | tolerated (optional group) |")
            md.append("")
        perf = [(cid, cases[cid]) for cid in ordered if cid.startswith("9.") and cid in cases]
        if perf:
            md.append("## Performance cases (9.x) wall time")
            md.append("")
            md.append("| case | behavior | ms |")
            md.append("| --- | --- | ---: |")
            for cid, e in perf:
                md.append(f"| {cid} | {e.get('behavior')} | {e.get('duration')} |")
            md.append("")
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write("\n".join(md))
        print(f"markdown summary written to {args.markdown}")

    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
