"""Every file the harness writes goes through here.

- `atomic_write`: written under a temporary name unique to the process and call, then renamed,
  so a reader never sees half a file and two processes never share a temporary file.
- `inside`: an output path must resolve inside the folder it belongs to (no `..` escapes).
- Cache files carry a sidecar `<file>.meta.json` with the key they were made for and their
  sha256 (`write_checked`); `read_checked` verifies both, and deletes a file that is corrupt,
  truncated or was made for another key, with one warning line, so that it is rebuilt.
- `ResultsLock`: one driver per results folder (a lock file naming the holder's pid and host).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

from bench.errors import UserError

LOCK_NAME = ".unlearn-bench.lock"


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Write `path` by `write(tmp)` on a unique temporary name in the same folder, then rename.
    A folder that cannot be written, or a full disk, is a UserError naming the path (nothing is
    left under the real name either way)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the folder '{path.parent}' ({e.strerror or e}); pass a writable one.") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save on a full disk raises RuntimeError("unexpected pos ...")
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise UserError(f"cannot write '{path}' ({e.strerror}); pass a writable folder.") from None
        if disk_full(e, path.parent):
            raise UserError(f"no space left on the device holding '{path.parent}' while writing '{path.name}'; "
                            "free some space and run again (finished runs are kept).") from None
        raise
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a cleanup that fails must not hide the error above
            pass
    return path


def disk_full(error: BaseException, folder: Path) -> bool:
    """Whether `error` comes from a full disk: ENOSPC, or under 1 MiB left where `folder` lives."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def npz_writer(arrays: dict, compressed: bool = False) -> Callable[[Path], None]:
    """A `write(tmp)` for `atomic_write` / `write_checked` that saves `arrays` as .npz."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object keeps numpy from appending ".npz" to the name
            (np.savez_compressed if compressed else np.savez)(f, **arrays)

    return write


def write_npz(path: Path, arrays: dict, compressed: bool = False) -> Path:
    return atomic_write(path, npz_writer(arrays, compressed))


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, never unpickling anything."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def inside(root: Path, path: Path) -> Path:
    """`path` if it resolves inside `root`, else a UserError naming the cause: a symbolic link on
    the way out of `root`, or a name that climbs out of it."""
    if not path.resolve().is_relative_to(root.resolve()):
        links = [p for p in [path, *path.parents] if p.is_symlink() and p.resolve() != p.absolute()]
        if links:
            raise UserError(f"'{path}' would be written outside '{root}' through the link '{links[-1]}' (to "
                            f"'{links[-1].resolve()}'); replace the link with a folder, or pass another folder.")
        raise UserError(f"'{path}' would be written outside '{root}'; use plain names "
                        "(letters, digits, '.', '_', '-') for suites and forget sets.")
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def write_checked(path: Path, write: Callable[[Path], None], key: str, **extra) -> Path:
    """Write a cache file atomically, then its sidecar (key, sha256); the sidecar comes last, so a
    file without a valid sidecar is never trusted."""
    atomic_write(path, write)
    write_text(_meta_path(path), json.dumps({"key": key, "sha256": sha256_file(path), **extra}, indent=2))
    return path


def read_checked(path: Path, read: Callable[[Path], object], key: str):
    """`read(path)` if the file exists, matches its sidecar's sha256 and was made for `key`;
    otherwise None. A file that exists but fails is deleted with one warning line."""
    meta_path = _meta_path(path)
    if not path.exists() and not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            raise ValueError(f"made for another key ({str(meta.get('key'))[:16]}…)")
        if sha256_file(path) != meta.get("sha256"):
            raise ValueError("its sha256 does not match its metadata (truncated or replaced)")
        return read(path)
    except Exception as e:  # noqa: BLE001 - any unreadable cache file is rebuilt, never trusted
        print(f"unlearn-bench: warning: cache file '{path}' is unusable ({type(e).__name__}: {e}); "
              "deleting it to rebuild it.", file=sys.stderr)
        path.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
        return None


def read_meta(path: Path) -> dict:
    return json.loads(_meta_path(path).read_text())


class ResultsLock:
    """Held while a command writes into a results folder; a second driver stops at once."""

    def __init__(self, results_dir: Path):
        self.results_dir = results_dir
        self.path = results_dir / LOCK_NAME
        self.held = False

    def __enter__(self) -> "ResultsLock":
        if self.results_dir.exists() and not self.results_dir.is_dir():
            raise UserError(f"--results '{self.results_dir}' is a file, not a folder; pass a folder.")
        self.created = not self.results_dir.exists()
        try:
            self.results_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create results folder '{self.results_dir}' ({e.strerror}); "
                            "pass a writable --results.") from None
        me = f"{os.getpid()} {socket.gethostname()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._take_over_stale():
                    holder = self._holder()
                    raise UserError(f"results folder '{self.results_dir}' is in use by another unlearn-bench "
                                    f"(pid {holder[0]} on {holder[1]}); wait for it to finish, or remove "
                                    f"'{self.path}' if that process is gone.") from None
                continue
            except OSError as e:
                if e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                    raise UserError(f"results folder '{self.results_dir}' is not writable; "
                                    "pass a writable --results.") from None
                raise
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(me + "\n")
            except OSError as e:  # e.g. a full disk: leave no empty lock behind
                self.path.unlink(missing_ok=True)
                raise UserError(f"cannot write the lock '{self.path}' ({e.strerror}); "
                                f"{'free some space' if disk_full(e, self.results_dir) else 'check the folder'}.") from None
            self.held = True
            return self
        raise UserError(f"could not take the lock '{self.path}'; try again.")

    def _holder(self) -> tuple[str, str]:
        try:
            pid, host = self.path.read_text().split()
            return pid, host
        except (OSError, ValueError):
            return "?", "?"

    def _take_over_stale(self) -> bool:
        """Remove the lock of a process that no longer exists on this host, or a lock that says no
        holder at all and is over a minute old (its writer died before it could say who it was)."""
        pid, host = self._holder()
        if pid == "?":
            try:
                old = time.time() - self.path.stat().st_mtime > 60
            except OSError:
                return False
            if old:
                self.path.unlink(missing_ok=True)
            return old
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
            return False  # alive
        except ProcessLookupError:
            self.path.unlink(missing_ok=True)
            return True
        except PermissionError:
            return False

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
            if self.created and not any(self.results_dir.iterdir()):
                self.results_dir.rmdir()  # a command that failed before writing leaves nothing behind
