"""Process-wide state a method call or a method file must leave as it found it.

A method runs in the harness's process, so a change to global state (torch's default dtype,
gradient mode, thread count, deterministic-algorithms flag, the working directory) would reach
every later run and the caches. `global_state_kept` snapshots that state around a call, restores
whatever changed and reports it, so the caller can record the call as failed.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch

STATE = {  # name: (read it, set it back)
    "torch default dtype": (torch.get_default_dtype, torch.set_default_dtype),
    "torch gradient mode": (torch.is_grad_enabled, torch.set_grad_enabled),
    "torch thread count": (torch.get_num_threads, torch.set_num_threads),
    "torch deterministic algorithms": (torch.are_deterministic_algorithms_enabled, torch.use_deterministic_algorithms),
    "working directory": (os.getcwd, os.chdir),
}


@contextmanager
def global_state_kept():
    """Yields a list that, after the block, names each piece of global state the block changed
    ("torch default dtype torch.float32 -> torch.float64"); every one is set back."""
    before = {name: read() for name, (read, _) in STATE.items()}
    changed: list[str] = []
    try:
        yield changed
    finally:
        for name, (read, restore) in STATE.items():
            now = read()
            if now != before[name]:
                changed.append(f"{name} {before[name]} -> {now}")
                restore(before[name])
