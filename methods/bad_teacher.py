"""Bad teacher (Chundawat et al., "Can Bad Teaching Induce Forgetting?", AAAI 2023).

The student (the original model) distils from two teachers at once: on forget examples from
an "incompetent" teacher (a randomly initialised model), on retain examples from the
competent original. One pass over the forget set mixed with a random 30% of the retain set.
The loss is the official `UnlearnerLoss` (vikram2000b/bad-teaching-unlearning, unlearn.py lines
9-19): `F.kl_div(log_softmax(student / T), teacher probabilities)` with PyTorch's default
reduction "mean", the mean over batch x classes (batchmean / classes), and no T^2 factor.
Defaults: Adam lr 1e-4, 1 epoch, 30% of retain, T=1 (their notebook: batch 256).
"""

from dataclasses import dataclass

import torch

from bench.api import RunContext, UnlearnData, float_range, int_range, log_range, param, register_method
from bench.data import Split
from bench.train import make_optimizer, run_epochs
import torch.nn.functional as F


@dataclass(frozen=True)
class BadTeacherConfig:
    retain_fraction: float = param(0.3, gt=0, le=1, search=float_range(0.1, 1.0))
    temperature: float = param(1.0, gt=0)
    epochs: int = param(1, ge=1, search=int_range(1, 5))
    lr: float = param(1e-4, gt=0, search=log_range(1e-5, 1e-2))
    batch_size: int = param(256, ge=1)


def unlearner_loss(student_logits, teacher_logits, temperature: float) -> torch.Tensor:
    """The official UnlearnerLoss: KL(teacher_T || student_T), PyTorch's default "mean" reduction
    (over every batch x class element), no T^2. Shapes (N, C) -> scalar."""
    teacher = F.softmax(teacher_logits / temperature, dim=1)
    # "mean" spelled out as sum / elements: PyTorch warns that its "mean" will become "batchmean"
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=1), teacher, reduction="sum") / teacher.numel()


@register_method("bad_teacher", config=BadTeacherConfig, protocols=("class",))
def bad_teacher(model, data: UnlearnData, cfg: BadTeacherConfig, ctx: RunContext):
    """Distil from a random teacher on forget and the original on retain (Chundawat et al.)."""
    good = ctx.frozen_copy(model)
    bad = ctx.frozen_copy(ctx.new_model())
    n_retain = max(1, int(round(cfg.retain_fraction * len(data.retain))))
    pick = torch.randperm(len(data.retain), generator=ctx.generator)[:n_retain].sort().values.numpy()
    retain = data.retain.subset(pick)
    # One split of both parts; the label slot carries "is this a forget example" for the loss.
    both = Split.concat(data.forget, retain)
    is_forget = (torch.arange(len(both), device=both.y.device) < len(data.forget)).long()
    mixed = Split(both.x, is_forget, both.index)

    def loss(batch):
        x, is_forget = batch
        with torch.no_grad():
            target = torch.where(is_forget[:, None].bool(), bad(x), good(x))
        return unlearner_loss(model(x), target, cfg.temperature)

    optimizer = make_optimizer(model.parameters(), "adam", cfg.lr)
    return run_epochs(model, optimizer, cfg.epochs, lambda: ctx.batches(mixed, cfg.batch_size), loss, ctx)
