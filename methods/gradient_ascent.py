"""Gradient ascent (GA, NegGrad): maximise the cross-entropy on the forget set.

Thudi et al. 2022; settings as in SalUn / l1-sparse (Jia et al., NeurIPS 2023): a few epochs at
lr 1e-4 to 1e-3, batch 256 (OPTML-Group/Unlearn-Saliency, Classification/arg_parser.py:69; Unlearn-Sparse, arg_parser.py:67: no README command overrides it). The loss is unbounded, so it diverges easily; the runner records that.
The lr is searched one decade either side of that documented range (1e-5 to 1e-2): the earlier
space reached 0.1, and most of its cifar10-cpu tuning trials diverged (issue 20).
"""

from dataclasses import dataclass

import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, int_range, log_range, param, register_method
from methods._common import minimise


@dataclass(frozen=True)
class GradientAscentConfig:
    epochs: int = param(5, ge=1, search=int_range(1, 10))
    lr: float = param(1e-4, gt=0, search=log_range(1e-5, 1e-2))
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(5e-4, ge=0)
    batch_size: int = param(256, ge=1)


@register_method("gradient_ascent", config=GradientAscentConfig)
def gradient_ascent(model, data: UnlearnData, cfg: GradientAscentConfig, ctx: RunContext):
    """Gradient ascent on the forget set's cross-entropy (NegGrad; SalUn settings)."""
    return minimise(
        model, cfg, ctx,
        batches=lambda: ctx.batches(data.forget, cfg.batch_size),
        loss=lambda b: -F.cross_entropy(model(b[0]), b[1]),
    )
