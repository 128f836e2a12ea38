"""The tuning journal: Optuna's JournalStorage on `<results>/<suite>/tuning/journal.log`, checked
when opened, with a write lock the kernel drops when its holder dies.

A journal is one JSON operation per line. A tune killed while appending can leave its last
line cut off; that line never took effect, so it is removed (said in one line) before Optuna
reads or appends. Any other line that is not JSON is damage the tool cannot mend: one line names
the file and the line.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path

from bench.errors import UserError


class _KernelLock:
    """The journal's write lock, held with flock(2): the kernel drops it when its holder dies.

    Optuna's default symlink lock outlives a killed driver; its 30 s grace period never ends
    when the results path is relative (the symlink dangles, so its age cannot be read), and a
    resumed tune then waited forever. Only the driver writes the journal (the results folder's
    driver lock sees to one driver), so a local kernel lock is enough."""

    def __init__(self, path: str):
        self.path, self.fd = path, None

    def acquire(self) -> bool:
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return True

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def check_journal(path: Path) -> None:
    """Drop a cut-off last line (one line on stderr says so); a broken line elsewhere is a UserError."""
    if not path.is_file():
        return
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # what follows the last newline: b"" when the file ends cleanly
    for number, line in enumerate(lines, 1):
        try:
            json.loads(line)
        except ValueError:
            raise UserError(f"'{path}' line {number} is not a journal entry; move the file aside to start the "
                            "tuning afresh.") from None
    if tail:
        with open(path, "r+b") as f:
            f.truncate(len(data) - len(tail))
        print(f"unlearn-bench: '{path}': its last line was cut off (a tune killed while writing it) and is "
              "removed", file=sys.stderr)


def open_journal(path: Path):
    """Optuna's JournalStorage on `path`, checked first (`check_journal`)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    check_journal(path)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=_KernelLock(str(path) + ".flock")))
