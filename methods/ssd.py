"""Selective Synaptic Dampening (SSD; Foster et al., AAAI 2024). No training.

Importance of each weight is the mean over batches of the squared gradient of CE (a diagonal
Fisher estimate), once on the whole training data (retain ∪ forget) and once on the forget
set. Where I_forget > alpha * I_full, the weight is multiplied by min(lambda * I_full /
I_forget, 1). Defaults: alpha (selection) 10, lambda (dampening) 1.
"""

from dataclasses import dataclass

import torch

from bench.api import RunContext, UnlearnData, log_range, param, register_method
from bench.data import Split
from methods._common import importance


@dataclass(frozen=True)
class SSDConfig:
    alpha: float = param(10.0, gt=0, search=log_range(1.0, 100.0))  # selection threshold
    dampening: float = param(1.0, gt=0, search=log_range(0.1, 10.0))  # lambda
    batch_size: int = param(128, ge=1)


@register_method("ssd", config=SSDConfig, deterministic=True, protocols=("class",))
def ssd(model, data: UnlearnData, cfg: SSDConfig, ctx: RunContext):
    """Dampen weights far more important to the forget set than to all data (Foster et al.)."""
    full = Split.concat(data.retain, data.forget)
    imp_full = importance(model, ctx, full, cfg.batch_size)
    imp_forget = importance(model, ctx, data.forget, cfg.batch_size)
    with torch.no_grad():
        for name, p in model.named_parameters():
            selected = imp_forget[name] > cfg.alpha * imp_full[name]
            factor = (cfg.dampening * imp_full[name] / imp_forget[name].clamp_min(1e-30)).clamp(max=1.0)
            p.mul_(torch.where(selected, factor, torch.ones_like(factor)))
    ctx.progress(1, 1)
    return model
