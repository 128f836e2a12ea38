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


def test_other_hardware_passes_within_resolution_or_spread_and_a_real_change_fails(cli, tiny_suite, tmp_path):
    suite = tiny_suite(THREE_SEEDS)
    assert cli("run", suite, "--quiet")[0] == 0
    other = {"ATEN_CPU_CAPABILITY": "default"}  # no vectorised kernels: another fingerprint on any CPU
    code, out, err = _reproduce(suite, tmp_path / "elsewhere", env=other)
    assert code == 0, out + err
    assert "torch_cpu_capability:" in out and "-> DEFAULT" in out
    assert "0 differs" in out and "conclusions reproduced" in out

    # one metric moved far beyond one example and beyond what the seeds spread over
    name = _edit("finetune-*seed2.json", "forget_acc", lambda v: 1.0 - v if v < 0.5 else v - 0.5)
    code, out, err = _reproduce(suite, tmp_path / "edited", "--methods", "finetune", env=other)
    assert code == 1, out + err
    line = next(x for x in out.splitlines() if x.strip().startswith(f"DIFFERS: {name}"))
    assert "forget_acc" in line and "steps of" in line and "std of the seeds" in line
    assert "1 differs" in out.splitlines()[-1]


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
        assert judge(name, x, y, counts, [3, 3], (0.0, 20), 40, False, 0.0).level == "within the seeds' spread"
        assert judge(name, x, y, counts, [3, 3], (0.0, 20), 40, True, 0.0).level == "differs"
    # a setting an attack does not declare as its setup must be equal: RMIA's gamma
    assert judge("mia.rmia.gamma", 1.0, 2.0, counts, [1.0, 1.0], (0.0, 20), 40, False, 0.0).level == "differs"
