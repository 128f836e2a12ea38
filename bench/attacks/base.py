"""What every membership-inference attack shares: the registry, its input and result, ROC metrics.

No attack runs a model. An attack is registered with `@register_attack(name, label=..., strength=...)`
(`label`: its name in tables; `strength`: how hard a test of unlearning it is, by the literature's
account: 4 U-LiRA, 3 LiRA, 2 RMIA, 1 population attacks on the loss, 0 a score that is not an
attack's ROC; the leaderboard heads each section with the strongest attack it has; optionally
`resolution`: {metric: `bench.metrics.Resolution`} for metrics whose step differs from the one
`bench.metrics` declares for that name, as for attacks that fit a model) and maps an
`AttackInput` to an `AttackResult`: its metrics and per-example membership scores for the
members (the forget set) and the non-members (held-out examples: the test split, or for class
forgetting the test examples of the forgotten class). Reference-model outputs reach an attack
as inputs (`references`, `unlearned`), produced beforehand by the runner.
For unlearning the ideal value of every attack is its value against the same-seed retrain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.registry import Registry
from bench.spec import AttackSettings


@dataclass(frozen=True)
class AttackInfo:
    """What an attack declares where it is registered."""

    label: str  # its name in tables
    strength: int  # 4 U-LiRA, 3 LiRA, 2 RMIA, 1 population attacks, 0 a score that is not an attack's ROC
    resolution: dict = field(default_factory=dict)  # {metric: bench.metrics.Resolution} overriding bench.metrics
    needs_references: bool = False  # reads `AttackInput.references` (LiRA's reference models)
    needs_unlearned_references: bool = False  # reads `AttackInput.unlearned` (U-LiRA's unlearned references)


attack_registry = Registry("attack", AttackInfo)
register_attack = attack_registry.register
FPR_POINTS = {"tpr_at_1pct_fpr": 0.01, "tpr_at_0.1pct_fpr": 0.001}


@dataclass(frozen=True)
class AttackInput:
    """What an attack reads: a run's per-example outputs, never a model.

    `outputs[split]` for split in forget, retain, val, test is a dict of arrays of one length per
    split (`bench.evaluate.per_example_outputs`): loss float32 (nats), conf and conf_mirror float32
    (logit-scaled confidence), pred and label int16, index int32 and key int64 (the example's id in
    the reference models' outputs). An attack returns `AttackResult`: metrics (fractions in [0, 1]
    unless named otherwise) and float32 membership scores, one per member and non-member."""

    outputs: dict  # {"forget": {"loss": ..., "conf": ..., "label": ..., "key": ...}, "retain", "val", "test"}
    settings: AttackSettings
    seed: int = 0  # the run's seed: every subsample an attack draws comes from it
    forget_label: int | None = None  # the forgotten class, for class forgetting
    references: object | None = None  # bench.references.References, for attacks that need them
    unlearned: object | None = None  # bench.unlearned_references.UnlearnedReferences (U-LiRA)

    def members(self) -> dict:
        return self.outputs["forget"]

    def nonmembers(self, split: str = "test") -> dict:
        """Held-out examples of `split`; for class forgetting only those of the forgotten class,
        so that members and non-members differ in membership, not in class."""
        out = self.outputs[split]
        if self.forget_label is None:
            return out
        keep = out["label"] == self.forget_label
        return {k: v[keep] for k, v in out.items()}


@dataclass(frozen=True)
class AttackResult:
    metrics: dict
    member_scores: np.ndarray | None = None  # higher = more likely a member
    nonmember_scores: np.ndarray | None = None


def run_attacks(names, attack_input: AttackInput) -> dict[str, AttackResult]:
    """Every attack on one run; an attack that fails is recorded with its error, the others go on."""
    results = {}
    for name in names:
        try:
            results[name] = attack_registry.get(name).fn(attack_input)
        except Exception as e:  # noqa: BLE001 - isolate the failure like a method's
            results[name] = AttackResult({"error": f"{type(e).__name__}: {e}"})
    return results


def roc_curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of sklearn's `roc_curve(y, scores)` (drop_intermediate=True), the same points
    step for step (sklearn.metrics._ranking: `_binary_clf_curve`, `roc_curve`) without its
    per-call validation, which cost more than the attacks themselves on small suites."""
    order = np.argsort(scores, kind="mergesort")[::-1]
    scores, y = scores[order], y[order].astype(np.float64)
    last = np.r_[np.where(np.diff(scores))[0], y.size - 1]  # the last example of each distinct score
    tps = np.cumsum(y)[last]
    fps = 1 + last - tps
    if len(fps) > 2:  # drop points on a straight line between their neighbours
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps = fps[keep], tps[keep]
    fps, tps = np.r_[0, fps], np.r_[0, tps]
    return fps / fps[-1], tps / tps[-1]


def roc_metrics(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> dict[str, float]:
    """Balanced accuracy (best threshold), ROC AUC and TPR at 1% and 0.1% FPR.

    AUC is the trapezoid area under `roc_curve` (as sklearn's `roc_auc_score`); TPR at a fixed FPR
    is read off the same curve by linear interpolation between its points, so it agrees with the
    ROC plotted from it.
    """
    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    scores = np.r_[member_scores, nonmember_scores].astype(np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("membership scores are not all finite")
    fpr, tpr = roc_curve(y, scores)
    out = {"balanced_accuracy": float(np.max((tpr + 1 - fpr) / 2)), "auc": float(np.trapezoid(tpr, fpr))}
    out.update({name: float(np.interp(x, fpr, tpr)) for name, x in FPR_POINTS.items()})
    return out


def scored(member_scores, nonmember_scores, **extra) -> AttackResult:
    metrics = {**roc_metrics(member_scores, nonmember_scores), **extra}
    return AttackResult(metrics, np.asarray(member_scores, np.float32), np.asarray(nonmember_scores, np.float32))


def balanced_sample(members: np.ndarray, nonmembers: np.ndarray, seed: int = 0):
    """Subsample the larger group (seeded) so both have the same size."""
    rng = np.random.default_rng(seed)
    n = min(len(members), len(nonmembers))
    pick = lambda a: a if len(a) == n else a[np.sort(rng.choice(len(a), n, replace=False))]  # noqa: E731
    return pick(members), pick(nonmembers)
