"""`unlearn-bench reproduce`: rerun published records into a scratch folder from an empty cache,
then judge them (`bench.reproduce`, `bench.reproduce_report`).

The rerun uses the published tuned configs (copied into the scratch folder) and never writes
beside the published records; a refused reproduce leaves the scratch folder as it was.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.errors import UserError
from bench.files import ResultsLock
from bench.reproduce import prepare_scratch, published_records
from bench.reproduce_report import report
from bench.tuned import TUNED_FILE


def reproduce(request, board: Path, seeds=None, scratch: Path | None = None, tolerance: float = 0.0,
              quiet: bool = False) -> bool:
    """Rerun what `request.results_dir` publishes for its suite (only `methods`/`seeds` if given) into
    `scratch` and print the verdict; True when nothing differs and the board's conclusions hold.
    Raises UserError (nothing rerun, scratch as it was) for a bad tolerance, scratch or selection."""
    from bench.leaderboard import write_leaderboard
    from bench.runner import run_suite
    from bench.session import open_session
    from bench.worker import local_executor

    if not math.isfinite(tolerance) or tolerance < 0:
        raise UserError(f"--tolerance {tolerance:g}: give 0 (exact) or a positive, finite difference.")
    published_dir = Path(request.results_dir)
    from bench.suites import load_suite
    from bench.tuned import tuned_configs

    suite = load_suite(request.suite)
    name = suite.name
    # the rerun uses the published tuned configs: a broken or stale entry is named where it is published
    tuned_configs(suite, published_dir / name / TUNED_FILE, [m for m, _ in suite.methods])
    methods = request.methods
    chosen = None if not methods else {"original", "retrain", *methods}
    unreadable: list[str] = []
    published = published_records(published_dir, name, chosen, set(seeds) if seeds else None, unreadable)
    if not published:
        raise UserError(f"no published records of suite '{name}'{' for those methods/seeds' if methods or seeds else ''} "
                        f"under '{published_dir}'; pass --results where they are.")
    if scratch is not None and scratch.exists() and (not scratch.is_dir() or any(scratch.iterdir())):
        raise UserError(f"--scratch '{scratch}' exists and is not an empty folder; reproduce starts from "
                        "nothing: pass a new folder.")
    made = scratch is None or not scratch.exists()
    scratch = scratch or Path(tempfile.mkdtemp(prefix=f"unlearn-bench-reproduce-{name}-"))
    rerun_dir, rerun_board = scratch / "results", scratch / "leaderboard.md"
    rerun = replace(request, results_dir=str(rerun_dir), cache_dir=str(scratch / "cache"), overrides={})
    started = time.perf_counter()
    try:
        prepare_scratch(scratch, published_dir, name, TUNED_FILE)
        with ResultsLock(rerun_dir):
            session = open_session(rerun, seeds, quiet=quiet)
            counts = run_suite(session.ws, session.plan, local_executor(session.ws), rerun_dir)
            write_leaderboard(rerun_dir, rerun_board)
    except UserError:  # refused before anything ran: leave the scratch folder as it was (new or empty)
        shutil.rmtree(scratch) if made else [shutil.rmtree(p) if p.is_dir() else p.unlink() for p in scratch.iterdir()]
        raise
    elapsed = time.perf_counter() - started
    passed, line = report(published, published_records(published_dir, name), rerun_dir, tolerance, unreadable,
                          (published_dir, board, name))
    print(f"{name}: {line} ({counts['ok']} runs in {elapsed:.0f} s from an empty cache). Rerun records: "
          f"{rerun_dir}; their leaderboard: {rerun_board}; published: {published_dir} and {board}.")
    return passed
