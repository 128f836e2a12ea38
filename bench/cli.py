"""`unlearn-bench run | rescore | tune | reproduce | leaderboard | list | speed | gpu-check`: the command line.

Each option shared by several commands is declared once, in a parent parser; what a command
does beyond checking its arguments lives in the modules it calls (`bench.session`,
`bench.runner`, `bench.tune`, `bench.reproduction`, ...). User errors end in one line, exit 2.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import sys
from pathlib import Path

from bench.checkout import folder_problem
from bench.errors import UserError
from bench.files import ResultsLock

DEFAULT_SUITE = "digits"


def _parent(*declare) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    for args, kwargs in declare:
        parent.add_argument(*args, **kwargs)
    return parent


def _opt(*args, **kwargs):
    return args, kwargs


PATHS = _parent(
    _opt("--results", type=Path, default=None, help="results folder (default: results; with uncommitted code "
         "changes in a checkout: local-results/results)"),
    _opt("--leaderboard", type=Path, default=None, help="output file (default: leaderboard.md beside the results folder)"))
SUITE = _parent(
    _opt("suite", nargs="?", default=DEFAULT_SUITE, help="built-in suite name or path to a .yaml"),
    _opt("--plugin", action="append", default=[], help="load a method file from outside the repo (repeatable)"),
    _opt("--data-root", type=Path, default=None, help="where datasets live (default: $UNLEARN_BENCH_DATA)"),
    _opt("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N"),
    _opt("--download", action="store_true", help="let torchvision download missing data"),
    _opt("--quiet", action="store_true", help="no progress output"))
WRITES = _parent(
    _opt("--cache-dir", type=Path, default=None,
         help="decoded datasets and trained models (default: $UNLEARN_BENCH_CACHE or ~/.cache/unlearn-bench)"),
    _opt("--allow-dirty", action="store_true",
         help="write into the checkout's results folder although the code has uncommitted changes"),
    _opt("--no-leaderboard", action="store_true", help="do not regenerate the leaderboard"))
METHODS = _parent(_opt("--methods", nargs="+", help="only these methods (original and retrain always run); a "
                                                   "registered method the suite lacks runs with its defaults"))
SEEDS = _parent(_opt("--seeds", nargs="+", type=int, help="only these seeds of the suite"))
SET = _parent(_opt("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a value, e.g. finetune.lr=0.01 or recipe.epochs=3 (repeatable); it wins over "
                        "tuned.yaml and the suite"))
EXECUTOR = _parent(
    _opt("--executor", choices=("local", "processes", "ray"), default="local",
         help="local: every job in this process (default); processes: a pool of processes on this machine, as "
              "many as --job-cpus/--job-gpus allow; ray: jobs as Ray tasks"),
    _opt("--ray-address", default=None, metavar="auto|HOST:PORT",
         help="the Ray cluster to use (default: start a local Ray instance)"),
    _opt("--job-cpus", type=float, default=None, help="CPUs per job (default: the suite's resources.cpus)"),
    _opt("--job-gpus", type=float, default=None, help="GPUs per job; a fraction shares one GPU between "
                                                     "small jobs (default: the suite's resources.gpus)"))


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad command line told in one line (and where to read the options), exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="unlearn-bench", description="Benchmark machine-unlearning methods: run suites, build the leaderboard.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    command = lambda name, parents, help: sub.add_parser(name, parents=parents, help=help)  # noqa: E731

    run = command("run", [SUITE, PATHS, WRITES, METHODS, SEEDS, SET, EXECUTOR],
                  "run a suite (default: digits) and regenerate the leaderboard")
    run.add_argument("--tuned", action="store_true", help="insist on the configs `unlearn-bench tune` chose "
                     "(<results>/<suite>/tuned.yaml; used whenever it exists)")
    rescore = command("rescore", [SUITE, PATHS, WRITES, SET], "score the suite's attacks on existing records from "
                      "their saved outputs (missing attacks, or attacks whose code changed)")
    rescore.add_argument("--all", action="store_true", help="rescore every attack of every record")
    tune = command("tune", [SUITE, PATHS, WRITES, METHODS, SET, EXECUTOR], "tune every method's hyperparameters "
                   "with the same Optuna budget on validation data (writes <results>/<suite>/tuned.yaml)")
    tune.add_argument("--trials", type=int, default=None,
                      help="trials per method, for every method (default: the suite's tuning.trials)")
    repro = command("reproduce", [SUITE, PATHS, METHODS, SEEDS], "rerun published records into a scratch folder "
                    "from an empty cache; judge every metric by its resolution (or, on other hardware, the "
                    "published seeds' spread) and the board's cells and ranks")
    repro.add_argument("--scratch", type=Path, default=None,
                       help="a new or empty folder for the rerun (default: a new folder in the system's temp dir)")
    repro.add_argument("--tolerance", type=float, default=0.0,
                       help="absolute difference a metric may show beyond its declared resolution (on the same "
                            "hardware fingerprint: beyond equality) and still count as within resolution")
    board = command("leaderboard", [PATHS], "regenerate the leaderboard from the results folder")
    board.add_argument("--format", choices=("md", "csv", "json"), default="md",
                       help="md: the leaderboard (default); csv or json: its aggregated rows (default file: "
                            "leaderboard.csv/.json beside leaderboard.md)")
    from bench.tools import add_tool_commands

    add_tool_commands(sub)
    return parser


def _board(args, results: Path) -> Path:
    return args.leaderboard or results.parent / "leaderboard.md"


def _check(args, results: Path) -> None:
    """Paths, devices and executor options that cannot work end the command before anything is read."""
    board = _board(args, results)
    for flag, folder in (("--results", results), ("--cache-dir", getattr(args, "cache_dir", None)),
                         ("--leaderboard", board.parent)):
        if folder is not None and (problem := folder_problem(folder)) is not None:
            raise UserError(f"{flag} '{folder}': {problem}.")
    if board.is_dir():
        raise UserError(f"--leaderboard '{board}' is a folder; pass a file name such as {board / 'leaderboard.md'}.")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", getattr(args, "device", "auto")):
        raise UserError(f"--device '{args.device}': use auto, cpu, cuda or cuda:N.")
    if getattr(args, "executor", "local") != "ray" and getattr(args, "ray_address", None):
        raise UserError("--ray-address works with --executor ray only; add --executor ray.")
    cpus, gpus = getattr(args, "job_cpus", None), getattr(args, "job_gpus", None)
    if cpus is not None and not (math.isfinite(cpus) and cpus > 0):
        raise UserError(f"--job-cpus {cpus:g}: give a finite number of CPUs per job, more than 0.")
    if gpus is not None and not (math.isfinite(gpus) and gpus >= 0):
        raise UserError(f"--job-gpus {gpus:g}: give a finite number of GPUs per job, 0 or more.")


def _request(args, results: Path, tuning: bool = False):
    """The plain-data request every process builds the suite's workspace from."""
    from bench.data import data_root_or_env
    from bench.methods_loader import load_plugin
    from bench.settings import parse_overrides
    from bench.suites import resolve_suite_path
    from bench.worker import RunRequest

    for plugin in args.plugin:  # checked here, so a bad path is named as the user gave it
        load_plugin(plugin)
    path = lambda p: str(p) if p is not None else None  # noqa: E731
    return RunRequest(suite=str(resolve_suite_path(args.suite).resolve()),
                      overrides=parse_overrides(getattr(args, "overrides", [])),
                      plugins=tuple(str(Path(p).resolve()) for p in args.plugin),
                      methods=tuple(getattr(args, "methods", None) or ()), results_dir=str(results),
                      cache_dir=path(getattr(args, "cache_dir", None)), data_root=path(data_root_or_env(args.data_root)),
                      download=args.download, device=args.device, tuning=tuning)


def _ray(args, request, suite):
    """A process pool or a connected Ray executor if asked for (before anything is written), else None."""
    from bench.worker import pool_executor

    return pool_executor(getattr(args, "executor", "local"), request, *_job_resources(args, suite), args.ray_address)


def _job_resources(args, suite) -> tuple[float, float]:
    return (suite.resources.cpus if args.job_cpus is None else args.job_cpus,
            suite.resources.gpus if args.job_gpus is None else args.job_gpus)


def _open(args, results: Path, tuning: bool = False, tuned: str = "off"):
    """(session, executor): the suite read once; Ray connected first; on Ray the driver's workspace
    computes with the threads each job gets, so the records' device policy is the workers'."""
    from bench.session import open_session
    from bench.worker import local_executor

    request = _request(args, results, tuning)
    suite = request.load_suite()
    ray = _ray(args, request, suite)
    threads = max(1, int(_job_resources(args, suite)[0])) if ray else None
    s = open_session(request, getattr(args, "seeds", None), tuned, args.quiet, threads, suite)
    return s, ray or local_executor(s.ws)


def _write_board(args, results: Path) -> None:
    from bench.leaderboard import write_leaderboard

    if not args.no_leaderboard:
        print(f"leaderboard: {write_leaderboard(results, _board(args, results))}")


def _writing(args) -> Path:
    """The checked results folder a writing command writes into (`bench.session.results_folder`)."""
    from bench.checkout import results_folder

    _check(args, args.results or Path("results"))
    return results_folder(args.results, args.allow_dirty)


def cmd_run(args) -> int:
    results = _writing(args)
    with ResultsLock(results):
        from bench.rescore import rescore_suite
        from bench.runner import run_suite, run_summary

        s, executor = _open(args, results, tuned="require" if args.tuned else "auto")
        counts = run_suite(s.ws, s.plan, executor, results)
        rescored = rescore_suite(s.ws, s.plan, results)
        print(f"{run_summary(s.ws.suite, counts, rescored)}; records in {results / s.ws.suite.name}")
        _write_board(args, results)
    return 0


def cmd_rescore(args) -> int:
    results = _writing(args)
    with ResultsLock(results):
        from bench.rescore import rescore_suite
        from bench.session import open_session

        request = _request(args, results)
        suite = request.load_suite()
        if not (results / suite.name).is_dir():
            raise UserError(f"no records of suite '{suite.name}' under '{results}'; run it first.")
        s = open_session(request, tuned="auto", quiet=args.quiet, suite=suite)
        print(f"{suite.name}: {rescore_suite(s.ws, s.plan, results, force=args.all)} records rescored "
              "from their saved outputs")
        _write_board(args, results)
    return 0


def cmd_tune(args) -> int:
    if args.trials is not None and args.trials < 1:
        raise UserError(f"--trials {args.trials}: give at least 1 trial per method.")
    results = _writing(args)
    with ResultsLock(results):
        from bench.tune import tune_suite
        from bench.tuned import MARKS, read_tuned

        s, executor = _open(args, results, tuning=True)
        methods = [m for m, _ in s.ws.suite.methods if m != "retrain" and (not args.methods or m in args.methods)]
        path = tune_suite(s.ws, methods, args.trials, executor, results)
        tuned = read_tuned(path)
        for m in methods:
            for forget_set, t in tuned[m].items():
                notes = [t.get("note"), *(k.replace("_", " ") for k in MARKS if t.get(k))]
                print(f"{m:<16} {forget_set:<14} {t['trials']} trials, best objective {t['best_objective']} (doing "
                      f"nothing {t.get('do_nothing_objective')}), {t['tuning_gflops']} GFLOPs"
                      + (f"  ({'; '.join(n for n in notes if n)})" if any(notes) else ""))
        again = shlex.join(["unlearn-bench", "run", str(args.suite), *(a for p in args.plugin for a in ("--plugin", str(p))),
                            *(["--results", str(results)] if args.results else [])])
        print(f"tuned configs: {path}; `{again}` runs them")
    return 0


def cmd_reproduce(args) -> int:
    from bench.reproduction import reproduce

    results = args.results or Path("results")
    _check(args, results)
    passed = reproduce(_request(args, results), _board(args, results), args.seeds, args.scratch, args.tolerance,
                       args.quiet)
    return 0 if passed else 1


def cmd_leaderboard(args) -> int:
    results = args.results or Path("results")
    if results.is_file():
        raise UserError(f"--results '{results}' is a file, not a folder; pass the results folder.")
    if not results.is_dir():
        raise UserError(f"results folder '{results}' does not exist; run `unlearn-bench run` first or pass --results.")
    _check(args, results)
    with ResultsLock(results):
        from bench.export import write_export
        from bench.leaderboard import write_leaderboard

        if args.format == "md":
            print(write_leaderboard(results, _board(args, results)))
        else:
            print(write_export(results, args.leaderboard or _board(args, results).with_suffix(f".{args.format}"),
                               args.format))
    return 0


COMMANDS = {"run": cmd_run, "rescore": cmd_rescore, "tune": cmd_tune, "reproduce": cmd_reproduce,
            "leaderboard": cmd_leaderboard}


def main(argv: list[str] | None = None) -> int:
    from bench.tools import TOOL_COMMANDS

    args = build_parser().parse_args(argv)
    try:
        return {**COMMANDS, **TOOL_COMMANDS}[args.command](args)
    except UserError as e:
        print(f"unlearn-bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unlearn-bench: interrupted; finished runs are recorded, rerun to resume.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 1
