"""TEMPLATE (not registered: files starting with "_" are skipped). Copy to methods/<name>.py.

Say here which paper the method comes from (authors, venue, year), what it does in a few
sentences, and where its defaults come from. The defaults below must be the paper's; tune
them for a suite in the suite's YAML, not here.
"""

from dataclasses import dataclass

import torch.nn.functional as F

from bench.api import RunContext, UnlearnData, int_range, log_range, param, register_method
from methods._common import minimise, steps


@dataclass(frozen=True)
class TemplateConfig:
    epochs: int = param(5, ge=1, search=int_range(1, 10))
    lr: float = param(0.01, gt=0, search=log_range(1e-3, 0.3))
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(5e-4, ge=0)
    batch_size: int = param(128, ge=1)


# Rename "template" (the name suites and the leaderboard use) and the function.
@register_method("template", config=TemplateConfig)
def template(model, data: UnlearnData, cfg: TemplateConfig, ctx: RunContext):
    """One line for `unlearn-bench list methods`: what the method does (Author et al. Year)."""
    # `model` is a private copy of the original; change it in place or return a new one.
    # `data.forget`, `data.retain`, `data.val` are uint8 splits; `ctx.batches(split, n)` yields
    # normalised float batches (x, y) in a seeded order, augmented as the suite's recipe says.
    # Draw any randomness from `ctx.generator`. No evaluation, no file I/O, no printing.
    return minimise(
        model, cfg, ctx,
        batches=lambda: ctx.batches(data.retain, cfg.batch_size),
        loss=lambda batch: F.cross_entropy(model(batch[0]), batch[1]),
        steps_per_epoch=steps(data.retain, cfg.batch_size),  # cosine decay; omit for a constant lr
    )
