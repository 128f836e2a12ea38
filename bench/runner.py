"""One run, and the driver that runs a plan: copy, seed, time the method alone, evaluate once.

Runs come resolved from `bench.plan` (a recorded run is skipped: resume); `run_suite` hands the
pending ones to an executor as a graph of jobs (`bench.jobs`) and alone writes their records.
A method that raises is recorded as `failed` and the sweep goes on; one whose loss or weights
become NaN/inf is recorded as `diverged`; one whose retain predictions collapse, `collapsed`.
Every method gets its own copy of the data and of the original model; a method that changes
the original or its input data anyway is recorded as `failed` and the original is restored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import Diverged
from bench.evaluate import accuracy, collapse_reason, outputs_of, per_example_outputs
from bench.execute import call_method, call_method_many, rng_states
from bench.forget_quality_runs import ForgetQualitySpec
from bench.jobs import job_graph
from bench.methods_loader import method_registry
from bench.plan import Plan, RunSpec
from bench.scorer import Scorer
from bench.spec import derive_seed
from bench.store import recorded, write_record
from bench.workspace import Workspace

STATUSES = ("ok", "failed", "diverged", "collapsed")


class Runner:
    """Does runs in one process: a workspace and its scorer."""

    def __init__(self, ws: Workspace):
        self.ws, self.scorer = ws, Scorer(ws)

    def run(self, r: RunSpec) -> tuple[dict, dict | None]:
        """One run: unlearn (or take the original), evaluate once, score. (record, outputs to save)."""
        ws = self.ws
        if r.identity["device_policy"] != ws.policy.key():  # the record would name another computation
            raise RuntimeError(f"{r.label}: planned for device policy {r.identity['device_policy']}, but this "
                               f"process computes with {ws.policy.key()}; give the driver and its workers the "
                               "same --device and threads per job.")
        original, meta = ws.original(r.seed)
        data = ws.unlearn_data(r.forget_set)
        ws.progress.run_started(r.label)
        if r.method == "original":
            model, cost, status, error = original, dict(meta["cost"]), "ok", None
        else:
            model, cost, status, error = self.unlearn(r, original, data)
        record = {**r.identity, "status": status, "error": error, "cost": cost, "env": ws.env, "metrics": None}
        outputs = None
        if status == "ok":
            try:
                record["metrics"], outputs = self.scorer.score(model, data, r.forget_set, r.method, r.config, r.seed)
                if reason := collapse_reason(outputs_of(outputs, "retain"), ws.num_classes):  # original too
                    status, error = "collapsed", reason
            except Diverged as e:
                status, error = "diverged", str(e)
            except Exception as e:  # noqa: BLE001 - a run that cannot be scored is recorded, the sweep goes on
                status, error = "failed", f"scoring failed: {type(e).__name__}: {e}"
            record.update(status=status, error=error)
        return record, (outputs if status in ("ok", "collapsed") else None)

    def unlearn(self, r: RunSpec, original, data):
        return self.call(r.method, r.config, original, data, derive_seed(r.seed, r.forget_set.name, r.method), r.label)

    def call(self, method: str, config, original, data, seed: int, label: str):
        """Run the method on copies of the original and the data, in a process of its own
        (`bench.execute.call_method`), timed alone; a model of another architecture fails the run."""
        ctx = self.ws.context(seed, label)
        model, cost, status, error = call_method(method_registry().get(method), original, data, config, ctx)
        want = {k: tuple(v.shape) for k, v in original.state_dict().items()}
        if status == "ok" and {k: tuple(v.shape) for k, v in model.state_dict().items()} != want:
            status, error = "failed", "returned a model of another architecture than the original"
        return model, cost, status, error


    def forget_quality(self, s: ForgetQualitySpec) -> tuple[dict, dict]:
        """One forget-quality set (`bench.forget_quality_runs`): (record, arrays to save)."""
        ws = self.ws
        original, _ = ws.original(s.seed)
        data = ws.unlearn_data(s.forget_set)
        splits = {k: v for k, v in ws.eval_splits(data).items() if k in ("forget", "retain", "test")}
        ws.progress.run_started(s.label)
        base = self._challenge_outputs(original, splits)
        calls = []  # the N calls in one process (`call_method_many`): each seeded as a single call is
        for i in range(s.models if s.method != "original" else 0):
            ctx = ws.context(s.unlearn_seed(i), f"{s.label} {i + 1}/{s.models}")
            calls.append((original, data, ctx, rng_states()))
        done = call_method_many(method_registry().get(s.method), s.config, calls) if calls else []
        rows, outcomes, errors, wall, flops = [], [], [], 0.0, 0
        for i in range(s.models):
            status, error, out = "ok", None, base
            if s.method != "original":
                model, cost, status, error = done[i]
                wall, flops = wall + cost["wall_s"], flops + (cost.get("flops") or 0)
                if status == "ok":
                    out = self._challenge_outputs(model, splits)
                    if not all(np.isfinite(o["conf"]).all() for o in out.values()):
                        status, error, out = "diverged", "outputs are not finite", base
                    elif reason := collapse_reason(out["retain"], ws.num_classes):
                        status, error = "collapsed", reason
                else:  # failed or diverged: the user is left with the original model (doing nothing)
                    out = base
            rows.append(out)
            outcomes.append(status)
            errors.append(error)
        arrays = {"phi": np.stack([o["forget"]["conf"] for o in rows]).astype(np.float32),
                  "retain_acc": np.array([accuracy(o["retain"]) for o in rows], np.float64),
                  "test_acc": np.array([accuracy(o["test"]) for o in rows], np.float64)}
        record = {**s.identity, "status": "ok", "error": None, "outcomes": outcomes, "errors": errors,
                  "cost": {"wall_s": wall, "flops": flops}, "env": ws.env,
                  "metrics": {"retain_acc": float(arrays["retain_acc"].mean()),
                              "test_acc": float(arrays["test_acc"].mean())}}
        return record, arrays

    def _challenge_outputs(self, model, splits) -> dict:
        ws = self.ws
        return {k: per_example_outputs(model, split, ws.batcher, ws.suite.eval.batch_size) for k, split in splits.items()}


def run_suite(ws: Workspace, plan: Plan, executor, results_dir: Path) -> dict[str, int]:
    """Run every pending run of `plan`, and its pending forget-quality sets, as a graph of cached
    jobs on `executor`; only this driver writes records, as the jobs finish. Counts per status,
    `skipped` (runs already recorded) and `forget_quality` (sets done)."""
    pending = [r for r in plan.runs if not recorded(r.path(results_dir))]
    sets = [s for s in plan.forget_quality if not recorded(s.path(results_dir))]  # incomplete: moved aside, done again
    counts = {**dict.fromkeys(STATUSES, 0), "skipped": len(plan.runs) - len(pending), "forget_quality": 0}
    ws.progress.start(len(pending) + len(sets), counts["skipped"])
    for job, result in executor.run(job_graph(ws, pending, sets)):
        if job.kind == "forget_quality":
            record, arrays = result
            write_record(job.payload.path(results_dir), record, arrays)
            counts["forget_quality"] += 1
            lost = sum(o != "ok" for o in record["outcomes"])
            ws.progress.run_finished(job.label, f"ok ({lost} of {len(record['outcomes'])} runs not ok)" if lost else "ok",
                                     record["cost"]["wall_s"], None)
        if job.kind != "run":
            continue
        record, outputs = result
        write_record(job.payload.path(results_dir), record, outputs)
        counts[record["status"]] += 1
        ws.progress.run_finished(job.label, record["status"], record["cost"].get("wall_s"), record["error"])
    return counts


def run_summary(suite, counts: dict[str, int], rescored: int) -> str:
    """`run`'s closing line: runs per status, skipped, rescored, forget-quality sets done."""
    sets = (f", {counts['forget_quality']} forget-quality sets of {suite.forget_quality.models} runs"
            if suite.forget_quality.models else "")
    return (f"{suite.name}: {counts['ok']} ok, {counts['failed']} failed, {counts['diverged']} diverged, "
            f"{counts['collapsed']} collapsed, {counts['skipped']} skipped (already recorded), {rescored} rescored{sets}")
