"""Everything a suite's runs share, and one run: copy, seed, time the method alone, evaluate once.

Runs are forget set x seed x method, plus the reference row `original` (no unlearning); which
are pending and where they run is bench/jobs.py and bench/executors.py (a recorded run is
skipped: resume). A method that raises is recorded as `failed`
and the sweep goes on; one whose loss or weights become NaN/inf is recorded as `diverged`.
Every method gets its own copy of the data and of the original model; a method that changes
the original or its input data anyway is recorded as `failed` and the original is restored.
The runner also produces what the reference-model attacks need (bench/references.py,
bench/unlearned_references.py) and hands it to them as inputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import bench
from bench.api import RunContext, UnlearnData
from bench.attacks import AttackInput, attack_registry, run_attacks
from bench.data import Batcher, LoadOptions, Split, load_dataset, make_splits
from bench.environment import environment, fix_threads, pick_device, seed_everything
from bench.errors import Diverged, UserError
from bench.evaluate import accuracy_metrics, collapse_reason, evaluate, flatten_outputs, outputs_of
from bench.execute import call_method, metered
from bench.files import read_checked, read_meta, write_checked
from bench.forget import ForgetSet, materialize
from bench.methods_loader import method_protocols, method_registry
from bench.models import ModelFactory
from bench.progress import Progress
from bench.provenance import EVALUATION, TRAINING, code_hash, entry_code_hash, run_code
from bench.references import ReferencePlan, References, build_references, plan_folder, reference_count
from bench.spec import Suite, derive_seed, stable_hash, to_jsonable
from bench.store import SCHEMA_VERSION, record_path
from bench.train import train_from_scratch
from bench.unlearned_references import attacked_keys, unlearned_references

REFERENCE_METHODS = ("original", "retrain")
ADDED = "default (added with --methods; not in the suite)"  # config_source of such a method's records


@dataclass
class RunOptions:
    results_dir: Path = Path("results")
    cache_dir: Path = Path.home() / ".cache" / "unlearn-bench"
    data_root: Path | None = None
    download: bool = False
    device: str = "auto"
    methods: tuple[str, ...] | None = None  # None: all of the suite's methods
    seeds: tuple[int, ...] | None = None
    progress: Progress = field(default_factory=Progress)
    tuned: dict = field(default_factory=dict)  # (method, forget set) -> (config, "tuned (N trials)")
    threads: int | None = None  # CPU threads (default: the suite's resources.cpus)
    added: tuple[str, ...] = ()  # methods run with their defaults though the suite lacks them (`--methods`)


class SuiteRun:
    """Everything one suite's runs share: data on the device, splits, the batcher, the models."""

    def __init__(self, suite: Suite, opts: RunOptions):
        self.suite, self.opts = suite, opts
        self.device = pick_device(opts.device)
        fix_threads(opts.threads or max(1, int(suite.resources.cpus)))
        self.raw = load_dataset(suite.dataset.name, LoadOptions(opts.data_root, opts.download, opts.cache_dir))
        self.splits = make_splits(self.raw, suite.dataset)
        self.num_classes = len(self.raw.classes)
        in_channels, image_size = self.raw.train_x.shape[1], self.raw.train_x.shape[2]
        if suite.dataset.mean is not None and len(suite.dataset.mean) != in_channels:
            raise UserError(f"{suite.path}: dataset.mean/std: {len(suite.dataset.mean)} values, but "
                            f"'{suite.dataset.name}' has {in_channels}-channel images; give one per channel.")
        # a plain factory, not a closure over the runner: nothing a method is handed reaches the test split
        self.new_model = ModelFactory(suite.model, in_channels, image_size, self.num_classes, self.device)
        self.batcher = Batcher(suite.dataset.mean, suite.dataset.std, in_channels, self.device)
        train_x = torch.as_tensor(self.raw.train_x, device=self.device)
        train_y = torch.as_tensor(self.raw.train_y, device=self.device)
        self.train_part = Split(train_x, train_y, np.arange(len(train_y)))
        if self.splits.holdout_from_train:
            held = self.train_part
        else:
            held = Split(torch.as_tensor(self.raw.test_x, device=self.device),
                         torch.as_tensor(self.raw.test_y, device=self.device), np.arange(len(self.raw.test_y)))
        self.val, self.test = held.subset(self.splits.val), held.subset(self.splits.test)
        self.env = environment(self.device, self.raw.source)
        self._references: References | None = None
        self._plan: ReferencePlan | None = None
        self._originals: dict[int, tuple] = {}
        self._data: dict[str, UnlearnData] = {}

    def example_keys(self, part: str, index: np.ndarray) -> np.ndarray:
        """One key per example across the dataset's parts: training images keep their index,
        held-out images of a separate test part come after all training images."""
        if part == "train" or self.splits.holdout_from_train:
            return np.asarray(index, np.int64)
        return len(self.raw.train_y) + np.asarray(index, np.int64)

    def reference_plan(self) -> ReferencePlan:
        """Reference pool: training pool + test + unused training images up to twice the pool,
        so that each reference trains on about as many examples as the target did."""
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
        code = code_hash(*TRAINING, *EVALUATION, "bench.references")
        folder = plan_folder(self.opts.cache_dir, [s.dataset, self.raw.source, s.model, s.recipe, s.eval, code],
                             keys, k, n_in)
        return ReferencePlan(split, keys, self.val, k, n_in, len(pool), s.recipe, s.eval.batch_size, folder)

    def references(self) -> References | None:
        """The suite's reference models, trained on first use if an attack needs them."""
        if self._references is None and any(attack_registry.get(a).meta.get("needs_references")
                                            for a in self.suite.attacks):
            self._plan = self.reference_plan()
            self._references = build_references(self._plan, self.context, self.opts.progress.run_started)
        return self._references

    def forget_set(self, spec) -> ForgetSet:
        return materialize(spec, self.splits.train, self.raw.train_y, self.num_classes,
                           Path(self.suite.path).parent, self.opts.results_dir, self.suite.name)

    def unlearn_data(self, fs: ForgetSet) -> UnlearnData:
        retain = np.setdiff1d(self.splits.train, fs.indices)
        # The original model trains on the whole pool: it must be exactly retain ∪ forget.
        assert np.array_equal(np.union1d(retain, fs.indices), self.splits.train)
        assert len(np.intersect1d(retain, fs.indices)) == 0
        return UnlearnData(self.train_part.subset(fs.indices), self.train_part.subset(retain),
                           self.val, self.num_classes)

    def eval_splits(self, data: UnlearnData) -> dict[str, Split]:
        retain, n = data.retain, self.suite.eval.retain_sample
        if n is not None and n < len(retain):
            rng = np.random.default_rng(self.suite.dataset.split_seed)
            retain = retain.subset(np.sort(rng.choice(len(retain), n, replace=False)))
        return {"forget": data.forget, "retain": retain, "val": data.val, "test": self.test}

    def context(self, seed: int, label: str) -> RunContext:
        generator = seed_everything(seed)
        return RunContext(self.device, seed, generator, self.suite.recipe, self.batcher, self.new_model,
                          self.opts.progress.epoch_callback(label))

    def original_key(self, seed: int) -> str:
        s = self.suite
        pool_sha = hashlib.sha256(self.splits.train.tobytes()).hexdigest()
        return stable_hash([s.dataset, self.raw.source, s.model, s.recipe, seed, pool_sha, code_hash(*TRAINING)])

    def original_path(self, seed: int, key: str | None = None) -> Path:
        return self.opts.cache_dir / "models" / f"original-{key or self.original_key(seed)}.pt"

    def original(self, seed: int) -> tuple[torch.nn.Module, dict]:
        """The original model of `seed`, trained on the whole pool once and cached by content hash."""
        s, key = self.suite, self.original_key(seed)
        path = self.original_path(seed, key)
        model = self.new_model()
        state = read_checked(path, lambda p: torch.load(p, map_location=self.device, weights_only=True), key)
        if state is not None:
            model.load_state_dict(state)
            return model, read_meta(path)
        ctx = self.context(derive_seed(seed, "original"), f"seed {seed} original (training)")
        model = ctx.new_model()  # built after seeding, so its initialisation is fixed by the seed
        pool = self.train_part.subset(self.splits.train)
        with metered(model, pool, ctx) as cost:
            train_from_scratch(model, pool, s.recipe, ctx)
        write_checked(path, lambda tmp: torch.save(model.state_dict(), tmp), key, cost=cost)
        return model, read_meta(path)

    def planned_methods(self) -> list[str]:
        names = [n for n, _ in self.suite.methods]
        if self.opts.methods is not None:
            names = [n for n in names if n in self.opts.methods]
        return list(dict.fromkeys(["original", "retrain", *names]))

    def record_base(self, fs: ForgetSet, method: str, config, seed: int) -> tuple[Path, dict]:
        """A run's record path and identity. The key holds everything that shapes the model and its
        outputs (suite, forget set, method, config, code), not the attacks: those are rescored."""
        config_json = to_jsonable(config) if config is not None else {}
        code = run_code(method)
        config_hash = stable_hash([self.suite.suite_hash, fs.summary(), method, config_json, code])
        path = record_path(self.opts.results_dir, self.suite.name, fs.name, method, config_hash, seed)
        return path, {
            "schema_version": SCHEMA_VERSION, "bench_version": bench.__version__,
            "suite": self.suite.name, "suite_hash": self.suite.suite_hash, "model": self.suite.model,
            "method": method, "method_config": config_json, "config_hash": config_hash, "seed": seed,
            "forget_set": fs.summary(), "method_protocols": list(method_protocols(method)), "code": code,
            "attack_settings": to_jsonable(self.suite.attack_settings),
            "config_source": self.opts.tuned[(method, fs.name)][1] if (method, fs.name) in self.opts.tuned
            else ADDED if method in self.opts.added else "suite" if method in dict(self.suite.methods) else "default",
        }

    def original_of(self, seed: int):
        """The original model of `seed`, kept in memory for the runs that share it."""
        if seed not in self._originals:
            self.opts.progress.run_started(f"seed {seed} original model (training or cache)")
            self._originals[seed] = self.original(seed)
        return self._originals[seed]

    def data_of(self, fs: ForgetSet) -> UnlearnData:
        if fs.name not in self._data:
            self._data[fs.name] = self.unlearn_data(fs)
        return self._data[fs.name]

    def run_one(self, r) -> tuple[dict, dict | None]:
        """One run (`bench.jobs.PendingRun`): unlearn (or take the original), evaluate once, score;
        its record and outputs."""
        original, meta = self.original_of(r.seed)
        data = self.data_of(r.fs)
        label = f"{r.fs.name} seed {r.seed} {r.method}"
        self.opts.progress.run_started(label)
        if r.method == "original":
            model, cost, status, error = original, dict(meta["cost"]), "ok", None
        else:
            model, cost, status, error = self.run_method(r.method, original, data, r.config, r.seed, r.fs, label)
        record = {**r.base, "status": status, "error": error, "cost": cost, "env": self.env, "metrics": None}
        outputs = None
        if status == "ok":
            try:
                record["metrics"], outputs = self.score(model, data, r.fs, r.method, r.config, r.seed)
                if r.method != "original" and (reason := collapse_reason(outputs_of(outputs, "retain"),
                                                                         self.num_classes)):
                    status, error = "collapsed", reason
            except Diverged as e:
                status, error = "diverged", str(e)
            except Exception as e:  # noqa: BLE001 - a run that cannot be scored is recorded, the sweep goes on
                status, error = "failed", f"scoring failed: {type(e).__name__}: {e}"
            record.update(status=status, error=error)
        return record, (outputs if status in ("ok", "collapsed") else None)

    def score(self, model, data: UnlearnData, fs: ForgetSet, method: str, config, seed: int) -> tuple[dict, dict]:
        """Evaluate once, then accuracies and every attack from the outputs; flat arrays to save."""
        outputs = evaluate(model, self.eval_splits(data), self.batcher, self.suite.eval.batch_size)
        for split, out in outputs.items():
            if not (np.isfinite(out["loss"]).all() and np.isfinite(out["conf"]).all()):
                raise Diverged(f"outputs on the {split} split are not finite")
            out["key"] = self.example_keys("train" if split in ("forget", "retain") else "test", out["index"])
        metrics = accuracy_metrics(outputs, fs.label)
        metrics["mia"], scores = self.attack(outputs, fs, method, config, seed, self.suite.attacks)
        return metrics, {**flatten_outputs(outputs), **scores}

    def attack(self, outputs: dict, fs: ForgetSet, method: str, config, seed: int, names) -> tuple[dict, dict]:
        """The named attacks on one run's outputs: ({attack: metrics incl. its code hash}, score arrays)."""
        attack_input = AttackInput(outputs, self.suite.attack_settings, seed, fs.label, self.references())
        if any(attack_registry.get(a).meta.get("needs_unlearned_references") for a in names):
            attack_input = dataclasses.replace(attack_input, unlearned=self.unlearned(attack_input, method, config, fs))
        results = run_attacks(names, attack_input)
        mia, scores = {}, {}
        for name, r in results.items():
            mia[name] = {**r.metrics, "code": entry_code_hash(attack_registry.get(name))}
            if r.member_scores is not None:
                scores[f"attack_{name}_member"] = r.member_scores
                scores[f"attack_{name}_nonmember"] = r.nonmember_scores
        return mia, scores

    def unlearned(self, a: AttackInput, method: str, config, fs: ForgetSet):
        """U-LiRA's references unlearned with `method` (cached per method, config and forget set)."""
        keys = attacked_keys(a.members()["key"], a.nonmembers()["key"], fs.sha256)
        entry = None if method == "original" else method_registry().get(method)
        code = entry_code_hash(entry) if entry else None
        return unlearned_references(self.references(), self._plan, method, entry and entry.fn, config, code,
                                    keys, len(fs.indices),
                                    fs.label if fs.protocol == "class" else None, fs.sha256,
                                    self.suite.attack_settings.ulira_references, self.context,
                                    self.opts.progress.run_started, self.num_classes)

    def _config(self, method: str, forget_set: str | None = None):
        """The config a method runs with: tuned for this forget set (`run --tuned`), else the suite's."""
        if (method, forget_set) in self.opts.tuned:
            return self.opts.tuned[(method, forget_set)][0]
        entry = method_registry().get(method)  # retrain may be absent from the suite: its defaults then
        return dict(self.suite.methods).get(method, entry.config() if entry.config else None)

    def run_method(self, method: str, original, data: UnlearnData, config, seed, fs, label):
        """Run one method on private copies of the original and the data; time the call alone.

        The original and the runner's data must come back unchanged (a method could reach them
        only by cheating); if they do not, the run fails and the original is restored."""
        before = {k: v.clone() for k, v in original.state_dict().items()}
        private = data.private_copy()
        ctx = self.context(derive_seed(seed, fs.name, method), label)
        model, cost, status, error = call_method(method_registry().get(method).fn, original, private, config, ctx)
        want = {k: tuple(v.shape) for k, v in original.state_dict().items()}
        if status == "ok" and {k: tuple(v.shape) for k, v in model.state_dict().items()} != want:
            status, error = "failed", "returned a model of another architecture than the original"
        if not data.same_as(private):
            status, error = "failed", "the method changed its input data (data is read-only)"
        if any(not torch.equal(before[k], v) for k, v in original.state_dict().items()):
            original.load_state_dict(before)
            status, error = "failed", "the method changed the original model (it gets a private copy)"
        return model, cost, status, error
