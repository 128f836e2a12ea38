"""A suite's pending runs as a graph of cached jobs, and the handlers that do each kind.

Kinds of job, each keyed by a hash of everything that shapes its output (the same keys the cache
files carry), with the jobs it needs named by their keys:
- `original`: train the original model of a seed (-> cache/models/original-<key>.pt);
- `reference`: train LiRA reference model i (-> cache/references/<plan>/ref<i>.{pt,npz});
- `ulira`: unlearn U-LiRA's references with a run's method and config on its forget set
  (-> cache/references/<plan>/ulira/...); needs every reference;
- `run`: run a method on a forget set and seed and score it; its payload is the run's
  `bench.plan.RunSpec`, and it returns (record, outputs) to the driver: only the driver writes
  records. Needs its original, the references and its `ulira` job;
- `forget_quality`: a forget-quality set (`bench.forget_quality_runs`): N calls of a method on one
  original; returns (record, arrays) to the driver. Needs that original.
(`tuning-retrain` and `trial` are `bench.tune`'s.) Models pass between jobs through the cache
folder, never in memory, so a job can run in another process or on another machine that shares
the folder. Prerequisites already in the cache are not planned again: a rerun recomputes
nothing that finished.
"""

from __future__ import annotations

from bench.executors import Job
from bench.files import read_meta
from bench.plan import RunSpec
from bench.references import train_reference


def cached(path) -> bool:
    """A cache file that exists with its checked metadata (`bench.files.write_checked`)."""
    try:
        return path.is_file() and bool(read_meta(path))
    except (OSError, ValueError):
        return False


def original_job(ws, seed: int, needs: tuple[str, ...] = ()) -> Job | None:
    """The job that trains `seed`'s original model, or None when it is cached."""
    if cached(ws.original_path(seed)):
        return None
    return Job(f"original/{ws.original_key(seed)}", "original", f"seed {seed} original model", seed, needs)


def job_graph(ws, pending: list[RunSpec], sets=()) -> list[Job]:
    """Jobs for the pending runs and forget-quality sets of workspace `ws`, prerequisites first."""
    jobs: dict[str, Job] = {}
    if not pending and not sets:
        return []
    originals = {seed: original_job(ws, seed) for seed in sorted({r.seed for r in [*pending, *sets]})}
    jobs.update({j.key: j for j in originals.values() if j})
    refs: tuple[str, ...] = ()
    if ws.needs("needs_references"):
        plan = ws.reference_plan()
        for i in range(plan.k):
            if not cached(plan.folder / f"ref{i}.npz"):
                key = f"reference/{plan.folder.name}/{i}"
                jobs[key] = Job(key, "reference", f"reference model {i + 1}/{plan.k}", i)
        refs = tuple(k for k in jobs if k.startswith("reference/"))
    for r in pending:
        needs = [*refs, *([originals[r.seed].key] if originals[r.seed] else [])]
        if ws.needs("needs_unlearned_references"):
            key = f"ulira/{r.forget_set.name}/{r.method}/{r.identity['config_hash']}"
            jobs.setdefault(key, Job(key, "ulira", f"U-LiRA references: {r.method} on {r.forget_set.name}", r, refs))
            needs.append(key)
        jobs[r.key] = Job(r.key, "run", r.label, r, tuple(needs))
    for s in sets:
        jobs[s.key] = Job(s.key, "forget_quality", s.label, s, (originals[s.seed].key,) if originals[s.seed] else ())
    return list(jobs.values())


def _original(runner, job: Job) -> None:
    runner.ws.original(job.payload)  # kept in memory for this process's runs of that seed


def _reference(runner, job: Job) -> None:
    train_reference(runner.ws.reference_plan(), job.payload, runner.ws.context, runner.ws.progress.run_started)


def _ulira(runner, job: Job) -> None:
    r: RunSpec = job.payload
    runner.scorer.prepare_unlearned(r.forget_set, r.method, r.config, r.seed)


def _run(runner, job: Job):
    return runner.run(job.payload)


def _forget_quality(runner, job: Job):
    return runner.forget_quality(job.payload)


HANDLERS = {"original": _original, "reference": _reference, "ulira": _ulira, "run": _run,
            "forget_quality": _forget_quality}
