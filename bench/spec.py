"""Suite and run specs as frozen dataclasses, and the hashing and seeding they share.

A leaf: imports nothing of the project, so every module can use it. Loading a suite from
YAML, with its key, type and range checks, is `bench.suites`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

@dataclass(frozen=True)
class DatasetSpec:
    name: str
    train_size: int | None = None  # training pool drawn from the training images; None = all
    holdout_fraction: float = 0.3  # for datasets without a test part: share held out for val+test
    val_fraction: float = 0.5  # share of the held-out images used as validation (kit: 50/50)
    split_seed: int = 0
    mean: tuple[float, ...] | None = None  # per-channel normalisation of x/255; None = x/255
    std: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Recipe:
    """How the original model (and retrain) is trained."""

    epochs: int
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | constant
    augment: bool = False  # random crop (padding 4) + horizontal flip


@dataclass(frozen=True)
class ForgetSpec:
    protocol: str  # random | class | file
    fraction: float | None = None  # random: share of the training pool
    label: int | None = None  # class: the class to forget
    path: str | None = None  # file: .npy of indices into the dataset's training images
    seed: int = 0  # random: the draw is fixed by this seed, not by the run seed
    name: str | None = None  # default: random-10pct, class-0, file-<stem>

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        if self.protocol == "random":
            return f"random-{round(self.fraction * 100, 2):g}pct"
        if self.protocol == "class":
            return f"class-{self.label}"
        return f"file-{Path(self.path).stem}"


@dataclass(frozen=True)
class EvalSpec:
    batch_size: int = 1024
    retain_sample: int | None = None  # evaluate a fixed random sample of retain; None = all


@dataclass(frozen=True)
class AttackSettings:
    references: int = 8  # K reference models for lira/rmia (even); trained once per suite
    rmia_references: int = 2  # how many of them RMIA uses (1-4 in the paper)
    rmia_gamma: float = 1.0
    ulira_references: int = 4  # U-LiRA unlearns the first K_u references with each method
    lira_variant: str = "online_fixed"  # the variant whose numbers head the lira entry
    seed: int = 0  # subsampling inside the attacks


@dataclass(frozen=True)
class Suite:
    name: str
    dataset: DatasetSpec
    model: str
    recipe: Recipe
    forget_sets: tuple[ForgetSpec, ...]
    seeds: tuple[int, ...]
    methods: tuple[tuple[str, Any], ...]  # (method name, its config dataclass instance)
    attacks: tuple[str, ...] = ("simple",)
    eval: EvalSpec = field(default_factory=EvalSpec)
    attack_settings: AttackSettings = field(default_factory=AttackSettings)
    description: str = ""
    path: str = ""

    def method_config(self, name: str):
        return dict(self.methods)[name]

    @property
    def suite_hash(self) -> str:
        """Hash of everything that shapes the original model and its evaluation."""
        return stable_hash([self.dataset, self.model, self.recipe, self.eval])


def to_jsonable(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj


def stable_hash(obj) -> str:
    text = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def derive_seed(*parts) -> int:
    """A seed for one purpose of one run, so that no two random streams coincide by accident."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63)
