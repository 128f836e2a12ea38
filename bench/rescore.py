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
import sys
import zipfile
from pathlib import Path

from bench.attacks import attack_registry
from bench.evaluate import unflatten_outputs
from bench.files import write_npz, write_text
from bench.plan import Plan, RunSpec
from bench.provenance import entry_code_hash
from bench.scorer import Scorer
from bench.spec import to_jsonable
from bench.store import load_outputs, load_records
from bench.workspace import Workspace


def stale_attacks(ws: Workspace, record: dict, force: bool = False) -> list[str]:
    """The suite's attacks that `record` lacks or holds from other code or settings."""
    if record["status"] != "ok":
        return []
    mia = record["metrics"].get("mia") or {}
    same_settings = record.get("attack_settings") == to_jsonable(ws.suite.attack_settings)
    return [a for a in ws.suite.attacks if force or not same_settings or a not in mia
            or mia[a].get("code") != entry_code_hash(attack_registry.get(a))]


def rescore_record(scorer: Scorer, r: RunSpec, path: Path, record: dict, names: list[str]) -> None:
    """Score `names` on one record of run `r` from its saved outputs; rewrite its outputs and record."""
    flat = load_outputs(path)
    outputs = unflatten_outputs({k: v for k, v in flat.items() if not k.startswith("attack_")})
    scorer.ws.progress.run_started(f"{r.label}: rescoring {', '.join(names)}")
    mia, scores = scorer.attack(outputs, r.forget_set, r.method, r.config, r.seed, names)
    for name in names:
        flat.pop(f"attack_{name}_member", None)
        flat.pop(f"attack_{name}_nonmember", None)
    record = {k: v for k, v in record.items() if k != "_file"}
    record["metrics"]["mia"] = {**(record["metrics"].get("mia") or {}), **mia}
    record["attack_settings"] = to_jsonable(scorer.ws.suite.attack_settings)
    write_npz(path.with_suffix(".npz"), {**flat, **scores}, compressed=True)
    write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def rescore_suite(ws: Workspace, plan: Plan, results_dir: Path, force: bool = False) -> int:
    """Rescore every record of the plan's runs whose attacks are stale; how many records."""
    current = {r.path(results_dir).resolve(): r for r in plan.runs}
    todo = []
    for record in load_records(results_dir):
        path = Path(record["_file"])
        r = current.get(path.resolve())
        names = stale_attacks(ws, record, force) if r is not None else []
        if names:
            todo.append((r, path, record, names))
    ws.progress.start(len(todo), 0, "records to rescore")
    scorer, done = Scorer(ws), 0
    for r, path, record, names in todo:
        try:
            load_outputs(path)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # damaged: say so, rescore the others
            print(f"unlearn-bench: warning: '{path.with_suffix('.npz')}' is not a readable outputs file "
                  f"({type(e).__name__}); its record keeps its attacks. Delete the record to run it again.",
                  file=sys.stderr)
            continue
        rescore_record(scorer, r, path, record, names)
        ws.progress.run_finished(path.stem, "rescored", None, None)
        done += 1
    return done
