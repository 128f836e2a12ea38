"""CF-k: catastrophic forgetting of the last k layers (Goel et al., "Towards Adversarial Evaluations
for Inexact Machine Unlearning", 2022; run as a baseline in SCRUB).

Freeze everything but the last k layers and fine-tune those on the retain set. Layers are
Conv/Linear layers with the norm layers that follow them, as in Goel et al.'s code
(shash42/Evaluating-Inexact-Unlearning, src/methods.py, `resetFinalResnet`; see
`methods._common.last_layers`): on a ResNet, k = 1 is the classifier, not a whole stage.
Settings as in SCRUB's runs: 10 epochs, SGD lr 0.01 (k = 1 here; the paper varies k).
"""

from dataclasses import dataclass

import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, int_range, log_range, param, register_method
from methods._common import last_layers, minimise


@dataclass(frozen=True)
class LastLayersConfig:
    k: int = param(1, ge=1, search=int_range(1, 3))
    epochs: int = param(10, ge=1, search=int_range(1, 10))
    lr: float = param(0.01, gt=0, search=log_range(1e-3, 0.3))
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(5e-4, ge=0)
    batch_size: int = param(128, ge=1)


def train_last_layers(model, data: UnlearnData, cfg: LastLayersConfig, ctx: RunContext):
    """Fine-tune only the parameters of the last `cfg.k` layers on the retain set."""
    trainable = [p for layer in last_layers(model, cfg.k) for p in layer.parameters(recurse=False)]
    keep = {id(p) for p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    model = minimise(model, cfg, ctx, lambda: ctx.batches(data.retain, cfg.batch_size),
                     lambda b: F.cross_entropy(model(b[0]), b[1]), params=trainable)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


@register_method("cf_k", config=LastLayersConfig)
def cf_k(model, data: UnlearnData, cfg: LastLayersConfig, ctx: RunContext):
    """Fine-tune only the last k layers on retain (CF-k, Goel et al. 2022)."""
    return train_last_layers(model, data, cfg, ctx)
