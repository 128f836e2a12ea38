"""The leaderboard as people read it: a headline table of at most ten columns per section, the two
trade-off figures linked at its top, details per attack, and CSV/JSON exports that say the same
numbers."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_SUITE

SUITE = TINY_SUITE.replace("seeds: [0, 1]", "seeds: [0, 1, 2]") + "attacks: [simple, loss_threshold, mia_efficacy]\n"


@pytest.fixture
def board(cli, tiny_suite):
    assert cli("run", tiny_suite(SUITE), "--quiet")[0] == 0
    return Path("leaderboard.md").read_text()


def _tables(text: str) -> list[list[list[str]]]:
    """Every markdown table of `text` as rows of cells (header first, separator dropped)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= {"-", ":"} for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


@pytest.mark.slow
def test_every_table_is_at_most_ten_columns_and_the_headline_names_its_privacy_attack(board):
    tables = _tables(board)
    assert tables and all(len(t[0]) <= 10 for t in tables)
    headline = tables[0][0]
    assert headline[:3] == ["Rank", "Method", "Avg. Gap ↓"] and headline[-1] == "Runs"
    assert "Loss threshold AUC abs. gap ↓" in headline  # the strongest attack run (strength 1, first by name)
    assert "<details><summary>Loss threshold (loss_threshold)</summary>" in board
    assert "produced from commit" in board


@pytest.mark.slow
def test_the_trade_off_figures_exist_and_are_linked_above_the_table(board):
    section = board[board.index("## tiny"):]
    links = re.findall(r"\[([^\]]+)\]\(([^)]+\.png)\)", section[:section.index("| Rank")])
    names = [name for name, _ in links]
    assert names[:2] == ["Avg. Gap vs RTE", "privacy vs utility"]
    assert all(Path(path).is_file() and Path(path).stat().st_size > 10_000 for _, path in links)


@pytest.mark.slow
def test_csv_and_json_exports_say_what_the_markdown_says(board, cli):
    assert cli("leaderboard", "--format", "csv")[0] == 0 and cli("leaderboard", "--format", "json")[0] == 0
    rows = list(csv.DictReader(Path("leaderboard.csv").open()))
    exported = json.loads(Path("leaderboard.json").read_text())
    assert len(rows) == len(exported) == 4  # original, retrain, finetune, gradient_ascent: one section
    by_method = {r["method"]: r for r in rows}
    headline = _tables(board)[0]
    header = headline[0]
    for cells in headline[1:]:
        row = by_method[cells[1]]
        shown = dict(zip(header, cells))
        assert shown["Avg. Gap ↓"].split(" ± ")[0] == f"{float(row['avg_gap']):.2f}"
        for column, key in (("Forget acc (= retrain)", "forget_acc"), ("Retain acc (= retrain)", "retain_acc"),
                            ("Test acc (= retrain)", "test_acc")):
            assert shown[column].split(" ± ")[0] == f"{float(row[key]):.1f}"
        if row["rte"]:
            assert shown["RTE ↑"].split(" ± ")[0] == f"{float(row['rte']):.1f}"
        assert shown["Runs"] == row["runs"]
        assert shown["Rank"].split(" ")[0] == (row["place"] or "—")
        assert shown["P(best) ↑"] == (f"{float(row['p_best']):.2f}" if row["p_best"] else "—")
    for j in exported:  # JSON keeps the numbers exactly; CSV prints them in full
        flat = by_method[j["method"]]
        assert float(flat["avg_gap"]) == pytest.approx(j["avg_gap"], rel=1e-12)
        assert float(flat["loss_threshold_auc"]) == pytest.approx(j["attacks"]["loss_threshold"]["auc"], rel=1e-12)


def test_loss_histograms_span_every_value_and_count_what_cannot_be_placed(tmp_path):
    """A gradient-ascent model's losses in the thousands used to fall off a fixed axis (−8..3)."""
    from bench.figures import histogram_bins, loss_histograms

    huge = {"forget_loss": np.array([2e3, 5e3, np.inf]), "test_loss": np.array([1e-3, 0.0, 40.0])}
    fine = {"forget_loss": np.array([0.01, 0.1]), "test_loss": np.array([1.0, 2.0])}
    bins, logs = histogram_bins([("ga", huge), ("ft", fine)])
    finite = np.concatenate([v[np.isfinite(v)] for v in logs.values()])
    assert bins[0] <= finite.min() and finite.max() <= bins[-1] and finite.max() > 3.5
    assert sum(int((~np.isfinite(v)).sum()) for v in logs.values()) == 2  # the 0 and the inf: drawn at the edges
    assert loss_histograms([("ga", huge), ("ft", fine)], tmp_path / "h.png", "t").stat().st_size > 5_000


def test_every_method_has_its_own_colour_and_marker_and_error_bars_stay_on_the_axes(tmp_path):
    """14 and more methods: no two share colour and marker (a 10-colour cycle gave retrain and
    boundary_shrink the same blue); a bar of ± std never reaches below 0, nor to 0 on a log axis;
    the same rows give the same PNG bytes (label placement is deterministic)."""
    from bench.figures import _bar, cost_plot, method_styles

    names = [f"method_{i}" for i in range(20)] + ["retrain (reference)", "original (reference)"]
    styles = method_styles(names)
    assert len({(s["color"], s["marker"]) for s in styles.values()}) == len(names)
    assert styles["retrain (reference)"]["marker"] == "*" and styles["original (reference)"]["marker"] == "s"
    assert all(s["marker"] not in ("*", "s") for n, s in styles.items() if "reference" not in n)
    assert _bar(0.8, 2.0, log=False) == [0.8, 2.0] and _bar(3.0, 1.0, log=False) == [1.0, 1.0]
    assert _bar(2.0, 5.0, log=True) == [pytest.approx(1.8), 5.0] and _bar(1.0, None, log=True) == [0.0, 0.0]
    rows = [{"method": n, "avg_gap": 1.0 + i / 10, "avg_gap_std": 2.0, "rte": 2.0 + i, "rte_std": 0.5}
            for i, n in enumerate(names[:6])]
    first, second = cost_plot(rows, tmp_path / "a.png", "t"), cost_plot(rows, tmp_path / "b.png", "t")
    assert first.read_bytes() == second.read_bytes()
