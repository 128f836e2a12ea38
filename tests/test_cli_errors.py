"""Bad input: one line naming the problem and the fix, exit 2, no traceback, no partial files."""

import re
from pathlib import Path

import pytest

from conftest import TINY_SUITE


def _assert_clean_failure(code, out, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("unlearn-bench: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err
    assert not Path("results").exists() and not Path("leaderboard.md").exists()


@pytest.mark.parametrize(
    "args, needles",
    [
        (["run", "digitz"], ["unknown suite 'digitz'", "Did you mean 'digits'?"]),
        (["run", "nope.yaml"], ["suite file 'nope.yaml' does not exist"]),
        (["run", "--set", "finetune.lrr=0.1"], ["unknown key 'lrr'", "Did you mean 'lr'?"]),
        (["run", "--set", "finetune.lr=abc"], ["finetune.lr: expected a number"]),
        (["run", "--set", "finetune=3"], ["expected SECTION.KEY=VALUE"]),
        (["run", "--methods", "finetun"], ["unknown method 'finetun'", "Did you mean 'finetune'?"]),
        (["run", "--seeds", "70"], ["--seeds 70: not a seed of suite 'digits'"]),
        (["run", "cifar10-cpu"], ["CIFAR-10 not found", "--data-root", "--download"]),
        (["run", "cifar10-cpu", "--data-root", "/nonexistent"], ["CIFAR-10 not found under '/nonexistent'"]),
        (["run", "--plugin", "missing.py"], ["--plugin 'missing.py': no such .py file"]),
        (["leaderboard", "--results", "nowhere"], ["results folder 'nowhere' does not exist"]),
        (["leaderboard", "--results", "a-file"], ["--results 'a-file' is a file, not a folder"]),
        (["run", "--job-cpus", "nan"], ["--job-cpus nan: give a finite number of CPUs per job"]),
        (["run", "--job-gpus", "inf"], ["--job-gpus inf: give a finite number of GPUs per job"]),
        (["run", "--cache-dir", "a-file/cache"], ["--cache-dir 'a-file/cache': 'a-file' is a file, not a folder"]),
        (["run", "--leaderboard", "a-file/lb.md"], ["--leaderboard 'a-file': 'a-file' is a file, not a folder"]),
        (["run", "--set", "eval.retain_eval_size=1"], ["--set eval.retain_eval_size: unknown key."]),
        # a value the suite file does not hold is blamed on --set, not on the file
        (["run", "--set", "recipe.epochs=-1"], ["error: --set: recipe.epochs: -1 is out of range; it must be >= 1"]),
        (["run", "--set", "attack_settings.references=3"], ["error: --set: attack_settings.references: 3; use an even"]),
        (["run", "--set", "tuning.seeds=[0]"], ["error: --set: tuning.seeds: 0 is a reporting seed"]),
    ],
)
def test_bad_command_lines(cli, args, needles, monkeypatch):
    monkeypatch.delenv("UNLEARN_BENCH_DATA", raising=False)
    Path("a-file").write_text("not a folder")
    _assert_clean_failure(*cli(*args), *needles)
    assert sorted(p.name for p in Path(".").iterdir()) == ["a-file"]  # nothing written


@pytest.mark.parametrize("args", [["run", "--seeds", "x"], ["tune", "--trials", "x"], ["list", "nosuch"], ["nosuch"]])
def test_a_malformed_command_line_is_one_line(args, capsys):
    from bench.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("unlearn-bench") and "error:" in err and "--help" in err


@pytest.mark.parametrize(
    "change, needle",
    [
        (("fraction: 0.1", "fraction: 1.0"), "fraction: 1.0 is out of range; it must be > 0 and < 1"),
        (("{protocol: random, fraction: 0.1}", "{protocol: class, label: 10}"), "class 10 does not exist"),
        (("model: mlp", "model: resnet"), "unknown model 'resnet'"),
        (("seeds: [0, 1]", "seeds: [0, 1]\nseed: 3"), "unknown key 'seed'. Did you mean 'seeds'?"),
        (("recipe: {", "recipe: {{"), "not valid YAML"),
    ],
)
def test_bad_suites(cli, tiny_suite, change, needle):
    _assert_clean_failure(*cli("run", tiny_suite(TINY_SUITE.replace(*change))), needle)


@pytest.mark.parametrize("file_change, sets, needle", [
    # the file's own mistake, a valid --set beside it: the file is named
    (("fraction: 0.1", "fraction: 1.0"), ["recipe.epochs=2"], "{suite}: forget_sets[0].fraction: 1.0 is out of range"),
    # a --set that fixes the file's key, and a bad one beside it: the bad one is named, not the fixed one
    (("epochs: 3,", "epochs: -1,"), ["recipe.epochs=2", "recipe.lr=-1"], "--set: recipe.lr: -1.0 is out of range"),
    (("seeds: [0, 1]", "seeds: [0, 1]\ntuning: {seeds: [0]}"), ["tuning.seeds=[100]", "recipe.epochs=-1"],
     "--set: recipe.epochs: -1 is out of range"),
    # a section --set writes into that is not a mapping in the file (was a TypeError traceback; [] was let through)
    (("recipe: {epochs: 3, batch_size: 64, lr: 0.05, schedule: cosine}", "recipe: 5"), ["recipe.epochs=2"],
     "{suite}: recipe: expected a mapping of keys to values, got 5."),
    (("recipe: {epochs: 3, batch_size: 64, lr: 0.05, schedule: cosine}", "recipe: []"), ["recipe.epochs=2"],
     "{suite}: recipe: expected a mapping of keys to values, got []."),
    # a key --set gave, quoted in the file's own value, is not the error's subject
    (("name: tiny", "name: 'bad recipe.lr x'"), ["recipe.lr=0.2"], "{suite}: name: 'bad recipe.lr x' is not a plain"),
])
def test_an_error_names_set_only_when_it_is_about_a_key_set_gave(cli, tiny_suite, file_change, sets, needle):
    suite = tiny_suite(TINY_SUITE.replace(*file_change))
    args = [a for value in sets for a in ("--set", value)]
    _assert_clean_failure(*cli("run", suite, *args), "error: " + needle.format(suite=suite))


def test_a_clash_a_set_value_makes_with_the_file_says_so(cli):
    _assert_clean_failure(*cli("run", "digits", "--set", "attack_settings.references=4"),
                          "digits.yaml: attack_settings.ulira_references: 8; use 1..4",
                          ": a clash with --set attack_settings.references (the file alone is valid).")


def test_download_without_a_network_is_one_line(cli, tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)  # torchvision's downloads go through it
    _assert_clean_failure(*cli("run", "cifar10-cpu", "--download", "--data-root", tmp_path / "data"),
                          "error: --download could not fetch 'cifar10' ([Errno -2] Name or service not known); connect to the "
                          "network, or put its files under --data-root yourself.")


def test_broken_plugins_are_named(cli, tmp_path, forget_plugins):
    bad = tmp_path / "bad_plugin.py"
    bad.write_text("import not_a_module_anywhere\n")
    _assert_clean_failure(*cli("list", "methods", "--plugin", bad), "bad_plugin.py", "failed to import",
                          "ModuleNotFoundError")
    dup = tmp_path / "dup_plugin.py"
    dup.write_text("from bench.api import register_method\n"
                   "@register_method('finetune')\ndef f(model, data, cfg, ctx):\n    return model\n")
    _assert_clean_failure(*cli("list", "methods", "--plugin", dup), "dup_plugin.py",
                          "'finetune' is registered twice")


@pytest.mark.slow
def test_a_dirty_checkout_does_not_write_its_published_results(cli, tiny_suite, tmp_path, monkeypatch):
    """The results folder inside the checkout takes records from a clean commit only: with edited
    code a run goes to local-results/ (git-ignored) and says so in one line; a --results folder
    inside the checkout is refused; a folder elsewhere, or --allow-dirty, is written as usual.
    (git's answers are faked: the checkout is this test's folder, with an edited bench/train.py.)"""
    import bench.checkout as checkout
    import bench.environment as environment

    answers = {("rev-parse", "--show-toplevel"): str(tmp_path), ("status", "--porcelain"): " M bench/train.py\n",
               ("rev-parse", "--short", "HEAD"): "abc1234", ("rev-parse", "HEAD"): "abc1234" * 5}
    monkeypatch.setattr(checkout, "git", lambda *args, cwd=None: answers[args])
    monkeypatch.setattr(environment, "git", lambda *args, cwd=None: answers[args])
    suite = tiny_suite()
    code, out, err = cli("run", suite, "--quiet", "--seeds", "0", "--methods", "retrain")
    assert code == 0, err
    assert len(err.strip().splitlines()) == 1
    assert "differs from commit abc1234 (bench/train.py" in err and "local-results" in err and "commit" in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "leaderboard.md").exists()
    local = tmp_path / "local-results"
    assert len(list((local / "results").rglob("*-seed0.json"))) == 2 and (local / "leaderboard.md").is_file()
    code, out, err = cli("run", suite, "--quiet", "--seeds", "0", "--methods", "retrain", "--results", "results")
    assert code == 2 and "--allow-dirty" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()
    code, _, err = cli("run", suite, "--quiet", "--seeds", "0", "--methods", "retrain", "--allow-dirty")
    assert code == 0, err
    assert (tmp_path / "results").is_dir() and err == ""
    answers[("status", "--porcelain")] = " M leaderboard.md\n?? results/tiny/\n"  # published data only: clean
    code, _, err = cli("run", suite, "--quiet", "--seeds", "1", "--methods", "retrain")
    assert code == 0, err
    assert len(list((tmp_path / "results").rglob("*-seed1.json"))) == 2


def test_dirtiness_is_read_from_a_real_checkout(tmp_path):
    """With real git: a deleted or new published file keeps the checkout clean (porcelain's leading
    space included); an edited code file makes it dirty, and writing its results/ is refused."""
    import subprocess

    from bench.checkout import unpublishable

    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path,  # noqa: E731
                                    check=True, capture_output=True)
    (tmp_path / "results" / "s").mkdir(parents=True)
    (tmp_path / "results" / "s" / "a.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "init")
    (tmp_path / "results" / "s" / "a.json").unlink()  # " D results/s/a.json": a leading space
    (tmp_path / "leaderboard.md").write_text("new")
    assert unpublishable(tmp_path / "results", checkout=tmp_path) is None
    (tmp_path / "code.py").write_text("x = 2\n")
    problem = unpublishable(tmp_path / "results", checkout=tmp_path)
    assert problem is not None and problem.changed == "code.py" and problem.checkout == tmp_path.resolve()
    assert re.fullmatch(r"the code differs from commit \w+ \(code.py and maybe more\)", str(problem))
    assert unpublishable(tmp_path.parent / "elsewhere", checkout=tmp_path) is None  # outside the checkout


@pytest.mark.slow
def test_output_piped_into_a_reader_that_stops_ends_quietly(tmp_path):
    """`unlearn-bench list suites | head -1`: no BrokenPipe traceback."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    shell = f"{sys.executable} -m bench list suites | head -1"
    done = subprocess.run(["bash", "-c", shell], cwd=tmp_path, capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert len(done.stdout.splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
