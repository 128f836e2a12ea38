"""What each leaderboard number means: its column label, direction, unit and digits.

The leaderboard, its CSV/JSON export and the figures read these declarations; no table module
keeps its own list of names or arrows. Attacks declare theirs where they are registered
(`label`, `strength`: `bench.attacks.base`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str  # its field in an aggregated row (`bench.aggregate`) and its CSV column
    label: str  # column header
    direction: str  # "↑" higher is better, "↓" lower is better, "= retrain" retrain's value is ideal
    meaning: str  # one line for the legend
    digits: int = 1  # decimals shown in the markdown table (the export keeps full precision)

    @property
    def header(self) -> str:
        arrow = self.direction if self.direction in ("↑", "↓") else ""
        return f"{self.label} {arrow}".strip()


METRICS = {m.key: m for m in (
    Metric("avg_gap", "Avg. Gap", "↓", "mean |method − same-seed retrain| over forget, retain and test "
           "accuracy (remaining classes for class forgetting) and simple MIA, in points; ± the half-width "
           "of its 95% t-interval over seeds", 2),
    Metric("forget_acc", "Forget acc", "= retrain", "accuracy on the forget set, %"),
    Metric("retain_acc", "Retain acc", "= retrain", "accuracy on the retain set (or its fixed evaluation sample), %"),
    Metric("test_acc", "Test acc", "= retrain", "accuracy on the test split, %"),
    Metric("test_acc_remaining", "Test acc", "= retrain", "class forgetting: test accuracy on the remaining classes, %"),
    Metric("test_acc_forgotten", "Test acc, forgotten class", "= retrain",
           "class forgetting: test accuracy on the forgotten class, %"),
    Metric("simple_mia", "Simple MIA", "= retrain", "the NeurIPS 2023 kit's loss-based membership-inference "
           "accuracy, forget vs held-out, %"),
    Metric("privacy_gap", "AUC gap", "= retrain", "the strongest attack's ROC AUC minus the same-seed "
           "retrain's (ideal 0; > 0: the forget set still looks like members)", 3),
    Metric("utility_gap", "Utility gap", "↓", "mean |method − same-seed retrain| over retain and test "
           "accuracy, in points", 2),
    Metric("forget_quality", "Forget quality", "↑", "the NeurIPS 2023 score over the N seeds' runs against "
           "the N retrains (a perfect unlearner scores the null ceiling at that N)", 3),
    Metric("rte", "RTE", "↑", "run-time efficiency in compute: retrain's floating-point operations divided by "
           "the method's (same seed; forward and backward passes as `torch.utils.flop_counter` counts them, so "
           "the same on every machine)", 1),
    Metric("rte_wall", "RTE (wall)", "↑", "retrain's wall time divided by the method's (same seed), both "
           "timed after an untimed warm-up step; depends on the machine and its load", 1),
    Metric("wall_s", "Wall (s)", "↓", "wall-clock of the method call alone (for original: its training)", 2),
    Metric("gflops", "GFLOPs", "↓", "floating-point operations of the method call (for original: its training), "
           "in 10⁹", 3),
    Metric("mia_efficacy", "MIA-Efficacy", "= retrain", "SalUn's share of the forget set an SVC trained on "
           "retain vs test calls non-members, %"),
    Metric("auc", "AUC", "= retrain", "ROC AUC of members (forget set) vs non-members", 3),
    Metric("tpr_at_1pct_fpr", "TPR@1%FPR", "= retrain", "true-positive rate at 1% false positives", 3),
    Metric("tpr_at_0.1pct_fpr", "TPR@0.1%FPR", "= retrain", "true-positive rate at 0.1% false positives", 3),
    Metric("balanced_accuracy", "Bal. acc", "= retrain", "balanced accuracy at the best threshold", 3),
)}

ATTACK_METRICS = ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "balanced_accuracy")  # per attack, details
