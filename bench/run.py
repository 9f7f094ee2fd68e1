"""`make bench`: run every benchmark, print a table and write bench/results.json (ratios vs same-run references)."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
import traceback
from pathlib import Path

from bench.results import Result, table, write

# Each module exposes run() -> list[Result]; the order is cheapest first.
SUITES = ("bench.codec", "bench.sim", "bench.models", "bench.detect_real", "bench.e2e", "bench.cloud", "bench.rollouts",
          "bench.fleet", "bench.reports")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--only", action="append", choices=[s.rsplit(".", 1)[1] for s in SUITES],
                        help="run only this suite (repeatable); the other suites' figures in --out are kept")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results.json")
    args = parser.parse_args(argv)
    results: list[Result] = []
    failed: list[str] = []
    for name in SUITES:
        if args.only and name.rsplit(".", 1)[1] not in args.only:
            continue
        t0 = time.monotonic()
        print(f"==> {name}", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            print(f"    not built yet: {name}", file=sys.stderr)
            continue
        try:
            suite: list[Result] = module.run()
        except Exception:  # one suite failing must not lose the others' figures
            print(f"    FAILED {name} after {time.monotonic() - t0:.1f} s:", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            failed.append(name)
            continue
        results.extend(suite)
        print(f"    {len(suite)} figures in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    # A failed suite's earlier figures stay in the file (marked by nothing new): keep them, as --only does.
    write(results, args.out, keep_others=bool(args.only) or bool(failed))
    print(f"# {platform.node()} · {platform.processor() or platform.machine()} · python {platform.python_version()}")
    print(table(results))
    print(f"written to {args.out}")
    if failed:
        print(f"suites that failed (their previous figures kept): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
