"""How long the default suite takes from an empty cache: `unlearn-bench run digits` into a fresh
results folder and cache, with each executor asked for, one after the other (never at once:
the cores are shared).

Wall-clock seconds of the whole command (originals, reference models, every run with its
attacks, U-LiRA's unlearned references, the forget-quality sets, the leaderboard and its
figures), and the leaderboard alone on the finished records, measured after.

    python benchmarks/default_suite_time.py [--executors local processes] [--repeats 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench", *args], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executors", nargs="+", default=["local", "processes"], choices=["local", "processes"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    for executor in args.executors:
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="unlearn-bench-default-") as tmp:
                results, board = Path(tmp) / "results", Path(tmp) / "leaderboard.md"
                common = ["--results", str(results), "--leaderboard", str(board)]
                extra = ["--executor", "processes", "--job-cpus", "1"] if executor == "processes" else []
                run = timed(["run", "digits", "--quiet", "--cache-dir", str(Path(tmp) / "cache"), *common, *extra])
                board_s = timed(["leaderboard", *common])
                print(f"digits, empty cache, --executor {executor}: {run:.0f} s (of which the leaderboard alone "
                      f"takes {board_s:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
