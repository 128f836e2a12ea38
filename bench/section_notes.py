"""What a leaderboard section says beside its tables: a warning when its original model
collapsed, which rows' Avg. Gap leaves a term out and why, and the section's noise floor."""

from __future__ import annotations

from bench.aggregate import noise_floor
from bench.metrics import METRICS


def collapsed_original(records: list[dict]) -> list[str]:
    """A warning for the top of a section whose original model collapsed (a recipe that does not
    train): there is nothing to forget, so no number below measures unlearning."""
    bad = sorted((r["seed"], r["error"]) for r in records if r["method"] == "original" and r["status"] == "collapsed")
    if not bad:
        return []
    return [f"**Warning: the original model collapsed on seed{'s' if len(bad) > 1 else ''} "
            f"{', '.join(str(seed) for seed, _ in bad)}** ({bad[0][1]}): it learned nothing, so there is nothing to "
            "forget and no number in this section measures unlearning; fix the suite's recipe.", ""]


def missing_terms(records: list[dict], rows: list[dict]) -> list[str]:
    """Which rows' Avg. Gap averages fewer terms than the legend lists, and why (an attack that
    could not score the forget set, e.g. 3 images are too few for the simple MIA's split)."""
    short = [row for row in rows if row.get("avg_gap_missing")]
    if not short:
        return []
    missing = sorted({k for row in short for k in row["avg_gap_missing"]})
    reasons = []
    for key in missing:
        source = METRICS[key].source or ""
        attack = source.split(".")[1] if source.startswith("mia.") else None
        error = next(((r.get("metrics") or {}).get("mia", {}).get(attack, {}).get("error") for r in records
                      if attack and (r.get("metrics") or {}).get("mia", {}).get(attack, {}).get("error")), None)
        reasons.append(f"{METRICS[key].label}" + (f" ({error})" if error else ""))
    names = "every row" if len(short) == len(rows) else ", ".join(f"`{row['method']}`" for row in short)
    return [f"**Avg. Gap here leaves out {', '.join(reasons)}** for {names}: it could not be scored on this forget "
            "set, so those Avg. Gaps average the other terms only.", ""]


def noise_floor_note(records: list[dict]) -> list[str]:
    """The section's noise floor (`bench.aggregate.noise_floor`) in one sentence; [] below two retrains."""
    floor = noise_floor(records)
    if not floor:
        return []
    return [f"Noise floor: two retrains of different seeds differ by an Avg. Gap of **{floor['mean']:.2f}** (mean "
            f"of {floor['pairs']} pairs, {floor['low']:.2f} to {floor['high']:.2f}); a method at or below it (≈) is "
            "as close to retraining as retraining itself can tell.", ""]
