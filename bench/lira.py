"""Per-example attacks with reference models: LiRA (Carlini et al. 2022) and RMIA
(Zarifzadeh et al. 2024). Both read the target's saved outputs and the suite's shared
reference-model outputs (bench/references.py); neither runs a model.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import norm

from bench.mia import AttackInput, AttackResult, register_attack, roc_metrics, scored

LIRA_VARIANTS = ("online_fixed", "online", "offline_fixed", "offline")


def _reference_view(a: AttackInput, split: str):
    """(target phi (n, 2), reference phi (K, n, 2), IN mask (K, n)) for one split's examples."""
    refs, out = a.references, a.outputs[split]
    rows = refs.rows(out["key"])
    target = np.stack([out["conf"], out["conf_mirror"]], axis=-1).astype(np.float64)
    ref = np.stack([refs.conf[:, rows], refs.conf_mirror[:, rows]], axis=-1).astype(np.float64)
    return target, ref, refs.keep[:, rows]


def lira_scores(target, ref, keep, online: bool, fixed_variance: bool) -> np.ndarray:
    """LiRA membership scores (higher = member), averaged over the image and mirror queries.

    Per example, IN and OUT Gaussians of the reference statistic: mean = median over the
    references; standard deviation per example, or one global value ("fixed") over all of
    them, as in Carlini et al.'s code. Online: log N(phi; in) - log N(phi; out). Offline
    (OUT only, one-sided): log Pr[Z <= phi], Z ~ N(out).
    """

    def gaussian(mask):
        vals = np.where(mask[..., None], ref, np.nan)
        with warnings.catch_warnings():  # examples with no IN (or OUT) reference: see below
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmedian(vals, axis=0), np.nanstd(vals, axis=0)
        # With a subset of the balanced references (U-LiRA) an example can lack IN or OUT
        # references; it then falls back to the median and spread over all examples.
        mean = np.where(np.isnan(mean), np.nanmedian(vals), mean)
        std = np.nanstd(vals) if fixed_variance else np.where(np.isnan(std), np.nanstd(vals), std)
        return mean, np.maximum(std, 1e-30)

    mean_out, std_out = gaussian(~keep)
    if online:
        mean_in, std_in = gaussian(keep)
        score = norm.logpdf(target, mean_in, std_in) - norm.logpdf(target, mean_out, std_out)
    else:
        score = norm.logcdf(target, mean_out, std_out)
    return score.mean(axis=-1)


@register_attack("lira", needs_references=True)
def lira(a: AttackInput) -> AttackResult:
    """LiRA (Carlini et al. 2022): per-example Gaussian likelihood ratio from K reference models."""
    views = {split: _reference_view(a, split) for split in ("forget", "test")}
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


def _first_out(keep: np.ndarray, m: int) -> np.ndarray:
    """(m, n) indices of the first m references that did NOT train on each example."""
    order = np.argsort(keep, axis=0, kind="stable")  # False (OUT) first, in reference order
    return order[:m]


def rmia_scores(p_target, p_refs_out, p_pop_target, p_pop_refs, a_param: float, gamma: float) -> np.ndarray:
    """RMIA offline: share of population z with [P(x|θ)/P(x)] / [P(z|θ)/P(z)] > gamma.

    P(x) = ((1 + a) * mean of OUT reference probabilities + (1 - a)) / 2 approximates the
    average over IN and OUT models from OUT models alone.
    """
    p_x = ((1 + a_param) * p_refs_out.mean(0) + (1 - a_param)) / 2
    p_z = ((1 + a_param) * p_pop_refs.mean(0) + (1 - a_param)) / 2
    ratio_x, ratio_z = p_target / p_x, np.sort(p_pop_target / p_z)
    # count z with ratio_x / ratio_z > gamma, i.e. ratio_z < ratio_x / gamma
    return np.searchsorted(ratio_z, ratio_x / gamma, side="left") / len(ratio_z)


def _tune_a(refs, m: int, gamma: float, seed: int) -> float:
    """Pick a in [0, 1] by the AUC of RMIA against reference 0, with the others as references."""
    rng = np.random.default_rng(seed)
    cols = rng.choice(refs.keep.shape[1], min(2000, refs.keep.shape[1]), replace=False)
    others = np.arange(1, refs.k)
    keep = refs.keep[others][:, cols]
    chosen = others[_first_out(keep, m)]
    prob = np.exp(-refs.loss[:, cols].astype(np.float64))
    p_refs = np.take_along_axis(prob, chosen, axis=0)
    pop_target = np.exp(-refs.population_loss[0].astype(np.float64))
    pop_refs = np.exp(-refs.population_loss[others[:m]].astype(np.float64))
    is_in = refs.keep[0, cols]
    best = (-1.0, 0.0)
    for a_param in np.linspace(0, 1, 11):
        s = rmia_scores(prob[0], p_refs, pop_target, pop_refs, a_param, gamma)
        best = max(best, (roc_metrics(s[is_in], s[~is_in])["auc"], float(a_param)))
    return best[1]


@register_attack("rmia", needs_references=True)
def rmia(a: AttackInput) -> AttackResult:
    """RMIA (Zarifzadeh et al. 2024), offline, with m reference models and population data."""
    refs, st = a.references, a.settings
    m = st.rmia_references
    a_param = _tune_a(refs, m, st.rmia_gamma, st.seed)
    prob = np.exp(-refs.loss.astype(np.float64))
    pop_target = np.exp(-a.outputs["val"]["loss"].astype(np.float64))
    pop_refs = np.exp(-refs.population_loss[:m].astype(np.float64))
    s = {}
    for split in ("forget", "test"):
        rows = refs.rows(a.outputs[split]["key"])
        chosen = _first_out(refs.keep[:, rows], m)
        p_refs = np.take_along_axis(prob[:, rows], chosen, axis=0)
        p_target = np.exp(-a.outputs[split]["loss"].astype(np.float64))
        s[split] = rmia_scores(p_target, p_refs, pop_target, pop_refs, a_param, st.rmia_gamma)
    result = scored(s["forget"], s["test"])
    return AttackResult({**result.metrics, "a": a_param, "gamma": st.rmia_gamma, **_cost(a, m)},
                        result.member_scores, result.nonmember_scores)
