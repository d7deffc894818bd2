#!/usr/bin/env python3
"""A long fuzzing campaign against livctl, with the harness in tests/fuzzing.py.

    python scripts/fuzz.py --cases 5000 [--seed S] [--kinds cli,url,...] [--show 40]

Generates CASES cases with hypothesis (command lines, device URLs, recordings, calibration,
regimen and profile TOML, damaged dose logs, serial byte streams, interrupts at random moments),
runs each as livctl runs (tests/fuzzing.py says how) and checks it: exit code in {0, 1, 2, 130},
no traceback or Python warning on stderr, no hang, no passing verdict on a non-finite figure, and
a dose log that verifies afterwards with no session left open. The same seed gives the same cases.

Prints the figures (cases by kind, exit codes, each kind of problem) and, for every distinct
finding, a command line that reproduces it. Exit 0 when nothing was found, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO), str(REPO / "tests")]

import fuzzing  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402

PROBLEM_KINDS = ("traceback", "python warning", "hang", "false pass", "exit code", "log", "startup")
"""`startup`: a Ctrl-C that landed in Python's own start-up (site, runpy finding the package), before
any livctl code runs; counted apart from livctl's tracebacks, since no code of livctl's can catch it."""


def _problem_kind(problem: str) -> str:
    for kind in PROBLEM_KINDS:
        if problem.startswith(kind) or (kind == "log" and ("log" in problem or "session left open" in problem)):
            return kind
    return "other"


def _signature(case: fuzzing.Case, problem: str, outcome: fuzzing.Outcome) -> str:
    """What makes two findings the same: the kind of problem, and the error's last line."""
    lines = [line for line in outcome.err.strip().splitlines() if line.strip()]
    last = lines[-1][:120] if lines else ""
    head = case.argv[0] if case.argv else case.kind
    return f"{_problem_kind(problem)} | {case.kind} {head} | {last}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=500, help="cases to run (default 500)")
    parser.add_argument("--seed", type=int, default=None, help="the campaign's seed (default: a random one, printed)")
    parser.add_argument("--kinds", default=",".join(fuzzing.KINDS),
                        help=f"comma-separated kinds of case (default all: {','.join(fuzzing.KINDS)})")
    parser.add_argument("--show", type=int, default=40, help="distinct findings to list (default 40)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in fuzzing.KINDS]
    if unknown:
        parser.error(f"unknown kinds {unknown}; known: {', '.join(fuzzing.KINDS)}")
    weights = {"cli": 40, "url": 8, "recording": 15, "toml": 12, "damaged_log": 12, "serial": 10, "sigint": 3}
    weights = {k: w for k, w in weights.items() if k in kinds}

    print(f"livctl fuzz: {args.cases} cases, seed {seed}, kinds {', '.join(weights)}", file=sys.stderr)
    fuzzing.warm_up()
    fuzzing.calibration_template()  # one real sweep, before the clock starts
    sandbox = fuzzing.new_sandbox()
    by_kind: collections.Counter = collections.Counter()
    codes: collections.Counter = collections.Counter()
    problems: collections.Counter = collections.Counter()
    findings: dict[str, tuple[str, str, int]] = {}
    slowest = (0.0, "")
    started = time.monotonic()

    @settings(max_examples=args.cases, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(fuzzing.any_case(weights))
    def campaign(case: fuzzing.Case) -> None:
        nonlocal slowest
        outcome, found = fuzzing.run_case(case, sandbox)
        by_kind[case.kind] += 1
        codes["hang" if outcome.hang else outcome.code] += 1
        if outcome.elapsed_s > slowest[0]:
            slowest = (outcome.elapsed_s, case.reproducer())
        for problem in found:
            problems[_problem_kind(problem)] += 1
            key = _signature(case, problem, outcome)
            if key in findings:
                findings[key] = (findings[key][0], findings[key][1], findings[key][2] + 1)
            else:
                lines = [line for line in outcome.err.strip().splitlines() if line.strip()]
                findings[key] = (problem, case.reproducer() + (f"\n      stderr: {lines[-1][:300]}" if lines else ""), 1)
        total = sum(by_kind.values())
        if total % 100 == 0:
            print(f"  {total} cases, {sum(problems.values())} problems, {time.monotonic() - started:.0f} s",
                  file=sys.stderr, flush=True)

    hypothesis_seed(seed)(campaign)()
    elapsed = time.monotonic() - started
    total = sum(by_kind.values())
    print(f"livctl fuzz: {total} cases in {elapsed:.0f} s, seed {seed}")
    print("by kind:     " + ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())))
    print("exit codes:  " + ", ".join(f"{c}: {n}" for c, n in sorted(codes.items(), key=lambda kv: str(kv[0]))))
    print("problems:    " + ", ".join(f"{k} {problems.get(k, 0)}" for k in PROBLEM_KINDS)
          + (f", other {problems['other']}" if problems.get("other") else ""))
    print(f"slowest:     {slowest[0]:.1f} s  {slowest[1]}")
    print(f"findings:    {len(findings)} distinct")
    for key, (problem, reproducer, count) in sorted(findings.items(), key=lambda kv: -kv[1][2])[: args.show]:
        print(f"  [{problem}] x{count}\n      {reproducer}")
    fuzzing.shutil.rmtree(sandbox.root, ignore_errors=True)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
