"""Scoring a suite's attacks on records that exist, from their saved per-example outputs.

An attack is (re)scored on a record when the record lacks it, when the attack's code changed
since (each attack result carries the hash of its code), or when the suite's attack settings
differ from the record's. No target model is trained, unlearned or evaluated again: the outputs
saved beside each record are enough, with the suite's cached reference models. U-LiRA's unlearned
references are read from their cache; for a method and config that has none yet they are
computed, and the progress output says so. Each record is rewritten atomically (outputs first).
`unlearn-bench run` rescores what it finds stale as well, so a new attack never reruns a method.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.evaluate import unflatten_outputs
from bench.files import write_npz, write_text
from bench.methods_loader import method_registry
from bench.runner import SuiteRun
from bench.settings import build_dataclass
from bench.spec import to_jsonable
from bench.store import load_outputs, load_records


def stale_attacks(run: SuiteRun, record: dict, force: bool = False) -> list[str]:
    """The suite's attacks that `record` lacks or holds from other code or settings."""
    from bench.attacks import attack_registry
    from bench.provenance import entry_code_hash

    if record["status"] != "ok":
        return []
    mia = record["metrics"].get("mia") or {}
    same_settings = record.get("attack_settings") == to_jsonable(run.suite.attack_settings)
    return [a for a in run.suite.attacks if force or not same_settings or a not in mia
            or mia[a].get("code") != entry_code_hash(attack_registry.get(a))]


def rescore_record(run: SuiteRun, path: Path, record: dict, names: list[str]) -> None:
    """Score `names` on one record from its saved outputs; rewrite its outputs and record."""
    flat = load_outputs(path)
    outputs = unflatten_outputs({k: v for k, v in flat.items() if not k.startswith("attack_")})
    fs = next(run.forget_set(spec) for spec in run.suite.forget_sets if spec.display_name == record["forget_set"]["name"])
    config = None
    if record["method"] != "original":
        entry = method_registry().get(record["method"])
        config = build_dataclass(entry.config, record["method_config"], f"{path}: method_config") \
            if entry.config else None
    label = f"{fs.name} seed {record['seed']} {record['method']}: rescoring {', '.join(names)}"
    run.opts.progress.run_started(label)
    mia, scores = run.attack(outputs, fs, record["method"], config, record["seed"], names)
    for name in names:
        flat.pop(f"attack_{name}_member", None)
        flat.pop(f"attack_{name}_nonmember", None)
    record = {k: v for k, v in record.items() if k != "_file"}
    record["metrics"]["mia"] = {**(record["metrics"].get("mia") or {}), **mia}
    record["attack_settings"] = to_jsonable(run.suite.attack_settings)
    write_npz(path.with_suffix(".npz"), {**flat, **scores}, compressed=True)
    write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def rescore_suite(run: SuiteRun, force: bool = False) -> int:
    """Rescore every record of the suite's current runs whose attacks are stale; how many records."""
    current = set()
    for spec in run.suite.forget_sets:
        fs = run.forget_set(spec)
        for seed in run.suite.seeds:
            for method in run.planned_methods():
                config = None if method == "original" else run._config(method, fs.name)
                current.add(run.record_base(fs, method, config, seed)[0].resolve())
    todo = []
    for record in load_records(run.opts.results_dir):
        path = Path(record["_file"])
        names = stale_attacks(run, record, force) if path.resolve() in current else []
        if names:
            todo.append((path, record, names))
    run.opts.progress.start(len(todo), 0, "records to rescore")
    for path, record, names in todo:
        rescore_record(run, path, record, names)
        run.opts.progress.run_finished(path.stem, "rescored", None, None)
    return len(todo)
