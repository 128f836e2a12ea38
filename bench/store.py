"""Run records <-> JSON files, written atomically and never overwritten.

A record lives at `<results>/<suite>/<forget set>/<method>-<config hash>-seed<k>.json`, with
the per-example outputs beside it (`.npz`, same stem). The JSON is written last, by rename,
so a record that exists is complete; its existence is what makes a rerun skip the run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "diverged")
REQUIRED_KEYS = ("schema_version", "bench_version", "suite", "suite_hash", "method", "method_config",
                 "config_hash", "seed", "forget_set", "status", "metrics", "cost", "env")


def record_path(results_dir: Path, suite: str, forget_set: str, method: str, config_hash: str,
                seed: int) -> Path:
    return results_dir / suite / forget_set / f"{method}-{config_hash[:8]}-seed{seed}.json"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_record(path: Path, record: dict, outputs: dict[str, np.ndarray] | None) -> None:
    """Write outputs (.npz) then the record (.json); refuse to replace an existing record."""
    if path.exists():
        raise FileExistsError(f"record '{path}' exists; records are never overwritten")
    if outputs is not None:
        _atomic_write(path.with_suffix(".npz"), lambda tmp: _savez(tmp, outputs))
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    _atomic_write(path, lambda tmp: tmp.write_text(text))


def _savez(tmp: Path, outputs) -> None:
    with open(tmp, "wb") as f:  # a file object keeps numpy from appending ".npz" to the name
        np.savez_compressed(f, **outputs)


def load_record(path: Path) -> dict:
    record = json.loads(path.read_text())
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"{path}: not a run record (missing {', '.join(missing)})")
    if record["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {record['schema_version']}, expected {SCHEMA_VERSION}")
    if record["status"] not in STATUSES:
        raise ValueError(f"{path}: unknown status '{record['status']}'")
    return record


def load_records(results_dir: Path) -> list[dict]:
    """Every run record under `results_dir`, in a fixed order; `_file` says where each one lives."""
    return [{**load_record(p), "_file": str(p)} for p in sorted(results_dir.glob("*/*/*.json"))]


def load_outputs(record_file: Path) -> dict[str, np.ndarray]:
    with np.load(record_file.with_suffix(".npz"), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
