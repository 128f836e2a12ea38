"""Where jobs run: in this process (`local`, the default), in a pool of processes on this machine
(`processes`), or on a Ray cluster (`ray`).

An executor takes a list of generic jobs (key, kind, label, payload, needs), runs every job once
its needs have finished, and yields each finished job with its result to the driver, which
alone writes records and tuning studies. It knows nothing of what a job does: in this process
a `handle(job)` callable does it; on Ray each worker process gets a picklable `setup` and builds
its own handler once (`setup.handler(threads)`, e.g. `bench.worker.RunRequest`); models reach
workers through the shared cache folder. This module imports nothing above the standard
library and Ray: the runner and tune sit above it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from bench.errors import UserError


@dataclass(frozen=True)
class Job:
    """One unit of work: `kind` selects its handler; `payload` is the plain, picklable data it
    needs (e.g. a `bench.plan.RunSpec`); `needs` names the keys of the jobs that must finish first."""

    key: str
    kind: str
    label: str
    payload: Any = field(default=None, compare=False, hash=False)
    needs: tuple[str, ...] = ()


class LocalExecutor:
    """Every job in this process, one after another, in the given order (prerequisites first):
    `handle(job)` does one and returns its result."""

    def __init__(self, handle: Callable[[Job], Any]):
        self.handle = handle

    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, Any]]:
        for job in jobs:
            yield job, self.handle(job)


_handlers: dict = {}


def run_job(setup, job: Job, threads: int):
    """A job in a worker process. `setup` is picklable plain data whose `handler(threads)` builds
    what does jobs in this process (e.g. a workspace); it is built on first use and kept."""
    key = (repr(setup), threads)
    if key not in _handlers:
        _handlers[key] = setup.handler(threads)
    return _handlers[key](job)


class RayExecutor:
    """Jobs as Ray tasks, each started once its needs have finished.

    A task whose worker process dies (killed, out of memory, node lost) is retried by Ray up to
    `retries` times; a job's files are written by rename, so a killed job leaves no partial file
    under a real name (its temporary file is removed at the end). A job that raises stops the run
    with that error, as in-process."""

    def __init__(self, setup, cache_dir: Path, address: str | None = None, cpus: float = 1, gpus: float = 0,
                 retries: int = 3, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install -e '.[ray]' (or pip install ray).") from None
        self.ray, self.setup, self.cache_dir = ray, setup, Path(cache_dir)
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
        total = ray.cluster_resources()  # a job no node can hold would wait forever, silently
        if cpus > total.get("CPU", 0) or gpus > total.get("GPU", 0):
            raise UserError(f"each job asks for {cpus:g} CPUs and {gpus:g} GPUs, but the Ray cluster has "
                            f"{total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs in all; lower "
                            "--job-cpus / --job-gpus (or the suite's resources).")
        self.remote = ray.remote(max_retries=retries)(run_job)

    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, tuple]]:
        started = time.time()
        try:
            yield from self._run(jobs)
        finally:
            _remove_temporaries(self.cache_dir, started, self.one_host)

    def _run(self, jobs: list[Job]) -> Iterator[tuple[Job, tuple]]:
        ray, done, waiting, running = self.ray, set(), list(jobs), {}
        keys = {j.key for j in jobs}
        threads = max(1, int(self.cpus))
        while waiting or running:
            for job in [j for j in waiting if all(n in done or n not in keys for n in j.needs)]:
                waiting.remove(job)
                ref = self.remote.options(num_cpus=self.cpus, num_gpus=self.gpus).remote(self.setup, job, threads)
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


class ProcessExecutor:
    """Jobs in a pool of `workers` processes on this machine (`concurrent.futures`, spawned: CUDA
    cannot be used in a forked child), each started once its needs have finished: Ray's
    scheduling without Ray, for one machine, e.g. several small GPU jobs sharing one GPU. Each
    worker builds its handler once (`run_job`). A job that raises stops the run with that error;
    a worker that dies stops it with one line (finished runs are recorded: rerun to resume)."""

    def __init__(self, setup, cache_dir: Path, workers: int, threads: int = 1):
        self.setup, self.cache_dir, self.workers, self.threads = setup, Path(cache_dir), max(1, workers), threads

    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, Any]]:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        started, done, waiting, running = time.time(), set(), list(jobs), {}
        keys = {j.key for j in jobs}
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            while waiting or running:
                for job in [j for j in waiting if all(n in done or n not in keys for n in j.needs)]:
                    waiting.remove(job)
                    running[pool.submit(run_job, self.setup, job, self.threads)] = job
                if not running:
                    raise RuntimeError(f"jobs wait on needs that never finish: {[j.key for j in waiting]}")
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=lambda f: list(running).index(f)):
                    job = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        raise UserError(f"{job.label}: its worker process died; rerun to resume, finished runs "
                                        "are recorded.") from None
                    done.add(job.key)
                    yield job, result
        except BaseException:  # Ctrl-C, an error, or a caller that stopped reading (GeneratorExit)
            _stop_workers(pool)  # running and already-queued jobs are abandoned, not waited for
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            _remove_temporaries(self.cache_dir, started, True)


def _stop_workers(pool) -> None:
    """End a process pool's workers now. `shutdown(cancel_futures=True)` cancels only the jobs no
    worker has taken: it waits for running ones and for those already in the workers' queue,
    so an interrupted run went on training for minutes. `terminate_workers` is Python 3.14's;
    before it, the pool's own process table."""
    if hasattr(pool, "terminate_workers"):
        pool.terminate_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()


def pool_size(cpus: float, gpus: float, gpu_count: int) -> int:
    """How many jobs of `cpus` CPUs and `gpus` GPUs a machine with `gpu_count` GPUs holds at once (>= 1)."""
    fit = [int((os.cpu_count() or 1) // cpus)] + ([int(gpu_count // gpus)] if gpus > 0 else [])
    return max(1, min(fit))


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
