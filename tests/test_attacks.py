"""Attacks against known answers: chance, perfect separation, exact statistics, determinism."""

import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn.metrics import roc_curve

from bench.config import AttackSettings
from bench.evaluate import logit_confidence
from bench.forget_quality import epsilons, forget_quality
from bench.lira import lira_scores, rmia_scores
from bench.mia import AttackInput, attack_registry, roc_metrics


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
    expected = np.mean(norm.logpdf(target[0], np.median(ins, 0), np.std(ins))
                       - norm.logpdf(target[0], np.median(outs, 0), np.std(outs)))
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
    s_in = rmia_scores(np.minimum(member_p, 1), p_refs, p_pop_target, p_pop_refs, 0.5, 1.0)
    s_out = rmia_scores(nonmember_p, p_refs, p_pop_target, p_pop_refs, 0.5, 1.0)
    assert s_in.min() >= 0 and s_in.max() <= 1
    assert roc_metrics(s_in, s_out)["auc"] > 0.8


def test_forget_quality_of_retraining_is_near_the_ceiling_and_of_the_original_far_below():
    rng = np.random.default_rng(0)
    n_models, examples = 16, 300
    retrained = rng.normal(0, 1, (n_models, examples))
    ceiling = forget_quality(rng.normal(0, 1, (n_models, examples)), retrained, (1, 1), (1, 1))
    like_retrain = forget_quality(rng.normal(0, 1, (n_models, examples)), retrained, (1, 1), (1, 1))
    original = forget_quality(rng.normal(4, 1, (n_models, examples)), retrained, (1, 1), (1, 1))
    assert abs(like_retrain["forget_quality"] - ceiling["forget_quality"]) < 0.05
    assert original["forget_quality"] < 0.1 * ceiling["forget_quality"]
    # utility ratios scale the score
    scaled = forget_quality(rng.normal(0, 1, (n_models, examples)), retrained, (0.5, 1.0), (1, 1))
    assert scaled["forget_quality"] < 0.6 * ceiling["forget_quality"]


def test_epsilon_rules_by_hand():
    # perfectly separated samples: infinite epsilon; identical samples: no evidence (0)
    assert np.isinf(epsilons(np.array([[5.0], [6.0]]), np.array([[0.0], [1.0]]))[0])
    assert epsilons(np.array([[1.0], [2.0]]), np.array([[1.0], [2.0]]))[0] == 0.0


def _outputs(rng, shift):
    split = lambda n, s: {"loss": rng.exponential(1.0, n).astype(np.float32) / (1 + s),  # noqa: E731
                          "conf": rng.normal(s, 1, n).astype(np.float32)}
    return {"forget": split(300, shift), "test": split(600, 0), "val": split(600, 0), "retain": split(900, shift)}


@pytest.mark.parametrize("name", ["simple", "loss_threshold", "confidence_threshold", "mia_efficacy"])
def test_population_attacks_are_deterministic_and_see_a_shift(name):
    attack = attack_registry.get(name).fn
    outputs = _outputs(np.random.default_rng(0), shift=3.0)
    a = attack(AttackInput(outputs, None, AttackSettings()))
    b = attack(AttackInput(outputs, None, AttackSettings()))
    assert a.metrics == b.metrics
    assert a.metrics["auc"] > 0.7
    for key in ("balanced_accuracy", "auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"):
        assert 0 <= a.metrics[key] <= 1


def test_a_failing_attack_is_recorded_and_the_others_still_run():
    from bench.mia import run_attacks

    @attack_registry.register("always_fails")
    def always_fails(a):
        """Raises, to test isolation."""
        raise RuntimeError("no luck")

    try:
        outputs = _outputs(np.random.default_rng(0), shift=1.0)
        results = run_attacks(["always_fails", "loss_threshold"], AttackInput(outputs, None, AttackSettings()))
    finally:
        attack_registry.unregister("always_fails")
    assert results["always_fails"].metrics == {"error": "RuntimeError: no luck"}
    assert "auc" in results["loss_threshold"].metrics
