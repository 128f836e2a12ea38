"""Per-example attacks with reference models: LiRA (Carlini et al. 2022) and RMIA
(Zarifzadeh et al. 2024). Both read the target's saved outputs and the suite's shared
reference-model outputs (`AttackInput.references`, built by bench/references.py); neither
runs a model.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import norm

from bench.attacks.base import AttackInput, AttackResult, register_attack, roc_metrics, scored
from bench.metrics import Resolution

LIRA_VARIANTS = ("online_fixed", "online", "offline_fixed", "offline")


def _reference_view(a: AttackInput, out: dict):
    """(target phi (n, 2), reference phi (K, n, 2), IN mask (K, n)) for the examples of `out`."""
    refs = a.references
    rows = refs.rows(out["key"])
    target = np.stack([out["conf"], out["conf_mirror"]], axis=-1).astype(np.float64)
    ref = np.stack([refs.conf[:, rows], refs.conf_mirror[:, rows]], axis=-1).astype(np.float64)
    return target, ref, refs.keep[:, rows]


def lira_scores(target, ref, in_mask, online: bool, fixed_variance: bool, out_mask=None) -> np.ndarray:
    """LiRA membership scores (higher = member), averaged over the image and mirror queries.

    Follows tensorflow/privacy research/mi_lira_2021/plot.py, `generate_ours` (online) and
    `generate_ours_offline`: per example, the mean of the IN and OUT Gaussians is the median
    of the reference statistics; the standard deviation is per example, or with
    `fixed_variance` ONE global value shared by both Gaussians, the std of all IN statistics
    (`std_in = std_out = np.std(dat_in)`; offline, the std of all OUT statistics). Online:
    log N(phi; in) - log N(phi; out). Offline (OUT only) is the paper's one-sided test,
    log Pr[Z <= phi] with Z ~ N(out) (deviation: the code scores the two-sided density).
    `out_mask` defaults to "not IN"; U-LiRA passes its own, since a reference can be neither.
    Where an example has no IN (or OUT) reference, its mean falls back to the median over all
    examples (deviation: the code truncates every example to the smallest IN count instead).
    """
    out_mask = ~in_mask if out_mask is None else out_mask

    def gaussian(mask):
        vals = np.where(mask[..., None], ref, np.nan)
        with warnings.catch_warnings():  # examples with no IN (or OUT) reference: see above
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmedian(vals, axis=0), np.nanstd(vals, axis=0)
            overall = np.nanstd(vals)
        mean = np.where(np.isnan(mean), np.nanmedian(vals), mean)
        return mean, (overall if fixed_variance else np.where(np.isnan(std), overall, std))

    mean_out, std_out = gaussian(out_mask)
    if online:
        mean_in, std_in = gaussian(in_mask)
        if fixed_variance:
            std_out = std_in  # one sigma for both Gaussians, from the IN statistics
        std_in, std_out = np.maximum(std_in, 1e-30), np.maximum(std_out, 1e-30)
        score = norm.logpdf(target, mean_in, std_in) - norm.logpdf(target, mean_out, std_out)
    else:
        score = norm.logcdf(target, mean_out, np.maximum(std_out, 1e-30))
    return score.mean(axis=-1)


@register_attack("lira", needs_references=True, label="LiRA", strength=3)
def lira(a: AttackInput) -> AttackResult:
    """LiRA (Carlini et al. 2022): per-example Gaussian likelihood ratio from K reference models."""
    views = {"forget": _reference_view(a, a.members()), "test": _reference_view(a, a.nonmembers())}
    variants, scores = {}, {}
    for variant in LIRA_VARIANTS:
        online, fixed = variant.startswith("online"), variant.endswith("fixed")
        s = {split: lira_scores(*views[split], online=online, fixed_variance=fixed) for split in views}
        variants[variant], scores[variant] = roc_metrics(s["forget"], s["test"]), s
    main = a.settings.lira_variant
    result = scored(scores[main]["forget"], scores[main]["test"])
    return AttackResult({**result.metrics, "variant": main, "variants": variants, **_cost(a, a.references.k)},
                        result.member_scores, result.nonmember_scores)


def _cost(a: AttackInput, n_models: int) -> dict:
    return {"n_references": n_models, "references_train_s": round(a.references.cached_s * n_models / a.references.k, 3)}


def _out_mean(prob: np.ndarray, keep: np.ndarray, m: int) -> tuple[np.ndarray, int]:
    """(the mean probability over up to m reference models that did NOT train on each example,
    the first in reference order, shape (n,); the fewest such models any example had). Only
    genuine OUT models: an example OUT for fewer than m uses those it has (ml_privacy_meter's
    offline RMIA averages OUT models only). prob, keep: (K, n). Raises ValueError when an
    example is IN for every reference."""
    order = np.argsort(keep, axis=0, kind="stable")[:m]  # OUT first, in reference order
    out = ~np.take_along_axis(keep, order, axis=0)
    count = out.sum(axis=0)
    if count.size and count.min() == 0:
        raise ValueError("an example is IN for every reference model: RMIA needs at least one OUT model")
    return np.where(out, np.take_along_axis(prob, order, axis=0), 0.0).sum(axis=0) / count, int(count.min(initial=m))


def rmia_scores(p_target, p_out_mean, p_pop_target, p_pop_refs, a_param: float, gamma: float) -> np.ndarray:
    """RMIA offline: share of population z with [P(x|θ)/P(x)] / [P(z|θ)/P(z)] > gamma.

    P(x) = ((1 + a) * mean of OUT reference probabilities (`p_out_mean`, (n,)) + (1 - a)) / 2
    approximates the average over IN and OUT models from OUT models alone.
    """
    p_x = ((1 + a_param) * p_out_mean + (1 - a_param)) / 2
    p_z = ((1 + a_param) * p_pop_refs.mean(0) + (1 - a_param)) / 2
    ratio_x, ratio_z = p_target / p_x, np.sort(p_pop_target / p_z)
    # count z with ratio_x / ratio_z > gamma, i.e. ratio_z < ratio_x / gamma
    return np.searchsorted(ratio_z, ratio_x / gamma, side="left") / len(ratio_z)


PAPER_A = 0.3  # the RMIA paper's offline_a for CIFAR-10 (research/2024_rmia, rmia_offline_1_ref_models.yaml)


def _tune_a(refs, m: int, gamma: float, seed: int) -> float:
    """Pick a in [0, 1] by the AUC of RMIA against reference 0, with the others as references
    (the paper's fixed value where reference 0 has no members or no non-members to tell apart)."""
    rng = np.random.default_rng(seed)
    others = np.arange(1, refs.k)
    usable = np.flatnonzero((~refs.keep[others]).any(axis=0))  # OUT for one of the others, at least
    cols = rng.choice(usable, min(2000, len(usable)), replace=False)
    prob = np.exp(-refs.loss[:, cols].astype(np.float64))
    p_refs, _ = _out_mean(prob[others], refs.keep[others][:, cols], m)
    pop_target = np.exp(-refs.population_loss[0].astype(np.float64))
    pop_refs = np.exp(-refs.population_loss[others[:m]].astype(np.float64))
    is_in = refs.keep[0, cols]
    if is_in.all() or not is_in.any():  # e.g. each example OUT for one reference only: no stand-in members and non-members
        return PAPER_A
    best = (-1.0, 0.0)
    for a_param in np.linspace(0, 1, 11):
        s = rmia_scores(prob[0], p_refs, pop_target, pop_refs, a_param, gamma)
        best = max(best, (roc_metrics(s[is_in], s[~is_in])["auc"], float(a_param)))
    return best[1]


@register_attack("rmia", needs_references=True, label="RMIA", strength=2,
                 resolution={"a": Resolution("grid", step=0.1)})
def rmia(a: AttackInput) -> AttackResult:
    """RMIA (Zarifzadeh et al. 2024), offline, with m reference models and population data.

    Each example's P(x) averages up to m reference models that did not train on it (genuine OUT
    models only; `min_out_references` records the fewest any attacked example had, which the
    suite's plan keeps at m: `bench.workspace`), as privacytrustlab/ml_privacy_meter does
    (attacks.py `get_rmia_out_signals`, lines 7-39; the paper's code, research/2024_rmia
    main.py lines 391-400). Deviations, both from sharing the suite's LiRA references rather
    than training complementary pairs: the OUT models are the first m in reference order, and `a`
    is tuned on a grid of 0.1 (as they do) with reference 0 as the stand-in target attacked by
    the others, where ml_privacy_meter attacks the target's paired model with one reference
    (`tune_offline_a`, lines 42-88) and the paper's code fixes `offline_a` per dataset
    (main.py:423; 0.3 on CIFAR-10)."""
    refs, st = a.references, a.settings
    m = st.rmia_references
    a_param = _tune_a(refs, m, st.rmia_gamma, st.seed)
    prob = np.exp(-refs.loss.astype(np.float64))
    pop_target = np.exp(-a.outputs["val"]["loss"].astype(np.float64))  # population: all of val
    pop_refs = np.exp(-refs.population_loss[:m].astype(np.float64))
    s, fewest = {}, m
    for split, out in (("forget", a.members()), ("test", a.nonmembers())):
        rows = refs.rows(out["key"])
        p_refs, least = _out_mean(prob[:, rows], refs.keep[:, rows], m)
        fewest = min(fewest, least)
        p_target = np.exp(-out["loss"].astype(np.float64))
        s[split] = rmia_scores(p_target, p_refs, pop_target, pop_refs, a_param, st.rmia_gamma)
    result = scored(s["forget"], s["test"])
    return AttackResult({**result.metrics, "a": a_param, "gamma": st.rmia_gamma, "min_out_references": fewest,
                         **_cost(a, m)}, result.member_scores, result.nonmember_scores)
