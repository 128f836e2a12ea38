"""The contract every registered method keeps, checked on a tiny model and data.

Parametrised over the registry, so a new method is checked automatically. A method without
randomness must say so at registration (`deterministic=True`); none can opt out silently.
"""

import copy
import dataclasses
import time

import numpy as np
import pytest
import torch

from bench.api import UnlearnData
from bench.suites import load_suite
from bench.data import Batcher
from bench.methods_loader import method_registry
from bench.progress import Progress
from bench.runner import RunOptions, SuiteRun

METHODS = method_registry().names()
FAST = {"epochs": 1, "max_steps": 1, "batch_size": 32}  # several batches, a fraction of a second


class RecordingBatcher(Batcher):
    """A Batcher that remembers the dataset indices of every split a method batches."""

    seen: list

    def batches(self, split, *args, **kwargs):
        self.seen.append(split.index.copy())
        return super().batches(split, *args, **kwargs)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from conftest import TINY_SUITE

    root = tmp_path_factory.mktemp("conformance")
    (root / "tiny.yaml").write_text(TINY_SUITE)
    suite = load_suite(str(root / "tiny.yaml"))
    run = SuiteRun(suite, RunOptions(results_dir=root / "results", cache_dir=root / "cache",
                                     progress=Progress(enabled=False)))
    run.batcher.__class__ = RecordingBatcher
    run.batcher.seen = []
    original, _ = run.original(0)
    data = run.unlearn_data(run.forget_set(suite.forget_sets[0]))
    return run, original, data


def fast_config(entry):
    if entry.config is None:
        return None
    defaults = entry.config()
    return dataclasses.replace(defaults, **{k: v for k, v in FAST.items() if hasattr(defaults, k)})


def call(run, entry, original, data, seed):
    return entry.fn(copy.deepcopy(original), data, fast_config(entry), run.context(seed, entry.name))


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", METHODS)
def test_method_contract(setup, name):
    run, original, data = setup
    entry = method_registry().get(name)
    before = state(original)
    run.batcher.seen = []

    started = time.perf_counter()
    first = call(run, entry, original, data, seed=1)
    took = time.perf_counter() - started

    # same architecture, finite weights
    assert type(first) is type(original)
    got = state(first)
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in before.items()}
    assert all(torch.isfinite(v).all() for v in got.values() if v.is_floating_point())
    # the original model is untouched
    assert all(torch.equal(before[k], v) for k, v in state(original).items())
    # never the test split: every batched example is from forget, retain or val
    test_index = set(run.test.index.tolist())
    allowed = set(data.forget.index) | set(data.retain.index) | set(data.val.index)
    seen = set(np.concatenate(run.batcher.seen).tolist()) if run.batcher.seen else set()
    assert not seen & test_index and seen <= allowed
    assert "test" not in {f.name for f in dataclasses.fields(UnlearnData)}
    # the method changed something (except when it had nothing to change)
    assert any(not torch.equal(before[k], got[k]) for k in got), f"{name} returned the original unchanged"
    # same seed, identical result; a different seed, a different result unless declared deterministic
    again = state(call(run, entry, original, data, seed=1))
    assert all(torch.equal(got[k], again[k]) for k in got)
    other = state(call(run, entry, original, data, seed=2))
    differs = any(not torch.equal(got[k], other[k]) for k in got)
    assert differs != bool(entry.meta.get("deterministic")), (
        f"{name}: seeds 1 and 2 {'differ' if differs else 'agree'}; declare deterministic=True "
        "at registration only if the method uses no randomness")
    # a few seconds on a CPU at most (a guard against runaway loops; speed is measured in bench/)
    assert took < 30


def test_there_are_at_least_thirteen_methods():
    assert len(METHODS) >= 13
