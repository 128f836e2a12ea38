"""Boundary shrink (Chen et al., "Boundary Unlearning", CVPR 2023), a class-forgetting method.

Each forget example is relabelled with the original model's prediction on its FGSM neighbour
(one signed-gradient step of size `bound` that increases the loss): the nearest wrong class.
The model is then fine-tuned on the forget set with these labels, shrinking the decision
boundary around it. Follows SalUn's port (OPTML-Group/Unlearn-Saliency,
Classification/unlearn/boundary_sh.py): `FGSM_perturb` and `discretize` (lines 35-52) step
in PIXEL units on [0, 1] images, clamp to [0, 1] and round to 8 bits; the loop of
`boundary_shrink_iter` (lines 80-99) takes the frozen original's argmax on the neighbour as
the label for the clean image. Their models normalise inside the network; ours get normalised
batches, so the step is taken on the un-normalised image and normalised again afterwards.
Defaults as in the authors' code (their release, mirrored as TY-LEE-KR/Boundary-Unlearning-Code:
boundary_unlearning.py lines 14-31, `boundary_shrink(bound=0.1, poison_epoch=10)` with
`SGD(lr=0.00001, momentum=0.9)` and no weight decay; main.py:32, batch 64): 10 epochs, bound
0.1, SGD lr 1e-5, momentum 0.9, weight decay 0, batch 64. SalUn's port, followed for the FGSM
step above, runs its own defaults instead (lr 0.01, weight decay 5e-4, batch 256).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, float_range, int_range, log_range, param, register_method
from methods._common import minimise


@dataclass(frozen=True)
class BoundaryShrinkConfig:
    bound: float = param(0.1, gt=0, le=1, search=float_range(0.01, 0.5))  # FGSM step in pixel units (images in [0, 1])
    epochs: int = param(10, ge=1, search=int_range(1, 10))
    lr: float = param(1e-5, gt=0, search=log_range(1e-6, 0.1))
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(0.0, ge=0)
    batch_size: int = param(64, ge=1)


def neighbour_labels(original, x, y, bound: float, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The original model's prediction on the FGSM neighbour of the normalised batch `x`."""
    pixels = (x * std + mean).detach().requires_grad_(True)  # back to [0, 1] pixel units
    (grad,) = torch.autograd.grad(F.cross_entropy(original((pixels - mean) / std), y), pixels)
    with torch.no_grad():
        neighbour = torch.round(torch.clamp(pixels + bound * grad.sign(), 0.0, 1.0) * 255) / 255
        return original((neighbour - mean) / std).argmax(1)


@register_method("boundary_shrink", config=BoundaryShrinkConfig, protocols=("class",))
def boundary_shrink(model, data: UnlearnData, cfg: BoundaryShrinkConfig, ctx: RunContext):
    """Fine-tune the forget set towards the labels of its FGSM neighbours (Chen et al. 2023)."""
    original = ctx.frozen_copy(model)
    mean, std = ctx.batcher.mean, ctx.batcher.std

    def batches():
        for x, y in ctx.batches(data.forget, cfg.batch_size):
            yield x, neighbour_labels(original, x, y, cfg.bound, mean, std)

    return minimise(model, cfg, ctx, batches, lambda b: F.cross_entropy(model(b[0]), b[1]))
