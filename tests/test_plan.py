"""The plan, resolved once: --set over tuned.yaml over the suite over the defaults, with sources in
the record; every broken or stale tuned.yaml entry refused in one line; contradictory forget sets."""

import pickle
from pathlib import Path

import pytest
import yaml

from bench.store import load_records
from bench.suites import load_suite
from bench.tuned import made_for

ENTRY = ("finetune", "random-10pct")


def _tuned_file(suite_path, **changes) -> Path:
    """results/tiny/tuned.yaml with one valid entry for finetune on random-10pct, then `changes`."""
    suite = load_suite(str(suite_path))
    entry = {"values": {"lr": 0.01}, "trials": 5, "best_objective": 0.5, "tuning_gflops": 0.1,
             "made_for": made_for(suite, suite.forget_sets[0], "finetune")}
    entry.update(changes)
    path = Path("results") / "tiny" / "tuned.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"finetune": {"random-10pct": entry}}))
    return path


def _finetune(results="results") -> dict:
    (record,) = [r for r in load_records(Path(results)) if r["method"] == "finetune"]
    return record


def test_set_wins_over_tuned_yaml_and_says_so(cli, tiny_suite):
    suite = tiny_suite()
    _tuned_file(suite)
    run = ("run", suite, "--quiet", "--seeds", "0", "--methods", "finetune", "--no-leaderboard")
    code, _, err = cli(*run, "--results", "results")
    assert code == 0, err
    tuned = _finetune()
    assert tuned["method_config"]["lr"] == 0.01 and tuned["method_config"]["epochs"] == 1  # tuned, suite
    assert tuned["config_source"] == "tuned (5 trials)"
    assert tuned["config_sources"] == {"lr": "tuned", "epochs": "suite", "batch_size": "suite",
                                       "momentum": "default", "weight_decay": "default", "augment": "default"}

    (Path("set") / "tiny").mkdir(parents=True)
    Path("set/tiny/tuned.yaml").write_text(Path("results/tiny/tuned.yaml").read_text())
    code, _, err = cli(*run, "--results", "set", "--set", "finetune.lr=0.02", "--set", "finetune.epochs=2")
    assert code == 0, err
    assert err.strip().splitlines() == ["unlearn-bench: --set finetune.lr=0.02 overrides the tuned value 0.01 "
                                        "(set/tiny/tuned.yaml, random-10pct)"]
    over = _finetune("set")
    assert over["method_config"]["lr"] == 0.02 and over["method_config"]["epochs"] == 2
    assert over["config_source"] == "tuned (5 trials); --set epochs, lr"
    assert over["config_sources"]["lr"] == "--set" and over["config_sources"]["epochs"] == "--set"
    assert over["config_hash"] != tuned["config_hash"]


def _bad(**changes):
    return changes


@pytest.mark.parametrize("changes, message", [
    (_bad(values={"lr": 5.0}), "values.lr: 5.0 is outside the search space (log-uniform 0.001 to 0.3)"),
    (_bad(values={"lr": "fast"}), "values.lr: expected a number, got 'fast'"),
    (_bad(values={"momentum": 0.5}), "values.momentum: not a tuned hyperparameter of finetune"),
    (_bad(values=[0.01]), "values: expected a mapping"),
    (_bad(trials="many"), "trials: expected a whole number of trials, got 'many'"),
    (_bad(trials=None), "trials: expected a whole number of trials, got None"),
    (_bad(made_for=None), "made_for: expected a mapping"),
    (_bad(extra=1), "unknown key 'extra'"),
])
def test_a_broken_tuned_entry_is_one_line(cli, tiny_suite, changes, message):
    suite = tiny_suite()
    _tuned_file(suite, **changes)
    code, out, err = cli("run", suite, "--quiet", "--results", "results")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"tuned.yaml: finetune.random-10pct: {message}" in err
    assert f"run `unlearn-bench tune {suite}` to tune again." in err
    assert load_records(Path("results")) == []


@pytest.mark.parametrize("field, what", [("suite", "suite data, model, recipe or evaluation"),
                                         ("forget_set", "forget set"), ("tuning_seeds", "tuning seeds"),
                                         ("code", "method or training code"), ("search_space", "search space")])
def test_a_stale_tuned_entry_is_refused(cli, tiny_suite, field, what):
    suite = tiny_suite()
    made = made_for(load_suite(str(suite)), load_suite(str(suite)).forget_sets[0], "finetune")
    _tuned_file(suite, made_for={**made, field: "something else"})
    code, _, err = cli("run", suite, "--quiet", "--results", "results")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"finetune.random-10pct: stale: tuned for another {what} than the suite and code now have; " \
           f"run `unlearn-bench tune {suite}` to tune again." in err


@pytest.mark.parametrize("text, message", [
    ("finetune: [1, 2]\n", "finetune: expected a mapping of forget-set names to entries, got list"),
    ("finetune: {random-10pct: [1]}\n", "finetune.random-10pct: expected a mapping (values, trials, made_for)"),
    ("finetune: {random-10pct: {values: {lr: 0.01}, made_for: {}}}\n", "finetune.random-10pct: no 'trials'"),
    ("finetune: {random-10pct: {values: {lr: 0.01}, trials: 3}}\n",
     "no 'made_for' (made before entries said what they were tuned for)"),
    ("[1, 2]\n", "is not a tuned-configs file"),
    ("finetune: {random-10pct: {values: [}\n", "is not valid YAML"),
    ("finetune: {}\nfinetune: {}\n", "key 'finetune' is given twice"),
    ("finetune: {7: {values: {}}}\n", "finetune: expected a mapping of forget-set names to entries, got a name"),
    (b"# caf\xe9\n", "is not valid YAML"),
])
def test_a_tuned_file_of_the_wrong_shape_is_one_line(cli, tiny_suite, text, message):
    suite = tiny_suite()
    path = Path("results/tiny/tuned.yaml")
    path.parent.mkdir(parents=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    code, _, err = cli("run", suite, "--quiet", "--results", "results")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert message in err and "unlearn-bench tune" in err


def test_tuned_insists_on_a_tuned_file(cli, tiny_suite):
    suite = tiny_suite()
    code, _, err = cli("run", suite, "--quiet", "--tuned", "--results", "results")
    assert code == 2 and f"--tuned: 'results/tiny/tuned.yaml' does not exist; run `unlearn-bench tune {suite}` first." in err
    Path("results/tiny").mkdir(parents=True)
    Path("results/tiny/tuned.yaml").write_text("# no entries\n")
    code, _, err = cli("run", suite, "--quiet", "--tuned", "--results", "mine")
    assert code == 2 and "holds no tuned configs" not in err  # --results mine: its own, absent file
    code, _, err = cli("run", suite, "--quiet", "--tuned", "--results", "results")
    assert code == 2 and "'results/tiny/tuned.yaml' holds no tuned configs for this suite" in err


def test_the_fix_names_the_suite_and_results_as_given(cli, tiny_suite):
    code, _, err = cli("run", "digits", "--quiet", "--tuned", "--results", "elsewhere")
    assert code == 2 and "run `unlearn-bench tune digits --results elsewhere` first." in err


@pytest.mark.parametrize("spec, message", [
    ("{protocol: random, fraction: 0.1, label: 3}", "protocol 'random' does not take 'label' (it is class's)"),
    ("{protocol: class, label: 3, fraction: 0.1}", "protocol 'class' does not take 'fraction' (it is random's)"),
    ("{protocol: file, path: f.npy, label: 3}", "protocol 'file' does not take 'label'"),
    ("{protocol: class, label: 1, seed: 3}", "protocol 'class' does not take 'seed'"),
    ("{protocol: random, fraction: 0.1, name: figures}", "'figures' is a name the harness uses itself"),
    ("{protocol: random, fraction: 0.1, name: tuning-random-10pct}", "'tuning-random-10pct' is a name the harness"),
])
def test_forget_sets_that_contradict_themselves_or_the_harness_are_refused(cli, tiny_suite, spec, message):
    from conftest import TINY_SUITE

    text = TINY_SUITE.replace("  - {protocol: random, fraction: 0.1}", f"  - {spec}")
    code, _, err = cli("run", tiny_suite(text), "--quiet", "--results", "results")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not Path("results").exists()


def test_a_plan_is_resolved_once_and_travels_as_data(tiny_suite, tmp_path):
    from bench.jobs import job_graph
    from bench.session import open_session
    from bench.worker import RunRequest

    request = RunRequest(str(tiny_suite()), {"finetune": {"lr": 0.02}}, results_dir=str(tmp_path / "r"),
                         cache_dir=str(tmp_path / "c"))
    s = open_session(request, quiet=True, tuned="off")
    assert [(r.method, r.seed) for r in s.plan.runs] == [(m, seed) for m in ("original", "retrain", "finetune",
                                                                             "gradient_ascent") for seed in (0, 1)]
    jobs = job_graph(s.ws, list(s.plan.runs))
    runs = [j for j in jobs if j.kind == "run"]
    assert all(j.payload is r for j, r in zip(runs, s.plan.runs))  # the specs themselves, not names to look up
    again = pickle.loads(pickle.dumps(runs[4].payload))
    assert again.key == runs[4].key and again.config.lr == 0.02 and again.identity == runs[4].payload.identity
    assert again.identity["device_policy"] == s.ws.policy.key()


def test_reference_draws_follow_the_pool_not_the_code(tmp_path, monkeypatch):
    """Editing the code retrains the reference models (new cache folder) but draws them the same:
    who trains on what, and their seeds, so LiRA's numbers do not move with unrelated edits."""
    import bench.workspace as workspace
    from bench.checks import problem
    from bench.references import _keep

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    before = problem(tmp_path / "a").ws.reference_plan()
    monkeypatch.setattr(workspace, "code_hash", lambda *modules: "edited-code")
    after = problem(tmp_path / "b").ws.reference_plan()
    assert before.folder.name != after.folder.name
    assert before.seed == after.seed and (_keep(before) == _keep(after)).all()


def test_tune_repairs_an_entry_run_refuses(cli, tiny_suite):
    suite = tiny_suite()
    path = Path("results/tiny/tuned.yaml")
    path.parent.mkdir(parents=True)
    path.write_text("finetune: tuned\n")
    assert cli("run", suite, "--quiet", "--results", "results")[0] == 2
    code, out, err = cli("tune", suite, "--quiet", "--results", "results", "--trials", "1", "--methods", "finetune")
    assert code == 0, err
    assert f"`unlearn-bench run {suite} --results results` runs them" in out
    entry = yaml.safe_load(path.read_text())["finetune"]["random-10pct"]
    assert entry["trials"] == 1 and set(entry["made_for"]) == {"suite", "forget_set", "tuning_seeds", "code",
                                                                "search_space"}
    code, _, err = cli("run", suite, "--quiet", "--tuned", "--results", "results", "--seeds", "0",
                       "--no-leaderboard")
    assert code == 0, err


def test_records_made_under_another_device_policy_are_named_not_silently_rerun(tiny_suite, tmp_path, capsys):
    """A record keyed by another thread count (a publish with --job-cpus 1, a run with 2) is not
    reused; `run` says so in one line instead of quietly planning every run again."""
    import json

    from bench.session import open_session
    from bench.worker import RunRequest

    request = RunRequest(str(tiny_suite()), results_dir=str(tmp_path / "r"), cache_dir=str(tmp_path / "c"))
    plan = open_session(request, quiet=True, tuned="off").plan
    capsys.readouterr()
    for r in plan.runs[:3]:  # three runs recorded elsewhere with 2 threads, one with another config too
        policy = dict(r.identity["device_policy"], threads=r.identity["device_policy"]["threads"] + 1)
        other = r.path(request.results_dir).with_name(f"{r.method}-00000000-seed{r.seed}.json")
        other.parent.mkdir(parents=True, exist_ok=True)
        other.write_text(json.dumps(dict(r.identity, device_policy=policy)))
    stray = plan.runs[3]
    stray_path = stray.path(request.results_dir).with_name(f"{stray.method}-11111111-seed{stray.seed}.json")
    stray_path.write_text(json.dumps(dict(stray.identity, method_config={"lr": 9.0},
                                          device_policy=dict(stray.identity["device_policy"], threads=7))))
    stray.path(request.results_dir).with_name(f"{stray.method}-22222222-seed{stray.seed}.json").write_text("[1, 2]")
    open_session(request, quiet=True, tuned="off")
    err = capsys.readouterr().err.strip().splitlines()
    threads = plan.runs[0].identity["device_policy"]["threads"]
    assert err == [f"unlearn-bench: 3 run(s) to do have records in '{request.results_dir}' that differ only in the "
                   f"device policy (threads {threads + 1} there, {threads} here); they are not reused. To reuse them, "
                   "run as they ran (threads: --job-cpus, or the suite's resources.cpus)."]
    open_session(RunRequest(request.suite, results_dir=request.results_dir, cache_dir=request.cache_dir, tuning=True),
                 quiet=True, tuned="off")
    assert capsys.readouterr().err == ""  # tuning writes no records: nothing to say


@pytest.mark.parametrize("device, bf16, kernels, warned", [
    ("cpu", True, False, True),    # cifar10-cpu's policy on an AVX2-only CPU: emulated bf16
    ("cpu", True, True, False),    # the same on a CPU with oneDNN bf16 kernels
    ("cpu", False, False, False),  # digits' fp32 MLP: nothing emulated
    ("cuda", True, False, False),  # a GPU computes bf16 itself
])
def test_slow_bf16_names_an_emulated_bf16_policy(monkeypatch, device, bf16, kernels, warned):
    import torch

    from bench.environment import slow_bf16
    from bench.policy import DevicePolicy

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: kernels)
    line = slow_bf16(DevicePolicy(device, 1, bf16=bf16, channels_last=bf16, compile=False))
    assert (line is not None) == warned
    if warned:
        assert "no bf16 kernels" in line and "\n" not in line


@pytest.mark.parametrize("model, kernels, warned", [("cnn-small", False, True), ("cnn-small", True, False),
                                                    ("mlp", False, False)])
def test_run_and_tune_name_emulated_bf16_once(tiny_suite, tmp_path, capsys, monkeypatch, model, kernels, warned):
    """The session of `run` and of `tune` says it in one line (a bf16 net on a CPU without bf16
    kernels), whatever is left to do: rescoring and reproducing train models too."""
    import torch

    from bench.session import open_session
    from bench.worker import RunRequest
    from conftest import TINY_SUITE

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: kernels)
    suite = str(tiny_suite(TINY_SUITE.replace("model: mlp", f"model: {model}")))
    for tuning in (False, True):
        open_session(RunRequest(suite, results_dir=str(tmp_path / "r"), cache_dir=str(tmp_path / "c"), tuning=tuning),
                     quiet=True, tuned="off")
        lines = [line for line in capsys.readouterr().err.splitlines() if "bf16" in line]
        assert len(lines) == warned and all("has no bf16 kernels" in line for line in lines)
