"""Forget quality by the NeurIPS 2023 Machine Unlearning Challenge's protocol: N unlearning runs
from one original model against N retrains, kept as one record set per forget set and method.

The challenge (google-deepmind/unlearning_evaluation; the Kaggle evaluation that ran it) trains
one original model, runs the submitted method on it N times with N seeds (N = 512 there), trains
N models from scratch on the retain set, and takes each model's logit-scaled confidence on every
forget example: two samples per example, scored by `bench.attacks.forget_quality` (its
metric.py). The sweep's records cannot give this: each seed there starts from an original of its
own, so the spread of the N unlearned models would hold the originals' spread too.

Here, where a suite sets `forget_quality.models` (N), each forget set and method (with the
config its records ran, so the same config hash) gets N calls of the method on the first
reporting seed's original model, the i-th seeded `derive_seed(seed, forget set, method,
"forget-quality", i)`; `retrain`'s N calls are the N retrains. `original` is one model N times:
its samples have no spread, so it scores 0, as doing nothing does in the challenge. Each model
is evaluated on the forget set (LiRA's statistic, `bench.evaluate`), the records' retain sample
and the test split. Every run counts: a call that fails or diverges leaves the user with the
original model, so its row holds the original's outputs (doing nothing), and the record counts
each outcome; a collapsed model keeps its own outputs (its retain accuracy scales its score).

A set is one record, `<results>/<suite>/<forget set>/forget-quality/<method>-<config hash>-n<N>-seed<seed>.json`
(`status` ok, `models` N, `outcomes` per model), with arrays beside it (.npz): `phi` float32
(N, forget examples) in nats, `retain_acc` and `test_acc` float64 (N,) as fractions.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.attacks.forget_quality import forget_quality, null_ceiling
from bench import store
from bench.files import read_npz
from bench.store import load_record

FOLDER = "forget-quality"
OUTCOMES = ("ok", "failed", "diverged", "collapsed")


@dataclass(frozen=True)
class ForgetQualitySpec:
    """One record set: `models` calls of `method` (with `config`) on seed `seed`'s original model."""

    forget_set: object  # bench.forget.ForgetSet
    method: str
    config: object | None
    seed: int  # the original model's seed: the suite's first reporting seed
    models: int  # N
    record: str  # the record's path inside the results folder
    identity: dict = field(compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"forget-quality/{self.identity['config_hash']}/n{self.models}/seed{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.forget_set.name} forget quality {self.method} ({self.models} runs from seed {self.seed})"

    def path(self, results_dir: Path) -> Path:
        return Path(results_dir) / self.record

    def unlearn_seed(self, i: int) -> int:
        from bench.spec import derive_seed

        return derive_seed(self.seed, self.forget_set.name, self.method, "forget-quality", i)


def record_path(results_dir: Path, suite: str, forget_set: str, method: str, config_hash: str, models: int,
                seed: int) -> Path:
    """Beside the sweep's records of the same forget set; ValueError as `bench.store.record_path`."""
    run = store.record_path(Path(results_dir), suite, forget_set, method, config_hash, seed)
    return run.parent / FOLDER / f"{method}-{config_hash[:8]}-n{models}-seed{seed}.json"


def specs(runs, seed: int, models: int) -> tuple[ForgetQualitySpec, ...]:
    """One set per forget set, method and config among the plan's runs (`bench.plan.RunSpec`)."""
    if not models:
        return ()
    out = {}
    for r in runs:
        key = (r.forget_set.name, r.identity["config_hash"])
        if key not in out:
            identity = {k: v for k, v in r.identity.items() if k not in ("seed", "config_source", "config_sources")}
            path = record_path(Path("."), r.identity["suite"], r.forget_set.name, r.method, r.identity["config_hash"],
                               models, seed)
            out[key] = ForgetQualitySpec(r.forget_set, r.method, r.config, seed, models, path.as_posix(),
                                         {**identity, "seed": seed, "models": models, "kind": "forget_quality"})
    return tuple(out.values())


# --- reading the sets of a leaderboard section ------------------------------------------------


_scored: dict = {}  # section scores by the sets' files (path, size, mtime): boards are built several times


def _set_files(records: list[dict]) -> tuple:
    folders = {Path(r["_file"]).parent / FOLDER for r in records if r.get("_file")}
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for folder in sorted(folders)
                 for p in sorted(folder.glob("*.*")))


def load_sets(records: list[dict]) -> dict[str, tuple[dict, dict]]:
    """{config hash: (record, arrays)} of the forget-quality sets beside a section's records (read
    from their `_file` folders); unreadable sets are left out."""
    folders = {Path(r["_file"]).parent / FOLDER for r in records if r.get("_file")}
    out = {}
    for folder in sorted(folders):
        for p in sorted(folder.glob("*.json")):
            try:
                record = json.loads(p.read_text())
                arrays = read_npz(p.with_suffix(".npz"))
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and record.get("kind") == "forget_quality":
                out[record["config_hash"]] = (record, arrays)
    return out


def section_scores(records: list[dict], retrain_hash: str | None) -> tuple[dict[str, dict], float | None]:
    """({config hash: forget-quality fields}, null ceiling) of a section's methods against the
    retrain set of `retrain_hash` (the config `bench.aggregate.retrain_by_seed` takes), with the
    same N and original seed. Fields: forget_quality, its standard error over forget examples, N,
    the original's seed, the outcomes; `retrain` itself gets none (it is the reference sample).
    The null ceiling: what a perfect unlearner scores at that N (None without a retrain set)."""
    key = (_set_files(records), retrain_hash)
    if key not in _scored:
        _scored[key] = _section_scores(load_sets(records), retrain_hash)
    return _scored[key]


def _section_scores(sets: dict, retrain_hash: str | None) -> tuple[dict[str, dict], float | None]:
    if retrain_hash not in sets:
        return {}, None
    ref, ref_arrays = sets[retrain_hash]
    out = {}
    for config_hash, (record, arrays) in sets.items():
        if config_hash == retrain_hash or (record["models"], record["seed"]) != (ref["models"], ref["seed"]):
            continue
        ra = (float(arrays["retain_acc"].mean()), float(ref_arrays["retain_acc"].mean()))
        ta = (float(arrays["test_acc"].mean()), float(ref_arrays["test_acc"].mean()))
        score = forget_quality(arrays["phi"], ref_arrays["phi"], ra, ta)
        out[config_hash] = {"forget_quality": score["forget_quality"], "forget_quality_se": score["standard_error"],
                            "forget_quality_models": record["models"], "forget_quality_seed": record["seed"],
                            "forget_quality_outcomes": dict(Counter(record["outcomes"]))}
    return out, null_ceiling(ref_arrays["phi"])


def compare_sets(published_dir: Path, rerun_dir: Path, suite: str) -> list[tuple[str, bool]]:
    """(set path, bit-equal) for each published set of `suite` against its rerun (absent: False)."""
    out = []
    for p in sorted((Path(published_dir) / suite).glob(f"*/{FOLDER}/*.json")):
        name = p.relative_to(published_dir).as_posix()
        q = Path(rerun_dir) / name
        try:
            a, b = read_npz(p.with_suffix(".npz")), read_npz(q.with_suffix(".npz"))
            same = (load_record(p)["outcomes"] == load_record(q)["outcomes"] and a.keys() == b.keys()
                    and all(np.array_equal(a[k], b[k]) for k in a))
        except (OSError, ValueError, KeyError):
            same = False
        out.append((name, same))
    return out
