"""Where jobs run: in this process (`local`, the default) or on a Ray cluster (`ray`).

An executor takes a list of jobs (`bench.jobs.plan`, or `bench.tune`'s trials), runs every job
once its needs have finished, and yields each finished job with its result to the driver, which
alone writes records and tuning studies. A Ray worker never receives a live `SuiteRun`: it gets a `RunRequest`
(plain data: suite, overrides, plugins, tuned configs, folders) and builds its own SuiteRun
once per process; models reach it through the shared cache folder.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from bench.data import default_cache_dir
from bench.errors import UserError
from bench.jobs import Job, execute, pending_runs, plan
from bench.store import write_record


def run_suite(run, executor=None) -> dict[str, int]:
    """Run every pending run of `run` (a SuiteRun) as a graph of cached jobs on `executor` (default:
    in this process). Only this driver writes records, as the jobs finish. Counts per status."""
    counts = {"ok": 0, "failed": 0, "diverged": 0, "collapsed": 0, "skipped": 0}
    pending, counts["skipped"] = pending_runs(run)
    run.opts.progress.start(len(pending), counts["skipped"])
    for job, result in (executor or LocalExecutor(run)).run(plan(run, pending)):
        if job.kind != "run":
            continue
        record, outputs = result
        write_record(run.opts.results_dir / job.params["record"], record, outputs)
        counts[record["status"]] += 1
        run.opts.progress.run_finished(job.label, record["status"], record["cost"].get("wall_s"), record["error"])
    return counts


@dataclass(frozen=True)
class RunRequest:
    """Everything needed to build the same suite run in any process, as plain data."""

    suite: str  # built-in suite name or absolute path
    overrides: dict = field(default_factory=dict)
    plugins: tuple[str, ...] = ()  # absolute paths
    added_methods: tuple[str, ...] = ()  # registered methods run with their defaults although the suite lacks them
    tuned_file: str | None = None  # results/<suite>/tuned.yaml when the run uses tuned configs
    results_dir: str = "results"
    cache_dir: str | None = None
    data_root: str | None = None
    download: bool = False
    device: str = "auto"
    methods: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None

    def absolute(self) -> "RunRequest":
        """The same request with absolute folders, for workers whose working directory differs."""
        absolute = lambda p: str(Path(p).resolve()) if p is not None else None  # noqa: E731
        return replace(self, results_dir=absolute(self.results_dir), data_root=absolute(self.data_root),
                       cache_dir=absolute(self.cache_dir or default_cache_dir()),
                       tuned_file=absolute(self.tuned_file))

    def load(self, progress=None):
        """(suite, RunOptions): plugins imported, suite read and checked, tuned configs read."""
        from bench.methods_loader import load_plugin
        from bench.progress import Progress
        from bench.runner import RunOptions
        from bench.suites import load_suite
        from bench.tune import tuned_configs

        for plugin in self.plugins:
            load_plugin(plugin)
        suite = load_suite(self.suite, self.overrides, self.added_methods)
        tuned = tuned_configs(suite, Path(self.tuned_file)) if self.tuned_file else {}
        opts = RunOptions(results_dir=Path(self.results_dir),
                          cache_dir=Path(self.cache_dir) if self.cache_dir else default_cache_dir(),
                          data_root=Path(self.data_root) if self.data_root else None, download=self.download,
                          device=self.device, methods=self.methods, seeds=self.seeds,
                          progress=progress or Progress(enabled=False), tuned=tuned, added=self.added_methods)
        return suite, opts


class LocalExecutor:
    """Every job in this process, one after another, in the plan's order (prerequisites first)."""

    def __init__(self, run):
        self.run_ = run

    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, tuple]]:
        for job in jobs:
            yield job, execute_job(self.run_, job)


def execute_job(run, job: Job):
    """Do one job of any kind with a SuiteRun of this process; its result for the driver."""
    if job.kind in ("tuning-retrain", "trial"):
        from bench.tune import execute_tuning_job

        return execute_tuning_job(run, job)
    return execute(run, job)


_worker_runs: dict = {}


def run_job(request: RunRequest, job: Job, threads: int):
    """A job in a worker process: its SuiteRun is built on first use and kept for later jobs."""
    from bench.runner import SuiteRun

    key = (repr(request), threads)
    if key not in _worker_runs:
        suite, opts = request.load()
        opts.threads = threads  # the CPUs the scheduler gave this job, not the whole node
        _worker_runs[key] = SuiteRun(suite, opts)
    return execute_job(_worker_runs[key], job)


class RayExecutor:
    """Jobs as Ray tasks, each started once its needs have finished.

    A task whose worker process dies (killed, out of memory, node lost) is retried by Ray up to
    `retries` times; a job's files are written by rename, so a killed job leaves no partial file
    under a real name (its temporary file is removed at the end). A job that raises stops the run
    with that error, as in-process."""

    def __init__(self, request: RunRequest, address: str | None = None, cpus: float = 1, gpus: float = 0,
                 retries: int = 3, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install -e '.[ray]' (or pip install ray).") from None
        self.ray, self.request = ray, request
        self.cpus, self.gpus, self.retries = cpus, gpus, retries
        self.one_host = not address
        if not ray.is_initialized():
            if address and address != "auto":
                _check_reachable(address)
            # a local instance's workers at normal priority: Ray nices them by 15, so any other process
            # on the machine would slow the jobs down and inflate every recorded wall time
            kwargs = {"address": address} if address else {"num_cpus": num_cpus,
                                                           "_system_config": {"worker_niceness": 0}}
            try:
                ray.init(**kwargs, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(_project_paths())}})
            except ConnectionError as e:
                raise UserError(f"--ray-address {address}: no Ray cluster there ({e}); start one with "
                                "`ray start --head` or leave out --ray-address for a local instance.") from None
        self.remote = ray.remote(max_retries=retries)(run_job)

    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, tuple]]:
        started = time.time()
        try:
            yield from self._run(jobs)
        finally:
            _remove_temporaries(Path(self.request.cache_dir or default_cache_dir()), started, self.one_host)

    def _run(self, jobs: list[Job]) -> Iterator[tuple[Job, tuple]]:
        ray, done, waiting, running = self.ray, set(), list(jobs), {}
        keys = {j.key for j in jobs}
        threads = max(1, int(self.cpus))
        while waiting or running:
            for job in [j for j in waiting if all(n in done or n not in keys for n in j.needs)]:
                waiting.remove(job)
                ref = self.remote.options(num_cpus=self.cpus, num_gpus=self.gpus).remote(self.request, job, threads)
                running[ref] = job
            if not running:
                raise RuntimeError(f"jobs wait on needs that never finish: {[j.key for j in waiting]}")
            ready, _ = ray.wait(list(running), num_returns=1)
            job = running.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayTaskError as e:
                raise e.as_instanceof_cause() from None
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as e:
                raise UserError(f"{job.label}: its worker died {self.retries + 1} times ({type(e).__name__}); "
                                "rerun to resume, finished runs are recorded.") from None
            done.add(job.key)
            yield job, result


def _check_reachable(address: str) -> None:
    """Fail in one line, at once, where Ray itself would retry an unreachable head for minutes."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise UserError(f"--ray-address {address}: cannot reach a Ray head there ({e}); start one with "
                        "`ray start --head`, or leave out --ray-address for a local instance.") from None


def _remove_temporaries(cache_dir: Path, since: float, one_host: bool) -> None:
    """Temporary files (`bench.files.atomic_write`, named `.<file>.<pid>-<hex>.tmp`) that killed
    jobs left in the cache. Every job of this run has ended, so those written since `since` are
    dead; on a single-host Ray instance so is any whose writer's pid is gone (an earlier killed run)."""
    for tmp in cache_dir.rglob(".*.tmp"):
        match = re.search(r"\.(\d+)-[0-9a-f]{8}\.tmp$", tmp.name)
        try:
            if tmp.stat().st_mtime >= since or (one_host and match and not _alive(int(match.group(1)))):
                tmp.unlink()
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _project_paths() -> list[str]:
    """The folder holding the `bench` and `methods` packages, then the driver's own PYTHONPATH,
    for the worker processes Ray starts."""
    import bench

    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [str(Path(bench.__file__).resolve().parent.parent), *inherited]
