"""Golden aggregation: a hand-built section (original, retrain and four methods over three seeds)
whose every headline number is worked out here by hand from the documented formulas, then compared
with what `bench.aggregate.section_rows` (and the leaderboard built on it) reports.

The formulas, as `bench.metrics`, `bench.aggregate` and `bench.statistics` document them:

* Avg. Gap of one seed = mean over the four headline metrics (forget, retain and test accuracy,
  simple-MIA accuracy; for class forgetting test accuracy on the remaining classes) of
  |method − same-seed retrain|, in points. Every seed with a retrain counts: a failed, diverged or
  collapsed run's Avg. Gap is a penalty, the worse of `original`'s on that seed and the method's own
  worst counted seed. The row's Avg. Gap is the mean over its counted seeds, ± the sample std; the
  export also gives the half-width of the 95% t-interval (t_{0.975, n−1} · s / √n).
* Privacy gap = mean over seeds of |strongest attack's AUC − same-seed retrain's AUC|; ± its std.
* Place: 1 = smallest mean Avg. Gap over the seeds every ranked row (methods and `original`) has;
  [low, high] = the 95% percentile interval of the place over a paired bootstrap of those seeds;
  P(best) = the share of resamples in which it is first; a method is clearly better than
  `original` when the 95% interval of its mean Avg. Gap minus original's lies below 0.
* Noise floor = the mean Avg. Gap between the retrains of every pair of seeds.

Nothing below calls the project's statistics helpers for an expected value: every expectation is
written-out arithmetic (checked against numpy on the fixture's numbers), so a wrong formula (a gap
that is not absolute, a mean over the wrong axis, a z- instead of a t-interval, an unpaired
bootstrap, a failed seed left out) makes a test fail.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

SEEDS = (0, 1, 2)

# The retrain reference of each seed: forget, retain, test accuracy and simple-MIA accuracy in %,
# and the AUC of LiRA (the strongest attack the section has, strength 3; simple's is strength 1).
RETRAIN = {0: (90, 98, 92, 50), 1: (88, 97, 91, 52), 2: (91, 99, 93, 49)}
RETRAIN_LIRA = {0: 0.50, 1: 0.51, 2: 0.49}

# Each run's difference to its seed's retrain, in points, on (forget, retain, test, simple MIA).
# Signs differ within a seed and (for alpha's simple MIA) across seeds, so that a signed gap, or a
# mean over seeds taken before the absolute value, gives another number.
DIFFS = {
    "alpha": {0: (+2, -1, -1, -2),    # |.| sums 6  -> 1.50
              1: (+3, -1, -2, +2),    # 8  -> 2.00
              2: (+1, 0, -1, +1)},    # 3  -> 0.75
    "beta": {0: (+3, -1, -2, -1),     # 7  -> 1.75
             1: (+2, 0, -1, +1),      # 4  -> 1.00
             2: (+2, -2, -1, +2)},    # 7  -> 1.75
    "gamma": {0: (+6, -2, -3, +2),    # 13 -> 3.25
              1: (+10, -5, -6, +4),   # 25 -> 6.25
              2: (+5, -3, -2, +3)},   # 13 -> 3.25
    "delta": {0: (+9, -3, -4, +4),    # 20 -> 5.00  (gamma + 1.75 on every seed)
              1: (+11, -7, -9, +5),   # 32 -> 8.00
              2: (+8, -4, -4, +4)},   # 20 -> 5.00
    "original": {0: (+10, +2, +1, +8),  # 21 -> 5.25
                 1: (+11, +3, +1, +7),  # 22 -> 5.50
                 2: (+9, +1, +2, +8)},  # 20 -> 5.00
}
# LiRA AUC minus the same-seed retrain's, per seed
LIRA_DIFFS = {"alpha": (+0.01, +0.03, -0.01), "beta": (+0.04, -0.01, +0.03), "gamma": (+0.10, +0.12, +0.08),
              "delta": (+0.12, +0.14, +0.10), "original": (+0.20, +0.18, +0.22)}
FLOPS = {"retrain": (1_000_000, 1_000_000, 1_000_000), "alpha": (100_000, 125_000, 200_000),
         "beta": (250_000, 250_000, 500_000), "gamma": (50_000, 40_000, 100_000),
         "delta": (50_000, 50_000, 50_000), "original": (2_000_000, 2_000_000, 2_000_000)}

# Worked out by hand from DIFFS (per seed: sum of |diff| / 4).
GAPS = {"alpha": (1.50, 2.00, 0.75), "beta": (1.75, 1.00, 1.75), "gamma": (3.25, 6.25, 3.25),
        "delta": (5.00, 8.00, 5.00), "original": (5.25, 5.50, 5.00)}
# t_{0.975} with 2 degrees of freedom, in closed form: for df = 2 the t quantile of probability q is
# (2q − 1) / √(2q(1 − q)); = 4.30265 (tables: 4.303); the normal quantile z would be 1.960
T_975_2 = (2 * 0.975 - 1) / math.sqrt(2 * 0.975 * (1 - 0.975))
T_975_3 = 3.182446305284263  # t_{0.975} with 3 degrees of freedom (tables: 3.182)
# alpha diverged on seed 3, where no original ran: its penalty is its own worst seed, 2.00
ALPHA_COUNTED = (1.50, 2.00, 0.75, 2.00)


def _record(method: str, seed: int, metrics: dict, flops: int, status: str = "ok", protocol: str = "random"
            ) -> dict:
    return {
        "schema_version": 1, "bench_version": "0.1.0", "suite": "golden", "suite_hash": "0" * 16,
        "method": method, "method_config": {}, "config_hash": f"{method:0<16}"[:16], "config_source": "suite",
        "method_protocols": ["random", "class"], "seed": seed, "status": status, "error": None,
        "forget_set": {"name": "random-10pct", "protocol": protocol, "file": "golden/forget.npy", "size": 90,
                       "sha256": "f" * 64, "label": None},
        "model": "mlp", "metrics": metrics, "cost": {"wall_s": flops / 1e6, "flops": flops},
        "env": {"git_sha": "a" * 40, "git_dirty": False},
        "_file": str(Path("nowhere") / f"{method}-seed{seed}.json"),  # no outputs: no forget quality
    }


def _metrics(values, lira_auc: float, class_forgetting: bool = False) -> dict:
    forget, retain, test, simple = (v / 100 for v in values)
    m = {"forget_acc": forget, "retain_acc": retain, "test_acc": test, "val_acc": 0.5,
         "mia": {"simple": {"accuracy": simple, "auc": 0.5 + simple / 10},
                 "lira": {"auc": lira_auc, "tpr_at_1pct_fpr": 0.01}}}
    if class_forgetting:  # the headline test accuracy is the remaining classes'; test_acc must not count
        m.update(test_acc_remaining=test, test_acc_forgotten=0.0, test_acc=0.123)
    return m


def golden_records(class_forgetting: bool = False) -> list[dict]:
    protocol = "class" if class_forgetting else "random"
    records = []
    for i, seed in enumerate(SEEDS):
        records.append(_record("retrain", seed, _metrics(RETRAIN[seed], RETRAIN_LIRA[seed], class_forgetting),
                               FLOPS["retrain"][i], protocol=protocol))
        for method, diffs in DIFFS.items():
            values = [base + d for base, d in zip(RETRAIN[seed], diffs[seed])]
            records.append(_record(method, seed, _metrics(values, RETRAIN_LIRA[seed] + LIRA_DIFFS[method][i],
                                                          class_forgetting),
                                   FLOPS[method][i], protocol=protocol))
    # a fourth seed where alpha diverged (its numbers are kept in the record, but no mean may use them)
    records.append(_record("retrain", 3, _metrics((89, 98, 92, 51), 0.5, class_forgetting), 1_000_000,
                           protocol=protocol))
    records.append(_record("alpha", 3, _metrics((10, 10, 10, 99), 0.99, class_forgetting), 1, status="diverged",
                           protocol=protocol))
    return records


def _rows(records):
    from bench.aggregate import section_rows

    return {row["method"]: row for row in section_rows(records)}


def _t_half_width(values) -> float:
    v = np.asarray(values, float)
    return T_975_2 * np.std(v, ddof=1) / math.sqrt(len(v))


def test_the_hand_worked_gaps_follow_from_the_fixture():
    """The written-out per-seed gaps are the fixture's mean |diff| (guards the numbers used below)."""
    for method, by_seed in DIFFS.items():
        assert GAPS[method] == tuple(float(np.mean(np.abs(by_seed[s]))) for s in SEEDS), method
    assert stats.t.ppf(0.975, 2) == pytest.approx(T_975_2, rel=1e-12)
    assert stats.t.ppf(0.975, 3) == pytest.approx(T_975_3, rel=1e-12)


def test_avg_gap_is_the_mean_absolute_gap_to_the_same_seed_retrain_over_every_counted_seed():
    rows = _rows(golden_records())
    # alpha: seeds 0-2 ok, seed 3 diverged and penalised with its worst seed (2.00, no original there):
    # (1.50 + 2.00 + 0.75 + 2.00) / 4 = 1.5625; deviations (−.0625, .4375, −.8125, .4375), squares sum
    # 1.046875, s = √(1.046875 / 3) = 0.59073; half-width 3.18245 · 0.59073 / 2 = 0.93998
    alpha = rows["alpha"]
    assert alpha["avg_gap"] == pytest.approx(1.5625) and alpha["penalised"] == 1
    assert alpha["avg_gap_std"] == pytest.approx(math.sqrt(1.046875 / 3), rel=1e-9)
    assert alpha["avg_gap_ci"] == pytest.approx(T_975_3 * math.sqrt(1.046875 / 3) / 2, rel=1e-9)
    assert alpha["avg_gap_ci"] == pytest.approx(0.939981, rel=1e-5)
    # beta: (1.75 + 1.00 + 1.75) / 3 = 1.5; s = sqrt((.25² + .5² + .25²) / 2) = 0.43301; half-width 1.07566
    assert rows["beta"]["avg_gap"] == pytest.approx(1.5) and rows["beta"]["penalised"] == 0
    assert rows["beta"]["avg_gap_std"] == pytest.approx(math.sqrt(0.375 / 2))
    assert rows["beta"]["avg_gap_ci"] == pytest.approx(1.075663, rel=1e-5)
    # gamma: (3.25 + 6.25 + 3.25) / 3 = 4.25, s = sqrt((1 + 4 + 1) / 2) = √3, half-width 4.30265 · √3 / √3
    assert rows["gamma"]["avg_gap"] == pytest.approx(4.25)
    assert rows["gamma"]["avg_gap_std"] == pytest.approx(math.sqrt(3))
    assert rows["gamma"]["avg_gap_ci"] == pytest.approx(T_975_2)
    # delta: (5 + 8 + 5) / 3 = 6, s = √3 too
    assert rows["delta"]["avg_gap"] == pytest.approx(6.0)
    # original (ranked like a method): (5.25 + 5.5 + 5) / 3 = 5.25, s = 0.25
    assert rows["original (reference)"]["avg_gap"] == pytest.approx(5.25)
    assert rows["original (reference)"]["avg_gap_std"] == pytest.approx(0.25)
    # retrain against itself: 0 on every seed (the diverged alpha's seed 3 has a retrain too: 4 seeds)
    assert rows["retrain (reference)"]["avg_gap"] == pytest.approx(0.0, abs=1e-12)
    assert "penalised" not in rows["retrain (reference)"]
    # every method, again with numpy on the fixture's numbers
    for method in ("beta", "gamma", "delta"):
        per_seed = np.mean(np.abs(np.array([DIFFS[method][s] for s in SEEDS], float)), axis=1)
        assert rows[method]["avg_gap"] == pytest.approx(per_seed.mean())
        assert rows[method]["avg_gap_ci"] == pytest.approx(_t_half_width(per_seed))
    assert alpha["avg_gap"] == pytest.approx(np.mean(ALPHA_COUNTED))


def test_a_failed_seed_counts_with_the_worst_gap_any_row_has_there():
    """beta fails on seed 1: its penalty there is the largest Avg. Gap of that seed, delta's 8.00
    (original has 5.50; beta's own worst seed 1.75): (1.75 + 8.00 + 1.75) / 3 = 3.8333; every other
    number of the row is over its two ok runs; and it is no longer clearly better than doing nothing
    (beta − original per seed: −3.50, +2.50, −3.25: 7 of the 27 resamples have a mean ≥ 0)."""
    records = golden_records()
    for r in records:
        if r["method"] == "beta" and r["seed"] == 1:
            r["status"], r["error"] = "failed", "RuntimeError: boom"
    rows = _rows(records)
    beta = rows["beta"]
    assert beta["avg_gap"] == pytest.approx(11.5 / 3) and beta["penalised"] == 1
    assert beta["runs"] == {"ok": 2, "failed": 1} and beta["n"] == 2
    assert beta["forget_acc"] == pytest.approx((RETRAIN[0][0] + 3 + RETRAIN[2][0] + 2) / 2)
    assert beta["place"] == 2 and beta["beats_original"] is False
    assert rows["alpha"]["beats_original"] is True
    # where no other row ran (seed 3: alpha alone), the method's own worst ok seed: 2.00
    assert rows["alpha"]["penalised"] == 1 and rows["alpha"]["avg_gap"] == pytest.approx(np.mean(ALPHA_COUNTED))


def test_a_failed_seed_never_scores_better_than_any_row_that_ran_on_it():
    """Any one run of the fixture failing instead: its seed scores the largest Avg. Gap any other
    row has there (`original` included, retrain's 0 not), or the method's own worst ok seed. Its
    mean can still fall where the run would have been the worst row of its seed (delta on seed 1:
    8.00 -> 6.25, gamma's gap there): no penalty can know what a failed run would have scored.
    `original` itself is not penalised: it is the baseline, ranked on its ok seeds."""
    for method in ("alpha", "beta", "gamma", "delta"):
        for i, seed in enumerate(SEEDS):
            records = golden_records()
            for r in records:
                if r["method"] == method and r["seed"] == seed:
                    r["status"] = "collapsed"
            row = _rows(records)[method]
            others = [GAPS[m][i] for m in GAPS if m != method]
            own_ok = [g for j, g in enumerate(GAPS[method]) if j != i]
            counted = own_ok + [max(*others, *own_ok)]
            counted += [max(own_ok)] if method == "alpha" else []  # alpha's diverged seed 3: its own worst ok seed
            assert row["avg_gap"] == pytest.approx(np.mean(counted)), (method, seed)
    assert _rows([dict(r, status="failed") if (r["method"], r["seed"]) == ("delta", 1) else r
                  for r in golden_records()])["delta"]["avg_gap"] == pytest.approx((5 + 6.25 + 5) / 3)


def test_a_failure_never_borrows_retrains_zero_nor_counts_as_close_to_retraining():
    """Where only retrain ran on a seed, a failed method's penalty is not retrain's own 0; and a
    penalised row is never marked within the noise floor."""
    records = [r for r in golden_records() if r["method"] in ("retrain", "gamma")]
    for r in records:
        if r["method"] == "gamma":
            r["status"] = "failed"
    assert "avg_gap" not in _rows(records)["gamma"]  # nothing to count a failure against: no score, not 0.00
    records = golden_records()
    for r in records:
        if r["method"] == "alpha" and r["seed"] in (0, 1):
            r["status"] = "failed"
    alpha = _rows(records)["alpha"]
    assert alpha["penalised"] == 3 and alpha["within_noise_floor"] is False


def test_tied_means_share_a_place_and_the_chance_of_being_best():
    records = golden_records()
    twins = [dict(r, method="twin", config_hash="twin".ljust(16, "0")) for r in records if r["method"] == "beta"]
    rows = _rows(records + twins)
    assert rows["twin"]["place"] == rows["beta"]["place"] == 2
    assert rows["twin"]["p_best"] == pytest.approx(rows["beta"]["p_best"])
    assert rows["gamma"]["place"] == 4  # after two rows sharing place 2


def test_places_compare_the_seeds_original_has_and_leave_out_a_row_lacking_one():
    """A row that ran on fewer seeds used to shrink every row's comparison to its seeds (every
    interval collapsed); now it is not ranked, and the section says so."""
    from bench.leaderboard import render

    late = [r for r in golden_records() if r["method"] == "beta" and r["seed"] == 0]
    late = [dict(late[0], method="late", config_hash="late".ljust(16, "0"))]
    rows = _rows(golden_records() + late)
    assert "place" not in rows["late"] and rows["alpha"]["ranking_seeds"] == [0, 1, 2]
    assert (rows["alpha"]["place_low"], rows["alpha"]["place_high"]) == (1, 2)  # as without the late row
    board = render(golden_records() + late, "results")
    assert "Places compare seeds 0, 1, 2; not ranked, for lacking one of them: `late`." in board
    one = render([r for r in golden_records() if r["seed"] == 0], "results")
    assert "Places compare seed 0 only: one seed gives no interval." in one
    assert "[1–1]" not in one and "[1–" in render(golden_records(), "results")  # no interval printed for one seed
    assert "[+" not in one and "[-" not in one  # nor a t-interval against `original`
    alone = render([r for r in golden_records() if r["method"] != "original"], "results")
    assert "No `original` ran here: nothing is marked ⊘" in alone
    assert "Seed 3 has no `ok` retrain" in render([r for r in golden_records() if not (
        r["method"] == "retrain" and r["seed"] == 3)], "results")


def test_wrong_formulas_would_give_other_numbers():
    """The fixture tells the documented formula from the likely wrong ones (so the test above can fail)."""
    d = np.array([DIFFS["alpha"][s] for s in SEEDS], float)  # seeds × metrics
    right = np.mean(np.abs(d), axis=1).mean()
    assert abs(np.mean(d, axis=1).mean() - right) > 0.5  # signed gap: 0.25
    assert abs(np.abs(d.mean(axis=0)).mean() - right) > 0.3  # |mean over seeds| per metric: 1.0833
    per_seed = np.mean(np.abs(d), axis=1)
    z = 1.959964 * np.std(per_seed, ddof=1) / math.sqrt(3)
    assert abs(z - _t_half_width(per_seed)) > 0.5  # z-interval: 0.71194
    assert abs(T_975_2 * np.std(per_seed, ddof=0) / math.sqrt(3) - _t_half_width(per_seed)) > 0.2  # ddof=0


def test_only_ok_runs_enter_the_other_means_and_every_run_is_counted():
    rows = _rows(golden_records())
    assert rows["alpha"]["runs"] == {"ok": 3, "diverged": 1} and rows["alpha"]["n"] == 3
    assert rows["retrain (reference)"]["n"] == 4 and rows["beta"]["n"] == 3
    # alpha's forget accuracy: the mean of the three ok runs, (92 + 91 + 92) / 3, sample std
    assert rows["alpha"]["forget_acc"] == pytest.approx(275 / 3)
    assert rows["alpha"]["forget_acc_std"] == pytest.approx(np.std([92, 91, 92], ddof=1))
    # RTE: retrain's FLOPs over the method's, per seed, then the mean: (10 + 8 + 5) / 3
    assert rows["alpha"]["rte_basis"] == "flops"
    assert rows["alpha"]["rte"] == pytest.approx(23 / 3)
    assert rows["gamma"]["rte"] == pytest.approx((20 + 25 + 10) / 3)


def test_places_have_paired_bootstrap_intervals_and_original_is_ranked_like_a_method():
    from bench.aggregate import section_rows

    rows = section_rows(golden_records())
    # the seeds every ranked row has: 0, 1, 2 (seed 3 has alpha alone). Mean gaps there: alpha 1.4167,
    # beta 1.5, gamma 4.25, original 5.25, delta 6.0; rows follow the places
    assert [r["method"] for r in rows] == [
        "retrain (reference)", "alpha", "beta", "gamma", "original (reference)", "delta"]
    rows = {row["method"]: row for row in rows}
    ranked = ("alpha", "beta", "gamma", "original", "delta")
    gaps = {m: np.array(GAPS[m]) for m in ranked}
    # The paired bootstrap draws 3 of the 3 seeds with replacement, the same seeds for every row: 27
    # equally likely draws. beta beats alpha iff d = beta − alpha, (+.25, −1, +1), sums below 0: 10 of
    # 27 draws, so P(best) is 17/27 for alpha and 10/27 for beta, and both places span [1, 2].
    # original − gamma = (2, −.75, 1.75) is ≤ 0 only for seed 1 thrice (1 of 27, 3.7% > 2.5%): gamma
    # [3, 4]; delta − original = (−.25, 2.5, 0) < 0 in the 7 draws of seeds 0 and 2 with a seed 0
    # (26%): original [3, 5], delta [4, 5]. (Unpaired, delta would come before gamma in some draws.)
    draws = [list(s) for s in itertools.product(SEEDS, repeat=3)]
    assert sum(gaps["beta"][s].mean() < gaps["alpha"][s].mean() for s in draws) == 10
    assert sum(gaps["original"][s].mean() <= gaps["gamma"][s].mean() for s in draws) == 1
    assert sum(gaps["delta"][s].mean() < gaps["original"][s].mean() for s in draws) == 7
    places = {m: (rows[m]["place"], rows[m]["place_low"], rows[m]["place_high"])
              for m in ("alpha", "beta", "gamma", "delta")}
    places["original"] = tuple(rows["original (reference)"][k] for k in ("place", "place_low", "place_high"))
    assert places == {"alpha": (1, 1, 2), "beta": (2, 1, 2), "gamma": (3, 3, 4), "original": (4, 3, 5),
                      "delta": (5, 4, 5)}
    assert rows["alpha"]["p_best"] == pytest.approx(17 / 27, abs=0.03)  # 2000 resamples of 27 draws
    assert rows["beta"]["p_best"] == pytest.approx(10 / 27, abs=0.03)
    assert rows["gamma"]["p_best"] == 0.0 and "place" not in rows["retrain (reference)"]
    # clearly better than doing nothing: alpha and beta on every seed; gamma not on seed 1, delta on none
    assert {m: rows[m]["beats_original"] for m in ("alpha", "beta", "gamma", "delta")} == {
        "alpha": True, "beta": True, "gamma": False, "delta": False}
    assert "beats_original" not in rows["original (reference)"]


def test_the_noise_floor_is_the_avg_gap_between_retrains_of_different_seeds():
    """Retrains (forget, retain, test, simple MIA): seed 0 (90, 98, 92, 50), 1 (88, 97, 91, 52),
    2 (91, 99, 93, 49), 3 (89, 98, 92, 51). Pairs: 0-1 6/4 = 1.5, 0-2 1.0, 0-3 0.5, 1-2 2.5, 1-3 1.0,
    2-3 1.5; mean 8/6."""
    from bench.aggregate import noise_floor, section_rows

    records = golden_records()
    assert noise_floor(records) == pytest.approx({"mean": 8 / 6, "low": 0.5, "high": 2.5, "pairs": 6})
    rows = {row["method"]: row for row in section_rows(records)}
    assert rows["alpha"]["noise_floor"] == pytest.approx(8 / 6)
    assert not any(rows[m]["within_noise_floor"] for m in ("alpha", "beta", "gamma", "delta"))
    assert rows["retrain (reference)"]["within_noise_floor"]
    assert noise_floor([r for r in records if not (r["method"] == "retrain" and r["seed"] > 0)]) is None


def test_privacy_gap_is_the_strongest_attacks_mean_absolute_auc_gap_to_the_same_seed_retrain():
    rows = _rows(golden_records())
    # LiRA (strength 3) heads the table, not simple (strength 1), though both are in every record
    assert {row["privacy_attack"] for row in rows.values()} == {"lira"}
    expected = {"alpha": (0.05 / 3, np.std([0.01, 0.03, 0.01], ddof=1)),  # (.01 + .03 + |−.01|) / 3; signed .01
                "beta": (0.08 / 3, np.std([0.04, 0.01, 0.03], ddof=1)),   # (.04 + |−.01| + .03) / 3
                "gamma": (0.10, 0.02),                                     # (.10 + .12 + .08) / 3, s = .02
                "delta": (0.12, 0.02),                                     # (.12 + .14 + .10) / 3, s = .02
                "original (reference)": (0.20, 0.02)}
    for method, (mean, std) in expected.items():
        assert rows[method]["privacy_gap"] == pytest.approx(mean, abs=1e-12), method
        assert rows[method]["privacy_gap_std"] == pytest.approx(std, rel=1e-9), method
        assert rows[method]["attacks"]["lira"]["auc_gap"] == pytest.approx(mean, abs=1e-12), method
    assert rows["retrain (reference)"]["privacy_gap"] == pytest.approx(0.0, abs=1e-12)
    # the detail table's simple-attack AUC gap: simple's AUC is 0.5 + accuracy / 10 in the fixture
    simple = np.array([DIFFS["alpha"][s][3] for s in SEEDS]) / 100 / 10
    assert rows["alpha"]["attacks"]["simple"]["auc_gap"] == pytest.approx(np.abs(simple).mean(), abs=1e-12)


def test_class_forgetting_takes_the_remaining_classes_test_accuracy():
    rows = _rows(golden_records(class_forgetting=True))
    for method in ("beta", "gamma", "delta"):
        per_seed = np.array(GAPS[method])
        assert rows[method]["avg_gap"] == pytest.approx(per_seed.mean()), method
        assert rows[method]["avg_gap_ci"] == pytest.approx(_t_half_width(per_seed)), method
    assert rows["alpha"]["avg_gap"] == pytest.approx(np.mean(ALPHA_COUNTED))
    assert {m: rows[m]["place"] for m in ("alpha", "beta", "gamma", "delta")} == {
        "alpha": 1, "beta": 2, "gamma": 3, "delta": 5}


def test_the_leaderboard_and_its_export_show_the_golden_numbers(tmp_path):
    """The same records written as files: the export carries the numbers, the headline prints them."""
    from bench.export import export_rows
    from bench.leaderboard import render
    from bench.store import load_records, record_path, write_record

    results = tmp_path / "results"
    for r in golden_records():
        r = {k: v for k, v in r.items() if k != "_file"}
        path = record_path(results, r["suite"], r["forget_set"]["name"], r["method"], r["config_hash"], r["seed"])
        path.parent.mkdir(parents=True, exist_ok=True)
        write_record(path, r, None)
    records = load_records(results)
    assert len(records) == 3 * 6 + 2
    exported = {row["method"]: row for row in export_rows(records)}
    alpha_ci = T_975_3 * math.sqrt(1.046875 / 3) / 2
    assert exported["alpha"]["avg_gap"] == pytest.approx(1.5625)
    assert exported["alpha"]["avg_gap_ci"] == pytest.approx(alpha_ci, rel=1e-6)
    assert exported["gamma"]["privacy_gap"] == pytest.approx(0.10)
    assert (exported["beta"]["place"], exported["beta"]["place_low"], exported["beta"]["place_high"]) == (2, 1, 2)
    assert exported["gamma"]["beats_original"] is False and exported["alpha"]["noise_floor"] == pytest.approx(8 / 6)

    board = render(records, "results")
    lines = [line for line in board.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = {}
    for line in lines[1:]:
        row = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        cells.setdefault(row.get("Method"), row)
    assert cells["alpha"]["Rank"] == "1 [1–2]" and cells["beta"]["Rank"] == "2 [1–2]"
    assert cells["gamma"]["Rank"] == "3 [3–4] ⊘" and cells["original (reference)"]["Rank"] == "4 [3–5]"
    assert cells["alpha"]["Avg. Gap ↓"] == "1.56 ± 0.59" and cells["retrain (reference)"]["Rank"] == "—"
    assert cells["alpha"]["Runs"] == "3 ok, 1 diverged"
    assert "Noise floor: two retrains of different seeds differ by an Avg. Gap of **1.33** (mean of 6 pairs" in board
