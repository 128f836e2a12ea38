"""Shared fixtures: a tiny suite on digits that runs in seconds, and an in-process CLI."""

from __future__ import annotations

import textwrap

import pytest

from bench.cli import main
from bench.methods_loader import method_registry

TINY_SUITE = """\
name: tiny
description: digits with an MLP, a few epochs; for tests
dataset: {name: digits, split_seed: 0}
model: mlp
recipe: {epochs: 3, batch_size: 64, lr: 0.05, schedule: cosine}
forget_sets:
  - {protocol: random, fraction: 0.1}
seeds: [0, 1]
methods:
  retrain: {}
  finetune: {epochs: 1, lr: 0.05, batch_size: 64}
  gradient_ascent: {epochs: 1, lr: 1.0e-3, batch_size: 64}
"""


@pytest.fixture
def tiny_suite(tmp_path):
    def write(text: str = TINY_SUITE, name: str = "tiny.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own model/dataset cache and working directory."""
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(capsys):
    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def forget_plugins():
    """Unregister methods that a test's plugins added, so tests stay independent."""
    before = set(method_registry().names())
    yield
    for name in set(method_registry().names()) - before:
        method_registry().unregister(name)
