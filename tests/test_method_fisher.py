"""Fisher forgetting's pieces (methods/fisher.py) against the official notebook's computations."""

import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.api import RunContext, UnlearnData
from bench.data import Batcher, Split
from bench.policy import CPU
from bench.spec import Recipe
from methods.fisher import FisherConfig, diagonal_fisher, fisher, forgotten_classes, mean_var


def context(seed: int = 0) -> RunContext:
    return RunContext(CPU, seed, torch.Generator().manual_seed(seed), Recipe(epochs=1),
                      Batcher(None, None, 1, CPU), new_model=lambda: None)


def split(labels, offset=0) -> Split:
    n = len(labels)
    g = torch.Generator().manual_seed(offset)
    x = torch.randint(0, 256, (n, 1, 2, 2), generator=g, dtype=torch.uint8)
    return Split(x, torch.tensor(labels), np.arange(offset, offset + n))


def per_image_grads(linear: nn.Linear, x: torch.Tensor):
    """Softmax regression: d CE(x_i, y) / dW = (p_i - e_y) x_i^T and d / db = p_i - e_y.
    Returns the probabilities p (n, k) and the gradients (n, k classes y, k, d) and (n, k, k)."""
    p = F.softmax(linear(x), dim=1).detach()
    k = p.shape[1]
    gb = p[:, None, :] - torch.eye(k)[None]  # [i, y, :] = p_i - e_y
    return p, gb[..., None] * x[:, None, None, :], gb


def test_one_image_batches_give_the_official_fisher_and_signed_batches_are_unbiased():
    torch.manual_seed(0)
    linear = nn.Linear(3, 4)
    x = torch.randn(6, 3)
    p, gw, gb = per_image_grads(linear, x)
    official_w = (p[..., None, None] * gw**2).sum(1).mean(0)  # mean_i sum_y p_iy g_iy^2
    official_b = (p[..., None] * gb**2).sum(1).mean(0)
    gen = torch.Generator().manual_seed(0)
    got_w, got_b = diagonal_fisher(linear, [(x[i:i + 1], None) for i in range(6)], gen)
    assert torch.allclose(got_w, official_w, rtol=1e-5, atol=1e-8)
    assert torch.allclose(got_b, official_b, rtol=1e-5, atol=1e-8)
    # One batch of 3: per class y, (sum_i s_iy sqrt(p_iy) g_iy)^2 with the signs s drawn in order...
    state = gen.get_state()
    got_w, _ = diagonal_fisher(linear, [(x[:3], None)], gen)
    replay = torch.Generator().set_state(state)
    signs = torch.stack([2 * torch.randint(0, 2, (3,), generator=replay) - 1 for _ in range(4)], 1)  # (i, y)

    def signed(s):  # s: (image, class) signs -> the batch's estimate for W
        return ((s * p[:3].sqrt())[..., None, None] * gw[:3]).sum(0).pow(2).sum(0) / 3

    assert torch.allclose(got_w, signed(signs.float()), rtol=1e-4, atol=1e-8)
    # ...whose mean over all sign patterns is the official per-image Fisher: cross terms cancel.
    patterns = torch.tensor([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=torch.float)
    mean = torch.stack([signed(s[:, None].expand(3, 4)) for s in patterns]).mean(0)
    assert torch.allclose(mean, (p[:3, :, None, None] * gw[:3] ** 2).sum(1).mean(0), rtol=1e-5)


def test_mean_and_variance_follow_the_official_get_mean_var():
    alpha = 1e-2
    head = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    f = torch.tensor([[1e-4, 1.0], [0.5, 0.25], [0.0, 0.0]])
    mu, var = mean_var(head, f, alpha, head=True, forgotten=[2])
    # row 0: 1/F = [1e4 -> 1e3 -> 1e2 (classifier clamp), 1]; x alpha = [1, 0.01]; row mean 0.505; x10
    # row 1: [2, 4] x alpha = [0.02, 0.04]; mean 0.03; x10. Row 2 (forgotten): mean 0, variance 1e-4 x10.
    assert torch.allclose(var, torch.tensor([[5.05] * 2, [0.3] * 2, [1e-3] * 2]), rtol=1e-5)
    assert torch.equal(mu, torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]))
    hidden = torch.zeros(1, 2)
    _, var = mean_var(hidden, torch.tensor([[0.0, 1.0]]), alpha, head=False, forgotten=[2])
    assert torch.allclose(var, torch.tensor([[5.005, 5.005]]), rtol=1e-5)  # clamp 1e3, no 10x, no class rows
    _, var = mean_var(torch.zeros(1), torch.tensor([4.0]), alpha, head=False, forgotten=[])
    assert torch.allclose(var, torch.tensor([0.025]), rtol=1e-5)  # a 1-D tensor: 10x


def test_class_forgetting_zeroes_the_class_row_and_the_same_seed_gives_the_same_model():
    retain, forget = split([0, 1, 0, 1, 0, 1], 0), split([2, 2], 10)
    data = UnlearnData(forget, retain, split([0, 1, 2], 20), num_classes=3)
    assert forgotten_classes(data) == [2]
    assert forgotten_classes(UnlearnData(split([0, 1], 30), split([0, 1, 2], 40), retain, 3)) == []
    torch.manual_seed(0)
    original = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        original[1].bias[2] = 5.0
    out = fisher(copy.deepcopy(original), data, FisherConfig(), context(1))
    head, before = out[1], original[1]
    assert head.weight[2].abs().max() < 0.2 and head.bias[2].abs() < 0.2  # N(0, 1e-3): the class is gone
    assert torch.allclose(head.weight[:2], before.weight[:2], atol=0.2)  # others: mu = trained value
    again = fisher(copy.deepcopy(original), data, FisherConfig(), context(1))
    other = fisher(copy.deepcopy(original), data, FisherConfig(), context(2))
    assert all(torch.equal(a, b) for a, b in zip(out.parameters(), again.parameters()))
    assert not torch.equal(out[1].weight, other[1].weight)
