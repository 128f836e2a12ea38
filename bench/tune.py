"""Equal-budget hyperparameter selection on validation data (`unlearn-bench tune`).

Every method gets the same number of Optuna trials (the suite's `tuning.trials`, or `--trials`
for all methods at once), a seeded TPE sampler, and a journal file in the results folder
(`<results>/<suite>/tuning/journal.log`), so an interrupted tune resumes where it stopped and a
study can be inspected with Optuna afterwards. Selection never sees what the report uses:
- trials run on the tuning seed (`tuning.seed`, refused if it is a reporting seed) and on
  tuning forget sets drawn by the suite's protocols with another seed (random) or another class
  (class forgetting), written as `tuning-<name>` beside the suite's forget sets;
- the validation split stands in for test, and the test split is never read: tuning's workspace
  holds it as tensors that raise on any use (`forbid_test`);
- objective (minimised): mean |method - retrain| in points over forget acc, retain acc, val acc
  and the simple MIA of forget vs val (held-out), against the retrain of the tuning seed and
  forget set, averaged over the suite's forget sets;
- a trial is infeasible (pruned, never selected) when its method costs more floating-point
  operations than that retrain (`bench.flops`: a count, so the same tune twice chooses the
  same configs, whatever the machine's load), or diverges, fails or collapses.
The suite's own per-method values are the first trial (enqueued) when they lie in the space.
`tuned.yaml` (per method: chosen values, trials, best objective, the trials' GFLOPs and what the
choice was made for, `bench.tuned`; nothing that depends on the clock, so the same tune writes
the same file) is what `unlearn-bench run` runs with.
"""

from __future__ import annotations

import dataclasses
import time
import weakref
from pathlib import Path

import numpy as np
import torch
import yaml

from bench.data import Split
from bench.errors import UserError
from bench.evaluate import accuracy, collapse_reason, per_example_outputs
from bench.execute import call_method
from bench.executors import Job
from bench.files import write_text
from bench.files import inside
from bench.jobs import original_job
from bench.journal import open_journal
from bench.methods_loader import method_registry
from bench.plan import resolve_config
from bench.spec import ForgetSpec, derive_seed, search_space, stable_hash, to_jsonable
from bench.tuned import TUNED_FILE, made_for, read_tuned
from bench.workspace import Workspace
_FINISHED = ("COMPLETE", "PRUNED")  # trial states that count against the budget


class _Forbidden(torch.Tensor):
    """The test split during tuning: any use raises."""

    @classmethod
    def __torch_function__(cls, func, types_, args=(), kwargs=None):
        raise RuntimeError("the test split was used during tuning; selection must use validation data only")


def forbid_test(test: Split) -> Split:
    """The test split as tuning's workspace holds it (`Workspace(guard_test=forbid_test)`): any use raises."""
    return Split(test.x.as_subclass(_Forbidden), test.y.as_subclass(_Forbidden), test.index)


def tuning_forget_spec(spec: ForgetSpec, num_classes: int) -> ForgetSpec:
    """The same protocol, another draw: another seed (random) or the next class (class)."""
    name = f"tuning-{spec.display_name}"
    if spec.protocol == "random":
        return dataclasses.replace(spec, seed=spec.seed + 1, name=name)
    if spec.protocol == "class":
        return dataclasses.replace(spec, label=(spec.label + 1) % num_classes, name=name)
    raise UserError(f"forget set '{spec.display_name}': tuning draws its own forget set by the same protocol; "
                    "a 'file' forget set has none, so tune a suite with random or class forget sets.")


def measure(ws: Workspace, model, data, label: int | None, seed: int) -> dict[str, float]:
    """Forget/retain/val accuracy and simple MIA (forget vs held-out val), in points; no test data."""
    from bench.attacks.population import simple_mia_scores

    out = {name: per_example_outputs(model, split, ws.batcher, ws.suite.eval.batch_size)
           for name, split in ws.eval_splits(data, test=False).items()}
    if not all(np.isfinite(o["loss"]).all() for o in out.values()):
        return {"collapse": "its outputs are not finite"}  # infeasible, like a diverged run
    val = out["val"] if label is None else {k: v[out["val"]["label"] == label] for k, v in out["val"].items()}
    mia = simple_mia_scores(out["forget"]["loss"], val["loss"], seed=derive_seed(seed, "tuning-simple"))
    values = {"forget": accuracy(out["forget"]), "retain": accuracy(out["retain"]), "val": accuracy(out["val"]),
              "mia": mia["accuracy"]}
    values = {k: 100 * v for k, v in values.items()}
    values["collapse"] = collapse_reason(out["retain"], ws.num_classes)
    return values


def objective_value(trial: dict, retrain: dict) -> float:
    return float(np.mean([abs(trial[k] - retrain[k]) for k in ("forget", "retain", "val", "mia")]))


def base_config(ws: Workspace, method: str):
    """Where a method's tuning starts: the suite's values with `--set` (tuned values never feed a tune)."""
    return resolve_config(ws.suite, method, None)[0]


def study_name(ws: Workspace, method: str, forget_set: str) -> str:
    spec = next(s for s in ws.suite.forget_sets if s.display_name == forget_set)
    return f"{method}-{forget_set}-" + stable_hash([made_for(ws.suite, spec, method),
                                                    to_jsonable(base_config(ws, method))])[:8]


# --- jobs: what a worker (or this process) does for one tuning step -------------------------------

_problem_data: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _problem(ws: Workspace, name: str):
    """(forget set, unlearning data) of the tuning forget set standing in for the suite's `name`."""
    per_ws = _problem_data.setdefault(ws, {})
    if name not in per_ws:
        spec = next(s for s in ws.suite.forget_sets if s.display_name == name)
        fs = ws.forget_set(tuning_forget_spec(spec, ws.num_classes))
        per_ws[name] = (fs, ws.unlearn_data(fs))
    return per_ws[name]


def tuning_job(runner, job: Job) -> dict:
    """A `tuning-retrain` job (the retrain a forget set's trials are measured against) or a `trial`
    job (one method, one config): the method's status, cost (wall-clock, FLOPs) and validation metrics."""
    ws = runner.ws
    seed, p = ws.suite.tuning.seed, job.payload
    fs, data = _problem(ws, p["forget_set"])
    original = ws.original(seed)[0]
    started = time.perf_counter()
    if job.kind == "tuning-retrain":
        ctx = ws.context(derive_seed(seed, fs.name, "retrain"), f"tuning: retrain on {fs.name}")
        model, cost, status, error = call_method(method_registry().get("retrain"), original, data, None, ctx)
        if status != "ok":
            raise UserError(f"tuning: retrain {status} on {fs.name}: {error}")
    else:
        config = dataclasses.replace(base_config(ws, p["method"]), **p["values"])
        ctx = ws.context(derive_seed(seed, fs.name, p["method"], p["number"]), f"tuning {p['method']} #{p['number']}")
        model, cost, status, error = call_method(method_registry().get(p["method"]), original, data,
                                                 config, ctx)
    values = measure(ws, model, data, fs.forgotten_class, seed) if status == "ok" else None
    return {"status": status, "error": error, "wall_s": cost["wall_s"], "flops": cost["flops"], "values": values,
            "job_s": time.perf_counter() - started}


HANDLERS = {"tuning-retrain": tuning_job, "trial": tuning_job}


# --- the driver: equal budgets, asked and told through an executor ---------------------------------

@dataclasses.dataclass
class _Study:
    method: str
    forget_set: str
    study: object  # optuna.Study
    space: dict
    done: int  # finished trials (complete or pruned)


def _open_study(ws: Workspace, method: str, forget_set: str, storage):
    import optuna

    space = search_space(method_registry().get(method).config)
    if not space:
        return None
    base, seed = base_config(ws, method), ws.suite.tuning.seed
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=study_name(ws, method, forget_set), storage=storage,
                                direction="minimize", load_if_exists=True)
    # seeded by the trials the study holds: a resumed or extended tune draws on, never replays its draws
    held = (len(study.trials),) if study.trials else ()  # (a fresh study: the seed it always had)
    study.sampler = optuna.samplers.TPESampler(seed=derive_seed(seed, method, forget_set, *held) % 2**32)
    for t in study.trials:  # a trial left running by a killed tune: failed, and not counted
        if t.state == optuna.trial.TrialState.RUNNING:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    start_values = {k: getattr(base, k) for k in space if space[k].contains(getattr(base, k))}
    if len(start_values) == len(space) and not any(t.params == start_values or t.state.name == "WAITING"
                                                   for t in study.trials if t.state.name in (*_FINISHED, "WAITING")):
        study.enqueue_trial(start_values)  # the suite's own values first (again, if a killed tune never finished them)
    return _Study(method, forget_set, study, space, sum(t.state.name in _FINISHED for t in study.trials))


def _ask_new(st: _Study):
    """(trial, values): the sampler's next point that no finished trial of the study has tried. A
    repeat (TPE may propose one; a resumed sampler would replay its draws) is told FAIL, never run
    and not counted, and the sampler asked again."""
    import optuna

    tried = [t.params for t in st.study.trials if t.state.name in _FINISHED]
    for _ in range(1000):
        trial = st.study.ask()
        values = {k: s.suggest(trial, k) for k, s in st.space.items()}
        if values not in tried:
            return trial, values
        trial.set_user_attr("repeat", True)
        st.study.tell(trial, state=optuna.trial.TrialState.FAIL)
    raise UserError(f"tuning {st.method} on {st.forget_set}: the search space holds no configuration left to try; "
                    "lower --trials.")


def _tell(st: _Study, trial, result: dict, retrain: dict) -> str | None:
    """Record a trial's outcome; the reason it is infeasible, or None."""
    import optuna

    reason = result["error"] if result["status"] != "ok" else None
    if reason is None and result["flops"] > retrain["flops"]:
        reason = (f"costs more than retraining ({result['flops'] / 1e9:.3f} GFLOPs > "
                  f"{retrain['flops'] / 1e9:.3f} GFLOPs)")
    values = dict(result["values"] or {})
    if reason is None:
        reason = values.pop("collapse")
    trial.set_user_attr("job_s", result["job_s"])
    trial.set_user_attr("flops", result["flops"])
    if reason:
        trial.set_user_attr("infeasible", reason)
        st.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        st.study.tell(trial, objective_value(values, retrain["values"]))
    st.done += 1
    return reason


def _summary(st: _Study | None) -> dict:
    """A study's tuned.yaml entry: chosen values, trials, best objective, the trials' GFLOPs (the wall
    time of each trial stays in the journal, `job_s`: a clock reading would make the file differ)."""
    import optuna

    if st is None:
        return {"values": {}, "trials": 0, "best_objective": None, "tuning_gflops": 0.0, "note": "nothing to tune"}
    trials = [t for t in st.study.trials if t.state.name in _FINISHED]
    spent = sum(t.user_attrs.get("flops") or 0 for t in trials) / 1e9  # a call whose process died counted none
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value) if complete else None
    return {"values": dict(best.params) if best else {}, "trials": st.done,
            "best_objective": round(float(best.value), 4) if best else None, "tuning_gflops": round(spent, 3),
            **({} if best else {"note": "no feasible trial: the suite's values are kept"})}


def tune_suite(ws: Workspace, methods: list[str], trials: int | None, executor, results_dir: Path) -> Path:
    """Tune `methods` on every forget set (equal budget) with jobs on `executor` (`bench.executors`);
    write `<results>/<suite>/tuned.yaml`.

    Every study has one trial in flight at a time (TPE then samples exactly as in a sequential
    run, so the executor does not change what is chosen); all studies' trials of a round run at
    once. A trial's feasibility compares its FLOPs with its forget set's retrain (a job too), so
    neither the executor nor the machine's load changes what is chosen."""
    suite = ws.suite
    budget = trials or suite.tuning.trials
    folder = inside(results_dir, results_dir / suite.name / "tuning")  # a link out of the folder is refused
    folder.mkdir(parents=True, exist_ok=True)
    storage = open_journal(folder / "journal.log")
    seed, names = suite.tuning.seed, [s.display_name for s in suite.forget_sets]
    for spec in suite.forget_sets:
        tuning_forget_spec(spec, ws.num_classes)  # a forget set tuning cannot stand in for: refused now
    first = [j for j in [original_job(ws, seed)] if j]
    first += [Job(f"tuning-retrain/{n}", "tuning-retrain", f"tuning: retrain on {n}", {"forget_set": n},
                  tuple(j.key for j in first)) for n in names]
    retrains = {job.payload["forget_set"]: result for job, result in executor.run(first) if job.kind != "original"}
    studies = {(m, n): _open_study(ws, m, n, storage) for m in methods for n in names}
    specs = {s.display_name: s for s in suite.forget_sets}
    path = results_dir / suite.name / TUNED_FILE
    tuned = read_tuned(path)
    left = sum(max(0, budget - st.done) for st in studies.values() if st)
    ws.progress.start(left, 0, "tuning trials to do (finished ones are kept)")
    while True:
        for (m, n), st in studies.items():
            if not isinstance(tuned.get(m), dict):  # a broken entry `run` refused: tuning repairs it
                tuned[m] = {}
            tuned[m][n] = {**_summary(st), "made_for": made_for(suite, specs[n], m)}
        write_text(path, "# Generated by `unlearn-bench tune`: chosen values per method and forget set (equal\n"
                         "# budget, validation data, tuning seed and forget sets). `run --tuned` uses them.\n"
                   + yaml.safe_dump(tuned, sort_keys=True))
        asked = {}
        for st in studies.values():
            if st and st.done < budget:
                trial, values = _ask_new(st)
                label = f"tuning {st.method} on {st.forget_set}: trial {st.done + 1}/{budget}"
                job = Job(f"trial/{st.study.study_name}/{trial.number}", "trial", label,
                          {"method": st.method, "forget_set": st.forget_set, "number": trial.number,
                           "values": values})
                asked[job.key] = (job, st, trial)
        if not asked:
            return path
        for job, result in executor.run([j for j, _, _ in asked.values()]):
            _, st, trial = asked[job.key]
            reason = _tell(st, trial, result, retrains[st.forget_set])
            state = "pruned" if reason else "complete"
            ws.progress.run_finished(job.label, state, result["wall_s"], reason)
