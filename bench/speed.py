"""How fast the harness trains, against a kit-style input pipeline, on the same net and images.

The *harness* loop is the one every run uses: uint8 images resident on the device, batched
augmentation (random crop with padding 4 + horizontal flip) as tensor ops, normalisation on the
device, and the precision and memory format the runs' device policy picks for the model
(`bench.policy`; `bench.data.Batcher`, `bench.train.run_epochs`). Where that policy is not plain
fp32 the loop is also timed in fp32 with the plain layout, to show what the policy gains.
The *kit-style* loop is how the NeurIPS 2023 unlearning kit and most unlearning repositories feed
a model: `torchvision.datasets.ImageFolder` over image files, per-sample PIL transforms
(RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize), a `DataLoader` with worker
processes, float32. Both train the same freshly seeded net with the same SGD on the same files,
batch size and epoch count; each is timed over its epochs after one untimed warm-up epoch (worker
start-up, cuDNN autotuning, compilation), with CUDA events on a GPU.

On CUDA the model is also timed under `torch.compile` (default mode, and "reduce-overhead", which
replays CUDA graphs).
"""

from __future__ import annotations

import os
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from bench.policy import DevicePolicy
from bench.data import CIFAR10_CLASSES, Batcher, Split
from bench.errors import UserError
from bench.models import build_model
from bench.train import run_epochs

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


@dataclass
class LoopSpeed:
    loop: str
    images_per_s: float
    timed_s: float
    warmup_s: float


@dataclass
class SpeedReport:
    device: str
    model: str
    images: int
    epochs: int
    batch_size: int
    workers: int
    source: str
    loops: list
    notes: list

    def ratio(self, loop: str, baseline: str = "kit-style") -> float:
        speeds = {s.loop: s.images_per_s for s in self.loops}
        return speeds[loop] / speeds[baseline]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ratios_to_kit_style"] = {s.loop: round(self.ratio(s.loop), 3) for s in self.loops}
        return out

    def table(self) -> str:
        lines = [f"{self.model} on {self.device}, {self.images} images ({self.source}), batch {self.batch_size}, "
                 f"{self.epochs} timed epochs after 1 warm-up, kit-style with {self.workers} workers",
                 f"{'loop':<34}{'images/s':>10}{'x kit':>8}{'timed s':>9}{'warm-up s':>11}"]
        for s in self.loops:
            lines.append(f"{s.loop:<34}{s.images_per_s:>10.0f}{self.ratio(s.loop):>8.2f}"
                         f"{s.timed_s:>9.2f}{s.warmup_s:>11.2f}")
        return "\n".join(lines + self.notes)


def image_folder(out: Path, images: int, data_root: Path | None) -> str:
    """Write `images` CIFAR-10 training JPEGs in ImageFolder layout under `out/<class>/`.

    From the shared ImageFolder tarball when `data_root` has one (the first files of each class,
    in turn); otherwise random 32x32 images saved as JPEG quality 75 like that copy. Returns
    where the images came from."""
    tars = sorted(Path(data_root).glob("cifar10*.tar.gz")) if data_root and Path(data_root).is_dir() else []
    if data_root and Path(data_root).is_file():
        tars = [Path(data_root)]
    if tars:
        per_class = -(-images // len(CIFAR10_CLASSES))
        taken: dict[str, int] = {}
        with tarfile.open(tars[0]) as tar:
            for member in tar:
                parts = Path(member.name).parts
                if member.isfile() and len(parts) >= 3 and parts[-3] == "train" \
                        and taken.get(parts[-2], 0) < per_class and sum(taken.values()) < images:
                    taken[parts[-2]] = taken.get(parts[-2], 0) + 1
                    (out / parts[-2]).mkdir(parents=True, exist_ok=True)
                    (out / parts[-2] / parts[-1]).write_bytes(tar.extractfile(member).read())
        if sum(taken.values()) < images:
            raise UserError(f"'{tars[0]}' has only {sum(taken.values())} training images; pass --images "
                            f"{sum(taken.values())} or fewer.")
        return f"CIFAR-10 JPEGs from {tars[0].name}"
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(images):
        folder = out / CIFAR10_CLASSES[i % len(CIFAR10_CLASSES)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:05d}.jpg", quality=75)
    return "random JPEGs (no CIFAR-10 copy under --data-root)"


def decode_folder(folder: Path, device: torch.device) -> Split:
    """The same files the kit-style loop reads, decoded once into a uint8 split on the device."""
    from torchvision.datasets import ImageFolder

    dataset = ImageFolder(str(folder))
    x = np.stack([np.asarray(dataset.loader(p).convert("RGB")).transpose(2, 0, 1) for p, _ in dataset.samples])
    y = np.array(dataset.targets, dtype=np.int64)
    return Split(torch.as_tensor(x, device=device), torch.as_tensor(y, device=device), np.arange(len(y)))


class Clock:
    """Seconds between start() and stop(): CUDA events on a GPU (after a synchronise), else perf_counter."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def start(self):
        if self.cuda:
            torch.cuda.synchronize()
            self._start = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._start = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            torch.cuda.synchronize()
            return self._start.elapsed_time(end) / 1000.0
        return time.perf_counter() - self._start


def _timed(name: str, epoch, images: int, epochs: int, clock: Clock) -> LoopSpeed:
    clock.start()
    epoch()
    warmup = clock.stop()
    clock.start()
    for _ in range(epochs):
        epoch()
    timed = clock.stop()
    return LoopSpeed(name, images * epochs / timed, round(timed, 3), round(warmup, 3))


def _fresh_model(name: str, device: torch.device, policy: DevicePolicy | None = None, compile: str | None = None):
    """A seeded model in `policy`'s memory format (none: the plain layout) and what to call for its
    forward pass (the model, or `torch.compile` of it in `compile` mode)."""
    torch.manual_seed(0)
    model = build_model(name, 3, 32, len(CIFAR10_CLASSES)).to(device)
    if policy is not None:
        model = policy.module_format(model)
    return model, (torch.compile(model, mode=compile) if compile else model)


def harness_speed(name: str, model_name: str, split: Split, device, batch_size, epochs, clock,
                  policy: DevicePolicy, compile: str | None = None) -> LoopSpeed:
    """The runs' loop under `policy` (its batches, memory format and autocast)."""
    model, forward = _fresh_model(model_name, device, None if compile else policy, compile)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    batcher, generator = Batcher(MEAN, STD, 3, policy), torch.Generator().manual_seed(0)
    ctx = SimpleNamespace(policy=policy, progress=lambda *a: None)

    def batches():
        return batcher.batches(split, batch_size, shuffle=True, augment=True, generator=generator)

    def loss(batch):
        x, y = batch
        return F.cross_entropy(forward(x), y)

    return _timed(name, lambda: run_epochs(model, optimizer, 1, batches, loss, ctx), len(split), epochs, clock)


def kit_speed(model_name: str, folder: Path, device, batch_size, epochs, workers, clock) -> LoopSpeed:
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    dataset = ImageFolder(str(folder), transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                                         generator=torch.Generator().manual_seed(0))
    model, _ = _fresh_model(model_name, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def epoch():
        model.train()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return _timed("kit-style", epoch, len(dataset), epochs, clock)


def speed(device: torch.device, model: str, images: int, epochs: int, batch_size: int, workers: int,
          data_root: Path | None, compile: bool = True) -> SpeedReport:
    """Time the kit-style loop and the harness loop(s) in one process, one after the other."""
    with tempfile.TemporaryDirectory(prefix="unlearn-bench-speed-") as tmp:
        folder = Path(tmp) / "train"
        source = image_folder(folder, images, data_root)
        split = decode_folder(folder, device)
        clock, notes = Clock(device), []
        policy = DevicePolicy.decide(device, torch.get_num_threads(), model=model)  # the runs' own
        plain = DevicePolicy(str(device), policy.threads, bf16=False, channels_last=False, compile=False)
        loops = [kit_speed(model, folder, device, batch_size, epochs, workers, clock),
                 harness_speed("harness", model, split, device, batch_size, epochs, clock, policy)]
        notes.append(f"harness: the runs' device policy for {model} on {device.type}: {_describe(policy)}")
        if policy != plain:
            loops.append(harness_speed(f"harness in {_describe(plain)}", model, split, device, batch_size, epochs,
                                       clock, plain))
        if device.type == "cuda":
            for mode in (("default", "reduce-overhead") if compile else ()):
                try:  # compile the plain model: inductor rejected a channels_last one (weight strides)
                    loops.append(harness_speed(f"harness + compile ({mode})", model, split, device, batch_size,
                                               epochs, clock, policy, compile=mode))
                except Exception as e:  # noqa: BLE001 - a compiler that fails here is a finding, not a crash
                    notes.append(f"torch.compile ({mode}) failed: {type(e).__name__}: "
                                 f"{str(e).splitlines()[0][:200]}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return SpeedReport(name, model, len(split), epochs, batch_size, workers, source, loops, notes)


def _describe(policy: DevicePolicy) -> str:
    return ", ".join(["bf16" if policy.bf16 else "fp32", "channels_last" if policy.channels_last else "plain layout"])


def default_workers() -> int:
    return min(2, os.cpu_count() or 1)
