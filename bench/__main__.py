"""``python -m bench`` (``make bench``): shoal's performance figures as a table.

Every figure is a ratio of two things measured side by side in this run, so
the table reads the same on a laptop and on a CI runner.  Progress goes to
stderr, the table to stdout; ``--json PATH`` also writes the results.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import engines, memory, pipeline, redis_cost, rerender, sdk, slots
from bench.infra import Services, log, stop_on_signals
from bench.report import Row, details, table, write_json
from bench.sizes import DEFAULT, FULL, QUICK, Sizes

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"

FIGURES: dict[str, Callable[[Services, Sizes], list[Row]]] = {
    "pipeline": pipeline.run,  # 1, 2
    "slots": slots.run,  # 3, 4
    "memory": memory.run,  # 5
    "sdk": sdk.run,  # 6
    "engines": engines.run,  # 7
    "redis": redis_cost.run,  # 8
    "rerender": rerender.run,  # 9
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (under two minutes)")
    mode.add_argument(
        "--full", action="store_true", help="figure 5 with a true 10-hour book (slow)"
    )
    p.add_argument(
        "--json",
        type=Path,
        nargs="?",
        const=RESULTS,
        metavar="PATH",
        help=f"also write the results as JSON (default path: {RESULTS.relative_to(ROOT)})",
    )
    p.add_argument(
        "--only",
        action="append",
        choices=sorted(FIGURES),
        help=(
            "run only these groups (repeatable): "
            "pipeline=1-2, slots=3-4, memory=5, sdk=6, engines=7, redis=8, rerender=9"
        ),
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL if args.full else DEFAULT
    mode = "quick" if args.quick else "full" if args.full else "default"
    stop_on_signals()
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    rows: list[Row] = []
    failed: list[str] = []
    try:
        with Services.start() as services:
            for name, figure in FIGURES.items():
                if args.only and name not in args.only:
                    continue
                try:
                    rows += figure(services, sizes)
                except Exception as exc:  # one broken group must not hide the others
                    log(f"{name} failed: {type(exc).__name__}: {exc}")
                    failed.append(name)
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        return 130
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    print(table(rows))
    print()
    print(details(rows))
    print(
        f"\n{mode} run, {elapsed:.0f} s, {cores} cores, "
        f"1-min load average {load_before:.1f} before, {load_after:.1f} after"
    )
    if load_before > cores / 2:
        # Before anything of ours ran, so this is other work; ours raises the "after".
        print(
            "the machine was already busy before the run: CPU-bound figures "
            "(1, 2, 4 and the timings of 5) come out pessimistic"
        )
    if failed:
        print(f"\nfailed: {', '.join(failed)} (see stderr)")
    if args.json:
        meta = {
            "mode": mode,
            "elapsed_s": round(elapsed, 1),
            "cores": cores,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
        write_json(args.json, rows, meta)
        log(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
