"""One leaderboard section (suite × forget set) aggregated over seeds: one row of numbers per method.

Every gap is taken against the retrain run of the same seed and forget set. Every seed counts:
a method's run that failed, diverged or collapsed enters its Avg. Gap (and so its rank) with a
penalty, the largest Avg. Gap any other row has on that seed (`original`, doing nothing,
included; retrain's 0 not) or the method's own worst seed if larger, so a failed seed never
scores better than doing nothing or than any row that ran on it; the other numbers (accuracies,
privacy, cost) are over the `ok` runs, and the row counts the penalised seeds. Places compare
the seeds `original` has (`ranking_seeds`), with 95% intervals and the probability of being best
over a paired bootstrap of the seeds; `original` is placed like a method, and a method not
clearly better than it is marked (`bench.statistics`). The
section's noise floor is the Avg. Gap between retrains of different seeds. Forget quality, where
the suite runs its protocol, comes from the forget-quality sets beside the records
(`bench.forget_quality_runs`), not from the seeds. The markdown
tables, the CSV/JSON export and the trade-off figures all read these rows, so they cannot
disagree. Names and meanings of the fields: `bench.metrics`.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np

from bench import forget_quality_runs
from bench.metrics import ATTACK_METRICS, gap_keys, per_record
from bench.statistics import bootstrap_ranks, mean_ci

REFERENCE_METHODS = ("original", "retrain")


def retrain_by_seed(records: list[dict]) -> dict[int, dict]:
    """The retrain reference of each seed in one section: its first `ok` record by config hash.
    Every number of the section compares against this one choice."""
    chosen: dict[int, dict] = {}
    for r in sorted(records, key=lambda r: r["config_hash"]):
        if r["method"] == "retrain" and r["status"] == "ok":
            chosen.setdefault(r["seed"], r)
    return chosen


def label(record: dict, records: list[dict]) -> str:
    """A method's row name: its config hash when a section has several configs of it, a mark when it
    was added with --methods, † when it runs on a forget protocol it was not designed for, ⚠ when
    tuning chose it at the edge of stability, ∅ when tuning found nothing better than doing nothing."""
    hashes = {r["config_hash"] for r in records if r["method"] == record["method"]}
    name = record["method"] if len(hashes) == 1 else f"{record['method']} [{record['config_hash'][:8]}]"
    if record["method"] in REFERENCE_METHODS:
        return name + " (reference)"
    if str(record.get("config_source", "")).startswith("default (added"):
        name += " (added)"  # run with --methods although its suite lacks it: its defaults, not the suite's
    protocol = record["forget_set"]["protocol"]  # methods declare random and class; a file is neither: no mark
    off = protocol in ("random", "class") and protocol not in record.get("method_protocols", ("random", "class"))
    marks = record.get("tuning_marks") or ()
    return (name + (" †" if off else "") + (" ⚠" if "edge_of_stability" in marks else "")
            + (" ∅" if "no_better_than_nothing" in marks else ""))


def mia(record: dict) -> dict:
    return (record.get("metrics") or {}).get("mia") or {}


def attacks_in(records: list[dict]) -> list[str]:
    """Attacks found in the records that are still registered (a retired one in older records is
    not shown), strongest first (`strength`, declared where each attack is registered)."""
    from bench.attacks import attack_registry

    names = {a for r in records if r["status"] == "ok" for a in mia(r) if a in attack_registry}
    return sorted(names, key=lambda a: (-attack_registry.get(a).info.strength, a))


def headline_attack(records: list[dict]) -> str | None:
    """The strongest attack with a ROC (strength > 0) the section's records have."""
    from bench.attacks import attack_registry

    strong = [a for a in attacks_in(records) if attack_registry.get(a).info.strength > 0]
    return strong[0] if strong else None


def _stats(row: dict, key: str, values: list[float]) -> None:
    """`key`: the mean; `key_std`: the sample std (None below two values); nothing when no value."""
    if values:
        row[key] = float(np.mean(values))
        row[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None


def _per_seed(ok: list[dict], retrain: dict[int, dict], value) -> dict[int, float]:
    """{seed: value(run, its retrain)} over the runs whose value exists (value returns None if not)."""
    out = {}
    for r in ok:
        if r["seed"] in retrain:
            v = value(r, retrain[r["seed"]])
            if v is not None:
                out[r["seed"]] = v
    return out


def _mean_abs_gap(keys, class_forgetting):
    def gap(run, ref):
        a, b = per_record(run, class_forgetting), per_record(ref, class_forgetting)
        shared = [k for k in keys if k in a and k in b]
        return float(np.mean([abs(a[k] - b[k]) for k in shared])) if shared else None
    return gap


def counts_flops(records: list[dict]) -> bool:
    """True when every `ok` record of a section carries its FLOP count: RTE is then compute RTE
    (the same on every machine and cache state); records made before the count get wall-clock RTE."""
    return all(isinstance(r["cost"].get("flops"), int) for r in records if r["status"] == "ok")


def _ratio(cost: str):
    """RTE by one cost field: retrain's over the run's (same seed)."""
    return lambda run, ref: ref["cost"][cost] / max(run["cost"][cost], 1e-9)


def _attack_gap(attack: str, key: str):
    """|the run's attack metric − the same-seed retrain's| (absolute: signed gaps of different
    seeds cancel, e.g. +0.001 for a mean |gap| of 0.017)."""
    def gap(run, ref):
        a, b = mia(run).get(attack, {}).get(key), mia(ref).get(attack, {}).get(key)
        return abs(a - b) if a is not None and b is not None else None
    return gap


def noise_floor(records: list[dict]) -> dict | None:
    """How close retraining itself comes to retraining: the Avg. Gap between the `ok` retrains of
    every pair of seeds of a section, {"mean", "low", "high", "pairs"}; None below two retrains."""
    class_forgetting = records[0]["forget_set"]["protocol"] == "class"
    gap = _mean_abs_gap(gap_keys("avg_gap", class_forgetting), class_forgetting)
    retrains = list(retrain_by_seed(records).values())
    pairs = [g for a, b in itertools.combinations(retrains, 2) if (g := gap(a, b)) is not None]
    if not pairs:
        return None
    return {"mean": float(np.mean(pairs)), "low": float(min(pairs)), "high": float(max(pairs)), "pairs": len(pairs)}


def _terms(runs: list[dict], retrain: dict[int, dict], keys, class_forgetting: bool) -> frozenset:
    """The Avg. Gap terms a row's `ok` runs and their retrains have on every seed: a term missing on
    one seed (an attack that could not score it) leaves every seed of the row, so its per-seed
    gaps stay comparable."""
    ok = [r for r in runs if r["status"] == "ok"]
    both = _per_seed(ok, retrain, lambda run, ref: frozenset(per_record(run, class_forgetting))
                     & frozenset(per_record(ref, class_forgetting)))
    return frozenset(keys).intersection(*both.values())


def _penalties(runs: list[dict], counted: dict[int, float], worst: dict[int, float],
               retrain: dict[int, dict]) -> dict[int, float]:
    """{seed: penalty} for the seeds with a retrain whose run failed, diverged or collapsed: the
    largest Avg. Gap any row has on that seed (`worst`, `original` included), or the method's own
    worst `ok` seed if larger. So a failed seed never scores better than doing nothing, than any
    row that ran on it, or than the method's own worst seed."""
    out = {}
    for r in runs:
        seed = r["seed"]
        if r["status"] != "ok" and seed in retrain and seed not in counted:
            penalty = max(worst.get(seed, -np.inf), *counted.values(), -np.inf)
            if np.isfinite(penalty):
                out[seed] = float(penalty)
    return out


def section_rows(records: list[dict]) -> list[dict]:
    """One row per method of one section, best Avg. Gap first, with its rank (`bench.statistics`)."""
    class_forgetting = records[0]["forget_set"]["protocol"] == "class"
    retrain, attacks, headline = retrain_by_seed(records), attacks_in(records), headline_attack(records)
    by_flops = counts_flops(records)
    groups = defaultdict(list)
    for r in records:
        groups[label(r, records)].append(r)
    keys = gap_keys("avg_gap", class_forgetting)
    used = {name: _terms(runs, retrain, keys, class_forgetting) for name, runs in groups.items()}
    ok_gaps = {name: _per_seed([r for r in runs if r["status"] == "ok"], retrain,  # the same terms on every seed
                               _mean_abs_gap(tuple(k for k in keys if k in used[name]), class_forgetting))
               for name, runs in groups.items()}
    worst = defaultdict(lambda: -np.inf)  # the largest Avg. Gap of any row on each seed, retrain (0) aside
    for name, by_seed in ok_gaps.items():
        for seed, gap in by_seed.items() if groups[name][0]["method"] != "retrain" else ():
            worst[seed] = max(worst[seed], gap)
    original_label = next((label(r, records) for r in sorted(records, key=lambda r: r["config_hash"])
                           if r["method"] == "original"), None)  # with several configs, the one retrain_by_seed would take
    floor = noise_floor(records)
    rows, gaps = [], {}
    for name, runs in groups.items():
        ok = [r for r in runs if r["status"] == "ok"]
        statuses = defaultdict(int)
        for r in runs:
            statuses[r["status"]] += 1
        first = runs[0]
        row = {"suite": first["suite"], "forget_set": first["forget_set"]["name"], "method": name,
               "runs": dict(sorted(statuses.items(), key=lambda kv: (kv[0] != "ok", kv[0]))), "n": len(ok)}
        values = [per_record(r, class_forgetting) for r in ok]
        for key in sorted({k for v in values for k in v}):
            _stats(row, key, [v[key] for v in values if key in v])
        if missing := [k for k in keys if k not in used[name]]:
            row["avg_gap_missing"] = missing  # e.g. an attack that could not score a forget set of 3 images
        by_seed = ok_gaps[name]
        if first["method"] not in REFERENCE_METHODS:  # every seed counts: a failed run's gap is a penalty
            penalties = _penalties(runs, by_seed, dict(worst), retrain)
            by_seed, row["penalised"] = {**by_seed, **penalties}, len(penalties)
        if first["method"] != "retrain":  # original is ranked on its ok seeds (a failed one is flagged)
            gaps[name] = by_seed
        if by_seed:
            row["avg_gap"], row["avg_gap_ci"], _ = mean_ci(list(by_seed.values()))
            row["avg_gap_ci"] = None if np.isnan(row["avg_gap_ci"]) else row["avg_gap_ci"]
            row["avg_gap_std"] = float(np.std(list(by_seed.values()), ddof=1)) if len(by_seed) > 1 else None
            if floor is not None:  # a penalised row is never "as close as a second retrain"
                row["within_noise_floor"] = row["avg_gap"] <= floor["mean"] and not row.get("penalised")
        if first["method"] != "original":  # the original's cost is a training, not an unlearning
            wall = list(_per_seed(ok, retrain, _ratio("wall_s")).values())
            _stats(row, "rte_wall", wall)
            _stats(row, "rte", list(_per_seed(ok, retrain, _ratio("flops")).values()) if by_flops else wall)
        _stats(row, "wall_s", [r["cost"]["wall_s"] for r in ok])
        _stats(row, "gflops", [r["cost"]["flops"] / 1e9 for r in ok if "flops" in r["cost"]])
        row["rte_basis"] = "flops" if by_flops else "wall"
        _stats(row, "utility_gap", list(_per_seed(ok, retrain, _mean_abs_gap(gap_keys("utility_gap", class_forgetting),
                                                                              class_forgetting)).values()))
        if headline:
            row["privacy_attack"] = headline
            _stats(row, "privacy_gap", list(_per_seed(ok, retrain, _attack_gap(headline, "auc")).values()))
        row["attacks"] = {}
        for a in attacks:
            cells = {"failed": sum(1 for r in ok if "error" in mia(r).get(a, {}))}
            for key in ATTACK_METRICS:
                _stats(cells, key, [mia(r)[a][key] for r in ok if mia(r).get(a, {}).get(key) is not None])
                gap = list(_per_seed(ok, retrain, _attack_gap(a, key)).values())
                if gap:
                    cells[f"{key}_gap"] = float(np.mean(gap))
            row["attacks"][a] = cells
        if first["method_config"]:
            row["config"] = dict(sorted(first["method_config"].items()))
        row["config_source"] = first.get("config_source")
        rows.append(row)
    retrain_hash = next(iter(retrain.values()))["config_hash"] if retrain else None
    challenge, _ = forget_quality_runs.section_scores(records, retrain_hash)
    for row in rows:  # a row's runs share one config hash (its label says which where several)
        row.update(challenge.get(groups[row["method"]][0]["config_hash"], {}))
    seeds = ranking_seeds(gaps, original_label)
    places = bootstrap_ranks({k: v for k, v in gaps.items() if seeds <= set(v)}, baseline=original_label)
    for row in rows:
        row["ranking_seeds"] = sorted(seeds)
        for key, value in places.get(row["method"], {}).items():
            row[key.replace("baseline", "original")] = value
        if floor is not None:
            row["noise_floor"] = floor["mean"]
    # retrain (the reference) first, then by place, then rows without one by Avg. Gap
    references = {name for name, runs in groups.items() if runs[0]["method"] == "retrain"}
    rows.sort(key=lambda row: (row["method"] not in references, "place" not in row, row.get("place", 0),
                               row.get("avg_gap", float("inf")), row["method"]))
    return rows


def ranking_seeds(gaps: dict[str, dict[int, float]], original: str | None) -> set[int]:
    """The seeds a section's places compare on: those `original` has, or else the seed set most
    rows have. A row lacking one of them is not ranked (it would shrink every row's comparison)."""
    if original in gaps and gaps[original]:
        return set(gaps[original])
    sets = [frozenset(v) for v in gaps.values() if v]
    return set(max(sets, key=lambda s: (sets.count(s), len(s), sorted(s)))) if sets else set()


def provenance(records: list[dict]) -> str:
    """Which commits a section's records were made from, and whether any from uncommitted code."""
    shas = sorted({(r.get("env") or {}).get("git_sha") or "unknown" for r in records})
    dirty = sum(1 for r in records if (r.get("env") or {}).get("git_dirty"))
    text = ", ".join(f"`{s[:10]}`" for s in shas)
    return f"commit{'s' if len(shas) > 1 else ''} {text}" + (f" ({dirty} records from uncommitted code)"
                                                             if dirty else " (clean)")
