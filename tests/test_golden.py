"""Golden aggregation: a hand-built section (original, retrain and four methods over three seeds)
whose every headline number is worked out here by hand from the documented formulas, then compared
with what `bench.aggregate.section_rows` (and the leaderboard built on it) reports.

The formulas, as `bench.metrics`, `bench.aggregate` and `bench.statistics` document them:

* Avg. Gap of one seed = mean over the four headline metrics (forget, retain and test accuracy,
  simple-MIA accuracy; for class forgetting test accuracy on the remaining classes) of
  |method − same-seed retrain|, in points; the row's Avg. Gap is the mean of that over the seeds
  whose runs are `ok`, ± the half-width of the 95% t-interval over those seeds
  (t_{0.975, n−1} · s / √n, s the sample std).
* Privacy gap = mean over seeds of (strongest attack's AUC − same-seed retrain's AUC), signed;
  ± its sample std.
* Rank: the best mean Avg. Gap and every method not significantly worse than it (one-sided paired
  t-test over the seeds, Holm-corrected, 5%) share a rank; the rest are ranked the same way.
* Place: 1 = smallest mean Avg. Gap; [low, high] = the 95% percentile interval of the place over a
  paired bootstrap of the seeds.

Nothing below calls the project's statistics helpers for an expected value: every expectation is
written-out arithmetic (checked against numpy on the fixture's numbers), so a wrong formula (a gap
that is not absolute, a mean over the wrong axis, a z- instead of a t-interval, ranks without the
paired test) makes a test fail.
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


def test_avg_gap_is_the_mean_absolute_gap_to_the_same_seed_retrain_with_a_t_interval():
    rows = _rows(golden_records())
    # alpha: (1.50 + 2.00 + 0.75) / 3 = 1.41667; s = sqrt(((.0833)² + (.5833)² + (-.6667)²) / 2) = 0.62915
    #        half-width = 4.30265 · 0.62915 / √3 = 1.56290 (a z-interval would give 0.71194)
    alpha = rows["alpha"]
    assert alpha["avg_gap"] == pytest.approx(4.25 / 3)
    assert alpha["avg_gap_std"] == pytest.approx(math.sqrt(19 / 48), rel=1e-6)
    assert alpha["avg_gap_ci"] == pytest.approx(T_975_2 * math.sqrt(19 / 48) / math.sqrt(3), rel=1e-6)
    assert alpha["avg_gap_ci"] == pytest.approx(1.562902, rel=1e-5)
    # beta: (1.75 + 1.00 + 1.75) / 3 = 1.5; s = sqrt((.25² + .5² + .25²) / 2) = 0.43301; half-width 1.07566
    assert rows["beta"]["avg_gap"] == pytest.approx(1.5)
    assert rows["beta"]["avg_gap_ci"] == pytest.approx(1.075663, rel=1e-5)
    # gamma: (3.25 + 6.25 + 3.25) / 3 = 4.25, s = sqrt((1 + 4 + 1) / 2) = √3, half-width 4.30265 · √3 / √3
    assert rows["gamma"]["avg_gap"] == pytest.approx(4.25)
    assert rows["gamma"]["avg_gap_ci"] == pytest.approx(T_975_2)
    # delta: (5 + 8 + 5) / 3 = 6, s = √3 too
    assert rows["delta"]["avg_gap"] == pytest.approx(6.0)
    assert rows["delta"]["avg_gap_ci"] == pytest.approx(T_975_2)
    # original (a reference row, but it has its Avg. Gap): (5.25 + 5.5 + 5) / 3 = 5.25, s = 0.25
    assert rows["original (reference)"]["avg_gap"] == pytest.approx(5.25)
    assert rows["original (reference)"]["avg_gap_ci"] == pytest.approx(T_975_2 * 0.25 / math.sqrt(3))
    # retrain against itself: 0 on every seed (the diverged alpha's seed 3 has a retrain too: 4 seeds)
    assert rows["retrain (reference)"]["avg_gap"] == pytest.approx(0.0, abs=1e-12)
    assert rows["retrain (reference)"]["avg_gap_ci"] == pytest.approx(0.0, abs=1e-12)
    # every method, again with numpy on the fixture's numbers
    for method in ("alpha", "beta", "gamma", "delta"):
        per_seed = np.mean(np.abs(np.array([DIFFS[method][s] for s in SEEDS], float)), axis=1)
        assert rows[method]["avg_gap"] == pytest.approx(per_seed.mean())
        assert rows[method]["avg_gap_ci"] == pytest.approx(_t_half_width(per_seed))


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


def test_only_ok_runs_enter_the_means_and_every_run_is_counted():
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


def test_ranks_share_rank_one_unless_significantly_worse_and_places_have_bootstrap_intervals():
    from bench.aggregate import section_rows

    rows = section_rows(golden_records())
    # best Avg. Gap first: retrain 0, alpha 1.4167, beta 1.5, gamma 4.25, original 5.25, delta 6.0
    assert [r["method"] for r in rows] == [
        "retrain (reference)", "alpha", "beta", "gamma", "original (reference)", "delta"]
    rows = {row["method"]: row for row in rows}
    methods = ("alpha", "beta", "gamma", "delta")
    gaps = {m: np.array(GAPS[m]) for m in methods}

    # Step 1, best = alpha. One-sided paired t-tests against it, by hand: t = mean(d) / (s_d / √n), df 2.
    p = {}
    for m in ("beta", "gamma", "delta"):
        d = gaps[m] - gaps["alpha"]  # beta (.25, −1, 1); gamma (1.75, 4.25, 2.5); delta (3.5, 6, 4.25)
        p[m] = stats.t.sf(d.mean() / (np.std(d, ddof=1) / math.sqrt(3)), 2)
    assert p["beta"] == pytest.approx(0.44975, abs=1e-4)  # t = 0.0833 / 0.5833 = 0.1429
    assert p["gamma"] == pytest.approx(0.031023, abs=1e-5)  # t = 2.8333 / 0.7407 = 3.825
    assert p["delta"] == pytest.approx(0.012568, abs=1e-5)  # t = 4.5833 / 0.7407 = 6.188
    # Holm, smallest first: delta 3 · 0.01257 = 0.0377 < 0.05 (worse); gamma max(0.0377, 2 · 0.0310) =
    # 0.0620 and beta max(0.0620, 0.4497) = 0.4497 (not significantly worse): rank 1 is {alpha, beta,
    # gamma}, rank 2 {delta}. (Without Holm gamma would be worse, 0.031 < 0.05; with a two-sided test
    # delta would not, 3 · 0.0251 = 0.0754.)
    holm_delta = 3 * p["delta"]
    holm_gamma = max(holm_delta, 2 * p["gamma"])
    holm_beta = max(holm_gamma, p["beta"])
    assert holm_delta < 0.05 <= holm_gamma <= holm_beta
    assert p["gamma"] < 0.05 and 3 * 2 * p["delta"] >= 0.05
    assert {m: rows[m]["rank"] for m in methods} == {"alpha": 1, "beta": 1, "gamma": 1, "delta": 2}
    assert rows["original (reference)"]["rank"] is None and rows["retrain (reference)"]["rank"] is None
    assert "place" not in rows["original (reference)"] and "place" not in rows["retrain (reference)"]

    # Places by mean gap: alpha 1, beta 2, gamma 3, delta 4. The paired bootstrap draws 3 of the 3
    # seeds with replacement, the same seeds for every method: 27 equally likely draws.
    # beta beats alpha in a draw iff the drawn d = beta − alpha, (+.25, −1, +1), sums below 0: 10 of
    # 27 draws (seed 1 thrice; twice with seed 0 or 2; once with seed 0 twice), so each of the two is
    # place 1 in 37% or 63% of the resamples, far from the 2.5% tails: both intervals are [1, 2].
    # delta is gamma + 1.75 on every seed, so after gamma in every paired draw: [3, 3] and [4, 4]
    # (an unpaired bootstrap would put delta first in 68 of 729 pairs of draws, 9%: [3, 4] for both).
    draws = [list(s) for s in itertools.product(SEEDS, repeat=3)]
    assert sum(gaps["beta"][s].mean() < gaps["alpha"][s].mean() for s in draws) == 10
    assert all(max(gaps["alpha"][s].mean(), gaps["beta"][s].mean()) < gaps["gamma"][s].mean()
               < gaps["delta"][s].mean() for s in draws)
    assert sum(gaps["delta"][b].mean() <= gaps["gamma"][a].mean() for a in draws for b in draws) == 68
    places = {m: (rows[m]["place"], rows[m]["place_low"], rows[m]["place_high"]) for m in methods}
    assert places == {"alpha": (1, 1, 2), "beta": (2, 1, 2), "gamma": (3, 3, 3), "delta": (4, 4, 4)}


def test_privacy_gap_is_the_strongest_attacks_signed_auc_gap_to_the_same_seed_retrain():
    rows = _rows(golden_records())
    # LiRA (strength 3) heads the table, not simple (strength 1), though both are in every record
    assert {row["privacy_attack"] for row in rows.values()} == {"lira"}
    expected = {"alpha": (0.01, np.std([0.01, 0.03, -0.01], ddof=1)),  # (.01 + .03 − .01) / 3; |.| would be .0167
                "beta": (0.02, np.std([0.04, -0.01, 0.03], ddof=1)),   # (.04 − .01 + .03) / 3
                "gamma": (0.10, 0.02),                                  # (.10 + .12 + .08) / 3, s = .02
                "delta": (0.12, 0.02),                                  # (.12 + .14 + .10) / 3, s = .02
                "original (reference)": (0.20, 0.02)}
    for method, (mean, std) in expected.items():
        assert rows[method]["privacy_gap"] == pytest.approx(mean, abs=1e-12), method
        assert rows[method]["privacy_gap_std"] == pytest.approx(std, rel=1e-9), method
        assert rows[method]["attacks"]["lira"]["auc_gap"] == pytest.approx(mean, abs=1e-12), method
    assert rows["retrain (reference)"]["privacy_gap"] == pytest.approx(0.0, abs=1e-12)
    # the detail table's simple-attack AUC gap: simple's AUC is 0.5 + accuracy / 10 in the fixture
    simple = np.array([DIFFS["alpha"][s][3] for s in SEEDS]) / 100 / 10
    assert rows["alpha"]["attacks"]["simple"]["auc_gap"] == pytest.approx(simple.mean(), abs=1e-12)


def test_class_forgetting_takes_the_remaining_classes_test_accuracy():
    rows = _rows(golden_records(class_forgetting=True))
    for method in ("alpha", "beta", "gamma", "delta"):
        per_seed = np.array(GAPS[method])
        assert rows[method]["avg_gap"] == pytest.approx(per_seed.mean()), method
        assert rows[method]["avg_gap_ci"] == pytest.approx(_t_half_width(per_seed)), method
    assert {m: rows[m]["rank"] for m in ("alpha", "beta", "gamma", "delta")} == {
        "alpha": 1, "beta": 1, "gamma": 1, "delta": 2}


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
    alpha_ci = T_975_2 * math.sqrt(19 / 48) / math.sqrt(3)
    assert exported["alpha"]["avg_gap"] == pytest.approx(4.25 / 3)
    assert exported["alpha"]["avg_gap_ci"] == pytest.approx(alpha_ci, rel=1e-6)
    assert exported["gamma"]["privacy_gap"] == pytest.approx(0.10)
    assert exported["beta"]["rank"] == 1 and exported["gamma"]["rank"] == 1 and exported["delta"]["rank"] == 2
    assert (exported["beta"]["place"], exported["beta"]["place_low"], exported["beta"]["place_high"]) == (2, 1, 2)

    board = render(records, "results")
    lines = [line for line in board.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = {}
    for line in lines[1:]:
        row = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        cells.setdefault(row.get("Method"), row)
    assert cells["alpha"]["Rank"] == "1" and cells["beta"]["Rank"] == "1" and cells["gamma"]["Rank"] == "1"
    assert cells["delta"]["Rank"] == "2"
    assert cells["alpha"]["Avg. Gap ↓"] == "1.42 ± 1.56"
    assert cells["beta"]["Avg. Gap ↓"] == "1.50 ± 1.08"
    assert cells["gamma"]["Avg. Gap ↓"] == "4.25 ± 4.30"
    assert cells["delta"]["Avg. Gap ↓"] == "6.00 ± 4.30"
    assert cells["gamma"]["LiRA AUC gap (= retrain)"] == "+0.100 ± 0.020"
    assert cells["alpha"]["LiRA AUC gap (= retrain)"] == "+0.010 ± 0.020"
    assert cells["original (reference)"]["Rank"] == "—"
