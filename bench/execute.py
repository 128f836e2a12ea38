"""Calling a method: in a process of its own, on copies of the model and data, timed alone,
with its outcome classified.

The runner's runs, U-LiRA's unlearned reference models, tuning trials and the method
contract's checks all call methods through `call_method`, so a method is treated the same way
everywhere: the same untimed warm-up, the same clock, the same FLOP count.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import pickle
import random
import time
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.cost import measure
from bench.errors import Diverged
from bench.flops import count_flops
from bench.guard import global_state_kept
from bench.method_import import import_builtin_methods, load_method
from bench.policy import threadpools
from bench.sandbox import ChildFailed, run_isolated
from bench.schema import config_values
from bench.train import check_finite

CHANGED_DATA = "the method changed its input data (data is read-only)"
STATUSES = ("ok", "failed", "diverged")
_pools = None  # the fork server's threadpoolctl controller, inherited by its children (finding it takes ~10 ms)


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


def call_method(entry, model: nn.Module, data, config, ctx) -> tuple[nn.Module, dict, str, str | None]:
    """Run method `entry` (a method registry entry) on a copy of `model` in a process of its own.

    The call runs in a fresh child process (`bench.sandbox`) that gets copies of the model, the
    data (forget, retain, val: never the test split), the config and the context, with the
    caller's RNG states and device policy, and sends back (model, cost, status, error), status
    ok|failed|diverged. Nothing the method does reaches this process. In the child: a method
    that raises, exits or is interrupted by itself is `failed` with its error; NaN/inf loss or
    weights make it `diverged`; one that changes process-wide state (`bench.guard`) or its input
    data is `failed`. A child that dies or cannot send its model back is `failed` with the cause.
    `cost`: see `metered` (warmed up on the retain set); on a dead child only `wall_s` is known.
    Epoch progress reaches `ctx.progress`. Raises KeyboardInterrupt on the user's Ctrl-C.
    """
    setup = (entry.name, entry.fn.__module__, entry.loader or None)
    payload = (model, data, config_values(config), dataclasses.replace(ctx, progress=None), rng_states())
    warm = (_warm, (ctx.new_model, ctx.policy, tuple(data.retain.x.shape[1:]), ctx.recipe.batch_size,
                    data.num_classes))
    started = time.perf_counter()
    result = copy.deepcopy(model)
    try:
        (status, error, cost), blob = run_isolated(_call_in_child, setup, payload, lambda m: _progress(ctx, m),
                                                   warm, prepare_server)
        if status not in STATUSES or not (error is None or isinstance(error, str)):
            raise ChildFailed("its process sent a result that is not one")
        if status != "failed":
            _load_state(result, blob)
        return result, _checked_cost(cost), status, error
    except ChildFailed as e:
        cost = {"wall_s": time.perf_counter() - started, "gpu_s": None, "cpu_s": None, "peak_mem_bytes": None,
                "flops": None}
        return result, cost, "failed", str(e)


def call_method_many(entry, config, calls: list) -> list[tuple[nn.Module, dict, str, str | None]]:
    """`call_method` for several calls of one method and config in one process: the N seeds of
    the forget-quality protocol, a tuning trial's seeds, U-LiRA's reference models. `calls`:
    (model, data, ctx, the caller's RNG states right after seeding for that call) per call; calls
    that share a model or data send it once. Each call gets its own copies, RNG states, warm-up,
    clock and FLOP count, as in `call_method`, so its result is the one `call_method` gives; the
    process is paid once instead of N times. What a call does to its process can reach only the
    later calls of the same batch (the same method): a call that does not end `ok` ends the
    batch, and the calls after it run in a fresh process; a process that dies takes its batch
    with it, and each of its calls runs again alone (so the one that killed it is the one blamed)."""
    if not calls:
        return []
    setup = (entry.name, entry.fn.__module__, entry.loader or None)
    payload = (config_values(config), [(m, d, dataclasses.replace(c, progress=None), r) for m, d, c, r in calls])
    model, data, first, _ = calls[0]
    warm = (_warm, (first.new_model, first.policy, tuple(data.retain.x.shape[1:]), first.recipe.batch_size,
                    data.num_classes))
    started = time.perf_counter()
    try:
        results, blob = run_isolated(_call_many_in_child, setup, payload, lambda m: None, warm, prepare_server)
        states = torch.load(io.BytesIO(blob), map_location=next(model.parameters()).device, weights_only=True)
        if not (isinstance(results, list) and isinstance(states, list) and 0 < len(results) == len(states) <= len(calls)):
            raise ChildFailed("its process sent a result that is not one")
    except ChildFailed as e:  # which call killed the process is unknown: each runs again alone
        if len(calls) > 1:
            return [result for call in calls for result in call_method_many(entry, config, [call])]
        cost = {"wall_s": time.perf_counter() - started, "gpu_s": None, "cpu_s": None, "peak_mem_bytes": None,
                "flops": None}
        return [(copy.deepcopy(model), cost, "failed", str(e))]
    out = []
    for (status, error, cost), state, (model, *_) in zip(results, states, calls):
        result = copy.deepcopy(model)
        if status not in STATUSES or not (error is None or isinstance(error, str)):
            status, error, state = "failed", "its process sent a result that is not one", None
        try:
            if status != "failed":
                _apply_state(result, state)
            out.append((result, _checked_cost(cost), status, error))
        except ChildFailed as e:
            out.append((result, {"wall_s": 0.0, "gpu_s": None, "cpu_s": None, "peak_mem_bytes": None, "flops": None},
                        "failed", str(e)))
    return out + call_method_many(entry, config, calls[len(out):])


def _call_many_in_child(setup, receive, send) -> tuple[list, bytes]:
    """The child's side of `call_method_many`: each call as `_call_in_child` makes it, until one
    does not end ok; ([[status, error, cost], ...], a list of state dicts saved with torch.save)."""
    entry = load_method(*setup)
    values, calls = receive()
    results, states = [], []
    for model, data, ctx, rng in calls:
        (status, error, cost), state = _one_call(entry, copy.deepcopy(model), data, values, ctx, rng,
                                                 lambda done, total: None)
        results.append([status, error, cost])
        states.append(state)
        if status != "ok":
            break
    blob = io.BytesIO()
    torch.save(states, blob)
    return results, blob.getvalue()


def _progress(ctx, message) -> None:
    if isinstance(message, list) and len(message) == 2 and all(type(v) is int for v in message):
        ctx.progress(*message)


def _load_state(model: nn.Module, blob: bytes) -> None:
    """Load the state dict the child sent into `model` (the caller's copy of the original): read
    with torch.load(weights_only=True), so only tensors and plain containers, no code of the
    method's; the same keys and shapes, else ChildFailed."""
    try:
        state = torch.load(io.BytesIO(blob), map_location=next(model.parameters()).device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - whatever the child sent, the call fails with the reason
        raise ChildFailed(f"returned a model of another architecture than the original ({e})") from None
    _apply_state(model, state)


def _apply_state(model: nn.Module, state) -> None:
    """`state` into `model` if it has the same keys and shapes, else ChildFailed."""
    try:
        want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if not isinstance(state, dict) or {k: tuple(v.shape) for k, v in state.items()} != want:
            raise ValueError("other keys or shapes")
        model.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 - whatever the child sent, the call fails with the reason
        raise ChildFailed(f"returned a model of another architecture than the original ({e})") from None


def _checked_cost(cost) -> dict:
    """The cost the child measured, if every number is finite and not negative, else ChildFailed."""
    numbers = [v for v in cost.values() if not isinstance(v, str) and v is not None] if isinstance(cost, dict) else [0j]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in numbers):
        raise ChildFailed(f"its process reported an impossible cost ({cost})")
    return cost


def _call_in_child(setup, receive, send) -> tuple[list, bytes]:
    """The child's side of `call_method`: load the method, take the payload, call it once;
    ([status, error, cost], the returned model's state dict saved with torch.save)."""
    entry = load_method(*setup)
    model, data, values, ctx, rng = receive()
    result, state = _one_call(entry, model, data, values, ctx, rng, lambda done, total: send((done, total)))
    blob = io.BytesIO()
    if state is not None:
        torch.save(state, blob)
    return result, blob.getvalue()


def _one_call(entry, model, data, values, ctx, rng, progress) -> tuple[list, dict | None]:
    """One call in a method's process: ([status, error, cost], the model's state dict or None)."""
    config = entry.config(**values) if values is not None else None  # the method's own config class
    fn = entry.fn
    set_rng_states(rng)
    ctx.policy.apply(_pools)
    ctx = dataclasses.replace(ctx, progress=progress)
    handed = data.private_copy()  # what the method gets; `data` stays as sent, to compare with
    status, error = "ok", None
    cost: dict = {}
    with global_state_kept() as changed:
        try:
            with metered(model, handed.retain, ctx) as cost:
                model = fn(model, handed, config, ctx)
            check_finite(model)
        except Diverged as e:
            status, error = "diverged", str(e)
        except Exception as e:  # noqa: BLE001 - a failed call is recorded, the sweep goes on
            status, error = "failed", f"{type(e).__name__}: {e}"
        except SystemExit as e:  # a method that exits ends its own call, not the sweep
            status, error = "failed", f"called exit({e.code}); a method returns its model"
        except KeyboardInterrupt:  # raised by the method: the user's Ctrl-C never reaches this process
            status, error = "failed", "raised KeyboardInterrupt; a method returns its model"
    if changed:
        status, error = "failed", f"changed global state ({'; '.join(changed)})"
    elif not data.same_as(handed):
        status, error = "failed", CHANGED_DATA
    return [status, error, cost], (model.state_dict() if status != "failed" else None)


def prepare_server() -> None:
    """The fork server's preparation (`bench.sandbox`): import what calls need and make one
    training step of a small net on random inputs, on one thread (a process forked after OpenMP
    threads ran cannot use them), so that its children start warm."""
    global _pools
    import torch._dynamo  # noqa: F401 - torch imports it on the first optimizer (~1.1 s)

    torch.set_num_threads(1)
    import_builtin_methods()
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    with count_flops() as flops:  # the FLOP counter's first use costs ~30 ms: paid here, not in every child
        warm_up(net, torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))
    flops.total()
    pickle.loads(pickle.dumps(net))  # so is pickling a model's first time (~6 ms)
    _pools = threadpools()  # last: the pools of every library loaded above


def _warm(spec) -> None:
    """A child's warm-up while it waits for its call: the caller's device policy, one step of a
    model of its architecture on random images of its shape (it has no data), counted as a call's
    FLOPs are, and a model sent through pickle: each of these is slow the first time in a process."""
    new_model, policy, image_shape, batch_size, num_classes = spec
    policy.apply(_pools)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((batch_size, *image_shape), generator=g).to(policy.torch_device)
    y = torch.randint(0, num_classes, (batch_size,), generator=g).to(policy.torch_device)
    model = new_model()
    with count_flops() as flops:
        warm_up(model, policy.batch_format(x), y)
    flops.total()
    pickle.loads(pickle.dumps(model))


def rng_states() -> dict:
    """The global RNG states a method may draw from: torch (CPU and initialised CUDA), numpy, random."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": np.random.get_state(), "random": random.getstate()}


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None:
        torch.cuda.set_rng_state_all(states["cuda"])
    np.random.set_state(states["numpy"])
    random.setstate(states["random"])
