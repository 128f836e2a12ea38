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


def environment(device: torch.device, data_source: str) -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                                  cwd=Path(__file__).parent).stdout.strip()
        except OSError:
            return ""

    return {"python": platform.python_version(), "torch": torch.__version__,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "data_source": data_source,
            "git_sha": git("rev-parse", "HEAD") or None, "git_dirty": code_is_dirty(git("status", "--porcelain")),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
