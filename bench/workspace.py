"""What every run of a suite shares: data on the device, splits, forget sets, caches, one device policy.

A `Workspace` is built once per process (the driver's, or a worker's) from the suite and the
folders. It owns the decisions that shape results and keys them: the device policy
(`bench.policy`) is part of the original model's cache key, the reference models' folder and
(through `bench.plan`) every record key. It hands out what methods, the scorer and the job
handlers need through public methods; nothing outside reads its private state. The test split
can be wrapped at construction (`guard_test`): tuning makes it raise on any use, the method
contract makes it a canary; nobody swaps it afterwards.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.error import URLError

import numpy as np
import torch

from bench.api import RunContext, UnlearnData
from bench.attacks import attack_registry
from bench.data import Batcher, LoadOptions, Split, load_dataset, make_splits
from bench.environment import environment, pick_device, seed_everything
from bench.errors import UserError
from bench.execute import metered
from bench.files import read_checked, read_meta, write_checked
from bench.forget import ForgetSet, materialize
from bench.models import ModelFactory
from bench.policy import DevicePolicy
from bench.progress import Progress
from bench.provenance import EVALUATION, TRAINING, code_hash
from bench.references import ReferencePlan, References, build_references, plan_folder, reference_count
from bench.spec import ForgetSpec, Suite, derive_seed, stable_hash
from bench.train import train_from_scratch


@dataclass
class Folders:
    """Where a workspace reads and writes, and how it reports progress."""

    results_dir: Path = Path("results")  # forget-set index files live under <results>/<suite>/forget_sets
    cache_dir: Path = Path.home() / ".cache" / "unlearn-bench"  # decoded datasets, trained models
    data_root: Path | None = None
    download: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # CPU threads (default: the suite's resources.cpus)
    progress: Progress = field(default_factory=Progress)


class Workspace:
    """Data, splits, forget sets, original and reference models of one suite, on one device policy.

    Raises UserError when the suite does not fit the dataset (e.g. mean/std per channel)."""

    def __init__(self, suite: Suite, folders: Folders, guard_test: Callable[[Split], Split] | None = None):
        self.suite, self.folders, self.progress = suite, folders, folders.progress
        threads = folders.threads or max(1, int(suite.resources.cpus))
        self.policy = DevicePolicy.decide(pick_device(folders.device), threads, suite.recipe.compile, suite.model)
        self.policy.apply()
        device = self.policy.torch_device
        try:
            self.raw = load_dataset(suite.dataset.name, LoadOptions(folders.data_root, folders.download, folders.cache_dir))
        except URLError as e:  # --download without a network: torchvision's error
            raise UserError(f"--download could not fetch '{suite.dataset.name}' ({e.reason}); connect to the network, "
                            f"or put its files under --data-root yourself.") from None
        self.splits = make_splits(self.raw, suite.dataset)
        self.num_classes = len(self.raw.classes)
        in_channels, image_size = self.raw.train_x.shape[1], self.raw.train_x.shape[2]
        if suite.dataset.mean is not None and len(suite.dataset.mean) != in_channels:
            raise UserError(f"{suite.path}: dataset.mean/std: {len(suite.dataset.mean)} values, but "
                            f"'{suite.dataset.name}' has {in_channels}-channel images; give one per channel.")
        # a plain factory, not a closure over the workspace: nothing a method is handed reaches the test split
        self.new_model = ModelFactory(suite.model, in_channels, image_size, self.num_classes, self.policy)
        self.batcher = Batcher(suite.dataset.mean, suite.dataset.std, in_channels, self.policy)
        self.train_part = Split(torch.as_tensor(self.raw.train_x, device=device),
                                torch.as_tensor(self.raw.train_y, device=device), np.arange(len(self.raw.train_y)))
        if self.splits.holdout_from_train:
            held = self.train_part
        else:
            held = Split(torch.as_tensor(self.raw.test_x, device=device),
                         torch.as_tensor(self.raw.test_y, device=device), np.arange(len(self.raw.test_y)))
        self.val, self.test = held.subset(self.splits.val), held.subset(self.splits.test)
        if guard_test is not None:
            self.test = guard_test(self.test)
        self.env = environment(device, self.raw.source)
        self._references: References | None = None
        self._plan: ReferencePlan | None = None
        self._originals: dict[int, tuple] = {}
        self._forget_sets: dict[ForgetSpec, ForgetSet] = {}
        self._data: dict[str, UnlearnData] = {}

    # --- forget sets and the data a method gets -------------------------------------------------

    def forget_set(self, spec: ForgetSpec) -> ForgetSet:
        """The forget set `spec` describes, its index file written (or checked) once per process."""
        if spec not in self._forget_sets:
            self._forget_sets[spec] = materialize(spec, self.splits.train, self.raw.train_y, self.num_classes,
                                                  Path(self.suite.path).parent, self.folders.results_dir,
                                                  self.suite.name)
        return self._forget_sets[spec]

    def unlearn_data(self, fs: ForgetSet) -> UnlearnData:
        """Forget, retain (= the pool without the forget set) and val splits, kept per forget set."""
        if fs.name not in self._data:
            retain = np.setdiff1d(self.splits.train, fs.indices)
            # The original model trains on the whole pool: it must be exactly retain ∪ forget.
            assert np.array_equal(np.union1d(retain, fs.indices), self.splits.train)
            self._data[fs.name] = UnlearnData(self.train_part.subset(fs.indices), self.train_part.subset(retain),
                                              self.val, self.num_classes)
        return self._data[fs.name]

    def eval_splits(self, data: UnlearnData, test: bool = True) -> dict[str, Split]:
        """The splits a run is evaluated on: forget, retain (a fixed sample if eval.retain_sample), val, test."""
        retain, n = data.retain, self.suite.eval.retain_sample
        if n is not None and n < len(retain):
            rng = np.random.default_rng(self.suite.dataset.split_seed)
            retain = retain.subset(np.sort(rng.choice(len(retain), n, replace=False)))
        return {"forget": data.forget, "retain": retain, "val": data.val, **({"test": self.test} if test else {})}

    def example_keys(self, part: str, index: np.ndarray) -> np.ndarray:
        """One int64 key per example across the dataset's parts: training images keep their index,
        held-out images of a separate test part come after all training images."""
        if part == "train" or self.splits.holdout_from_train:
            return np.asarray(index, np.int64)
        return len(self.raw.train_y) + np.asarray(index, np.int64)

    def context(self, seed: int, label: str) -> RunContext:
        """A seeded RunContext (torch, numpy and the context's generator) for one method call."""
        generator = seed_everything(seed)
        # a batcher of its own: a method that edits its normalisation constants changes only its own batches
        batcher = Batcher(self.suite.dataset.mean, self.suite.dataset.std, self.raw.train_x.shape[1], self.policy)
        return RunContext(self.policy, seed, generator, self.suite.recipe, batcher, self.new_model,
                          self.progress.epoch_callback(label))

    # --- the original models ----------------------------------------------------------------------

    def original_key(self, seed: int) -> str:
        s = self.suite
        pool_sha = hashlib.sha256(self.splits.train.tobytes()).hexdigest()
        return stable_hash([s.dataset, self.raw.source, s.model, s.recipe, seed, pool_sha, code_hash(*TRAINING),
                            self.policy.key()])

    def original_path(self, seed: int) -> Path:
        return self.folders.cache_dir / "models" / f"original-{self.original_key(seed)}.pt"

    def original(self, seed: int) -> tuple[torch.nn.Module, dict]:
        """(model, cache metadata incl. its training cost) of `seed`: trained on the whole pool once,
        cached on disk by content hash and in memory for the runs that share it."""
        if seed not in self._originals:
            self.progress.run_started(f"seed {seed} original model (training or cache)")
            self._originals[seed] = self._load_or_train_original(seed)
        return self._originals[seed]

    def _load_or_train_original(self, seed: int) -> tuple[torch.nn.Module, dict]:
        key, path = self.original_key(seed), self.original_path(seed)
        model = self.new_model()
        state = read_checked(path, lambda p: torch.load(p, map_location=self.policy.torch_device, weights_only=True),
                             key)
        if state is not None:
            model.load_state_dict(state)
            return model, read_meta(path)
        ctx = self.context(derive_seed(seed, "original"), f"seed {seed} original (training)")
        model = ctx.new_model()  # built after seeding, so its initialisation is fixed by the seed
        pool = self.train_part.subset(self.splits.train)
        with metered(model, pool, ctx) as cost:
            train_from_scratch(model, pool, self.suite.recipe, ctx)
        write_checked(path, lambda tmp: torch.save(model.state_dict(), tmp), key, cost=cost)
        return model, read_meta(path)

    # --- reference models (LiRA, RMIA, U-LiRA) ------------------------------------------------

    def needs(self, capability: str) -> bool:
        """Whether any of the suite's attacks declares `capability` (an `AttackInfo` flag)."""
        return any(getattr(attack_registry.get(a).info, capability) for a in self.suite.attacks)

    def reference_plan(self) -> ReferencePlan:
        """Reference pool: training pool + test + unused training images up to twice the pool,
        so that each reference trains on about as many examples as the target did."""
        if self._plan is None:
            self._plan = self._reference_plan()
        return self._plan

    def _reference_plan(self) -> ReferencePlan:
        pool, k = self.splits.train, self.suite.attack_settings.references
        held = np.concatenate([self.splits.val, self.splits.test]) if self.splits.holdout_from_train else []
        unused = np.setdiff1d(np.arange(len(self.raw.train_y)), np.concatenate([pool, held]).astype(np.int64))
        need = max(0, len(pool) - len(self.test))
        rng = np.random.default_rng(derive_seed(self.suite.dataset.split_seed, "reference-extra"))
        extra = np.sort(rng.choice(unused, min(need, len(unused)), replace=False))
        split = Split.concat(self.train_part.subset(pool), self.test, self.train_part.subset(extra))
        keys = np.concatenate([self.example_keys("train", pool), self.example_keys("test", self.test.index),
                               self.example_keys("train", extra)])
        n_in = reference_count(k, len(pool), len(keys))
        s = self.suite
        if "rmia" in s.attacks and s.attack_settings.rmia_references > k - n_in:  # RMIA averages OUT models only
            raise UserError(f"{s.name}: attack_settings.rmia_references: {s.attack_settings.rmia_references}; each "
                            f"example is OUT for {k - n_in} of the {k} reference models here (each trains on about "
                            f"as many images as the target, so IN for {n_in}): use 1..{k - n_in}.")
        code = code_hash(*TRAINING, *EVALUATION, "bench.references")
        folder, seed = plan_folder(self.folders.cache_dir, [s.dataset, self.raw.source, s.model, s.recipe, s.eval, code,
                                                      self.policy.key()], keys, k, n_in)
        return ReferencePlan(split, keys, self.val, k, n_in, len(pool), s.recipe, s.eval.batch_size, folder, seed)

    def references(self) -> References | None:
        """The suite's reference models, trained on first use, if an attack needs them."""
        if self._references is None and self.needs("needs_references"):
            self._references = build_references(self.reference_plan(), self.context, self.progress.run_started)
        return self._references
