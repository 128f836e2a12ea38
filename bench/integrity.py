"""Does a published record agree with itself? (`unlearn-bench reproduce`)

`disagreements`: a record against its own saved outputs; `provenance_problems`: its outputs,
forget-set file and environment against what the rest of the publish says.

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

import hashlib
from pathlib import Path

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
        own = attack_registry.get(attack).info.resolution
        for key, value in roc_metrics(member, nonmember).items():
            if key in own or not isinstance(result.get(key), (int, float)):
                continue
            step = METRICS[key].resolution.size(counts, attack) or 0.0
            if abs(result[key] - value) > step * METRICS[key].resolution.steps * (1 + 1e-9):
                out.append((f"mia.{attack}.{key}", result[key], value))
    return out


# The fields of a record's identity a rerun must give back exactly, on any hardware.
IDENTITY = ("method", "seed", "model", "suite_hash", "method_config", "config_source", "forget_set", "attack_settings",
            "tuning_marks")
ENVIRONMENT = ("hardware", "threads", "torch", "device")  # what says which kernels ran


def provenance_problems(record: dict, outputs: dict | None, results_dir: Path, published: list[dict]) -> list[str]:
    """What is wrong with a published record beside its numbers: missing outputs, a forget-set file
    that is not the one it names (sha256), an environment unlike the other records of its commit
    (a fingerprint removed or changed by hand would otherwise buy the allowances of other hardware)."""
    out = []
    if record["status"] == "ok" and outputs is None:
        out.append("its saved outputs (.npz) are missing or unreadable")
    fs = record["forget_set"]
    path = results_dir / fs["file"] if fs.get("file") else None
    if path is not None and (not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != fs["sha256"]):
        out.append(f"the forget-set file {fs['file']} is missing or is not the one it names (sha256)")
    env = lambda r: {k: (r.get("env") or {}).get(k) for k in ENVIRONMENT}  # noqa: E731
    sha = (record.get("env") or {}).get("git_sha")
    peers = [env(r) for r in published if r["_file"] != record["_file"] and (r.get("env") or {}).get("git_sha") == sha]
    if peers and all(p == peers[0] for p in peers) and env(record) != peers[0]:
        out.append(f"its environment ({', '.join(k for k in ENVIRONMENT if env(record)[k] != peers[0][k])}) differs "
                   f"from every other record of its commit {str(sha)[:10]}")
    return out


def why_not_rerun(record: dict, rerun) -> str:
    """Why a published record has no rerun of its name: the rerun of the same run got another
    config (the suite's values, tuned.yaml or the code changed), or the suite no longer runs it."""
    same = [r for r in rerun if (r["forget_set"]["name"], r["method"], r["seed"]) ==
            (record["forget_set"]["name"], record["method"], record["seed"])]
    if not same:
        return "the suite does not run this forget set, method and seed (was the suite file changed?)"
    changed = sorted(k for k in set(record["method_config"]) | set(same[0]["method_config"])
                     if record["method_config"].get(k) != same[0]["method_config"].get(k))
    if changed:
        return f"it ran with another config ({', '.join(changed)}: the suite's values or tuned.yaml changed?)"
    return "its rerun got another record name: the code that shapes it changed since it was published"
