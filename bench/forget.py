"""Forget-set protocols -> fixed index files with their sha256.

Indices point into the dataset's training images. A forget set is written once to
`<results>/<suite>/forget_sets/<name>.npy`; later runs read it back and refuse to go on if
the suite now describes a different set, so every record of a suite uses the same examples.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.spec import ForgetSpec
from bench.errors import UserError
from bench.files import atomic_write, inside


@dataclass(frozen=True)
class ForgetSet:
    name: str
    protocol: str
    indices: np.ndarray  # sorted indices into the dataset's training images
    file: str  # path of the index file, relative to the results folder
    sha256: str
    label: int | None  # the forgotten class, for the class protocol (None otherwise)

    @property
    def forgotten_class(self) -> int | None:
        """The class that is forgotten, or None: the one test of class forgetting."""
        return self.label if self.protocol == "class" else None

    def summary(self) -> dict:
        return {"name": self.name, "protocol": self.protocol, "size": int(len(self.indices)),
                "file": self.file, "sha256": self.sha256, "label": self.label}


def select_indices(spec: ForgetSpec, pool: np.ndarray, labels: np.ndarray, num_classes: int,
                   suite_dir: Path) -> np.ndarray:
    """The forget set's indices (sorted); neither the forget set nor the retain set may be empty."""
    indices = _select(spec, pool, labels, num_classes, suite_dir)
    if not 0 < len(indices) < len(pool):
        what = "no training image" if len(indices) == 0 else f"all {len(pool)} training images"
        raise UserError(f"forget set '{spec.display_name}' holds {what}; both the forget and the retain "
                        "set must be non-empty.")
    return indices


def _select(spec: ForgetSpec, pool: np.ndarray, labels: np.ndarray, num_classes: int,
            suite_dir: Path) -> np.ndarray:
    if spec.protocol == "random":
        k = int(round(spec.fraction * len(pool)))
        if not 0 < k < len(pool):
            raise UserError(f"forget fraction {spec.fraction} of {len(pool)} training images leaves "
                            f"{k} to forget; choose a fraction that keeps both sets non-empty.")
        return np.sort(np.random.default_rng(spec.seed).choice(pool, k, replace=False))
    if spec.protocol == "class":
        if not 0 <= spec.label < num_classes:
            raise UserError(f"forget class {spec.label} does not exist; the dataset has classes "
                            f"0..{num_classes - 1}.")
        return pool[labels[pool] == spec.label]
    path = Path(spec.path) if Path(spec.path).is_absolute() else suite_dir / spec.path
    if not path.is_file():
        raise UserError(f"forget set file '{path}' does not exist; fix 'path' in the suite.")
    try:
        indices = np.load(path, allow_pickle=False)
    except Exception:  # noqa: BLE001 - text, pickles, truncated files: all the same to the user
        raise UserError(f"forget set file '{path}' is not a .npy array file (numpy.save of an integer "
                        "array); write it with numpy.save.") from None
    if not isinstance(indices, np.ndarray):  # an .npz archive under a .npy name
        indices.close()
        raise UserError(f"forget set file '{path}' is an .npz archive, not a .npy array; save one array "
                        "with numpy.save.")
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer) or len(indices) == 0:
        raise UserError(f"forget set file '{path}' must hold a non-empty 1-D array of integers.")
    outside = np.setdiff1d(indices, pool)
    if len(outside):
        raise UserError(f"forget set file '{path}': index {outside[0]} is not in the training pool "
                        f"({len(outside)} such); use indices of the suite's training images.")
    if len(np.unique(indices)) != len(indices):
        raise UserError(f"forget set file '{path}' repeats indices; each example may appear once.")
    return np.sort(indices).astype(np.int64)


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def materialize(spec: ForgetSpec, pool, labels, num_classes: int, suite_dir: Path,
                results_dir: Path, suite_name: str) -> ForgetSet:
    """Select the forget set, write its index file once (or check the existing one), hash it."""
    indices = select_indices(spec, pool, labels, num_classes, suite_dir).astype(np.int64)
    rel = Path(suite_name) / "forget_sets" / f"{spec.display_name}.npy"
    path = inside(results_dir, results_dir / rel)
    data = npy_bytes(indices)
    if path.is_file():
        if path.read_bytes() != data:
            raise UserError(f"'{path}' already holds a different forget set than the suite now "
                            f"describes; move that results folder aside or name the forget set anew.")
    else:
        atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return ForgetSet(spec.display_name, spec.protocol, indices, rel.as_posix(),
                     hashlib.sha256(data).hexdigest(), spec.label if spec.protocol == "class" else None)
