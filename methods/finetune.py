"""Fine-tune (FT): keep training the original model on the retain set only.

Defaults are the NeurIPS 2023 Machine Unlearning Challenge starting kit's: 5 epochs of SGD,
lr 0.1, momentum 0.9, weight decay 5e-4, cosine decay, batch 128 (here stepped per batch).
SalUn (Fan et al., ICLR 2024) uses 10 epochs at lr 0.01.
"""

from dataclasses import dataclass

import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, int_range, log_range, param, register_method
from methods._common import minimise, steps


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = param(5, ge=1, search=int_range(1, 10))
    lr: float = param(0.1, gt=0, search=log_range(1e-3, 0.3))
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(5e-4, ge=0)
    batch_size: int = param(128, ge=1)
    augment: bool | None = None  # None: as the suite's training recipe


@register_method("finetune", config=FinetuneConfig)
def finetune(model, data: UnlearnData, cfg: FinetuneConfig, ctx: RunContext):
    """Fine-tune on the retain set only (NeurIPS 2023 kit: 5 epochs, SGD lr 0.1, cosine)."""
    return minimise(
        model, cfg, ctx,
        batches=lambda: ctx.batches(data.retain, cfg.batch_size, augment=cfg.augment),
        loss=lambda b: F.cross_entropy(model(b[0]), b[1]),
        steps_per_epoch=steps(data.retain, cfg.batch_size),
    )
