"""MSG (methods/msg.py) against the hand-worked behaviour of xcadet/deepunlearn kgltop2.py."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from bench.api import UnlearnData
from bench.data import Split
from bench.models import build_model
from methods.msg import MSGConfig, annealing_factor, reinit_layers, reinitialise, snip_gradients


def test_lr_follows_the_ports_linear_annealing_per_epoch():
    # LinearAnnealingLR(warm=(E+1)//2, total=E+1) stepped once per epoch, its step count starting at 1
    assert [annealing_factor(e, 5) for e in range(5)] == pytest.approx([1 / 3, 2 / 3, 1, 2 / 3, 1 / 3])
    assert [annealing_factor(e, 2) for e in range(2)] == pytest.approx([1, 0.5])
    assert [annealing_factor(e, 1) for e in range(1)] == [1]


def test_reinitialise_redraws_the_smallest_gradients_and_damps_the_rest():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 2, 2)  # 8 weights, fan_in 4
    before_w, before_b = conv.weight.detach().clone(), conv.bias.detach().clone()
    conv.weight.grad = torch.tensor([5.0, -0.1, 3.0, 0.2, -4.0, 6.0, -7.0, 8.0]).view(2, 1, 2, 2)
    factor = reinitialise(conv, 0.25, torch.Generator().manual_seed(1))  # round(0.25 * 8) = 2 weights
    smallest = torch.zeros(8, dtype=torch.bool)
    smallest[[1, 3]] = True  # |-0.1| and |0.2|
    smallest = smallest.view(2, 1, 2, 2)
    changed = conv.weight.detach() != before_w
    assert torch.equal(changed, smallest)
    assert torch.equal(factor, torch.where(smallest, 1.0, 0.1))
    # the port builds a fresh Conv2d, so its bias is PyTorch's default draw, U(-1/sqrt(fan_in), +...)
    assert not torch.equal(conv.bias.detach(), before_b) and conv.bias.abs().max() <= 0.5


def test_conv_layers_are_reinitialised_and_linear_layers_only_without_them():
    cnn = build_model("cnn-small", 3, 32, 10)
    assert reinit_layers(cnn) and all(isinstance(m, nn.Conv2d) for m in reinit_layers(cnn))
    mlp = build_model("mlp", 1, 8, 10)
    assert reinit_layers(mlp) == [m for m in mlp.modules() if isinstance(m, nn.Linear)]


def _fake_ctx(seed=0):
    def batches(split, batch_size, shuffle=True, augment=None):
        for i in range(0, len(split), batch_size):
            yield split.x[i:i + batch_size].float().flatten(1) / 255, split.y[i:i + batch_size]
    return SimpleNamespace(generator=torch.Generator().manual_seed(seed), batches=batches)


def test_snip_scores_are_retain_subset_minus_forget_gradients():
    torch.manual_seed(0)
    x, y = torch.randint(0, 256, (16, 1, 2, 2), dtype=torch.uint8), torch.randint(0, 3, (16,))
    same = Split(x, y, np.arange(16))
    net = nn.Linear(4, 3)
    cfg = MSGConfig(batch_size=16, snip_batch_size=16)
    # retain == forget: the subset (as large as the forget set) is all of retain, so the two cancel
    snip_gradients(net, UnlearnData(same, same, same, 3), cfg, _fake_ctx())
    assert net.weight.grad is not None and net.weight.grad.abs().max() < 1e-6
    forget = Split(x[:8], (y[:8] + 1) % 3, np.arange(8))
    snip_gradients(net, UnlearnData(forget, same, same, 3), cfg, _fake_ctx())
    assert net.weight.grad.abs().max() > 1e-3
