"""Convolution Transpose (CT): 5th place of the NeurIPS 2023 Machine Unlearning Challenge (Kaggle),
as ported and named "CT" in DeepUnlearn (Cadet et al., "Deep Unlearn: Benchmarking Machine
Unlearning for Image Classification", arXiv 2410.01276, 2024), which reports CT and MSG as the
consistently best methods.

The method never looks at the forget set. It transposes the spatial axes of every Conv2d kernel
(weight[o, i, h, w] -> weight[o, i, w, h]), which scrambles the features the network learnt while
keeping each kernel's weight statistics, then fine-tunes the whole network on the retain set with
cross-entropy: SGD (lr 1e-3, momentum 0.9, weight decay 5e-4), batch 64, 3 epochs, cosine
annealing of the lr stepped once per epoch (torch CosineAnnealingLR, T_max = epochs, eta_min 0).

Follows xcadet/deepunlearn, munl/unlearning/kgltop5.py: the defaults ORIGINAL_* (lines 46-50,
119-125, 135-142), the unlearn loop (lines 77-116: `rotate_weight` 85-91, criterion/optimizer/
scheduler 96-100, the epoch loop 101-113, eval 115). Retain batches are shuffled and not augmented:
its loaders are munl/settings.py `default_loaders` (lines 101-108, "retain": test transform,
shuffle True; the unlearner's own `DefaultKGLTop5Config.loaders`, kgltop5.py:142, built in
munl/datasets/get_dataset.py:216-245). Search spaces are the port's
own Optuna ranges: KGLTop5.HYPER_PARAMETERS = munl/settings.py HYPER_PARAMETERS (lines 222-228)
with the suggestors of lines 156-181 (lr and weight decay log-uniform 1e-5..1e-1, momentum fixed at
0.9, batch size one of 64/128/256, epochs 1..N from munl/hpsearch/suggestor.py:50-58).
The original Kaggle notebook is not cited by the port and was not found; the port is followed.

Deliberate deviations:
- Epoch search 1..10: the port's upper bound is 20% of the dataset's training epochs
  (suggestor.py:50-58: 10 for MNIST/FashionMNIST's 50, 37 for CIFAR's 182); one fixed space is
  needed here, and 10 is 20% of the digits suite's 50 epochs (cifar10-cpu's 12 would give 3).
- Kernels that are not square (kh != kw) are left as they are: the port's swapaxes would change
  the parameter's shape (and the model's architecture). The port's models only have square kernels.
- The transpose is written in place into the existing parameters (the port wraps the transposed
  view in a new nn.Parameter before building the optimiser); the resulting weights are identical.
- The per-epoch cosine is a per-batch LambdaLR that is constant within an epoch (its value in
  epoch e is lr * (1 + cos(pi * e / epochs)) / 2, CosineAnnealingLR's closed form), so that the
  harness loop (run_epochs) can drive it.
- The port's prints, and its unused `vision_confuser` and `CustomCrossEntropyLoss` (dead code in
  kgltop5.py, never called), are left out.
On a model without Conv2d layers (the digits MLP) the transpose does nothing and CT is plain
fine-tuning on the retain set with the port's settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.api import (RunContext, UnlearnData, choice, int_range, log_range, make_optimizer, param,
                       register_method, run_epochs)
from methods._common import steps


@dataclass(frozen=True)
class CTConfig:
    epochs: int = param(3, ge=1, search=int_range(1, 10))  # ORIGINAL_NUM_EPOCHS
    lr: float = param(1e-3, gt=0, search=log_range(1e-5, 1e-1))  # ORIGINAL_LR
    momentum: float = param(0.9, ge=0, lt=1)  # ORIGINAL_MOMENTUM; fixed in the port's search
    weight_decay: float = param(5e-4, ge=0, search=log_range(1e-5, 1e-1))  # ORIGINAL_WEIGHT_DECAY
    batch_size: int = param(64, ge=1, search=choice(64, 128, 256))  # ORIGINAL_BATCH_SIZE
    augment: bool = param(False, choices=(False, True))  # the port's retain loader: test transform


def transpose_kernels(model: nn.Module) -> int:
    """Swap the two spatial axes of every square Conv2d kernel in place (kgltop5.py `rotate_weight`).

    Returns how many Conv2d weights were transposed.
    """
    done = 0
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module.weight.shape[2] == module.weight.shape[3]:
                module.weight.copy_(module.weight.transpose(2, 3).clone())
                done += 1
    return done


def epoch_cosine(epochs: int, steps_per_epoch: int):
    """The lr factor at a batch step: CosineAnnealingLR(T_max=epochs) stepped once per epoch."""
    return lambda step: 0.5 * (1 + math.cos(math.pi * (step // steps_per_epoch) / epochs))


@register_method("ct", config=CTConfig, protocols=("random",))
def ct(model, data: UnlearnData, cfg: CTConfig, ctx: RunContext):
    """Transpose every conv kernel, then fine-tune on retain (Convolution Transpose; NeurIPS'23 5th)."""
    transpose_kernels(model)
    optimizer = make_optimizer(model.parameters(), "sgd", cfg.lr, cfg.momentum, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, epoch_cosine(cfg.epochs, steps(data.retain, cfg.batch_size)))
    run_epochs(model, optimizer, cfg.epochs,
               lambda: ctx.batches(data.retain, cfg.batch_size, augment=cfg.augment),
               lambda b: F.cross_entropy(model(b[0]), b[1]), ctx, scheduler)
    return model.eval()
