"""Where a run happens: the device, the seeds of the global RNGs, and what a record says about
the environment (python, torch, device, threads, data source, git commit and dirtiness)."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from bench.errors import UserError


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def fix_threads(threads: int) -> None:
    """One thread count for torch and numpy's BLAS, whatever the machine has: the same results on
    every machine (CPU kernels split their sums by thread) and timings that compare."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: CUDA is not available on this machine; use --device cpu.")
    return device


def code_is_dirty(porcelain: str) -> bool:
    """True when files other than the published results (results/, leaderboard.md) differ from the
    commit: the code that made a record is then not the commit it names."""
    paths = [line[3:].strip('"') for line in porcelain.splitlines() if line.strip()]
    return any(not (p.startswith("results/") or p == "results" or p == "leaderboard.md") for p in paths)


def git(*args: str, cwd: Path | None = None) -> str:
    """Output of a git command run in `cwd` (default: the harness's own checkout); "" when git or the
    checkout is missing."""
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=cwd or Path(__file__).parent).stdout.rstrip()  # porcelain lines start with a space
    except OSError:
        return ""


def check_publishable(results_dir: Path, checkout: Path | None = None) -> None:
    """Refuse to write into a results folder inside the harness's git checkout (the published
    `results/`) while the code differs from the commit the records would name."""
    top = git("rev-parse", "--show-toplevel", cwd=checkout)
    if not top or not Path(results_dir).resolve().is_relative_to(Path(top).resolve()):
        return  # not a checkout, or a scratch folder elsewhere: nothing is published there
    changed = git("status", "--porcelain", cwd=checkout)
    if code_is_dirty(changed):
        first = next(line[3:] for line in changed.splitlines() if code_is_dirty(line))
        raise UserError(f"the code differs from commit {git('rev-parse', '--short', 'HEAD', cwd=checkout)} "
                        f"({first} and maybe "
                        f"more), and '{results_dir}' is inside the checkout, where published results live; commit "
                        "first, write elsewhere with --results, or pass --allow-dirty.")


def environment(device: torch.device, data_source: str) -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "data_source": data_source,
            "git_sha": git("rev-parse", "HEAD") or None, "git_dirty": code_is_dirty(git("status", "--porcelain")),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
