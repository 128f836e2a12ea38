"""Membership-inference attacks over the per-example outputs the evaluation saved.

No attack runs the model again. An attack is registered with `@register_attack(name)` and
maps the outputs of one run ({"forget": {...}, "test": {...}, ...}) to a dict of metrics.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, cross_validate

from bench.registry import Registry

attack_registry = Registry("attack")
register_attack = attack_registry.register


def run_attacks(names, outputs) -> dict[str, dict[str, float]]:
    return {name: attack_registry.get(name).fn(outputs) for name in names}


def balanced_sample(members: np.ndarray, nonmembers: np.ndarray, seed: int = 0):
    """Subsample the larger group (fixed seed) so both have the same size."""
    rng = np.random.default_rng(seed)
    n = min(len(members), len(nonmembers))
    pick = lambda a: a if len(a) == n else a[np.sort(rng.choice(len(a), n, replace=False))]  # noqa: E731
    return pick(members), pick(nonmembers)


def simple_mia_scores(member_loss: np.ndarray, nonmember_loss: np.ndarray,
                      n_splits: int = 10, random_state: int = 0) -> dict[str, float]:
    """The NeurIPS 2023 kit's attack: logistic regression on the loss alone, 10 stratified splits.

    Members and non-members are balanced by subsampling the larger group; the score is the mean
    held-out accuracy over `StratifiedShuffleSplit(n_splits=10, random_state=0)`, and the mean
    held-out ROC AUC over the same splits.
    """
    members, nonmembers = balanced_sample(member_loss, nonmember_loss)
    x = np.concatenate([members, nonmembers]).astype(np.float64).reshape(-1, 1)
    y = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))]).astype(int)
    cv = StratifiedShuffleSplit(n_splits=n_splits, random_state=random_state)
    scores = cross_validate(LogisticRegression(), x, y, cv=cv, scoring=("accuracy", "roc_auc"))
    return {"accuracy": float(np.mean(scores["test_accuracy"])),
            "auc": float(np.mean(scores["test_roc_auc"])),
            "n_members": int(len(members)), "n_nonmembers": int(len(nonmembers))}


@register_attack("simple")
def simple_mia(outputs) -> dict[str, float]:
    """Kit / SCRUB simple MIA: loss-only logistic regression, forget (members) vs test."""
    return simple_mia_scores(outputs["forget"]["loss"], outputs["test"]["loss"])
