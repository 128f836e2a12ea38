"""When is a difference real: confidence intervals and ranks with intervals for the leaderboard.

`mean_ci`: mean and 95% t-interval half-width of per-seed values. `bootstrap_ranks`: each
method's place by mean gap, the 95% interval of that place and its probability of being best
over a paired bootstrap of the seeds, and whether it is clearly better than a baseline (doing
nothing). No test of "not significantly worse than the best" decides a rank: at 3-5 seeds such a
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
    every label has, by a paired bootstrap of those seeds (`scipy.stats.bootstrap`, paired: one
    resample takes the same seeds for every label, percentile intervals).

    {label: {"place": 1 = the smallest mean gap (ties by label), "place_low", "place_high": the 95%
    interval of the place, "p_best": the share of resamples in which it is place 1}}; with
    `baseline` (a label, e.g. doing nothing), every other label also gets "vs_baseline_low" and
    "vs_baseline_high", the 95% interval of its mean gap minus the baseline's, and
    "beats_baseline": whether that interval lies below 0. With one shared seed the interval is
    the place itself, p_best is 1 or 0, and nothing beats the baseline. {} when no seed is shared."""
    labels = sorted(k for k, v in gaps.items() if v)
    shared = sorted(set.intersection(*(set(gaps[k]) for k in labels))) if labels else []
    if not shared:
        return {}
    data = np.array([[gaps[k][s] for s in shared] for k in labels], np.float64)  # labels × seeds
    base = labels.index(baseline) if baseline in labels else None

    def statistic(*samples, axis=-1):
        means = np.stack([x.mean(axis=axis) for x in samples])  # labels (× resamples)
        places = np.argsort(np.argsort(means, axis=0, kind="stable"), axis=0, kind="stable") + 1.0
        return np.concatenate([places, means - means[base]]) if base is not None else places

    point = statistic(*data)
    n = len(labels)
    if len(shared) < 2 or n < 2:
        low = high = point
        best = (point[:n] == 1).astype(float)
    else:
        res = stats.bootstrap(list(data), statistic, paired=True, vectorized=True, method="percentile",
                              n_resamples=resamples, rng=np.random.default_rng(seed))
        low, high = res.confidence_interval.low, res.confidence_interval.high
        best = (res.bootstrap_distribution[:n] == 1).mean(axis=1)
    out = {}
    for i, k in enumerate(labels):
        out[k] = {"place": int(point[i]), "place_low": int(np.floor(low[i])), "place_high": int(np.ceil(high[i])),
                  "p_best": float(best[i])}
        if base is not None and i != base:
            below = len(shared) >= 2 and high[n + i] < 0
            out[k].update(vs_baseline_low=float(low[n + i]), vs_baseline_high=float(high[n + i]),
                          beats_baseline=bool(below))
    return out
