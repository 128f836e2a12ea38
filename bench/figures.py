"""Figures of a leaderboard section: the two trade-offs (Avg. Gap vs RTE; privacy gap vs utility
gap) from the aggregated rows, and from the lowest seed's saved outputs loss histograms (forget
vs test) and log-log ROC curves per attack.

Drawn with matplotlib's Agg backend (no display) into `<results>/<suite>/figures/`. Every value
is drawn: axes are sized to the data, and what cannot be placed on a log axis (a loss or rate
of 0, an infinite loss) sits on the axis edge with a marker. PNGs carry no software metadata, so
the same records give the same files.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bench.attacks.base import roc_curve  # noqa: E402
from bench.files import atomic_write  # noqa: E402

PNG = {"metadata": {"Software": None}, "dpi": 100}


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", **PNG))
    plt.close(fig)


def loss_histograms(runs: list[tuple[str, dict]], path: Path, title: str) -> Path:
    """One panel per method: histograms of log10 loss on the forget set and the test split, on
    bins shared by all panels and spanning every finite value; a loss of 0 or +inf is drawn in the
    first or last bin and counted in the panel ("k off-scale")."""
    cols = 4
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    bins, logs = histogram_bins(runs)
    for ax, (label, out) in zip(axes.flat, runs):
        off = 0
        for split, colour in (("forget", "tab:red"), ("test", "tab:blue")):
            loss = logs[(label, split)]
            off += int((~np.isfinite(loss)).sum())
            ax.hist(np.clip(np.nan_to_num(loss, posinf=bins[-1], neginf=bins[0]), bins[0], bins[-1]),
                    bins=bins, density=True, alpha=0.5, color=colour, label=split)
        ax.set_title(label + (f"  ({off} off-scale ▶)" if off else ""), fontsize=10)
        ax.set_xlabel("log10 loss", fontsize=8)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    return path


def histogram_bins(runs: list[tuple[str, dict]]) -> tuple[np.ndarray, dict]:
    """Bins spanning every finite log10 loss of every run, and those log10 losses by (run, split)."""
    logs = {(label, split): _log10(out[f"{split}_loss"]) for label, out in runs for split in ("forget", "test")}
    finite = np.concatenate([v[np.isfinite(v)] for v in logs.values()] or [np.zeros(0)])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return np.linspace(lo, hi + max(1e-6, 0.01 * (hi - lo)), 56), logs


def _log10(loss: np.ndarray) -> np.ndarray:
    """log10 of a loss; 0 becomes -inf and NaN +inf (both drawn on the axis edge, and counted)."""
    loss = np.asarray(loss, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isnan(loss), np.inf, np.log10(loss))


MARKERS = ("o", "^", "D", "v", "P", "X", "<", ">", "h", "p", "d", "8", "H")  # * and s: retrain, original
LINES = ("-", "--", "-.", ":")


def method_styles(names: list[str]) -> dict[str, dict]:
    """A colour, marker and line style per method, distinct for up to 20 × 14 methods and the same
    in every figure of a section (by sorted name): colours from matplotlib's tab20, markers and
    line styles cycling against them. retrain is a green star, original a black square."""
    colours = plt.get_cmap("tab20").colors
    out = {}
    for i, name in enumerate(sorted(n for n in names if _reference_name(n) is None)):
        out[name] = dict(color=colours[i % 20], marker=MARKERS[i % len(MARKERS)], ls=LINES[(i // 10) % len(LINES)])
    out.update({n: dict(color="tab:green", marker="*", ls="-") for n in names if _reference_name(n) == "retrain"})
    out.update({n: dict(color="k", marker="s", ls="--") for n in names if _reference_name(n) == "original"})
    return out


def roc_plot(curves: list[tuple[str, np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """Log-log ROC, one curve per method (its own colour and line style), from saved member and
    non-member attack scores. The axes start at half the smallest non-zero rate any curve can
    have; rates of 0 sit on that edge."""
    fig, ax = plt.subplots(figsize=(6, 5))
    floor = 0.5 / max(max(len(m), len(n)) for _, m, n in curves)
    styles = method_styles([label for label, _, _ in curves])
    for label, member, nonmember in curves:
        y = np.r_[np.ones(len(member)), np.zeros(len(nonmember))]
        fpr, tpr = roc_curve(y, np.r_[member, nonmember].astype(np.float64))
        ax.plot(np.maximum(fpr, floor), np.maximum(tpr, floor), label=label, lw=1.2, color=styles[label]["color"],
                ls=styles[label]["ls"])
    ax.plot([floor, 1], [floor, 1], "k:", lw=0.8)
    ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1),
           xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(fontsize=6, loc="lower right", ncol=2)
    fig.tight_layout()
    _save(fig, path)
    return path


def _reference_name(label: str) -> str | None:
    return next((r for r in ("retrain", "original") if label == f"{r} (reference)"), None)


def _reference(row: dict) -> str | None:
    return _reference_name(row["method"])


def _bar(value: float, spread: float | None, log: bool) -> list[float]:
    """[below, above] of an error bar of ± `spread` that stays on the axis: a gap or rate is never
    drawn below 0, and on a log axis the bar stops above 0 (at a tenth of the value)."""
    spread = spread or 0.0
    floor = value / 10 if log else 0.0
    return [min(spread, max(value - floor, 0.0)), spread]


def _points(ax, rows, x_key, y_key, x_log: bool = False):
    """One labelled point per row with std error bars kept on the axes; each method its own colour
    and marker (`method_styles`); labels moved apart where they would overlap (adjustText)."""
    from adjustText import adjust_text

    styles = method_styles([row["method"] for row in rows])
    texts, xs, ys = [], [], []
    for row in rows:
        x, y = row.get(x_key), row.get(y_key)
        if x is None or y is None:
            continue
        style = styles[row["method"]]
        ax.errorbar(x, y, xerr=np.array([_bar(x, row.get(f"{x_key}_std"), x_log)]).T,
                    yerr=np.array([_bar(y, row.get(f"{y_key}_std"), False)]).T, fmt=style["marker"],
                    ms=12 if style["marker"] == "*" else 6, color=style["color"], capsize=2, lw=0.8)
        texts.append(ax.text(x, y, row["method"].replace(" (reference)", ""), fontsize=7, in_layout=False))
        xs.append(x)
        ys.append(y)
    if texts:
        adjust_text(texts, x=xs, y=ys, ax=ax, min_arrow_len=0, expand=(1.05, 1.2), iter_lim=300,  # not time_lim: same bytes
                    arrowprops=dict(arrowstyle="-", color="0.5", lw=0.5))


def cost_plot(rows: list[dict], path: Path, title: str) -> Path:
    """Avg. Gap (down is closer to retrain) against RTE (right is cheaper, log axis; in FLOPs, or wall
    time for records made before the FLOP count); the original, which has no unlearning cost, is a
    dashed line at its gap."""
    fig, ax = plt.subplots(figsize=(7, 5))
    _points(ax, [r for r in rows if _reference(r) != "original"], "rte", "avg_gap", x_log=True)
    original = next((r for r in rows if _reference(r) == "original" and "avg_gap" in r), None)
    if original:
        ax.axhline(original["avg_gap"], color="k", ls="--", lw=0.8, label="original (no unlearning)")
        ax.legend(fontsize=8, loc="upper left")
    ax.set_ylim(bottom=0)
    by_wall = any(r.get("rte_basis") == "wall" for r in rows)  # records made before the FLOP count
    cost = "wall time" if by_wall else "FLOPs"
    ax.set(xscale="log", xlabel=f"RTE: retrain {cost} / method {cost} (log; right = cheaper)",
           ylabel="Avg. Gap to retrain, points (down = closer)",
           title=f"closeness vs cost: {title}\n(bars: ± std over seeds)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _save(fig, path)
    return path


def privacy_utility_plot(rows: list[dict], path: Path, title: str, attack: str) -> Path:
    """The headline attack's mean |AUC gap| to retrain (0 = like retrain) against the utility gap
    (retain and test accuracy vs retrain); retrain sits at (0, 0) by definition."""
    fig, ax = plt.subplots(figsize=(7, 5))
    _points(ax, rows, "utility_gap", "privacy_gap")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.set(xlabel="utility gap: mean |Δ| retain and test accuracy vs retrain, points (left = closer)",
           ylabel=f"{attack} AUC: mean |method − retrain| (0 = like retrain)",
           title=f"privacy vs utility: {title}\n(bars: ± std over seeds)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return path
