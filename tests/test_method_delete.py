"""DELETE (methods/delete.py) against the official shaaaaron/DELETE method/delete.py."""

import contextlib
import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.api import RunContext, UnlearnData
from bench.data import Split
from methods.delete import DeleteConfig, delete, delete_loss, masked_target_logits


def test_loss_is_the_kl_to_the_teachers_softmax_with_the_true_class_masked():
    """Worked by hand: teacher (2, 1, 0) with y = 0 gives the target (0, e/(e+1), 1/(e+1)); against a
    uniform student the KL is sum p log(3p). It equals the official KLDivLoss(batchmean) form."""
    teacher = torch.tensor([[2.0, 1.0, 0.0]])
    student = torch.zeros(1, 3)
    y = torch.tensor([0])
    p = [math.e / (math.e + 1), 1 / (math.e + 1)]
    assert delete_loss(student, teacher, y).item() == pytest.approx(sum(q * math.log(3 * q) for q in p), rel=1e-6)

    g = torch.Generator().manual_seed(0)
    student, teacher, y = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g), torch.arange(8)
    masked = teacher.clone()
    masked[torch.arange(8), y] = -1e10  # official: pred_label[torch.arange(batch_size), y] = -1e10
    official = nn.KLDivLoss(reduction="batchmean")(F.log_softmax(student, 1), F.softmax(masked, 1))
    assert delete_loss(student, teacher, y).item() == pytest.approx(official.item(), rel=1e-6)
    # the student's gradient on the true-class logit is its own probability: descent lowers it
    student.requires_grad_(True)
    delete_loss(student, teacher, y).backward()
    assert torch.allclose(student.grad[torch.arange(8), y], F.softmax(student.detach(), 1)[torch.arange(8), y] / 8)


def test_half_precision_teacher_logits_stay_finite_and_give_the_true_class_no_mass():
    teacher = torch.tensor([[3.0, 1.0, -1.0], [0.5, 2.0, 0.0]], dtype=torch.float16)
    student = torch.zeros(2, 3, dtype=torch.bfloat16)
    loss = delete_loss(student, teacher, torch.tensor([0, 1]))
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    target = masked_target_logits(teacher, torch.tensor([0, 1])).softmax(1)
    assert target[0, 0] == 0 and target[1, 1] == 0 and torch.allclose(target.sum(1), torch.ones(2))
    assert target[0, 1] / target[0, 2] == pytest.approx(math.e**2, rel=1e-3)  # the rest keep their ratios


def _ctx(seen):
    """A stand-in RunContext: one fixed-order batch per call; records which split is asked for."""
    def batches(split, batch_size, shuffle=True, augment=None):
        seen.append(split)
        return [(split.x.float() / 255, split.y)]
    return SimpleNamespace(frozen_copy=RunContext.frozen_copy, batches=batches,
                           policy=SimpleNamespace(autocast=contextlib.nullcontext), progress=lambda done, total: None)


def test_uses_only_the_forget_set_and_lowers_its_true_class_probability():
    """The paper's setting: no remaining data. The forget class's probability falls; retain and val
    (here objects that raise on any use) are never touched."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randint(0, 256, (32, 1, 2, 2), dtype=torch.uint8)
    forget = Split(x, torch.zeros(32, dtype=torch.long), np.arange(32))
    with torch.no_grad():  # make the original confident in class 0 on the forget set
        model[-1].bias.copy_(torch.tensor([3.0, 0.0, 0.0]))

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"DELETE used retain/val data ({name})")

    data = UnlearnData(forget, Untouchable(), Untouchable(), 3)
    before = model.eval()(forget.x.float() / 255).softmax(1)[:, 0].mean().item()
    seen = []
    cfg = dataclasses.replace(DeleteConfig(), epochs=8, lr=0.2, freeze_norm=True)
    running_mean = model[2].running_mean.clone()
    out = delete(model, data, cfg, _ctx(seen))
    after = out.eval()(forget.x.float() / 255).softmax(1)[:, 0].mean().item()
    assert all(s is forget for s in seen) and len(seen) == 8
    assert after < before - 0.3
    assert torch.equal(out[2].running_mean, running_mean)  # freeze_norm: BatchNorm statistics kept
