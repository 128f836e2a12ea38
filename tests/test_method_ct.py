"""Convolution Transpose (methods/ct.py): the kernel transpose, its per-epoch cosine, and that a
run starts from the transposed network."""

import copy
import dataclasses

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.checks import TINY_SUITE, problem
from bench.methods_loader import method_registry
from methods.ct import CTConfig, epoch_cosine, transpose_kernels


def test_square_conv_kernels_are_transposed_and_nothing_else_changes():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 2, bias=False), nn.Conv2d(2, 2, (1, 3)), nn.Flatten(), nn.LazyLinear(3))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]).expand(2, 1, 2, 2) * torch.tensor([1.0, -1.0])
                            .view(2, 1, 1, 1))
    x = torch.randn(1, 1, 5, 5)
    net(x)  # materialise the lazy layer
    before = copy.deepcopy(net.state_dict())
    assert transpose_kernels(net) == 1
    assert torch.equal(net[0].weight[0, 0], torch.tensor([[1.0, 3.0], [2.0, 4.0]]))  # worked by hand
    assert torch.equal(net[0].weight[1, 0], -torch.tensor([[1.0, 3.0], [2.0, 4.0]]))
    for name in before:
        if name != "0.weight":  # the (1, 3) kernel, its bias and the Linear layer stay as they were
            assert torch.equal(before[name], net.state_dict()[name])
    # the transposed kernel sees the transposed image: conv(x^T; W^T) = conv(x; W)^T
    conv = F.conv2d(x, before["0.weight"])
    assert torch.allclose(F.conv2d(x.transpose(2, 3), net[0].weight), conv.transpose(2, 3), atol=1e-6)


def test_lr_is_cosine_annealed_once_per_epoch_like_the_port():
    factor = epoch_cosine(3, 4)
    assert [factor(s) for s in range(12)] == pytest.approx([1.0] * 4 + [0.75] * 4 + [0.25] * 4)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-3)
    port = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)  # kgltop5.py:100, stepped per epoch
    for epoch in range(3):
        assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * factor(4 * epoch + 3))
        opt.step()
        port.step()


CNN_SUITE = TINY_SUITE.replace("model: mlp", "model: cnn-small").replace("epochs: 3", "epochs: 1")


def test_a_run_starts_from_the_transposed_network(tmp_path):
    """With a vanishing lr the result is the original with every conv kernel transposed, the
    rest untouched; with the default lr it moves on from there."""
    digits = problem(tmp_path, CNN_SUITE)
    entry = method_registry().get("ct")
    expected = copy.deepcopy(digits.original)
    assert transpose_kernels(expected) == 2  # cnn-small's two 3x3 convs
    cfg = dataclasses.replace(CTConfig(), epochs=1, lr=1e-12, weight_decay=0.0)
    out = entry.fn(copy.deepcopy(digits.original), digits.data.private_copy(), cfg, digits.ws.context(0, "ct"))
    for (name, got), want in zip(out.state_dict().items(), expected.state_dict().values()):
        assert torch.allclose(got.float(), want.float(), atol=1e-8), name
    trained = entry.fn(copy.deepcopy(digits.original), digits.data.private_copy(),
                       dataclasses.replace(CTConfig(), epochs=1), digits.ws.context(0, "ct"))
    assert not torch.allclose(trained.state_dict()["0.weight"], expected.state_dict()["0.weight"])
