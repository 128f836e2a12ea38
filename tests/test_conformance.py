"""The contract every registered method keeps (bench/checks.py), one test per method and check.

Parametrised over the registry, so a new method (or plugin) is checked automatically. The
behaviour check runs each method with its settings in the digits suite. Deliberately broken
methods must fail the check that names what they broke.
"""

import functools
import re
import textwrap

import pytest

from bench.checks import CHECKS, ContractError, check_method, contract
from bench.methods_loader import load_plugin, method_registry
from bench.suites import load_suite

METHODS = method_registry().names()
DIGITS = dict(load_suite("digits").methods)


@functools.lru_cache(maxsize=None)
def results(name: str) -> dict:
    return contract(name, behaviour_config=DIGITS.get(name))


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", METHODS)
def test_method_keeps_the_contract(name, check):
    problem = results(name)[check]
    assert problem is None, f"{name}: check_{check} failed: {problem}"


def test_there_are_at_least_thirteen_methods():
    assert len(METHODS) >= 13


BROKEN = {
    # sets one class's output bias to -1e4: in a run it wipes out a class
    "bias_kill": ("random_forgetting_behaviour", """
        import torch
        from bench.api import register_method

        @register_method("bias_kill", deterministic=True)
        def bias_kill(model, data, cfg, ctx):
            '''Kills class 3.'''
            with torch.no_grad():
                list(model.parameters())[-1][3] = -1e4
            return model
    """),
    # relabels the forget set in place, then fine-tunes on it
    "relabel_in_place": ("data_unchanged", """
        import torch.nn.functional as F
        from bench.api import register_method, make_optimizer, run_epochs

        @register_method("relabel_in_place")
        def relabel_in_place(model, data, cfg, ctx):
            '''Poisons its input data.'''
            data.forget.y[:] = (data.forget.y + 1) % data.num_classes
            opt = make_optimizer(model.parameters(), "sgd", 0.01)
            return run_epochs(model, opt, 1, lambda: ctx.batches(data.forget, 32),
                              lambda b: F.cross_entropy(model(b[0]), b[1]), ctx)
    """),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_methods_fail_the_check_that_names_their_fault(name, tmp_path, forget_plugins):
    check, source = BROKEN[name]
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    load_plugin(str(path))
    with pytest.raises(ContractError, match=f"check_{check} failed"):
        check_method(name)
    assert contract(name)[check] is not None


CONTAINED = {  # cheats that once worked: in the method's own process they find nothing, so the call fails
    # walks the caller's frames to the runner's test split and trains on it
    "test_through_frames": ("TypeError: object of type 'NoneType' has no len()", """
        import inspect
        import torch.nn.functional as F
        from bench.api import register_method, make_optimizer, run_epochs
        from bench.data import Split

        @register_method("test_through_frames")
        def test_through_frames(model, data, cfg, ctx):
            '''Finds the test split in a caller's frame.'''
            frame, test = inspect.currentframe(), None
            while frame is not None and test is None:
                for value in frame.f_locals.values():
                    if isinstance(getattr(value, "test", None), Split):
                        test = value.test
                frame = frame.f_back
            opt = make_optimizer(model.parameters(), "sgd", 0.01)
            return run_epochs(model, opt, 1, lambda: ctx.batches(test, 32),
                              lambda b: F.cross_entropy(model(b[0]), b[1]), ctx)
    """),
    # changes the caller's original model, which it finds through the frames
    "touches_original": ("AttributeError: 'NoneType' object has no attribute 'f_locals'", """
        import inspect
        import torch
        from bench.api import register_method

        @register_method("touches_original")
        def touches_original(model, data, cfg, ctx):
            '''Zeroes the original it was copied from.'''
            frame = inspect.currentframe().f_back
            while frame is not None and "original" not in frame.f_locals:
                frame = frame.f_back
            with torch.no_grad():
                for p in frame.f_locals["original"].parameters():
                    p.zero_()
                model[-1].bias.add_(torch.randn(model[-1].bias.shape, generator=ctx.generator))
            return model
    """),
}


@pytest.mark.parametrize("name", sorted(CONTAINED))
def test_cheats_through_the_callers_frames_find_nothing(name, tmp_path, forget_plugins):
    """The caller's frames are not in the method's process: the cheat's own call fails, and the
    checks that it once broke (test_split_untouched, original_untouched) are not what fails."""
    error, source = CONTAINED[name]
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    load_plugin(str(path))
    results = contract(name)
    assert results["same_architecture"] == f"the method failed: {error}"
    with pytest.raises(ContractError, match=f"check_same_architecture failed: the method failed: {re.escape(error)}"):
        check_method(name)


def _published_tuned(name: str) -> dict:
    """{protocol: config} of `name` from the published digits tuned.yaml (the board's configs)."""
    from pathlib import Path

    from bench.plan import resolve_config
    from bench.tuned import Tuned, read_tuned

    suite = load_suite("digits")
    entries = read_tuned(Path(__file__).parent.parent / "results" / "digits" / "tuned.yaml").get(name, {})
    return {spec.protocol: resolve_config(suite, name, Tuned(entries[spec.display_name]["values"], 0))[0]
            for spec in suite.forget_sets if spec.display_name in entries}


# Found by this test: SSD's published class-0 config (alpha 2.61, dampening 0.585) wipes out
# class 4 on seed 0 (retain accuracy 2.2%; the seed-0 record's retain accuracy is 76.4% against
# retrain's 95.7%). Tuning does not yet reject configs that wipe out a retained class.
# Likewise JiT's (lr 2.85e-3, sigma 0.058, republished from 7a98cb8): class 9 is wiped out on
# behaviour seed 0 (retain accuracy 16.0%; its published class-0 records keep 75.1-93.5% retain
# accuracy over all classes).
KNOWN_BROKEN = {m: "class_forgetting_behaviour: a retained class is wiped out by the published class-0 config"
                for m in ("ssd", "jit")}
TUNED = [pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BROKEN[m])) if m in KNOWN_BROKEN else m
         for m in METHODS if _published_tuned(m)]


@pytest.mark.slow
@pytest.mark.parametrize("name", TUNED)
def test_the_published_tuned_configs_keep_the_contract(name):
    """The configs on the board, not only the suite's starting points, keep every check."""
    configs = _published_tuned(name)
    broken = {check: why for check, why in contract(name, configs["random"], configs).items() if why}
    assert broken == {}, f"{name}: {broken}"


def test_the_behaviour_check_covers_class_only_methods(tmp_path, forget_plugins):
    """A bias-killing method registered as class-only used to pass every check: the class
    forgetting behaviour check now runs it, and names the wiped-out class."""
    path = tmp_path / "bias_kill_class.py"
    path.write_text(textwrap.dedent(BROKEN["bias_kill"][1]).replace(
        '@register_method("bias_kill", deterministic=True)',
        '@register_method("bias_kill_class", deterministic=True, protocols=("class",))'))
    load_plugin(str(path))
    results = contract("bias_kill_class")
    assert results["random_forgetting_behaviour"] is None  # not meant for random forgetting
    assert "class 3 is wiped out" in results["class_forgetting_behaviour"]


def test_a_behaviour_config_dict_must_be_keyed_by_protocol():
    """{protocol: config} is the one dict `contract` takes: hyperparameters written as a dict used to
    be read as "no config for either protocol", so the behaviour checks silently ran the defaults."""
    with pytest.raises(ValueError, match="'lr' is not a protocol"):
        contract("finetune", behaviour_config={"lr": 0.1})
