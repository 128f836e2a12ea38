"""Retrain: train from scratch on the retain set with the suite's recipe. The gold standard.

Every other method is measured by how close it gets to this model, and how much cheaper it is.
"""

from bench.api import RunContext, UnlearnData, register_method


@register_method("retrain")
def retrain(model, data: UnlearnData, cfg: None, ctx: RunContext):
    """Train from scratch on the retain set with the suite's recipe (the gold standard)."""
    return ctx.train_from_scratch(data.retain)
