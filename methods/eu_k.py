"""EU-k: exact unlearning of the last k layers (Goel et al. 2022; run as a baseline in SCRUB).

Re-initialise the last k Conv/Linear layers and train them, with the norm layers after them
(as `methods._common.last_layers` counts them), on the retain set, the frozen rest acting as a
fixed feature extractor. Follows Goel et al.'s `resetFinalResnet` (shash42/Evaluating-Inexact-
Unlearning, src/methods.py lines 17-47): only Conv2d and Linear layers are re-initialised
(`_reinit`, src/models.py lines 599-606); the norm layers in the tail keep their weights and
running statistics and are trained. Deviation: re-initialisation uses the architecture's own
initialiser (drawn from the run's seeded generator), where their code uses Kaiming-normal
weights and zero biases.
Settings as in SCRUB's runs: 10 epochs, SGD lr 0.01.
"""

import torch

from bench.api import RunContext, UnlearnData, register_method
from methods._common import LAYER_TYPES, last_layers
from methods.cf_k import LastLayersConfig, train_last_layers


@register_method("eu_k", config=LastLayersConfig)
def eu_k(model, data: UnlearnData, cfg: LastLayersConfig, ctx: RunContext):
    """Re-initialise the last k layers and train only them on retain (EU-k, Goel et al. 2022)."""
    reinitialise_last_layers(model, ctx.new_model(), cfg.k)  # fresh weights from the run's seeded RNG
    return train_last_layers(model, data, cfg, ctx)


def reinitialise_last_layers(model, fresh, k: int) -> None:
    """Copy `fresh`'s weights into the last k Conv/Linear layers of `model` (same architecture);
    the norm layers among the last layers keep theirs (Goel et al. re-initialise Conv/Linear only)."""
    with torch.no_grad():
        for old, new in zip(last_layers(model, k), last_layers(fresh, k)):
            if isinstance(old, LAYER_TYPES):
                for p_old, p_new in zip(old.parameters(recurse=False), new.parameters(recurse=False)):
                    p_old.copy_(p_new)
