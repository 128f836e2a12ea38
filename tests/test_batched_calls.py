"""`call_method_many`: several calls of one method in one process give what one call per process
gives, call by call; a call that fails ends the batch and the rest run fresh; a call that kills
the process is the one blamed."""

import pytest
import torch

from bench.execute import call_method, call_method_many, rng_states
from bench.methods_loader import load_plugin, method_registry
from bench.session import open_session
from bench.worker import RunRequest

ODD = '''
import os
from bench.api import register_method


@register_method("odd_seeds")
def odd_seeds(model, data, cfg, ctx):
    """Fails on odd seeds, kills its process on seed 5, else one SGD step on the retain set."""
    if ctx.seed == 5:
        os._exit(3)
    if ctx.seed % 2:
        raise RuntimeError(f"odd seed {ctx.seed}")
    import torch
    import torch.nn.functional as F
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(ctx.batcher.to_float(data.retain.x[:32])), data.retain.y[:32]).backward()
    optimizer.step()
    return model
'''


def _workspace(tiny_suite):
    suite = tiny_suite()
    s = open_session(RunRequest(str(suite), results_dir="results"), quiet=True, tuned="off")
    return s.ws, s.plan


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["finetune", "retrain"])
def test_a_batch_gives_what_one_process_per_call_gives(tiny_suite, method):
    ws, plan = _workspace(tiny_suite)
    config = next(r.config for r in plan.runs if r.method == method)
    data = ws.unlearn_data(plan.runs[0].forget_set)
    entry = method_registry().get(method)
    alone, calls = [], []
    for seed in (0, 1):  # two originals, two seeds: models and seeds differ by call
        original = ws.original(seed)[0]
        alone.append(call_method(entry, original, data, config, ws.context(100 + seed, "alone")))
        calls.append((original, data, ws.context(100 + seed, "batch"), rng_states()))
    batch = call_method_many(entry, config, calls)
    assert [b[2] for b in batch] == ["ok", "ok"]
    for (m1, c1, *_), (m2, c2, *_) in zip(alone, batch):
        assert all(torch.equal(a, b) for a, b in zip(_state(m1).values(), _state(m2).values()))
        assert c1["flops"] == c2["flops"] > 0


def test_a_failed_call_ends_the_batch_and_a_killing_call_is_the_one_blamed(tiny_suite, tmp_path, forget_plugins):
    (tmp_path / "odd.py").write_text(ODD)
    load_plugin(tmp_path / "odd.py")
    ws, plan = _workspace(tiny_suite)
    data = ws.unlearn_data(plan.runs[0].forget_set)
    entry, original = method_registry().get("odd_seeds"), ws.original(0)[0]
    seeds = [2, 3, 4, 5, 6]
    calls = [(original, data, ws.context(seed, "batch"), rng_states()) for seed in seeds]
    batch = call_method_many(entry, None, calls)
    assert [status for _, _, status, _ in batch] == ["ok", "failed", "ok", "failed", "ok"]
    assert batch[1][3] == "RuntimeError: odd seed 3" and "exit code 3" in batch[3][3]
    alone = call_method(entry, original, data, None, ws.context(6, "alone"))[0]
    assert all(torch.equal(a, b) for a, b in zip(_state(alone).values(), _state(batch[4][0]).values()))
