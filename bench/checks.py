"""The method contract as named, public checks (in the spirit of scikit-learn's check_estimator).

    from bench.checks import check_method
    check_method("my_method")            # raises ContractError naming the first broken check
    check_method("my_method", config)    # with a config of your own for the behaviour check

`contract(name)` returns {check name: None if it holds, else what broke}. The conformance test
runs every check on every registered method (plugins included), so a failure names the check.
Contract checks run the method once on a tiny digits problem (a few batches) and look at what
it returned and at what it touched:

- same_architecture, finite_weights, changes_the_model: the returned model;
- original_untouched: the caller's original model is unchanged (the method gets a copy, so
  only cheating could change it);
- data_unchanged: the data it was handed comes back unchanged (data is read-only);
- test_split_unreachable: no tensor of the test split is reachable from anything the method
  is handed (model, data, config, context);
- test_split_untouched: the test split's tensors are canaries that record any use during the
  call (the call runs in a process of its own, `bench.sandbox`, that never held them);
- same_seed_same_result, seed_changes_result: seeded, and random unless declared deterministic.

The behaviour checks run the method with its config on digits, on three seeds:
random_forgetting_behaviour with a random 10% forget set, class_forgetting_behaviour with
class 0 forgotten. Forget accuracy must not rise; on random forgetting it must not fall below
half of the held-out accuracy (forgetting moves it toward held-out accuracy, not to 0); and no
retained class may be wiped out (each keeps >= 25% retain accuracy). Each applies to the
methods meant for its protocol (`protocols`).
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import functools
import gc
import sys
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data import Split
from bench.evaluate import accuracy, per_example_outputs
from bench.execute import CHANGED_DATA, call_method
from bench.methods_loader import method_registry
from bench.progress import Progress
from bench.suites import load_suite
from bench.workspace import Folders, Workspace

FAST = {"epochs": 1, "max_steps": 1, "batch_size": 32, "forget_batch_size": 32, "retain_batch_size": 32}
BEHAVIOUR_SEEDS = (0, 1, 2)
WIPED_OUT = 0.25  # a class whose retain accuracy falls below this is wiped out
TINY_SUITE = """\
name: contract
dataset: {name: digits, split_seed: 0}
model: mlp
recipe: {epochs: 3, batch_size: 64, lr: 0.05, schedule: cosine}
forget_sets: [{protocol: random, fraction: 0.1}]
seeds: [0]
"""
CONTRACT_CHECKS = ("same_architecture", "finite_weights", "changes_the_model", "original_untouched",
                   "data_unchanged", "test_split_unreachable", "test_split_untouched", "same_seed_same_result",
                   "seed_changes_result")
CHECKS = (*CONTRACT_CHECKS, "random_forgetting_behaviour", "class_forgetting_behaviour")
NOT_CHECKED = "not checked: the method's call failed another check"


class ContractError(AssertionError):
    """A method broke the contract; the message names the check."""


class _Canary(torch.Tensor):
    """A tensor that records being used by any torch operation."""

    used = False

    @classmethod
    def __torch_function__(cls, func, types_, args=(), kwargs=None):
        _Canary.used = True
        return super().__torch_function__(func, types_, args, kwargs or {})


@dataclass
class Problem:
    ws: Workspace
    original: torch.nn.Module
    data: object  # UnlearnData


def canary(test: Split) -> Split:
    """The test split with tensors that record any use (`_Canary.used`)."""
    return Split(test.x.as_subclass(_Canary), test.y.as_subclass(_Canary), test.index)


def problem(root: Path, suite_text: str = TINY_SUITE, seed: int = 0, forget_set: int = 0,
            guard_test=None, cache_dir: Path | None = None) -> Problem:
    """A small unlearning problem in `root`: a workspace of `suite_text` (its test split wrapped by
    `guard_test`), the original model of `seed` and the data of forget set number `forget_set`.
    Models are cached in `cache_dir` (default: `root`/cache)."""
    path = root / "suite.yaml"
    path.write_text(suite_text)
    ws = Workspace(load_suite(str(path)), Folders(results_dir=root / "results", cache_dir=cache_dir or root / "cache",
                                                   progress=Progress(enabled=False)), guard_test)
    data = ws.unlearn_data(ws.forget_set(ws.suite.forget_sets[forget_set]))
    return Problem(ws, ws.original(seed)[0], data)


def fast_config(entry):
    if entry.config is None:
        return None
    defaults = entry.config()
    return dataclasses.replace(defaults, **{k: v for k, v in FAST.items() if hasattr(defaults, k)})


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _differs(a: dict, b: dict) -> bool:
    return a.keys() != b.keys() or any(a[k].shape != b[k].shape or not torch.equal(a[k], b[k]) for k in a)


def _reachable_tensor_ids(roots, limit: int = 300_000) -> set[int]:
    """ids of the storages of every tensor reachable from `roots` (modules and classes excluded)."""
    module_dicts = {id(m.__dict__) for m in list(sys.modules.values()) if m is not None}
    seen, found, todo = set(), set(), list(roots)
    while todo and len(seen) < limit:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (types.ModuleType, type)) or id(obj) in module_dicts:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found.add(obj.untyped_storage().data_ptr())
        todo.extend(gc.get_referents(obj))
    return found


def _contract(entry, p: Problem, config) -> dict[str, str | None]:
    ws, original = p.ws, p.original  # locals on purpose: a cheating method may look for them
    test = ws.test  # canaries (`problem(guard_test=canary)`)
    before = _state(original)
    handed = p.data.private_copy()
    ctx = ws.context(1, entry.name)
    test_ptrs = {test.x.untyped_storage().data_ptr(), test.y.untyped_storage().data_ptr()}
    reachable = _reachable_tensor_ids([handed, config, ctx, original]) & test_ptrs
    _Canary.used = False
    model, _, status, error = call_method(entry, original, handed, config, ctx)
    used_test = _Canary.used
    if status != "ok":  # no model to check: the failure is every check's, or the one it names
        fault = "data_unchanged" if error == CHANGED_DATA else None
        return {name: f"the method {status}: {error}" if fault in (None, name) else NOT_CHECKED
                for name in CONTRACT_CHECKS}
    got = _state(model)
    again = _state(call_method(entry, original, p.data.private_copy(), config, ws.context(1, entry.name))[0])
    other = _state(call_method(entry, original, p.data.private_copy(), config, ws.context(2, entry.name))[0])
    deterministic = entry.info.deterministic
    shapes = lambda s: {k: tuple(v.shape) for k, v in s.items()}  # noqa: E731
    return {
        "same_architecture": None if type(model) is type(original) and shapes(got) == shapes(before)
        else f"returned {type(model).__name__} with other parameters than the original {type(original).__name__}",
        "finite_weights": None if all(torch.isfinite(v).all() for v in got.values() if v.is_floating_point())
        else "returned non-finite weights",
        "changes_the_model": None if _differs(before, got) else "returned the original unchanged",
        "original_untouched": None if not _differs(before, _state(original))
        else "changed the caller's original model (it gets a private copy)",
        "data_unchanged": None if p.data.same_as(handed) else "changed the data it was handed (data is read-only)",
        "test_split_unreachable": None if not reachable
        else "the test split is reachable from what the method is handed",
        "test_split_untouched": None if not used_test else "used the test split's tensors",
        "same_seed_same_result": None if not _differs(got, again) else "the same seed gave a different model",
        "seed_changes_result": None if _differs(got, other) != deterministic else (
            "seeds 1 and 2 agree: declare deterministic=True if the method uses no randomness" if not deterministic
            else "declared deterministic=True, but seeds 1 and 2 differ"),
    }


def _per_class_accuracy(out: dict) -> np.ndarray:
    return np.array([np.mean(out["pred"][out["label"] == c] == c) for c in np.unique(out["label"])])


def random_forgetting_behaviour(entry, config, root: Path) -> str | None:
    """None if the method forgets a random 10% of digits sensibly on every behaviour seed."""
    return _behaviour(entry, config, root, "random")


def class_forgetting_behaviour(entry, config, root: Path) -> str | None:
    """None if the method forgets digits class 0 sensibly on every behaviour seed."""
    return _behaviour(entry, config, root, "class")


@functools.cache
def _shared_cache() -> Path:
    """A cache of this process for the behaviour checks' digits originals (keyed by content, so
    every method's check trains each seed's original once), removed when the process ends."""
    folder = tempfile.TemporaryDirectory(prefix="unlearn-bench-behaviour-")
    atexit.register(folder.cleanup)
    return Path(folder.name)


def _behaviour(entry, config, root: Path, protocol: str) -> str | None:
    """Runs the method with `config` on the digits suite's first forget set of `protocol` (random
    10%, or class 0) on each behaviour seed; None if it forgot sensibly, else what went wrong.
    Forget accuracy must not rise, nor fall below half the held-out accuracy on random
    forgetting (retraining leaves it near held-out accuracy there; on a forgotten class it is
    near 0), and no retained class may be wiped out. Methods not meant for `protocol` pass."""
    if protocol not in entry.info.protocols:
        return None
    digits = Path(__file__).parent / "suites" / "digits.yaml"
    suite_text = digits.read_text()
    forget_set = next(i for i, spec in enumerate(load_suite(str(digits)).forget_sets) if spec.protocol == protocol)
    for seed in BEHAVIOUR_SEEDS:
        p = problem(root, suite_text, seed=seed, forget_set=forget_set, cache_dir=_shared_cache())
        model, _, status, error = call_method(entry, p.original, p.data, config, p.ws.context(seed, entry.name))
        if status != "ok":
            return f"seed {seed}: the method {status}: {error}"
        acc = lambda m, s: per_example_outputs(m, s, p.ws.batcher, 1024)  # noqa: E731
        forget0, forget1 = accuracy(acc(p.original, p.data.forget)), accuracy(acc(model, p.data.forget))
        val1, retain1 = accuracy(acc(model, p.data.val)), acc(model, p.data.retain)
        classes = _per_class_accuracy(retain1)
        if forget1 > forget0 + 0.02:
            return f"seed {seed}: forget accuracy rose from {forget0:.1%} to {forget1:.1%}"
        if protocol == "random" and forget1 < val1 / 2:
            return f"seed {seed}: forget accuracy fell to {forget1:.1%}, far below held-out {val1:.1%}"
        if classes.min() < WIPED_OUT:
            wiped = np.unique(retain1["label"])[np.argmin(classes)]
            return f"seed {seed}: class {int(wiped)} is wiped out (retain accuracy {classes.min():.1%})"
    return None


BEHAVIOURS = {"random": random_forgetting_behaviour, "class": class_forgetting_behaviour}


def contract(name: str, config=None, behaviour_config=None) -> dict[str, str | None]:
    """Every check on method `name`: {check: None, or what broke}. `config`: the contract checks'
    config (default: the method's defaults with few epochs); `behaviour_config`: the behaviour
    checks' config, or {protocol: config} (default: `config`, else the method's defaults).
    Raises ValueError for a dict keyed by anything but protocols (a config written as a dict
    would otherwise be read as "no config for either protocol" and silently give the defaults)."""
    entry = method_registry().get(name)
    if isinstance(behaviour_config, dict) and (unknown := sorted(set(behaviour_config) - set(BEHAVIOURS))):
        raise ValueError(f"behaviour_config: a dict must map protocols ({', '.join(BEHAVIOURS)}) to configs; "
                         f"{unknown[0]!r} is not a protocol (pass a config as its dataclass, entry.config(...))")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "contract").mkdir()
        results = _contract(entry, problem(root / "contract", guard_test=canary), config or fast_config(entry))
        for protocol, check in BEHAVIOURS.items():
            given = behaviour_config.get(protocol) if isinstance(behaviour_config, dict) else behaviour_config
            chosen = given or config or (entry.config() if entry.config else None)
            (root / protocol).mkdir()
            results[f"{protocol}_forgetting_behaviour"] = check(entry, copy.deepcopy(chosen), root / protocol)
    return results


def check_method(name: str, config=None) -> None:
    """Raise ContractError naming the first check method `name` fails."""
    for check, problem_text in contract(name, config).items():
        if problem_text and problem_text != NOT_CHECKED:
            raise ContractError(f"{name}: check_{check} failed: {problem_text}")
