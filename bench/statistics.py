"""When is a difference real: confidence intervals and ranks with intervals for the leaderboard.

`mean_ci`: mean and 95% t-interval half-width of per-seed values. `bootstrap_ranks`: each
method's place by mean gap, the 95% interval of that place and its probability of being best
over a paired bootstrap of the seeds, and whether it is clearly better than a baseline (doing
nothing) by a paired t-interval. No test of "not significantly worse than the best" decides a rank: at 3-5 seeds such a
test has almost no power (after Holm the first comparison needs t > 10.4 at 3 seeds), so every
method would share rank 1; an interval shows what the seeds can and cannot tell apart.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

ALPHA = 0.05


def mean_ci(values) -> tuple[float, float, int]:
    """(mean, half-width of the 95% t-interval (nan for n < 2), n)."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n < 2:
        return (float(v.mean()) if n else float("nan")), float("nan"), n
    half = stats.t.ppf(1 - ALPHA / 2, n - 1) * v.std(ddof=1) / np.sqrt(n)
    return float(v.mean()), float(half), n


def bootstrap_ranks(gaps: dict[str, dict[int, float]], baseline: str | None = None, resamples: int = 2000,
                    seed: int = 0) -> dict[str, dict]:
    """Places with honest uncertainty, from {label: {seed: gap}} (lower is better), over the seeds
    every label has.

    {label: {"place": 1 = the smallest mean gap, tied means sharing the better place (1, 1, 3),
    "place_low", "place_high": the 95% percentile interval of the place over a paired bootstrap
    of the seeds (`scipy.stats.bootstrap`, paired: one resample takes the same seeds for every
    label), "p_best": the share of resamples in which it is first, a tie for first counting as a
    share (None with one seed)}}. With `baseline` (a label, e.g. doing nothing), every other label
    also gets "vs_baseline_low" and "vs_baseline_high", the 95% paired t-interval of its mean gap
    minus the baseline's (`mean_ci` of the per-seed differences), and "beats_baseline": whether
    that interval lies below 0 (a t-interval, not the bootstrap's: at 3 seeds a percentile
    bootstrap calls a method "clearly better" in 14% of draws from the baseline's own
    distribution, against the nominal 2.5%). With one shared seed the interval is the place
    itself, and nothing beats the baseline. {} when no seed is shared."""
    labels = sorted(k for k, v in gaps.items() if v)
    shared = sorted(set.intersection(*(set(gaps[k]) for k in labels))) if labels else []
    if not shared:
        return {}
    data = np.array([[gaps[k][s] for s in shared] for k in labels], np.float64)  # labels × seeds

    def places(*samples, axis=-1):
        means = np.stack([x.mean(axis=axis) for x in samples])  # labels (× resamples)
        return stats.rankdata(means, method="min", axis=0).astype(np.float64)

    point = places(*data)
    n = len(labels)
    if len(shared) < 2 or n < 2:
        low = high = point
        best = None
    else:
        res = stats.bootstrap(list(data), places, paired=True, vectorized=True, method="percentile",
                              n_resamples=resamples, rng=np.random.default_rng(seed))
        low, high = res.confidence_interval.low, res.confidence_interval.high
        first = res.bootstrap_distribution == 1  # labels × resamples
        best = (first / first.sum(axis=0)).mean(axis=1)  # a tie for first shares the resample
    out = {}
    for i, k in enumerate(labels):
        out[k] = {"place": int(point[i]), "place_low": int(np.floor(low[i])), "place_high": int(np.ceil(high[i])),
                  "p_best": None if best is None else float(best[i])}
        if baseline in labels and k != baseline:
            mean, half, m = mean_ci(data[i] - data[labels.index(baseline)])
            low_d, high_d = (mean - half, mean + half) if m >= 2 else (mean, mean)
            out[k].update(vs_baseline_low=float(low_d), vs_baseline_high=float(high_d),
                          beats_baseline=bool(m >= 2 and high_d < 0))
    return out
