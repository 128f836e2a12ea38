"""The harness's own git checkout: which commit made a result, and where results may be written.

Imports neither torch nor numpy: a command checks its results folder (and takes its lock)
before the slow imports, so a second driver is refused at once.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UserError

LOCAL_RESULTS = "local-results"  # beside results/ in a checkout; git-ignored


def code_is_dirty(porcelain: str) -> bool:
    """True when code differs from the commit (`git status --porcelain` lines): a tracked file other
    than the published results (results/, leaderboard.md) changed, or an untracked file that is
    code (a `.py` file, or anything under bench/ or methods/) exists. The code that made a record is
    then not the commit it names. Other untracked files (a results folder of one's own, a suite
    file) are not code."""
    for line in porcelain.splitlines():
        if not line.strip():
            continue
        path = line[3:].strip('"')
        if path.startswith("results/") or path in ("results", "leaderboard.md"):
            continue
        if not line.startswith("??") or path.endswith(".py") or path.startswith(("bench/", "methods/")):
            return True
    return False


def git(*args: str, cwd: Path | None = None) -> str:
    """Output of a git command run in `cwd` (default: the harness's own checkout); "" when git or the
    checkout is missing."""
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=cwd or Path(__file__).parent).stdout.rstrip()  # porcelain lines start with a space
    except OSError:
        return ""


@dataclass(frozen=True)
class Unpublishable:
    """Why records written now could not be published: the code differs from the commit."""

    checkout: Path
    commit: str
    changed: str  # the first changed code file

    def __str__(self) -> str:
        return f"the code differs from commit {self.commit} ({self.changed} and maybe more)"


def unpublishable(results_dir: Path, checkout: Path | None = None) -> Unpublishable | None:
    """Why `results_dir` may not receive records now: it lies inside the harness's git checkout (the
    published `results/`) while the code differs from the commit the records would name; else None."""
    top = git("rev-parse", "--show-toplevel", cwd=checkout)
    if not top or not Path(results_dir).resolve().is_relative_to(Path(top).resolve()):
        return None  # not a checkout, or a scratch folder elsewhere: nothing is published there
    changed = git("status", "--porcelain", cwd=checkout)
    if not code_is_dirty(changed):
        return None
    first = next(line[3:] for line in changed.splitlines() if code_is_dirty(line))
    return Unpublishable(Path(top), git("rev-parse", "--short", "HEAD", cwd=checkout), first)


def file_in_the_way(folder: Path) -> Path | None:
    """The first existing part of `folder` (itself or a parent) that is a file, not a folder, if any."""
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)


def results_folder(given: Path | None, allow_dirty: bool) -> Path:
    """Where a writing command's records go: `given` (--results), default `results`; with
    uncommitted code changes the default becomes <checkout>/local-results/results (said in one
    line on stderr), and a given folder inside the checkout is refused unless --allow-dirty."""
    results = given or Path("results")
    problem = None if allow_dirty else unpublishable(results)
    if problem is None or Path(results).resolve().is_relative_to((problem.checkout / LOCAL_RESULTS).resolve()):
        return results
    if given is not None:
        raise UserError(f"{problem}, and '{given}' is inside the checkout, where published results live; commit "
                        f"first, leave out --results (runs then go to {LOCAL_RESULTS}/), or pass --allow-dirty.")
    local = problem.checkout / LOCAL_RESULTS / "results"
    print(f"unlearn-bench: {problem}: records go to {local} (git-ignored), not {results}; to publish, commit the "
          f"code and run again.", file=sys.stderr)
    return local


