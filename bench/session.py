"""From checked command-line choices to a workspace and its resolved plan, in the driver.

`open_session` reads the suite once (the request imports its plugins first), reads and checks
`tuned.yaml`, builds the workspace, materialises the forget sets (their index files are the
first thing written) and resolves the plan (`bench.plan`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

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
    for line in plan.notices:
        print(f"unlearn-bench: {line}", file=sys.stderr)
    return Session(ws, plan)
