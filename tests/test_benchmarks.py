"""Speed of the hot paths, with pytest-benchmark. In the default test run benchmarks are
disabled (each body runs once, as a test); measure with:

    pytest tests/test_benchmarks.py -m 'slow or not slow' --benchmark-enable -n 0

(the CIFAR ones are in the slow set; `-n 0` because pytest-benchmark measures nothing in xdist workers)
"""

import numpy as np
import pytest
import torch

from bench.policy import CPU

from bench.data import Batcher, Split, augment_batch
from bench.evaluate import per_example_outputs
from bench.models import build_model


def _cifar_like(n=2048):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return Split(x, torch.randint(0, 10, (n,), generator=g), np.arange(n))


def test_batched_augmentation(benchmark):
    x = _cifar_like(512).x
    out = benchmark(augment_batch, x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape


@pytest.mark.slow  # a few seconds: kept out of the default run's 2 minutes
def test_one_training_epoch_of_the_cifar_cpu_model(benchmark):
    split = _cifar_like()
    model = build_model("cnn-small", 3, 32, 10)
    batcher = Batcher(None, None, 3, CPU)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]

    def epoch():
        losses = []
        for x, y in batcher.batches(split, 128, shuffle=True, generator=torch.Generator().manual_seed(0)):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses

    losses = benchmark(epoch)
    assert len(losses) == len(split) // 128  # every batch of the epoch was a step
    assert np.all(np.isfinite(losses))
    assert all(p.grad is not None for p in model.parameters())
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))  # the steps moved it


@pytest.mark.slow  # a few seconds: kept out of the default run's 2 minutes
def test_evaluation_pass_of_the_cifar_cpu_model(benchmark):
    split = _cifar_like()
    model = build_model("cnn-small", 3, 32, 10)
    out = benchmark(per_example_outputs, model, split, Batcher(None, None, 3, CPU), 1024)
    assert len(out["loss"]) == len(split)
