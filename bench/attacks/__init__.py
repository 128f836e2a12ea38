"""Membership-inference attacks and the forget-quality score.

Attacks are discovered like methods: importing the package imports every module of this
folder (files starting with `_` excepted), and every module that an installed package declares
in the entry-point group `unlearn_bench.attacks`; each registers its attacks on import with
`@register_attack`. So `attack_registry` (and `unlearn-bench list attacks`) is always complete,
and adding an attack is adding a file.
"""

import importlib
import pkgutil
from importlib.metadata import entry_points

from bench.attacks.base import (AttackInfo, AttackInput, AttackResult, attack_registry, balanced_sample,
                                register_attack, roc_metrics, run_attacks, scored)

ENTRY_POINT_GROUP = "unlearn_bench.attacks"

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
for _ep in entry_points(group=ENTRY_POINT_GROUP):
    _ep.load()

__all__ = ["AttackInfo", "AttackInput", "AttackResult", "attack_registry", "balanced_sample", "register_attack",
           "roc_metrics", "run_attacks", "scored"]
