"""Membership-inference attacks over the per-example outputs the evaluation saved.

No attack runs a model. An attack is registered with `@register_attack(name)` and maps an
`AttackInput` (the target run's outputs, and the suite's reference-model outputs when it was
registered with `needs_references=True`) to an `AttackResult`: its metrics and per-example
membership scores for the members (the forget set) and the non-members (the test split).
For unlearning the ideal value of every attack is its value against the same-seed retrain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedShuffleSplit, cross_validate
from sklearn.svm import SVC

from bench.registry import Registry

attack_registry = Registry("attack")
register_attack = attack_registry.register
FPR_POINTS = {"tpr_at_1pct_fpr": 0.01, "tpr_at_0.1pct_fpr": 0.001}


@dataclass(frozen=True)
class AttackInput:
    outputs: dict  # {"forget": {"loss": ..., "conf": ..., "key": ...}, "test": ..., "val": ..., "retain": ...}
    references: object | None  # bench.references.References, for attacks that need them
    settings: object  # bench.config.AttackSettings
    unlearned_references: object = None  # () -> U-LiRA's unlearned reference outputs, computed on demand


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


def roc_metrics(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> dict[str, float]:
    """Balanced accuracy (best threshold), ROC AUC and TPR at 1% and 0.1% FPR.

    TPR at a fixed FPR is read off sklearn's `roc_curve` by linear interpolation between its
    points, so it agrees with the ROC plotted from the same curve.
    """
    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    scores = np.r_[member_scores, nonmember_scores].astype(np.float64)
    fpr, tpr, _ = roc_curve(y, scores)
    out = {"balanced_accuracy": float(np.max((tpr + 1 - fpr) / 2)), "auc": float(roc_auc_score(y, scores))}
    out.update({name: float(np.interp(x, fpr, tpr)) for name, x in FPR_POINTS.items()})
    return out


def scored(member_scores, nonmember_scores, **extra) -> AttackResult:
    metrics = {**roc_metrics(member_scores, nonmember_scores), **extra}
    return AttackResult(metrics, np.asarray(member_scores, np.float32), np.asarray(nonmember_scores, np.float32))


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
def simple_mia(a: AttackInput) -> AttackResult:
    """Kit / SCRUB simple MIA: loss-only logistic regression, forget (members) vs test.

    accuracy (= balanced_accuracy) and auc are the kit's cross-validated numbers. The TPR at
    low FPR and the saved scores come from one logistic regression fitted on the whole balanced
    sample, so they follow the direction the attack learned (for class forgetting, high loss
    means member).
    """
    forget, test = a.outputs["forget"]["loss"], a.outputs["test"]["loss"]
    kit = simple_mia_scores(forget, test)
    members, nonmembers = balanced_sample(forget, test)
    x = np.r_[members, nonmembers].astype(np.float64).reshape(-1, 1)
    model = LogisticRegression().fit(x, np.r_[np.ones(len(members)), np.zeros(len(nonmembers))])
    score = lambda loss: model.decision_function(loss.astype(np.float64).reshape(-1, 1))  # noqa: E731
    result = scored(score(forget), score(test))
    return AttackResult({**result.metrics, "balanced_accuracy": kit["accuracy"], "accuracy": kit["accuracy"],
                         "auc": kit["auc"], "n_members": kit["n_members"]},
                        result.member_scores, result.nonmember_scores)


@register_attack("loss_threshold")
def loss_threshold(a: AttackInput) -> AttackResult:
    """Population threshold on the loss (Yeom et al. 2018): lower loss, more likely a member."""
    return scored(-a.outputs["forget"]["loss"], -a.outputs["test"]["loss"])


@register_attack("confidence_threshold")
def confidence_threshold(a: AttackInput) -> AttackResult:
    """Population threshold on the logit-scaled confidence log p_y - log(1 - p_y)."""
    return scored(a.outputs["forget"]["conf"], a.outputs["test"]["conf"])


@register_attack("mia_efficacy")
def mia_efficacy(a: AttackInput) -> AttackResult:
    """SalUn's MIA-Efficacy: SVC on true-class probability, retain vs test, applied to forget.

    An RBF `SVC(C=3, gamma="auto")` learns members (a retain sample the size of the test split)
    from non-members (test); efficacy is the share of the forget set it calls non-members
    (higher = more forgotten). The ROC numbers score forget against the validation split,
    which the SVC did not train on.
    """
    o = a.outputs
    prob = lambda split: np.exp(-o[split]["loss"].astype(np.float64))  # noqa: E731
    retain, test = balanced_sample(prob("retain"), prob("test"), seed=a.settings.seed)
    x = np.r_[retain, test].reshape(-1, 1)
    y = np.r_[np.ones(len(retain)), np.zeros(len(test))]
    svc = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    efficacy = float(np.mean(svc.predict(prob("forget").reshape(-1, 1)) == 0))
    member = svc.decision_function(prob("forget").reshape(-1, 1))
    return scored(member, svc.decision_function(prob("val").reshape(-1, 1)), efficacy=efficacy)
