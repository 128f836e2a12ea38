"""SCRUB (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023).

The student starts as the original model; a frozen copy of the original is the teacher. For
the first `max_steps` epochs a max-step pass over the forget set maximises KL_T(teacher ||
student); every epoch a min-step pass over the retain set minimises gamma * CE + alpha * KL_T.
Defaults: T=4, alpha 0.5, gamma 1, 3 max steps, 5 epochs, SGD lr 5e-4.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, register_method
from bench.train import make_optimizer, run_epochs
from methods._common import kl_distill


@dataclass(frozen=True)
class ScrubConfig:
    temperature: float = 4.0
    alpha: float = 0.5  # weight of the KL term on retain
    gamma: float = 1.0  # weight of the CE term on retain
    max_steps: int = 3  # epochs with a forget (max) pass
    epochs: int = 5
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128


@register_method("scrub", config=ScrubConfig)
def scrub(model, data: UnlearnData, cfg: ScrubConfig, ctx: RunContext):
    """Student-teacher: max KL to the original on forget, min CE + KL on retain (Kurmanji et al.)."""
    teacher = ctx.frozen_copy(model)
    optimizer = make_optimizer(model.parameters(), "sgd", cfg.lr, cfg.momentum, cfg.weight_decay)
    epoch = [0]

    def batches():
        epoch[0] += 1
        if epoch[0] <= cfg.max_steps:
            yield from (("max", b) for b in ctx.batches(data.forget, cfg.batch_size))
        yield from (("min", b) for b in ctx.batches(data.retain, cfg.batch_size))

    def loss(tagged):
        kind, (x, y) = tagged
        logits = model(x)
        with torch.no_grad():
            teacher_logits = teacher(x)
        kl = kl_distill(logits, teacher_logits, cfg.temperature)
        if kind == "max":
            return -kl
        return cfg.gamma * F.cross_entropy(logits, y) + cfg.alpha * kl

    return run_epochs(model, optimizer, cfg.epochs, batches, loss, ctx)
