"""Which code made a result: hashes of source files, computed from the code itself.

`code_hash(modules)` hashes the source of the given modules and of every project module
(`bench.*`, `methods.*`) they import, directly or not, found by reading their import
statements (function-level imports included). So editing one method's file changes that
method's hash only; editing a shared helper or the training loop changes the hash of every
method that uses it. These hashes key run records and cached models: nothing is reused that
other code would have made differently, and no hand-bumped version number can be forgotten.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PROJECT = ("bench", "methods")
TRAINING = ("bench.train", "bench.models", "bench.data")  # what shapes a trained model
EVALUATION = ("bench.evaluate", "bench.data")  # what shapes the saved per-example outputs


def _is_project(name: str) -> bool:
    return name.split(".")[0] in PROJECT


ROOT = Path(__file__).resolve().parent.parent  # the folder holding the project's packages


@functools.lru_cache(maxsize=None)
def _module_file(name: str) -> Path | None:
    """The source file of project module `name`, found on disk: never imported (finding a spec
    imports the parent packages, and a plugin's text can name any module), None if none."""
    if not _is_project(name):
        return None
    base = ROOT.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def _imports(path: Path) -> set[str]:
    """Project modules named by the import statements of `path` (`from a import b` may name a.b)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in found if _is_project(n) and _module_file(n) is not None}


def _closure(files: tuple[Path, ...]) -> list[Path]:
    seen: dict[Path, None] = {}
    todo = list(files)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = None
        todo.extend(_module_file(n) for n in _imports(path))
    return sorted(seen, key=str)


@functools.lru_cache(maxsize=None)
def file_hash(*files: Path) -> str:
    """Hash of these source files and every project module they import."""
    h = hashlib.sha256()
    for path in _closure(tuple(Path(f).resolve() for f in files)):
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def code_hash(*modules: str) -> str:
    """Hash of these project modules and every project module they import."""
    return file_hash(*(_module_file(m) for m in modules))


def entry_code_hash(entry) -> str:
    """Hash of the file that registered a method or attack (a plugin file too) and its imports."""
    return file_hash(Path(entry.source))


def run_code(method: str) -> dict:
    """Hashes of the code that makes a run's model and outputs (`original`: no method code)."""
    from bench.methods_loader import method_registry

    return {"method": None if method == "original" else entry_code_hash(method_registry().get(method)),
            "training": code_hash(*TRAINING), "evaluation": code_hash(*EVALUATION)}
