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


from bench.errors import Diverged
from bench.evaluate import collapse_reason, outputs_of
from bench.execute import call_method
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
        """Run the method on copies of the original and the data, in a process of its own
        (`bench.execute.call_method`), timed alone; a model of another architecture fails the run."""
        ctx = self.ws.context(derive_seed(r.seed, r.forget_set.name, r.method), r.label)
        model, cost, status, error = call_method(method_registry().get(r.method), original, data, r.config, ctx)
        want = {k: tuple(v.shape) for k, v in original.state_dict().items()}
        if status == "ok" and {k: tuple(v.shape) for k, v in model.state_dict().items()} != want:
            status, error = "failed", "returned a model of another architecture than the original"
        return model, cost, status, error


def run_suite(ws: Workspace, plan: Plan, executor, results_dir: Path) -> dict[str, int]:
    """Run every pending run of `plan` as a graph of cached jobs on `executor`; only this driver
    writes records, as the jobs finish. Counts per status, and `skipped` (already recorded)."""
    pending = [r for r in plan.runs if not recorded(r.path(results_dir))]
    counts = {**dict.fromkeys(STATUSES, 0), "skipped": len(plan.runs) - len(pending)}
    ws.progress.start(len(pending), counts["skipped"])
    for job, result in executor.run(job_graph(ws, pending)):
        if job.kind != "run":
            continue
        record, outputs = result
        write_record(job.payload.path(results_dir), record, outputs)
        counts[record["status"]] += 1
        ws.progress.run_finished(job.label, record["status"], record["cost"].get("wall_s"), record["error"])
    return counts
