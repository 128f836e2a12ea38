"""Run records <-> JSON files, written atomically and never overwritten.

A record lives at `<results>/<suite>/<forget set>/<method>-<config hash>-seed<k>.json`, with
the per-example outputs beside it (`.npz`, same stem). The JSON is written last, by rename,
so a record that exists is complete; its existence is what makes a rerun skip the run.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from bench.files import inside, read_npz, write_npz, write_text
from bench.metrics import ATTACK_METRICS, METRICS

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "diverged", "collapsed")
REQUIRED_KEYS = ("schema_version", "bench_version", "suite", "suite_hash", "method", "method_config",
                 "config_hash", "seed", "forget_set", "status", "metrics", "cost", "env")


def record_path(results_dir: Path, suite: str, forget_set: str, method: str, config_hash: str,
                seed: int) -> Path:
    """Where a run's record lives; ValueError if a name is not one plain path component."""
    if any(not part or part in (".", "..") or "/" in part or "\\" in part for part in (suite, forget_set, method)):
        raise ValueError(f"not a plain name among {suite!r}, {forget_set!r}, {method!r}")
    return inside(results_dir, results_dir / suite / forget_set / f"{method}-{config_hash[:8]}-seed{seed}.json")


def write_record(path: Path, record: dict, outputs: dict[str, np.ndarray] | None) -> None:
    """Write outputs (.npz) then the record (.json); refuse to replace an existing record."""
    if path.exists():
        raise FileExistsError(f"record '{path}' exists; records are never overwritten")
    if outputs is not None:
        write_npz(path.with_suffix(".npz"), outputs, compressed=True)
    write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def load_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not a run record")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"{path}: not a run record (missing {', '.join(missing)})")
    version = record["schema_version"]
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise NewerRecord(f"{path}: written by a newer unlearn-bench (schema_version {version}; this one reads "
                          f"{SCHEMA_VERSION}); update unlearn-bench to read it")
    if version != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {version!r}, expected {SCHEMA_VERSION}")
    if record["status"] not in STATUSES:
        raise ValueError(f"{path}: unknown status '{record['status']}'")
    problem = value_problem(record)
    if problem:
        raise ValueError(f"{path}: {problem}")
    return record


class NewerRecord(ValueError):
    """A record of a later schema: not corrupt, and never moved aside or rerun."""


def _number(x, finite: bool = True) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and (not finite or math.isfinite(x))


def value_problem(record: dict) -> str | None:
    """What is wrong with a record's values, or None: its seed must be an integer; every metric the
    board reads (`bench.metrics`: accuracies, simple MIA, MIA-Efficacy, each attack's ROC numbers)
    a finite number where present; its cost's wall time and FLOPs numbers."""
    if not isinstance(record["seed"], int) or isinstance(record["seed"], bool):
        return f"seed {record['seed']!r} is not an integer"
    metrics, cost = record["metrics"], record["cost"]
    if record["status"] == "ok" and not isinstance(metrics, dict):
        return "an ok record without metrics"
    if not isinstance(cost, dict) or not all(_number(cost[k]) for k in ("wall_s", "flops") if cost.get(k) is not None):
        return "cost: wall_s and flops must be finite numbers"
    for m in METRICS.values():
        if m.source and metrics and (value := _at(metrics, m.source)) is not None and not _number(value):
            return f"metric {m.source} is {value!r}, not a finite number"
    for attack, result in ((metrics or {}).get("mia") or {}).items():
        if not isinstance(result, dict):
            return f"attack {attack}: {result!r} is not a mapping of metrics"
        for key in ATTACK_METRICS:
            if result.get(key) is not None and not _number(result[key]):
                return f"metric mia.{attack}.{key} is {result[key]!r}, not a finite number"
    return None


def _at(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def recorded(path: Path) -> bool:
    """True if a usable record exists at `path`. An unusable one (truncated, not a record, or an `ok`
    record whose outputs are gone) is reported and moved aside to `<name>.corrupt`, so its run is
    done again."""
    if not path.exists():
        return False
    try:
        if load_record(path)["status"] == "ok" and not path.with_suffix(".npz").is_file():
            raise ValueError("its outputs (.npz) are missing")
        return True
    except NewerRecord as e:  # left as it is: its run counts as done
        print(f"unlearn-bench: warning: {e}; left as it is, its run is not done again.", file=sys.stderr)
        return True
    except (ValueError, OSError) as e:  # JSONDecodeError is a ValueError
        for part in (path, path.with_suffix(".npz")):
            if part.exists():
                os.replace(part, part.with_name(part.name + ".corrupt"))
        print(f"unlearn-bench: warning: record '{path}' is unreadable ({e}); moved aside to "
              f"'{path.name}.corrupt', its run is done again.", file=sys.stderr)
        return False


def load_records(results_dir: Path, skipped: list[str] | None = None) -> list[dict]:
    """Every readable run record under `results_dir`, in a fixed order; `_file` says where each one
    lives. Files that are not readable records are left out and, if `skipped` is given, named there."""
    records = []
    for p in sorted(results_dir.glob("*/*/*.json")):
        try:
            records.append({**load_record(p), "_file": str(p)})
        except (ValueError, OSError, TypeError, AttributeError) as e:
            if skipped is not None:
                skipped.append(f"{p.relative_to(results_dir).as_posix()} ({str(e).replace(str(p) + ': ', '')})")
    return records


def load_outputs(record_file: Path) -> dict[str, np.ndarray]:
    return read_npz(record_file.with_suffix(".npz"))
