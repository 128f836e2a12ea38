"""Whether a board's conclusions reproduce: every headline cell and every method's place, on the
board of the published records against the board of their reruns (`unlearn-bench reproduce`).

Both boards are built from the same records (those rerun), by the leaderboard's own aggregation.
A headline cell holds when its mean prints the same at the digits its metric declares; else,
where the hardware fingerprints differ, when it moved by no more than its resolution (an
accuracy: one example of its split), or lies within the seeds' spread: |rerun - published| <=
t(1 - 0.05 / (2K), n - 1) * s * sqrt(2 / m), with s and n the std and number of the method's
published seeds (all of them), m the seeds the cell averages and K the cells compared
(Bonferroni), and only where every record reproduced; forget quality (one set of N runs, no
seeds) when it moved by no more than z(1 - 0.05 / (2K)) times the standard error of the difference
over forget examples. A method's place (by mean Avg. Gap) holds when the rerun's lies inside the published place's 95% interval
over a paired bootstrap of the seeds (`bench.statistics.rank_intervals`). On the same
fingerprint only equal cells and places hold. `stale_board`: the published leaderboard file
must also be what the published records give (nobody edits it by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from bench.aggregate import headline_attack, section_rows
from bench.leaderboard import render, sections
from bench.store import load_records
from bench.metrics import METRICS, headline_keys
from bench.reproduce import ALPHA, counts_of

HOLDS = ("printed equal", "within resolution", "within the seeds' spread", "within its sampling error",
         "within its interval", "not comparable")


@dataclass(frozen=True)
class Conclusion:
    section: str  # "<suite> / <forget set>"
    method: str  # the row's label
    what: str  # a column label, or "place"
    published: str
    rerun: str
    level: str  # one of HOLDS, or "differs"
    note: str = ""

    @property
    def holds(self) -> bool:
        return self.level in HOLDS

    def __str__(self) -> str:
        note = f"; {self.note}" if self.note else ""
        return f"{self.section}: {self.method}: {self.what} {self.published} -> {self.rerun} ({self.level}{note})"


def _board(records: list[dict]) -> dict:
    return {key[:2]: (recs, {row["method"]: row for row in section_rows(recs)})
            for key, recs in sections(records).items()}


def conclusions(published: list[dict], every_published: list[dict], rerun: list[dict], same_hardware: bool,
                records_reproduced: bool) -> list[Conclusion]:
    """Every headline cell and place of the published records' board, judged against the rerun's.
    `every_published`: all the suite's published records (for the seeds' spread)."""
    mine, full, theirs = _board(published), _board(every_published), _board(rerun)
    todo = []
    for key, (recs, rows) in mine.items():
        cols = headline_keys(recs[0]["forget_set"]["protocol"] == "class", headline_attack(recs))
        for method, row in rows.items():  # a cell empty on either board is compared too
            other = theirs.get(key, (None, {}))[1].get(method, {})
            todo += [(key, recs, method, col) for col in cols if col in row or col in other]
    out = []
    for key, recs, method, col in todo:
        row, other = mine[key][1][method], theirs.get(key, (None, {}))[1].get(method)
        section = " / ".join(key)
        if other is None:
            out.append(Conclusion(section, method, METRICS[col].label, "present", "absent", "differs"))
            continue
        out.append(_cell(section, method, col, row, other, full[key][1].get(method, {}), counts_of(recs[0]),
                         len(todo), same_hardware, records_reproduced))
    for key, (_, rows) in mine.items():
        for method, row in rows.items():
            other = theirs.get(key, (None, {}))[1].get(method, {})
            if "place" in row:
                out.append(_place(" / ".join(key), method, row, other, same_hardware))
    return out


def _cell(section, method, col, row, other, full, counts, k, same, records_reproduced) -> Conclusion:
    metric = METRICS[col]
    x, y = row.get(col), other.get(col)
    show = lambda v: "—" if v is None else f"{v:.{metric.digits}f}"  # noqa: E731
    done = lambda level, note="": Conclusion(section, method, metric.label, show(x), show(y), level, note)  # noqa: E731
    if col == "rte" and row.get("rte_basis") != other.get("rte_basis"):
        return done("not comparable", f"published RTE by {row.get('rte_basis')}, rerun by {other.get('rte_basis')}: "
                                      "the published records predate the FLOP count")
    if show(x) == show(y):
        return done("printed equal")
    if x is None or y is None or same:
        return done("differs", "same hardware fingerprint: only equal cells hold" if same else "")
    if col == "forget_quality":  # one set of N runs, no seeds: its noise is the forget examples' draw
        se = float(np.hypot(row.get("forget_quality_se") or 0.0, other.get("forget_quality_se") or 0.0))
        bound = stats.norm.ppf(1 - ALPHA / (2 * k)) * se
        return done("within its sampling error" if abs(y - x) <= bound else "differs",
                    f"standard error over the forget examples {se:.3g}; bound ±{bound:.3g}")
    step = metric.resolution.size(counts)
    if step and abs(y - x) <= 100 * step * metric.resolution.steps * (1 + 1e-9):
        return done("within resolution", f"one step {100 * step:.3g}")
    if not records_reproduced:  # a cell may only be another draw when every record it averages is
        return done("differs", "beyond its resolution, and not every record reproduced")
    s, n, m = full.get(f"{col}_std"), full.get("n", 0), row.get("n", 0)
    if s is None or n < 3 or m < 1:
        return done("differs", f"{n} published seeds, too few for a spread")
    bound = stats.t.ppf(1 - ALPHA / (2 * k), n - 1) * s * np.sqrt(2 / m)
    return done("within the seeds' spread" if abs(y - x) <= bound else "differs",
                f"{abs(y - x) / s:.2f} std of {n} published seeds; bound ±{bound:.3g}")


def _place(section, method, row, other, same) -> Conclusion:
    low, high = (row["place"], row["place"]) if same else (row["place_low"], row["place_high"])
    place = other.get("place")
    held = place is not None and low <= place <= high
    return Conclusion(section, method, "place", f"{row['place']} [{low}, {high}]", str(place),
                      "within its interval" if held else "differs")


def _sections(text: str, suite: str) -> dict[str, list[str]]:
    """The suite's sections of a leaderboard text, by title, without the figure links (which
    depend on where the board is written) and blank lines."""
    out, title = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            title = line if line.startswith(f"## {suite} — ") else None
            if title:
                out[title] = []
        elif title and line.strip() and not line.startswith("Figures: "):
            out[title].append(line)
    return out


def stale_board(results_dir: Path, board: Path, suite: str) -> list[str]:
    """The titles of the suite's sections in the published leaderboard file that differ from what
    the published records give (nothing is written: figures are not drawn); [] when they agree."""
    skipped: list[str] = []
    records = load_records(results_dir, skipped)
    given = _sections(render(records, results_dir.as_posix().rstrip("/"), skipped=skipped), suite)
    found = _sections(board.read_text(encoding="utf-8"), suite)
    return sorted(t for t in set(given) | set(found) if given.get(t) != found.get(t))
