"""NegGrad+ (Kurmanji et al., NeurIPS 2023, the SCRUB paper's strong baseline).

Minimise alpha * CE(retain) - (1 - alpha) * CE(forget): descend on retain while ascending on
forget, each retain batch paired with a forget batch (the forget set is cycled). SCRUB's
notebooks use alpha 0.95-0.9999, 5-10 epochs, SGD lr 0.01. The search covers that alpha range
widened to 0.9 and the lr one decade either side of 0.01: the earlier space (alpha from 0.5, lr
to 0.3) lost most of its cifar10-cpu tuning trials to divergence (issue 20).
"""

from dataclasses import dataclass

import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, float_range, int_range, log_range, param, register_method
from methods._common import minimise, paired_batches


@dataclass(frozen=True)
class NegGradPlusConfig:
    alpha: float = param(0.99, ge=0, le=1, search=float_range(0.9, 0.9999))
    epochs: int = param(5, ge=1, search=int_range(1, 10))
    lr: float = param(0.01, gt=0, search=log_range(1e-3, 0.1))
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(5e-4, ge=0)
    batch_size: int = param(128, ge=1)


@register_method("neggrad_plus", config=NegGradPlusConfig)
def neggrad_plus(model, data: UnlearnData, cfg: NegGradPlusConfig, ctx: RunContext):
    """alpha*CE(retain) - (1-alpha)*CE(forget) on paired batches (SCRUB's NegGrad+)."""

    def loss(batch):
        (xr, yr), (xf, yf) = batch
        return cfg.alpha * F.cross_entropy(model(xr), yr) - (1 - cfg.alpha) * F.cross_entropy(model(xf), yf)

    return minimise(model, cfg, ctx, lambda: paired_batches(ctx, data.retain, data.forget, cfg.batch_size), loss)
