"""CF-k: catastrophic forgetting of the last k blocks (Goel et al. 2022, as run in SCRUB).

Freeze everything but the last k blocks (top-level modules with parameters) and fine-tune
those on the retain set. SCRUB's settings: the last block, 10 epochs, SGD lr 0.01.
"""

from dataclasses import dataclass

import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, register_method
from methods._common import last_blocks, minimise


@dataclass(frozen=True)
class LastBlocksConfig:
    k: int = 1
    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128


def train_last_blocks(model, data: UnlearnData, cfg: LastBlocksConfig, ctx: RunContext):
    """Fine-tune only the parameters of the last `cfg.k` blocks on the retain set."""
    trainable = [p for block in last_blocks(model, cfg.k) for p in block.parameters()]
    keep = {id(p) for p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    model = minimise(model, cfg, ctx, lambda: ctx.batches(data.retain, cfg.batch_size),
                     lambda b: F.cross_entropy(model(b[0]), b[1]), params=trainable)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


@register_method("cf_k", config=LastBlocksConfig)
def cf_k(model, data: UnlearnData, cfg: LastBlocksConfig, ctx: RunContext):
    """Fine-tune only the last k blocks on retain (CF-k; SCRUB's settings)."""
    return train_last_blocks(model, data, cfg, ctx)
