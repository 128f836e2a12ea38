"""The run plan, resolved once: every run of a sweep with its config, and where each value came from.

A suite's runs are forget set x seed x method, plus the reference rows `original` (no
unlearning) and `retrain`. Each becomes a frozen, picklable `RunSpec` here, once, in the driver:
jobs carry it to whichever process runs it, the record is written from it, and nothing
downstream works a config out again.

A method's config is resolved field by field, the first source that gives a value winning:

1. `--set METHOD.FIELD=VALUE` (the command line),
2. `tuned.yaml` (`unlearn-bench tune`'s choice for this method and forget set),
3. the suite file's `methods:` section,
4. the method's defaults (its config dataclass).

The record keeps the sources (`config_sources`: {field: "--set" | "tuned" | "suite" |
"default"}) and a summary (`config_source`). A `--set` that overrides a tuned value is said in
one line when the plan is made (`Plan.notices`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import bench
from bench import forget_quality_runs
from bench.forget import ForgetSet
from bench.methods_loader import method_protocols, method_registry
from bench.provenance import run_code
from bench.settings import build_dataclass
from bench.spec import Suite, stable_hash, to_jsonable
from bench.store import SCHEMA_VERSION, record_path
from bench.tuned import Tuned

REFERENCE_METHODS = ("original", "retrain")
ADDED = "default (added with --methods; not in the suite)"  # config_source of such a method's records


@dataclass(frozen=True)
class Choices:
    """What the user chose beyond the suite: which methods and seeds, and the tuned configs to use."""

    methods: tuple[str, ...] | None = None  # None: all of the suite's methods
    seeds: tuple[int, ...] | None = None  # None: all of the suite's seeds
    tuned: dict = field(default_factory=dict)  # {(method, forget set): bench.tuned.Tuned}
    tuned_file: str = "tuned.yaml"  # where `tuned` came from, for the notices


@dataclass(frozen=True)
class RunSpec:
    """One run, resolved: what runs, with which config, and the identity its record carries."""

    forget_set: ForgetSet
    seed: int
    method: str
    config: object | None  # the method's frozen config dataclass, or None (original, retrain)
    record: str  # the record's path inside the results folder: <suite>/<forget set>/<name>.json
    identity: dict = field(compare=False, hash=False)  # the record's fields that say what ran

    @property
    def key(self) -> str:
        return f"run/{self.identity['config_hash']}/seed{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.forget_set.name} seed {self.seed} {self.method}"

    def path(self, results_dir: Path) -> Path:
        return Path(results_dir) / self.record


@dataclass(frozen=True)
class Plan:
    runs: tuple[RunSpec, ...]  # every current run of the sweep, recorded or not, in sweep order
    notices: tuple[str, ...] = ()  # one line per `--set` that overrides a tuned value
    forget_quality: tuple = ()  # the forget-quality sets (`bench.forget_quality_runs.ForgetQualitySpec`)


def planned_methods(suite: Suite, choices: Choices) -> list[str]:
    names = [n for n, _ in suite.methods]
    if choices.methods is not None:
        names = [n for n in names if n in choices.methods]
    return list(dict.fromkeys([*REFERENCE_METHODS, *names]))


def resolve_config(suite: Suite, method: str, tuned: Tuned | None) -> tuple[object | None, dict[str, str]]:
    """(config, {field: source}) of `method`: --set > tuned > suite > defaults (module docstring)."""
    entry = method_registry().get(method)
    if entry.config is None:
        return None, {}
    layers = [("suite", suite.method_values(method)), ("tuned", tuned.values if tuned else {}),
              ("--set", suite.method_overrides.get(method, {}))]
    values, sources = {}, {f: "default" for f in entry.config.__dataclass_fields__}
    for source, given in layers:
        values.update(given)
        sources.update({k: source for k in given})
    return build_dataclass(entry.config, values, f"{method} config"), sources


def config_summary(sources: dict[str, str], tuned: Tuned | None, added: bool, in_suite: bool) -> str:
    """The record's short account of its config: tuned (N trials), suite, default, added; with --set."""
    base = f"tuned ({tuned.trials} trials)" if tuned else ADDED if added else "suite" if in_suite else "default"
    overridden = sorted(k for k, s in sources.items() if s == "--set")
    return f"{base}; --set {', '.join(overridden)}" if overridden else base


def make_plan(suite: Suite, forget_sets: list[ForgetSet], choices: Choices, policy_key: dict) -> Plan:
    """Every run of the sweep, resolved once (forget sets in suite order, then seeds, then methods)."""
    seeds = [s for s in suite.seeds if choices.seeds is None or s in choices.seeds]
    runs, notices = [], []
    for fs in forget_sets:
        for method in planned_methods(suite, choices):
            tuned = choices.tuned.get((method, fs.name)) if method != "original" else None
            config, sources = resolve_config(suite, method, tuned) if method != "original" else (None, {})
            for name, source in sources.items():
                if source == "--set" and tuned and name in tuned.values and tuned.values[name] != getattr(config, name):
                    notices.append(f"--set {method}.{name}={getattr(config, name)} overrides the tuned value "
                                   f"{tuned.values[name]} ({choices.tuned_file}, {fs.name})")
            summary = config_summary(sources, tuned, method in suite.added, method in dict(suite.methods))
            for seed in seeds:
                runs.append(_spec(suite, fs, method, config, seed, sources, summary, policy_key, tuned))
    sets = forget_quality_runs.specs(runs, suite.seeds[0], suite.forget_quality.models)
    return Plan(tuple(runs), tuple(notices), sets)


def _spec(suite: Suite, fs: ForgetSet, method: str, config, seed: int, sources: dict, summary: str,
          policy_key: dict, tuned: Tuned | None = None) -> RunSpec:
    """A run's spec and record identity. The key holds everything that shapes the model and its
    outputs (suite, forget set, method, config, code, device policy), not the attacks: those are rescored."""
    config_json = to_jsonable(config) if config is not None else {}
    code = run_code(method)
    config_hash = stable_hash([suite.suite_hash, fs.summary(), method, config_json, code, policy_key])
    path = record_path(Path("."), suite.name, fs.name, method, config_hash, seed)
    identity = {
        "schema_version": SCHEMA_VERSION, "bench_version": bench.__version__,
        "suite": suite.name, "suite_hash": suite.suite_hash, "model": suite.model,
        "method": method, "method_config": config_json, "config_hash": config_hash, "seed": seed,
        "forget_set": fs.summary(), "method_protocols": list(method_protocols(method)), "code": code,
        "device_policy": policy_key, "attack_settings": to_jsonable(suite.attack_settings),
        "config_source": summary, "config_sources": dict(sorted(sources.items())),
        "tuning_marks": list(tuned.marks) if tuned and "tuned" in sources.values() else [],
    }
    return RunSpec(fs, seed, method, config, path.as_posix(), identity)
