"""From checked command-line choices to a workspace and its resolved plan, in the driver.

`open_session` reads the suite once (the request imports its plugins first), reads and checks
`tuned.yaml`, builds the workspace, materialises the forget sets (their index files are the
first thing written) and resolves the plan (`bench.plan`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.environment import slow_bf16
from bench.errors import UserError
from bench.plan import Choices, Plan, make_plan
from bench.progress import Progress
from bench.tuned import TUNED_FILE, retune, tuned_configs
from bench.worker import RunRequest
from bench.workspace import Workspace


@dataclass
class Session:
    ws: Workspace  # the driver's
    plan: Plan


def open_session(request: RunRequest, seeds=None, tuned: str = "auto", quiet: bool = False,
                 threads: int | None = None, suite=None) -> Session:
    """The driver's workspace and plan. `tuned`: "auto" (use <results>/<suite>/tuned.yaml when it
    exists), "require" (`--tuned`: refuse without it) or "off". Raises UserError before anything
    is written when a choice does not fit the suite or tuned.yaml is broken or stale. `suite`: the
    request's, if loaded already."""
    suite = suite or request.load_suite()
    for seed in seeds or []:
        if seed not in suite.seeds:
            raise UserError(f"--seeds {seed}: not a seed of suite '{suite.name}' ({list(suite.seeds)}).")
    tuned_file = Path(request.results_dir) / suite.name / TUNED_FILE
    configs = tuned_configs(suite, tuned_file, [m for m, _ in suite.methods]) if tuned != "off" else {}
    if tuned == "require" and not configs:
        raise UserError(f"--tuned: '{tuned_file}' {'holds no tuned configs for this suite' if tuned_file.is_file() else 'does not exist'}; "
                        f"run `{retune(suite, Path(request.results_dir))}` first.")
    choices = Choices(request.methods or None, tuple(seeds) if seeds else None, configs,
                      str(tuned_file))
    ws = request.workspace(Progress(enabled=not quiet), threads, suite)
    if ws.needs("needs_references") and not request.tuning:  # tuning scores on validation data: no references
        ws.reference_plan()  # checks the attack settings against the reference models, before any write
    plan = make_plan(suite, [ws.forget_set(spec) for spec in suite.forget_sets], choices, ws.policy.key())
    if "original" in request.methods:
        print("unlearn-bench: --methods original: original and retrain always run; no need to name them.",
              file=sys.stderr)
    notices = plan.notices if request.tuning else (*plan.notices, *other_policy(plan, Path(request.results_dir)))
    notices = (*notices, *filter(None, [slow_bf16(ws.policy)]))
    for line in notices:
        print(f"unlearn-bench: {line}", file=sys.stderr)
    return Session(ws, plan)


def other_policy(plan: Plan, results_dir: Path) -> list[str]:
    """One line when runs to do have records beside them that differ only in the device policy
    (threads, bf16, ...): a record's identity holds it (CPU kernels split their sums by thread), so
    those records are not reused, which a user who ran with another `--job-cpus` would not expect."""
    keep = ("suite_hash", "method_config", "code", "forget_set")
    found: dict[str, int] = {}
    for r in plan.runs:
        path = r.path(results_dir)
        if path.exists():
            continue
        for other in sorted(path.parent.glob(f"{r.method}-*-seed{r.seed}.json")):
            try:
                record = json.loads(other.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue  # an unreadable record is reported where it is read for the board
            if not isinstance(record, dict):
                continue
            theirs, ours = record.get("device_policy"), r.identity["device_policy"]
            if isinstance(theirs, dict) and theirs != ours and all(record.get(k) == r.identity[k] for k in keep):
                diff = ", ".join(f"{k} {theirs.get(k)!r} there, {ours.get(k)!r} here"
                                 for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k))
                found[diff] = found.get(diff, 0) + 1
                break
    return [f"{n} run(s) to do have records in '{results_dir}' that differ only in the device policy ({diff}); "
            f"they are not reused. To reuse them, run as they ran (threads: --job-cpus, or the suite's resources.cpus)."
            for diff, n in found.items()]
