"""What each number means: its column label, direction, unit, digits and resolution.

The leaderboard, its CSV/JSON export, the figures and `unlearn-bench reproduce` read these
declarations; no table module keeps its own list of names or arrows. Attacks declare theirs
where they are registered (`label`, `strength`, `resolution`: `bench.attacks.base`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Resolution:
    """The smallest change a metric can show, and how many such steps a rerun on other kernels may
    move it and still count as the same number (`unlearn-bench reproduce`).

    `per`: "example" (an accuracy over the examples of `split`: 1/n), "member" (one member of the
    attack's members: 1/n_members; a TPR at a fixed FPR, a balanced accuracy), "pair" (an AUC:
    1/(n_members x n_nonmembers)), "grid" (a value chosen from a grid of spacing `step`), "setup"
    (how the attack ran, not what it found: e.g. how many of U-LiRA's reference models survived
    unlearning; those references are shared by every seed, so the seeds show no spread of it, and
    on other kernels they are another draw), "exact" (a setting or a count: no step). A metric from a model the attack fits (a logistic
    regression, an SVC) moves by more than one example when one example's score moves, so such
    attacks declare "member" with `steps` 2; the largest moves seen across CPUs were one member.
    """

    per: str = "exact"
    split: str | None = None
    steps: int = 1
    step: float = 0.0  # "grid" only

    def size(self, counts: "Counts", attack: str | None = None) -> float | None:
        """One step in the metric's units (a fraction, like the metric), or None when unknown."""
        if self.per == "grid":
            return self.step
        if self.per == "example":
            n = counts.splits.get(self.split)
            return 1 / n if n else None
        if self.per in ("member", "pair") and attack in counts.attacks:
            members, nonmembers = counts.attacks[attack]
            return 1 / members if self.per == "member" else 1 / (members * nonmembers)
        return None


EXACT = Resolution()
SETUP = Resolution("setup")


@dataclass(frozen=True)
class Counts:
    """How many examples each number of one record was computed over: per split (forget, retain,
    val, test, and for class forgetting test_remaining and test_forgotten) and per attack (members,
    non-members). Read from the record's saved outputs (`Counts.of`)."""

    splits: dict
    attacks: dict

    @classmethod
    def of(cls, outputs: dict, forget_label: int | None) -> "Counts":
        """From a record's per-example outputs (`bench.store.load_outputs`); empty when None."""
        if outputs is None:
            return cls({}, {})
        splits = {name: len(outputs[f"{name}_label"]) for name in ("forget", "retain", "val", "test")
                  if f"{name}_label" in outputs}
        if forget_label is not None and "test_label" in outputs:
            forgotten = int(np.sum(outputs["test_label"] == forget_label))
            splits.update(test_forgotten=forgotten, test_remaining=splits["test"] - forgotten)
        attacks = {k[len("attack_"):-len("_member")]: (len(v), len(outputs[k[:-len("member")] + "nonmember"]))
                   for k, v in outputs.items() if k.startswith("attack_") and k.endswith("_member")}
        return cls(splits, attacks)


@dataclass(frozen=True)
class Metric:
    """One number of the board, declared once: what it is (label, direction, meaning, digits), how a
    record gives it (`source`), which gaps average it (`part_of`), for which sections (`sections`),
    where the headline table shows it (`headline`), and its resolution. A new column is one entry."""

    key: str  # its field in an aggregated row (`bench.aggregate`) and its CSV column
    label: str  # column header
    direction: str  # "↑" higher is better, "↓" lower is better, "= retrain" retrain's value is ideal
    meaning: str  # one line for the legend
    digits: int = 1  # decimals shown in the markdown table (the export keeps full precision)
    resolution: Resolution = EXACT  # of the record's value (a fraction); `reproduce` reads it
    source: str | None = None  # dotted path of a per-record fraction in record["metrics"], shown in %
    part_of: tuple[str, ...] = ()  # the gaps to retrain that average |method − retrain| of it
    sections: str = "all"  # "all", or "class": class-forgetting sections only
    class_variant: str | None = None  # in class-forgetting sections this metric's gap and headline roles go to it
    headline: int | None = None  # position in the headline table; None: details only
    needs_attack: bool = False  # a headline column only where the section has a headline attack

    @property
    def header(self) -> str:
        arrow = self.direction if self.direction in ("↑", "↓") else ""
        return f"{self.label} {arrow}".strip()

    def shown_in(self, class_forgetting: bool) -> bool:
        return self.sections == "all" or class_forgetting

    def serves(self, class_forgetting: bool) -> bool:
        """Whether it takes its gap and headline roles in such a section (not handed to a class variant)."""
        return self.shown_in(class_forgetting) and not (class_forgetting and self.class_variant)

    def value(self, record: dict) -> float | None:
        """The record's value of a per-record metric (`source`), in %; None when it lacks one."""
        node = record.get("metrics") or {}
        for part in self.source.split(".") if self.source else ["\0"]:
            node = node.get(part) if isinstance(node, dict) else None
        return 100 * node if isinstance(node, (int, float)) and not isinstance(node, bool) else None


METRICS = {m.key: m for m in (
    Metric("avg_gap", "Avg. Gap", "↓", "mean |method − same-seed retrain| over forget, retain and test "
           "accuracy (remaining classes for class forgetting) and simple MIA, in points, over every seed (a "
           "failed, diverged or collapsed seed counts with its penalty)", 2, headline=0),
    Metric("forget_acc", "Forget acc", "= retrain", "accuracy on the forget set, %",
           resolution=Resolution("example", "forget"), source="forget_acc", part_of=("avg_gap",), headline=1),
    Metric("retain_acc", "Retain acc", "= retrain", "accuracy on the retain set (or its fixed evaluation sample), %",
           resolution=Resolution("example", "retain"), source="retain_acc", part_of=("avg_gap", "utility_gap"),
           headline=2),
    Metric("val_acc", "Val acc", "= retrain", "accuracy on the validation split, %",
           resolution=Resolution("example", "val")),
    Metric("test_acc", "Test acc", "= retrain", "accuracy on the test split, %",
           resolution=Resolution("example", "test"), source="test_acc", part_of=("avg_gap", "utility_gap"),
           headline=3, class_variant="test_acc_remaining"),
    Metric("test_acc_remaining", "Test acc", "= retrain", "class forgetting: test accuracy on the remaining classes, %",
           resolution=Resolution("example", "test_remaining"), source="test_acc_remaining",
           part_of=("avg_gap", "utility_gap"), sections="class", headline=3),
    Metric("test_acc_forgotten", "Test acc, forgotten class", "= retrain",
           "class forgetting: test accuracy on the forgotten class, %",
           resolution=Resolution("example", "test_forgotten"), source="test_acc_forgotten", sections="class"),
    Metric("simple_mia", "Simple MIA", "= retrain", "the NeurIPS 2023 kit's loss-based membership-inference "
           "accuracy, forget vs held-out, %", source="mia.simple.accuracy", part_of=("avg_gap",)),
    Metric("privacy_gap", "AUC abs. gap", "↓", "|the strongest attack's ROC AUC − the same-seed retrain's|, "
           "the mean over seeds of each seed's absolute gap (ideal 0)", 3, headline=4, needs_attack=True),
    Metric("utility_gap", "Utility gap", "↓", "mean |method − same-seed retrain| over retain and test "
           "accuracy, in points", 2),
    Metric("forget_quality", "Forget quality", "↑", "the NeurIPS 2023 score of N unlearning runs from one "
           "original model against N retrains; doing nothing scores 0, a perfect unlearner about the null ceiling "
           "the section prints for its N (only where the suite runs that protocol)", 3, headline=5),
    Metric("p_best", "P(best)", "↑", "the share of paired bootstrap resamples of the seeds in which the method "
           "has the smallest Avg. Gap", 2),
    Metric("rte", "RTE", "↑", "run-time efficiency in compute: retrain's floating-point operations divided by "
           "the method's (same seed; forward and backward passes as `torch.utils.flop_counter` counts them, so "
           "the same on every machine)", 1, headline=6),
    Metric("rte_wall", "RTE (wall)", "↑", "retrain's wall time divided by the method's (same seed), both "
           "timed after an untimed warm-up step; depends on the machine and its load", 1),
    Metric("wall_s", "Wall (s)", "↓", "wall-clock of the method call alone (for original: its training)", 2),
    Metric("gflops", "GFLOPs", "↓", "floating-point operations of the method call (for original: its training), "
           "in 10⁹", 3),
    Metric("mia_efficacy", "MIA-Efficacy", "= retrain", "SalUn's share of the forget set an SVC trained on "
           "retain vs test calls non-members, %", source="mia.mia_efficacy.efficacy"),
    Metric("auc", "AUC", "= retrain", "ROC AUC of members (forget set) vs non-members", 3, Resolution("pair")),
    Metric("tpr_at_1pct_fpr", "TPR@1%FPR", "= retrain", "true-positive rate at 1% false positives", 3,
           Resolution("member")),
    Metric("tpr_at_0.1pct_fpr", "TPR@0.1%FPR", "= retrain", "true-positive rate at 0.1% false positives", 3,
           Resolution("member")),
    Metric("balanced_accuracy", "Bal. acc", "= retrain", "balanced accuracy at the best threshold", 3,
           Resolution("member")),
)}


def per_record(record: dict, class_forgetting: bool) -> dict[str, float]:
    """A record's per-record metrics (those with a `source`) in %; a value it lacks is left out."""
    out = {}
    for m in METRICS.values():
        if m.source and m.shown_in(class_forgetting) and (v := m.value(record)) is not None:
            out[m.key] = v
    return out


def gap_keys(gap: str, class_forgetting: bool) -> tuple[str, ...]:
    """The metrics a gap to retrain (`avg_gap`, `utility_gap`) averages, in declaration order."""
    return tuple(m.key for m in METRICS.values() if gap in m.part_of and m.serves(class_forgetting))


def headline_keys(class_forgetting: bool, attack: str | None) -> list[str]:
    """The headline table's numeric columns (fields of an aggregated row), in order."""
    shown = [m for m in METRICS.values() if m.headline is not None and m.serves(class_forgetting)
             and (attack or not m.needs_attack)]
    return [m.key for m in sorted(shown, key=lambda m: m.headline)]


ATTACK_METRICS = ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "balanced_accuracy")  # per attack, details


def fitted(*keys: str) -> dict[str, Resolution]:
    """The resolution of the metrics of an attack that fits a model: a member's worth, twice."""
    return {k: Resolution("member", steps=2) for k in keys}
