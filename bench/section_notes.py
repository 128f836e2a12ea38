"""What a leaderboard section says beside its tables: a warning when its original model
collapsed, which rows' Avg. Gap leaves a term out and why, the section's noise floor, and what its
forget quality rests on (or why it has none)."""

from __future__ import annotations

from bench import forget_quality_runs
from bench.aggregate import noise_floor, retrain_by_seed
from bench.metrics import METRICS


def collapsed_original(records: list[dict]) -> list[str]:
    """A warning for the top of a section whose original model collapsed (a recipe that does not
    train): there is nothing to forget, so no number below measures unlearning."""
    bad = sorted((r["seed"], r["error"]) for r in records if r["method"] == "original" and r["status"] == "collapsed")
    if not bad:
        return []
    return [f"**Warning: the original model collapsed on seed{'s' if len(bad) > 1 else ''} "
            f"{', '.join(str(seed) for seed, _ in bad)}** ({bad[0][1]}): it learned nothing there, so there was "
            "nothing to forget and those seeds measure no unlearning; fix the suite's recipe.", ""]


def ranking_note(records: list[dict], rows: list[dict]) -> list[str]:
    """What the places below rest on, where that is less than the legend says: the seeds they
    compare (when some row is left out for lacking one, or there is one seed only), a missing
    `original` (no ⊘, no doing-nothing floor for penalties), seeds without a retrain."""
    out = []
    seeds = rows[0].get("ranking_seeds", []) if rows else []
    unranked = [f"`{row['method']}`" for row in rows if "place" not in row and not row["method"].startswith("retrain")]
    if unranked or len(seeds) == 1:
        out.append(f"Places compare seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds)) or 'none'}"
                   + (" only: one seed gives no interval" if len(seeds) == 1 else "")
                   + (f"; not ranked, for lacking one of them: {', '.join(unranked)}" if unranked else "") + ".")
    if not any(r["method"] == "original" for r in records):
        out.append("No `original` ran here: nothing is marked ⊘, and a failed seed's penalty has no doing-nothing "
                   "floor.")
    for reference in ("retrain", "original"):
        if len({r["config_hash"] for r in records if r["method"] == reference}) > 1:
            out.append(f"`{reference}` ran with more than one config here: each seed takes its first `ok` record "
                       "by config hash.")
    retrained = {r["seed"] for r in records if r["method"] == "retrain" and r["status"] == "ok"}
    if lost := sorted({r["seed"] for r in records} - retrained):
        out.append(f"Seed{'s' if len(lost) > 1 else ''} {', '.join(map(str, lost))} ha{'ve' if len(lost) > 1 else 's'} "
                   "no `ok` retrain: no gap is taken there, and no run there counts.")
    return [" ".join(out), ""] if out else []


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
            "set (on every seed, or on some: then on none of that row's seeds), so those Avg. Gaps average the other "
            "terms only.", ""]


def noise_floor_note(records: list[dict]) -> list[str]:
    """The section's noise floor (`bench.aggregate.noise_floor`) in one sentence; [] below two retrains."""
    floor = noise_floor(records)
    if not floor:
        return []
    spread = f"mean of {floor['pairs']} pairs, {floor['low']:.2f} to {floor['high']:.2f}" if floor["pairs"] > 1 else "1 pair"
    return [f"Noise floor: two retrains of different seeds differ by an Avg. Gap of **{floor['mean']:.2f}** "
            f"({spread}); a method at or below it (≈) is as close to retraining as retraining itself can tell.", ""]


def forget_quality_note(records: list[dict], rows: list[dict]) -> list[str]:
    """What the forget-quality column rests on (N, the original's seed, the null ceiling, runs that
    failed and count as doing nothing), or why the section has none."""
    scored = [row for row in rows if "forget_quality" in row]
    if not scored:
        return ["Forget quality (NeurIPS 2023): not run for this suite (it sets no `forget_quality.models`). Its protocol "
                "needs N unlearning runs from one original model against N retrains, informative from N ≈ 32; the "
                "seeds above each start from an original of their own, which it cannot use.", ""]
    retrain = retrain_by_seed(records)
    _, ceiling = forget_quality_runs.section_scores(records, next(iter(retrain.values()))["config_hash"]
                                                    if retrain else None)
    n, seed = scored[0]["forget_quality_models"], scored[0]["forget_quality_seed"]
    lost = [f"`{row['method']}` {sum(v for k, v in row['forget_quality_outcomes'].items() if k != 'ok')} "
            f"({', '.join(f'{v} {k}' for k, v in sorted(row['forget_quality_outcomes'].items()) if k != 'ok')})"
            for row in scored if set(row["forget_quality_outcomes"]) - {"ok"}]
    text = (f"Forget quality (NeurIPS 2023 protocol): {n} runs of each method from seed {seed}'s original model "
            f"against {n} retrains; doing nothing (`original`) scores 0, a perfect unlearner about "
            f"**{ceiling:.3f}** at this N (the null ceiling: both samples drawn from one distribution).")
    if lost:
        text += (" Runs that did not end ok (failed and diverged ones count as the original model, doing "
                 "nothing; collapsed ones as they are): " + "; ".join(lost) + ".")
    return [text, ""]
