"""EU-k: exact unlearning of the last k layers (Goel et al. 2022; run as a baseline in SCRUB).

Re-initialise the last k layers (Conv/Linear layers with the norm layers after them, as
`methods._common.last_layers` counts them, following Goel et al.'s `resetFinalResnet`) and
train only those on the retain set, the frozen rest acting as a fixed feature extractor.
Deviation: re-initialisation uses the architecture's own initialiser (drawn from the run's
seeded generator), where Goel et al.'s code uses Kaiming-normal weights and zero biases.
Settings as in SCRUB's runs: 10 epochs, SGD lr 0.01.
"""

import torch

from bench.api import RunContext, UnlearnData, register_method
from methods._common import last_layers
from methods.cf_k import LastLayersConfig, train_last_layers


@register_method("eu_k", config=LastLayersConfig)
def eu_k(model, data: UnlearnData, cfg: LastLayersConfig, ctx: RunContext):
    """Re-initialise the last k layers and train only them on retain (EU-k, Goel et al. 2022)."""
    fresh = ctx.new_model()  # drawn from the run's seeded RNG
    with torch.no_grad():
        for old, new in zip(last_layers(model, cfg.k), last_layers(fresh, cfg.k)):
            for p_old, p_new in zip(old.parameters(recurse=False), new.parameters(recurse=False)):
                p_old.copy_(p_new)
    return train_last_layers(model, data, cfg, ctx)
