"""What running each method call in a process of its own costs, as a ratio in one run.

For every method of a suite, on the suite's tuning seed and each forget set, this alternates
two ways of making the same call, `--repeats` times each:

- isolated: `bench.execute.call_method`, as every run, trial and U-LiRA reference does (a fresh
  child of the fork server, copies of model and data sent and the model sent back);
- in-process: the child's own code (`bench.execute._call_in_child`) run in this process on
  pickled copies of the same model and data, as calls were made before isolation.

After each call the model is evaluated on the forget, retain and validation splits, as the
runner and tuning do, so that the next isolated child is forked and warmed while the caller
works, as in a suite. It prints the median seconds per call of both, per method, and the extra
seconds the suite's calls would take (each method's median difference times its number of
calls in `tune` + `run`: trials, runs, U-LiRA references).

    python benchmarks/isolation_cost.py digits --repeats 5 [--cache-dir DIR] [--data-root DIR] [--methods M ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import statistics
import tempfile
import time
from pathlib import Path

from bench.data import data_root_or_env
from bench.evaluate import per_example_outputs
from bench.execute import _call_in_child, call_method, rng_states
from bench.methods_loader import method_registry
from bench.plan import resolve_config
from bench.progress import Progress
from bench.suites import load_suite
from bench.workspace import Folders, Workspace


def in_process(entry, model, data, config, ctx):
    payload = pickle.loads(pickle.dumps((model, data, config, dataclasses.replace(ctx, progress=None),
                                         rng_states())))
    return _call_in_child((entry.name, entry.fn.__module__, entry.source), lambda: payload, lambda m: None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--data-root", default=None, help="where datasets live (default: $UNLEARN_BENCH_DATA)")
    parser.add_argument("--methods", nargs="+", default=None, help="only these (default: the suite's)")
    args = parser.parse_args()
    suite = load_suite(args.suite)
    with tempfile.TemporaryDirectory() as tmp:
        folders = Folders(results_dir=Path(tmp), data_root=data_root_or_env(args.data_root),
                          progress=Progress(enabled=False))
        if args.cache_dir:
            folders.cache_dir = Path(args.cache_dir)
        ws = Workspace(suite, folders)
        seed = suite.tuning.seeds[0]
        original = ws.original(seed)[0]
        calls_per_method = suite.tuning.trials * len(suite.tuning.seeds) * len(suite.forget_sets) + len(suite.seeds) * len(suite.forget_sets) + (
            suite.attack_settings.ulira_references * len(suite.forget_sets) if "ulira" in suite.attacks else 0)
        total = {"isolated": 0.0, "in-process": 0.0}
        print(f"{'method':16s} {'isolated s':>11s} {'in-process s':>13s} {'ratio':>6s}")
        for name in args.methods or [name for name, _ in suite.methods]:
            entry = method_registry().get(name)
            times = {"isolated": [], "in-process": []}
            for spec in suite.forget_sets:
                data = ws.unlearn_data(ws.forget_set(spec))
                config = resolve_config(suite, name, None)[0]
                for _ in range(args.repeats):
                    for way, call in (("isolated", call_method), ("in-process", in_process)):
                        started = time.perf_counter()
                        model, _, status, error = call(entry, original, data, config, ws.context(seed, name))
                        times[way].append(time.perf_counter() - started)
                        assert status == "ok", error
                        for split in ws.eval_splits(data, test=False).values():
                            per_example_outputs(model, split, ws.batcher, suite.eval.batch_size)
            med = {way: statistics.median(t) for way, t in times.items()}
            for way in total:
                total[way] += med[way] * calls_per_method
            ratio = med["isolated"] / med["in-process"]
            print(f"{name:16s} {med['isolated']:11.4f} {med['in-process']:13.4f} {ratio:6.2f}")
        extra = total["isolated"] - total["in-process"]
        print(f"{calls_per_method} calls per method in tune + run: calls take {total['in-process']:.1f} s in-process, "
              f"{total['isolated']:.1f} s isolated: {extra:+.1f} s")


if __name__ == "__main__":
    main()
