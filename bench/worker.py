"""Building a suite's workspace in any process, and doing jobs there by kind.

`RunRequest` is the plain, picklable data (suite, `--set` values, plugins, folders) from which
the driver and every Ray worker build the same `bench.workspace.Workspace`; the plan is not
in it: jobs carry their resolved `bench.plan.RunSpec`s. `dispatch` does one job with the
handler its kind names (`HANDLERS`: the run kinds of `bench.jobs`, the tuning kinds of
`bench.tune`); executors know only `RunRequest.handler`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from bench import jobs, tune
from bench.data import default_cache_dir
from bench.executors import Job, LocalExecutor, ProcessExecutor, RayExecutor, pool_size
from bench.progress import Progress
from bench.runner import Runner
from bench.workspace import Folders, Workspace

HANDLERS = {**jobs.HANDLERS, **tune.HANDLERS}


def dispatch(runner: Runner, job: Job):
    """Do `job` with this process's runner; its result for the driver."""
    if job.kind not in HANDLERS:
        raise ValueError(f"unknown job kind '{job.kind}'")
    return HANDLERS[job.kind](runner, job)


def pool_executor(kind: str, request: "RunRequest", cpus: float, gpus: float, address: str | None = None):
    """`--executor processes` (a pool sized by the jobs' CPUs and GPUs) or `ray` (connected now, before
    anything is written) for `request`; None for `local`."""
    if kind == "local":
        return None
    from bench.data import default_cache_dir

    request = request.absolute()
    cache = Path(request.cache_dir or default_cache_dir())
    if kind == "processes":
        import torch

        return ProcessExecutor(request, cache, pool_size(cpus, gpus, torch.cuda.device_count()), max(1, int(cpus)))
    return RayExecutor(request, cache, address, cpus, gpus)


def local_executor(ws: Workspace) -> LocalExecutor:
    """Every job in this process, on the driver's own workspace."""
    return LocalExecutor(partial(dispatch, Runner(ws)))


@dataclass(frozen=True)
class RunRequest:
    """Everything needed to build the same workspace in any process, as plain data."""

    suite: str  # built-in suite name or absolute path
    overrides: dict = field(default_factory=dict)  # parsed `--set` values
    plugins: tuple[str, ...] = ()  # absolute paths
    methods: tuple[str, ...] = ()  # `--methods`: those the suite lacks are added with their defaults
    results_dir: str = "results"
    cache_dir: str | None = None
    data_root: str | None = None
    download: bool = False
    device: str = "auto"
    tuning: bool = False  # a tuning workspace: the test split raises on any use

    def absolute(self) -> "RunRequest":
        """The same request with absolute folders, for workers whose working directory differs."""
        absolute = lambda p: str(Path(p).resolve()) if p is not None else None  # noqa: E731
        return replace(self, results_dir=absolute(self.results_dir), data_root=absolute(self.data_root),
                       cache_dir=absolute(self.cache_dir or default_cache_dir()))

    def load_suite(self):
        """The suite, checked, with the request's plugins imported first."""
        from bench.methods_loader import load_plugin
        from bench.suites import load_suite

        for plugin in self.plugins:
            load_plugin(plugin)
        return load_suite(self.suite, self.overrides, self.methods)

    def workspace(self, progress: Progress | None = None, threads: int | None = None, suite=None) -> Workspace:
        """The request's workspace (`suite`: the request's suite when the caller has loaded it already)."""
        folders = Folders(results_dir=Path(self.results_dir),
                          cache_dir=Path(self.cache_dir) if self.cache_dir else default_cache_dir(),
                          data_root=Path(self.data_root) if self.data_root else None, download=self.download,
                          device=self.device, threads=threads, progress=progress or Progress(enabled=False))
        return Workspace(suite or self.load_suite(), folders, guard_test=tune.forbid_test if self.tuning else None)

    def handler(self, threads: int):
        """What does jobs in a worker process: a runner on this request's workspace, with `threads`
        CPU threads (those the scheduler gave the job, not the whole node)."""
        return partial(dispatch, Runner(self.workspace(threads=threads)))
