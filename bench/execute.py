"""Calling a method: on a private copy of the model, timed alone, with its outcome classified.

The runner's runs, U-LiRA's unlearned reference models and the method contract's checks all
call methods through `call_method`, so a method is treated the same way everywhere.
"""

from __future__ import annotations

import copy

import torch.nn as nn

from bench.cost import measure
from bench.errors import Diverged
from bench.train import check_finite


def call_method(fn, model: nn.Module, data, config, ctx) -> tuple[nn.Module, dict, str, str | None]:
    """Run `fn` on a deep copy of `model`; (result, cost, status, error), status ok|failed|diverged.

    The copy is the method's to change; `model` itself is never handed over. A method that
    raises is `failed` with its error; NaN/inf loss or weights make it `diverged`.
    """
    private = copy.deepcopy(model)
    status, error = "ok", None
    cost: dict = {}
    try:
        with measure(ctx.device) as cost:
            private = fn(private, data, config, ctx)
        check_finite(private)
    except Diverged as e:
        status, error = "diverged", str(e)
    except Exception as e:  # noqa: BLE001 - isolate the failure: record it, go on with the sweep
        status, error = "failed", f"{type(e).__name__}: {e}"
    return private, cost, status, error
