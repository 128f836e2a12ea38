"""Nothing lost, nothing silently wrong: records keyed by the code that made them, rescore,
corrupt files repaired, one driver per results folder (real processes)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.store import load_records

PLUGIN = '''
import torch.nn.functional as F
from bench.api import register_method
from methods._common import minimise, steps
from dataclasses import dataclass

@dataclass(frozen=True)
class Cfg:
    epochs: int = 1
    lr: float = {lr}
    momentum: float = 0.9
    weight_decay: float = 0.0

@register_method("{name}", config=Cfg)
def method(model, data, cfg, ctx):
    """Fine-tunes on retain (a plugin for the provenance tests)."""
    return minimise(model, cfg, ctx, lambda: ctx.batches(data.retain, 64),
                    lambda b: F.cross_entropy(model(b[0]), b[1]))
'''


def _write_plugins(tmp_path, lr_a=0.01):
    for name, lr in (("plug_a", lr_a), ("plug_b", 0.01)):
        (tmp_path / f"{name}.py").write_text(PLUGIN.format(name=name, lr=lr))
    return ["--plugin", tmp_path / "plug_a.py", "--plugin", tmp_path / "plug_b.py"]


def _suite(tiny_suite, extra=""):
    from conftest import TINY_SUITE

    return tiny_suite(TINY_SUITE + "  plug_a: {}\n  plug_b: {}\n" + extra)


@pytest.mark.slow
def test_editing_one_method_file_reruns_exactly_its_records(cli, tiny_suite, tmp_path, forget_plugins):
    from bench.methods_loader import method_registry

    suite = _suite(tiny_suite)
    code, out, err = cli("run", suite, "--quiet", *_write_plugins(tmp_path))
    assert code == 0, err
    before = {Path(r["_file"]).name for r in load_records(Path("results"))}
    assert len(before) == 12 and all(r["status"] == "ok" for r in load_records(Path("results")))
    for name in ("plug_a", "plug_b"):  # a fresh process would import the edited file; do the same here
        method_registry().unregister(name)
        sys.modules.pop(f"unlearn_bench_plugin_{name}", None)
    import bench.methods_loader as loader
    import bench.provenance as provenance

    loader._plugins.clear()
    provenance.file_hash.cache_clear()
    # the same defaults (config hash unchanged), a different body: only plug_a's code changed
    (tmp_path / "plug_a.py").write_text(PLUGIN.format(name="plug_a", lr=0.01).replace("retain, 64", "retain, 32"))
    code, out, err = cli("run", suite, "--quiet", "--plugin", tmp_path / "plug_a.py",
                         "--plugin", tmp_path / "plug_b.py")
    assert code == 0, err
    assert "2 ok" in out and "10 skipped" in out
    after = {Path(r["_file"]).name for r in load_records(Path("results"))}
    assert {n.split("-")[0] for n in after - before} == {"plug_a"}


def test_method_code_hash_covers_its_helpers_and_nothing_else():
    from bench.methods_loader import method_registry
    from bench.provenance import TRAINING, _closure, code_hash

    files = {p.name for p in _closure((Path(method_registry().get("finetune").source).resolve(),))}
    assert {"finetune.py", "_common.py", "train.py", "api.py"} <= files
    assert "scrub.py" not in files and "runner.py" not in files and "lira.py" not in files
    assert "train.py" in {p.name for p in _closure(tuple(Path(sys.modules[m].__file__) for m in TRAINING))}
    assert code_hash(*TRAINING) != code_hash("bench.evaluate")


def test_editing_the_training_loop_invalidates_the_cached_originals(tmp_path, monkeypatch):
    import bench.workspace as workspace
    from bench.checks import problem

    trained = []
    real = workspace.train_from_scratch
    monkeypatch.setattr(workspace, "train_from_scratch", lambda *a: trained.append(1) or real(*a))
    problem(tmp_path)  # trains and caches the original of seed 0
    problem(tmp_path)  # from the cache
    assert len(trained) == 1
    monkeypatch.setattr(workspace, "code_hash", lambda *modules: "edited-training-code")
    problem(tmp_path)
    assert len(trained) == 2


@pytest.mark.slow
def test_rescore_adds_a_new_attack_without_training_or_unlearning(cli, tiny_suite, tmp_path):
    from conftest import TINY_SUITE

    first = tiny_suite(TINY_SUITE + "attacks: [simple]\n")
    assert cli("run", first, "--quiet")[0] == 0
    records = {r["_file"]: r for r in load_records(Path("results"))}
    models = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    wider = tiny_suite(TINY_SUITE + "attacks: [simple, loss_threshold, mia_efficacy]\n")
    code, out, err = cli("rescore", wider, "--quiet")
    assert code == 0, err
    assert "8 records rescored" in out, out
    again = {r["_file"]: r for r in load_records(Path("results"))}
    assert again.keys() == records.keys()  # same records: nothing reran
    for name, r in again.items():
        assert {"simple", "loss_threshold", "mia_efficacy"} <= set(r["metrics"]["mia"])
        assert r["metrics"]["mia"]["simple"] == records[name]["metrics"]["mia"]["simple"]
        assert r["metrics"]["forget_acc"] == records[name]["metrics"]["forget_acc"]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*") if p.is_file()} == models
    # and `run` with the wider suite has nothing left to do
    code, out, _ = cli("run", wider, "--quiet")
    assert code == 0 and "0 ok" in out and "0 rescored" in out


def test_a_corrupt_cached_model_is_rebuilt_and_a_truncated_record_rerun(cli, tiny_suite, tmp_path, capsys):
    suite = tiny_suite()
    assert cli("run", suite, "--quiet", "--no-leaderboard")[0] == 0
    for model in (tmp_path / "cache" / "models").glob("*.pt"):  # the originals of both seeds
        model.write_bytes(model.read_bytes()[:100])  # truncated
    record = sorted(Path("results").rglob("finetune-*-seed0.json"))[0]
    record.write_text(record.read_text()[:50])
    code, out, err = cli("run", suite, "--quiet", "--no-leaderboard")
    assert code == 0
    assert "is unusable" in err and "deleting it to rebuild it" in err
    assert "is unreadable" in err and "run is done again" in err
    assert "1 ok" in out  # the truncated record's run, and nothing else
    assert err.count("is unusable") == 1  # only seed 0's original was needed, and rebuilt
    assert record.with_name(record.name + ".corrupt").exists() and json.loads(record.read_text())["status"] == "ok"


def test_a_copied_cache_file_for_another_key_is_not_trusted(tmp_path):
    from bench.files import read_checked, write_checked

    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    write_checked(a, lambda t: np.save(open(t, "wb"), np.zeros(3)), key="seed0")
    write_checked(b, lambda t: np.save(open(t, "wb"), np.ones(3)), key="seed1")
    b.write_bytes(a.read_bytes())  # seed 0's model copied over seed 1's
    assert read_checked(b, np.load, key="seed1") is None and not b.exists()
    assert read_checked(a, np.load, key="seed0") is not None


def _cli_process(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.Popen([sys.executable, "-m", "bench", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_second_driver_is_refused_at_once_and_a_stale_lock_is_taken_over(tiny_suite, tmp_path):
    suite = tiny_suite()
    first = _cli_process("run", suite, "--quiet", "--no-leaderboard", cwd=tmp_path)
    lock = tmp_path / "results" / ".unlearn-bench.lock"
    deadline = time.time() + 60
    while not lock.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert lock.exists(), first.communicate()
    started = time.perf_counter()
    second = _cli_process("run", suite, "--quiet", cwd=tmp_path)
    _, err = second.communicate(timeout=60)
    took = time.perf_counter() - started
    assert second.returncode == 2 and f"in use by another unlearn-bench (pid {first.pid}" in err
    assert len(err.strip().splitlines()) == 1 and took < 2.0, (took, err)
    assert first.wait(timeout=300) == 0 and not lock.exists()
    # a lock left by a process that is gone (same host) is taken over
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(f"{dead.stdout.strip()} {socket.gethostname()}\n")
    third = _cli_process("run", suite, "--quiet", "--no-leaderboard", cwd=tmp_path)
    out, err = third.communicate(timeout=300)
    assert third.returncode == 0, err
    assert "8 skipped" in out, out  # the first run recorded everything: nothing reruns


def test_truncated_reference_and_ulira_files_are_rebuilt(cli, tiny_suite, tmp_path):
    from conftest import TINY_SUITE

    suite = tiny_suite(TINY_SUITE + "attacks: [lira, ulira]\n"
                                    "attack_settings: {references: 2, rmia_references: 1, ulira_references: 2}\n")
    assert cli("run", suite, "--quiet", "--seeds", "0", "--methods", "finetune", "--no-leaderboard")[0] == 0
    refs = tmp_path / "cache" / "references"
    (ref,) = list(refs.rglob("ref0.npz"))
    ref.write_bytes(ref.read_bytes()[:64])
    ulira = sorted(refs.rglob("ulira/finetune-*-ref0.npz"))[0]
    ulira.write_bytes(b"")
    code, out, err = cli("run", suite, "--quiet", "--seeds", "1", "--methods", "finetune", "--no-leaderboard")
    assert code == 0 and err.count("is unusable") == 2, err
    records = [r for r in load_records(Path("results")) if r["method"] == "finetune" and r["seed"] == 1]
    assert "error" not in records[0]["metrics"]["mia"]["ulira"]
    assert "error" not in records[0]["metrics"]["mia"]["lira"]
