"""Does a published record agree with its own saved outputs? (`unlearn-bench reproduce`)

A record's accuracies are recomputed from the per-example predictions and labels saved beside
it (`.npz`), and every attack's ROC numbers from the membership scores saved there. A record
whose JSON says otherwise was edited, or saved from other outputs: its numbers cannot be
trusted, whatever a rerun gives. Accuracies must agree exactly. ROC numbers were computed from
float64 scores and the scores are saved as float32, so they must agree within the metric's
resolution (ties can merge). Metrics an attack declares a resolution of its own for are not
plain ROC numbers of its saved scores (a cross-validated score, a model fitted in memory) and
are not recomputed.
"""

from __future__ import annotations

from bench.attacks import attack_registry, roc_metrics
from bench.evaluate import accuracy_metrics, unflatten_outputs
from bench.metrics import METRICS, Counts


def disagreements(record: dict, outputs: dict | None) -> list[tuple[str, object, object]]:
    """[(flat metric name, the record's value, the value its outputs give)] for an `ok` record."""
    if record["status"] != "ok" or outputs is None:
        return []
    metrics, out = record.get("metrics") or {}, []
    for key, value in accuracy_metrics(unflatten_outputs(outputs), record["forget_set"].get("label")).items():
        if key in metrics and metrics[key] != value:
            out.append((key, metrics[key], value))
    counts = Counts.of(outputs, record["forget_set"].get("label"))
    for attack, result in (metrics.get("mia") or {}).items():
        member, nonmember = outputs.get(f"attack_{attack}_member"), outputs.get(f"attack_{attack}_nonmember")
        if member is None or nonmember is None or attack not in attack_registry:
            continue
        own = attack_registry.get(attack).meta.get("resolution", {})
        for key, value in roc_metrics(member, nonmember).items():
            if key in own or not isinstance(result.get(key), (int, float)):
                continue
            step = METRICS[key].resolution.size(counts, attack) or 0.0
            if abs(result[key] - value) > step * METRICS[key].resolution.steps * (1 + 1e-9):
                out.append((f"mia.{attack}.{key}", result[key], value))
    return out
