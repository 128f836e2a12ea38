"""SalUn: saliency unlearning (Fan et al., ICLR 2024).

The weight saliency mask keeps the `ratio` of weights with the largest |gradient of CE on the
forget set|, ranked globally over all parameters. Then random labelling (forget with random
labels, then retain, each epoch) updates only the masked weights. Unmasked weights must not
move at all: they are restored after every optimiser step, which is exact, whereas masking
gradients alone would still let weight decay and momentum move them. Defaults: 10 epochs, SGD
lr 0.013, ratio 0.5, batch 256 (OPTML-Group/Unlearn-Saliency, Classification/arg_parser.py:69; Unlearn-Sparse, arg_parser.py:67: no README command overrides it).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, float_range, int_range, log_range, param, register_method
from methods._common import grad_sum, minimise, top_fraction_mask
from methods.random_label import relabelled_then_retain


@dataclass(frozen=True)
class SalUnConfig:
    ratio: float = param(0.5, gt=0, le=1, search=float_range(0.1, 0.9))
    epochs: int = param(10, ge=1, search=int_range(1, 10))
    lr: float = param(0.013, gt=0, search=log_range(1e-3, 0.3))
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(5e-4, ge=0)
    batch_size: int = param(256, ge=1)


def saliency_mask(model, data: UnlearnData, ctx: RunContext, ratio: float, batch_size: int):
    batches = ctx.batches(data.forget, batch_size, shuffle=False, augment=False)
    grads = grad_sum(model, batches, lambda b: F.cross_entropy(model(b[0]), b[1]), square=False)
    return top_fraction_mask({n: g.abs() for n, g in grads.items()}, ratio)


@register_method("salun", config=SalUnConfig)
def salun(model, data: UnlearnData, cfg: SalUnConfig, ctx: RunContext):
    """Random labelling on the weights most salient for the forget loss only (Fan et al. 2024)."""
    mask = saliency_mask(model, data, ctx, cfg.ratio, cfg.batch_size)
    params = dict(model.named_parameters())
    frozen = {n: params[n].detach().clone() for n in params}

    @torch.no_grad()
    def restore_unmasked():
        for n, p in params.items():
            p.copy_(torch.where(mask[n], p, frozen[n]))

    return minimise(model, cfg, ctx, lambda: relabelled_then_retain(data, cfg.batch_size, ctx),
                    lambda b: F.cross_entropy(model(b[0]), b[1]), after_step=restore_unmasked)
