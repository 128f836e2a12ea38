"""Pieces shared by method files: the SGD-over-epochs loop, distillation KL, parameter blocks,
masks and per-parameter importance. Method files stay short by calling these."""

from __future__ import annotations

import math
from itertools import cycle, islice

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.api import RunContext
from bench.data import Split
from bench.train import cosine_schedule, make_optimizer, run_epochs


def minimise(model, cfg, ctx: RunContext, batches, loss, *, params=None, steps_per_epoch=None,
             after_step=None, epochs=None):
    """SGD (cfg.lr, cfg.momentum, cfg.weight_decay) for cfg.epochs over `batches()`, minimising `loss`.

    With `steps_per_epoch` the learning rate follows a cosine decay to 0 over all steps.
    """
    params = list(model.parameters()) if params is None else list(params)
    epochs = cfg.epochs if epochs is None else epochs
    optimizer = make_optimizer(params, "sgd", cfg.lr, cfg.momentum, cfg.weight_decay)
    scheduler = cosine_schedule(optimizer, epochs * steps_per_epoch) if steps_per_epoch else None
    return run_epochs(model, optimizer, epochs, batches, loss, ctx, scheduler, after_step)


def steps(split: Split, batch_size: int) -> int:
    return math.ceil(len(split) / batch_size)


def paired_batches(ctx: RunContext, main: Split, other: Split, batch_size: int):
    """Batches of `main` zipped with batches of `other`, which is cycled if it is shorter."""
    main_batches = list(ctx.batches(main, batch_size))
    other_batches = cycle(list(ctx.batches(other, batch_size)))
    return zip(main_batches, islice(other_batches, len(main_batches)))


def kl_distill(student_logits, teacher_logits, temperature: float) -> torch.Tensor:
    """KL(teacher_T || student_T) * T^2, averaged over the batch (Hinton et al.; SCRUB's DistillKL)."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    teacher = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_student, teacher, reduction="batchmean") * temperature**2


def random_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Uniformly random labels (the true label is allowed), drawn from the run's generator."""
    return torch.randint(0, num_classes, y.shape, generator=generator).to(y.device)


LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def last_layers(model: nn.Module, k: int) -> list[nn.Module]:
    """The modules of the last k layers (CF-k / EU-k), counting Conv/Linear layers as Goel et al. do.

    Follows shash42/Evaluating-Inexact-Unlearning, src/methods.py, `getRetrainLayers` and
    `resetFinalResnet`: walk the modules that own parameters from the output backwards, taking
    each one, and stop after the k-th Conv/Linear; normalisation layers after it come along.
    (The code lists Conv2d, BatchNorm2d and Linear; here any module owning parameters counts
    as a companion, so other norm layers are not silently left frozen.)
    """
    owners = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    if not 1 <= k <= sum(isinstance(m, LAYER_TYPES) for m in owners):
        raise ValueError(f"k={k}, but the model has {sum(isinstance(m, LAYER_TYPES) for m in owners)} "
                         "Conv/Linear layers")
    chosen, counted = [], 0
    for m in reversed(owners):
        chosen.append(m)
        counted += isinstance(m, LAYER_TYPES)
        if counted == k:
            break
    return chosen[::-1]


def grad_sum(model: nn.Module, batches, loss_fn, square: bool) -> dict[str, torch.Tensor]:
    """Per parameter, the sum over batches of the gradient of the mean batch loss (or its square)."""
    model.eval()
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss_fn(batch).backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                total[n] += p.grad.detach() ** 2 if square else p.grad.detach()
    model.zero_grad(set_to_none=True)
    return total


def importance(model, ctx: RunContext, split: Split, batch_size: int) -> dict[str, torch.Tensor]:
    """Diagonal Fisher-style importance: mean over batches of the squared gradient of CE (SSD)."""
    batches = list(ctx.batches(split, batch_size, shuffle=False, augment=False))
    total = grad_sum(model, batches, lambda b: F.cross_entropy(model(b[0]), b[1]), square=True)
    return {n: t / len(batches) for n, t in total.items()}


def top_fraction_mask(scores: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """True for the `fraction` of all entries with the largest scores, ranked across all tensors."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    k = max(1, int(round(fraction * flat.numel())))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    chosen[torch.topk(flat, k, sorted=False).indices] = True  # exactly k, ties broken by topk
    masks, start = {}, 0
    for n, s in scores.items():
        masks[n] = chosen[start : start + s.numel()].view_as(s)
        start += s.numel()
    return masks
