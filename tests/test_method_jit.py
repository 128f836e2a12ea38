"""JiT (methods/jit.py): its Lipschitz-ratio loss, the official loop's accumulating gradients, and
that it needs nothing but the forget set."""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from bench.api import RunContext, UnlearnData
from bench.data import Batcher, Split
from bench.models import build_model
from bench.policy import CPU
from methods.jit import JiTConfig, jit, lipschitz_loss, perturb


class Scale(nn.Module):
    """f(x) = w * x (flattened): its ratio ||f(x) - f(x')|| / ||x - x'|| is |w| exactly."""

    def __init__(self, w: float):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        return self.w * x.flatten(1)


class Untouchable:
    """Stands in for the retain and val splits: any use fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"JiT read .{name} of a split it must not need")

    def __len__(self):
        raise AssertionError("JiT took the length of a split it must not need")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, as the harness's CPU policy runs methods (bench.policy.CPU), restored
    after; torch.optim's first step imports its helpers (seconds), done here once per process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(CPU.threads)
    torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1).step()
    yield
    torch.set_num_threads(threads)


def context(seed: int) -> RunContext:
    generator = torch.Generator().manual_seed(seed)
    return RunContext(CPU, seed, generator, None, Batcher(None, None, 1, CPU), lambda: None)


def forget_only(n: int, seed: int = 0) -> UnlearnData:
    g = torch.Generator().manual_seed(seed)
    forget = Split(torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8),
                   torch.randint(0, 10, (n,), generator=g), np.arange(n))
    return UnlearnData(forget, Untouchable(), Untouchable(), 10)


@pytest.mark.parametrize("sigma", [0.01, 0.5, 5.0])
def test_loss_of_a_scaling_map_is_its_scale_summed_over_the_batch(sigma):
    """Hand-worked: for f = 3x every perturbation's ratio is 3, so the loss (summed over the batch,
    averaged over the N draws, as the official code) is 3 * batch size; the perturbed images stay
    inside the batch's own [min, max] (AddGaussianNoise clamps there)."""
    ctx = context(0)
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1
    model = Scale(3.0)
    cfg = JiTConfig(sigma=sigma, n_samples=4)
    assert lipschitz_loss(model, x, model(x), cfg, ctx).item() == pytest.approx(3.0 * 6, rel=1e-5)
    x2 = perturb(x, sigma, ctx.generator)
    assert x2.min() >= x.min() and x2.max() <= x.max() and not torch.equal(x2, x)


def test_steps_accumulate_gradients_like_the_official_loop_and_never_read_retain_or_val():
    """lipschitz.py zeroes gradients once before its loop, so step k moves along g_1 + ... + g_k.
    For f = w * x the batch gradient g_k does not depend on w (w > 0), so it can be replayed with
    the same noise draws; the method reads neither the retain nor the val split (Untouchable)."""
    data = forget_only(5)  # batches of 2, 2 and 1
    cfg = JiTConfig(lr=1e-3, sigma=0.5, n_samples=3, batch_size=2)
    model = jit(Scale(1.0), data, cfg, context(7))
    replay = context(7)
    grads = []
    for x, _ in replay.batches(data.forget, cfg.batch_size, shuffle=False, augment=False):
        probe = Scale(1.0)
        lipschitz_loss(probe, x, probe(x), cfg, replay).backward()
        grads.append(probe.w.grad.item())
    accumulated = sum(np.cumsum(grads))
    assert model.w.item() == pytest.approx(1.0 - cfg.lr * accumulated, rel=1e-5)
    assert abs(accumulated - sum(grads)) > 0.1  # tells the official loop from a plain one


def test_forget_samples_local_lipschitz_ratio_falls_and_a_seed_fixes_the_result():
    """The paper's aim: the output around each forget sample becomes smoother (a lower ratio under
    fresh noise, not the draws it trained on); the noise comes from the run's generator only."""
    torch.manual_seed(0)
    original = build_model("mlp", 1, 8, 10)
    data, cfg = forget_only(40), JiTConfig(lr=0.01, sigma=0.1, batch_size=40)
    x = Batcher(None, None, 1, CPU).to_float(data.forget.x)

    def ratio(model):
        with torch.no_grad():
            return lipschitz_loss(model, x, model(x), cfg, context(99)).item()

    first = jit(copy.deepcopy(original), data, cfg, context(1))
    again = jit(copy.deepcopy(original), data, cfg, context(1))
    other = jit(copy.deepcopy(original), data, cfg, context(2))
    assert ratio(first) < ratio(original)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(first.parameters(), other.parameters()))



@pytest.mark.slow  # trains the digits original once (~6 s with the interpreter's start)
def test_the_step_size_probe_runs_jit_and_reports_each_batch(tmp_path):
    """benchmarks/jit_step_size.py, which docs/methods.md cites for JiT's lr space: one line of
    weight norms per lr with one norm per forget batch (digits' first tuning forget set: 135
    images, 2 batches of 128), tuning's metrics after it, and nothing written but its cache."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent.parent / "benchmarks" / "jit_step_size.py"
    out = subprocess.run([sys.executable, str(script), "--suite", "digits", "--lrs", "1e-4", "3e-3",
                          "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("digits, tuning seed 1000: 135 forget images")
    norms = [line.split(":")[-1].split() for line in lines if "largest weight norm per batch" in line]
    assert [len(n) for n in norms] == [2, 2]
    assert "'collapse': None" in lines[3] and "collapsed" in lines[5]  # 1e-4 keeps the MLP, 3e-3 wipes it out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


@pytest.mark.slow  # two interpreter starts with torch (~3 s each)
def test_the_step_size_probe_takes_the_flags_its_errors_suggest(tmp_path):
    """Without the data, the probe says how to get it in one line (exit 1), and the flags that line
    suggests are the probe's own (it once told users to add --download, which it did not take)."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent.parent / "benchmarks" / "jit_step_size.py"
    run = lambda *args, env=None: subprocess.run([sys.executable, str(script), *args],  # noqa: E731
                                                 capture_output=True, text=True, cwd=tmp_path, timeout=120, env=env)
    missing = run("--data-root", str(tmp_path / "empty"), "--cache-dir", str(tmp_path / "cache"))
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert "CIFAR-10 not found" in missing.stderr and "Traceback" not in missing.stderr
    # the folders default to the harness's environment variables, as unlearn-bench's do
    from_env = run(env={**os.environ, "UNLEARN_BENCH_DATA": str(tmp_path / "env-data"),
                        "UNLEARN_BENCH_CACHE": str(tmp_path / "env-cache")})
    assert f"not found under '{tmp_path / 'env-data'}'" in from_env.stderr, from_env.stderr
    suggested = set(re.findall(r"--[a-z][a-z-]+", missing.stderr))
    assert "--download" in suggested
    offered = set(re.findall(r"--[a-z][a-z-]+", run("--help").stdout))
    assert suggested <= offered
