"""`unlearn-bench reproduce`: published records rerun from nothing, every metric compared."""

import json
from pathlib import Path

from bench.store import load_records


def test_reproduce_reruns_from_an_empty_cache_and_finds_every_record_and_every_change(cli, tiny_suite, tmp_path):
    suite = tiny_suite()
    assert cli("run", suite, "--quiet", "--cache-dir", "published-cache")[0] == 0
    code, out, err = cli("reproduce", suite, "--quiet", "--scratch", tmp_path / "again")
    assert code == 0, err
    assert "tiny: 8/8 records reproduced exactly" in out and str(tmp_path / "again" / "leaderboard.md") in out
    assert len(load_records(tmp_path / "again" / "results")) == 8
    assert (tmp_path / "again" / "cache" / "models").is_dir()  # its own cache, trained anew

    record = next(p for p in Path("results/tiny").rglob("finetune-*seed1.json"))
    data = json.loads(record.read_text())
    data["metrics"]["test_acc"] += 0.004  # a published number nobody can get again
    record.write_text(json.dumps(data))
    code, out, _ = cli("reproduce", suite, "--quiet", "--methods", "finetune", "--seeds", "1",
                       "--scratch", tmp_path / "once-more")
    assert code == 1 and "DIFFERS: tiny/random-10pct/finetune-" in out and "test_acc" in out
    assert "tiny: 2/3 records reproduced exactly" in out  # original, retrain and finetune of seed 1
    code, out, _ = cli("reproduce", suite, "--quiet", "--methods", "finetune", "--seeds", "1", "--tolerance", "0.01",
                       "--scratch", tmp_path / "tolerant")
    assert code == 0 and "within tolerance" in out and "2/3 records reproduced exactly, 1 more within 0.01" in out


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
