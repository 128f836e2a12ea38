"""Reference (shadow) models for the per-example attacks, trained once per suite and shared.

The runner describes them in a `ReferencePlan` (the examples they sample from, how many train
on each example, the recipe) and this module trains, caches and loads them; attacks only ever
see the resulting `References` arrays. K models of the suite's architecture and recipe train
on subsets of the reference pool (the training pool, the test split, and unused training
images where the dataset has them) in Carlini et al.'s balanced design, generalised so that
each reference trains on about as many examples as the target model did: every example is
IN for exactly `n_in` of the K references, n_in = round(K * |pool| / |reference pool|).
Their outputs on the pool and on the validation split (the population data, OUT for every
reference) are cached by a hash of everything that shapes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench.cost import measure
from bench.data import Split
from bench.evaluate import per_example_outputs
from bench.files import npz_writer, read_checked, read_npz, write_checked
from bench.spec import Recipe, derive_seed, stable_hash
from bench.train import train_from_scratch



@dataclass(frozen=True)
class ReferencePlan:
    """Everything that shapes the reference models, decided by the runner."""

    pool: Split  # the examples the references sample their training sets from
    keys: np.ndarray  # one example key per pool example
    population: Split  # the validation split: OUT for every reference (RMIA's population)
    k: int
    n_in: int  # how many references train on each example
    target_size: int  # the target model's training-set size, which the references match
    recipe: Recipe
    eval_batch: int
    folder: Path  # cache folder; its name hashes everything above, the code and the device policy
    seed: int  # the references' draws (who trains on what, initialisations): fixed by the pool, K and
    #            n_in, not by the code, so a change of code or policy retrains them but does not redraw them


@dataclass(frozen=True)
class References:
    """Outputs of K reference models. Arrays are (K, examples); `keys` identify examples."""

    keys: np.ndarray  # example keys of the pool
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


def reference_count(k: int, target_size: int, pool_size: int) -> int:
    """n_in: references per example so that each trains on ~target_size of pool_size examples."""
    return int(min(max(round(k * target_size / pool_size), 1), k - 1))


def balanced_keep(k: int, n: int, seed: int, n_in: int | None = None) -> np.ndarray:
    """(k, n) booleans with exactly n_in True per column (Carlini et al.: n_in = k / 2)."""
    n_in = k // 2 if n_in is None else n_in
    if k < 2 or not 1 <= n_in < k:
        raise ValueError("need at least 2 reference models and 1 <= n_in < k")
    return np.random.default_rng(seed).uniform(size=(k, n)).argsort(0) < n_in


def plan_folder(cache_dir: Path, shaping: list, keys: np.ndarray, k: int, n_in: int) -> tuple[Path, int]:
    """(cache folder, draw seed) of a plan: the folder hashes what shapes the models, the exact pool, K
    and n_in; the seed only the pool, K and n_in (`ReferencePlan.seed`)."""
    keys_sha = hashlib.sha256(np.ascontiguousarray(keys, np.int64).tobytes()).hexdigest()
    return cache_dir / "references" / stable_hash([*shaping, keys_sha, k, n_in]), derive_seed("references", keys_sha,
                                                                                             k, n_in)


def _keep(plan: ReferencePlan) -> np.ndarray:
    return balanced_keep(plan.k, len(plan.keys), seed=derive_seed(plan.seed, "keep"), n_in=plan.n_in)


def train_reference(plan: ReferencePlan, i: int, make_context: Callable, announce: Callable[[str], None]):
    """Train reference model i on its part of the pool; save its weights and outputs."""
    keep = _keep(plan)
    announce(f"reference model {i + 1}/{plan.k} (training)")
    ctx = make_context(derive_seed(plan.seed, i), f"reference model {i + 1}/{plan.k}")
    model = ctx.new_model()
    with measure(ctx.device) as cost:
        train_from_scratch(model, plan.pool.subset(np.flatnonzero(keep[i])), plan.recipe, ctx)
    out = per_example_outputs(model, plan.pool, ctx.batcher, plan.eval_batch)
    pop = per_example_outputs(model, plan.population, ctx.batcher, plan.eval_batch)
    key = f"{plan.folder.name}/{i}"
    write_checked(plan.folder / f"ref{i}.pt", lambda tmp: torch.save(model.state_dict(), tmp), key)
    write_checked(plan.folder / f"ref{i}.npz", npz_writer(dict(
        conf=out["conf"], conf_mirror=out["conf_mirror"], loss=out["loss"], population_loss=pop["loss"],
        wall_s=cost["wall_s"])), key)
    return model, cost["wall_s"]


def reference_model(plan: ReferencePlan, i: int, make_context: Callable, announce: Callable[[str], None]):
    """Reference model i, loaded from the cache (trained again if missing or corrupt)."""
    ctx = make_context(0, "")
    state = read_checked(plan.folder / f"ref{i}.pt",
                         lambda p: torch.load(p, map_location=ctx.device, weights_only=True), f"{plan.folder.name}/{i}")
    if state is None:
        return train_reference(plan, i, make_context, announce)[0]
    model = ctx.new_model()
    model.load_state_dict(state)
    return model


def build_references(plan: ReferencePlan, make_context: Callable, announce: Callable[[str], None]) -> References:
    """Train (or load) the plan's K reference models and collect their outputs."""
    parts, train_s, cached_s = [], 0.0, 0.0
    for i in range(plan.k):
        part = read_checked(plan.folder / f"ref{i}.npz", read_npz, f"{plan.folder.name}/{i}")
        if part is None:
            train_s += train_reference(plan, i, make_context, announce)[1]
            part = read_npz(plan.folder / f"ref{i}.npz")
        parts.append(part)
        cached_s += float(part["wall_s"])
    stack = lambda name: np.stack([p[name] for p in parts])  # noqa: E731
    return References(plan.keys, _keep(plan), stack("conf"), stack("conf_mirror"), stack("loss"),
                      stack("population_loss"), train_s, cached_s)
