"""A suite's pending runs as a graph of cached jobs, and how one job is done anywhere.

Kinds of job, each keyed by a hash of everything that shapes its output (the same keys the cache
files carry), with the jobs it needs named by their keys:
- `original`: train the original model of a seed (-> cache/models/original-<key>.pt);
- `reference`: train LiRA reference model i (-> cache/references/<plan>/ref<i>.{pt,npz});
- `ulira`: unlearn U-LiRA's references with a method and config on a forget set
  (-> cache/references/<plan>/ulira/...); needs every reference;
- `tuning-retrain` and `trial` (`bench.tune`): the retrain a tuning forget set's trials are
  measured against, and one tuning trial; both return their metrics to the driver;
- `run`: run a method on a forget set and seed and score it (-> one record, which the job returns
  to the driver: only the driver writes records); needs its original, the references and its
  `ulira` job.
Models pass between jobs through the cache folder, never in memory, so a job can run in another
process or on another machine that shares the folder. Prerequisites already in the cache are not
planned again: a rerun recomputes nothing that finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.attacks import AttackInput, attack_registry
from bench.files import read_meta
from bench.forget import ForgetSet
from bench.store import recorded


@dataclass(frozen=True)
class PendingRun:
    """One run of the sweep that has no record yet: where its record goes and what it says."""

    fs: ForgetSet
    seed: int
    method: str
    config: object
    path: Path
    base: dict


def pending_runs(run) -> tuple[list[PendingRun], int]:
    """The runs of the sweep (forget set x seed x method) without a record yet, and how many have one."""
    seeds = [s for s in run.suite.seeds if run.opts.seeds is None or s in run.opts.seeds]
    pending, skipped = [], 0
    for spec in run.suite.forget_sets:
        fs = run.forget_set(spec)
        for seed in seeds:
            for method in run.planned_methods():
                config = None if method == "original" else run._config(method, fs.name)
                path, base = run.record_base(fs, method, config, seed)
                if recorded(path):
                    skipped += 1
                else:
                    pending.append(PendingRun(fs, seed, method, config, path, base))
    return pending, skipped


@dataclass(frozen=True)
class Job:
    key: str
    kind: str  # original | reference | ulira | run
    label: str
    params: dict = field(default_factory=dict, hash=False, compare=False)  # plain data naming the work
    needs: tuple[str, ...] = ()  # keys of the jobs that must finish first


def cached(path) -> bool:
    """A cache file that exists with its checked metadata (`bench.files.write_checked`)."""
    try:
        return path.is_file() and bool(read_meta(path))
    except (OSError, ValueError):
        return False


def _needs(run, meta_key: str) -> bool:
    return any(attack_registry.get(a).meta.get(meta_key) for a in run.suite.attacks)


def plan(run, pending) -> list[Job]:
    """Jobs for the pending runs (`pending_runs`), prerequisites first."""
    jobs: dict[str, Job] = {}
    if not pending:
        return []
    for seed in sorted({r.seed for r in pending}):
        if not cached(run.original_path(seed)):
            key = f"original/{run.original_key(seed)}"
            jobs[key] = Job(key, "original", f"seed {seed} original model", {"seed": seed})
    refs: tuple[str, ...] = ()
    if _needs(run, "needs_references"):
        ref_plan = run.reference_plan()
        refs = tuple(f"reference/{ref_plan.folder.name}/{i}" for i in range(ref_plan.k))
        for i, key in enumerate(refs):
            if not cached(ref_plan.folder / f"ref{i}.npz"):
                jobs[key] = Job(key, "reference", f"reference model {i + 1}/{ref_plan.k}", {"index": i})
    refs = tuple(k for k in refs if k in jobs)
    for r in pending:
        needs = [*refs]
        if f"original/{run.original_key(r.seed)}" in jobs:
            needs.append(f"original/{run.original_key(r.seed)}")
        if _needs(run, "needs_unlearned_references"):
            key = f"ulira/{r.fs.name}/{r.method}/{r.base['config_hash']}"
            jobs.setdefault(key, Job(key, "ulira", f"U-LiRA references: {r.method} on {r.fs.name}",
                                     _run_params(r), refs))
            needs.append(key)
        key = f"run/{r.base['config_hash']}/seed{r.seed}"
        jobs[key] = Job(key, "run", f"{r.fs.name} seed {r.seed} {r.method}", _run_params(r), tuple(needs))
    return list(jobs.values())


def _run_params(r) -> dict:
    return {"forget_set": r.fs.name, "seed": r.seed, "method": r.method, "record": record_name(r.path)}


def record_name(path) -> str:
    """A record's path inside its results folder (the same for the driver and any worker)."""
    return "/".join(path.parts[-3:])


def find_pending(run, params: dict):
    """The pending run a job names, found again in a (possibly other) process's SuiteRun."""
    for spec in run.suite.forget_sets:
        if spec.display_name == params["forget_set"]:
            fs = run.forget_set(spec)
            method, seed = params["method"], params["seed"]
            config = None if method == "original" else run._config(method, fs.name)
            path, base = run.record_base(fs, method, config, seed)
            if record_name(path) != params["record"]:
                raise RuntimeError(f"job for '{params['record']}' rebuilt as '{record_name(path)}': driver and "
                                   "worker disagree (different code, suite or tuned configs?)")
            return PendingRun(fs, seed, method, config, path, base)
    raise RuntimeError(f"forget set '{params['forget_set']}' is not in the suite")


def execute(run, job: Job):
    """Do one job with a SuiteRun of this process. `run` jobs return (record, outputs); others None."""
    if job.kind == "original":
        run.original_of(job.params["seed"])  # kept in memory for this process's runs of that seed
    elif job.kind == "reference":
        from bench.references import train_reference

        ref_plan = run.reference_plan()
        train_reference(ref_plan, job.params["index"], run.context, run.opts.progress.run_started)
    elif job.kind == "ulira":
        r = find_pending(run, job.params)
        data = run.data_of(r.fs)
        stub = lambda split, part: {"key": run.example_keys(part, split.index),  # noqa: E731
                                    "label": split.y.cpu().numpy()}
        a = AttackInput({"forget": stub(data.forget, "train"), "test": stub(run.test, "test")},
                        run.suite.attack_settings, r.seed, r.fs.label, run.references())
        run.unlearned(a, r.method, r.config, r.fs)
    elif job.kind == "run":
        return run.run_one(find_pending(run, job.params))
    else:
        raise ValueError(f"unknown job kind '{job.kind}'")
    return None
