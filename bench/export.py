"""The leaderboard's aggregated rows as CSV or JSON (`unlearn-bench leaderboard --format csv|json`)."""

from __future__ import annotations

from pathlib import Path

from bench.aggregate import section_rows
from bench.checkout import refuse_foreign
from bench.files import write_text
from bench.leaderboard import runs_cell, sections
from bench.store import load_records


def export_rows(records: list[dict]) -> list[dict]:
    """Every section's rows (suite, forget set, method, numbers), for `leaderboard --format csv|json`."""
    return [{"suite_hash": key[2], **row} for key, recs in sections(records).items() for row in section_rows(recs)]


def flat(row: dict) -> dict:
    """A row as one level of columns (attacks as `<attack>_<metric>`, runs and config as text)."""
    out = {k: v for k, v in row.items() if k not in ("attacks", "runs", "config")}
    out["runs"] = runs_cell(row)
    out["config"] = ", ".join(f"{k}={v}" for k, v in (row.get("config") or {}).items())
    for attack, cells in row["attacks"].items():
        out.update({f"{attack}_{k}": v for k, v in cells.items()})
    return out


def write_export(results_dir: Path, output: Path, fmt: str) -> Path:
    """The aggregated rows as CSV (one line per suite, forget set and method) or JSON."""
    import csv
    import io
    import json

    refuse_foreign(output)
    rows = export_rows(load_records(results_dir))
    if fmt == "json":
        return write_text(output, json.dumps(rows, indent=1, sort_keys=True) + "\n")
    flats = [flat(r) for r in rows]
    columns = list(dict.fromkeys(k for r in flats for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flats)
    return write_text(output, buffer.getvalue())
