"""`tuned.yaml`: what `unlearn-bench tune` chose, read back checked before anything runs.

One entry per method and forget set:

    finetune:
      random-10pct:
        values: {lr: 0.0123, epochs: 4}   # the chosen point of the method's search space
        trials: 30                        # finished trials (complete or pruned)
        best_objective: 0.42              # mean over tuning seeds of |method - retrain| in points (validation data)
        do_nothing_objective: 3.1         # the same for the original model (no unlearning)
        no_better_than_nothing: false     # the winner closes less than a tenth of doing nothing's gap
        neighbours: {lr x0.8: {objective: 0.5, failed_seeds: 0}, ...}  # the winner's neighbours
        edge_of_stability: false          # a neighbour fails on a seed or does worse than doing nothing
        tuning_gflops: 12.3               # what the trials cost
        made_for: {suite: ..., forget_set: ..., tuning_seeds: [...], code: ..., search_space: ...}

`made_for` names what the choice is valid for: the suite's data, model, recipe and evaluation
(`Suite.suite_hash`), the forget set's description, the tuning seeds, the code that makes the
method's runs (`bench.provenance.run_code`) and the method's search space. An entry made for
anything else is stale and refused, as is one whose types, ranges or search space do not hold:
each with one line naming the entry, and `unlearn-bench tune` as the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.errors import UserError
from bench.methods_loader import method_registry
from bench.provenance import run_code
from bench.registry import did_you_mean
from bench.settings import UniqueKeyLoader, build_dataclass
from bench.spec import ForgetSpec, Suite, search_space, stable_hash
from bench.suites import SUITES_DIR

TUNED_FILE = "tuned.yaml"
ENTRY_KEYS = ("values", "trials", "best_objective", "do_nothing_objective", "no_better_than_nothing", "neighbours",
              "edge_of_stability", "tuning_gflops", "note", "made_for")
MARKS = ("edge_of_stability", "no_better_than_nothing")  # what the board says of a tuned config
MADE_FOR = {"suite": "suite data, model, recipe or evaluation", "forget_set": "forget set",
            "tuning_seeds": "tuning seeds", "code": "method or training code", "search_space": "search space"}


@dataclass(frozen=True)
class Tuned:
    """One checked tuned.yaml entry: the chosen values (a subset of the search space's fields)."""

    values: dict
    trials: int
    marks: tuple[str, ...] = ()  # of MARKS: what tuning found about this choice


def made_for(suite: Suite, spec: ForgetSpec, method: str) -> dict:
    """What a tuning of `method` on forget set `spec` is valid for (see the module docstring)."""
    entry = method_registry().get(method)
    return {"suite": suite.suite_hash, "forget_set": stable_hash(spec), "tuning_seeds": list(suite.tuning.seeds),
            "code": stable_hash(run_code(method)), "search_space": stable_hash(search_space(entry.config))}


def retune(suite: Suite, results_dir: Path) -> str:
    """The command that tunes `suite` again into `results_dir`, as the user would type it."""
    builtin = Path(suite.path).resolve().parent == SUITES_DIR.resolve()
    results = "" if Path(results_dir) == Path("results") else f" --results {results_dir}"
    return f"unlearn-bench tune {suite.name if builtin else suite.path}{results}"


def read_tuned(path: Path) -> dict:
    """tuned.yaml as a mapping ({} when there is none). Not UTF-8 YAML, a key given twice, or not a
    mapping: UserError."""
    if not path.is_file():
        return {}
    try:
        data = yaml.load(path.read_text(), UniqueKeyLoader) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"'{path}' is not valid YAML ({' '.join(str(e).split())[:200]}); delete it and run "
                        "`unlearn-bench tune` again.") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise UserError(f"'{path}' is not a tuned-configs file (a mapping of method names); delete it and run "
                        "`unlearn-bench tune` again.")
    return data


def tuned_configs(suite: Suite, path: Path, methods) -> dict[tuple[str, str], Tuned]:
    """{(method, forget set): Tuned} for `methods` on the suite's forget sets, every entry checked.

    A method or forget set without an entry, or an entry without values (nothing to tune, no
    feasible trial), has no tuned config. Raises UserError (one line) for a broken or stale entry."""
    data, out = read_tuned(path), {}
    fix = retune(suite, Path(path).parent.parent)
    for method in methods:
        per_method = data.get(method)
        if per_method is None:
            continue
        if not isinstance(per_method, dict) or not all(isinstance(k, str) for k in per_method):
            _refuse(fix, f"{path}: {method}", "expected a mapping of forget-set names to entries, got "
                    + (type(per_method).__name__ if not isinstance(per_method, dict) else "a name that is not text"))
        for spec in suite.forget_sets:
            raw = per_method.get(spec.display_name)
            if raw is not None:
                where = f"{path}: {method}.{spec.display_name}"
                try:
                    tuned = _checked(raw, made_for(suite, spec, method), method)
                except ValueError as e:
                    _refuse(fix, where, str(e))
                if tuned.values:
                    out[(method, spec.display_name)] = tuned
    return out


def _refuse(fix: str, where: str, problem: str):
    raise UserError(f"{where}: {problem.rstrip('.')}; run `{fix}` to tune again.")


def _checked(raw, expected: dict, method: str) -> Tuned:
    """The entry as Tuned; ValueError saying what is wrong with it."""
    if not isinstance(raw, dict):
        raise ValueError(f"expected a mapping (values, trials, made_for), got {type(raw).__name__}")
    for key in ("made_for", "values", "trials"):
        if key not in raw:
            raise ValueError(f"no '{key}'" + (" (made before entries said what they were tuned for)"
                                              if key == "made_for" else ""))
    for key in raw:
        if key not in ENTRY_KEYS:
            raise ValueError(f"unknown key '{key}'.{did_you_mean(str(key), list(ENTRY_KEYS))}")
    trials, values, made = raw["trials"], raw["values"], raw["made_for"]
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 0:
        raise ValueError(f"trials: expected a whole number of trials, got {trials!r}")
    for key, value in (("values", values), ("made_for", made)):
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
    for key, what in MADE_FOR.items():
        if made.get(key) != expected[key]:
            raise ValueError(f"stale: tuned for another {what} than the suite and code now have")
    entry = method_registry().get(method)
    space = search_space(entry.config)
    for key in values:
        if key not in space:
            raise ValueError(f"values.{key}: not a tuned hyperparameter of {method} (its search space: "
                             f"{', '.join(space) or 'none'})")
    try:
        config = build_dataclass(entry.config, values, "values")  # types and the fields' declared ranges
    except UserError as e:
        raise ValueError(str(e)) from None
    for key in values:
        value = getattr(config, key)
        if not space[key].contains(value) or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"values.{key}: {value!r} is outside the search space ({space[key].describe()})")
    marks = tuple(m for m in MARKS if raw.get(m) is True)
    return Tuned({k: getattr(config, k) for k in values}, trials, marks)
