"""Equal-budget hyperparameter selection on validation data (`unlearn-bench tune`).

Every method gets the same number of Optuna trials (the suite's `tuning.trials`, or `--trials`
for all methods at once), a seeded TPE sampler whose random start-up trials are at most a third
of the budget (`startup_trials`), and a journal file in the results folder
(`<results>/<suite>/tuning/journal.log`), so an interrupted tune resumes where it stopped and a
study can be inspected with Optuna afterwards. Selection never sees what the report uses:
- trials run on the tuning seeds (`tuning.seeds`, refused if one is a reporting seed), each with
  its own original model and its own tuning forget sets, drawn by the suite's protocols with
  another seed (random) or another class (class forgetting), written as `tuning-<name>-<k>`
  beside the suite's forget sets;
- the validation split stands in for test, and the test split is never read: tuning's workspace
  holds it as tensors that raise on any use (`forbid_test`);
- objective (minimised): per tuning seed, mean |method - retrain| in points over forget acc,
  retain acc, val acc and the simple MIA of forget vs val (held-out), against the retrain of that
  seed and forget set; a config's value is the mean over the tuning seeds. Every seed counts: a
  seed on which the method fails, diverges or collapses scores a penalty, the larger of doing
  nothing's value there (the original model against that retrain) and the config's worst `ok`
  seed, so a config at a cliff edge loses to a stable one;
- a trial is infeasible (pruned, never selected) when its method costs more floating-point
  operations than the retrain on any seed (`bench.flops`: a count, so the same tune twice
  chooses the same configs, whatever the machine's load), or fails on every seed.
The suite's own per-method values are the first trial (enqueued) when they lie in the space.
After the budget, the winner is evaluated again at its neighbours (each continuous
hyperparameter x0.8 and x1.25, one at a time, on the same seeds; `neighbours`): a neighbour that
fails, diverges or collapses on a seed, or scores worse than doing nothing, marks the winner
`edge_of_stability`; a winner that closes less than a tenth of the gap doing nothing leaves
(`NOTHING_MARGIN`) is marked `no_better_than_nothing`. `tuned.yaml` (per method: chosen values,
trials, best objective, doing nothing's, the marks, the trials' GFLOPs and what the choice was
made for, `bench.tuned`; nothing that depends on the clock, so the same tune writes the same
file) is what `unlearn-bench run` runs with, and the records carry the marks to the board.
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
from bench.execute import call_method_many, rng_states
from bench.executors import Job
from bench.files import write_text
from bench.files import inside
from bench.jobs import original_job
from bench.journal import open_journal
from bench.methods_loader import method_registry
from bench.plan import resolve_config
from bench.spec import ForgetSpec, derive_seed, search_space, stable_hash, to_jsonable
from bench.tuned import TUNED_FILE, made_for, read_tuned
from bench.studies import FINISHED, Study, ask_new, neighbour_jobs, neighbour_outcome, summary, tell
from bench.tuning_rules import objective_value, startup_trials
from bench.workspace import Workspace


class _Forbidden(torch.Tensor):
    """The test split during tuning: any use raises."""

    @classmethod
    def __torch_function__(cls, func, types_, args=(), kwargs=None):
        raise RuntimeError("the test split was used during tuning; selection must use validation data only")


def forbid_test(test: Split) -> Split:
    """The test split as tuning's workspace holds it (`Workspace(guard_test=forbid_test)`): any use raises."""
    return Split(test.x.as_subclass(_Forbidden), test.y.as_subclass(_Forbidden), test.index)


def tuning_forget_spec(spec: ForgetSpec, num_classes: int, k: int = 0) -> ForgetSpec:
    """The same protocol, another draw for tuning seed number `k`: another seed (random) or another
    class (class: the k+1-th after the reported one)."""
    name = f"tuning-{spec.display_name}-{k}"
    if spec.protocol == "random":
        return dataclasses.replace(spec, seed=spec.seed + 1 + k, name=name)
    if spec.protocol == "class":
        if k + 1 >= num_classes:
            raise UserError(f"forget set '{spec.display_name}': {k + 1} tuning seeds need as many classes besides "
                            f"class {spec.label}, and the dataset has {num_classes - 1}; list fewer tuning.seeds.")
        return dataclasses.replace(spec, label=(spec.label + 1 + k) % num_classes, name=name)
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


def base_config(ws: Workspace, method: str):
    """Where a method's tuning starts: the suite's values with `--set` (tuned values never feed a tune)."""
    return resolve_config(ws.suite, method, None)[0]


def study_name(ws: Workspace, method: str, forget_set: str) -> str:
    spec = next(s for s in ws.suite.forget_sets if s.display_name == forget_set)
    return f"{method}-{forget_set}-" + stable_hash([made_for(ws.suite, spec, method),
                                                    to_jsonable(base_config(ws, method))])[:8]


# --- jobs: what a worker (or this process) does for one tuning step -------------------------------

_problem_data: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _problem(ws: Workspace, name: str, k: int):
    """(forget set, unlearning data) of the k-th tuning seed's forget set standing in for the suite's `name`."""
    per_ws = _problem_data.setdefault(ws, {})
    if (name, k) not in per_ws:
        spec = next(s for s in ws.suite.forget_sets if s.display_name == name)
        fs = ws.forget_set(tuning_forget_spec(spec, ws.num_classes, k))
        per_ws[name, k] = (fs, ws.unlearn_data(fs))
    return per_ws[name, k]


def _seeds(ws: Workspace, ks: list[int], forget_set: str, method: str, config, number) -> list[dict]:
    """One call of `method` on each tuning seed number in `ks`, in one process (`call_method_many`):
    per seed, its status, error, cost and validation metrics."""
    calls, problems = [], []
    for k in ks:
        seed = ws.suite.tuning.seeds[k]
        fs, data = _problem(ws, forget_set, k)
        original = ws.original(seed)[0]  # before seeding: loading it builds a model, which draws from the RNG
        ctx = ws.context(derive_seed(seed, fs.name, method, number), f"tuning {method} #{number} seed {seed}")
        calls.append((original, data, ctx, rng_states()))
        problems.append((fs, data, seed))
    out = []
    for (model, cost, status, error), (fs, data, seed) in zip(call_method_many(method_registry().get(method), config,
                                                                                calls), problems):
        values = measure(ws, model, data, fs.forgotten_class, seed) if status == "ok" else None
        out.append({"status": status, "error": error, "wall_s": cost["wall_s"], "flops": cost["flops"],
                    "values": values})
    return out


def tuning_job(runner, job: Job) -> dict:
    """A `tuning-retrain` job (the retrain a forget set's trials are measured against on tuning seed
    number k, with doing nothing's objective there) or a `trial` job (one method, one config, on
    every tuning seed: `seeds`, one result each)."""
    ws, p = runner.ws, job.payload
    started = time.perf_counter()
    if job.kind == "tuning-retrain":
        k = p["k"]
        result = _seeds(ws, [k], p["forget_set"], "retrain", None, "retrain")[0]
        if result["status"] != "ok":
            raise UserError(f"tuning: retrain {result['status']} on {p['forget_set']} (tuning seed "
                            f"{ws.suite.tuning.seeds[k]}): {result['error']}")
        fs, data = _problem(ws, p["forget_set"], k)
        seed = ws.suite.tuning.seeds[k]
        nothing = measure(ws, ws.original(seed)[0], data, fs.forgotten_class, seed)
        return {**result, "nothing": objective_value(nothing, result["values"]), "job_s": time.perf_counter() - started}
    config = dataclasses.replace(base_config(ws, p["method"]), **p["values"])
    seeds = _seeds(ws, list(range(len(ws.suite.tuning.seeds))), p["forget_set"], p["method"], config, p["number"])
    return {"seeds": seeds, "wall_s": sum(r["wall_s"] for r in seeds), "flops": sum(r["flops"] or 0 for r in seeds),
            "job_s": time.perf_counter() - started}


HANDLERS = {"tuning-retrain": tuning_job, "trial": tuning_job}


# --- the driver: equal budgets, asked and told through an executor ---------------------------------

def _open_study(ws: Workspace, method: str, forget_set: str, storage, budget: int):
    import optuna

    space = search_space(method_registry().get(method).config)
    if not space:
        return None
    base, seed = base_config(ws, method), ws.suite.tuning.seeds[0]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=study_name(ws, method, forget_set), storage=storage,
                                direction="minimize", load_if_exists=True)
    # seeded by the trials the study holds: a resumed or extended tune draws on, never replays its draws
    held = (len(study.trials),) if study.trials else ()  # (a fresh study: the seed it always had)
    study.sampler = optuna.samplers.TPESampler(seed=derive_seed(seed, method, forget_set, *held) % 2**32,
                                               n_startup_trials=startup_trials(budget))
    for t in study.trials:  # a trial left running by a killed tune: failed, and not counted
        if t.state == optuna.trial.TrialState.RUNNING:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    start_values = {k: getattr(base, k) for k in space if space[k].contains(getattr(base, k))}
    if len(start_values) == len(space) and not any(t.params == start_values or t.state.name == "WAITING"
                                                   for t in study.trials if t.state.name in (*FINISHED, "WAITING")):
        study.enqueue_trial(start_values)  # the suite's own values first (again, if a killed tune never finished them)
    return Study(method, forget_set, study, space, sum(t.state.name in FINISHED for t in study.trials))


def _write(path: Path, tuned: dict) -> None:
    write_text(path, "# Generated by `unlearn-bench tune`: chosen values per method and forget set (equal\n"
                     "# budget, validation data, tuning seeds and forget sets). `run --tuned` uses them.\n"
               + yaml.safe_dump(tuned, sort_keys=True))


def tune_suite(ws: Workspace, methods: list[str], trials: int | None, executor, results_dir: Path) -> Path:
    """Tune `methods` on every forget set (equal budget) with jobs on `executor` (`bench.executors`);
    write `<results>/<suite>/tuned.yaml`.

    Every study has one trial in flight at a time (TPE then samples exactly as in a sequential
    run, so the executor does not change what is chosen); all studies' trials of a round run at
    once, and then the winners' neighbours. A trial's feasibility compares its FLOPs with its
    forget set's retrain on each tuning seed (a job too), so neither the executor nor the
    machine's load changes what is chosen."""
    suite = ws.suite
    budget = trials or suite.tuning.trials
    folder = inside(results_dir, results_dir / suite.name / "tuning")  # a link out of the folder is refused
    folder.mkdir(parents=True, exist_ok=True)
    storage = open_journal(folder / "journal.log")
    names, seeds = [s.display_name for s in suite.forget_sets], suite.tuning.seeds
    for spec in suite.forget_sets:
        for k in range(len(seeds)):
            tuning_forget_spec(spec, ws.num_classes, k)  # a forget set tuning cannot stand in for: refused now
    first = [j for j in (original_job(ws, seed) for seed in seeds) if j]
    first += [Job(f"tuning-retrain/{n}/{k}", "tuning-retrain", f"tuning: retrain on {n} (seed {seeds[k]})",
                  {"forget_set": n, "k": k}, tuple(j.key for j in first)) for n in names for k in range(len(seeds))]
    done = {(job.payload["forget_set"], job.payload["k"]): result for job, result in executor.run(first)
            if job.kind != "original"}
    retrains = {n: [done[n, k] for k in range(len(seeds))] for n in names}
    nothing = {n: float(np.mean([r["nothing"] for r in retrains[n]])) for n in names}
    studies = {(m, n): _open_study(ws, m, n, storage, budget) for m in methods for n in names}
    specs = {s.display_name: s for s in suite.forget_sets}
    path = results_dir / suite.name / TUNED_FILE
    tuned = read_tuned(path)
    left = sum(max(0, budget - st.done) for st in studies.values() if st)
    ws.progress.start(left, 0, "tuning trials to do (finished ones are kept)")
    while True:
        for (m, n), st in studies.items():
            if not isinstance(tuned.get(m), dict):  # a broken entry `run` refused: tuning repairs it
                tuned[m] = {}
            tuned[m][n] = {**summary(st, nothing[n]), "made_for": made_for(suite, specs[n], m)}
        _write(path, tuned)
        asked = {}
        for st in studies.values():
            if st and st.done < budget:
                trial, values = ask_new(st)
                label = f"tuning {st.method} on {st.forget_set}: trial {st.done + 1}/{budget}"
                job = Job(f"trial/{st.study.study_name}/{trial.number}", "trial", label,
                          {"method": st.method, "forget_set": st.forget_set, "number": trial.number,
                           "values": values})
                asked[job.key] = (job, st, trial)
        if not asked:
            break
        for job, result in executor.run([j for j, _, _ in asked.values()]):
            _, st, trial = asked[job.key]
            reason = tell(st, trial, result, retrains[st.forget_set])
            ws.progress.run_finished(job.label, "pruned" if reason else "complete", result["wall_s"], reason)
    todo = {k: v for st in studies.values() for k, v in neighbour_jobs(st, budget).items()}
    results: dict = {}
    for job, result in executor.run([v[3] for v in todo.values()]):
        st, best, name, _ = todo[job.key]
        results.setdefault(st.study.study_name, (st, best, {}))[2][name] = neighbour_outcome(
            result["seeds"], retrains[st.forget_set])
    for st, best, found in results.values():
        st.study.set_user_attr("neighbours", {"trial": best.number, "results": found})
    for (m, n), st in studies.items():
        tuned[m][n] = {**summary(st, nothing[n]), "made_for": made_for(suite, specs[n], m)}
    _write(path, tuned)
    return path
