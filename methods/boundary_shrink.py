"""Boundary shrink (Chen et al., "Boundary Unlearning", CVPR 2023).

Each forget example is relabelled with the original model's prediction on its FGSM neighbour
(one signed-gradient step of size `bound` that increases the loss): the nearest wrong class.
The model is then fine-tuned on the forget set with these labels, shrinking the decision
boundary around it. Defaults as run in SalUn: 10 epochs, bound 0.1, SGD lr 1e-5.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, register_method
from methods._common import minimise


@dataclass(frozen=True)
class BoundaryShrinkConfig:
    bound: float = 0.1
    epochs: int = 10
    lr: float = 1e-5
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64


def neighbour_labels(original, x, y, bound: float) -> torch.Tensor:
    """The original model's prediction on the FGSM neighbour x + bound * sign(grad_x CE)."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(original(x), y), x)
    with torch.no_grad():
        return original(x + bound * grad.sign()).argmax(1)


@register_method("boundary_shrink", config=BoundaryShrinkConfig)
def boundary_shrink(model, data: UnlearnData, cfg: BoundaryShrinkConfig, ctx: RunContext):
    """Fine-tune the forget set towards the labels of its FGSM neighbours (Chen et al. 2023)."""
    original = ctx.frozen_copy(model)

    def batches():
        for x, y in ctx.batches(data.forget, cfg.batch_size):
            yield x, neighbour_labels(original, x, y, cfg.bound)

    return minimise(model, cfg, ctx, batches, lambda b: F.cross_entropy(model(b[0]), b[1]))
