"""`unlearn-bench run | rescore | tune | leaderboard | list | speed | gpu-check`: the command line. User errors end in one line, exit 2."""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from bench.errors import UserError
from bench.files import ResultsLock

DEFAULT_SUITE = "digits"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unlearn-bench",
        description="Benchmark machine-unlearning methods: run suites, build the leaderboard.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a suite (default: digits) and regenerate the leaderboard")
    run.add_argument("suite", nargs="?", default=DEFAULT_SUITE, help="built-in suite name or path to a .yaml")
    run.add_argument("--methods", nargs="+", help="run only these methods (original and retrain always run)")
    run.add_argument("--seeds", nargs="+", type=int, help="run only these seeds of the suite")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a hyperparameter, e.g. finetune.lr=0.01 or recipe.epochs=3 (repeatable)")
    run.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    run.add_argument("--download", action="store_true", help="let torchvision download missing data")
    run.add_argument("--tuned", action="store_true",
                     help="run with the configs `unlearn-bench tune` chose (<results>/<suite>/tuned.yaml)")
    _executor_args(run)
    run.add_argument("--no-leaderboard", action="store_true", help="do not regenerate the leaderboard")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    _common(run)

    rescore = sub.add_parser("rescore", help="score the suite's attacks on existing records from their saved "
                                             "outputs (missing attacks, or attacks whose code changed)")
    rescore.add_argument("suite", nargs="?", default=DEFAULT_SUITE, help="built-in suite name or path to a .yaml")
    rescore.add_argument("--all", action="store_true", help="rescore every attack of every record")
    rescore.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                         help="as for run: the configs whose records to rescore")
    rescore.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    rescore.add_argument("--download", action="store_true", help=argparse.SUPPRESS)
    rescore.add_argument("--no-leaderboard", action="store_true", help="do not regenerate the leaderboard")
    rescore.add_argument("--quiet", action="store_true", help="no progress output")
    _common(rescore)

    tune = sub.add_parser("tune", help="tune every method's hyperparameters with the same Optuna budget on "
                                       "validation data (writes <results>/<suite>/tuned.yaml)")
    tune.add_argument("suite", nargs="?", default=DEFAULT_SUITE, help="built-in suite name or path to a .yaml")
    tune.add_argument("--trials", type=int, default=None, help="trials per method, for every method "
                      "(default: the suite's tuning.trials)")
    tune.add_argument("--methods", nargs="+", help="tune only these methods")
    tune.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    tune.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    tune.add_argument("--download", action="store_true", help="let torchvision download missing data")
    tune.add_argument("--quiet", action="store_true", help="no progress output")
    _executor_args(tune)
    _common(tune)

    repro = sub.add_parser("reproduce", help="rerun published records into a scratch folder from an empty cache; "
                                             "judge every metric by its resolution (or, on other hardware, the "
                                             "published seeds' spread) and the board's cells and ranks")
    repro.add_argument("suite", nargs="?", default=DEFAULT_SUITE, help="built-in suite name or path to a .yaml")
    repro.add_argument("--methods", nargs="+", help="rerun only these methods (original and retrain always run)")
    repro.add_argument("--seeds", nargs="+", type=int, help="rerun only these seeds of the suite")
    repro.add_argument("--scratch", type=Path, default=None,
                       help="a new or empty folder for the rerun (default: a new folder in the system's temp dir)")
    repro.add_argument("--tolerance", type=float, default=0.0,
                       help="absolute difference a metric may show beyond its declared resolution (on the same "
                            "hardware fingerprint: beyond equality) and still count as within resolution (default: 0)")
    repro.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    repro.add_argument("--download", action="store_true", help="let torchvision download missing data")
    repro.add_argument("--quiet", action="store_true", help="no progress output")
    _common(repro)

    board = sub.add_parser("leaderboard", help="regenerate the leaderboard from the results folder")
    _paths(board)
    board.add_argument("--format", choices=("md", "csv", "json"), default="md",
                       help="md: the leaderboard (default); csv or json: its aggregated rows, one per suite, "
                            "forget set and method (default file: leaderboard.csv/.json beside leaderboard.md)")

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

    lst = sub.add_parser("list", help="list methods, models, datasets, attacks or suites")
    lst.add_argument("what", choices=["methods", "models", "datasets", "attacks", "suites"])
    lst.add_argument("--plugin", action="append", default=[], help="also load this method file (repeatable)")
    return parser


def _paths(p):
    p.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    p.add_argument("--leaderboard", type=Path, default=None,
                   help="output file (default: leaderboard.md beside the results folder)")


def _executor_args(p):
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: every job in this process (default); ray: jobs as Ray tasks")
    p.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                   help="the Ray cluster to use (default: start a local Ray instance)")
    p.add_argument("--job-cpus", type=float, default=None,
                   help="CPUs per job on Ray (default: the suite's resources.cpus, else 1)")
    p.add_argument("--job-gpus", type=float, default=None,
                   help="GPUs per job on Ray; a fraction shares one GPU between small jobs "
                        "(default: the suite's resources.gpus, else 0)")


def _check_executor_args(args) -> None:
    if args.executor != "ray" and args.ray_address:
        raise UserError("--ray-address works with --executor ray only; add --executor ray.")
    if (args.job_cpus is not None and args.job_cpus <= 0) or (args.job_gpus is not None and args.job_gpus < 0):
        raise UserError(f"--job-cpus {args.job_cpus} --job-gpus {args.job_gpus}: give more than 0 CPUs "
                        "and 0 or more GPUs per job.")


def _executor(args, run, request):
    """The executor the command line asks for, for this SuiteRun and its plain-data request."""
    from bench.executors import LocalExecutor, RayExecutor

    if args.executor == "ray":
        wants = run.suite.resources
        cpus = wants.cpus if args.job_cpus is None else args.job_cpus
        gpus = wants.gpus if args.job_gpus is None else args.job_gpus
        return RayExecutor(request.absolute(), args.ray_address, cpus, gpus)
    return LocalExecutor(run)


def _common(p):
    _paths(p)
    p.add_argument("--plugin", action="append", default=[], help="load a method file from outside the repo (repeatable)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="where datasets live (default: $UNLEARN_BENCH_DATA)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="decoded datasets and trained models (default: $UNLEARN_BENCH_CACHE or ~/.cache/unlearn-bench)")
    p.add_argument("--allow-dirty", action="store_true",
                   help="write into the checkout's results folder although the code has uncommitted changes")


def _leaderboard_path(args) -> Path:
    return args.leaderboard or args.results.parent / "leaderboard.md"


def _check_paths(args) -> None:
    """Paths and devices that cannot work end the command before anything is read or written."""
    if args.results.exists() and not args.results.is_dir():
        raise UserError(f"--results '{args.results}' is a file, not a folder; pass a folder.")
    board = _leaderboard_path(args)
    if board.is_dir():
        raise UserError(f"--leaderboard '{board}' is a folder; pass a file name such as {board / 'leaderboard.md'}.")
    _check_device(getattr(args, "device", "auto"))


def _check_device(device: str) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise UserError(f"--device '{device}': use auto, cpu, cuda or cuda:N.")


def _prepare(args):
    """Plugins, suite, --methods/--seeds and options: everything checked before anything is written.
    Returns the suite, its run options and the plain-data request that rebuilds them in a worker."""
    from bench.executors import RunRequest
    from bench.methods_loader import load_plugin, method_registry
    from bench.progress import Progress
    from bench.settings import parse_overrides
    from bench.suites import load_suite, resolve_suite_path
    from bench.tune import TUNED_FILE

    _check_paths(args)
    for plugin in args.plugin:
        load_plugin(plugin)
    overrides = parse_overrides(args.overrides)
    own = [n for n, _ in load_suite(args.suite).methods]
    for name in getattr(args, "methods", None) or []:
        method_registry().get(name)  # an unknown name: one line with the closest registered names
    # a registered method the suite lacks runs with its defaults (and --set): a method author's first run
    added = tuple(m for m in getattr(args, "methods", None) or [] if m not in own and m not in ("original", "retrain"))
    suite = load_suite(args.suite, overrides, added)
    tuned_file = args.results / suite.name / TUNED_FILE
    # `run` uses the folder's tuned configs whenever it has them; `--tuned` insists on them
    use_tuned = getattr(args, "tuned", False) or (args.command == "run" and tuned_file.is_file())
    for seed in getattr(args, "seeds", None) or []:
        if seed not in suite.seeds:
            raise UserError(f"--seeds {seed}: not a seed of suite '{suite.name}' ({list(suite.seeds)}).")
    data_root, path = _data_root(args), lambda p: str(p) if p is not None else None  # noqa: E731
    request = RunRequest(
        suite=str(resolve_suite_path(args.suite).resolve()), overrides=overrides,
        plugins=tuple(str(Path(p).resolve()) for p in args.plugin), added_methods=added, tuned_file=path(tuned_file) if use_tuned else None,
        results_dir=str(args.results), cache_dir=path(args.cache_dir), data_root=path(data_root),
        download=args.download, device=args.device,
        methods=tuple(args.methods) if getattr(args, "methods", None) else None,
        seeds=tuple(args.seeds) if getattr(args, "seeds", None) else None)
    suite, opts = request.load(Progress(enabled=not args.quiet))
    return suite, opts, request


@contextmanager
def _locked_suite(args):
    """Paths checked, the results folder locked (before torch is imported, so a second driver is
    refused at once), then the suite and options, all checked before anything is written."""
    _check_paths(args)
    with ResultsLock(args.results):
        if not args.allow_dirty:
            from bench.environment import check_publishable

            check_publishable(args.results)
        yield _prepare(args)


def _write_board(args) -> None:
    if not args.no_leaderboard:
        from bench.leaderboard import write_leaderboard

        print(f"leaderboard: {write_leaderboard(args.results, _leaderboard_path(args))}")


def cmd_run(args) -> int:
    _check_executor_args(args)
    with _locked_suite(args) as (suite, opts, request):
        from bench.executors import run_suite
        from bench.rescore import rescore_suite
        from bench.runner import SuiteRun

        run = SuiteRun(suite, opts)
        counts = run_suite(run, _executor(args, run, request))
        rescored = rescore_suite(run)
        print(f"{suite.name}: {counts['ok']} ok, {counts['failed']} failed, {counts['diverged']} diverged, "
              f"{counts['collapsed']} collapsed, {counts['skipped']} skipped (already recorded), "
              f"{rescored} rescored; records in {args.results / suite.name}")
        _write_board(args)
    return 0


def cmd_rescore(args) -> int:
    with _locked_suite(args) as (suite, opts, _):
        from bench.rescore import rescore_suite
        from bench.runner import SuiteRun

        if not (args.results / suite.name).is_dir():
            raise UserError(f"no records of suite '{suite.name}' under '{args.results}'; run it first.")
        rescored = rescore_suite(SuiteRun(suite, opts), force=args.all)
        print(f"{suite.name}: {rescored} records rescored from their saved outputs")
        _write_board(args)
    return 0


def cmd_tune(args) -> int:
    if args.trials is not None and args.trials < 1:
        raise UserError(f"--trials {args.trials}: give at least 1 trial per method.")
    _check_executor_args(args)
    with _locked_suite(args) as (suite, opts, request):
        from bench.runner import SuiteRun
        from bench.tune import read_tuned, tune_suite

        methods = [m for m, _ in suite.methods if m != "retrain" and (not args.methods or m in args.methods)]
        run = SuiteRun(suite, opts)
        path = tune_suite(run, methods, args.trials, _executor(args, run, request))
        tuned = read_tuned(path)
        for m in methods:
            for forget_set, t in tuned[m].items():
                print(f"{m:<16} {forget_set:<14} {t['trials']} trials, best objective {t['best_objective']}, "
                      f"{t['tuning_gflops']} GFLOPs{'  (' + t['note'] + ')' if t.get('note') else ''}")
        print(f"tuned configs: {path}; run them with `unlearn-bench run {suite.name} --tuned`")
    return 0


def cmd_reproduce(args) -> int:
    import tempfile
    import time
    from argparse import Namespace

    from bench.methods_loader import load_plugin
    from bench.reproduce import prepare_scratch, published_records
    from bench.reproduce_report import report
    from bench.suites import load_suite
    from bench.tune import TUNED_FILE

    if args.cache_dir is not None or args.allow_dirty:
        raise UserError("reproduce always starts from an empty cache and writes only into --scratch; drop "
                        "--cache-dir and --allow-dirty.")
    if not math.isfinite(args.tolerance) or args.tolerance < 0:
        raise UserError(f"--tolerance {args.tolerance:g}: give 0 (exact) or a positive, finite difference.")
    for plugin in args.plugin:
        load_plugin(plugin)
    name = load_suite(args.suite).name
    methods = None if not args.methods else {"original", "retrain", *args.methods}
    unreadable: list[str] = []
    published = published_records(args.results, name, methods, set(args.seeds) if args.seeds else None, unreadable)
    if not published:
        raise UserError(f"no published records of suite '{name}'{' for those methods/seeds' if args.methods or args.seeds else ''} "
                        f"under '{args.results}'; pass --results where they are.")
    if args.scratch is not None and args.scratch.exists() and (not args.scratch.is_dir() or any(args.scratch.iterdir())):
        raise UserError(f"--scratch '{args.scratch}' exists and is not an empty folder; reproduce starts from "
                        "nothing: pass a new folder.")
    made = args.scratch is None or not args.scratch.exists()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix=f"unlearn-bench-reproduce-{name}-"))
    board = scratch / "leaderboard.md"
    rerun = Namespace(**{**vars(args), "command": "run", "results": scratch / "results", "cache_dir": scratch / "cache",
                         "leaderboard": board, "overrides": [], "tuned": False, "allow_dirty": True})
    started = time.perf_counter()
    try:
        prepare_scratch(scratch, args.results, name, TUNED_FILE)
        with _locked_suite(rerun) as (suite, opts, _):
            from bench.executors import run_suite
            from bench.leaderboard import write_leaderboard
            from bench.runner import SuiteRun

            counts = run_suite(SuiteRun(suite, opts))
            write_leaderboard(rerun.results, board)
    except UserError:  # refused before anything ran: leave the scratch folder as it was (new or empty)
        shutil.rmtree(scratch) if made else [shutil.rmtree(p) if p.is_dir() else p.unlink() for p in scratch.iterdir()]
        raise
    elapsed = time.perf_counter() - started
    passed = report(published, published_records(args.results, name), rerun.results, args.tolerance,
                                  unreadable, (args.results, _leaderboard_path(args), name))
    print(f"{name}: {passed[1]} ({counts['ok']} runs in {elapsed:.0f} s from an empty cache). Rerun records: "
          f"{rerun.results}; their leaderboard: {board}; published: {args.results} and {_leaderboard_path(args)}.")
    return 0 if passed[0] else 1


def cmd_leaderboard(args) -> int:
    if not args.results.is_dir():
        raise UserError(f"results folder '{args.results}' does not exist; run `unlearn-bench run` first "
                        f"or pass --results.")
    _check_paths(args)
    with ResultsLock(args.results):
        from bench.leaderboard import write_export, write_leaderboard

        if args.format == "md":
            print(write_leaderboard(args.results, _leaderboard_path(args)))
        else:
            output = args.leaderboard or _leaderboard_path(args).with_suffix(f".{args.format}")
            print(write_export(args.results, output, args.format))
    return 0


def _data_root(args) -> Path | None:
    from bench.data import DATA_ROOT_ENV

    return args.data_root or (Path(os.environ[DATA_ROOT_ENV]) if os.environ.get(DATA_ROOT_ENV) else None)


def _positive(**values) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} {value}: give a positive number.")


def _output_file(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"--output '{path}' is a folder; pass a file name such as {path / 'speed.json'}.")


def cmd_speed(args) -> int:
    _positive(images=args.images, epochs=args.epochs, batch_size=args.batch_size)
    if args.workers is not None and args.workers < 0:
        raise UserError(f"--workers {args.workers}: give 0 or more.")
    if args.output is not None:
        _output_file(args.output)
    _check_device(args.device)
    import json

    from bench.environment import pick_device
    from bench.files import write_text
    from bench.models import model_registry
    from bench.speed import default_workers, speed

    device = pick_device(args.device)
    model = args.model or ("resnet18-tv" if device.type == "cuda" else "cnn-small")
    model_registry.get(model)
    report = speed(device, model, args.images, args.epochs, args.batch_size,
                   default_workers() if args.workers is None else args.workers, _data_root(args),
                   compile=not args.no_compile)
    print(report.table())
    if args.output is not None:
        print(f"written: {write_text(args.output, json.dumps(report.to_dict(), indent=2) + chr(10))}")
    return 0


def cmd_gpu_check(args) -> int:
    _positive(kit_epochs=args.kit_epochs, speed_images=args.speed_images)
    _output_file(args.output)
    from bench.gpu_check import gpu_check

    gpu_check(_data_root(args), args.download, args.output, args.kit_epochs, args.speed_images)
    print(f"written: {args.output}")
    return 0


def cmd_list(args) -> int:
    from bench.suites import SUITES_DIR, load_suite, suite_names
    from bench.data import dataset_registry
    from bench.methods_loader import load_plugin, method_registry
    from bench.attacks import attack_registry
    from bench.models import model_registry

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        commands = {"run": cmd_run, "rescore": cmd_rescore, "tune": cmd_tune, "reproduce": cmd_reproduce,
                    "leaderboard": cmd_leaderboard,
                    "list": cmd_list, "speed": cmd_speed, "gpu-check": cmd_gpu_check}
        return commands[args.command](args)
    except UserError as e:
        print(f"unlearn-bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unlearn-bench: interrupted; finished runs are recorded, rerun to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
