"""Per method: on a small class-forgetting problem, forget accuracy moves from the original's
toward retrain's while retain accuracy stays within a stated margin.

The problem is `tests/behaviour_suite.yaml` (digits, a 256-unit MLP, 10 epochs with weight
decay) with its class-0 forget set, every training image of class 0: the original model knows
the class (forget accuracy ~100%), a retrained model cannot (0%). Each method runs with its
settings in that file. (The default `digits` suite memorises its pool so that there is something
to forget; there plain fine-tuning leaves a class it no longer sees at 100%, so it is no test of
whether a method can move forget accuracy at all.)
"""

from pathlib import Path

import pytest

from bench.suites import load_suite
from bench.evaluate import accuracy, per_example_outputs
from bench.methods_loader import method_registry
from bench.progress import Progress
from bench.workspace import Folders, Workspace

# Each method runs with the behaviour suite's settings for it; it must cut forget accuracy by at
# least MIN_DROP points (retrain: to ~0) while losing at most RETAIN_MARGIN points of retain accuracy.
DIGITS = load_suite(str(Path(__file__).with_name("behaviour_suite.yaml")))
MIN_DROP = 50.0
RETAIN_MARGIN = 10.0  # points of retain accuracy a method may lose against the original


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    root = tmp_path_factory.mktemp("behaviour")
    run = Workspace(DIGITS, Folders(results_dir=root / "r", cache_dir=root / "c", progress=Progress(enabled=False)))
    original, _ = run.original(0)
    class_forgetting = next(f for f in DIGITS.forget_sets if f.protocol == "class")
    data = run.unlearn_data(run.forget_set(class_forgetting))
    return run, original, data


def accuracies(run, model, data):
    acc = lambda split: 100 * accuracy(per_example_outputs(model, split, run.batcher, 1024))  # noqa: E731
    return acc(data.forget), acc(data.retain)


def test_every_method_is_in_the_digits_suite_and_the_behaviour_problem():
    assert {name for name, _ in DIGITS.methods} == set(method_registry().names())
    assert {name for name, _ in load_suite("digits").methods} == set(method_registry().names())


# Measured on this problem (seed 0): JiT's lr 1.5e-4 cuts forget accuracy 38 points, 1.6e-4 cuts
# it 57 with retain 9.9 points down, 1.75e-4 cuts it 79 with retain 11.3 down: no setting does
# both with a margin, so the test would pass or fail on the last bits of a CPU's arithmetic.
TRADES_RETAIN_FOR_FORGETTING = {"jit"}
METHODS = [pytest.param(m, marks=pytest.mark.xfail(strict=True, reason="forgetting costs retain accuracy here"))
           if m in TRADES_RETAIN_FOR_FORGETTING else m for m in method_registry().names()]


@pytest.mark.parametrize("name", METHODS)
def test_method_moves_forget_accuracy_toward_retrain(problem, name):
    import copy

    run, original, data = problem
    entry = method_registry().get(name)
    model = entry.fn(copy.deepcopy(original), data, DIGITS.method_config(name), run.context(0, name))
    forget0, retain0 = accuracies(run, original, data)
    forget1, retain1 = accuracies(run, model, data)
    assert forget0 > 95  # the original knows the class
    assert forget0 - forget1 >= MIN_DROP, f"{name}: forget acc {forget0:.1f} -> {forget1:.1f}"
    assert retain1 >= retain0 - RETAIN_MARGIN, f"{name}: retain acc {retain0:.1f} -> {retain1:.1f}"
