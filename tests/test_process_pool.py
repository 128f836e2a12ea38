"""`--executor processes`: a pool of spawned processes on this machine gives the records the
in-process executor gives, runs jobs side by side, and a dying worker ends the run in one line."""

import os
from pathlib import Path

import numpy as np
import pytest

from bench.errors import UserError
from bench.executors import Job, ProcessExecutor, pool_size
from bench.store import load_outputs
from conftest import TINY_SUITE
from test_ray import _records, _without_times

SUITE = TINY_SUITE + "attacks: [simple, lira]\nattack_settings: {references: 2, rmia_references: 1, ulira_references: 1}\n" \
                     "forget_quality: {models: 3}\n"


@pytest.mark.slow
def test_a_process_pool_gives_the_records_the_local_executor_gives(cli, tiny_suite, tmp_path):
    suite = tiny_suite(SUITE)
    common = ("run", suite, "--quiet")
    assert cli(*common, "--results", "local", "--cache-dir", "cache-local")[0] == 0
    code, out, err = cli(*common, "--results", "pool", "--cache-dir", "cache-pool", "--executor", "processes",
                         "--job-cpus", "1")
    assert code == 0, err
    assert "4 forget-quality sets of 3 runs" in out
    local, pool = _records(tmp_path / "local"), _records(tmp_path / "pool")
    assert len(local) == 8 and local.keys() == pool.keys()
    for name, record in local.items():
        other = pool[name]
        assert record["status"] == other["status"] == "ok", name
        assert _without_times(record["metrics"]) == _without_times(other["metrics"]), name
        a, b = load_outputs(Path(record["_file"])), load_outputs(Path(other["_file"]))
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), name
    sets = sorted((tmp_path / "local").rglob("forget-quality/*.npz"))
    assert len(sets) == 4
    for path in sets:
        a, b = np.load(path), np.load(tmp_path / "pool" / path.relative_to(tmp_path / "local"))
        assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (tmp_path / "local" / "..").resolve() == tmp_path and not list((tmp_path / "cache-pool").rglob(".*.tmp"))


class Setup:
    """A picklable stand-in for `RunRequest`: its handler sleeps, reports its pid, or kills its process."""

    def handler(self, threads):
        return self.do

    @staticmethod
    def do(job):
        import time

        if job.payload == "die":
            os._exit(1)
        if job.payload == "raise":
            raise ValueError("from the job")
        if isinstance(job.payload, tuple):  # (seconds, file): say who sleeps first
            Path(job.payload[1]).write_text(str(os.getpid()))
            time.sleep(job.payload[0])
            return os.getpid()
        time.sleep(job.payload)
        return os.getpid()


@pytest.mark.slow
def test_jobs_run_side_by_side_after_their_needs(tmp_path):
    jobs = [Job("a", "k", "a", 0.5), Job("b", "k", "b", 0.5), Job("c", "k", "c", 0.0, needs=("a", "b"))]
    order = list(ProcessExecutor(Setup(), tmp_path, workers=2).run(jobs))
    assert [j.key for j, _ in order][-1] == "c"
    assert len({pid for _, pid in order[:2]}) == 2  # a and b in two processes at once


@pytest.mark.slow
@pytest.mark.parametrize("payload, error, message", [("die", UserError, "its worker process died"),
                                                     ("raise", ValueError, "from the job")])
def test_a_dying_or_raising_job_ends_the_run_with_its_reason(tmp_path, payload, error, message):
    with pytest.raises(error, match=message):
        list(ProcessExecutor(Setup(), tmp_path, workers=2).run([Job("x", "k", "x", payload)]))


@pytest.mark.parametrize("cpus, gpus, gpu_count, size", [
    (1, 0, 0, os.cpu_count()),  # CPU jobs: one per core
    (0.5, 0.25, 1, min(2 * os.cpu_count(), 4)),  # four quarter-GPU jobs share one GPU, as far as the cores go
    (1, 0.5, 2, min(os.cpu_count(), 4)),
    (1, 1, 0, 1),  # a GPU job on a machine without one: one at a time (it will fail in its own words)
])
def test_the_pool_holds_as_many_jobs_as_the_cpus_and_gpus_allow(cpus, gpus, gpu_count, size):
    assert pool_size(cpus, gpus, gpu_count) == size


@pytest.mark.slow
def test_a_tune_in_a_process_pool_chooses_what_a_tune_in_process_chooses(cli, tiny_suite):
    """Workers load the tuning seeds' originals from the cache where the driver's process trained
    them: loading builds a model, which draws from the RNG, so a trial that loaded its original
    after seeding chose otherwise (tuned.yaml differed)."""
    from test_tune import TUNE_SUITE

    suite = tiny_suite(TUNE_SUITE.replace("trials: 3", "trials: 4").replace("seeds: [7]", "seeds: [7, 8]"))
    files = []
    for results, extra in (("local", ()), ("pool", ("--executor", "processes", "--job-cpus", "1"))):
        code, _, err = cli("tune", suite, "--quiet", "--results", results, "--cache-dir", f"cache-{results}", *extra)
        assert code == 0, err
        files.append((Path(results) / "tiny" / "tuned.yaml").read_text())
    assert files[0] == files[1]


@pytest.mark.slow
def test_a_run_abandoned_midway_ends_its_workers_instead_of_waiting_for_them(tmp_path):
    """Ctrl-C (or any caller that stops reading) used to wait for every running and queued job:
    an interrupted `run --executor processes` went on training. Now the workers end at once."""
    import time

    jobs = [Job("a", "k", "a", 0.0), *(Job(k, "k", k, (120.0, str(tmp_path / k))) for k in "bcd")]
    runs = ProcessExecutor(Setup(), tmp_path, workers=2).run(jobs)
    first, _ = next(runs)
    deadline = time.monotonic() + 60
    while not (tmp_path / "b").exists() and time.monotonic() < deadline:  # b is running
        time.sleep(0.1)
    pids = {int((tmp_path / k).read_text()) for k in "bcd" if (tmp_path / k).exists()}
    assert first.key == "a" and pids
    started = time.monotonic()
    runs.close()  # what an exception in the caller's loop (KeyboardInterrupt) does to the generator
    assert time.monotonic() - started < 60  # not the 120 s the running job would take
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
