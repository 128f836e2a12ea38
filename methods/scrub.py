"""SCRUB (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023).

The student starts as the original model; a frozen copy of the original is the teacher. In
each of the first `max_steps` epochs a max-step pass over the forget set maximises
KL_T(teacher || student); every epoch a min-step pass over the retain set minimises
gamma * CE + alpha * KL_T. Follows meghdadk/SCRUB: the loop of large_scale_unlearning.ipynb
("SCRUB Forgetting" cells: epochs 1..sgda_epochs, `adjust_learning_rate` first, a max pass
while epoch <= msteps, then a min pass), the losses of thirdparty/repdistiller/helper/loops.py
`train_distill` (maximize: -KL; minimize: gamma * CE + alpha * KL, beta = 0), and the
step decay of helper/util.py `adjust_learning_rate` (lr * 0.1^(number of decay epochs passed)).
Defaults are that notebook's large-scale settings: forget batches of 512 and retain batches
of 256 (its data-loader cell), T = 4, gamma 0.99, alpha 0.001, 2 max steps, 3 epochs, SGD
lr 5e-4, momentum 0.9, weight decay 5e-4, decay 0.1 at epochs 3, 5 and 9.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, int_range, log_range, param, register_method
from bench.train import make_optimizer, run_epochs
from methods._common import kl_distill


@dataclass(frozen=True)
class ScrubConfig:
    temperature: float = param(4.0, gt=0)
    alpha: float = param(0.001, ge=0, search=log_range(1e-3, 1.0))  # weight of the KL term on retain
    gamma: float = param(0.99, ge=0)  # weight of the CE term on retain
    max_steps: int = param(2, ge=0, search=int_range(1, 5))  # epochs with a forget (max) pass
    epochs: int = param(3, ge=1, search=int_range(1, 10))
    lr: float = param(5e-4, gt=0, search=log_range(1e-4, 0.3))
    lr_decay_epochs: tuple[int, ...] = param((3, 5, 9), ge=1)
    lr_decay_rate: float = param(0.1, gt=0, le=1)
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(5e-4, ge=0)
    forget_batch_size: int = param(512, ge=1)
    retain_batch_size: int = param(256, ge=1)


def decayed_lr(cfg: ScrubConfig, epoch: int) -> float:
    """The lr of (1-based) `epoch`: decayed once per decay epoch strictly before it."""
    return cfg.lr * cfg.lr_decay_rate ** sum(epoch > e for e in cfg.lr_decay_epochs)


@register_method("scrub", config=ScrubConfig)
def scrub(model, data: UnlearnData, cfg: ScrubConfig, ctx: RunContext):
    """Student-teacher: max KL to the original on forget, min CE + KL on retain (Kurmanji et al.)."""
    teacher = ctx.frozen_copy(model)
    optimizer = make_optimizer(model.parameters(), "sgd", cfg.lr, cfg.momentum, cfg.weight_decay)
    epoch = [0]

    def batches():
        epoch[0] += 1
        for group in optimizer.param_groups:
            group["lr"] = decayed_lr(cfg, epoch[0])
        if epoch[0] <= cfg.max_steps:
            yield from (("max", b) for b in ctx.batches(data.forget, cfg.forget_batch_size))
        yield from (("min", b) for b in ctx.batches(data.retain, cfg.retain_batch_size))

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
