"""The command line's tools beside the suite commands: `unlearn-bench list`, `speed` and `gpu-check`."""

from __future__ import annotations

import json
from pathlib import Path

from bench.errors import UserError


def add_tool_commands(sub) -> None:
    lst = sub.add_parser("list", help="list methods, models, datasets, attacks or suites")
    lst.add_argument("what", choices=["methods", "models", "datasets", "attacks", "suites"])
    lst.add_argument("--plugin", action="append", default=[], help="also load this method file (repeatable)")
    spd = sub.add_parser("speed", help="images/s of the harness training loop against a kit-style "
                                       "ImageFolder + DataLoader loop, same net and images")
    spd.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    spd.add_argument("--model", default=None, help="net to train (default: cnn-small on CPU, resnet18-tv on CUDA)")
    spd.add_argument("--images", type=int, default=5000, help="training images per epoch (default: 5000)")
    spd.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch (default: 2)")
    spd.add_argument("--batch-size", type=int, default=128)
    spd.add_argument("--workers", type=int, default=None, help="kit-style DataLoader workers (default: min(2, CPUs))")
    spd.add_argument("--no-compile", action="store_true", help="on CUDA, skip the torch.compile variant")
    spd.add_argument("--output", type=Path, default=None, help="also write the numbers to this JSON file")
    spd.add_argument("--data-root", type=Path, default=None,
                     help="where the CIFAR-10 ImageFolder .tar.gz lives (default: $UNLEARN_BENCH_DATA; "
                          "random JPEGs without one)")
    gpu = sub.add_parser("gpu-check", help="on one GPU (≤ 10 min): the speed benchmark and a shortened "
                                           "cifar10-kit run, numbers written to a JSON file")
    gpu.add_argument("--output", type=Path, default=Path("gpu-check.json"), help="default: gpu-check.json")
    gpu.add_argument("--kit-epochs", type=int, default=4, help="training epochs of the shortened cifar10-kit")
    gpu.add_argument("--speed-images", type=int, default=10000, help="images per epoch in the speed benchmark")
    gpu.add_argument("--data-root", type=Path, default=None, help="where CIFAR-10 lives (default: $UNLEARN_BENCH_DATA)")
    gpu.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10")


def _positive(**values) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} {value}: give a positive number.")


def _output_file(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"--output '{path}' is a folder; pass a file name such as {path / 'speed.json'}.")


def cmd_speed(args) -> int:
    import re

    from bench.data import data_root_or_env

    _positive(images=args.images, epochs=args.epochs, batch_size=args.batch_size)
    if args.workers is not None and args.workers < 0:
        raise UserError(f"--workers {args.workers}: give 0 or more.")
    if args.output is not None:
        _output_file(args.output)
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", args.device):
        raise UserError(f"--device '{args.device}': use auto, cpu, cuda or cuda:N.")
    from bench.environment import pick_device
    from bench.files import write_text
    from bench.models import model_registry
    from bench.speed import default_workers, speed

    device = pick_device(args.device)
    model = args.model or ("resnet18-tv" if device.type == "cuda" else "cnn-small")
    model_registry.get(model)
    report = speed(device, model, args.images, args.epochs, args.batch_size,
                   default_workers() if args.workers is None else args.workers, data_root_or_env(args.data_root),
                   compile=not args.no_compile)
    print(report.table())
    if args.output is not None:
        print(f"written: {write_text(args.output, json.dumps(report.to_dict(), indent=2) + chr(10))}")
    return 0


def cmd_gpu_check(args) -> int:
    from bench.data import data_root_or_env
    from bench.gpu_check import gpu_check

    _positive(kit_epochs=args.kit_epochs, speed_images=args.speed_images)
    _output_file(args.output)
    gpu_check(data_root_or_env(args.data_root), args.download, args.output, args.kit_epochs, args.speed_images)
    print(f"written: {args.output}")
    return 0


def cmd_list(args) -> int:
    from bench.attacks import attack_registry
    from bench.data import dataset_registry
    from bench.methods_loader import load_plugin, method_registry
    from bench.models import model_registry
    from bench.suites import SUITES_DIR, load_suite, suite_names

    for plugin in args.plugin:
        load_plugin(plugin)
    if args.what == "suites":
        for name in suite_names():
            print(f"{name:<16} {load_suite(str(SUITES_DIR / f'{name}.yaml')).description}")
        return 0
    registry = {"methods": method_registry(), "models": model_registry, "datasets": dataset_registry,
                "attacks": attack_registry}[args.what]
    for entry in registry.entries():
        print(f"{entry.name:<18} {entry.description}")
    return 0


TOOL_COMMANDS = {"list": cmd_list, "speed": cmd_speed, "gpu-check": cmd_gpu_check}
