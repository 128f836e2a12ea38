"""The docs hold: `docs/adding-a-method.md`'s commands, followed word for word in a fresh copy of
this checkout, add a method, run it and pass its contract, without touching the published results."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.suites import load_suite

ROOT = Path(__file__).resolve().parent.parent


def fresh_checkout(dest: Path) -> Path:
    """The working tree as a fresh clone would have it: tracked and not-ignored files, committed."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fresh"]):
        subprocess.run([*git, *args], cwd=dest, check=True, capture_output=True)
    return dest


def sh_block(doc: Path) -> list[str]:
    (block,) = re.findall(r"```sh\n(.*?)```", doc.read_text(), re.S)
    return [line for line in block.splitlines() if line.strip()]


def test_the_doc_has_one_runnable_block():
    lines = sh_block(ROOT / "docs" / "adding-a-method.md")
    assert lines[0].startswith("cp methods/_template.py") and any("unlearn-bench run" in line for line in lines)


@pytest.mark.slow
def test_adding_a_method_works_as_written_in_a_fresh_checkout(tmp_path):
    clone = fresh_checkout(tmp_path / "clone")
    shim = tmp_path / "bin"
    shim.mkdir()
    # `unlearn-bench` as the clone's own code (the installed entry point is this checkout's)
    (shim / "unlearn-bench").write_text(f"#!/bin/sh\nexec {sys.executable} -m bench \"$@\"\n")
    (shim / "unlearn-bench").chmod(0o755)
    (shim / "python").write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    (shim / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(clone),
           "UNLEARN_BENCH_CACHE": str(tmp_path / "cache")}
    published = sorted(p.relative_to(clone) for p in (clone / "results").rglob("*") if p.is_file())
    outputs = []
    for line in sh_block(clone / "docs" / "adding-a-method.md"):
        done = subprocess.run(["bash", "-c", line], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (line, done.stderr[-2000:])
        outputs.append(done)
    assert "my_method" in outputs[2].stdout
    run = next(o for line, o in zip(sh_block(clone / "docs" / "adding-a-method.md"), outputs) if "run digits" in line)
    assert "local-results" in run.stderr and "commit" in run.stderr
    digits = load_suite("digits")
    mine = list((clone / "local-results" / "results" / "digits").glob("*/my_method-*.json"))
    assert len(mine) == len(digits.forget_sets) * len(digits.seeds)  # every forget set and seed
    sets = list((clone / "local-results" / "results" / "digits").glob("*/forget-quality/my_method-*.json"))
    assert len(sets) == len(digits.forget_sets)  # and its forget-quality set of each
    assert sorted(p.relative_to(clone) for p in (clone / "results").rglob("*") if p.is_file()) == published
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    assert status.split() == ["??", "methods/my_method.py"]  # nothing else changed; local-results/ is ignored
