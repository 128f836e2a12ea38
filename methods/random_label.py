"""Random labelling (RL; Golatkar et al. 2020, as run in SalUn, Fan et al., ICLR 2024).

Each epoch is one pass over the forget set with labels drawn uniformly at random (the true
label allowed, fresh each epoch), then one pass over the retain set with true labels.
SalUn's defaults: 10 epochs, SGD lr 0.01, batch 256 (OPTML-Group/Unlearn-Saliency, Classification/arg_parser.py:69; Unlearn-Sparse, arg_parser.py:67: no README command overrides it).
"""

from dataclasses import dataclass
from itertools import chain

import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, int_range, log_range, param, register_method
from methods._common import minimise, random_labels


@dataclass(frozen=True)
class RandomLabelConfig:
    epochs: int = param(10, ge=1, search=int_range(1, 10))
    lr: float = param(0.01, gt=0, search=log_range(1e-3, 0.3))
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(5e-4, ge=0)
    batch_size: int = param(256, ge=1)


def relabelled_then_retain(data: UnlearnData, batch_size: int, ctx: RunContext):
    """One epoch of RL batches: forget with random labels, then retain with true labels."""
    forget = ((x, random_labels(y, data.num_classes, ctx.generator)) for x, y in ctx.batches(data.forget, batch_size))
    return chain(forget, ctx.batches(data.retain, batch_size))


@register_method("random_label", config=RandomLabelConfig)
def random_label(model, data: UnlearnData, cfg: RandomLabelConfig, ctx: RunContext):
    """Forget relabelled at random, then a retain pass, each epoch (SalUn's RL)."""
    return minimise(model, cfg, ctx, lambda: relabelled_then_retain(data, cfg.batch_size, ctx),
                    lambda b: F.cross_entropy(model(b[0]), b[1]))
