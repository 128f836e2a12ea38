"""The NeurIPS 2023 Machine Unlearning Challenge's forget-quality score, ported from
google-deepmind/unlearning_evaluation, metric.py (commit ffae0ff), from saved outputs.

N unlearned models (one run of the method per seed) and N retrained models (the same seeds'
retrain runs). Per forget example, the two samples of the LiRA statistic are oriented by
their medians: the one with the larger median is "positive" (`compute_forget_score_from_confs`).
If one sample's range is under 1% of the other's, epsilon is the cap, 50. Otherwise every
threshold of two rule families gives an FPR and FNR: a single threshold ("statistic >= t is
positive", 100 thresholds per unit between the pooled min and max; `_get_single_threshold_rates`)
and a double threshold ("inside [l, r] is the peakier sample", `_get_double_threshold_rates`:
r on a 100-per-unit grid around the peaky sample widened by a buffer of 2, l = r - width +
[-2, 2] at 100 per unit). A rule with FPR = FNR = 0 gives infinity; rules with FPR = 0 or
FNR = 0 (not both) are discarded; the others give max(log((1 - delta - FPR) / FNR),
log((1 - delta - FNR) / FPR)), clipped at 0. The example's epsilon is the largest, capped at 50
(`_get_epsilons`). Buckets of width 0.5 from 0 up to ceil(log(N - 1)) are worth 1, 1/2, 1/4, ...
points; an epsilon past the last bucket is worth 0; F = mean points. The score is
F * (RA_unlearned / RA_retrain) * (TA_unlearned / TA_retrain), as in the challenge.

Deliberate deviations: the single-threshold rates are evaluated only at the grid points where
they can change (the same set of rates as the whole grid, in memory bounded by the samples: the
official grid of 100 points per unit exhausts memory on a collapsed model's extreme statistics);
the double-threshold rates are computed only at the thresholds where
they can change (each sample's crossing of the left-threshold grid), by counting per right
threshold, which gives the same set of (FPR, FNR) pairs as evaluating all R x 400 grid points,
without the CUDA tensors; an
example whose every rule is discarded gets epsilon 0 where the code asserts.
"""

from __future__ import annotations

import math

import numpy as np

DELTA = 1e-5
EPSILON_CAP = 50.0
PER_UNIT = 100
BUFFER = 2.0
BUCKET = 0.5


def _grid_where_rates_change(lo: float, hi: float, num: int, values: np.ndarray) -> np.ndarray:
    """The points of `np.linspace(lo, hi, num)` (bit for bit) that give every distinct rate of
    "value >= t" over `values`: the grid's first point and, for each value, the first grid point
    above it (with its neighbours, against rounding). Between two consecutive values the rates
    are constant, so these give the same set of rates as the whole grid, whose size grows with
    the statistic's spread (a model with logits of 1e7 would need a grid of 1e9 points)."""
    if num <= 3 * len(values) + 1:
        return np.linspace(lo, hi, num)
    step = (hi - lo) / (num - 1)
    after = np.floor((values - lo) / step).astype(np.int64) + 1
    k = np.unique(np.clip(np.concatenate([[0], after - 1, after, after + 1]), 0, num - 1))
    t = k.astype(np.float64) * step + lo  # linspace's own arithmetic: arange * step + start
    t[k == num - 1] = hi  # ... and its last point is `stop` itself
    return t


def _single_threshold_rates(pos: np.ndarray, neg: np.ndarray):
    lo, hi = min(pos.min(), neg.min()), max(pos.max(), neg.max())
    t = _grid_where_rates_change(lo, hi, int(math.ceil((hi - lo) * PER_UNIT)), np.concatenate([pos, neg]))
    tpr = (pos[:, None] >= t).mean(0)
    fpr = (neg[:, None] >= t).mean(0)
    return tpr, 1 - tpr, fpr, 1 - fpr


def _double_threshold_rates(pos: np.ndarray, neg: np.ndarray):
    """Rates of "l <= phi <= r means positive", positive being the peakier sample."""
    pos_diff, neg_diff = np.ptp(pos), np.ptp(neg)
    width = neg_diff if pos_diff > neg_diff else pos_diff
    if pos_diff >= neg_diff:
        pos, neg = neg, pos
    lo, hi = pos.min() + width - BUFFER, pos.max() + BUFFER
    right = np.linspace(lo, hi, int(math.ceil((hi - lo) * PER_UNIT)))
    offsets = np.linspace(-BUFFER, BUFFER, int(math.ceil(2 * BUFFER * PER_UNIT)))
    start = right - width  # the left thresholds of right[i] are start[i] + offsets
    samples = np.concatenate([pos, neg])
    # n_left[i, s]: how many left thresholds of right[i] lie at or below sample s; the rates
    # only change where j crosses one of these, so those (and j = 0) are all the rules there are.
    # (Sample s is inside rule (j, right[i]) when s <= right[i] and j < n_left[i, s].)
    n_left = np.searchsorted(offsets, samples[None, :] - start[:, None], side="right")
    cand = np.concatenate([np.zeros((len(right), 1), np.int64), n_left], axis=1)
    valid = cand < len(offsets)
    rows = np.arange(len(right))[:, None]

    def share_inside(part: np.ndarray) -> np.ndarray:
        """Per rule (right[i], left threshold j = cand[i, c]): the share of `part` in [l, r]. In
        sorted order a row's samples <= right[i] are a prefix and their n_left never decreases,
        so those with j < n_left are that prefix minus the samples with n_left <= j."""
        x = np.sort(part)
        below = np.searchsorted(x, right, side="right")[:, None]  # samples <= right[i]
        n_left_x = np.searchsorted(offsets, x[None, :] - start[:, None], side="right")
        stride = len(offsets) + 2  # rows laid end to end: one sorted array, one searchsorted
        at_most = np.searchsorted((n_left_x + rows * stride).ravel(), cand + rows * stride, side="right")
        at_most -= rows * len(x)
        return (np.maximum(below - at_most, 0) / len(x))[valid]

    tpr, fpr = share_inside(pos), share_inside(neg)
    return tpr, 1 - tpr, fpr, 1 - fpr


def example_epsilon(pos: np.ndarray, neg: np.ndarray, delta: float = DELTA) -> float:
    """The epsilon of one forget example from its positive and negative samples (N each)."""
    pos_diff, neg_diff = np.ptp(pos), np.ptp(neg)
    largest, smallest = max(pos_diff, neg_diff), min(pos_diff, neg_diff)
    if largest > 0 and smallest / largest < 0.01:
        return EPSILON_CAP
    parts = [_double_threshold_rates(pos, neg), _single_threshold_rates(pos, neg)]
    tpr, fnr, fpr, tnr = (np.concatenate([p[k] for p in parts]) for k in range(4))
    perfect = (fpr + fnr == 0) & (tpr + tnr == 2)
    usable = ~perfect & (fpr * fnr != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.fmax(np.log(1 - delta - fpr[usable]) - np.log(fnr[usable]),
                      np.log(1 - delta - fnr[usable]) - np.log(fpr[usable]))
    eps = np.clip(eps[~np.isnan(eps)], 0, None)
    if perfect.any():
        return EPSILON_CAP
    return float(min(eps.max(), EPSILON_CAP)) if len(eps) else 0.0


def epsilons(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> np.ndarray:
    """Per forget example, oriented by medians. Arrays: (N models, examples)."""
    retrain_is_positive = np.median(retrained, 0) > np.median(unlearned, 0)
    pos = np.where(retrain_is_positive, retrained, unlearned).astype(np.float64)
    neg = np.where(retrain_is_positive, unlearned, retrained).astype(np.float64)
    return np.array([example_epsilon(pos[:, e], neg[:, e], delta) for e in range(pos.shape[1])])


def points(eps: np.ndarray, n_models: int) -> np.ndarray:
    """1, 1/2, 1/4, ... for epsilon in [0, 0.5), [0.5, 1), ... up to ceil(log(N - 1)); else 0."""
    n_buckets = int(math.ceil(math.log(n_models - 1)) / BUCKET) if n_models > 2 else 0
    bucket = np.floor(np.asarray(eps) / BUCKET)
    return np.where(bucket < n_buckets, 0.5**bucket, 0.0)


def forget_quality(unlearned_phi: np.ndarray, retrained_phi: np.ndarray,
                   ra: tuple[float, float], ta: tuple[float, float]) -> dict[str, float]:
    """`*_phi`: (N models, forget examples). `ra`, `ta`: (unlearned, retrained) mean accuracies.
    {forget_quality, its standard error over forget examples (`standard_error`), f, median_epsilon,
    n_models}; the score a perfect unlearner gets at this N is `null_ceiling`'s."""
    n = len(unlearned_phi)
    eps = epsilons(unlearned_phi, retrained_phi)
    per_example = points(eps, n)
    scale = (ra[0] / ra[1]) * (ta[0] / ta[1])
    se = float(per_example.std(ddof=1) / np.sqrt(len(per_example))) if len(per_example) > 1 else 0.0
    f = float(per_example.mean())
    return {"forget_quality": f * scale, "standard_error": se * scale, "f": f,
            "median_epsilon": float(np.median(eps)), "n_models": int(n)}


def null_ceiling(retrained_phi: np.ndarray, examples: int = 300, seed: int = 0) -> float:
    """F of a perfect unlearner at this N: per example, both samples drawn from one Gaussian with
    the retrains' spread for that example (at most `examples` examples, seeded).

    With few models even identical distributions often look separable (the threshold grid
    resolves 0.01), so F stays well below 1, and how far below depends on the statistic's
    spread: about 0.36 at N = 3 for unit spread. A method's F is read against this ceiling.
    """
    n, e = retrained_phi.shape
    if n < 3:
        return 0.0
    rng = np.random.default_rng(seed)
    cols = np.sort(rng.choice(e, min(e, examples), replace=False))
    spread = np.maximum(retrained_phi[:, cols].astype(np.float64).std(0), 1e-6)
    a, b = (rng.normal(size=(n, len(cols))) * spread for _ in range(2))
    return float(points(epsilons(a, b), n).mean())
