"""FLOP counts: the per-pass count of `bench.flops` equals a whole-call `FlopCounterMode` count.

Every registered method is called twice on the same tiny digits problem with the same seed: once
through `call_method` (hooks, each distinct pass measured once) and once inside
`torch.utils.flop_counter.FlopCounterMode`, which sees every operator of the call.
"""

import copy

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from bench.checks import fast_config, problem
from bench.execute import call_method
from bench.flops import count_flops
from bench.methods_loader import method_registry


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return problem(tmp_path_factory.mktemp("flops"))


# A whole-call FlopCounterMode is slow (Python per operator): the default run checks two methods
# (one that trains, one that only takes gradients), `pytest -m slow` every other one.
FAST = {"finetune", "ssd"}
METHODS = [m if m in FAST else pytest.param(m, marks=pytest.mark.slow) for m in method_registry().names()]


@pytest.mark.parametrize("name", METHODS)
def test_counted_flops_equal_a_whole_call_flop_counter(digits, name):
    entry = method_registry().get(name)
    config = fast_config(entry)
    _, cost, status, error = call_method(entry, digits.original, digits.data.private_copy(), config,
                                         digits.ws.context(3, name))
    assert status == "ok", error
    with FlopCounterMode(display=False) as whole:
        entry.fn(copy.deepcopy(digits.original),
                 digits.data.private_copy(), config, digits.ws.context(3, name))
    assert cost["flops"] == whole.get_total_flops() > 0


def test_passes_count_backward_only_where_gradients_flow():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.randn(5, 8)
    with count_flops() as count:
        net(x).sum().backward()  # forward + backward
        with torch.no_grad():
            net(x)  # forward only
        net[0].requires_grad_(False)
        net(x).sum().backward()  # backward skips the first layer's weight gradient
    with FlopCounterMode(display=False) as whole:
        net[0].requires_grad_(True)
        net(x).sum().backward()
        with torch.no_grad():
            net(x)
        net[0].requires_grad_(False)
        net(x).sum().backward()
    assert count.total() == whole.get_total_flops()
    first, second = 2 * 5 * 8 * 16, 2 * 5 * 16 * 4  # multiply-adds of one layer's product, x 2
    backward_all = first + second + second  # both weight gradients and the gradient into layer 2
    backward_frozen = second  # layer 2's weight gradient only: nothing below needs one
    assert count.total() == 3 * (first + second) + backward_all + backward_frozen
