"""Counting the floating-point operations of a call, the machine-independent part of its cost.

`count_flops()` is a context: inside it, every outermost module call (a model's forward pass)
is counted by its *pass*: the module, the input's shape and dtype, whether autograd records it,
which of its parameters and whether its input require gradients; a backward pass through its
output is counted by a hook on that output. After the call, each distinct pass is measured once
with `torch.utils.flop_counter.FlopCounterMode` (forward alone, and forward plus backward, on
a copy of the module with the same `requires_grad` flags and an input of the same shape), and
`total()` multiplies. This counts what `FlopCounterMode` would count over the whole call (its
registry: matrix products, convolutions, attention; elementwise work is not counted), tested
equal on every method (`tests/test_flops.py`), without its per-operator Python overhead inside
the timed call (1.3x on the CNN of `cifar10-cpu`, 6x on the digits MLP, measured here), so the
wall clock measured around the same call stays honest.

Work a method does outside a module's forward (a matrix product on raw tensors) is not seen:
the test over every registered method is what holds the two counts together.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class FlopCount:
    """Passes seen during a call; `total()` is their floating-point operations (an int)."""

    forward: dict = field(default_factory=dict)  # pass -> forward passes seen
    backward: dict = field(default_factory=dict)  # pass -> backward passes through its output
    modules: dict = field(default_factory=dict)  # id(module) -> module (kept alive: ids stay unique)
    _total: int | None = None

    def total(self) -> int:
        if self._total is None:
            measured = {p: _measured(self.modules[p[0]], p) for p in self.forward}
            self._total = sum(n * measured[p][0] for p, n in self.forward.items()) + sum(
                n * measured[p][1] for p, n in self.backward.items())
            self.modules.clear()  # the models may be large; only the number is kept
        return self._total


def _pass_of(module: nn.Module, x: torch.Tensor) -> tuple:
    grads = tuple(p.requires_grad for p in module.parameters())
    return (id(module), tuple(x.shape), x.dtype, str(x.device), torch.is_grad_enabled(), x.requires_grad, grads)


def _measured(module: nn.Module, key: tuple) -> tuple[int, int]:
    """(forward FLOPs, backward FLOPs) of one pass, measured on a copy of its module (in eval
    mode, which counts the same products and accepts any batch size)."""
    _, shape, dtype, device, grad_enabled, input_grad, grads = key
    probe = copy.deepcopy(module).eval()
    for p, g in zip(probe.parameters(), grads):
        p.requires_grad_(g)
    x = torch.zeros(shape, dtype=dtype, device=device, requires_grad=input_grad)
    with torch.random.fork_rng(devices=[]):  # dropout in the probe must not move the run's RNG
        with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(grad_enabled):
            out = probe(x)
        forward = counter.get_total_flops()
        if not (grad_enabled and isinstance(out, torch.Tensor) and out.requires_grad):
            return forward, 0
        with FlopCounterMode(display=False) as counter:
            out.backward(torch.ones_like(out))
    return forward, counter.get_total_flops()


@contextmanager
def count_flops():
    """Count the forward and backward passes of every module called inside; yields a `FlopCount`.

    Only outermost calls count (a model's submodules are part of its pass). Inputs that are not
    a single tensor are not counted."""
    count = FlopCount()
    depth = [0]

    def before(module, args):
        depth[0] += 1

    def after(module, args, output):
        depth[0] -= 1
        if depth[0] or len(args) != 1 or not isinstance(args[0], torch.Tensor):
            return
        key = _pass_of(module, args[0])
        count.modules[id(module)] = module
        count.forward[key] = count.forward.get(key, 0) + 1
        if isinstance(output, torch.Tensor) and output.requires_grad:
            def backward(grad):
                count.backward[key] = count.backward.get(key, 0) + 1
            output.register_hook(backward)

    handles = [register_module_forward_pre_hook(before), register_module_forward_hook(after, always_call=True)]
    try:
        yield count
    finally:
        for h in handles:
            h.remove()
