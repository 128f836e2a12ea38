"""Figures from saved outputs: loss histograms (forget vs test) and log-log ROC curves per attack.

Drawn with matplotlib's Agg backend (no display), from the lowest seed's runs of each method,
into `<results>/<suite>/figures/`. PNGs carry no software metadata, so the same records give
the same files.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from bench.files import atomic_write  # noqa: E402

PNG = {"metadata": {"Software": None}, "dpi": 100}


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", **PNG))
    plt.close(fig)


def loss_histograms(runs: list[tuple[str, dict]], path: Path, title: str) -> Path:
    """One panel per method: histograms of log10 loss on the forget set and the test split."""
    cols = 4
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    bins = np.linspace(-8, 3, 56)
    for ax, (label, out) in zip(axes.flat, runs):
        for split, colour in (("forget", "tab:red"), ("test", "tab:blue")):
            loss = np.log10(np.maximum(out[f"{split}_loss"].astype(np.float64), 1e-8))
            ax.hist(loss, bins=bins, density=True, alpha=0.5, color=colour, label=split)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("log10 loss", fontsize=8)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    return path


def roc_plot(curves: list[tuple[str, np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """Log-log ROC, one curve per method, from saved member and non-member attack scores."""
    fig, ax = plt.subplots(figsize=(6, 5))
    for label, member, nonmember in curves:
        y = np.r_[np.ones(len(member)), np.zeros(len(nonmember))]
        fpr, tpr, _ = roc_curve(y, np.r_[member, nonmember].astype(np.float64))
        ax.plot(np.maximum(fpr, 1e-5), np.maximum(tpr, 1e-5), label=label, lw=1.2)
    ax.plot([1e-5, 1], [1e-5, 1], "k:", lw=0.8)
    ax.set(xscale="log", yscale="log", xlim=(1e-4, 1), ylim=(1e-4, 1),
           xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _save(fig, path)
    return path
