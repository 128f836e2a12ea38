"""Population attacks on the loss: the kit's simple MIA, a loss threshold, SalUn's MIA-Efficacy.

`confidence_threshold` is gone: a threshold on log p_y - log(1 - p_y) ranks examples exactly as
a threshold on the loss -log p_y does (both are monotone in p_y), so it duplicated a column.
"""

from __future__ import annotations

import numpy as np
from sklearn import config_context
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.svm import SVC

from bench.attacks.base import AttackInput, AttackResult, balanced_sample, register_attack, roc_metrics, scored
from bench.metrics import fitted
from bench.spec import derive_seed


def simple_mia_scores(member_loss: np.ndarray, nonmember_loss: np.ndarray,
                      n_splits: int = 10, seed: int = 0) -> dict[str, float]:
    """The NeurIPS 2023 kit's attack: logistic regression on the loss alone, 10 stratified splits.

    Members and non-members are balanced by subsampling the larger group; the score is the mean
    held-out accuracy over `StratifiedShuffleSplit(n_splits=10)`, and the mean held-out ROC AUC
    over the same splits. The kit fixes `random_state=0`; here `seed` drives both the subsample
    and the splits, so that the spread over a suite's seeds includes their variance.
    """
    members, nonmembers = balanced_sample(member_loss, nonmember_loss, seed)
    x = np.concatenate([members, nonmembers]).astype(np.float64).reshape(-1, 1)
    y = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))]).astype(int)
    cv = StratifiedShuffleSplit(n_splits=n_splits, random_state=seed % 2**32)
    accuracy, auc = [], []
    # sklearn's cross_validate(LogisticRegression(), cv=cv, scoring=("accuracy", "roc_auc")), unrolled:
    # the same fits and scores, without the per-call validation that cost more than the fits
    with config_context(skip_parameter_validation=True):
        for train, test in cv.split(x, y):
            model = LogisticRegression().fit(x[train], y[train])
            accuracy.append(np.mean(model.predict(x[test]) == y[test]))
            score = model.decision_function(x[test])
            auc.append(roc_metrics(score[y[test] == 1], score[y[test] == 0])["auc"])
    return {"accuracy": float(np.mean(accuracy)), "auc": float(np.mean(auc)),
            "n_members": int(len(members)), "n_nonmembers": int(len(nonmembers))}


@register_attack("simple", label="Simple MIA", strength=1,
                 resolution=fitted("accuracy", "auc", "balanced_accuracy", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"))
def simple_mia(a: AttackInput) -> AttackResult:
    """Kit / SCRUB simple MIA: loss-only logistic regression, forget (members) vs held-out.

    accuracy (= balanced_accuracy) and auc are the kit's cross-validated numbers, on a balanced
    subsample and splits drawn from the run's seed. The TPR at low FPR and the saved scores come
    from one logistic regression fitted on the whole balanced sample, so they follow the
    direction the attack learned.
    """
    seed = derive_seed(a.seed, "simple")
    forget, held_out = a.members()["loss"], a.nonmembers()["loss"]
    kit = simple_mia_scores(forget, held_out, seed=seed)
    members, nonmembers = balanced_sample(forget, held_out, seed)
    x = np.r_[members, nonmembers].astype(np.float64).reshape(-1, 1)
    model = LogisticRegression().fit(x, np.r_[np.ones(len(members)), np.zeros(len(nonmembers))])
    score = lambda loss: model.decision_function(loss.astype(np.float64).reshape(-1, 1))  # noqa: E731
    result = scored(score(forget), score(held_out))
    return AttackResult({**result.metrics, "balanced_accuracy": kit["accuracy"], "accuracy": kit["accuracy"],
                         "auc": kit["auc"], "n_members": kit["n_members"]},
                        result.member_scores, result.nonmember_scores)


@register_attack("loss_threshold", label="Loss threshold", strength=1)
def loss_threshold(a: AttackInput) -> AttackResult:
    """Population threshold on the loss (Yeom et al. 2018): lower loss, more likely a member."""
    return scored(-a.members()["loss"], -a.nonmembers()["loss"])


def svc_training_sets(a: AttackInput) -> tuple[np.ndarray, np.ndarray]:
    """MIA-Efficacy's SVC training data: (members, non-members) as true-class probabilities, each
    (n, 1) float64: a retain sample the size of the test split and the test split (without the
    forgotten class under class forgetting)."""
    o = a.outputs
    test = o["test"]
    if a.forget_label is not None:
        keep = test["label"] != a.forget_label
        test = {k: v[keep] for k, v in test.items()}
    return balanced_sample(_prob(o["retain"]), _prob(test), seed=derive_seed(a.seed, "mia_efficacy"))


def _prob(out: dict) -> np.ndarray:
    return np.exp(-out["loss"].astype(np.float64)).reshape(-1, 1)


@register_attack("mia_efficacy", label="MIA-Efficacy", strength=0,
                 resolution=fitted("efficacy", "auc", "balanced_accuracy", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"))
def mia_efficacy(a: AttackInput) -> AttackResult:
    """SalUn's MIA-Efficacy: SVC on true-class probability, retain vs test, applied to forget.

    An RBF `SVC(C=3, gamma="auto")` learns members (a retain sample the size of the test split,
    drawn from the run's seed) from non-members (test); efficacy is the share of the forget set
    it calls non-members (higher = more forgotten). For class forgetting the test split loses the
    forgotten class first, as in SalUn (Classification/dataset.py lines 607-609, for a whole
    class; evaluation/SVC_MIA.py). The ROC numbers score forget against the held-out examples of
    the validation split, which the SVC did not train on.
    """
    retain, test = svc_training_sets(a)
    svc = SVC(C=3, gamma="auto", kernel="rbf").fit(np.r_[retain, test], np.r_[np.ones(len(retain)), np.zeros(len(test))])
    efficacy = float(np.mean(svc.predict(_prob(a.members())) == 0))
    return scored(svc.decision_function(_prob(a.members())), svc.decision_function(_prob(a.nonmembers("val"))),
                  efficacy=efficacy)
