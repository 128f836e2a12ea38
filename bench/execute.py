"""Calling a method: on a private copy of the model, timed alone, with its outcome classified.

The runner's runs, U-LiRA's unlearned reference models, tuning trials and the method
contract's checks all call methods through `call_method`, so a method is treated the same way
everywhere: the same untimed warm-up, the same clock, the same FLOP count.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.cost import measure
from bench.errors import Diverged
from bench.flops import count_flops
from bench.guard import global_state_kept
from bench.train import check_finite


def warm_up(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """One untimed SGD step of a throw-away copy of `model` on the batch (x, y).

    The first training step in a process pays one-off costs (lazy imports in the optimiser,
    kernel selection and allocation for these shapes): 1.2-1.8 s measured on digits, where a
    whole method call takes 10-20 ms. Paid here, before the clock starts, they no longer land
    on whichever call happens to come first. The global RNG is restored, so the run's results
    do not depend on it."""
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        scratch = copy.deepcopy(model).train()
        optimizer = torch.optim.SGD(scratch.parameters(), lr=0.0, momentum=0.9)
        F.cross_entropy(scratch(x), y).backward()
        optimizer.step()


@contextmanager
def metered(model: nn.Module, split, ctx):
    """Warm up on the first batch of `split` (untimed), then time and count what runs inside.

    Yields the cost dict: `bench.cost.measure`'s fields (wall_s, gpu_s, cpu_s, peak memory), and
    `flops` (int: forward and backward passes of every model called, `bench.flops`), counted
    after the clock stops, also when the body raises."""
    x, y = next(iter(ctx.batches(split, ctx.recipe.batch_size, shuffle=False, augment=False)))
    warm_up(model, x, y)
    try:
        with count_flops() as flops, measure(ctx.device) as cost:
            yield cost
    finally:
        cost["flops"] = flops.total()


def call_method(fn, model: nn.Module, data, config, ctx) -> tuple[nn.Module, dict, str, str | None]:
    """Run `fn` on a deep copy of `model`; (result, cost, status, error), status ok|failed|diverged.

    The copy is the method's to change; `model` itself is never handed over. A method that
    raises (or exits) is `failed` with its error; NaN/inf loss or weights make it `diverged`; one
    that changes process-wide state (`bench.guard`) is `failed`, and the state is set back.
    `cost`: see `metered` (warmed up on the retain set).
    """
    private = copy.deepcopy(model)
    status, error = "ok", None
    cost: dict = {}
    with global_state_kept() as changed:
        try:
            with metered(model, data.retain, ctx) as cost:
                private = fn(private, data, config, ctx)
            check_finite(private)
        except Diverged as e:
            status, error = "diverged", str(e)
        except Exception as e:  # noqa: BLE001 - isolate the failure: record it, go on with the sweep
            status, error = "failed", f"{type(e).__name__}: {e}"
        except SystemExit as e:  # a method that exits ends its own call, not the sweep
            status, error = "failed", f"called exit({e.code}); a method returns its model"
    if changed:  # set back already (`bench.guard`); the run cannot stand
        status, error = "failed", f"changed global state ({'; '.join(changed)}); restored"
    return private, cost, status, error
