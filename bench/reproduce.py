"""`unlearn-bench reproduce`: rerun published records from nothing and judge how far each moved.

The suite's runs (or those `--methods`/`--seeds` pick) are rerun into a scratch folder with an
empty model cache, with the configs the published records ran (the published `tuned.yaml` when
they were tuned). Every metric of every rerun record is compared with the published one, and
the record is classed by its worst metric:

- *exact*: every number bit-equal;
- *within resolution*: every difference within the steps its metric declares (one example of
  the split for an accuracy, one member for a TPR, one member-non-member pair for an AUC, two
  member steps for attacks that fit a model: `bench.metrics.Resolution`), plus `--tolerance`;
- *within the seeds' spread*: where the hardware fingerprints differ (other kernels; training
  turns their last-bit differences into another draw of the same distribution), every other
  difference is no larger than two draws of one seed-to-seed distribution differ:
  |rerun - published| <= t * s * sqrt(2) + the metric's resolution allowance, where s is the
  larger of the std of the same method's other published `ok` seeds and the metric's
  seed-to-seed std pooled over the section's methods (the record's own seed left out of both, so
  an edited record cannot widen its own allowance), and t the Student quantile at
  1 - 0.05 / (2K) with the pooled degrees of freedom, K the numeric metrics of the record
  (Bonferroni: a faithful rerun record is called *differs* at most 5% of the time under a
  normal model);
  a field that describes the attack's setup (`Resolution("setup")`: how many of U-LiRA's
  reference models survived unlearning, which failed) is shown and, on other hardware, counts
  as another draw of those shared references;
- *differs*: anything else: a changed status, no rerun record of that name or no published one
  of a rerun (deleted?), a published file that is not a readable record, or a published record
  that disagrees with its own saved outputs (`bench.integrity`: edited after the run).
On the same fingerprint only *exact* passes. Wall-clock fields (`*_s`) and code hashes are not
compared. `conclusions` then compares the boards of the published and the rerun records (the
same records): each headline cell, and each method's rank.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from bench.integrity import IDENTITY, disagreements, provenance_problems, why_not_rerun
from bench.metrics import EXACT, METRICS, Counts, Resolution
from bench.store import load_outputs, load_records

LEVELS = ("exact", "within resolution", "within the seeds' spread", "differs")
ALPHA = 0.05


@dataclass(frozen=True)
class Difference:
    metric: str  # `a.b.c` name in the record's metrics
    published: object
    rerun: object
    level: str  # one of LEVELS[1:]
    note: str  # the steps, and where the rerun falls in the published seeds' spread

    def __str__(self) -> str:
        x, y = _short(self.published), _short(self.rerun)
        if x == y:  # a difference too small for six digits: show every digit
            x, y = repr(self.published), repr(self.rerun)
        return f"{self.metric} {x} -> {y} ({self.note})"


@dataclass(frozen=True)
class Verdict:
    record: str  # <suite>/<forget set>/<file>.json
    level: str
    differences: tuple[Difference, ...] = ()

    @property
    def passed(self) -> bool:
        return self.level != "differs"


def _short(value) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _count(n: float, noun: str) -> str:
    return f"{n:.3g} {noun}{'' if f'{n:.3g}' == '1' else 's'}"


def flat_metrics(metrics: dict, prefix: str = "") -> dict:
    """A record's metrics as one level of `a.b.c` names, without wall-clock fields and code hashes."""
    out = {}
    for key, value in metrics.items():
        if key.endswith("_s") or key == "code":
            continue
        if isinstance(value, dict):
            out.update(flat_metrics(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def resolution_of(name: str) -> tuple[Resolution, str | None]:
    """(declared resolution, attack) of a flat metric name: `forget_acc`, `mia.<attack>.<key>` or
    `mia.<attack>.variants.<variant>.<key>`. The attack's own declaration comes first, then the one
    `bench.metrics` makes for that key; anything undeclared (settings, counts) is exact."""
    from bench.attacks import attack_registry

    if not name.startswith("mia."):
        return (METRICS[name].resolution if name in METRICS else EXACT), None
    attack, _, key = name[len("mia."):].partition(".")  # a key may hold a dot: tpr_at_0.1pct_fpr
    if key.startswith("variants."):
        key = key[len("variants."):].partition(".")[2]
    own = attack_registry.get(attack).info.resolution if attack in attack_registry else {}
    return own.get(key) or (METRICS[key].resolution if key in METRICS else EXACT), attack


def _numeric(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def judge(name: str, x, y, counts: Counts, others: list[float], pooled: tuple[float, int] | None, k: int,
          same_hardware: bool, tolerance: float) -> Difference:
    """The level of one metric that differs (x published, y rerun). `others`: its values in the same
    method's other published seeds; `pooled`: (std, degrees of freedom) of its seed-to-seed spread
    pooled over the section's methods; `k`: the numeric metrics of the record (Bonferroni)."""
    resolution, attack = resolution_of(name)
    if resolution.per == "setup":
        if any(o != x for o in others):  # shared by every seed: the published seeds must agree
            return Difference(name, x, y, "differs", "the attack's setup, shared by every seed, differs between "
                                                      "the published seeds: edited?")
        return Difference(name, x, y, "differs" if same_hardware else "within the seeds' spread",
                          "the attack's setup, shared by every seed; on other kernels its reference models "
                          "are another draw" + ("; same hardware fingerprint: must be equal" if same_hardware else ""))
    if not (_numeric(x) and _numeric(y)):
        return Difference(name, x, y, "differs", "not a number: must be equal")
    step = resolution.size(counts, attack)
    allowance = (step * resolution.steps if step else 0.0) + tolerance
    d = abs(y - x)
    steps = f"{_count(d / step, 'step')} of {step:.3g}" if step else "no declared step"
    if same_hardware:
        if d <= tolerance:
            return Difference(name, x, y, "within resolution", f"{steps}; same hardware fingerprint: within --tolerance")
        return Difference(name, x, y, "differs", f"{steps}; same hardware fingerprint: only equal numbers pass")
    if d <= allowance * (1 + 1e-9):
        tolerated = f" + --tolerance {tolerance:g}" if tolerance else ""
        return Difference(name, x, y, "within resolution", f"{steps}, {resolution.steps} allowed{tolerated}")
    values = np.asarray([v for v in others if _numeric(v)], np.float64)
    n = len(values)
    if n < 2 or pooled is None or pooled[1] < 2:
        return Difference(name, x, y, "differs", f"{steps}; {n} other published seeds, too few for a spread")
    s = max(float(values.std(ddof=1)), pooled[0])
    bound = stats.t.ppf(1 - ALPHA / (2 * k), pooled[1]) * s * np.sqrt(2) + allowance
    where = f"{d / s:.2f} std of the seeds" if s > 0 else f"the {n} other published seeds all give {_short(values[0])}"
    level = "within the seeds' spread" if d <= bound * (1 + 1e-9) else "differs"
    return Difference(name, x, y, level, f"{steps}; {where}; bound ±{bound:.3g}")


def compare(published: dict, rerun: dict | None, outputs: dict | None, spread: "Spread", tolerance: float,
            problems: list[str] = (), why_absent: str = "") -> Verdict:
    """One record's verdict against its rerun; `outputs`: the published record's saved outputs;
    `spread`: the published seeds' values (`seed_spread`); `problems`: `provenance_problems`."""
    name = record_name(published)
    differences = [Difference("record", "published", "as published", "differs", p) for p in problems]
    if rerun is None:
        return Verdict(name, "differs", (*differences, Difference("record", "published", "absent", "differs",
                                                                  f"not rerun: {why_absent}")))
    same, counts = same_hardware(published, rerun), Counts.of(outputs, published["forget_set"].get("label"))
    differences += [Difference(key, value, given, "differs", f"the published record disagrees with its own saved "
                               f"outputs, which give {_short(given)}: edited?")
                    for key, value, given in disagreements(published, outputs)]
    for key in ("status", *IDENTITY):
        if published.get(key) != rerun.get(key):
            differences.append(Difference(key, published.get(key), rerun.get(key), "differs",
                                          "a run's outcome" if key == "status" else "the run's identity"))
    flops = (published.get("cost") or {}).get("flops"), (rerun.get("cost") or {}).get("flops")
    if flops[0] is not None and flops[0] != flops[1]:
        differences.append(Difference("cost.flops", *flops, "differs", "a count: the same on every machine"))
    a, b = flat_metrics(published.get("metrics") or {}), flat_metrics(rerun.get("metrics") or {})
    k = max(1, sum(_numeric(v) for v in a.values()))
    own = spread.by_method.get(section_key(published), {})
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x != y:
            others = [v for seed, v in own.get(key, {}).items() if seed != published["seed"]]
            differences.append(judge(key, x, y, counts, others, spread.pooled(published, key), k, same, tolerance))
    level = max((d.level for d in differences), key=LEVELS.index, default="exact")
    return Verdict(name, level, tuple(differences))


def same_hardware(published: dict, rerun: dict) -> bool:
    """Both records carry a fingerprint, the same one, and ran with the same threads and torch."""
    a, b = published.get("env") or {}, rerun.get("env") or {}
    return bool(a.get("hardware")) and all(a.get(k) == b.get(k) for k in ("hardware", "threads", "torch", "device"))


def hashed_files(top: Path) -> set[str]:
    """The checkout's files (paths from `top`) whose code keys records or cached models: the methods,
    the attacks, the training, evaluation and reference-model code, and all they import."""
    from bench.attacks import attack_registry
    from bench.methods_loader import method_registry
    from bench.provenance import _closure

    sources = [Path(e.source) for e in method_registry().entries() + attack_registry.entries()]
    sources += [Path(__file__).with_name(f"{m}.py") for m in ("unlearned_references", "references", "train", "models")]
    return {p.relative_to(top.resolve()).as_posix() for p in _closure(tuple(p.resolve() for p in sources))
            if p.is_relative_to(top.resolve())}


def record_name(record: dict) -> str:
    return "/".join(Path(record["_file"]).parts[-3:])


def section_key(record: dict) -> tuple:  # one method and config of one leaderboard section
    return record["suite"], record["forget_set"]["name"], record["method"], record["config_hash"]


@dataclass(frozen=True)
class Spread:
    """The published seeds' values of every numeric metric, per method and config {metric: {seed: value}}."""

    by_method: dict

    def pooled(self, record: dict, key: str) -> tuple[float, int] | None:
        """(std, degrees of freedom) of `key`'s seed-to-seed spread pooled over the methods of
        `record`'s section (the residual spread of a one-way layout by method), `record`'s own
        seed left out; None where no method has two seeds."""
        ss, df = 0.0, 0
        for method, metrics in self.by_method.items():
            if method[:2] != section_key(record)[:2]:
                continue
            values = np.array([v for seed, v in metrics.get(key, {}).items() if _numeric(v)
                               and (method, seed) != (section_key(record), record["seed"])], np.float64)
            if len(values) > 1:
                ss, df = ss + float(((values - values.mean()) ** 2).sum()), df + len(values) - 1
        return (float(np.sqrt(ss / df)), df) if df else None


def seed_spread(records: list[dict]) -> Spread:
    by_method: dict = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r["status"] == "ok":
            for key, value in flat_metrics(r.get("metrics") or {}).items():
                by_method[section_key(r)][key][r["seed"]] = value
    return Spread(by_method)


def outputs_of(record: dict) -> dict | None:
    """A record's saved per-example outputs, or None when they are missing or unreadable."""
    try:
        return load_outputs(Path(record["_file"]))
    except (OSError, ValueError):
        return None


def counts_of(record: dict) -> Counts:
    return Counts.of(outputs_of(record), record["forget_set"].get("label"))


def verdicts(published: list[dict], every_published: list[dict], rerun_dir: Path, tolerance: float,
             unreadable: list[str] = (), results_dir: Path | None = None) -> list[Verdict]:
    """A verdict per published record, per rerun record that has no published one (deleted?), and
    per published file that is not a readable record; `every_published`: all the suite's published
    records (the seeds' spreads come from all of them, also where only some were rerun)."""
    rerun = {record_name(r): r for r in load_records(rerun_dir)}
    spread = seed_spread(every_published)
    out = []
    for r in published:
        outputs = outputs_of(r)
        problems = provenance_problems(r, outputs, results_dir, every_published) if results_dir else []
        out.append(compare(r, rerun.get(record_name(r)), outputs, spread, tolerance, problems,
                           why_not_rerun(r, rerun.values())))
    missing = sorted(set(rerun) - {record_name(r) for r in published} - set(unreadable))
    out += [Verdict(name, "differs", (Difference("record", "absent", "rerun", "differs", "no published record of "
                                                 "this run: deleted, or published by other code or configs"),))
            for name in missing]
    out += [Verdict(name, "differs", (Difference("record", "unreadable", "-", "differs", "the published file is "
                                                 "not a readable run record"),)) for name in unreadable]
    return out


def published_records(results_dir: Path, suite: str, methods=None, seeds=None,
                      unreadable: list[str] | None = None) -> list[dict]:
    """The suite's published records (those `methods` and `seeds` pick); files of the suite that are
    not readable records are named in `unreadable`."""
    skipped: list[str] = []
    records = [r for r in load_records(results_dir, skipped) if r["suite"] == suite
               and (methods is None or r["method"] in methods) and (seeds is None or r["seed"] in seeds)]
    if unreadable is not None:
        unreadable += [s.split(" (")[0] for s in skipped if s.startswith(f"{suite}/")]
    return records


def prepare_scratch(scratch: Path, published_dir: Path, suite: str, tuned_file: str) -> None:
    """An empty results folder and cache; the published tuned configs when there are some."""
    tuned = published_dir / suite / tuned_file
    if tuned.is_file():
        (scratch / "results" / suite).mkdir(parents=True, exist_ok=True)
        shutil.copy2(tuned, scratch / "results" / suite / tuned_file)


def summary(results: list[Verdict]) -> str:
    counts = {level: sum(v.level == level for v in results) for level in LEVELS}
    return f"{len(results)} records: " + ", ".join(f"{n} {level}" for level, n in counts.items())
