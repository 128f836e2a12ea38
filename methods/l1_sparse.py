"""l1-sparse unlearning (Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023).

Fine-tune on the retain set with an l1 penalty alpha_t * ||theta||_1 whose weight decays
linearly to 0 over the epochs (alpha_t = alpha * (1 - t / epochs)). Defaults: 10 epochs,
SGD lr 0.01, alpha 5e-4, batch 256 (OPTML-Group/Unlearn-Sparse, arg_parser.py:67; the README's
FT_prune command, line 86, does not override it).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, int_range, log_range, param, register_method
from methods._common import minimise


@dataclass(frozen=True)
class L1SparseConfig:
    alpha: float = param(5e-4, ge=0, search=log_range(1e-6, 1e-2))
    epochs: int = param(10, ge=1, search=int_range(1, 10))
    lr: float = param(0.01, gt=0, search=log_range(1e-3, 0.3))
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(5e-4, ge=0)
    batch_size: int = param(256, ge=1)


@register_method("l1_sparse", config=L1SparseConfig)
def l1_sparse(model, data: UnlearnData, cfg: L1SparseConfig, ctx: RunContext):
    """Fine-tune on retain + l1 penalty decaying linearly to 0 (Jia et al. 2023)."""
    epoch = [0]  # which epoch the loss is in; advanced each time a new epoch's batches start

    def batches():
        epoch[0] += 1
        return ctx.batches(data.retain, cfg.batch_size)

    def loss(batch):
        x, y = batch
        alpha_t = cfg.alpha * (1 - (epoch[0] - 1) / cfg.epochs)
        l1 = torch.stack([p.abs().sum() for p in model.parameters()]).sum()
        return F.cross_entropy(model(x), y) + alpha_t * l1

    return minimise(model, cfg, ctx, batches, loss)
