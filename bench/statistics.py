"""When is a difference real: confidence intervals and ranks with ties for the leaderboard.

`mean_ci`: mean and 95% t-interval half-width of per-seed values. `ranks`: methods whose
per-seed gaps are not significantly worse than the best remaining method's share its rank;
"worse" is a one-sided paired t-test over the seeds both have, Holm-corrected across the
methods compared in that step; the tied group is removed and the next rank is found the same
way among the rest (dense ranks: 1, 1, 2, 3, 3, ...). `rank_intervals`: each method's place
by mean gap and the 95% interval of that place over a paired bootstrap of the seeds.
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


def worse_p(candidate: dict, best: dict) -> float:
    """One-sided paired p-value that `candidate`'s per-seed values exceed `best`'s."""
    seeds = sorted(set(candidate) & set(best))
    if len(seeds) < 2:
        return 1.0  # too few pairs to tell them apart
    d = np.array([candidate[s] - best[s] for s in seeds])
    if np.allclose(d, d[0]):  # no spread: the sign decides
        return 0.0 if d[0] > 0 else 1.0
    return float(stats.ttest_rel([candidate[s] for s in seeds], [best[s] for s in seeds],
                                 alternative="greater").pvalue)


def holm(pvalues: dict) -> dict:
    """Holm-Bonferroni adjusted p-values."""
    order = sorted(pvalues, key=pvalues.get)
    adjusted, running = {}, 0.0
    for i, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * pvalues[key]))
        adjusted[key] = running
    return adjusted


def ranks(gaps: dict[str, dict[int, float]]) -> dict[str, int]:
    """{label: rank} from {label: {seed: gap}} (lower gap is better)."""
    remaining = {k: v for k, v in gaps.items() if v}
    out, rank = {}, 1
    while remaining:
        best = min(remaining, key=lambda k: (np.mean(list(remaining[k].values())), k))
        adjusted = holm({k: worse_p(v, remaining[best]) for k, v in remaining.items() if k != best})
        tied = [best] + [k for k, p in adjusted.items() if p >= ALPHA]
        for k in tied:
            out[k] = rank
            del remaining[k]
        rank += 1
    return out


def rank_intervals(gaps: dict[str, dict[int, float]], resamples: int = 2000, seed: int = 0
                   ) -> dict[str, tuple[int, int, int]]:
    """{label: (place, low, high)} from {label: {seed: gap}} over the seeds every label has: place 1
    is the smallest mean gap (ties by label), and [low, high] the 95% percentile interval of the place
    over a paired bootstrap of those seeds (`scipy.stats.bootstrap`, paired: one resample takes the
    same seeds for every label). With one shared seed the interval is the place itself."""
    labels = sorted(k for k, v in gaps.items() if v)
    shared = sorted(set.intersection(*(set(gaps[k]) for k in labels))) if labels else []
    if not shared:
        return {}
    data = [np.array([gaps[k][s] for s in shared], np.float64) for k in labels]

    def places(*samples, axis=-1):
        means = np.stack([x.mean(axis=axis) for x in samples])  # ties: the earlier label first
        return np.argsort(np.argsort(means, axis=0, kind="stable"), axis=0, kind="stable") + 1.0

    place = places(*data).astype(int)
    if len(shared) < 2 or len(labels) < 2:
        return {k: (int(p), int(p), int(p)) for k, p in zip(labels, place)}
    ci = stats.bootstrap(data, places, paired=True, vectorized=True, method="percentile",
                         n_resamples=resamples, rng=np.random.default_rng(seed)).confidence_interval
    return {k: (int(p), int(np.floor(lo)), int(np.ceil(hi))) for k, p, lo, hi in zip(labels, place, ci.low, ci.high)}
