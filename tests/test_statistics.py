"""Collapse detection and the leaderboard's statistics: confidence intervals and bootstrap ranks."""

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bench.evaluate import collapse_reason
from bench.statistics import bootstrap_ranks, mean_ci


def test_mean_ci_is_the_t_interval():
    mean, half, n = mean_ci([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3) and n == 3
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * np.std([1, 2, 4], ddof=1) / np.sqrt(3))
    assert np.isnan(mean_ci([1.0])[1])


def test_bootstrap_ranks_give_places_intervals_p_best_and_a_verdict_against_doing_nothing():
    seeds = range(6)
    rng = np.random.default_rng(0)
    best = {s: 1.0 + 0.1 * rng.normal() for s in seeds}
    close = {s: best[s] + 0.02 + 0.2 * rng.normal() for s in seeds}  # noise, not a real difference
    far = {s: best[s] + 3.0 + 0.1 * rng.normal() for s in seeds}
    nothing = {s: best[s] + 6.0 + 0.1 * rng.normal() for s in seeds}  # doing nothing
    r = bootstrap_ranks({"best": best, "close": close, "far": far, "nothing": nothing}, baseline="nothing")
    assert (r["best"]["place_low"], r["close"]["place_high"]) == (1, 2)  # the seeds cannot tell these two apart
    assert (r["far"]["place"], r["far"]["place_low"], r["far"]["place_high"]) == (3, 3, 3)
    assert r["best"]["p_best"] + r["close"]["p_best"] == pytest.approx(1.0) and r["far"]["p_best"] == 0.0
    assert 0.05 < r["close"]["p_best"] < 0.95
    assert all(r[k]["beats_baseline"] and r[k]["vs_baseline_high"] < 0 for k in ("best", "close", "far"))
    assert "beats_baseline" not in r["nothing"]
    worse = {s: nothing[s] + (1.0 if s % 2 else -1.0) for s in seeds}  # as often better as worse than nothing
    assert bootstrap_ranks({"worse": worse, "nothing": nothing}, baseline="nothing")["worse"]["beats_baseline"] is False


def test_clearly_better_than_doing_nothing_is_a_paired_t_interval_with_its_nominal_error_rate():
    """Methods drawn from the baseline's own distribution, 3 seeds: a percentile bootstrap called
    14% of them clearly better; the paired t-interval holds the nominal 2.5% (one-sided)."""
    rng = np.random.default_rng(1)
    wins = sum(bootstrap_ranks({"m": dict(enumerate(rng.normal(0, 1, 3))), "o": dict(enumerate(rng.normal(0, 1, 3)))},
                               baseline="o", resamples=50)["m"]["beats_baseline"] for _ in range(400))
    assert wins / 400 < 0.05


def test_bootstrap_ranks_use_the_seeds_every_method_has_and_one_seed_tells_nothing():
    r = bootstrap_ranks({"a": {0: 1.0, 1: 2.0, 2: 9.0}, "b": {0: 2.0, 1: 3.0}})  # seed 2: a alone
    assert r["a"]["place"] == 1 and r["b"]["place"] == 2  # a's 9.0 is not compared
    one = bootstrap_ranks({"a": {0: 1.0}, "b": {0: 2.0}}, baseline="b")
    assert one["a"] == {"place": 1, "place_low": 1, "place_high": 1, "p_best": None, "vs_baseline_low": -1.0,
                        "vs_baseline_high": -1.0, "beats_baseline": False}
    assert bootstrap_ranks({"a": {0: 1.0}, "b": {1: 2.0}}) == {}


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


@pytest.mark.slow  # a few seconds: kept out of the default run's 2 minutes
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
