"""Membership-inference attacks and the forget-quality score. Importing the package registers
every attack, so `attack_registry` (and `unlearn-bench list attacks`) is always complete."""

from bench.attacks import lira, population, ulira  # noqa: F401  (registration)
from bench.attacks.base import (AttackInput, AttackResult, attack_registry, balanced_sample, register_attack,
                                roc_metrics, run_attacks, scored)

__all__ = ["AttackInput", "AttackResult", "attack_registry", "balanced_sample", "register_attack", "roc_metrics",
           "run_attacks", "scored"]
