"""Reference (shadow) models for the per-example attacks, trained once and shared.

K models of the suite's architecture and recipe train on random halves of the reference pool
(the training pool plus the test split), in Carlini et al.'s balanced design: every example is
IN for exactly K/2 of them. Their per-example outputs on the pool and on the validation split
(the population data, OUT for every reference) are cached by a hash of everything that shapes
them, so every method and seed of a suite, and every rerun, shares one set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from bench.config import derive_seed, stable_hash
from bench.cost import measure
from bench.data import Split
from bench.evaluate import per_example_outputs
from bench.train import train_from_scratch

REFERENCES_VERSION = 1


@dataclass(frozen=True)
class References:
    """Outputs of K reference models. Arrays are (K, examples); `keys` identify examples."""

    keys: np.ndarray  # example keys of the pool (see SuiteRun.example_keys)
    keep: np.ndarray  # bool (K, pool): which references trained on which pool example
    conf: np.ndarray  # (K, pool) logit-scaled confidence, image
    conf_mirror: np.ndarray  # (K, pool) the same for the mirror image
    loss: np.ndarray  # (K, pool)
    population_loss: np.ndarray  # (K, val) losses on the population data (OUT for all)
    train_s: float  # wall-clock spent training them (0 when all came from the cache)
    cached_s: float  # wall-clock they cost when they were first trained

    @property
    def k(self) -> int:
        return len(self.keep)

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Positions in the pool of the given example keys."""
        order = np.argsort(self.keys)
        pos = order[np.searchsorted(self.keys, keys, sorter=order)]
        assert np.array_equal(self.keys[pos], keys), "example not in the reference pool"
        return pos


def balanced_keep(k: int, n: int, seed: int) -> np.ndarray:
    """(k, n) booleans with exactly k/2 True per column (Carlini et al.'s shadow design)."""
    if k < 2 or k % 2:
        raise ValueError("the number of reference models must be even and at least 2")
    return np.random.default_rng(seed).uniform(size=(k, n)).argsort(0) < k // 2


def reference_pool(run) -> tuple[Split, np.ndarray]:
    """The examples reference models sample their halves from: the training pool plus test."""
    pool = Split.concat(run.train_part.subset(run.splits.train), run.test)
    keys = np.concatenate([run.example_keys("train", run.splits.train), run.example_keys("test", run.test.index)])
    return pool, keys


def references_folder(run, k: int):
    _, keys = reference_pool(run)
    base = stable_hash([run.suite.dataset, run.raw.source, run.suite.model, run.suite.recipe, run.suite.eval,
                        keys.tobytes().hex()[:64], len(keys), k, REFERENCES_VERSION])
    return run.opts.cache_dir / "references" / base


def train_reference(run, k: int, i: int, keep: np.ndarray):
    """Train reference model i on its half of the pool; save its weights and outputs."""
    pool, _ = reference_pool(run)
    folder = references_folder(run, k)
    run.opts.progress.run_started(f"reference model {i + 1}/{k} (training)")
    ctx = run.context(derive_seed(folder.name, i), f"reference model {i + 1}/{k}")
    model = ctx.new_model()
    with measure(run.device) as cost:
        train_from_scratch(model, pool.subset(np.flatnonzero(keep[i])), run.suite.recipe, ctx)
    bs = run.suite.eval.batch_size
    out, pop = per_example_outputs(model, pool, run.batcher, bs), per_example_outputs(model, run.val, run.batcher, bs)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".ref{i}.tmp{os.getpid()}"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, folder / f"ref{i}.pt")
    np.savez(tmp.with_suffix(".npz"), conf=out["conf"], conf_mirror=out["conf_mirror"], loss=out["loss"],
             population_loss=pop["loss"], wall_s=cost["wall_s"])
    os.replace(tmp.with_suffix(".npz"), folder / f"ref{i}.npz")
    return model, cost["wall_s"]


def reference_model(run, refs: "References", i: int):
    """Reference model i, loaded from the cache (trained again if only its outputs were kept)."""
    path = references_folder(run, refs.k) / f"ref{i}.pt"
    if not path.is_file():
        return train_reference(run, refs.k, i, refs.keep)[0]
    model = run.new_model()
    model.load_state_dict(torch.load(path, map_location=run.device, weights_only=True))
    return model


def build_references(run, k: int) -> References:
    """Train (or load) the suite's K reference models and collect their outputs."""
    _, keys = reference_pool(run)
    keep = balanced_keep(k, len(keys), seed=run.suite.dataset.split_seed)
    folder = references_folder(run, k)
    parts, train_s, cached_s = [], 0.0, 0.0
    for i in range(k):
        path = folder / f"ref{i}.npz"
        if not path.is_file():
            train_s += train_reference(run, k, i, keep)[1]
        with np.load(path) as f:
            parts.append({name: f[name] for name in f.files})
            cached_s += float(f["wall_s"])
    stack = lambda name: np.stack([p[name] for p in parts])  # noqa: E731
    return References(keys, keep, stack("conf"), stack("conf_mirror"), stack("loss"),
                      stack("population_loss"), train_s, cached_s)
