"""When is a difference real: confidence intervals and ranks with ties for the leaderboard.

`mean_ci`: mean and 95% t-interval half-width of per-seed values. `ranks`: methods whose
per-seed gaps are not significantly worse than the best remaining method's share its rank;
"worse" is a one-sided paired t-test over the seeds both have, Holm-corrected across the
methods compared in that step; the tied group is removed and the next rank is found the same
way among the rest (dense ranks: 1, 1, 2, 3, 3, ...).
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
