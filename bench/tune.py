"""Equal-budget hyperparameter selection on validation data (`unlearn-bench tune`).

Every method gets the same number of Optuna trials (the suite's `tuning.trials`, or `--trials`
for all methods at once), a seeded TPE sampler, and a journal file in the results folder
(`<results>/<suite>/tuning/journal.log`), so an interrupted tune resumes where it stopped and a
study can be inspected with Optuna afterwards. Selection never sees what the report uses:
- trials run on the tuning seed (`tuning.seed`, refused if it is a reporting seed) and on
  tuning forget sets drawn by the suite's protocols with another seed (random) or another class
  (class forgetting), written as `tuning-<name>` beside the suite's forget sets;
- the validation split stands in for test, and the test split is never read: the runner's test
  tensors are replaced by ones that raise on any use;
- objective (minimised): mean |method - retrain| in points over forget acc, retain acc, val acc
  and the simple MIA of forget vs val (held-out), against the retrain of the tuning seed and
  forget set, averaged over the suite's forget sets;
- a trial is infeasible (pruned, never selected) when its method takes longer than that retrain,
  or diverges, fails or collapses.
The suite's own per-method values are the first trial (enqueued) when they lie in the space.
`tuned.yaml` (per method: chosen values, trials, best objective, tuning time) is what
`unlearn-bench run --tuned` runs with.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import yaml

from bench.data import Split
from bench.errors import UserError
from bench.evaluate import accuracy, collapse_reason, per_example_outputs
from bench.execute import call_method
from bench.files import write_text
from bench.methods_loader import method_registry
from bench.provenance import run_code
from bench.runner import SuiteRun
from bench.settings import build_dataclass
from bench.spec import ForgetSpec, derive_seed, search_space, stable_hash, to_jsonable

TUNED_FILE = "tuned.yaml"


class _Forbidden(torch.Tensor):
    """The test split during tuning: any use raises."""

    @classmethod
    def __torch_function__(cls, func, types_, args=(), kwargs=None):
        raise RuntimeError("the test split was used during tuning; selection must use validation data only")


def forbid_test(run: SuiteRun) -> None:
    t = run.test
    run.test = Split(t.x.as_subclass(_Forbidden), t.y.as_subclass(_Forbidden), t.index)


def tuning_forget_spec(spec: ForgetSpec, num_classes: int) -> ForgetSpec:
    """The same protocol, another draw: another seed (random) or the next class (class)."""
    name = f"tuning-{spec.display_name}"
    if spec.protocol == "random":
        return dataclasses.replace(spec, seed=spec.seed + 1, name=name)
    if spec.protocol == "class":
        return dataclasses.replace(spec, label=(spec.label + 1) % num_classes, name=name)
    raise UserError(f"forget set '{spec.display_name}': tuning draws its own forget set by the same protocol; "
                    "a 'file' forget set has none, so tune a suite with random or class forget sets.")


@dataclasses.dataclass
class Problem:
    """One tuning forget set: the suite's forget set it stands for, its data, and its retrain."""

    name: str  # the suite's forget set this one stands in for (tuned.yaml's key)
    fs: object
    data: object
    retrain: dict  # the retrain's validation metrics
    retrain_s: float


def measure(run: SuiteRun, model, data, label: int | None, seed: int) -> dict[str, float]:
    """Forget/retain/val accuracy and simple MIA (forget vs held-out val), in points; no test data."""
    from bench.attacks.population import simple_mia_scores

    out = {name: per_example_outputs(model, split, run.batcher, run.suite.eval.batch_size)
           for name, split in run.eval_splits(data).items() if name != "test"}
    if not all(np.isfinite(o["loss"]).all() for o in out.values()):
        return {"collapse": "its outputs are not finite"}  # infeasible, like a diverged run
    val = out["val"] if label is None else {k: v[out["val"]["label"] == label] for k, v in out["val"].items()}
    mia = simple_mia_scores(out["forget"]["loss"], val["loss"], seed=derive_seed(seed, "tuning-simple"))
    values = {"forget": accuracy(out["forget"]), "retain": accuracy(out["retain"]), "val": accuracy(out["val"]),
              "mia": mia["accuracy"]}
    values = {k: 100 * v for k, v in values.items()}
    values["collapse"] = collapse_reason(out["retain"], run.num_classes)
    return values


def objective_value(trial: dict, retrain: dict) -> float:
    return float(np.mean([abs(trial[k] - retrain[k]) for k in ("forget", "retain", "val", "mia")]))


def problems(run: SuiteRun, original) -> list[Problem]:
    seed = run.suite.tuning.seed
    out = []
    for spec in run.suite.forget_sets:
        fs = run.forget_set(tuning_forget_spec(spec, run.num_classes))
        data = run.unlearn_data(fs)
        ctx = run.context(derive_seed(seed, fs.name, "retrain"), f"tuning: retrain on {fs.name}")
        model, cost, status, error = call_method(method_registry().get("retrain").fn, original, data, None, ctx)
        if status != "ok":
            raise UserError(f"tuning: retrain {status} on {fs.name}: {error}")
        out.append(Problem(spec.display_name, fs, data, measure(run, model, data, fs.label, seed), cost["wall_s"]))
    return out


def study_name(run: SuiteRun, method: str, forget_set: str) -> str:
    base = run._config(method)
    return f"{method}-{forget_set}-" + stable_hash([
        run.suite.suite_hash, forget_set, run.suite.tuning.seed, run_code(method), to_jsonable(base),
        {k: to_jsonable(v) for k, v in search_space(type(base)).items()}])[:8]


def tune_method(run: SuiteRun, method: str, original, p: Problem, trials: int, storage) -> dict:
    """Run the missing trials of one method's study on one forget set; its tuned.yaml entry."""
    import optuna

    entry = method_registry().get(method)
    base = run._config(method)
    space = search_space(entry.config)
    if not space:
        return {"values": {}, "trials": 0, "best_objective": None, "tuning_s": 0.0, "note": "nothing to tune"}
    seed = run.suite.tuning.seed
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=derive_seed(seed, method, p.name) % 2**32)
    study = optuna.create_study(study_name=study_name(run, method, p.name), storage=storage, sampler=sampler,
                                direction="minimize", load_if_exists=True)
    for t in study.trials:  # a trial left running by a killed tune: failed, and not counted
        if t.state == optuna.trial.TrialState.RUNNING:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = sum(t.state in finished for t in study.trials)
    start_values = {k: getattr(base, k) for k in space if space[k].contains(getattr(base, k))}
    if not study.trials and len(start_values) == len(space):
        study.enqueue_trial(start_values)

    def objective(trial) -> float:
        config = dataclasses.replace(base, **{k: s.suggest(trial, k) for k, s in space.items()})
        ctx = run.context(derive_seed(seed, p.fs.name, method, trial.number), f"tuning {method} #{trial.number}")
        model, cost, status, error = call_method(entry.fn, original, p.data.private_copy(), config, ctx)
        reason = error if status != "ok" else None
        if status == "ok" and cost["wall_s"] > p.retrain_s:
            reason = f"slower than retraining ({cost['wall_s']:.2f} s > {p.retrain_s:.2f} s)"
        if reason is None:
            values = measure(run, model, p.data, p.fs.label, seed)
            reason = values.pop("collapse")
        if reason:
            trial.set_user_attr("infeasible", reason)
            raise optuna.TrialPruned(reason)
        return objective_value(values, p.retrain)

    for _ in range(max(0, trials - done)):
        label = f"tuning {method} on {p.name}: trial {done + 1}/{trials}"
        run.opts.progress.run_started(label)
        study.optimize(objective, n_trials=1, catch=())
        done += 1
        run.opts.progress.run_finished(label, study.trials[-1].state.name.lower(), None, None)
    spent = sum((t.duration.total_seconds() if t.duration else 0.0) for t in study.trials if t.state in finished)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value) if complete else None
    return {"values": dict(best.params) if best else {}, "trials": done,
            "best_objective": round(float(best.value), 4) if best else None, "tuning_s": round(spent, 2),
            **({} if best else {"note": "no feasible trial: the suite's values are kept"})}


def tune_suite(run: SuiteRun, methods: list[str], trials: int | None) -> Path:
    """Tune `methods` on every forget set (equal budget); write `<results>/<suite>/tuned.yaml`."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    forbid_test(run)
    budget = trials or run.suite.tuning.trials
    folder = run.opts.results_dir / run.suite.name / "tuning"
    folder.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(folder / "journal.log")))
    original = run.original(run.suite.tuning.seed)[0]
    probs = problems(run, original)
    path = run.opts.results_dir / run.suite.name / TUNED_FILE
    tuned = read_tuned(path)
    run.opts.progress.start(len(methods) * len(probs) * budget, 0, "tuning trials at most (finished ones are kept)")
    for method in methods:
        for p in probs:
            tuned.setdefault(method, {})[p.name] = tune_method(run, method, original, p, budget, storage)
            write_text(path, "# Generated by `unlearn-bench tune`: chosen values per method and forget set (equal\n"
                             "# budget, validation data, tuning seed and forget sets). `run --tuned` uses them.\n"
                       + yaml.safe_dump(tuned, sort_keys=True))
    return path


def read_tuned(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"'{path}' is not valid YAML ({' '.join(str(e).split())}); delete it and tune again.") from None
    if not isinstance(data, dict):
        raise UserError(f"'{path}' is not a tuned-configs file; delete it and tune again.")
    return data


def tuned_configs(suite, path: Path) -> dict:
    """{(method, forget set): (config, "tuned (N trials)")} from tuned.yaml, checked like a suite."""
    tuned = read_tuned(path)
    if not tuned:
        raise UserError(f"--tuned: '{path}' does not exist or is empty; run `unlearn-bench tune {suite.name}` first.")
    out = {}
    for name, config in suite.methods:
        for forget_set, t in (tuned.get(name) or {}).items():
            if config is not None and isinstance(t, dict) and t.get("values"):
                values = {**to_jsonable(config), **t["values"]}
                out[(name, forget_set)] = (build_dataclass(type(config), values, f"{path}: {name}.{forget_set}"),
                                           f"tuned ({t['trials']} trials)")
    return out
