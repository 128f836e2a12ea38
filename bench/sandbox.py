"""Running a function in a fresh process that holds nothing but what it is sent.

Each call forks a child from a fork server: a fresh interpreter, started once per calling
process, that has run the caller's `prepare` (`bench.execute`'s imports torch, `torch._dynamo`
and the built-in methods and makes one training step of a small network on random inputs with
one thread), but holds no data. The caller sends the child its input (and its import path)
through a socket; the child sends back messages and a result.
Whatever the function does to its own process (global torch state, the working directory,
memory it reaches through the garbage collector or stack frames, os._exit, a crash) ends with
the child, and nothing the caller holds but what it sent was ever in the child's memory.

Why not fork the caller: its memory holds everything (the test split included), and a process
forked after OpenMP threads ran has an OpenMP without threads: on this torch build (libgomp) a
2-thread convolution in such a child never returns (measured), so the server warms up on one
thread. Why not a fresh interpreter per call: importing torch and `torch._dynamo` (imported on
the first backward pass) takes ~2.5 s, and a fresh process's first training step another
~0.2-1.7 s; the server pays both once. Why not multiprocessing's "forkserver": each of its
children imports the caller's `__main__` again (a script without a main guard would run twice).

A child writes files only in a scratch folder of its own (`bench.landlock`, where the kernel
has it; in a folder unique to its server), and what it leaves running is killed when it ends.
Inputs travel to the child as plain pickles (copies), never as shared memory, so a child that
writes into what it was sent changes only its own copy. Nothing from the child is unpickled
here: its messages and result are JSON, plus one blob of bytes for the caller to read safely
(`bench.execute` reads a state dict with `torch.load(weights_only=True)`), so no code of the
child's choosing runs in the caller.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import os
import pickle
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

from bench.landlock import confine, device_files

_server: _Server | None = None
_calls: Path | None = None  # in the server: a folder of its own for its children's scratch folders
# glibc's malloc in a fresh process maps and unmaps every block over 128 KiB until its thresholds
# adapt (a long-running process has them at 32 MiB): one cifar10-cpu finetune epoch took 3.15-4.12 s
# in a child vs 3.04-3.32 s in the caller without this, 2.84-3.13 vs 2.87-3.66 s with it (5 pairs).
MALLOC = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864"
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
SCRATCH_PREFIX = "unlearn-bench-calls-"  # a fork server's folder of its children's scratch folders


class ChildFailed(Exception):
    """The child died, or could not run the function or send its result; the message says which."""


def run_isolated(target: Callable, setup: Any, payload: Any, on_message: Callable[[Any], None],
                 warm: tuple[Callable, Any] | None = None, prepare: Callable[[], None] | None = None) -> tuple[Any, bytes]:
    """`target(setup, receive, send)` in a fresh child process; what it returns, (JSON value, bytes).

    target: a module-level function (it is sent by reference). setup: small, plain data the
    child unpickles first (e.g. which plugin to import before `payload` can be unpickled);
    `receive()` in the child returns `payload`; `send(message)` (JSON) in the child calls
    `on_message(message)` here. warm: (module-level function, argument) the child runs first,
    e.g. a warm-up step on random inputs of the caller's shapes. When a call ends, the next
    child is forked and warmed at once (same `warm`), so that its start overlaps with what the
    caller does between calls. prepare: a module-level function the fork server runs once when
    it starts (the first call starts it), e.g. imports and a warm-up. The user's Ctrl-C is
    handled here: children ignore SIGINT and this call's child is killed when the call ends
    early. Raises ChildFailed naming the cause (exit code, signal, or the error that kept the
    child from sending a result); a fork server that died is started again by the next call."""
    global _server
    if _server is None or not _server.usable():
        _server = _Server(prepare)
    key = pickle.dumps(warm, pickle.HIGHEST_PROTOCOL)
    try:
        pid, conn = _server.child(key)
    except OSError:
        raise ChildFailed("the fork server ended; nothing could be run") from None
    done = False
    try:
        path = [p for p in sys.path if isinstance(p, str)]  # the caller's import path now, not at the server's start
        with contextlib.suppress(OSError):  # a child that ended early: its own error frame, read below, says why
            conn.send_bytes(pickle.dumps((target, setup, path), pickle.HIGHEST_PROTOCOL))
            conn.send_bytes(pickle.dumps(payload, pickle.HIGHEST_PROTOCOL))
        while True:
            kind, value = _parsed(conn.recv_bytes())
            if kind == "message":
                on_message(value)
                continue
            if kind == "result":
                blob, done = conn.recv_bytes(), True
                return value, blob
            raise ChildFailed(str(value) if kind == "error" else _ended(value))
    except (EOFError, OSError):  # the server died with its children
        raise ChildFailed("its process ended before sending a result") from None
    finally:
        if not done:
            _kill(pid)
        conn.close()
        if sys.exc_info()[0] in (None, ChildFailed):  # not on Ctrl-C: nothing more will be called
            with contextlib.suppress(OSError):  # the server is gone: the next call starts another
                _server.prefork(key)


def _parsed(frame: bytes) -> tuple[str, Any]:
    """A child's frame: ["message" | "result" | "error", value], or the server's ["exited", code]."""
    try:
        kind, value = json.loads(frame)
        if kind == "exited" and not isinstance(value, int):
            raise TypeError
    except (ValueError, TypeError):
        raise ChildFailed("its process sent something that is not a message or a result") from None
    return kind, value


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _ended(code: int) -> str:
    return (f"its process was killed by {signal.Signals(-code).name}" if code < 0
            else f"its process ended (exit code {code}) before sending a result")


class _Server:
    """The caller's side of the fork server: starts it, asks it for children, keeps one spare."""

    def __init__(self, prepare: Callable[[], None] | None):
        self.owner = os.getpid()
        self.control, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if isinstance(p, str)),
               "GLIBC_TUNABLES": ":".join(filter(None, [os.environ.get("GLIBC_TUNABLES"), MALLOC]))}
        named = f"{prepare.__module__}:{prepare.__qualname__}" if prepare else ""
        self.process = subprocess.Popen([sys.executable, "-c", "import sys, bench.sandbox as s; s.serve(*sys.argv[1:])",
                                         str(theirs.fileno()), named], pass_fds=[theirs.fileno()], env=env,
                                        stdin=subprocess.DEVNULL)
        theirs.close()
        self.spare: tuple[bytes, Connection] | None = None  # (its warm key, connection); its pid not read yet

    def usable(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None

    def child(self, warm: bytes) -> tuple[int, Connection]:
        """A child warmed with `warm` (the spare, if it was): (its pid, the connection to it)."""
        if self.spare is not None:
            (key, conn), self.spare = self.spare, None
            pid = self._pid()
            if key == warm:
                return pid, conn
            _kill(pid)
            conn.close()
        self.prefork(warm)
        return self.child(warm)

    def prefork(self, warm: bytes) -> None:
        """Ask for the next child now; its pid is read when it is taken."""
        here, there = socket.socketpair()
        socket.send_fds(self.control, [b"F"], [there.fileno()])
        there.close()
        conn = Connection(here.detach())
        conn.send_bytes(warm)
        self.spare = (warm, conn)

    def _pid(self) -> int:
        reply = self.control.recv(8)
        if len(reply) != 8:
            raise ChildFailed("the fork server ended; nothing could be run")
        return struct.unpack("q", reply)[0]


# --- the server side -----------------------------------------------------------------------------


def serve(control_fd: str, prepare: str) -> None:
    """The fork server's loop: runs `prepare` ("module:function", or ""), then forks one child per
    request on `control_fd`, and reports each child's exit code on its own connection once it
    ends; exits (killing its children) when the caller's end of `control_fd` closes."""
    global _calls  # noqa: PLW0603 - the children inherit it
    if prepare:
        module, function = prepare.split(":")
        getattr(importlib.import_module(module), function)()
    _calls = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))  # unique: a dead server's leftovers never clash
    gc.freeze()  # the collector leaves the server's objects alone, so children copy fewer pages on write
    # Processes a child leaves behind (a method's own children, double-forked or not) become
    # this server's when their parents end, and are killed (`_reap`).
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    control = socket.socket(fileno=int(control_fd))
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select below through wake_w
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller handles the user's Ctrl-C
    children: dict[int, Connection] = {}
    while True:
        ready, _, _ = select.select([control, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
            _reap(children)
        if control in ready:
            try:
                msg, fds, _, _ = socket.recv_fds(control, 1, 1)
            except OSError:
                msg = b""
            if not msg:  # the caller is gone
                for pid in children:
                    _kill(pid)
                shutil.rmtree(_calls, ignore_errors=True)
                os._exit(0)
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                for fd in (control.detach(), wake_r, wake_w, *(c.fileno() for c in children.values())):
                    os.close(fd)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _child(Connection(fds[0]))
            children[pid] = Connection(fds[0])
            control.sendall(struct.pack("q", pid))


def _reap(children: dict[int, Connection]) -> None:
    """Reap ended children, report their exit codes, and kill any process a child left behind."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        conn = children.pop(pid, None)
        shutil.rmtree(_calls / str(pid), ignore_errors=True)
        if conn is not None:
            try:
                conn.send_bytes(json.dumps(["exited", os.waitstatus_to_exitcode(status)]).encode())
            except OSError:  # the caller stopped listening (it had its result)
                pass
            conn.close()
    for pid in _adopted(children):
        _kill(pid)


def _adopted(children: dict[int, Connection]) -> list[int]:
    """This server's child processes that it did not fork: descendants of its children, which
    it adopts as a subreaper (PR_SET_CHILD_SUBREAPER) when their parents end."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.isdigit() and int(fields[1]) == me and int(entry) not in children:
            found.append(int(entry))
    return found


def _child(conn: Connection) -> None:
    def send(message) -> None:
        conn.send_bytes(json.dumps(["message", message]).encode())

    try:
        warm = pickle.loads(conn.recv_bytes())
        if warm is not None:
            with contextlib.suppress(Exception):  # a failed warm-up only slows the call; the call reports errors
                warm[0](warm[1])
        _confine()
        target, setup, sys.path[:] = pickle.loads(conn.recv_bytes())
        value, blob = target(setup, lambda: pickle.loads(conn.recv_bytes()), send)
        replies = [json.dumps(["result", value]).encode(), blob]
    except BaseException as e:  # noqa: BLE001 - tell the caller, in one line, instead of a traceback here
        replies = [json.dumps(["error", f"{type(e).__name__}: {e}"]).encode()]
    try:
        for reply in replies:
            conn.send_bytes(reply)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(0)


def _confine() -> None:
    """From here on this child writes files only in a scratch folder of its own (also its temp
    folder; removed when it ends), its /proc entry and the device files a GPU needs (and
    /dev/null), and signals no process but its own (`bench.landlock`)."""
    scratch = _calls / str(os.getpid())
    scratch.mkdir()
    os.environ["TMPDIR"] = tempfile.tempdir = str(scratch)
    confine([scratch, Path(f"/proc/{os.getpid()}")], device_files())
