#!/usr/bin/env python3
"""Gate a kosoku (Autobahn test suite) report.

Usage: check-autobahn.py [--min-cases N] [--close MODE] [--details N] INDEX_JSON [AGENT]

INDEX_JSON is the `index.json` kosoku writes into its `-o DIR`. Its layout
(the same as the original Autobahn testsuite's) is

    { AGENT: { CASE_ID: { "behavior": ..., "behaviorClose": ...,
                          "remoteCloseCode": ..., "duration": ms,
                          "reportfile": "agent_case_1_1_1.json" } } }

AGENT is the server's `Server` response header (or `HOST:PORT` when the
server sends none) in fuzzingclient mode, and the `agent=` query parameter
the client under test reported in fuzzingserver mode. When AGENT is not
given, every agent in the index is checked. Case descriptions are read from
the per-case report files next to index.json.

Pass rules
  * `behavior` must be OK, NON-STRICT or INFORMATIONAL. In sections 12 and
    13 (permessage-deflate) UNIMPLEMENTED is accepted too, unless
    --compression (a build with permessage-deflate: every case must pass).
    Anything else (FAILED, ERROR, UNIMPLEMENTED outside 12/13, ...) fails
    the gate.
  * `behaviorClose` (the closing handshake), per --close:
      must   (default) FAILED, UNCLEAN and WRONG CODE fail the gate;
             FAILED BY CLIENT ("it is preferred that the server close the
             TCP connection", a SHOULD) is listed as a warning only.
      strict anything but OK / INFORMATIONAL fails (kosoku's own `passed`).
      ignore only `behavior` is gated.
  * At least one case (and at least --min-cases cases) must have run.

Exit status: 0 if the gate passes, 1 if it fails, 2 on bad usage/input.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys

PASS_BEHAVIORS = {"OK", "NON-STRICT", "INFORMATIONAL"}
OPTIONAL_SECTIONS = {12, 13}  # compression: UNIMPLEMENTED is fine there
CLOSE_OK = {"OK", "INFORMATIONAL"}
CLOSE_WARN_ONLY = {"FAILED BY CLIENT"}

# Display order for the summary; unknown labels are appended.
BEHAVIOR_ORDER = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR"]
CLOSE_ORDER = ["OK", "INFORMATIONAL", "FAILED BY CLIENT", "UNCLEAN", "WRONG CODE", "FAILED"]


def case_key(case_id: str) -> tuple:
    out = []
    for part in case_id.split("."):
        try:
            out.append((0, int(part), ""))
        except ValueError:
            out.append((1, 0, part))
    return tuple(out)


def section_of(case_id: str) -> int | None:
    try:
        return int(case_id.split(".", 1)[0])
    except ValueError:
        return None


def load_detail(base_dir: str, entry: dict) -> dict:
    name = entry.get("reportfile")
    if not name:
        return {}
    try:
        with open(os.path.join(base_dir, name), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


_CASE_CLASSES = None


def case_text(case_id: str, attr: str) -> str:
    """DESCRIPTION / EXPECTATION from kosoku's own case classes, for reports
    that carry none (ERROR cases). Empty when kosoku is not importable."""
    global _CASE_CLASSES
    if _CASE_CLASSES is None:
        try:
            import kosoku.cases  # noqa: PLC0415 (only present in the venv)

            _CASE_CLASSES = dict(kosoku.cases.CASES)
        except Exception:  # noqa: BLE001 - best effort
            _CASE_CLASSES = {}
    return str(getattr(_CASE_CLASSES.get(case_id), attr, "") or "")


def ordered(counter: collections.Counter, order: list[str]) -> list[tuple[str, int]]:
    keys = [k for k in order if k in counter] + sorted(k for k in counter if k not in order)
    return [(k, counter[k]) for k in keys]


def short(text, limit: int = 300) -> str:
    text = re.sub(r"</?[a-zA-Z]+>", "", str(text))  # Autobahn texts contain <b>..</b>
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("index_json")
    ap.add_argument("agent", nargs="?")
    ap.add_argument("--compression", action="store_true",
                    help="sections 12 and 13 must pass too (no UNIMPLEMENTED)")
    ap.add_argument("--min-cases", type=int, default=1,
                    help="fail unless at least this many cases ran (default 1)")
    ap.add_argument("--close", choices=["must", "strict", "ignore"], default="must",
                    help="how to gate behaviorClose (default: must)")
    ap.add_argument("--details", type=int, default=40,
                    help="print expectation/result/close for the first N listed cases (default 40)")
    args = ap.parse_args()

    try:
        with open(args.index_json, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print(f"check-autobahn: FAIL: cannot read {args.index_json}: {e}", file=sys.stderr)
        return 2
    if not isinstance(index, dict):
        print(f"check-autobahn: FAIL: {args.index_json} is not an Autobahn index", file=sys.stderr)
        return 2

    base_dir = os.path.dirname(os.path.abspath(args.index_json))
    if args.agent is not None:
        if args.agent not in index:
            print(f"check-autobahn: FAIL: agent {args.agent!r} not in {args.index_json}; "
                  f"agents present: {sorted(index) or 'none'}")
            return 1
        agents = [args.agent]
    else:
        agents = sorted(index)

    total = 0
    failures: list[tuple[str, str, dict, dict, str]] = []
    warnings: list[tuple[str, str, dict, dict, str]] = []
    for agent in agents:
        cases = index[agent] or {}
        behaviors: collections.Counter = collections.Counter()
        closes: collections.Counter = collections.Counter()
        per_section: dict = collections.defaultdict(collections.Counter)
        duration_ms = 0
        for case_id in sorted(cases, key=case_key):
            entry = cases[case_id]
            beh = entry.get("behavior", "?")
            bclose = entry.get("behaviorClose", "?")
            behaviors[beh] += 1
            closes[bclose] += 1
            sec = section_of(case_id)
            per_section[sec][beh] += 1
            duration_ms += int(entry.get("duration") or 0)

            allowed = set(PASS_BEHAVIORS)
            optional = sec in OPTIONAL_SECTIONS and not args.compression
            if optional:
                allowed.add("UNIMPLEMENTED")
            why = []
            if beh not in allowed:
                why.append(f"behavior={beh}")
            close_bad = bclose not in CLOSE_OK
            if optional and beh == "UNIMPLEMENTED":
                close_bad = False
            if close_bad and args.close != "ignore":
                if args.close == "strict" or bclose not in CLOSE_WARN_ONLY:
                    why.append(f"behaviorClose={bclose}")
                elif not why:
                    warnings.append((agent, case_id, entry, load_detail(base_dir, entry),
                                     f"behaviorClose={bclose}"))
            if why:
                failures.append((agent, case_id, entry, load_detail(base_dir, entry), ", ".join(why)))
        total += len(cases)

        print(f"== Autobahn results for agent {agent!r}: {len(cases)} cases, "
              f"{duration_ms / 1000:.1f}s of case time")
        print("   behavior:      " + ", ".join(f"{k} {v}" for k, v in ordered(behaviors, BEHAVIOR_ORDER)))
        print("   behaviorClose: " + ", ".join(f"{k} {v}" for k, v in ordered(closes, CLOSE_ORDER)))
        print("   per section:")
        for sec in sorted(per_section, key=lambda s: (s is None, s or 0)):
            counts = ", ".join(f"{k} {v}" for k, v in ordered(per_section[sec], BEHAVIOR_ORDER))
            print(f"     {sec if sec is not None else '?':>3}: {counts}")

    def show(items, label):
        for n, (agent, case_id, entry, detail, why) in enumerate(items):
            prefix = f"[{agent}] " if len(agents) > 1 else ""
            desc = detail.get("description") or case_text(case_id, "DESCRIPTION")
            print(f"  {label} {prefix}{case_id}: {why}")
            print(f"      description: {short(desc) if desc else '(unknown)'}")
            if n >= args.details:
                continue
            expect = detail.get("expectation") or case_text(case_id, "EXPECTATION")
            if expect:
                print(f"      expectation: {short(expect)}")
            if detail:
                print(f"      result:      {short(detail.get('result', ''))}")
                if detail.get("resultClose"):
                    print(f"      close:       {short(detail.get('resultClose', ''))} "
                          f"(remote close code {detail.get('remoteCloseCode')}, "
                          f"reason {detail.get('remoteCloseReason')!r})")
            if entry.get("reportfile"):
                print(f"      report:      {os.path.join(base_dir, entry['reportfile'])}")
        if len(items) > args.details:
            print(f"  (details shown for the first {args.details} only; see --details)")

    if warnings:
        print(f"\n{len(warnings)} warning(s) (not gating):")
        show(warnings, "WARN")

    if total == 0:
        print("\ncheck-autobahn: FAIL: zero cases ran")
        return 1
    if total < args.min_cases:
        print(f"\ncheck-autobahn: FAIL: only {total} cases ran, expected at least {args.min_cases}")
        if failures:
            print(f"{len(failures)} failing case(s):")
            show(failures, "FAIL")
        return 1
    if failures:
        print(f"\n{len(failures)} failing case(s):")
        show(failures, "FAIL")
        print(f"\ncheck-autobahn: FAIL: {len(failures)} of {total} cases failed")
        print(f"autobahn: {total - len(failures)} passed, {len(failures)} failed")
        return 1
    print(f"\ncheck-autobahn: OK: all {total} cases acceptable")
    print(f"autobahn: {total} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
