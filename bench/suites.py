"""Loading suites: YAML -> `Suite`, checked against the registries.

Every mapping in a suite file is read by `bench.settings.build_dataclass` (unknown keys, wrong
types and out-of-range values are errors naming the file and the key); method hyperparameters
and `--set` overrides go through the same function, so all three fail the same way. This
module sits beside the CLI: it imports the registries; nothing below it imports it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Any

import yaml

from bench.attacks import attack_registry
from bench.attacks.lira import LIRA_VARIANTS
from bench.data import dataset_registry
from bench.errors import UserError
from bench.methods_loader import method_registry
from bench.models import model_registry
from bench.registry import did_you_mean
from bench.settings import UniqueKeyLoader, _coerce, build_dataclass
from bench.spec import (AttackSettings, DatasetSpec, EvalSpec, ForgetQualitySpec, ForgetSpec, Recipe, Resources,
                        Suite, TuningSpec, field_defaults, field_range, search_space)

SUITES_DIR = Path(__file__).parent / "suites"
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")


def resolve_suite_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.is_dir():
        raise UserError(f"'{path}' is a folder; pass a suite .yaml file or a built-in suite name "
                        f"({', '.join(suite_names())}).")
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserError(f"suite file '{path}' does not exist; check the path.")
        return path
    builtin = SUITES_DIR / f"{name_or_path}.yaml"
    if not builtin.is_file():
        raise UserError(f"unknown suite '{name_or_path}'.{did_you_mean(name_or_path, suite_names())}")
    return builtin


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


FORGET_KEY = {"random": "fraction", "class": "label", "file": "path"}  # what each forget protocol is given
PROTOCOL_OF = {v: k for k, v in FORGET_KEY.items()}
SECTION_TYPES = {"recipe": Recipe, "dataset": DatasetSpec, "eval": EvalSpec, "attack_settings": AttackSettings,
                 "tuning": TuningSpec, "resources": Resources, "forget_quality": ForgetQualitySpec}
RESERVED = ("figures", "forget_sets", "tuning")  # folders beside the forget sets' record folders
SECTIONS = tuple(SECTION_TYPES)  # `--set SECTION.KEY=...`


def load_suite(name_or_path: str, overrides: dict[str, dict[str, Any]] | None = None,
               methods: tuple[str, ...] = ()) -> Suite:
    """Read a suite by built-in name or path, check everything, apply `--set` overrides of suite
    sections (method values are kept apart: `Suite.method_overrides`, applied by `bench.plan`).
    `methods` are the methods named on the command line (`--methods`): an unknown name is refused;
    a registered one the suite lacks is added with its defaults (`Suite.added`): a method author's first run."""
    path = resolve_suite_path(name_or_path)
    where = str(path)
    try:
        raw = yaml.load(path.read_text(), UniqueKeyLoader)
    except yaml.YAMLError as e:
        problem = " ".join(str(e).split())
        raise UserError(f"{where}: not valid YAML ({problem}); fix the syntax.") from None
    except UnicodeDecodeError:
        raise UserError(f"{where}: not a text file; a suite is a YAML text file.") from None
    except OSError as e:
        raise UserError(f"{where}: cannot be read ({e.strerror}).") from None
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a suite must be a mapping of keys to values.")
    raw = dict(raw)
    methods_raw = raw.get("methods") or {}
    if isinstance(methods_raw, list):
        bad = [m for m in methods_raw if not isinstance(m, str)]
        if bad:
            raise UserError(f"{where}: methods: {bad[0]!r} is not a method name; list method names.")
        methods_raw = {m: {} for m in methods_raw}
    if not isinstance(methods_raw, dict):
        raise UserError(f"{where}: methods: expected a mapping of method name to hyperparameters.")
    for name, params in methods_raw.items():
        if not isinstance(name, str):
            raise UserError(f"{where}: methods: {name!r} is not a method name; name methods by their registered names.")
        if params is not None and not isinstance(params, dict):
            raise UserError(f"{where}: methods.{name}: expected a mapping of hyperparameters (e.g. {{lr: 0.01}}) "
                            f"or {{}}, got {params!r}.")
    methods_raw = {k: dict(v or {}) for k, v in methods_raw.items()}
    for name in methods:
        if name != "original":
            method_registry().get(name)  # an unknown name: one line with the closest registered names
    added = tuple(m for m in methods if m not in methods_raw and m not in ("original", "retrain"))
    methods_raw.update({m: {} for m in added})
    method_overrides, set_sections = {}, {}
    for section, values in (overrides or {}).items():
        if section in SECTIONS:
            known = [f.name for f in dataclasses.fields(SECTION_TYPES[section])]
            for key in values:
                if key not in known:  # the command line's mistake, not the suite file's
                    raise UserError(f"--set {section}.{key}: unknown key.{did_you_mean(key, known)}")
            if raw.get(section) is not None and not isinstance(raw[section], dict):  # `recipe: []` too
                raise UserError(f"{where}: {section}: expected a mapping of keys to values, got {raw[section]!r}.")
            set_sections[section] = {**(raw.get(section) or {}), **values}
        elif section in methods_raw:
            method_overrides[section] = dict(values)
        else:
            choices = [*SECTIONS, *methods_raw]
            raise UserError(
                f"--set {section}.…: '{section}' is not a method of suite '{path.stem}' nor a "
                f"suite section.{did_you_mean(section, choices)}"
            )
    registry = method_registry()
    methods = []
    for name, params in methods_raw.items():
        if name not in registry:
            raise UserError(f"{where}: methods: unknown method '{name}'."
                            f"{did_you_mean(name, registry.names())}")
        entry = registry.get(name)
        if entry.config is None and params:
            raise UserError(f"{where}: methods.{name}: '{name}' takes no hyperparameters; "
                            f"remove {', '.join(params)}.")
        if entry.config is None and name in method_overrides:
            raise UserError(f"--set {name}.{next(iter(method_overrides[name]))}: '{name}' takes no hyperparameters.")
        defaults = field_defaults(entry.config)
        outside = [k for k, space in search_space(entry.config).items() if k in defaults and not space.contains(defaults[k])]
        if outside:
            raise UserError(f"method '{name}' ({entry.source}): its default {outside[0]}="
                            f"{defaults[outside[0]]!r} lies outside its own search space "
                            f"({search_space(entry.config)[outside[0]].describe()}); fix the method's config.")
        declared = {f.name: field_range(f) for f in dataclasses.fields(entry.config)} if entry.config else {}
        if bad := [k for k, v in defaults.items() if v is not None and declared[k] and not declared[k].accepts(v)]:
            raise UserError(f"method '{name}' ({entry.source}): its default {bad[0]}={defaults[bad[0]]!r} lies outside "
                            f"its own declared range ({declared[bad[0]].describe()}); fix the method's config.")
        config = build_dataclass(entry.config, params, f"{where}: methods.{name}") if entry.config else None
        if name in method_overrides:  # checked now; applied when the plan is resolved (bench.plan)
            checked = build_dataclass(entry.config, {**params, **method_overrides[name]}, f"--set {name}")
            method_overrides[name] = {k: getattr(checked, k) for k in method_overrides[name]}
        methods.append((name, config))
    assemble = functools.partial(_assemble, where=where, path=path, methods=tuple(methods), methods_raw=methods_raw,
                                 method_overrides=method_overrides, added=added)
    try:
        return assemble({**raw, **set_sections})
    except UserError as e:
        given = [f"{section}.{key}" for section, values in (overrides or {}).items() if section in SECTIONS
                 for key in values]
        message = str(e).removeprefix(f"{where}: ")
        if any(re.match(rf"{re.escape(key)}(?!\w)", message) for key in given):  # "tuning.seeds: 0 is a reporting seed"
            raise UserError(f"--set: {message}") from None
        if not given:
            raise
        try:
            assemble(raw)
        except UserError:
            raise e from None  # the file is wrong on its own: the error names none of the keys --set gave
        raise UserError(f"{str(e).rstrip('.')}: a clash with --set {', '.join(given)} (the file alone is valid).") from None


def _assemble(raw: dict, *, where: str, path: Path, methods: tuple, methods_raw: dict, method_overrides: dict,
              added: tuple) -> Suite:
    """The checked `Suite` from the file's mapping `raw` (with any `--set` sections merged in);
    errors start with `where`, the file's path."""
    known = {"name", "description", "dataset", "model", "recipe", "forget_sets", "seeds", "methods",
             "attacks", *SECTIONS}
    for key in raw:
        if key not in known:
            raise UserError(f"{where}: unknown key '{key}'.{did_you_mean(str(key), sorted(known))}")
    for key in ("dataset", "model", "recipe", "forget_sets", "seeds"):
        if key not in raw:
            raise UserError(f"{where}: missing required key '{key}'.")
    forget_raw = raw["forget_sets"]
    if not isinstance(forget_raw, list) or not forget_raw:
        raise UserError(f"{where}: forget_sets: expected a non-empty list.")
    forget_sets = tuple(
        build_dataclass(ForgetSpec, f, f"{where}: forget_sets[{i}]") for i, f in enumerate(forget_raw)
    )
    suite = Suite(
        name=str(raw.get("name") or path.stem),
        description=str(raw.get("description") or ""),
        dataset=build_dataclass(DatasetSpec, raw["dataset"], f"{where}: dataset"),
        model=_coerce(raw["model"], str, f"{where}: model"),
        recipe=build_dataclass(Recipe, raw["recipe"], f"{where}: recipe"),
        forget_sets=forget_sets,
        seeds=_coerce(raw["seeds"], tuple[int, ...], f"{where}: seeds"),
        methods=methods,
        method_keys={name: tuple(params) for name, params in methods_raw.items()},
        method_overrides=method_overrides,
        added=added,
        attacks=_coerce(raw.get("attacks", ["simple"]), tuple[str, ...], f"{where}: attacks"),
        eval=build_dataclass(EvalSpec, raw.get("eval"), f"{where}: eval"),
        attack_settings=build_dataclass(AttackSettings, raw.get("attack_settings"), f"{where}: attack_settings"),
        tuning=build_dataclass(TuningSpec, raw.get("tuning"), f"{where}: tuning"),
        forget_quality=build_dataclass(ForgetQualitySpec, raw.get("forget_quality"), f"{where}: forget_quality"),
        resources=build_dataclass(Resources, raw.get("resources"), f"{where}: resources"),
        path=str(path),
    )
    validate_suite(suite, where)
    return suite


def validate_suite(suite: Suite, where: str) -> None:
    """Checks that need the registries: names exist, forget specs make sense."""

    def check(registry, name, key):
        if name not in registry:
            raise UserError(f"{where}: {key}: unknown {registry.kind} '{name}'."
                            f"{did_you_mean(name, registry.names())}")

    check(dataset_registry, suite.dataset.name, "dataset.name")
    check(model_registry, suite.model, "model")
    for attack in suite.attacks:
        check(attack_registry, attack, "attacks")
    if suite.recipe.optimizer not in ("sgd", "adam"):
        raise UserError(f"{where}: recipe.optimizer: '{suite.recipe.optimizer}' is not one of sgd, adam.")
    if suite.recipe.schedule not in ("cosine", "constant"):
        raise UserError(f"{where}: recipe.schedule: '{suite.recipe.schedule}' is not one of cosine, constant.")
    if not suite.seeds:
        raise UserError(f"{where}: seeds: list at least one seed.")
    for seed in suite.tuning.seeds:
        if seed in suite.seeds:
            raise UserError(f"{where}: tuning.seeds: {seed} is a reporting seed; selection must not see what the "
                            "report uses, so pick seeds outside seeds.")
    if not suite.tuning.seeds or len(set(suite.tuning.seeds)) != len(suite.tuning.seeds):
        raise UserError(f"{where}: tuning.seeds: {list(suite.tuning.seeds)}; list one or more seeds, each once.")
    if 0 < suite.forget_quality.models < 3:
        raise UserError(f"{where}: forget_quality.models: {suite.forget_quality.models}; use 0 (not run) or at least "
                        "3 (the score's buckets need N > 2; the challenge used 512, N >= 32 is informative).")
    if len(set(suite.seeds)) != len(suite.seeds):
        raise UserError(f"{where}: seeds: {list(suite.seeds)} repeats a seed; list each seed once.")
    d = suite.dataset
    if (d.mean is None) != (d.std is None) or (d.mean is not None and len(d.mean) != len(d.std)):
        raise UserError(f"{where}: dataset.mean and dataset.std: give both, one value per channel each.")
    st = suite.attack_settings
    if any(attack_registry.get(a).info.needs_references for a in suite.attacks):
        if st.references < 2 or st.references % 2:
            raise UserError(f"{where}: attack_settings.references: {st.references}; use an even number >= 2.")
        if not 1 <= st.ulira_references <= st.references:
            raise UserError(f"{where}: attack_settings.ulira_references: {st.ulira_references}; use 1.."
                            f"{st.references} (it unlearns that many of the reference models).")
        if not 1 <= st.rmia_references < st.references:  # the exact bound, K - n_in, is checked by the plan
            raise UserError(f"{where}: attack_settings.rmia_references: {st.rmia_references}; use 1.."
                            f"{st.references - 1} (RMIA uses OUT reference models, and each example is IN for "
                            "at least one).")
    if st.lira_variant not in LIRA_VARIANTS:
        raise UserError(f"{where}: attack_settings.lira_variant: '{st.lira_variant}'."
                        f"{did_you_mean(st.lira_variant, list(LIRA_VARIANTS))}")
    for i, f in enumerate(suite.forget_sets):
        key = f"{where}: forget_sets[{i}]"
        given = {"fraction": f.fraction is not None, "label": f.label is not None, "path": f.path is not None}
        foreign = [k for k, v in given.items() if v and k != FORGET_KEY.get(f.protocol)]
        if foreign:
            raise UserError(f"{key}: protocol '{f.protocol}' does not take '{foreign[0]}' (it is "
                            f"{PROTOCOL_OF[foreign[0]]}'s); remove it or change the protocol.")
        if f.protocol != "random" and f.seed != 0:
            raise UserError(f"{key}: protocol '{f.protocol}' does not take 'seed' (it fixes a random draw); "
                            "remove it or change the protocol.")
        if f.protocol == "random":
            if f.fraction is None or not 0 < f.fraction < 1:
                raise UserError(f"{key}.fraction: must be between 0 and 1 (exclusive), got {f.fraction}.")
        elif f.protocol == "class":
            if f.label is None:
                raise UserError(f"{key}: protocol 'class' needs 'label', the class to forget.")
        elif f.protocol == "file":
            if not f.path:
                raise UserError(f"{key}: protocol 'file' needs 'path', a .npy file of train indices.")
        else:
            raise UserError(f"{key}.protocol: unknown protocol '{f.protocol}'."
                            f"{did_you_mean(f.protocol, ['random', 'class', 'file'])}")
    for what, name in [("name", suite.name), *((f"forget_sets[{i}].name", f.display_name)
                                               for i, f in enumerate(suite.forget_sets))]:
        if not SAFE_NAME.fullmatch(name) or ".." in name or name.startswith("."):
            raise UserError(f"{where}: {what}: '{name}' is not a plain name; use letters, digits, '.', '_' "
                            "and '-' (no '..', no leading '.'), since it names folders and files.")
    names = [f.display_name for f in suite.forget_sets]
    for name in names:
        if name in RESERVED or name.startswith("tuning-"):
            raise UserError(f"{where}: forget_sets: '{name}' is a name the harness uses itself ({', '.join(RESERVED)}, "
                            "and tuning-* for tuning's forget sets); set another 'name'.")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"{where}: forget_sets: two forget sets are both named '{twice[0]}'; set 'name'.")
