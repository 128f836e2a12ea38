"""One tuning study's bookkeeping in Optuna (`bench.tune`): asking for a configuration no finished
trial has tried, telling a trial's outcome over the tuning seeds, the winner, the winner's
neighbour checks, and the study's `tuned.yaml` entry."""

from __future__ import annotations

import dataclasses

from bench.errors import UserError
from bench.executors import Job
from bench.tuning_rules import NOTHING_MARGIN, neighbours, seed_values

FINISHED = ("COMPLETE", "PRUNED")  # trial states that count against the budget


@dataclasses.dataclass
class Study:
    method: str
    forget_set: str
    study: object  # optuna.Study
    space: dict
    done: int  # finished trials (complete or pruned)


def ask_new(st: Study):
    """(trial, values): the sampler's next point that no finished trial of the study has tried. A
    repeat (TPE may propose one; a resumed sampler would replay its draws) is told FAIL, never run
    and not counted, and the sampler asked again."""
    import optuna

    tried = [t.params for t in st.study.trials if t.state.name in FINISHED]
    for _ in range(1000):
        trial = st.study.ask()
        values = {k: s.suggest(trial, k) for k, s in st.space.items()}
        if values not in tried:
            return trial, values
        trial.set_user_attr("repeat", True)
        st.study.tell(trial, state=optuna.trial.TrialState.FAIL)
    raise UserError(f"tuning {st.method} on {st.forget_set}: the search space holds no configuration left to try; "
                    "lower --trials.")


def tell(st: Study, trial, result: dict, retrains: list[dict]) -> str | None:
    """Record a trial's outcome over the tuning seeds (`seed_values`); the reason it is infeasible, or None."""
    import optuna

    value, reason, per_seed = seed_values(result["seeds"], retrains)
    trial.set_user_attr("job_s", result["job_s"])
    trial.set_user_attr("flops", result["flops"])
    trial.set_user_attr("per_seed", per_seed)  # None where the seed failed, diverged or collapsed
    if reason:
        trial.set_user_attr("infeasible", reason)
        st.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        st.study.tell(trial, value)
    st.done += 1
    return reason


def best_trial(st: Study):
    import optuna

    complete = [t for t in st.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return min(complete, key=lambda t: (t.value, t.number)) if complete else None


def summary(st: Study | None, nothing: float) -> dict:
    """A study's tuned.yaml entry: chosen values, trials, best objective, doing nothing's objective,
    the marks, the trials' GFLOPs (the wall time of each trial stays in the journal, `job_s`: a
    clock reading would make the file differ)."""
    base = {"do_nothing_objective": round(nothing, 4)}
    if st is None:
        return {**base, "values": {}, "trials": 0, "best_objective": None, "tuning_gflops": 0.0,
                "note": "nothing to tune"}
    trials = [t for t in st.study.trials if t.state.name in FINISHED]
    spent = sum(t.user_attrs.get("flops") or 0 for t in trials) / 1e9  # a call whose process died counted none
    best = best_trial(st)
    entry = {**base, "values": dict(best.params) if best else {}, "trials": st.done,
             "best_objective": round(float(best.value), 4) if best else None, "tuning_gflops": round(spent, 3)}
    if best is None:
        return {**entry, "note": "no feasible trial: the suite's values are kept"}
    entry["no_better_than_nothing"] = bool(best.value > NOTHING_MARGIN * nothing)
    checked = st.study.user_attrs.get("neighbours")
    if checked and checked["trial"] == best.number:
        entry["neighbours"] = checked["results"]  # a neighbour dearer than retraining is no mark of instability
        entry["edge_of_stability"] = any(v["failed_seeds"] or (v["objective"] or 0.0) > nothing
                                         for v in checked["results"].values())
    return entry


def neighbour_jobs(st: Study, budget: int) -> dict:
    """The winner's neighbour evaluations still to do, once the study has its budget."""
    best = best_trial(st) if st and st.done >= budget else None
    checked = st.study.user_attrs.get("neighbours") if st else None
    if best is None or (checked and checked["trial"] == best.number):
        return {}
    out = {}
    for name, values in neighbours(dict(best.params), st.space).items():
        number = f"{best.number} {name}"
        out[f"neighbour/{st.study.study_name}/{number}"] = (st, best, name, Job(
            f"neighbour/{st.study.study_name}/{number}", "trial", f"tuning {st.method} on {st.forget_set}: {name}",
            {"method": st.method, "forget_set": st.forget_set, "number": number, "values": values}))
    return out


def neighbour_outcome(seeds: list[dict], retrains: list[dict]) -> dict:
    """A neighbour's objective over the tuning seeds (`seed_values`), how many seeds it lost (failed,
    diverged or collapsed) and, where infeasible, why."""
    value, reason, _ = seed_values(seeds, retrains)
    lost = sum(r["status"] != "ok" or bool((r["values"] or {}).get("collapse")) for r in seeds)
    return {"objective": None if value is None else round(value, 4), "failed_seeds": lost,
            **({"note": reason} if reason else {})}
