"""Records checked when read, files the tool does not own left alone, messages that name the cause
(issue 18, sections 2, 4 and 5)."""

import json
import math
from pathlib import Path

import pytest

from bench.store import load_records

SMALL = ("--quiet", "--seeds", "0", "--methods", "finetune", "--no-leaderboard", "--results", "results")


def _record(method="finetune") -> Path:
    return next(Path("results").rglob(f"{method}-*-seed0.json"))


@pytest.mark.parametrize("value, why", [(math.nan, "metric forget_acc is nan, not a finite number"),
                                        ("0.9", "metric forget_acc is '0.9', not a finite number")])
def test_a_record_whose_metric_is_not_a_finite_number_is_not_ranked(cli, tiny_suite, value, why):
    suite = tiny_suite()
    assert cli("run", suite, *SMALL)[0] == 0
    path = _record()
    record = json.loads(path.read_text())
    record["metrics"]["forget_acc"] = value
    path.write_text(json.dumps(record))
    skipped = []
    assert [r["method"] for r in load_records(Path("results"), skipped)] == ["original", "retrain"]
    assert len(skipped) == 1 and why in skipped[0]
    code, out, err = cli("leaderboard", "--results", "results", "--leaderboard", "board.md")
    assert code == 0 and why in err and "| finetune" not in Path("board.md").read_text()


def test_a_record_of_a_newer_schema_is_left_alone(cli, tiny_suite):
    suite = tiny_suite()
    assert cli("run", suite, *SMALL)[0] == 0
    path = _record()
    record = json.loads(path.read_text())
    record["schema_version"] = 99
    path.write_text(json.dumps(record))
    before = path.read_bytes()
    code, out, err = cli("run", suite, *SMALL)
    assert code == 0 and "written by a newer unlearn-bench (schema_version 99" in err and "0 ok" in out
    assert path.read_bytes() == before and not list(Path("results").rglob("*.corrupt"))


def test_rescore_names_a_damaged_outputs_file_and_rescores_the_rest(cli, tiny_suite):
    from conftest import TINY_SUITE

    suite = tiny_suite()
    assert cli("run", suite, *SMALL)[0] == 0
    _record().with_suffix(".npz").write_bytes(b"not an npz")
    wider = tiny_suite(TINY_SUITE + "attacks: [simple, loss_threshold]\n", "tiny.yaml")
    code, out, err = cli("rescore", wider, "--quiet", "--results", "results", "--no-leaderboard")
    assert code == 0, err
    assert f"'{_record().with_suffix('.npz')}' is not a readable outputs file" in err and "2 records rescored" in out


@pytest.mark.slow
def test_the_leaderboard_overwrites_only_files_it_wrote(cli, tiny_suite):
    suite = tiny_suite()
    assert cli("run", suite, *SMALL)[0] == 0
    record = _record()
    before = record.read_bytes()
    for fmt in ("json", "md", "csv"):
        code, _, err = cli("leaderboard", "--results", "results", "--leaderboard", record, "--format", fmt)
        assert code == 2 and "is not a leaderboard or export unlearn-bench wrote" in err
    assert record.read_bytes() == before
    for fmt in ("md", "json", "csv"):  # its own files it rewrites
        assert cli("leaderboard", "--results", "results", "--leaderboard", f"board.{fmt}", "--format", fmt)[0] == 0
        assert cli("leaderboard", "--results", "results", "--leaderboard", f"board.{fmt}", "--format", fmt)[0] == 0


@pytest.mark.parametrize("args, message", [
    (["--results", ""], "--results: give the results folder a name"),
])
def test_command_lines_that_would_misplace_or_mislead(cli, tiny_suite, args, message):
    code, _, err = cli("run", tiny_suite(), "--quiet", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in Path(".").iterdir()) == ["cache", "tiny.yaml"] or \
        sorted(p.name for p in Path(".").iterdir()) == ["tiny.yaml"]


def test_a_method_whose_default_lies_outside_its_search_space_is_named(cli, tiny_suite, tmp_path, forget_plugins):
    plugin = tmp_path / "outside.py"
    plugin.write_text("from dataclasses import dataclass\n"
                      "from bench.api import log_range, param, register_method\n"
                      "@dataclass(frozen=True)\nclass C:\n    lr: float = param(5.0, gt=0, search=log_range(1e-3, 0.3))\n"
                      "@register_method('outside', config=C)\ndef outside(model, data, cfg, ctx):\n"
                      "    '''Nothing.'''\n    return model\n")
    code, _, err = cli("run", tiny_suite(), "--quiet", "--plugin", plugin, "--methods", "outside", "--results", "r")
    assert code == 2 and "method 'outside'" in err and "default lr=5.0 lies outside its own search space" in err


def test_a_tuning_folder_linked_out_of_the_results_is_refused(cli, tiny_suite, tmp_path):
    from test_tune import TUNE_SUITE

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (Path("results") / "tiny").mkdir(parents=True)
    (Path("results") / "tiny" / "tuning").symlink_to(elsewhere)
    code, _, err = cli("tune", tiny_suite(TUNE_SUITE), "--quiet", "--trials", "1", "--results", "results")
    assert code == 2 and "would be written outside" in err and list(elsewhere.iterdir()) == []


def test_naming_original_is_not_an_unknown_method(cli, tiny_suite):
    code, out, err = cli("run", tiny_suite(), *SMALL[:3], "--methods", "original", "--results", "results")
    assert code == 0 and err.strip() == ("unlearn-bench: --methods original: original and retrain always run; "
                                         "no need to name them.")
    assert {r["method"] for r in load_records(Path("results"))} == {"original", "retrain"}


def test_a_full_disk_or_a_folder_that_cannot_be_written_is_one_line_naming_the_path(tmp_path, monkeypatch):
    import errno

    import bench.files as files
    from bench.errors import UserError

    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(UserError, match=r"no space left on the device holding '.*' while writing 'a.npz'"):
        files.atomic_write(tmp_path / "a.npz", full)

    def torch_full(tmp):  # torch.save on a full disk: a RuntimeError naming neither disk nor file
        tmp.write_bytes(b"x")
        raise RuntimeError("unexpected pos 1152 vs 1046")

    monkeypatch.setattr(files.shutil, "disk_usage", lambda folder: type("U", (), {"free": 0})())
    with pytest.raises(UserError, match=r"no space left on the device holding .* 'b.pt'"):
        files.atomic_write(tmp_path / "b.pt", torch_full)

    def denied(tmp):
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(UserError, match=r"cannot write '.*c.json' \(Permission denied\)"):
        files.atomic_write(tmp_path / "c.json", denied)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temporary or partial file left


def test_an_empty_lock_left_by_a_failed_write_is_taken_over(tmp_path):
    import os
    import time

    from bench.errors import UserError
    from bench.files import LOCK_NAME, ResultsLock

    lock = tmp_path / LOCK_NAME
    lock.write_text("")  # what a full disk left: the file, without its holder
    with pytest.raises(UserError, match="in use by another unlearn-bench"):  # a fresh one may be a writer at work
        ResultsLock(tmp_path).__enter__()
    os.utime(lock, (time.time() - 120, time.time() - 120))
    with ResultsLock(tmp_path):
        assert lock.read_text().split()[0] == str(os.getpid())
    assert not lock.exists()


def test_a_link_out_of_the_results_is_named_as_a_link(tmp_path):
    from bench.errors import UserError
    from bench.files import inside

    (tmp_path / "results").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "results" / "suite").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="through the link '.*results/suite'"):
        inside(tmp_path / "results", tmp_path / "results" / "suite" / "figures" / "a.png")


@pytest.mark.parametrize("flag, folder, message", [
    ("--results", "r" * 300, "a name in it is longer than the file system's 255 bytes; use shorter names"),
    ("--cache-dir", "/".join(["c" * 200] * 21), "the path is too long for the files written below it"),
])
def test_a_folder_whose_names_are_too_long_is_refused_before_any_work(cli, tiny_suite, flag, folder, message):
    code, _, err = cli("run", tiny_suite(), "--quiet", flag, folder, *(["--results", "r"] if flag != "--results" else []))
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not Path("r").exists() and not list(Path(".").glob("r*"))


def test_a_folder_that_cannot_be_written_is_refused_before_any_work(cli, tiny_suite, monkeypatch):
    """Checked with os.access (as root every folder is writable, so the check is shown by a stand-in)."""
    import bench.checkout as checkout

    Path("locked").mkdir()
    real = checkout.os.access
    monkeypatch.setattr(checkout.os, "access", lambda p, mode: Path(p).name != "locked" and real(p, mode))
    code, _, err = cli("run", tiny_suite(), "--quiet", "--cache-dir", "locked/cache", "--results", "r")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.strip().endswith(f"--cache-dir 'locked/cache': '{Path('locked').absolute()}' cannot be written "
                                "(read-only or not yours); pass a folder you can write to.")
    assert not Path("r").exists() and list(Path("locked").iterdir()) == []
