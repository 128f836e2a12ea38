"""Suite and run specs as frozen dataclasses, and the hashing and seeding they share.

A leaf: imports nothing of the project, so every module can use it. Loading a suite from
YAML, with its key, type and range checks, is `bench.suites`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Range:
    """The values a setting accepts: bounds (open or closed) or a list of choices. For a tuple
    setting, every element. Checked when a suite or `--set` is read (bench/suites.py)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None

    def accepts(self, value) -> bool:
        if isinstance(value, tuple):
            return all(self.accepts(v) for v in value)
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        hi = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        return " and ".join(p for p in (lo, hi) if p) or "any finite value"


@dataclass(frozen=True)
class Search:
    """A hyperparameter's search space for tuning: log-uniform or uniform floats, integers, or choices."""

    kind: str  # log | float | int | choice
    low: float | None = None
    high: float | None = None
    choices: tuple = ()

    def __post_init__(self):
        """Refuse a space Optuna cannot sample (ValueError): a log range must have 0 < low, every
        range low <= high, and choices are None, bools, numbers or strings (Optuna's categoricals)."""
        if self.kind == "choice":
            if not self.choices or not all(c is None or type(c) in (bool, int, float, str) for c in self.choices):
                raise ValueError(f"choice{self.choices}: give one or more choices, each None, a bool, a number or "
                                 "a string")
        elif not (self.low <= self.high and (self.kind != "log" or self.low > 0)):
            raise ValueError(f"{self.kind}_range({self.low}, {self.high}): needs {'0 < ' if self.kind == 'log' else ''}"
                             "low <= high")

    def contains(self, value) -> bool:
        if self.kind == "choice":
            return value in self.choices
        return self.low <= value <= self.high

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(map(str, self.choices))
        return f"{'log-uniform ' if self.kind == 'log' else ''}{self.low:g} to {self.high:g}"

    def suggest(self, trial, name: str):
        """The value an Optuna trial draws for `name` (any object with Optuna's suggest_* methods)."""
        if self.kind == "choice":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high))
        return trial.suggest_float(name, self.low, self.high, log=self.kind == "log")


def log_range(low: float, high: float) -> Search:
    return Search("log", low, high)


def float_range(low: float, high: float) -> Search:
    return Search("float", low, high)


def int_range(low: int, high: int) -> Search:
    return Search("int", low, high)


def choice(*values) -> Search:
    return Search("choice", choices=tuple(values))


def search_space(config_cls) -> dict[str, Search]:
    """{field: Search} for the fields of a method config that are tuned (empty: nothing to tune)."""
    if config_cls is None:
        return {}
    return {f.name: f.metadata["search"] for f in dataclasses.fields(config_cls) if f.metadata.get("search")}


def param(default=dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None, choices=None, search=None):
    """A dataclass field with its accepted range declared beside its default, e.g.
    `lr: float = param(0.01, gt=0, search=log_range(1e-3, 0.3))`. `search` is the field's space
    for `unlearn-bench tune`; a field without one is not tuned."""
    rng = Range(low=gt if gt is not None else ge, high=lt if lt is not None else le, low_open=gt is not None,
                high_open=lt is not None, choices=tuple(choices) if choices is not None else None)
    return field(default=default, metadata={"range": rng, "search": search})


def field_range(f: dataclasses.Field) -> Range | None:
    return f.metadata.get("range")


def field_defaults(cls) -> dict:
    """{field: default} of a config class's init fields that have one (required fields left out)."""
    out = {}
    for f in dataclasses.fields(cls) if cls is not None else ():
        if f.init and f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.init and f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    train_size: int | None = param(None, ge=1)  # training pool drawn from the training images; None = all
    holdout_fraction: float = param(0.3, gt=0, lt=1)  # datasets without a test part: share held out for val+test
    val_fraction: float = param(0.5, gt=0, lt=1)  # share of the held-out images used as validation (kit: 50/50)
    split_seed: int = param(0, ge=0)
    mean: tuple[float, ...] | None = param(None, ge=0, le=1)  # per-channel normalisation of x/255; None = x/255
    std: tuple[float, ...] | None = param(None, gt=0)


@dataclass(frozen=True)
class Recipe:
    """How the original model (and retrain) is trained."""

    epochs: int = param(ge=1)
    batch_size: int = param(128, ge=1)
    optimizer: str = param("sgd", choices=("sgd", "adam"))
    lr: float = param(0.1, gt=0)
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(5e-4, ge=0)
    schedule: str = param("cosine", choices=("cosine", "constant"))
    augment: bool = False  # random crop (padding 4) + horizontal flip
    compile: bool = False  # train through torch.compile (opt-in: a GPU speed-up, a warm-up cost on CPU)


@dataclass(frozen=True)
class ForgetSpec:
    protocol: str = param(choices=("random", "class", "file"))
    fraction: float | None = param(None, gt=0, lt=1)  # random: share of the training pool
    label: int | None = param(None, ge=0)  # class: the class to forget
    path: str | None = None  # file: .npy of indices into the dataset's training images
    seed: int = param(0, ge=0)  # random: the draw is fixed by this seed, not by the run seed
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
    batch_size: int = param(1024, ge=1)
    retain_sample: int | None = param(None, ge=1)  # evaluate a fixed random sample of retain; None = all


@dataclass(frozen=True)
class AttackSettings:
    references: int = param(8, ge=2)  # K reference models for lira/rmia (even); trained once per suite
    rmia_references: int = param(2, ge=1)  # how many of them RMIA uses (1-4 in the paper)
    rmia_gamma: float = param(1.0, gt=0)
    ulira_references: int = param(4, ge=1)  # U-LiRA unlearns the first K_u references with each method
    lira_variant: str = "online_fixed"  # the variant whose numbers head the lira entry
    seed: int = param(0, ge=0)  # RMIA's choice of a: the reference pair it is tuned on


@dataclass(frozen=True)
class ForgetQualitySpec:
    """The NeurIPS 2023 challenge's forget-quality protocol (`bench.forget_quality_runs`): per forget
    set and method, `models` unlearning runs from one original model (the first reporting seed's),
    each with its own unlearning seed, against as many retrains. 0: not run."""

    models: int = param(0, ge=0)  # N; at least 3 when run (the score's buckets need N > 2)


@dataclass(frozen=True)
class TuningSpec:
    """The equal tuning budget of every method, and where selection happens: seeds that are not
    reporting seeds, and forget sets drawn by the same protocols with other seeds / classes. A
    config's objective is its mean over the tuning seeds."""

    trials: int = param(30, ge=1)  # trials per method, the same for every method
    seeds: tuple[int, ...] = param((1000,), ge=0)  # tuning seeds: each its own original model and forget sets


@dataclass(frozen=True)
class Resources:
    """What one job of this suite asks an executor for (`run --executor ray`); `--job-cpus` and
    `--job-gpus` override it. Never part of a hash: it decides where a job runs, not its result."""

    cpus: float = param(1.0, gt=0)
    gpus: float = param(0.0, ge=0)  # a fraction shares one GPU between small jobs


@dataclass(frozen=True)
class Suite:
    name: str
    dataset: DatasetSpec
    model: str
    recipe: Recipe
    forget_sets: tuple[ForgetSpec, ...]
    seeds: tuple[int, ...]
    methods: tuple[tuple[str, Any], ...]  # (method name, its config from the suite file's values)
    attacks: tuple[str, ...] = ("simple",)
    eval: EvalSpec = field(default_factory=EvalSpec)
    attack_settings: AttackSettings = field(default_factory=AttackSettings)
    tuning: TuningSpec = field(default_factory=TuningSpec)
    forget_quality: ForgetQualitySpec = field(default_factory=ForgetQualitySpec)
    resources: Resources = field(default_factory=Resources)
    description: str = ""
    path: str = ""
    method_keys: dict = field(default_factory=dict)  # {method: the config fields the suite file gives}
    method_overrides: dict = field(default_factory=dict)  # {method: {field: value}} from `--set`, checked
    added: tuple[str, ...] = ()  # methods the suite file lacks, added by `--methods` with their defaults

    def method_config(self, name: str):
        """Method `name`'s config from the suite file's values (without `--set`, tuned values: `bench.plan`)."""
        return dict(self.methods)[name]

    def method_values(self, name: str) -> dict:
        """The values the suite file gives method `name` ({} for a method it does not list)."""
        config = dict(self.methods).get(name)
        return {k: getattr(config, k) for k in self.method_keys.get(name, ())} if config is not None else {}

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
