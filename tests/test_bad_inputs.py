"""Bad input, as a hostile or clumsy user gives it: every case ends in exit 2 and one line naming
the problem, no traceback, and nothing written inside or outside --results. Grows with every
case found; property-based fuzzing of suite YAML and --set with Hypothesis at the end."""

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TINY_SUITE


def _tar(path: Path, bad_member: bytes | None = None, truncate: bool = False) -> None:
    from PIL import Image

    from bench.data import CIFAR10_CLASSES

    buf = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(buf, format="JPEG")
    with tarfile.open(path, "w:gz") as tar:
        for part in ("train", "test"):
            for cls in CIFAR10_CLASSES:
                data = bad_member if (bad_member is not None and cls == "cat") else buf.getvalue()
                info = tarfile.TarInfo(f"{part}/{cls}/0000.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    if truncate:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CIFAR = TINY_SUITE.replace("dataset: {name: digits, split_seed: 0}", "dataset: {name: cifar10, split_seed: 0}")


def suite_case(old, new, needle, base=TINY_SUITE):
    return {"suite": base.replace(old, new), "needle": needle}


CASES = {
    "suite name escapes": suite_case("name: tiny", "name: ../../x", "is not a plain name"),
    "suite name absolute": suite_case("name: tiny", "name: /tmp/x", "is not a plain name"),
    "forget-set name escapes": suite_case("{protocol: random, fraction: 0.1}",
                                          "{protocol: random, fraction: 0.1, name: ../../../x}", "is not a plain name"),
    "recipe epochs negative": suite_case("epochs: 3, batch_size: 64, lr: 0.05", "epochs: -3, batch_size: 64, lr: 0.05",
                                         "recipe.epochs: -3 is out of range; it must be >= 1"),
    "method epochs negative": suite_case("finetune: {epochs: 1", "finetune: {epochs: -1",
                                         "methods.finetune.epochs: -1 is out of range"),
    "epochs zero": suite_case("epochs: 3, batch_size: 64, lr: 0.05", "epochs: 0, batch_size: 64, lr: 0.05",
                              "recipe.epochs: 0 is out of range"),
    "batch size zero": suite_case("batch_size: 64, lr: 0.05, schedule", "batch_size: 0, lr: 0.05, schedule",
                                  "recipe.batch_size: 0 is out of range"),
    "lr negative": suite_case("finetune: {epochs: 1, lr: 0.05", "finetune: {epochs: 1, lr: -0.05",
                              "methods.finetune.lr: -0.05 is out of range; it must be > 0"),
    "lr nan": suite_case("finetune: {epochs: 1, lr: 0.05", "finetune: {epochs: 1, lr: .nan",
                         "methods.finetune.lr: nan is not a finite number"),
    "val fraction negative": suite_case("{name: digits, split_seed: 0}", "{name: digits, split_seed: 0, val_fraction: -0.2}",
                                        "dataset.val_fraction: -0.2 is out of range"),
    "holdout fraction zero": suite_case("{name: digits, split_seed: 0}", "{name: digits, split_seed: 0, holdout_fraction: 0}",
                                        "dataset.holdout_fraction: 0.0 is out of range"),
    "holdout fraction 1.5": suite_case("{name: digits, split_seed: 0}", "{name: digits, split_seed: 0, holdout_fraction: 1.5}",
                                       "dataset.holdout_fraction: 1.5 is out of range; it must be > 0 and < 1"),
    "std zero": suite_case("{name: digits, split_seed: 0}", "{name: digits, split_seed: 0, mean: [0.5], std: [0]}",
                           "dataset.std: (0.0,) is out of range"),
    "three means on grey images": suite_case(
        "{name: digits, split_seed: 0}", "{name: digits, split_seed: 0, mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2]}",
        "3 values, but 'digits' has 1-channel images"),
    "retain sample negative": suite_case("seeds: [0, 1]", "seeds: [0, 1]\neval: {retain_sample: -5}",
                                         "eval.retain_sample: -5 is out of range"),
    "seeds repeated": suite_case("seeds: [0, 1]", "seeds: [0, 0]", "repeats a seed"),
    "method settings not a mapping": suite_case("  retrain: {}", "  retrain: {}\n  random_label: 5",
                                                "methods.random_label: expected a mapping"),
    "key given twice": suite_case("model: mlp", "model: mlp\nmodel: cnn", "key 'model' is given twice"),
    "binary suite file": {"suite_bytes": b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "needle": "not a text file"},
    "suite path is a folder": {"args": ["run", "afolder"], "mkdir": "afolder", "needle": "is a folder"},
    "set value empty": {"args": ["run", "{suite}", "--set", "finetune.lr="], "needle": "no value after '='"},
    "set key twice": {"args": ["run", "{suite}", "--set", "finetune.lr=0.1", "--set", "finetune.lr=0.2"],
                      "needle": "finetune.lr is given twice"},
    "set value unclosed": {"args": ["run", "{suite}", "--set", "finetune.lr=[unclosed"], "needle": "not valid YAML"},
    "device tpu": {"args": ["run", "{suite}", "--device", "tpu"], "needle": "--device 'tpu'"},
    "device mps": {"args": ["run", "{suite}", "--device", "mps"], "needle": "--device 'mps'"},
    "device meta": {"args": ["run", "{suite}", "--device", "meta"], "needle": "--device 'meta'"},
    "device empty": {"args": ["run", "{suite}", "--device", ""], "needle": "--device ''"},
    "results is a file": {"args": ["run", "{suite}", "--results", "afile"], "file": "afile",
                          "needle": "is a file, not a folder"},
    "leaderboard is a folder": {"args": ["run", "{suite}", "--leaderboard", "afolder"], "mkdir": "afolder",
                                "needle": "--leaderboard 'afolder' is a folder"},
    "forget file covers the whole pool": {"forget": "all", "needle": "both the forget and the retain set must be non-empty"},
    "forget file is an npz": {"forget": "npz", "needle": "is an .npz archive"},
    "forget file is text": {"forget": "text", "needle": "is not a .npy array file"},
    "truncated tar.gz": {"suite": CIFAR, "tar": "truncate", "needle": "not a readable .tar.gz"},
    "non-image in tar.gz": {"suite": CIFAR, "tar": "bad", "needle": "is not a readable image"},
    "plugin exits": {"args": ["run", "{suite}", "--plugin", "exits.py"], "plugin": "import sys\nsys.exit(7)\n",
                     "needle": "called exit(7) on import"},
}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if "__pycache__" not in p.parts}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_ends_in_one_clean_line_and_writes_nothing(case, cli, tmp_path, forget_plugins):
    c = CASES[case]
    suite = tmp_path / "suite.yaml"
    if "suite_bytes" in c:
        suite.write_bytes(c["suite_bytes"])
    else:
        text = c.get("suite", TINY_SUITE)
        if "forget" in c:
            text = text.replace("{protocol: random, fraction: 0.1}", "{protocol: file, path: forget.npy}")
            from bench.data import LoadOptions, load_dataset, make_splits
            from bench.suites import load_suite

            (tmp_path / "probe.yaml").write_text(TINY_SUITE)
            pool = make_splits(load_dataset("digits", LoadOptions(None, False, None)),
                               load_suite(str(tmp_path / "probe.yaml")).dataset).train
            (tmp_path / "probe.yaml").unlink()
            if c["forget"] == "all":
                np.save(tmp_path / "forget.npy", pool)
            elif c["forget"] == "npz":
                with open(tmp_path / "forget.npy", "wb") as f:
                    np.savez(f, a=pool[:10])
            else:
                (tmp_path / "forget.npy").write_text("1, 2, 3\n")
        suite.write_text(text)
    if "tar" in c:
        _tar(tmp_path / "cifar10-jpeg.tar.gz", bad_member=b"not an image" if c["tar"] == "bad" else None,
             truncate=c["tar"] == "truncate")
    if "mkdir" in c:
        (tmp_path / c["mkdir"]).mkdir()
    if "file" in c:
        (tmp_path / c["file"]).write_text("x")
    if "plugin" in c:
        (tmp_path / "exits.py").write_text(c["plugin"])
    args = [a.replace("{suite}", str(suite)) for a in c.get("args", ["run", "{suite}"])]
    if "tar" in c:
        args += ["--data-root", str(tmp_path)]
    before = _files(tmp_path)
    code, out, err = cli(*args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("unlearn-bench: error: "), err
    assert "Traceback" not in err and c["needle"] in err, err
    assert _files(tmp_path) == before  # nothing written, inside or outside --results (cache included)


BEHAVES = '''
import torch
import torch.nn as nn
from bench.api import register_method

@register_method("nan_outputs", deterministic=True)
def nan_outputs(model, data, cfg, ctx):
    """Finite weights whose outputs are not: the logits overflow to inf in the forward pass."""
    with torch.no_grad():
        model[-1].weight.fill_(3e38)
    return model

@register_method("other_architecture", deterministic=True)
def other_architecture(model, data, cfg, ctx):
    """Same output shape, different network."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

@register_method("other_outputs", deterministic=True)
def other_outputs(model, data, cfg, ctx):
    """A different number of outputs."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
'''


@pytest.mark.slow
def test_broken_runs_are_recorded_and_the_board_survives(cli, tiny_suite, tmp_path, forget_plugins):
    from bench.store import load_records

    (tmp_path / "behaves.py").write_text(BEHAVES)
    suite = tiny_suite(TINY_SUITE + "  nan_outputs: {}\n  other_architecture: {}\n  other_outputs: {}\n"
                                    "attacks: []\n")
    code, out, err = cli("run", suite, "--quiet", "--plugin", tmp_path / "behaves.py")
    assert code == 0, err
    status = {(r["method"], r["seed"]): (r["status"], r["error"]) for r in load_records(Path("results"))}
    assert status[("nan_outputs", 0)][0] == "diverged" and "not finite" in status[("nan_outputs", 0)][1]
    state, error = status[("other_architecture", 0)]
    assert state == "failed" and error.startswith("returned a model of another architecture than the original")
    assert status[("other_outputs", 1)][0] == "failed"
    assert status[("finetune", 1)][0] == "ok"  # the sweep went on
    board = Path("leaderboard.md").read_text()
    assert "| finetune" in board and "| nan_outputs" in board  # no attacks: no crash, cells show "—"
    # a stray file among the records is skipped by name, not fatal
    (Path("results") / "tiny" / "random-10pct" / "notes.json").write_text("[1, 2]")
    code, out, err = cli("leaderboard")
    assert code == 0 and "notes.json" in Path("leaderboard.md").read_text()


def test_a_read_only_results_folder_is_refused_before_any_work(cli, tiny_suite, tmp_path, monkeypatch):
    import errno
    import os

    import bench.files

    # chmod does not stop root (CI runs as root), so the file system's answer is simulated
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).endswith(bench.files.LOCK_NAME):
            raise PermissionError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    Path("results").mkdir()
    monkeypatch.setattr(bench.files.os, "open", read_only)
    code, out, err = cli("run", tiny_suite(), "--quiet")
    assert code == 2 and "is not writable" in err and len(err.strip().splitlines()) == 1
    assert not any(Path("results").iterdir()) and not (tmp_path / "cache").exists()  # no work was done


KEYS = st.sampled_from(["name", "dataset", "model", "recipe", "forget_sets", "seeds", "methods", "attacks",
                        "eval", "epochs", "lr", "fraction", "protocol", "x", ""])
VALUES = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=5),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                      max_leaves=8)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(KEYS, VALUES, max_size=6))
def test_fuzzed_suites_load_or_fail_with_one_user_error(doc, tmp_path):
    import yaml

    from bench.errors import UserError
    from bench.suites import load_suite

    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        load_suite(str(path))
    except UserError as e:
        assert "\n" not in str(e).strip()


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=st.text(max_size=30))
def test_fuzzed_set_overrides_load_or_fail_with_one_user_error(pair):
    from bench.errors import UserError
    from bench.settings import parse_overrides
    from bench.suites import load_suite

    try:
        load_suite("digits", parse_overrides([pair]))
    except UserError as e:
        assert "\n" not in str(e).strip()
