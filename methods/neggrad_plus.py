"""NegGrad+ (Kurmanji et al., NeurIPS 2023, the SCRUB paper's strong baseline).

Minimise alpha * CE(retain) - (1 - alpha) * CE(forget): descend on retain while ascending on
forget, each retain batch paired with a forget batch (the forget set is cycled). SCRUB's
notebooks use alpha 0.95-0.9999, 5-10 epochs, SGD lr 0.01.
"""

from dataclasses import dataclass

import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, register_method
from methods._common import minimise, paired_batches


@dataclass(frozen=True)
class NegGradPlusConfig:
    alpha: float = 0.99
    epochs: int = 5
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128


@register_method("neggrad_plus", config=NegGradPlusConfig)
def neggrad_plus(model, data: UnlearnData, cfg: NegGradPlusConfig, ctx: RunContext):
    """alpha*CE(retain) - (1-alpha)*CE(forget) on paired batches (SCRUB's NegGrad+)."""

    def loss(batch):
        (xr, yr), (xf, yf) = batch
        return cfg.alpha * F.cross_entropy(model(xr), yr) - (1 - cfg.alpha) * F.cross_entropy(model(xf), yf)

    return minimise(model, cfg, ctx, lambda: paired_batches(ctx, data.retain, data.forget, cfg.batch_size), loss)
