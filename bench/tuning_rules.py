"""What a tuning config scores and what tuning found: pure functions of trial results (`bench.tune`).

- `objective_value`: one seed's mean |method - retrain| in points over forget, retain and val
  accuracy and the simple MIA (validation data only);
- `seed_values`: a config's objective over the tuning seeds, where every seed counts (a lost seed
  scores doing nothing's value, or the config's worst `ok` seed if larger);
- `startup_trials`: TPE's random start-up, at most a third of the budget;
- `neighbours`: the configs a winner is checked against (each continuous hyperparameter x0.8 and
  x1.25); `NOTHING_MARGIN`: the share of doing nothing's objective above which a winner found
  nothing better than no unlearning.
"""

from __future__ import annotations

import numpy as np

def objective_value(trial: dict, retrain: dict) -> float:
    return float(np.mean([abs(trial[k] - retrain[k]) for k in ("forget", "retain", "val", "mia")]))


NOTHING_MARGIN = 0.9  # a winner above this share of doing nothing's objective found nothing better
STEPS = (0.8, 1.25)  # a winner's neighbours: each continuous hyperparameter times these


def startup_trials(budget: int) -> int:
    """TPE's random start-up trials: Optuna's default 10, but at most a third of the budget."""
    return max(1, min(10, budget // 3))


def seed_values(seeds: list[dict], retrains: list[dict]) -> tuple[float | None, str | None, list]:
    """(a config's objective over the tuning seeds, why it is infeasible, per-seed values). `seeds`:
    the trial's per-seed results; `retrains`: per seed, the retrain's result with `nothing` (doing
    nothing's objective there). A seed that did not end ok scores max(doing nothing, the worst ok
    seed); no ok seed at all, or a cost above retraining's, makes the config infeasible."""
    per_seed, failed = [], []
    for result, retrain in zip(seeds, retrains):
        if result["status"] == "ok" and result["flops"] > retrain["flops"]:
            return None, (f"costs more than retraining ({result['flops'] / 1e9:.3f} GFLOPs > "
                          f"{retrain['flops'] / 1e9:.3f} GFLOPs)"), []
        values = dict(result["values"] or {})
        reason = result["error"] if result["status"] != "ok" else values.pop("collapse", None)
        per_seed.append(None if reason else objective_value(values, retrain["values"]))
        failed.append(reason)
    ok = [v for v in per_seed if v is not None]
    if not ok:
        return None, failed[0], per_seed
    scored = [v if v is not None else max(r["nothing"], max(ok)) for v, r in zip(per_seed, retrains)]
    return float(np.mean(scored)), None, per_seed


def neighbours(values: dict, space: dict) -> dict[str, dict]:
    """{"lr x0.8": values with lr x0.8, ...}: each continuous hyperparameter moved by `STEPS`,
    one at a time, kept inside its search space (a step the bounds undo is left out)."""
    out = {}
    for name, search in space.items():
        if search.kind not in ("log", "float") or name not in values:
            continue
        for step in STEPS:
            moved = float(min(search.high, max(search.low, values[name] * step)))
            if moved != values[name]:
                out[f"{name} x{step:g}"] = {**values, name: moved}
    return out
