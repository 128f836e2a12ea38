"""Attacks against known answers: chance, perfect separation, exact statistics, determinism."""

import re
from pathlib import Path

import numpy as np
from hypothesis import given, settings, strategies as st
import pytest
import torch
from scipy.stats import norm
from sklearn.metrics import roc_curve

from bench.spec import AttackSettings
from bench.evaluate import logit_confidence
from bench.attacks import AttackInput, attack_registry, roc_metrics
from bench.attacks.forget_quality import epsilons, forget_quality
from bench.attacks.lira import lira_scores, rmia_scores


def test_identical_distributions_give_chance():
    rng = np.random.default_rng(0)
    m = roc_metrics(rng.normal(size=200_000), rng.normal(size=200_000))
    assert abs(m["auc"] - 0.5) < 0.005
    assert abs(m["tpr_at_1pct_fpr"] - 0.01) < 0.002
    assert abs(m["tpr_at_0.1pct_fpr"] - 0.001) < 0.0005
    assert abs(m["balanced_accuracy"] - 0.5) < 0.01


def test_separated_distributions_are_found():
    rng = np.random.default_rng(0)
    m = roc_metrics(rng.normal(10, 1, 5000), rng.normal(0, 1, 5000))
    assert m["auc"] > 0.999 and m["tpr_at_1pct_fpr"] > 0.999 and m["tpr_at_0.1pct_fpr"] > 0.99
    assert m["balanced_accuracy"] > 0.999


def test_tpr_at_fpr_is_interpolated_on_sklearns_roc_curve():
    members = np.array([0.9, 0.8, 0.7, 0.3, 0.2])
    nonmembers = np.array([0.6, 0.5, 0.4, 0.1, 0.05, 0.01, 0.85])
    fpr, tpr, _ = roc_curve(np.r_[np.ones(5), np.zeros(7)], np.r_[members, nonmembers])
    m = roc_metrics(members, nonmembers)
    assert m["tpr_at_1pct_fpr"] == pytest.approx(np.interp(0.01, fpr, tpr))
    # by hand: the first non-member (0.85) comes after one member (0.9): ROC (0, 0.2) -> (1/7, 0.2)
    assert m["tpr_at_1pct_fpr"] == pytest.approx(0.2)


@pytest.mark.parametrize("logits, y, expected", [
    ([40.0, 0.0, 0.0], 0, 40.0 - np.log(2)),  # p_y = 1 - 4e-18: log(1 - p) underflows directly
    ([-40.0, 0.0, 0.0], 0, -40.0 - np.log(2)),  # p_y ~ 2e-18
    ([3.0, 1.0], 0, 2.0),  # two classes: phi is the logit difference
    ([0.0, 745.0, 0.0], 0, -745.0),
])
def test_lira_statistic_matches_exact_float64(logits, y, expected):
    conf, logp_y = logit_confidence(torch.tensor([logits]), torch.tensor([y]))
    assert conf.dtype == torch.float64
    assert conf.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # and the direct formula log p - log(1 - p) agrees wherever float64 can still represent 1 - p
    p = np.exp(logp_y.item())
    if 1e-300 < p < 1 - 1e-9:
        assert conf.item() == pytest.approx(np.log(p) - np.log1p(-p), rel=1e-9)


def test_lira_online_fixed_matches_the_formula_by_hand():
    ref = np.array([[[1.0, 1.2]], [[3.0, 2.8]], [[1.4, 1.0]], [[2.6, 3.2]]])  # (K=4, n=1, 2 queries)
    keep = np.array([[False], [True], [False], [True]])
    target = np.array([[2.5, 2.9]])
    ins, outs = ref[keep[:, 0], 0], ref[~keep[:, 0], 0]
    # Carlini et al.'s fixed variance: ONE sigma, the std of all IN statistics, for both Gaussians
    expected = np.mean(norm.logpdf(target[0], np.median(ins, 0), np.std(ins))
                       - norm.logpdf(target[0], np.median(outs, 0), np.std(ins)))
    assert lira_scores(target, ref, keep, online=True, fixed_variance=True)[0] == pytest.approx(expected)
    offline = np.mean(norm.logcdf(target[0], np.median(outs, 0), np.std(outs)))
    assert lira_scores(target, ref, keep, online=False, fixed_variance=True)[0] == pytest.approx(offline)


def _synthetic_references(k=16, n=400, shift=2.0, seed=0):
    from bench.references import balanced_keep

    rng = np.random.default_rng(seed)
    keep = balanced_keep(k, n, seed)
    base = rng.normal(0, 1, n)
    ref = base[None, :, None] + shift * keep[..., None] + rng.normal(0, 0.3, (k, n, 2))
    members = rng.random(n) < 0.5
    target = base[:, None] + shift * members[:, None] + rng.normal(0, 0.3, (n, 2))
    return target, ref, keep, members


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("fixed", [True, False])
def test_lira_separates_members_when_membership_shifts_the_statistic(online, fixed):
    target, ref, keep, members = _synthetic_references()
    s = lira_scores(target, ref, keep, online=online, fixed_variance=fixed)
    assert roc_metrics(s[members], s[~members])["auc"] > 0.9
    target, ref, keep, members = _synthetic_references(shift=0.0)
    s = lira_scores(target, ref, keep, online=online, fixed_variance=fixed)
    assert abs(roc_metrics(s[members], s[~members])["auc"] - 0.5) < 0.1


def test_rmia_scores_are_fractions_and_rank_members_first():
    rng = np.random.default_rng(0)
    p_pop_target, p_pop_refs = rng.uniform(0.2, 0.8, 500), rng.uniform(0.2, 0.8, (2, 500))
    p_refs = rng.uniform(0.2, 0.6, (2, 300))
    member_p, nonmember_p = p_refs.mean(0) * 1.6, p_refs.mean(0)
    s_in = rmia_scores(np.minimum(member_p, 1), p_refs.mean(0), p_pop_target, p_pop_refs, 0.5, 1.0)
    s_out = rmia_scores(nonmember_p, p_refs.mean(0), p_pop_target, p_pop_refs, 0.5, 1.0)
    assert s_in.min() >= 0 and s_in.max() <= 1
    assert roc_metrics(s_in, s_out)["auc"] > 0.8


def test_rmia_averages_only_reference_models_that_did_not_train_on_the_example():
    """Example 0 is OUT for references 1 and 3 only; asked for 3 OUT models it averages those two
    (taking the IN reference 0 as a third "OUT" model was the fault), and says it had 2."""
    from bench.attacks.lira import _out_mean

    keep = np.array([[True, False], [False, False], [True, False], [False, True]])  # (K=4, n=2)
    prob = np.array([[0.9, 0.1], [0.2, 0.3], [0.8, 0.5], [0.4, 0.7]])
    mean, fewest = _out_mean(prob, keep, 3)
    assert mean == pytest.approx([(0.2 + 0.4) / 2, (0.1 + 0.3 + 0.5) / 3]) and fewest == 2
    with pytest.raises(ValueError, match="IN for every reference"):
        _out_mean(prob, np.ones_like(keep), 1)


def test_rmia_references_beyond_the_out_models_each_example_has_are_refused_before_training(cli, tiny_suite):
    from conftest import TINY_SUITE

    suite = tiny_suite(TINY_SUITE + "attacks: [simple, rmia]\nattack_settings: {references: 4, rmia_references: 3}\n")
    code, _, err = cli("run", suite, "--quiet", "--results", "r")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(r"rmia_references: 3; each example is OUT for [12] of the 4 reference models here .*use 1\.\.[12]",
                     err), err
    assert not Path("r").exists() and not list(Path("cache").rglob("*.pt"))


@pytest.mark.slow
def test_forget_quality_of_retraining_is_near_the_ceiling_and_of_the_original_far_below():
    rng = np.random.default_rng(0)
    n_models, examples = 16, 300
    retrained = rng.normal(0, 1, (n_models, examples))
    ceiling = forget_quality(rng.normal(0, 1, (n_models, examples)), retrained, (1, 1), (1, 1))  # a perfect unlearner
    like_retrain = forget_quality(rng.normal(0, 1, (n_models, examples)), retrained, (1, 1), (1, 1))
    original = forget_quality(rng.normal(4, 1, (n_models, examples)), retrained, (1, 1), (1, 1))
    assert abs(like_retrain["forget_quality"] - ceiling["forget_quality"]) < 0.05
    assert original["forget_quality"] < 0.1 * ceiling["forget_quality"]
    # utility ratios scale the score
    scaled = forget_quality(rng.normal(0, 1, (n_models, examples)), retrained, (0.5, 1.0), (1, 1))
    assert scaled["forget_quality"] < 0.6 * ceiling["forget_quality"]


def test_epsilon_rules_by_hand():
    # perfectly separated samples: the cap (50); identical samples: no evidence (0)
    assert epsilons(np.array([[5.0], [6.0], [7.0]]), np.array([[0.0], [1.0], [2.0]]))[0] == 50.0
    assert epsilons(np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [2.0], [3.0]]))[0] == 0.0


def _full_grid_rates(pos, neg):
    """The official single-threshold rates: every point of the 100-per-unit grid."""
    lo, hi = min(pos.min(), neg.min()), max(pos.max(), neg.max())
    t = np.linspace(lo, hi, int(np.ceil((hi - lo) * 100)))
    tpr, fpr = (pos[:, None] >= t).mean(0), (neg[:, None] >= t).mean(0)
    return {tuple(r) for r in np.stack([tpr, 1 - tpr, fpr, 1 - fpr], 1)}


@pytest.mark.parametrize("spread", [0.3, 4.0, 60.0])
def test_single_threshold_rates_are_the_whole_grids_set_of_rates(spread):
    from bench.attacks.forget_quality import _single_threshold_rates

    rng = np.random.default_rng(int(spread * 10))
    for _ in range(20):
        pos, neg = rng.normal(0.5 * spread, spread, 16), rng.normal(0, spread, 16)
        lo = min(pos.min(), neg.min())
        pos[:3] = lo + np.array([1, 2, 3]) * 0.01  # values on or next to grid points, and ties
        neg[:2] = pos[:2]
        assert {tuple(r) for r in np.stack(_single_threshold_rates(pos, neg), 1)} == _full_grid_rates(pos, neg)


def test_forget_quality_of_a_collapsed_models_extreme_statistics_fits_in_memory():
    """A collapsed model's LiRA statistics reached 1e7 and more: the official 100-per-unit grid
    (over 1e9 points here) exhausted memory when the board was drawn; separated samples must
    still give the cap and overlapping ones a finite epsilon."""
    rng = np.random.default_rng(0)
    unlearned, retrained = rng.normal(-1.2e7, 2e6, (32, 3)), rng.normal(1e7, 2e6, (32, 3))
    assert list(epsilons(unlearned, retrained)) == [50.0] * 3
    both = rng.normal(0, 3e7, (2, 32, 2))
    assert all(0 <= e <= 50 for e in epsilons(both[0], both[1]))


def _outputs(rng, shift):
    split = lambda n, s: {"loss": rng.exponential(1.0, n).astype(np.float32) / (1 + s),  # noqa: E731
                          "conf": rng.normal(s, 1, n).astype(np.float32)}
    return {"forget": split(300, shift), "test": split(600, 0), "val": split(600, 0), "retain": split(900, shift)}


@pytest.mark.parametrize("name", ["simple", "loss_threshold", "mia_efficacy"])
def test_population_attacks_are_deterministic_and_see_a_shift(name):
    attack = attack_registry.get(name).fn
    outputs = _outputs(np.random.default_rng(0), shift=3.0)
    a = attack(AttackInput(outputs, AttackSettings()))
    b = attack(AttackInput(outputs, AttackSettings()))
    assert a.metrics == b.metrics
    assert a.metrics["auc"] > 0.7
    for key in ("balanced_accuracy", "auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"):
        assert 0 <= a.metrics[key] <= 1


def test_a_failing_attack_is_recorded_and_the_others_still_run():
    from bench.attacks import run_attacks

    @attack_registry.register("always_fails", label="Always fails", strength=0)
    def always_fails(a):
        """Raises, to test isolation."""
        raise RuntimeError("no luck")

    try:
        outputs = _outputs(np.random.default_rng(0), shift=1.0)
        results = run_attacks(["always_fails", "loss_threshold"], AttackInput(outputs, AttackSettings()))
    finally:
        attack_registry.unregister("always_fails")
    assert results["always_fails"].metrics == {"error": "RuntimeError: no luck"}
    assert "auc" in results["loss_threshold"].metrics


# ---- the fixes of issue 7, each against a known answer ----------------------------------


def test_forget_quality_is_oriented_per_example_by_the_medians():
    """A method whose statistics sit BELOW retrain's is as distinguishable as one above: the
    official metric (N = 64, 1.5 sigma shift) gives epsilon ~3.26 either way; the old rule
    "statistic >= t means unlearned" gave 0 (full points) for the shift below."""
    rng = np.random.default_rng(0)
    retrained = rng.normal(0, 1, (64, 20))
    below, above = epsilons(rng.normal(-1.5, 1, (64, 20)), retrained), epsilons(rng.normal(1.5, 1, (64, 20)), retrained)
    assert 2.8 < below.mean() < 3.7 and 2.8 < above.mean() < 3.7
    assert abs(below.mean() - above.mean()) < 0.3


def test_forget_quality_buckets_depend_on_n_and_the_cap_costs_all_points():
    from bench.attacks.forget_quality import EPSILON_CAP, points

    # N = 3: buckets up to ceil(log 2) = 1 -> [0, .5) worth 1, [.5, 1) worth 1/2, beyond: 0
    assert list(points(np.array([0.1, 0.7, 1.2, EPSILON_CAP]), 3)) == [1.0, 0.5, 0.0, 0.0]
    # N = 64: ceil(log 63) = 5 -> 10 buckets
    assert points(np.array([4.6]), 64)[0] == 0.5**9 and points(np.array([5.1]), 64)[0] == 0.0
    # a sample with under 1% of the other's range is capped (epsilon 50)
    peaky = np.array([[1.0], [1.001], [1.002]])
    assert epsilons(peaky, np.array([[0.0], [2.0], [4.0]]))[0] == EPSILON_CAP


def test_forget_quality_double_threshold_catches_an_interval_that_one_threshold_cannot():
    from bench.attacks.forget_quality import example_epsilon

    narrow = np.array([-0.1, 0.0, 0.1, 0.05, -0.05])  # peaky, inside the wide one's range
    wide = np.array([-3.0, -2.5, 2.5, 3.0, 2.8])
    assert example_epsilon(narrow, wide) == 50.0  # an interval separates them perfectly


def test_forget_quality_prints_n_and_its_null_ceiling():
    rng = np.random.default_rng(0)
    from bench.attacks.forget_quality import null_ceiling

    retrained = rng.normal(0, 1, (3, 200))
    fq, ceiling = forget_quality(rng.normal(0, 1, (3, 200)), retrained, (1, 1), (1, 1)), null_ceiling(retrained)
    assert fq["n_models"] == 3 and 0.2 < ceiling < 0.8
    assert abs(fq["f"] - ceiling) < 0.15  # identical distributions score near the null
    assert 0 < fq["standard_error"] < 0.05  # 200 examples' points, each in [0, 1]


def test_lira_fixed_variance_of_identical_in_out_distributions_is_chance():
    """One shared sigma: identical IN/OUT reference distributions give AUC 0.5 (separate global
    sigmas pushed it well below chance: on digits retrain 0.358)."""
    from bench.references import balanced_keep

    rng = np.random.default_rng(1)
    k, n = 8, 4000
    keep = balanced_keep(k, n, 1)
    base = rng.normal(0, 2, n)
    ref = base[None, :, None] + rng.normal(0, 1, (k, n, 2)) * np.where(keep, 1.0, 0.3)[..., None]
    members = rng.random(n) < 0.5
    target = base[:, None] + rng.normal(0, 1, (n, 2))  # the same distribution, member or not
    s = lira_scores(target, ref, keep, online=True, fixed_variance=True)
    assert abs(roc_metrics(s[members], s[~members])["auc"] - 0.5) < 0.03


def test_references_train_on_as_many_examples_as_the_target():
    from bench.references import balanced_keep, reference_count

    n_in = reference_count(8, target_size=20000, pool_size=40000)
    assert n_in == 4
    n_in = reference_count(8, target_size=898, pool_size=1347)  # digits: no unused images
    keep = balanced_keep(8, 1347, 0, n_in)
    assert (keep.sum(0) == n_in).all() and abs(keep.sum(1).mean() - 898) < 898 * 0.1


def test_simple_mia_draws_its_subsample_and_splits_from_the_run_seed():
    rng = np.random.default_rng(0)
    outputs = {"forget": {"loss": rng.exponential(1.0, 200)}, "test": {"loss": rng.exponential(1.0, 2000)}}
    simple = attack_registry.get("simple").fn
    runs = [simple(AttackInput(outputs, AttackSettings(), seed=s)).metrics["accuracy"] for s in range(6)]
    assert len(set(runs)) > 1  # the seeds' spread now includes the subsample's variance
    assert simple(AttackInput(outputs, AttackSettings(), seed=3)).metrics == \
        simple(AttackInput(outputs, AttackSettings(), seed=3)).metrics


def test_class_forgetting_compares_with_held_out_examples_of_the_forgotten_class():
    """Members: class 0 (trained). Non-members: test images of class 0 only; comparing with the
    whole test split measured class identity (retrain AUC 0.000)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 3000)
    # a retrained model: class 0 has high loss wherever it is, other classes low
    loss = lambda lab: np.where(lab == 0, 5.0, 0.1) + rng.exponential(0.1, len(lab))  # noqa: E731
    forget = {"loss": loss(np.zeros(300, int)), "label": np.zeros(300, int)}
    test = {"loss": loss(labels), "label": labels}
    outputs = {"forget": forget, "test": test, "val": test, "retain": test}
    a = AttackInput(outputs, AttackSettings(), seed=0, forget_label=0)
    assert (a.nonmembers()["label"] == 0).all() and len(a.nonmembers()["label"]) == (labels == 0).sum()
    auc = attack_registry.get("loss_threshold").fn(a).metrics["auc"]
    assert abs(auc - 0.5) < 0.1
    unfiltered = attack_registry.get("loss_threshold").fn(AttackInput(outputs, AttackSettings()))
    assert unfiltered.metrics["auc"] < 0.1


def test_confidence_threshold_is_gone_and_every_attack_is_listed(cli):
    assert "confidence_threshold" not in attack_registry
    code, out, _ = cli("list", "attacks")
    assert code == 0
    listed = {line.split()[0] for line in out.splitlines()}
    assert listed == {"simple", "loss_threshold", "mia_efficacy", "lira", "rmia", "ulira"}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=40), st.lists(st.integers(-3, 3), min_size=1, max_size=40),
       st.sampled_from([1.0, 0.5, 1e-3]))
def test_roc_curve_and_auc_are_sklearns_point_for_point(members, nonmembers, scale):
    """The harness's ROC (kept for speed) against sklearn's, on scores with many ties."""
    from sklearn.metrics import roc_auc_score, roc_curve as sk_roc_curve

    from bench.attacks.base import roc_curve, roc_metrics

    m, n = np.array(members) * scale, np.array(nonmembers) * scale
    y, s = np.r_[np.ones(len(m)), np.zeros(len(n))], np.r_[m, n]
    fpr, tpr, _ = sk_roc_curve(y, s)
    ours = roc_curve(y, s)
    assert np.array_equal(ours[0], fpr) and np.array_equal(ours[1], tpr)
    assert roc_metrics(m, n)["auc"] == roc_auc_score(y, s)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_simple_mia_scores_are_sklearns_cross_validate(seed):
    """The unrolled cross-validation gives the kit's `cross_validate` numbers exactly."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedShuffleSplit, cross_validate

    from bench.attacks.base import balanced_sample
    from bench.attacks.population import simple_mia_scores

    rng = np.random.default_rng(seed)
    members, nonmembers = rng.exponential(1.0, 90), np.round(rng.exponential(1.3, 300), 2)
    ours = simple_mia_scores(members, nonmembers, seed=seed)
    a, b = balanced_sample(members, nonmembers, seed)
    x, y = np.r_[a, b].reshape(-1, 1), np.r_[np.ones(len(a)), np.zeros(len(b))].astype(int)
    kit = cross_validate(LogisticRegression(), x, y, cv=StratifiedShuffleSplit(n_splits=10, random_state=seed),
                         scoring=("accuracy", "roc_auc"))
    assert ours["accuracy"] == np.mean(kit["test_accuracy"]) and ours["auc"] == np.mean(kit["test_roc_auc"])


def test_every_attack_declares_its_table_label_and_strength():
    """The leaderboard reads these (headline attack, column names); nothing is hard-coded there."""
    from bench.attacks import attack_registry

    for entry in attack_registry.entries():
        assert isinstance(entry.info.label, str) and entry.info.label, entry.name
        assert entry.info.strength in (0, 1, 2, 3, 4), entry.name


def test_rmia_keeps_the_papers_a_when_reference_0_cannot_stand_in_for_a_target():
    """Each example OUT for one of 4 references: reference 0's usable examples are all its members,
    so no AUC can tune `a` (it used to divide by zero); the paper's CIFAR-10 value is used."""
    import types
    import warnings

    from bench.attacks.lira import PAPER_A, _tune_a
    from bench.references import balanced_keep

    rng = np.random.default_rng(0)
    keep = balanced_keep(4, 300, seed=0, n_in=3)
    refs = types.SimpleNamespace(keep=keep, k=4, loss=rng.uniform(0, 2, (4, 300)).astype(np.float32),
                                 population_loss=rng.uniform(0, 2, (4, 50)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _tune_a(refs, 1, 1.0, 0) == PAPER_A
    refs.keep = balanced_keep(4, 300, seed=0, n_in=2)  # two OUT each: tuned as before
    assert 0.0 <= _tune_a(refs, 1, 1.0, 0) <= 1.0
