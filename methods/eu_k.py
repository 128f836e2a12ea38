"""EU-k: exact unlearning of the last k blocks (Goel et al. 2022, as run in SCRUB).

Re-initialise the last k blocks (top-level modules with parameters) and train only those on
the retain set, the frozen rest acting as a fixed feature extractor. SCRUB's settings: the last
block, 10 epochs, SGD lr 0.01.
"""

from bench.api import RunContext, UnlearnData, register_method
from methods._common import last_blocks
from methods.cf_k import LastBlocksConfig, train_last_blocks


@register_method("eu_k", config=LastBlocksConfig)
def eu_k(model, data: UnlearnData, cfg: LastBlocksConfig, ctx: RunContext):
    """Re-initialise the last k blocks and train only them on retain (EU-k; SCRUB's settings)."""
    fresh = ctx.new_model()  # drawn from the run's seeded RNG
    for old, new in zip(last_blocks(model, cfg.k), last_blocks(fresh, cfg.k)):
        old.load_state_dict(new.state_dict())
    return train_last_blocks(model, data, cfg, ctx)
