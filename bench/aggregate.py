"""One leaderboard section (suite × forget set) aggregated over seeds: one row of numbers per method.

Every gap is taken against the retrain run of the same seed and forget set; means and spreads
are over the seeds whose runs are `ok` (failed, diverged and collapsed runs are only counted).
The markdown tables, the CSV/JSON export and the trade-off figures all read these rows, so they
cannot disagree. Names and meanings of the fields: `bench.metrics`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.metrics import ATTACK_METRICS, gap_keys, per_record
from bench.statistics import mean_ci, rank_intervals, ranks

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
    was added with --methods, † when it runs on a forget protocol it was not designed for."""
    hashes = {r["config_hash"] for r in records if r["method"] == record["method"]}
    name = record["method"] if len(hashes) == 1 else f"{record['method']} [{record['config_hash'][:8]}]"
    if record["method"] in REFERENCE_METHODS:
        return name + " (reference)"
    if str(record.get("config_source", "")).startswith("default (added"):
        name += " (added)"  # run with --methods although its suite lacks it: its defaults, not the suite's
    off = record["forget_set"]["protocol"] not in record.get("method_protocols", ("random", "class", "file"))
    return name + (" †" if off else "")


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
    def gap(run, ref):
        a, b = mia(run).get(attack, {}).get(key), mia(ref).get(attack, {}).get(key)
        return a - b if a is not None and b is not None else None
    return gap


def section_rows(records: list[dict]) -> list[dict]:
    """One row per method of one section, best Avg. Gap first, with its rank (`bench.statistics`)."""
    class_forgetting = records[0]["forget_set"]["protocol"] == "class"
    retrain, attacks, headline = retrain_by_seed(records), attacks_in(records), headline_attack(records)
    by_flops = counts_flops(records)
    groups = defaultdict(list)
    for r in records:
        groups[label(r, records)].append(r)
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
        by_seed = _per_seed(ok, retrain, _mean_abs_gap(gap_keys("avg_gap", class_forgetting), class_forgetting))
        if by_seed:
            row["avg_gap"], row["avg_gap_ci"], _ = mean_ci(list(by_seed.values()))
            row["avg_gap_ci"] = None if np.isnan(row["avg_gap_ci"]) else row["avg_gap_ci"]
            row["avg_gap_std"] = float(np.std(list(by_seed.values()), ddof=1)) if len(by_seed) > 1 else None
        if first["method"] not in REFERENCE_METHODS:
            gaps[name] = by_seed
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
        if first["method"] != "retrain":
            row.update(forget_quality(ok, list(retrain.values())))
        if first["method_config"]:
            row["config"] = dict(sorted(first["method_config"].items()))
        row["config_source"] = first.get("config_source")
        rows.append(row)
    rows.sort(key=lambda row: (row.get("avg_gap", float("inf")), row["method"]))
    rank, places = ranks(gaps), rank_intervals(gaps)
    for row in rows:
        row["rank"] = rank.get(row["method"])
        if row["method"] in places:  # place by mean Avg. Gap and its bootstrap interval over seeds
            row["place"], row["place_low"], row["place_high"] = places[row["method"]]
    return rows


def forget_quality(runs: list[dict], retrains: list[dict]) -> dict:
    """NeurIPS 2023 forget quality over the seeds' runs against the seeds' retrains (N = seeds);
    {} when N < 3 (the official buckets need ceil(log(N - 1)) > 0) or the outputs are unreadable."""
    from bench.attacks.forget_quality import forget_quality as score
    from bench.store import load_outputs

    n = min(len(runs), len(retrains))
    if n < 3:
        return {}
    phi = lambda rs: np.stack([load_outputs(Path(r["_file"]))["forget_conf"] for r in rs[:n]])  # noqa: E731
    mean = lambda rs, k: float(np.mean([r["metrics"][k] for r in rs[:n]]))  # noqa: E731
    try:
        fq = score(phi(runs), phi(retrains), (mean(runs, "retain_acc"), mean(retrains, "retain_acc")),
                   (mean(runs, "test_acc"), mean(retrains, "test_acc")))
    except (OSError, KeyError, ValueError):  # outputs missing or unreadable: no score, not a crash
        return {}
    return {"forget_quality": float(fq["forget_quality"]), "forget_quality_n": n,
            "forget_quality_null": float(fq["null_ceiling"])}


def provenance(records: list[dict]) -> str:
    """Which commits a section's records were made from, and whether any from uncommitted code."""
    shas = sorted({(r.get("env") or {}).get("git_sha") or "unknown" for r in records})
    dirty = sum(1 for r in records if (r.get("env") or {}).get("git_dirty"))
    text = ", ".join(f"`{s[:10]}`" for s in shas)
    return f"commit{'s' if len(shas) > 1 else ''} {text}" + (f" ({dirty} records from uncommitted code)"
                                                             if dirty else " (clean)")
