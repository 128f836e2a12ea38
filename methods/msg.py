"""Masked Small Gradients (MSG): 2nd place of the NeurIPS 2023 Machine Unlearning Challenge
(Kaggle), as ported and named "MSG" in DeepUnlearn (Cadet et al., "Deep Unlearn: Benchmarking
Machine Unlearning for Image Classification", arXiv 2410.01276, 2024), which reports MSG and CT
as the consistently best methods.

SNIP-style scores: the gradients of the summed mean-batch CE on a random retain subset as large
as the forget set (batches of 64) minus that on the forget set. In every Conv2d the `init_rate`
fraction of weights with the smallest |score| is re-drawn (Kaiming normal, fan_out, relu), and
while fine-tuning the gradient of the kept weights is scaled by 0.1 (the re-drawn ones get all of
it). Then the whole network is fine-tuned on the retain set with CE: SGD (lr 1e-3, momentum 0.9,
weight decay 5e-4), batch 64, 5 epochs, with a per-epoch triangular lr (LinearAnnealingLR: up
linearly to lr over the first (epochs+1)//2 epochs, then down; 5 epochs: lr x 1/3, 2/3, 1, 2/3, 1/3).

Follows xcadet/deepunlearn, munl/unlearning/kgltop2.py: the gradient mask `Masker` and
`MaskConv2d` (lines 17-60), `re_init_model_snip_ver2_little_grad` (107-145), `get_grads_for_snip`
(148-170), `LinearAnnealingLR` (173-192), the defaults ORIGINAL_* (196-201, 272-290) and
`unlearn` (223-269). The port's model arrives in train mode (built and loaded, never .eval()'d:
pipeline/step_5_unlearn.py, munl/models/__init__.py get_loaded_model), so the scoring passes
run in train mode, as here. Loaders are shuffled and not augmented (munl/settings.py
`default_loaders`, lines 101-108: the unlearner's own `DefaultKGLTop2Config.loaders`, kgltop2.py:290,
built in munl/datasets/get_dataset.py:216-245). As in the port,
each re-initialised layer is a freshly built one whose bias is never copied: its bias is re-drawn
with PyTorch's default (U(+-1/sqrt(fan_in))); ResNet-18's convs have none, cnn-small's do.
Search spaces are the port's own Optuna ranges: KGLTop2.HYPER_PARAMETERS (kgltop2.py:203-206) =
init_rate uniform 0..1 (munl/settings.py:188-189) + settings.py HYPER_PARAMETERS (222-228) with
the suggestors of lines 156-181 (lr and weight decay log-uniform 1e-5..1e-1, momentum fixed at
0.9, batch size one of 64/128/256, epochs 1..N from munl/hpsearch/suggestor.py:50-58).
The original Kaggle notebook is not cited by the port and was not found; the port is followed.

Deliberate deviations:
- On a model without Conv layers (the digits MLP) the Linear layers take their place; otherwise
  MSG would be plain fine-tuning there. On any CNN only the Conv layers are touched, as in the
  port (which only looks at nn.Conv2d; Conv1d/Conv3d count here too).
- The gradient mask is a hook on the existing weight, removed before returning, instead of
  swapping in MaskConv2d modules (the harness needs the original architecture back); the
  gradients, weight decay and momentum are the same (the port masks only the loss gradient too).
- Epoch search 1..10: the port's upper bound is 20% of the dataset's training epochs (10 for
  MNIST's 50, 37 for CIFAR's 182); a fixed space is needed here, and 10 is 20% of digits' 50.
- Random draws (retain subset, shuffles, new weights) come from the run's generator, not the
  global RNG; the port's prints are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.api import (RunContext, UnlearnData, choice, float_range, int_range, log_range, make_optimizer,
                       param, register_method, run_epochs)

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
KEPT_GRAD_SCALE = 0.1  # kgltop2.py:124, the gradient factor of the weights that are not re-drawn


@dataclass(frozen=True)
class MSGConfig:
    init_rate: float = param(0.3, ge=0, le=1, search=float_range(0.0, 1.0))  # ORIGINAL_INIT_RATE
    epochs: int = param(5, ge=1, search=int_range(1, 10))  # ORIGINAL_NUM_EPOCHS
    lr: float = param(1e-3, gt=0, search=log_range(1e-5, 1e-1))  # ORIGINAL_LR
    momentum: float = param(0.9, ge=0, lt=1)  # ORIGINAL_MOMENTUM; fixed in the port's search
    weight_decay: float = param(5e-4, ge=0, search=log_range(1e-5, 1e-1))  # ORIGINAL_WEIGHT_DECAY
    batch_size: int = param(64, ge=1, search=choice(64, 128, 256))  # ORIGINAL_BATCH_SIZE
    snip_batch_size: int = param(64, ge=1)  # the retain subset's loader, hard-coded (kgltop2.py:153)
    augment: bool = param(False, choices=(False, True))  # the port's loaders: test transform


def reinit_layers(model: nn.Module) -> list[nn.Module]:
    """The layers MSG re-initialises: every Conv layer, or every Linear layer if there is none."""
    convs = [m for m in model.modules() if isinstance(m, CONV_TYPES)]
    return convs or [m for m in model.modules() if isinstance(m, nn.Linear)]


def snip_gradients(model: nn.Module, data: UnlearnData, cfg: MSGConfig, ctx: RunContext) -> None:
    """Leave in .grad the sum of mean-batch CE gradients on a random retain subset as large as the
    forget set minus the same sum on the forget set (kgltop2.py `get_grads_for_snip`)."""
    chosen = torch.randperm(len(data.retain), generator=ctx.generator)[: len(data.forget)]
    subset = data.retain.subset(chosen.numpy())
    model.train()
    model.zero_grad(set_to_none=True)
    for x, y in ctx.batches(subset, cfg.snip_batch_size, augment=cfg.augment):
        F.cross_entropy(model(x), y).backward()
    for x, y in ctx.batches(data.forget, cfg.batch_size, augment=cfg.augment):
        (-F.cross_entropy(model(x), y)).backward()


@torch.no_grad()
def reinitialise(layer: nn.Module, init_rate: float, generator: torch.Generator) -> torch.Tensor:
    """Re-draw the `init_rate` fraction of `layer.weight` with the smallest |grad| (Kaiming normal,
    fan_out, relu) and its bias (PyTorch's default); return the weight's gradient factor: 1 where
    re-drawn, 0.1 elsewhere (kgltop2.py `re_init_model_snip_ver2_little_grad`)."""
    w = layer.weight
    score = w.grad.abs().flatten() if w.grad is not None else torch.zeros(w.numel(), device=w.device)
    picked = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
    picked[torch.topk(-score, k=round(init_rate * w.numel())).indices] = True
    picked = picked.view(w.shape)
    fresh = nn.init.kaiming_normal_(torch.empty(w.shape), mode="fan_out", nonlinearity="relu",
                                    generator=generator)
    w.copy_(torch.where(picked, fresh.to(w), w))
    if layer.bias is not None:
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(w)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1) * bound)
    factor = torch.full_like(w, KEPT_GRAD_SCALE)
    factor[picked] = 1.0
    return factor


def annealing_factor(epoch: int, epochs: int) -> float:
    """The lr factor of 0-based `epoch` under LinearAnnealingLR(warm=(epochs+1)//2, total=epochs+1)
    stepped once per epoch (kgltop2.py:173-192, 247-251, 267): its step count is epoch + 1."""
    count, warm, total = epoch + 1, (epochs + 1) // 2, epochs + 1
    return count / warm if count <= warm else (total - count) / (total - warm)


@register_method("msg", config=MSGConfig, protocols=("random",))
def msg(model, data: UnlearnData, cfg: MSGConfig, ctx: RunContext):
    """Re-draw small-gradient conv weights, fine-tune on retain with the rest damped (MSG, Kaggle 2nd)."""
    layers = reinit_layers(model)
    snip_gradients(model, data, cfg, ctx)
    factors = [reinitialise(layer, cfg.init_rate, ctx.generator) for layer in layers]
    model.zero_grad(set_to_none=True)
    hooks = [layer.weight.register_hook(lambda g, f=f: g * f) for layer, f in zip(layers, factors)]
    optimizer = make_optimizer(model.parameters(), "sgd", cfg.lr, cfg.momentum, cfg.weight_decay)
    epoch = [0]

    def batches():
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * annealing_factor(epoch[0], cfg.epochs)
        epoch[0] += 1
        return ctx.batches(data.retain, cfg.batch_size, augment=cfg.augment)

    try:
        return run_epochs(model, optimizer, cfg.epochs, batches, lambda b: F.cross_entropy(model(b[0]), b[1]), ctx)
    finally:
        for hook in hooks:
            hook.remove()
