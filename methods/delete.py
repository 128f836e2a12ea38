"""DELETE (Zhou, Zheng, Mo, Lu, Lin and Zheng, "Decoupled Distillation to Erase: A General
Unlearning Method for Any Class-centric Tasks", CVPR 2025).

Mask distillation on the forget set only (no retain data): the teacher is a frozen copy of the
original model; for each forget image its logit of the true (forgotten) class is masked to
-1e10, so the target is the teacher's softmax over the remaining classes (their "dark
knowledge"), and the student minimises KL(target || softmax(student logits)) with batchmean
reduction. This pushes the forgotten class down (forgetting term) while keeping the relative
scores of the other classes (retention term).

Follows shaaaaron/DELETE, method/delete.py:27-72 (student and teacher copies, `KLDivLoss(
reduction='batchmean')`, SGD(lr, momentum=0.9) with no weight decay and a constant lr, per
forget batch: student in train mode, teacher in eval mode, teacher logits with
`pred_label[arange, y] = -1e10`, `kl(log_softmax(student), softmax(teacher))`), with the call in
main.py:419-426 (forget loader only; `disable_bn` only for single-class Tiny-ImageNet,
main.py:311-314) and the defaults of config/cifar10_resnet18.yaml (20 epochs, unlearning lr 1e-4,
batch 128; the other configs use 5e-5 and batches of 64-128). The forget loader samples in a
random order with the training augmentation (utils.py:412-421, get_transforms), as ctx.batches
does here. The code only forgets whole classes (main.py `--forget_class`), hence class-only.

Deviations: (1) `temperature` (default 1, not tuned) divides both logits and scales the KL by
T^2 (methods._common.kl_distill); the official loss has no temperature, which is T = 1 exactly.
(2) `freeze_norm` generalises `disable_bn` (BatchNorm2d in eval mode) to every BatchNorm layer,
so an MLP with BatchNorm1d behaves the same. (3) The teacher's logits are masked in float32 (a -1e10
that stays finite under fp16 autocast too); under the suite's bf16 CPU policy (bench/policy.py) the
teacher and student passes run in bf16 like every method's training, where the official code runs
fp32. (4) The official per-epoch evaluation
and plotting are the harness's job and are left out.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn

from bench.api import RunContext, UnlearnData, int_range, log_range, param, register_method
from bench.train import make_optimizer, run_epochs
from methods._common import kl_distill

MASKED = -1e10  # the official soft_label == "inf" mask


@dataclass(frozen=True)
class DeleteConfig:
    epochs: int = param(20, ge=1, search=int_range(5, 40))  # every official config uses 20
    lr: float = param(1e-4, gt=0, search=log_range(1e-5, 1e-3))  # cifar10_resnet18; others 5e-5
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(0.0, ge=0)  # torch.optim.SGD's default: none is set
    batch_size: int = param(128, ge=1)
    temperature: float = param(1.0, gt=0)  # the official loss has none (T = 1)
    freeze_norm: bool = param(False)  # official `disable_bn` (Tiny-ImageNet, one class only)


def masked_target_logits(teacher_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The teacher's logits in float32 with each row's true-class logit set to -1e10."""
    masked = teacher_logits.float().clone()
    masked[torch.arange(len(y), device=masked.device), y] = MASKED
    return masked


def delete_loss(student_logits, teacher_logits, y, temperature: float = 1.0) -> torch.Tensor:
    """KL(softmax(mask_y(teacher) / T) || softmax(student / T)) * T^2, averaged over the batch."""
    return kl_distill(student_logits.float(), masked_target_logits(teacher_logits, y), temperature)


def _freeze_norm_layers(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


@register_method("delete", config=DeleteConfig, protocols=("class",))
def delete(model, data: UnlearnData, cfg: DeleteConfig, ctx: RunContext):
    """Distil the original's softmax with the forgotten class masked out, forget set only (Zhou et al. 2025)."""
    teacher = ctx.frozen_copy(model)
    optimizer = make_optimizer(model.parameters(), "sgd", cfg.lr, cfg.momentum, cfg.weight_decay)

    def loss(batch):
        x, y = batch
        model.train()
        if cfg.freeze_norm:
            _freeze_norm_layers(model)
        with torch.no_grad():
            teacher_logits = teacher(x)
        return delete_loss(model(x), teacher_logits, y, cfg.temperature)

    return run_epochs(model, optimizer, cfg.epochs, lambda: ctx.batches(data.forget, cfg.batch_size), loss, ctx)
