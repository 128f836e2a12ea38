"""`unlearn-bench reproduce`: published records rerun from nothing, every metric judged by its
resolution, on other hardware by the published seeds' spread, and the board's conclusions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.store import load_records
from conftest import TINY_SUITE

THREE_SEEDS = TINY_SUITE.replace("seeds: [0, 1]", "seeds: [0, 1, 2]")


def _reproduce(suite, scratch, *more, env=None):
    """`unlearn-bench reproduce` in a fresh process (ATEN_CPU_CAPABILITY is read when torch loads)."""
    result = subprocess.run([sys.executable, "-m", "bench", "reproduce", str(suite), "--quiet", "--scratch",
                             str(scratch), *map(str, more)], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=300)
    return result.returncode, result.stdout, result.stderr


def _edit(pattern: str, key: str, change) -> str:
    record = next(Path("results/tiny").rglob(pattern))
    data = json.loads(record.read_text())
    data["metrics"][key] = change(data["metrics"][key])
    record.write_text(json.dumps(data))
    return "/".join(record.parts[-3:])


@pytest.mark.slow
def test_same_hardware_reproduces_exactly_and_any_difference_fails(cli, tiny_suite, tmp_path):
    suite = tiny_suite()
    assert cli("run", suite, "--quiet", "--cache-dir", "published-cache")[0] == 0
    code, out, err = cli("reproduce", suite, "--quiet", "--scratch", tmp_path / "again")
    assert code == 0, err
    assert "tiny: 8 records: 8 exact, 0 within resolution, 0 within the seeds' spread, 0 differs" in out
    assert "conclusions reproduced" in out and "the same fingerprint as the publisher" in out
    assert str(tmp_path / "again" / "leaderboard.md") in out
    assert len(load_records(tmp_path / "again" / "results")) == 8
    assert (tmp_path / "again" / "cache" / "models").is_dir()  # its own cache, trained anew

    # a difference far inside one example's resolution: on the same fingerprint it still fails
    name = _edit("finetune-*seed1.json", "test_acc", lambda v: v + 1e-9)
    code, out, _ = cli("reproduce", suite, "--quiet", "--methods", "finetune", "--seeds", "1",
                       "--scratch", tmp_path / "once-more")
    assert code == 1
    assert f"DIFFERS: {name}: test_acc" in out and "same hardware fingerprint: only equal numbers pass" in out
    assert "3 records: 2 exact, 0 within resolution, 0 within the seeds' spread, 1 differs" in out


@pytest.mark.slow
def test_one_method_and_seed_reproduce_exactly_on_the_same_hardware(cli, tiny_suite, tmp_path):
    """The fast stand-in for the slow reproduce tests: one seed and one method (with original and
    retrain, 3 records), rerun in-process, judged and their board compared."""
    suite = tiny_suite()
    subset = ("--seeds", "0", "--methods", "finetune")
    assert cli("run", suite, "--quiet", *subset)[0] == 0
    code, out, err = cli("reproduce", suite, "--quiet", *subset, "--scratch", tmp_path / "again")
    assert code == 0, err
    assert "tiny: 3 records: 3 exact, 0 within resolution, 0 within the seeds' spread, 0 differs" in out
    assert "the published board's conclusions reproduced" in out and "DIFFERS" not in out
    assert len(load_records(tmp_path / "again" / "results")) == 3


@pytest.mark.slow
def test_other_hardware_passes_within_resolution_or_spread_and_a_real_change_fails(cli, tiny_suite, tmp_path):
    suite = tiny_suite(THREE_SEEDS)
    assert cli("run", suite, "--quiet")[0] == 0
    other = {"ATEN_CPU_CAPABILITY": "default"}  # no vectorised kernels: another fingerprint on any CPU
    code, out, err = _reproduce(suite, tmp_path / "elsewhere", env=other)
    assert code == 0, out + err
    assert "torch_cpu_capability:" in out and "-> DEFAULT" in out
    assert "0 differs" in out and "conclusions reproduced" in out

    # one metric of two seeds moved far beyond one example (two edits cannot widen each other's spread:
    # each record disagrees with its own saved outputs)
    names = [_edit(f"finetune-*seed{k}.json", "forget_acc", lambda v: 1.0 - v if v < 0.5 else v - 0.5) for k in (1, 2)]
    code, out, err = _reproduce(suite, tmp_path / "edited", "--methods", "finetune", env=other)
    assert code == 1, out + err
    for name in names:
        line = next(x for x in out.splitlines() if x.strip().startswith(f"DIFFERS: {name}"))
        assert "forget_acc" in line and "steps of" in line and "disagrees with its own saved outputs" in line
    assert "2 differs" in out.splitlines()[-1]


def test_reproduce_refuses_a_used_scratch_folder_and_a_suite_never_published(cli, tiny_suite, tmp_path):
    suite = tiny_suite()
    code, _, err = cli("reproduce", suite, "--quiet")
    assert code == 2 and "no published records of suite 'tiny'" in err
    assert cli("run", suite, "--quiet", "--seeds", "0", "--methods", "retrain")[0] == 0
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    code, _, err = cli("reproduce", suite, "--quiet", "--scratch", tmp_path / "used")
    assert code == 2 and "is not an empty folder" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "used" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("published, rerun, level", [
    (0.9, 0.9 + 1 / 90, "within resolution"),  # one forget example of 90
    (0.9, 0.9 + 3 / 90, "within the seeds' spread"),  # three: inside what the seeds spread over
    (0.9, 0.2, "differs"),  # far outside both
])
def test_a_metric_is_judged_by_its_resolution_then_the_spread(published, rerun, level):
    from bench.metrics import Counts
    from bench.reproduce import judge

    counts = Counts({"forget": 90}, {})
    others, pooled = [0.88, 0.93], (0.02, 26)  # two other published seeds; the section's pooled std
    d = judge("forget_acc", published, rerun, counts, others, pooled, 40, same_hardware=False, tolerance=0.0)
    assert d.level == level
    assert judge("forget_acc", published, rerun, counts, others, pooled, 40, True, 0.0).level == "differs"


def test_an_attacks_setup_is_another_draw_on_other_hardware_and_must_match_on_the_same():
    """U-LiRA's surviving references are shared by every seed (no spread to judge by); on other
    kernels the unlearned references are another draw: cifar10-cpu finetune had one diverge."""
    from bench.metrics import Counts
    from bench.reproduce import judge

    counts = Counts({}, {"ulira": (90, 90)})
    for name, x, y in [("mia.ulira.n_references", 3, 4), ("mia.ulira.reference_errors", ["NaN in epoch 1"], [])]:
        assert judge(name, x, y, counts, [x, x], (0.0, 20), 40, False, 0.0).level == "within the seeds' spread"
        assert judge(name, x, y, counts, [x, x], (0.0, 20), 40, True, 0.0).level == "differs"
    # the published seeds share the setup: one seed saying otherwise was edited
    assert judge("mia.ulira.n_references", 80, 4, counts, [3, 3], (0.0, 20), 40, False, 0.0).level == "differs"
    # a setting an attack does not declare as its setup must be equal: RMIA's gamma
    assert judge("mia.rmia.gamma", 1.0, 2.0, counts, [1.0, 1.0], (0.0, 20), 40, False, 0.0).level == "differs"


@pytest.mark.slow
def test_missing_unreadable_and_edited_published_files_fail(cli, tiny_suite, tmp_path):
    suite = tiny_suite()
    assert cli("run", suite, "--quiet")[0] == 0
    records = sorted(Path("results/tiny").rglob("*.json"))
    records[0].write_text("{")  # not a record any more
    records[1].unlink()  # and one deleted
    records[1].with_suffix(".npz").unlink()
    code, out, _ = cli("reproduce", suite, "--quiet", "--scratch", tmp_path / "a")
    assert code == 1
    assert f"DIFFERS: {'/'.join(records[0].parts[-3:])}: record unreadable" in out
    assert f"DIFFERS: {'/'.join(records[1].parts[-3:])}: record absent -> rerun" in out
    assert "8 records:" in out.splitlines()[-1]

    board = Path("leaderboard.md")  # a hand-edited board: its records do not give it
    assert cli("run", suite, "--quiet", "--allow-dirty")[0] == 0  # records and board whole again
    board.write_text(board.read_text().replace("| finetune", "| finetune (best!)"))
    code, out, _ = cli("reproduce", suite, "--quiet", "--scratch", tmp_path / "b")
    assert code == 1 and "board DIFFERS: leaderboard.md: section 'tiny — random-10pct'" in out
    assert "did NOT reproduce" in out.splitlines()[-1]


def test_a_published_record_must_agree_with_its_own_saved_outputs(cli, tiny_suite):
    from bench.integrity import disagreements
    from bench.reproduce import outputs_of

    suite = tiny_suite(TINY_SUITE + "attacks: [simple, loss_threshold]\n")
    assert cli("run", suite, "--quiet")[0] == 0
    record = next(r for r in load_records(Path("results")) if r["method"] == "finetune")
    assert disagreements(record, outputs_of(record)) == []
    record["metrics"]["retain_acc"] += 1e-12
    record["metrics"]["mia"]["loss_threshold"]["auc"] = 0.99
    record["metrics"]["mia"]["simple"]["accuracy"] = 0.99  # cross-validated: not a ROC of its saved scores
    assert [key for key, _, _ in disagreements(record, outputs_of(record))] == ["retain_acc", "mia.loss_threshold.auc"]


@pytest.mark.parametrize("args, message", [
    (["--methods", "finetun"], "unknown method 'finetun'"),
    (["--tolerance", "nan"], "--tolerance nan: give 0"),
    (["--tolerance", "inf"], "--tolerance inf: give 0"),
])
def test_a_refused_reproduce_leaves_the_scratch_folder_as_it_was(cli, tiny_suite, tmp_path, args, message):
    suite = tiny_suite()
    assert cli("run", suite, "--quiet", "--seeds", "0", "--methods", "retrain")[0] == 0
    (tmp_path / "empty").mkdir()
    for scratch in (tmp_path / "new", tmp_path / "empty"):
        code, out, err = cli("reproduce", suite, "--quiet", "--scratch", scratch, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "new").exists() and list((tmp_path / "empty").iterdir()) == []


@pytest.mark.slow
def test_every_tampered_field_of_a_publish_is_named(cli, tiny_suite, tmp_path):
    """Beside the numbers: the fingerprint (removed, it would buy other hardware's allowances), the
    FLOP count, the config, the forget set, the saved outputs and the board file itself."""
    suite = tiny_suite()
    assert cli("run", suite, "--quiet")[0] == 0
    files = {r["method"] + str(r["seed"]): Path(r["_file"]) for r in load_records(Path("results"))}

    def tamper(key, change):
        data = json.loads(files[key].read_text())
        change(data)
        files[key].write_text(json.dumps(data))
        return "/".join(files[key].parts[-3:])

    expected = {
        tamper("finetune0", lambda d: d["env"].pop("hardware")): "its environment (hardware) differs from every other",
        tamper("finetune1", lambda d: d["cost"].update(flops=d["cost"]["flops"] // 2)): "cost.flops",
        tamper("gradient_ascent0", lambda d: d["method_config"].update(lr=0.5)): "method_config",
        tamper("gradient_ascent1", lambda d: d["forget_set"].update(sha256="0" * 64)): "is not the one it names",
    }
    files["retrain1"].with_suffix(".npz").unlink()
    expected["/".join(files["retrain1"].parts[-3:])] = "saved outputs (.npz) are missing"
    code, out, _ = cli("reproduce", suite, "--quiet", "--scratch", tmp_path / "a")
    assert code == 1, out
    for name, why in expected.items():
        line = next((x for x in out.splitlines() if x.strip().startswith(f"DIFFERS: {name}")), out)
        assert why in line, line

    Path("leaderboard.md").unlink()
    code, out, _ = cli("reproduce", suite, "--quiet", "--methods", "finetune", "--scratch", tmp_path / "b")
    assert code == 1 and "board DIFFERS: no published leaderboard at leaderboard.md" in out
