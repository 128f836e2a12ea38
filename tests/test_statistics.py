"""Collapse detection and the leaderboard's statistics: confidence intervals and ranks with ties."""

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bench.evaluate import collapse_reason
from bench.statistics import holm, mean_ci, ranks, worse_p


def test_mean_ci_is_the_t_interval():
    mean, half, n = mean_ci([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3) and n == 3
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * np.std([1, 2, 4], ddof=1) / np.sqrt(3))
    assert np.isnan(mean_ci([1.0])[1])


def test_holm_adjusts_in_order():
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})


def test_ranks_tie_methods_that_are_not_significantly_worse():
    seeds = range(6)
    rng = np.random.default_rng(0)
    best = {s: 1.0 + 0.1 * rng.normal() for s in seeds}
    close = {s: best[s] + 0.02 + 0.2 * rng.normal() for s in seeds}  # noise, not a real difference
    far = {s: best[s] + 3.0 + 0.1 * rng.normal() for s in seeds}
    farther = {s: best[s] + 6.0 + 0.1 * rng.normal() for s in seeds}
    r = ranks({"best": best, "close": close, "far": far, "farther": farther})
    assert r == {"best": 1, "close": 1, "far": 2, "farther": 3}
    assert worse_p(far, best) < 0.001 and worse_p(best, far) > 0.99


def test_collapse_is_one_class_or_chance():
    labels = np.arange(1000) % 10
    assert collapse_reason({"pred": np.zeros(1000, np.int16), "label": labels}, 10).startswith(
        "collapsed: predicts class 0 for 100%")
    shuffled = np.random.default_rng(0).permutation(labels)
    assert "at chance" in collapse_reason({"pred": shuffled, "label": labels}, 10)
    assert collapse_reason({"pred": labels, "label": labels}, 10) is None


COLLAPSER = '''
import torch
from bench.api import register_method

@register_method("collapser", deterministic=True)
def collapser(model, data, cfg, ctx):
    """Predicts class 4 for everything, with finite weights and outputs."""
    with torch.no_grad():
        model[-1].weight.zero_()
        model[-1].bias.zero_()
        model[-1].bias[4] = 10.0
    return model
'''


def test_a_collapsed_model_is_recorded_as_such_and_left_out_of_the_means(cli, tiny_suite, tmp_path,
                                                                        forget_plugins):
    from conftest import TINY_SUITE

    from bench.store import load_records

    (tmp_path / "collapser.py").write_text(COLLAPSER)
    suite = tiny_suite(TINY_SUITE + "  collapser: {}\n")
    code, out, err = cli("run", suite, "--quiet", "--plugin", tmp_path / "collapser.py")
    assert code == 0 and "2 collapsed" in out, err
    runs = [r for r in load_records(Path("results")) if r["method"] == "collapser"]
    assert all(r["status"] == "collapsed" and "predicts class 4" in r["error"] for r in runs)
    assert all(r["metrics"]["retain_acc"] < 0.2 for r in runs)  # the numbers are kept, for reading
    row = next(line for line in Path("leaderboard.md").read_text().splitlines() if "| collapser" in line)
    assert "2 collapsed" in row and row.count("—") >= 5  # no means from collapsed runs
