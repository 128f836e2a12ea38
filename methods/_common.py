"""Pieces shared by method files: the SGD-over-epochs loop most methods are made of."""

from __future__ import annotations

import math

from bench.api import RunContext
from bench.data import Split
from bench.train import cosine_schedule, make_optimizer, run_epochs


def minimise(model, cfg, ctx: RunContext, batches, loss, *, params=None, steps_per_epoch=None,
             after_step=None):
    """SGD (cfg.lr, cfg.momentum, cfg.weight_decay) for cfg.epochs over `batches()`, minimising `loss`.

    With `steps_per_epoch` the learning rate follows a cosine decay to 0 over all steps.
    """
    params = list(model.parameters()) if params is None else params
    optimizer = make_optimizer(params, "sgd", cfg.lr, cfg.momentum, cfg.weight_decay)
    scheduler = cosine_schedule(optimizer, cfg.epochs * steps_per_epoch) if steps_per_epoch else None
    return run_epochs(model, optimizer, cfg.epochs, batches, loss, ctx, scheduler, after_step)


def steps(split: Split, batch_size: int) -> int:
    return math.ceil(len(split) / batch_size)
