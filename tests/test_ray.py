"""The Ray executor with a real local Ray instance (2 CPUs): the same records as in-process, a
worker killed with SIGKILL mid-job, and no partial files left behind."""

import json
import os
import signal
import threading
import time
import textwrap
from pathlib import Path

import numpy as np
import pytest
import ray

from bench.errors import UserError
from bench.store import load_outputs, load_records
from conftest import TINY_SUITE


SUITE = TINY_SUITE + "attacks: [simple, lira, ulira]\n" \
                     "attack_settings: {references: 2, rmia_references: 1, ulira_references: 2}\n"


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _without_times(value):
    """Metrics without the wall-clock fields some attacks report (`references_train_s`, ...)."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if not k.endswith("_s")}
    return value


def _records(results: Path) -> dict:
    return {Path(r["_file"]).relative_to(results).as_posix(): r for r in load_records(results)}


@pytest.mark.slow
def test_ray_gives_the_records_the_local_executor_gives(cli, tiny_suite, tmp_path, ray_instance):
    suite = tiny_suite(SUITE)
    common = ("run", suite, "--quiet")
    assert cli(*common, "--results", "local", "--cache-dir", "cache-local")[0] == 0
    code, out, err = cli(*common, "--results", "on-ray", "--cache-dir", "cache-ray", "--executor", "ray")
    assert code == 0, err
    local, on_ray = _records(tmp_path / "local"), _records(tmp_path / "on-ray")
    assert len(local) == 8 and local.keys() == on_ray.keys()
    for name, record in local.items():
        other = on_ray[name]
        assert record["status"] == other["status"] == "ok", name
        assert _without_times(record["metrics"]) == _without_times(other["metrics"]), name
        a, b = load_outputs(Path(record["_file"])), load_outputs(Path(other["_file"]))
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), name
    # the jobs trained the references and U-LiRA's references in the workers, once, into the cache
    assert len(list((tmp_path / "cache-ray").rglob("ref*.pt"))) == 2
    code, out, _ = cli(*common, "--results", "on-ray", "--cache-dir", "cache-ray", "--executor", "ray",
                       "--no-leaderboard")
    assert code == 0 and "0 ok" in out and "8 skipped" in out


CRASHING_METHOD = '''
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import torch.nn.functional as F

from bench.api import param, register_method
from methods._common import minimise, steps

MARKER = Path({marker!r})


@dataclass(frozen=True)
class CrashOnceConfig:
    epochs: int = param(1, ge=1)
    lr: float = param(0.01, gt=0)
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(0.0, ge=0)
    batch_size: int = param(64, ge=1)


@register_method("crash_once", config=CrashOnceConfig)
def crash_once(model, data, cfg, ctx):
    """Fine-tunes on retain (a Ray worker is killed during such a call, from outside)."""
    return minimise(model, cfg, ctx, batches=lambda: ctx.batches(data.retain, cfg.batch_size),
                    loss=lambda b: F.cross_entropy(model(b[0]), b[1]), steps_per_epoch=steps(data.retain, cfg.batch_size))
'''


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        pid = _parent(pid)
        if pid == ancestor:
            return True
    return False


def _kill_one_ray_worker(marker, stop) -> None:
    """SIGKILL the first Ray worker seen making a method call (the parent of a fork server that
    is not this process's; a server's own children, which the driver forks to describe plugins
    too, have the server's command line), and note its pid in `marker`. Only this process's own
    Ray workers: any other harness on the machine (a user's run, another pytest-xdist worker)
    has fork servers too, and was once killed in their place."""
    while not stop.is_set():
        for entry in os.listdir("/proc"):
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                parent = _parent(int(entry))
                parent_cmdline = Path(f"/proc/{parent}/cmdline").read_bytes()
                ours = parent != os.getpid() and _descends_from(parent, os.getpid())
            except (OSError, ValueError, IndexError):
                continue
            if b"bench.sandbox" in cmdline and b"bench.sandbox" not in parent_cmdline and ours:
                os.kill(parent, signal.SIGKILL)
                marker.write_text(str(parent))
                return
        time.sleep(0.05)


@pytest.mark.slow
def test_a_worker_killed_mid_job_is_retried_and_every_record_is_whole(cli, tiny_suite, tmp_path, ray_instance,
                                                                      forget_plugins):
    marker = tmp_path / "killed.pid"
    plugin = tmp_path / "crash_once.py"
    plugin.write_text(textwrap.dedent(CRASHING_METHOD.format(marker=str(marker))))
    suite = tiny_suite(TINY_SUITE + "  crash_once: {}\n")
    stop = threading.Event()
    killer = threading.Thread(target=_kill_one_ray_worker, args=(marker, stop))
    killer.start()
    try:
        code, out, err = cli("run", suite, "--quiet", "--plugin", plugin, "--executor", "ray", "--no-leaderboard")
    finally:
        stop.set()
        killer.join()
    assert code == 0, err
    assert marker.exists()  # a worker process really was killed
    records = _records(tmp_path / "results")
    assert len(records) == 10 and all(r["status"] == "ok" for r in records.values())
    assert {r["method"] for r in records.values()} >= {"crash_once"}
    for name, r in records.items():
        assert json.loads(Path(r["_file"]).read_text())["metrics"]["forget_acc"] is not None
        assert load_outputs(Path(r["_file"]))["forget_loss"].size > 0, name
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".corrupt")]
    assert not leftovers


@pytest.mark.slow
def test_a_killed_driver_resumes_on_ray_recomputing_nothing_that_finished(cli, tiny_suite, tmp_path, ray_instance):
    import os
    import signal
    import subprocess
    import sys
    import time

    suite = tiny_suite(SUITE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    first = subprocess.Popen([sys.executable, "-m", "bench", "run", str(suite), "--quiet", "--no-leaderboard"],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    records = tmp_path / "results" / "tiny" / "random-10pct"
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None and len(list(records.glob("*.json"))) < 3:
        time.sleep(0.05)
    assert first.poll() is None, "the run finished before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait()
    finished = {p.name for p in records.glob("*.json")}
    cache = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*") if p.suffix in (".pt", ".npz")}
    assert 3 <= len(finished) < 8 and cache
    code, out, err = cli("run", suite, "--quiet", "--executor", "ray", "--no-leaderboard")
    assert code == 0, err
    assert f"{len(finished)} skipped" in out and f"{8 - len(finished)} ok" in out
    assert all(p.stat().st_mtime_ns == t for p, t in cache.items())  # no finished model was made again
    assert len(list(records.glob("*.json"))) == 8 and not list(tmp_path.rglob("*.tmp"))


def test_an_unreachable_ray_address_is_one_line_at_once(cli, tiny_suite, tmp_path, monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh driver process
    code, _, err = cli("run", tiny_suite(), "--executor", "ray", "--ray-address", "127.0.0.1:1")
    assert code == 2 and "--ray-address 127.0.0.1:1: cannot reach a Ray head there" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "results").exists()
    code, _, err = cli("run", tiny_suite(), "--ray-address", "auto")
    assert code == 2 and "--ray-address works with --executor ray only" in err


@pytest.mark.slow
def test_tune_on_ray_asks_the_trials_tune_in_process_asks(cli, tiny_suite, tmp_path, ray_instance):
    """Trials run as Ray tasks (one in flight per study, all studies at once) and every study asks
    the same trials in the same order as in-process. (Which one wins may differ: a trial slower
    than its retrain is pruned, and wall times vary between runs.)"""
    import optuna
    import yaml
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from test_tune import TUNE_SUITE

    suite = tiny_suite(TUNE_SUITE.replace("trials: 3", "trials: 4"))
    assert cli("tune", suite, "--quiet", "--results", "local", "--cache-dir", "cache-local")[0] == 0
    code, out, err = cli("tune", suite, "--quiet", "--results", "on-ray", "--cache-dir", "cache-ray",
                         "--executor", "ray")
    assert code == 0, err

    def asked(root):
        storage = JournalStorage(JournalFileBackend(str(tmp_path / root / "tiny" / "tuning" / "journal.log")))
        return {s.study_name: [t.params for t in optuna.load_study(study_name=s.study_name, storage=storage).trials]
                for s in optuna.get_all_study_summaries(storage)}

    local, on_ray = asked("local"), asked("on-ray")
    assert len(local) == 2 and local == on_ray and all(len(trials) == 4 for trials in local.values())
    tuned = yaml.safe_load((tmp_path / "on-ray" / "tiny" / "tuned.yaml").read_text())
    assert {m: t["random-10pct"]["trials"] for m, t in tuned.items()} == {"finetune": 4, "ssd": 4}


@pytest.mark.slow
def test_jobs_ask_for_the_suites_resources_unless_the_command_line_says(tiny_suite, ray_instance):
    from types import SimpleNamespace

    from bench.cli import _ray
    from bench.worker import RunRequest

    request = RunRequest(str(tiny_suite(SUITE + "resources: {cpus: 2, gpus: 0}\n")))
    suite = request.load_suite()
    args = SimpleNamespace(executor="ray", ray_address=None, job_cpus=None, job_gpus=None)
    assert (_ray(args, request, suite).cpus, _ray(args, request, suite).gpus) == (2, 0)
    args.job_cpus = 1
    assert _ray(args, request, suite).cpus == 1
    for cpus, gpus in ((64, None), (1, 1)):  # more than the instance's 2 CPUs and 0 GPUs: it would wait forever
        args.job_cpus, args.job_gpus = cpus, gpus
        with pytest.raises(UserError, match=r"each job asks for .* but the Ray cluster has 2 CPUs and 0 GPUs"):
            _ray(args, request, suite)
