"""The one training loop. The original model, retrain and every method's optimisation use it.

`run_epochs` runs an optimiser over epochs with a per-batch loss; `train_from_scratch` is
that loop with cross-entropy and the suite's recipe. A non-finite loss raises `Diverged`.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.spec import Recipe
from bench.errors import Diverged


def make_optimizer(params, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer '{name}'")


def cosine_schedule(optimizer, total_steps: int):
    """Cosine decay from the optimiser's lr to 0 over `total_steps` steps (stepped per batch)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )


def check_finite(model: nn.Module) -> None:
    for name, p in model.state_dict().items():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise Diverged(f"weights of '{name}' are no longer finite")


def run_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batches: Callable[[], Iterable],
    loss_fn: Callable[[object], torch.Tensor],
    ctx=None,
    scheduler=None,
    after_step: Callable[[], None] | None = None,
) -> nn.Module:
    """For each epoch, for each batch from `batches()`: minimise `loss_fn(batch)`.

    `after_step` runs after every optimiser step (e.g. to re-apply a weight mask).
    Finiteness is checked once per epoch, so CUDA is not synchronised on every batch.
    """
    model.train()
    autocast = ctx.policy.autocast() if ctx is not None else contextlib.nullcontext()
    for epoch in range(epochs):
        finite = torch.ones((), dtype=torch.bool)
        for batch in batches():
            with autocast:
                loss = loss_fn(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if after_step is not None:
                after_step()
            finite = finite.to(loss.device) & torch.isfinite(loss.detach())
        if not bool(finite):
            raise Diverged(f"loss became NaN or infinite in epoch {epoch + 1}")
        if ctx is not None:
            ctx.progress(epoch + 1, epochs)
    return model


def train_from_scratch(model: nn.Module, split, recipe: Recipe, ctx) -> nn.Module:
    """Train `model` (freshly initialised) on `split` with cross-entropy and the suite's recipe."""
    steps = recipe.epochs * math.ceil(len(split) / recipe.batch_size)
    optimizer = make_optimizer(model.parameters(), recipe.optimizer, recipe.lr, recipe.momentum,
                               recipe.weight_decay)
    scheduler = cosine_schedule(optimizer, steps) if recipe.schedule == "cosine" else None

    def batches():
        return ctx.batcher.batches(split, recipe.batch_size, shuffle=True, augment=recipe.augment,
                                   generator=ctx.generator)

    forward = model
    if ctx.policy.compile:  # the compiled module shares the model's parameters
        # inductor (torch 2.11, H200) rejected a channels_last ResNet with a stride assertion: compile the
        # plain layout (the batches stay channels_last), the variant `unlearn-bench speed` measured
        forward = torch.compile(model.to(memory_format=torch.contiguous_format))

    def loss(batch):
        x, y = batch
        return F.cross_entropy(forward(x), y)

    return run_epochs(model, optimizer, recipe.epochs, batches, loss, ctx, scheduler)
