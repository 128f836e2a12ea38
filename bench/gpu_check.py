"""`unlearn-bench gpu-check`: what one GPU does with the harness, measured in a few minutes.

Two parts, both written to one JSON file: the speed benchmark (`bench.speed`) with the kit's
net (torchvision ResNet-18), and a shortened `cifar10-kit` run from an empty cache (ResNet-18 on
all 50,000 training images, a few epochs; original, retrain and finetune on seed 0; simple MIA)
into a scratch folder, so nothing published is touched. The GPU path it exercises: data and
augmentation on the device, channels_last inputs, bf16 autocast, CUDA-event timing.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from bench.errors import UserError

KIT_METHODS = ("original", "retrain", "finetune")


def shortened_kit(data_root: Path | None, download: bool, epochs: int, scratch: Path) -> list[dict]:
    """Run cifar10-kit with `epochs` training epochs on seed 0 into `scratch`; one summary per run."""
    from bench.runner import run_suite
    from bench.session import open_session
    from bench.store import load_records
    from bench.worker import RunRequest, local_executor

    results = scratch / "results"
    request = RunRequest("cifar10-kit", {"recipe": {"epochs": epochs}}, methods=("finetune",),
                         results_dir=str(results), cache_dir=str(scratch / "cache"),
                         data_root=str(data_root) if data_root else None, download=download, device="cuda")
    s = open_session(request, seeds=(0,), tuned="off")
    run_suite(s.ws, s.plan, local_executor(s.ws), results)
    out = []
    for r in sorted(load_records(results), key=lambda r: KIT_METHODS.index(r["method"])):
        m, c = r["metrics"], r["cost"]
        out.append({"method": r["method"], "status": r["status"], "forget_acc": m.get("forget_acc"),
                    "retain_acc": m.get("retain_acc"), "test_acc": m.get("test_acc"),
                    "simple_mia_accuracy": m.get("mia", {}).get("simple", {}).get("accuracy"),
                    "wall_s": c.get("wall_s"), "gpu_s": c.get("gpu_s"), "peak_mem_bytes": c.get("peak_mem_bytes")})
    return out


def gpu_check(data_root: Path | None, download: bool, output: Path, kit_epochs: int, speed_images: int) -> dict:
    import torch

    from bench.files import write_text
    from bench.speed import default_workers, speed

    if not torch.cuda.is_available():
        raise UserError("gpu-check needs a CUDA GPU and this machine has none; run `unlearn-bench speed` "
                        "for the CPU numbers.")
    device = torch.device("cuda")
    started = time.perf_counter()
    report = speed(device, "resnet18-tv", speed_images, 2, 128, default_workers(), data_root)
    print(report.table(), flush=True)
    result = {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__, "cuda": torch.version.cuda,
              "speed": report.to_dict()}
    write_text(output, json.dumps(result, indent=2) + "\n")  # kept if the kit run below fails
    with tempfile.TemporaryDirectory(prefix="unlearn-bench-gpu-check-") as tmp:
        kit_start = time.perf_counter()
        runs = shortened_kit(data_root, download, kit_epochs, Path(tmp))
        kit_s = time.perf_counter() - kit_start
    result.update(cifar10_kit={"epochs": kit_epochs, "seed": 0, "wall_s_total": round(kit_s, 1), "runs": runs},
                  total_s=round(time.perf_counter() - started, 1))
    write_text(output, json.dumps(result, indent=2) + "\n")
    number = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for r in runs:
        print(f"cifar10-kit ({kit_epochs} epochs) {r['method']:<9} {r['status']:<9} forget {number(r['forget_acc'])} "
              f"retain {number(r['retain_acc'])} test {number(r['test_acc'])} "
              f"simple MIA {number(r['simple_mia_accuracy'])} wall {number(r['wall_s'])} s")
    return result
