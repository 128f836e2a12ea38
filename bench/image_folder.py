"""Decoding an ImageFolder copy of a dataset (CIFAR-10's JPEG/PNG `<part>/<class>/<file>` tree, as
a folder or a tarball) into uint8 arrays (N, 3, 32, 32) and int64 labels, in ImageFolder's order."""

from __future__ import annotations

import io
import tarfile
import zlib
from pathlib import Path

import numpy as np

from bench.errors import UserError


def _decode(data: bytes, name: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            image = np.asarray(img.convert("RGB")).transpose(2, 0, 1)
    except Exception as e:  # noqa: BLE001 - Pillow raises several kinds for a bad file
        raise UserError(f"'{name}' in the CIFAR-10 copy is not a readable image ({type(e).__name__}); "
                        "remove it or replace the copy.") from None
    if image.shape != (3, 32, 32):
        raise UserError(f"'{name}' in the CIFAR-10 copy is {image.shape[2]}x{image.shape[1]}, not 32x32; "
                        "remove it or replace the copy.")
    return image


def _assemble(items: list[tuple[str, str, str, np.ndarray]], classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """(part, class, file name, image) -> arrays sorted by class, then file name, as ImageFolder does."""
    out = {}
    for part in ("train", "test"):
        rows = sorted((c, f, img) for p, c, f, img in items if p == part)
        unknown = sorted({c for c, _, _ in rows} - set(classes))
        if not rows or unknown:
            raise UserError(f"ImageFolder copy has no usable '{part}/<class>/' images "
                            f"(unknown classes: {unknown}); expected CIFAR-10's 10 class folders.")
        out[f"{part}_x"] = np.stack([img for _, _, img in rows])
        out[f"{part}_y"] = np.array([classes.index(c) for c, _, _ in rows], dtype=np.int64)
    return out


def decode_imagefolder_tar(path: Path, classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """{train_x, train_y, test_x, test_y} from a tarball of <part>/<class>/<image> files."""
    items = []
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                parts = Path(member.name).parts
                if member.isfile() and len(parts) >= 3 and parts[-3] in ("train", "test"):
                    items.append((parts[-3], parts[-2], parts[-1],
                                  _decode(tar.extractfile(member).read(), member.name)))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise UserError(f"'{path}' is not a readable .tar.gz ({type(e).__name__}: {e}); it may be truncated: "
                        "replace it.") from None
    return _assemble(items, classes)


def decode_imagefolder_dir(root: Path, classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """{train_x, train_y, test_x, test_y} from a folder of <part>/<class>/<image> files."""
    items = [(p.parts[-3], p.parts[-2], p.name, _decode(p.read_bytes(), str(p)))
             for part in ("train", "test") for p in (root / part).glob("*/*") if p.is_file()]
    return _assemble(items, classes)
