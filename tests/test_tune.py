"""Equal-budget tuning on validation data: search spaces, the test split untouched, resume after a
kill, the objective, and `run --tuned`."""

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.methods_loader import method_registry
from bench.store import load_records
from conftest import TINY_SUITE
from bench.spec import search_space

TUNE_SUITE = (TINY_SUITE.replace("  gradient_ascent: {epochs: 1, lr: 1.0e-3, batch_size: 64}\n", "  ssd: {alpha: 5.0}\n")
              + "tuning: {trials: 3, seeds: [7]}\n"
              # attacks with reference models: tuning must neither train nor plan them (their pool holds the test split)
              + "attacks: [simple, rmia]\nattack_settings: {references: 4, rmia_references: 1}\n")


@pytest.mark.parametrize("name", method_registry().names())
def test_every_method_declares_a_search_space_containing_its_defaults(name):
    entry = method_registry().get(name)
    space = search_space(entry.config)
    if name == "retrain":
        assert space == {}
        return
    assert space, f"{name} declares nothing to tune"
    defaults = entry.config()
    for field, s in space.items():
        assert s.contains(getattr(defaults, field)), f"{name}.{field}: default outside its search space"


def test_the_test_split_raises_if_touched_during_tuning(tmp_path):
    from bench.checks import problem
    from bench.tune import forbid_test

    p = problem(tmp_path, guard_test=forbid_test)
    with pytest.raises(RuntimeError, match="test split was used during tuning"):
        p.ws.test.x.float()


def test_tune_writes_equal_budgets_reads_no_test_data_and_run_tuned_uses_them(cli, tiny_suite, monkeypatch):
    import bench.tune as tune

    seen = []
    real = tune.measure
    monkeypatch.setattr(tune, "measure", lambda run, model, data, label, seed: seen.append(
        set(run.eval_splits(data)) - {"test"}) or real(run, model, data, label, seed))
    suite = tiny_suite(TUNE_SUITE)
    code, out, err = cli("tune", suite, "--quiet")
    assert code == 0, err
    tuned = yaml.safe_load((Path("results") / "tiny" / "tuned.yaml").read_text())
    assert {m: t["random-10pct"]["trials"] for m, t in tuned.items()} == {"finetune": 3, "ssd": 3}
    assert seen and all(s == {"forget", "retain", "val"} for s in seen)
    assert (Path("results") / "tiny" / "forget_sets" / "tuning-random-10pct-0.npy").is_file()
    code, out, err = cli("tune", suite, "--quiet", "--trials", "5")  # resumes: 2 more each
    tuned = yaml.safe_load((Path("results") / "tiny" / "tuned.yaml").read_text())
    assert code == 0 and tuned["ssd"]["random-10pct"]["trials"] == 5
    code, out, err = cli("run", suite, "--quiet", "--tuned")
    assert code == 0, err
    from bench.store import load_records

    records = {r["method"]: r for r in load_records(Path("results"))}
    assert records["finetune"]["config_source"] == "tuned (5 trials)"
    assert records["finetune"]["method_config"]["lr"] == pytest.approx(
        tuned["finetune"]["random-10pct"]["values"]["lr"])
    assert "(tuned (5 trials))" in Path("leaderboard.md").read_text()


def test_the_objective_is_the_mean_gap_on_validation_metrics():
    from bench.tune import objective_value

    assert objective_value({"forget": 90, "retain": 99, "val": 80, "mia": 55, "test": 0},
                           {"forget": 80, "retain": 98, "val": 82, "mia": 50, "test": 100}) == pytest.approx(4.5)


def test_a_tuning_seed_that_is_a_reporting_seed_is_refused(cli, tiny_suite):
    code, _, err = cli("tune", tiny_suite(TUNE_SUITE.replace("seeds: [7]", "seeds: [7, 1]")))
    assert code == 2 and "tuning.seeds: 1 is a reporting seed" in err


@pytest.mark.slow
def test_a_killed_tune_resumes_and_ends_with_the_full_budget(tiny_suite, tmp_path):
    suite = tiny_suite(TUNE_SUITE.replace("trials: 3", "trials: 12"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    cmd = [sys.executable, "-m", "bench", "tune", str(suite), "--quiet"]
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journal = tmp_path / "results" / "tiny" / "tuning" / "journal.log"
    deadline = time.time() + 120
    while time.time() < deadline and first.poll() is None:
        if journal.exists() and len(re.findall(r'"state":\s*1', journal.read_text())) >= 4:  # a few finished
            break
        time.sleep(0.05)
    assert first.poll() is None, "the tune finished before it could be killed"
    first.send_signal(signal.SIGKILL)  # mid-study; its lock file stays behind, its pid is gone
    first.wait()
    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    tuned = yaml.safe_load((tmp_path / "results" / "tiny" / "tuned.yaml").read_text())
    assert tuned["finetune"]["random-10pct"]["trials"] == 12 and tuned["ssd"]["random-10pct"]["trials"] == 12
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        finished = [t for t in study.trials if t.state.is_finished() and t.state.name in ("COMPLETE", "PRUNED")]
        assert len(finished) == 12


@pytest.mark.slow
def test_the_journal_lock_of_a_killed_holder_is_free_at_once(tmp_path):
    """A tune killed while it writes the journal must not block the next one (CI saw a resumed
    tune wait 600 s on the lock file the killed one left)."""
    from bench.journal import _KernelLock

    path = str(tmp_path / "journal.log.flock")
    holder = subprocess.Popen([sys.executable, "-c", "import time; from bench.journal import _KernelLock; "
                               f"_KernelLock({path!r}).acquire(); print('held', flush=True); time.sleep(600)"],
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    lock = _KernelLock(path)
    probe = os.open(path, os.O_RDWR)
    with pytest.raises(BlockingIOError):  # really held while the holder lives
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(probe)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    assert lock.acquire() and time.monotonic() - started < 5
    lock.release()


NAN_OUTPUTS = '''
import torch
from dataclasses import dataclass
from bench.api import register_method, param, log_range

@dataclass(frozen=True)
class Cfg:
    scale: float = param(3e38, gt=0, search=log_range(1e37, 3e38))

@register_method("overflows", config=Cfg)
def overflows(model, data, cfg, ctx):
    """Finite weights, outputs that overflow (a trial that must be infeasible, not a crash)."""
    with torch.no_grad():
        model[-1].weight.fill_(cfg.scale * (1 + torch.rand(1, generator=ctx.generator).item()) / 2)
    return model
'''


def test_a_trial_with_non_finite_outputs_is_infeasible_not_a_crash(cli, tiny_suite, tmp_path, forget_plugins):
    (tmp_path / "overflows.py").write_text(NAN_OUTPUTS)
    suite = tiny_suite(TUNE_SUITE.replace("  ssd: {alpha: 5.0}\n", "  overflows: {}\n"))
    code, out, err = cli("tune", suite, "--quiet", "--methods", "overflows", "--plugin", tmp_path / "overflows.py")
    assert code == 0, err
    tuned = yaml.safe_load((Path("results") / "tiny" / "tuned.yaml").read_text())
    assert tuned["overflows"]["random-10pct"]["trials"] == 3
    assert tuned["overflows"]["random-10pct"]["note"].startswith("no feasible trial")


@pytest.mark.slow
def test_the_same_tune_twice_writes_the_same_tuned_yaml(cli, tiny_suite):
    """Feasibility compares FLOPs, not seconds, and tuned.yaml holds no clock reading: a second tune
    (another results folder, a warm cache, so other timings) chooses and writes the same bytes."""
    suite = tiny_suite(TUNE_SUITE.replace("trials: 3", "trials: 4"))
    files = []
    for results in ("first", "second"):
        code, _, err = cli("tune", suite, "--quiet", "--results", results)
        assert code == 0, err
        files.append((Path(results) / "tiny" / "tuned.yaml").read_text())
    assert files[0] == files[1]
    assert "tuning_gflops:" in files[0] and "tuning_s:" not in files[0]


def _studies(journal: Path) -> dict:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).trials
            for s in optuna.get_all_study_summaries(storage)}


@pytest.mark.slow
def test_a_resumed_tune_proposes_no_configuration_twice(cli, tiny_suite):
    """--trials 2, then --trials 4: the seeded sampler does not replay its first draws, and the suite's
    own values come first once."""
    suite = tiny_suite(TUNE_SUITE)
    assert cli("tune", suite, "--quiet", "--trials", "2")[0] == 0
    code, _, err = cli("tune", suite, "--quiet", "--trials", "4")
    assert code == 0, err
    for name, trials in _studies(Path("results/tiny/tuning/journal.log")).items():
        done = [t.params for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
        assert len(done) == 4 and all(done.count(p) == 1 for p in done), (name, done)
    finetune = next(t for n, t in _studies(Path("results/tiny/tuning/journal.log")).items() if n.startswith("finetune"))
    assert finetune[0].params == {"epochs": 1, "lr": 0.05}  # the suite's values, first


def test_a_journal_cut_off_mid_line_is_mended_and_a_damaged_one_named(cli, tiny_suite):
    suite = tiny_suite(TUNE_SUITE)
    assert cli("tune", suite, "--quiet", "--trials", "1")[0] == 0
    journal = Path("results/tiny/tuning/journal.log")
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 5, "worker_id": "x", "tri')  # killed while appending
    code, _, err = cli("tune", suite, "--quiet", "--trials", "2")
    assert code == 0, err
    assert "its last line was cut off" in err and str(journal) in err
    assert journal.read_bytes().startswith(whole) and journal.read_bytes().endswith(b"\n")
    lines = journal.read_bytes().split(b"\n")
    journal.write_bytes(b"\n".join([lines[0], b"not json", *lines[1:]]))
    code, _, err = cli("tune", suite, "--quiet", "--trials", "3")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"'{journal}' line 2 is not a journal entry" in err


DIES = '''
import os
from dataclasses import dataclass
from bench.api import log_range, param, register_method


@dataclass(frozen=True)
class Cfg:
    lr: float = param(0.01, gt=0, search=log_range(1e-3, 0.1))


@register_method("dies_sometimes", config=Cfg)
def dies_sometimes(model, data, cfg, ctx):
    """Its process dies when lr is above 0.01: the call fails with no cost measured."""
    if cfg.lr > 0.01:
        os._exit(0)
    return model
'''


def test_a_trial_whose_process_dies_is_infeasible_and_the_tune_goes_on(cli, tiny_suite, tmp_path, forget_plugins):
    """Its call has no FLOP count (the process died before measuring): the study's summary must
    not trip over it (it did: `int + None`)."""
    (tmp_path / "odd dir").mkdir()
    plugin = tmp_path / "odd dir" / "dies.py"  # a space: the hint must quote it
    plugin.write_text(DIES)
    suite = tiny_suite(TINY_SUITE.replace("  gradient_ascent: {epochs: 1, lr: 1.0e-3, batch_size: 64}\n",
                                          "  dies_sometimes: {lr: 0.05}\n") + "tuning: {trials: 3, seeds: [7]}\n")
    code, out, err = cli("tune", suite, "--quiet", "--methods", "dies_sometimes", "--plugin", plugin)
    assert code == 0, err
    tuned = yaml.safe_load((Path("results") / "tiny" / "tuned.yaml").read_text())
    assert tuned["dies_sometimes"]["random-10pct"]["trials"] == 3
    assert f"`unlearn-bench run {suite} --plugin '{plugin}'` runs them" in out  # the command to run them, quoted


# --- several tuning seeds, a real search, and what tuning found (issue 20) --------------------------

def _seed(status="ok", flops=10, collapse=None, **values):
    return {"status": status, "error": None if status == "ok" else f"it {status}", "flops": flops,
            "values": {**{"forget": 0, "retain": 0, "val": 0, "mia": 0}, **values, "collapse": collapse}
            if status == "ok" else None}


RETRAINS = [{"flops": 100, "values": {"forget": 0, "retain": 0, "val": 0, "mia": 0}, "nothing": n} for n in (5, 9, 7)]


@pytest.mark.parametrize("seeds, value, reason", [
    # every seed ok: the mean of the three objectives (4, 2, 6 points on one of four terms: 1, 0.5, 1.5)
    ([_seed(forget=4), _seed(forget=2), _seed(forget=6)], 1.0, None),
    # a seed that diverges scores doing nothing there (9), not less: (1 + 9 + 1.5) / 3
    ([_seed(forget=4), _seed("diverged"), _seed(forget=6)], (1 + 9 + 1.5) / 3, None),
    # a collapsed seed likewise; doing nothing (5) below the worst ok seed (40 / 4 = 10): that worst counts
    ([_seed(collapse="one class"), _seed(forget=40), _seed(forget=8)], (10 + 10 + 2) / 3, None),
    # no ok seed: infeasible, never chosen
    ([_seed("failed"), _seed("diverged"), _seed("failed")], None, "it failed"),
    # dearer than retraining on a seed: infeasible
    ([_seed(forget=4), _seed(flops=101), _seed(forget=6)], None, "costs more than retraining"),
])
def test_a_config_scores_its_mean_over_tuning_seeds_and_a_lost_seed_never_helps(seeds, value, reason):
    from bench.tuning_rules import seed_values

    got, why, _ = seed_values(seeds, RETRAINS)
    assert got == (pytest.approx(value) if value is not None else None)
    assert (why is None) if reason is None else reason in why


@pytest.mark.parametrize("budget, startup", [(60, 10), (20, 6), (12, 4), (3, 1), (1, 1)])
def test_random_start_up_trials_are_at_most_a_third_of_the_budget(budget, startup):
    from bench.tuning_rules import startup_trials

    assert startup_trials(budget) == startup and (startup <= budget / 3 or budget < 3)


def test_a_winners_neighbours_move_one_continuous_hyperparameter_inside_its_space():
    from bench.spec import float_range, int_range, log_range
    from bench.tuning_rules import neighbours

    space = {"lr": log_range(1e-3, 0.1), "alpha": float_range(0.5, 1.0), "epochs": int_range(1, 5)}
    got = neighbours({"lr": 0.01, "alpha": 0.9, "epochs": 3}, space)
    assert got == {"lr x0.8": {"lr": 0.008, "alpha": 0.9, "epochs": 3},
                   "lr x1.25": {"lr": 0.0125, "alpha": 0.9, "epochs": 3},
                   "alpha x0.8": {"lr": 0.01, "alpha": pytest.approx(0.72), "epochs": 3},
                   "alpha x1.25": {"lr": 0.01, "alpha": 1.0, "epochs": 3}}  # clipped at the bound
    assert "alpha x1.25" not in neighbours({"lr": 0.01, "alpha": 1.0, "epochs": 3}, space)  # the bound undoes it


BRITTLE = '''
from dataclasses import dataclass
from bench.api import log_range, param, register_method


@dataclass(frozen=True)
class Cfg:
    lr: float = param(0.1, gt=0, search=log_range(0.01, 1.0))


@register_method("brittle", config=Cfg)
def brittle(model, data, cfg, ctx):
    """Changes nothing up to lr 0.11 and raises above: its best is doing nothing, at a cliff edge."""
    if cfg.lr > 0.11:
        raise RuntimeError("over the edge")
    return model
'''


@pytest.mark.slow
def test_tuning_on_two_seeds_marks_a_cliff_edge_and_a_do_nothing_winner_on_the_board(cli, tiny_suite, tmp_path,
                                                                                      forget_plugins):
    plugin = tmp_path / "brittle.py"
    plugin.write_text(BRITTLE)
    suite = tiny_suite(TINY_SUITE.replace("  gradient_ascent: {epochs: 1, lr: 1.0e-3, batch_size: 64}\n",
                                          "  brittle: {lr: 0.1}\n") + "tuning: {trials: 3, seeds: [7, 8]}\n")
    code, out, err = cli("tune", suite, "--quiet", "--plugin", plugin)
    assert code == 0, err
    entry = yaml.safe_load((Path("results") / "tiny" / "tuned.yaml").read_text())["brittle"]["random-10pct"]
    assert entry["made_for"]["tuning_seeds"] == [7, 8] and entry["values"] == {"lr": 0.1}
    assert entry["best_objective"] == entry["do_nothing_objective"] > 0  # it changes nothing
    assert entry["no_better_than_nothing"] is True and entry["edge_of_stability"] is True
    assert entry["neighbours"]["lr x1.25"] == {"objective": None, "failed_seeds": 2, "note": "RuntimeError: over the edge"}
    assert entry["neighbours"]["lr x0.8"]["failed_seeds"] == 0
    assert "edge of stability; no better than nothing" in out
    for k in (0, 1):
        assert (Path("results") / "tiny" / "forget_sets" / f"tuning-random-10pct-{k}.npy").is_file()
    tuning_sets = [np.load(Path("results") / "tiny" / "forget_sets" / f"tuning-random-10pct-{k}.npy") for k in (0, 1)]
    assert not np.array_equal(*tuning_sets)  # each tuning seed its own forget set
    code, out, err = cli("run", suite, "--quiet", "--plugin", plugin, "--seeds", "0")
    assert code == 0, err
    marks = {r["method"]: r["tuning_marks"] for r in load_records(Path("results"))}
    assert marks["brittle"] == ["edge_of_stability", "no_better_than_nothing"] and marks["original"] == []
    assert "| brittle ⚠ ∅" in Path("leaderboard.md").read_text().replace("  ", " ")
