"""What a method file needs: the registration decorator and the data and context it receives.

    from bench.api import RunContext, UnlearnData, register_method

A method gets a private copy of the original model, the forget/retain/val data (never the
test split), its frozen config and a RunContext, and returns the unlearned model. It does no
evaluation, seeding or file I/O and prints nothing; the runner does that for every method.
`register_method(name, config=..., protocols=("class",), deterministic=True)`: `protocols`
names the forget protocols the method is meant for (default: random and class); a suite may
still run it on others and the leaderboard marks those rows. Config fields declare their
accepted range beside their default with `param`, e.g. `lr: float = param(0.01, gt=0)`, so a
suite or `--set` value out of range is refused when it is read.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from bench.spec import Recipe, choice, float_range, int_range, log_range, param
from bench.data import Batcher, Split
from bench.policy import DevicePolicy
from bench.registry import MethodInfo, Registry
from bench.train import make_optimizer, run_epochs, train_from_scratch

method_registry = Registry("method", MethodInfo)
register_method = method_registry.register

__all__ = ["RunContext", "UnlearnData", "choice", "float_range", "int_range", "log_range", "param", "register_method",
           "make_optimizer", "run_epochs"]


@dataclass(frozen=True)
class UnlearnData:
    """What a method may learn from. Read-only: the runner checks it comes back unchanged."""

    forget: Split
    retain: Split
    val: Split
    num_classes: int

    def private_copy(self) -> "UnlearnData":
        """A copy that shares no memory with this one, so that no method can poison another's data."""
        copy_split = lambda s: Split(s.x.clone(), s.y.clone(), s.index.copy())  # noqa: E731
        return UnlearnData(copy_split(self.forget), copy_split(self.retain), copy_split(self.val), self.num_classes)

    def same_as(self, other: "UnlearnData") -> bool:
        """True when every image, label and index equals `other`'s."""
        pairs = [(getattr(self, n), getattr(other, n)) for n in ("forget", "retain", "val")]
        return self.num_classes == other.num_classes and all(
            a.x.shape == b.x.shape and a.y.shape == b.y.shape and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
            and np.array_equal(a.index, b.index) for a, b in pairs)


@dataclass
class RunContext:
    """What a method is handed beside model, data and config (one per run)."""

    policy: DevicePolicy  # device and how to compute on it (bf16, memory format, threads, compile)
    seed: int  # the run's derived seed (torch and numpy are seeded with it before the call)
    generator: torch.Generator  # seeded per run; use it for every random draw (CPU generator)
    recipe: Recipe  # the suite's training recipe (for retrain-like methods)
    batcher: Batcher  # uint8 split -> normalised float batches, with batched augmentation
    new_model: Callable[[], nn.Module]  # a freshly initialised model of the suite's architecture
    progress: Callable[[int, int], None] = field(default=lambda done, total: None)

    @property
    def device(self) -> torch.device:
        return self.policy.torch_device

    def batches(self, split: Split, batch_size: int, shuffle: bool = True, augment: bool | None = None):
        """Batches of `split`; augmentation follows the suite's recipe unless `augment` says."""
        augment = self.recipe.augment if augment is None else augment
        return self.batcher.batches(split, batch_size, shuffle, augment, self.generator)

    def train_from_scratch(self, split: Split) -> nn.Module:
        """A fresh model trained on `split` with the suite's recipe (what `retrain` does)."""
        return train_from_scratch(self.new_model(), split, self.recipe, self)

    @staticmethod
    def frozen_copy(model: nn.Module) -> nn.Module:
        """An evaluation-mode copy with no gradients, e.g. a teacher."""
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher
