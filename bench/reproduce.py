"""`unlearn-bench reproduce`: rerun published records from nothing and say which ones match.

The suite's runs (or those `--methods`/`--seeds` pick) are rerun into a scratch folder with an
empty model cache, with the configs the published records ran (the published `tuned.yaml` when
they were tuned), and every metric of every rerun record is compared with the published one:
exactly, or within `tolerance` (absolute). Wall-clock fields (`*_s`) are costs, not results, and
are not compared; neither are the code hashes, which say whether the same code ran (a record
whose name differs was made by other code or other configs and is reported as not rerun).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.store import load_records


@dataclass(frozen=True)
class Verdict:
    record: str  # <suite>/<forget set>/<file>.json
    exact: bool
    within: bool  # within the tolerance (True when exact)
    differences: tuple[str, ...] = ()
    rerun: bool = True  # False: no rerun record of that name


def flat_metrics(metrics: dict, prefix: str = "") -> dict:
    """A record's metrics as one level of `a.b.c` names, without wall-clock fields and code hashes."""
    out = {}
    for key, value in metrics.items():
        if key.endswith("_s") or key == "code":
            continue
        if isinstance(value, dict):
            out.update(flat_metrics(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def compare(published: dict, rerun: dict, tolerance: float) -> Verdict:
    a, b = flat_metrics(published.get("metrics") or {}), flat_metrics(rerun.get("metrics") or {})
    differences, within = [], True
    if published["status"] != rerun["status"]:
        differences.append(f"status {published['status']} -> {rerun['status']}")
        within = False
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x == y:
            continue
        close = isinstance(x, (int, float)) and isinstance(y, (int, float)) and abs(x - y) <= tolerance
        within &= close
        differences.append(f"{key} {x} -> {y}")
    name = _name(published)
    return Verdict(name, not differences, within, tuple(differences))


def _name(record: dict) -> str:
    return "/".join(Path(record["_file"]).parts[-3:])


def published_records(results_dir: Path, suite: str, methods, seeds) -> list[dict]:
    return [r for r in load_records(results_dir) if r["suite"] == suite
            and (methods is None or r["method"] in methods) and (seeds is None or r["seed"] in seeds)]


def prepare_scratch(scratch: Path, published_dir: Path, suite: str, tuned_file: str) -> None:
    """An empty results folder and cache; the published tuned configs when there are some."""
    tuned = published_dir / suite / tuned_file
    if tuned.is_file():
        (scratch / "results" / suite).mkdir(parents=True, exist_ok=True)
        shutil.copy2(tuned, scratch / "results" / suite / tuned_file)


def verdicts(published: list[dict], rerun_dir: Path, tolerance: float) -> list[Verdict]:
    rerun = {_name(r): r for r in load_records(rerun_dir)}
    out = []
    for record in published:
        other = rerun.get(_name(record))
        out.append(compare(record, other, tolerance) if other else
                   Verdict(_name(record), False, False, ("not rerun: this checkout's code or configs make "
                                                         "another record (published by other code?)",), False))
    return out


def summary(results: list[Verdict], tolerance: float) -> str:
    exact = sum(v.exact for v in results)
    within = sum(v.within and not v.exact for v in results)
    n = len(results)
    text = f"{exact}/{n} records reproduced exactly"
    if tolerance > 0:
        text += f", {within} more within {tolerance:g}"
    return text
