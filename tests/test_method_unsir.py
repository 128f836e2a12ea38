"""UNSIR's pieces (methods/unsir.py) against the official notebook's computations."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.api import RunContext
from bench.data import Batcher, Split
from bench.policy import CPU
from bench.spec import Recipe
from methods.unsir import UnsirConfig, error_maximising_noise, first_per_class, impair_batches, noise_loss


def context(seed: int = 0) -> RunContext:
    return RunContext(CPU, seed, torch.Generator().manual_seed(seed), Recipe(epochs=1),
                      Batcher(None, None, 1, CPU), new_model=lambda: None)


def split(labels) -> Split:
    n = len(labels)
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return Split(x, torch.tensor(labels), np.arange(100, 100 + n))


def test_noise_loss_is_minus_ce_plus_lambda_times_the_mean_squared_norm():
    logits = torch.zeros(2, 4)  # uniform: CE = log 4 whatever the label
    noise = torch.stack([torch.ones(1, 2, 2), torch.full((1, 2, 2), 2.0)])  # squared norms 4 and 16
    assert noise_loss(logits, noise, 3, 0.1).item() == pytest.approx(-math.log(4) + 0.1 * 10)
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    ce = F.cross_entropy(logits, torch.tensor([3, 3])).item()
    assert noise_loss(logits, noise, 3, 0.0).item() == pytest.approx(-ce)


def test_the_retain_subset_is_the_first_images_of_each_class():
    s = split([2, 0, 2, 1, 0, 2, 1, 0])
    sub = first_per_class(s, 2)
    assert sub.index.tolist() == [101, 104, 103, 106, 100, 102]  # classes 0, 1, 2; first two of each
    assert sub.y.tolist() == [0, 0, 1, 1, 2, 2]
    assert len(first_per_class(s, 10)) == len(s)  # fewer than n: all of them


def test_the_noise_maximises_the_forget_class_loss_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = UnsirConfig(noise_batch_size=16, noise_epochs=2, noise_steps=5)  # 10 of the 40 steps: fast
    start = torch.randn((16, 1, 2, 2), generator=torch.Generator().manual_seed(0))  # the noise's initial draw
    noise = error_maximising_noise(model, 1, (1, 2, 2), cfg, context(0))
    with torch.no_grad():
        ce = lambda x: F.cross_entropy(model(x), torch.ones(len(x), dtype=torch.long)).item()  # noqa: E731
        assert ce(noise) > ce(start) + 0.5  # the loss of class 1 rose (1.12 -> 1.78)
    assert noise.shape == (16, 1, 2, 2) and not noise.requires_grad
    assert noise.square().flatten(1).sum(1).mean() < start.square().flatten(1).sum(1).mean() * 10  # L2 keeps it bounded
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again


def test_impair_batches_mix_copies_of_the_first_channel_count_noise_images_with_each_retain_image_once():
    # 1-channel images: the notebook's loop bound `batch[0].size(0)` is 1, so each copy holds only
    # the first noise image of each class (-5 and -7), never the later ones (-6, -8)
    noises = {0: torch.tensor([-5.0, -6.0, -6.0]).view(3, 1, 1, 1).expand(3, 1, 2, 2),
              2: torch.tensor([-7.0, -8.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)}
    retain = split([1, 3, 1, 4])
    cfg = UnsirConfig(noise_copies=2, batch_size=4)
    batches = list(impair_batches(noises, retain, cfg, context(0)))
    assert [len(y) for _, y in batches] == [4, 4]  # (1 + 1) * 2 noise + 4 retain = 8 rows
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    is_noise = (x < -1).flatten(1).all(1)
    assert sorted(x[is_noise, 0, 0, 0].tolist()) == [-7.0, -7.0, -5.0, -5.0]
    assert torch.equal(y[is_noise & (x[:, 0, 0, 0] == -5.0)], torch.zeros(2, dtype=torch.long))  # labelled 0
    assert torch.equal(y[is_noise & (x[:, 0, 0, 0] == -7.0)], torch.full((2,), 2))  # labelled 2, not 0
    pixels = sorted((x[~is_noise, 0, 0, 0] * 255).round().long().tolist())
    assert pixels == [0, 1, 2, 3] and sorted(y[~is_noise].tolist()) == [1, 1, 3, 4]
