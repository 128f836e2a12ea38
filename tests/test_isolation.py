"""A method call changes nothing but its return value: routes a plugin can take to poison later
runs (issue 18, section 1) end in a `failed` record naming the cause, and later records are the
ones a run without the offending plugin makes."""

from pathlib import Path


from bench.store import load_records
from conftest import TINY_SUITE

POISON = '''
import os
import torch
from bench.api import register_method

def _make(name, act):
    def method(model, data, cfg, ctx):
        """Poisons a later run."""
        act(ctx)
        return model
    method.__name__ = name
    register_method(name)(method)

_make("shifts_batches", lambda ctx: ctx.batcher.mean.add_(0.5))
_make("float64", lambda ctx: torch.set_default_dtype(torch.float64))
_make("no_grad", lambda ctx: torch.set_grad_enabled(False))
_make("threads", lambda ctx: torch.set_num_threads(2))
_make("chdir", lambda ctx: os.chdir("/"))
_make("exits", lambda ctx: exit(3))
'''
ROUTES = {"float64": "torch default dtype torch.float32 -> torch.float64",
          "no_grad": "torch gradient mode True -> False", "threads": "torch thread count 1 -> 2",
          "chdir": "working directory", "exits": "called exit(3)"}


def _suite(tiny_suite, methods):
    listed = "".join(f"  {m}: {{}}\n" for m in methods)
    return tiny_suite(TINY_SUITE.replace("  retrain: {}\n", "  retrain: {}\n" + listed), f"s{len(methods)}.yaml")


def test_poisoning_routes_fail_their_own_run_and_leave_later_runs_alone(cli, tiny_suite, tmp_path, forget_plugins):
    plugin = tmp_path / "poison.py"
    plugin.write_text(POISON)
    args = ("--quiet", "--seeds", "0", "--no-leaderboard", "--plugin", plugin)
    assert cli("run", _suite(tiny_suite, []), *args, "--results", "clean")[0] == 0
    code, _, err = cli("run", _suite(tiny_suite, ["shifts_batches", *ROUTES]), *args, "--results", "poisoned")
    assert code == 0, err
    records = {r["method"]: r for r in load_records(Path("poisoned"))}
    for method, reason in ROUTES.items():
        assert records[method]["status"] == "failed" and reason in records[method]["error"], records[method]
    clean = {r["method"]: r for r in load_records(Path("clean"))}
    for method in ("original", "retrain", "finetune", "gradient_ascent"):
        assert records[method]["status"] == "ok"
        assert records[method]["metrics"] == clean[method]["metrics"], method  # untouched by the poison
        assert records[method]["env"]["threads"] == 1
    assert not list(Path("/").glob("poisoned"))  # no later output moved by the chdir


def test_a_method_file_that_changes_global_state_on_import_is_refused(cli, tiny_suite, tmp_path, forget_plugins):
    import torch

    plugin = tmp_path / "at_import.py"
    plugin.write_text("import torch\ntorch.set_default_dtype(torch.float64)\n")
    code, _, err = cli("run", tiny_suite(), "--quiet", "--plugin", plugin, "--results", "r")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "changed global state on import (torch default dtype torch.float32 -> torch.float64)" in err
    assert torch.get_default_dtype() == torch.float32 and not Path("r").exists()
