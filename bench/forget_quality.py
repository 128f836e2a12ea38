"""The NeurIPS 2023 Machine Unlearning Challenge's forget-quality score
(google-deepmind/unlearning_evaluation), from saved per-example outputs.

N unlearned models (one run of the method per seed) and N retrained models (the same seeds'
retrain runs). For each forget example, the LiRA statistic's values under the two sets of
models give, for every threshold, an attack's FPR and FNR; the example's epsilon is the
largest of log((1 - delta - FPR) / FNR) and log((1 - delta - FNR) / FPR) over thresholds.
Epsilons fall into bins of width 0.5; bin n (from 1) is worth 2 / 2^n points, and
F = mean points. The score is F * (RA_unlearned / RA_retrain) * (TA_unlearned / TA_retrain).
"""

from __future__ import annotations

import numpy as np

DELTA = 1e-5
BIN_WIDTH = 0.5
BINS = 13


def epsilons(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> np.ndarray:
    """Per example, the best threshold rule telling its two samples apart. Arrays: (N, examples).

    Rule "phi >= t means unlearned", for every t among the example's values: FPR = share of
    retrained values >= t, FNR = share of unlearned values < t. As in the reference code, a
    rule with FPR = FNR = 0 (or = 1: its reverse is perfect) gives infinity, and rules with
    FPR = 0 or FNR = 0 alone are skipped.
    """
    u, r = unlearned.T[:, None, :], retrained.T[:, None, :]  # (E, 1, N)
    t = np.concatenate([unlearned.T, retrained.T], axis=1)[:, :, None]  # (E, 2N, 1) thresholds
    fpr = (r >= t).mean(-1)
    fnr = (u < t).mean(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        e1 = np.log(1 - delta - fpr) - np.log(fnr)
        e2 = np.log(1 - delta - fnr) - np.log(fpr)
    eps = np.fmax(e1, e2)  # NaN only where both are
    eps = np.where(np.isnan(eps), np.inf, eps)
    eps = np.where((fpr == 0) & (fnr == 0), np.inf, eps)
    eps = np.where((fpr == 0) ^ (fnr == 0), 0.0, eps)  # skipped rules count as no evidence
    return np.maximum(eps.max(axis=1), 0.0)


def points(epsilons: np.ndarray) -> np.ndarray:
    bins = np.digitize(epsilons, np.arange(0, BINS * BIN_WIDTH, BIN_WIDTH))  # eps in [0, 0.5) -> 1
    return 2.0 / 2.0**bins


def forget_quality(unlearned_phi: np.ndarray, retrained_phi: np.ndarray,
                   ra: tuple[float, float], ta: tuple[float, float]) -> dict[str, float]:
    """`*_phi`: (N models, forget examples). `ra`, `ta`: (unlearned, retrained) mean accuracies."""
    eps = epsilons(unlearned_phi, retrained_phi)
    f = float(points(eps).mean())
    return {"forget_quality": f * (ra[0] / ra[1]) * (ta[0] / ta[1]), "f": f,
            "median_epsilon": float(np.median(eps)), "n_models": int(len(unlearned_phi))}
