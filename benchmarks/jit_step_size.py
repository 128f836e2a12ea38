"""How large a step JiT can take on a suite's net: one official JiT pass per learning rate.

    python benchmarks/jit_step_size.py [--suite cifar10-cpu] [--lrs 3e-4 3e-5 1e-5 1e-6]
        [--sigma 0.01] [--zero-grad] [--fp32] [--data-root DIR] [--download] [--cache-dir DIR]

Loads (or trains, once, into the cache) the original of the suite's first tuning seed and its
first tuning forget set, as `unlearn-bench tune` does, then for each lr runs `methods/jit.py`'s
loop from that original, printing the largest weight norm after each forget batch and tuning's
validation metrics at the end (forget/retain/val accuracy and simple MIA in points, or why the
net collapsed). `--zero-grad` zeroes the gradients before every step instead of once (the
official loop accumulates them). `--fp32` trains and runs the original in fp32 with the plain
layout instead of the suite's policy: on a CPU that emulates bf16 (AVX2 only: 10x slower than
fp32, docs/speed.md) the policy's cifar10-cpu original takes about 14 minutes to train. Bad input
(an unknown suite, missing data, an lr or sigma that is not a positive number) ends in one line.
Only tuning data is touched (the test split raises); nothing is written outside the cache.
This is what docs/methods.md and `methods/jit.py` cite for JiT's lr search space.
"""

import argparse
import dataclasses
import math
import sys
import tempfile
from pathlib import Path

import bench.policy
from bench import tune
from bench.data import data_root_or_env, default_cache_dir
from bench.errors import UserError
from bench.progress import Progress
from bench.suites import load_suite
from bench.workspace import Folders, Workspace
from methods import jit


def positive(text: str) -> float:
    """argparse type: a finite number above 0 (JiTConfig's lr and sigma)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", default="cifar10-cpu")
    p.add_argument("--lrs", type=positive, nargs="+", default=[3e-4, 3e-5, 1e-5, 1e-6])
    p.add_argument("--sigma", type=positive, default=0.01)
    p.add_argument("--zero-grad", action="store_true")
    p.add_argument("--fp32", action="store_true")
    p.add_argument("--data-root", type=Path, default=data_root_or_env(None))
    p.add_argument("--download", action="store_true", help="let torchvision download missing data")
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = p.parse_args()
    if args.fp32:
        bench.policy.CPU_MIXED = frozenset()  # every CPU model in fp32, plain layout (a probe, not a record)
    with tempfile.TemporaryDirectory() as results:
        ws = Workspace(load_suite(args.suite), Folders(results_dir=Path(results), cache_dir=args.cache_dir,
                                                       data_root=args.data_root, download=args.download,
                                                       progress=Progress(enabled=False)),
                       guard_test=tune.forbid_test)
        fs, data = tune._problem(ws, ws.suite.forget_sets[0].display_name, 0)
        seed = ws.suite.tuning.seeds[0]
        original = ws.original(seed)[0]
        print(f"{args.suite}, tuning seed {seed}: {len(data.forget.y)} forget images, sigma {args.sigma}")
        print("original:", tune.measure(ws, original, data, fs.forgotten_class, seed))
        for lr in args.lrs:
            model = ws.new_model()
            model.load_state_dict(original.state_dict())
            norms = []

            def after_step(done: int, total: int) -> None:  # `jit` reports progress after each step
                norms.append(max(float(w.detach().norm()) for w in model.parameters()))
                if args.zero_grad:
                    model.zero_grad(set_to_none=True)  # = zero_grad before the next step

            ctx = dataclasses.replace(ws.context(seed, "jit step size"), progress=after_step)
            model = jit.jit(model, data, jit.JiTConfig(lr=lr, sigma=args.sigma), ctx)
            print(f"lr {lr:g}: largest weight norm per batch:", " ".join(f"{n:.3g}" for n in norms))
            print("  ", tune.measure(ws, model, data, fs.forgotten_class, seed))


if __name__ == "__main__":
    try:
        main()
    except UserError as e:  # the harness's one-line errors (unknown suite, missing data)
        sys.exit(f"jit_step_size: {e}")
