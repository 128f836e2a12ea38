"""Confining a process with Linux's Landlock (kernel >= 5.13, no privileges needed): no writes
outside given folders and (kernel >= 6.12, ABI 6) no signals to processes outside its sandbox.

A method's process (`bench.sandbox`) may read anything its user can, but must not write, create,
remove or rename files outside a scratch folder of its own: otherwise it could rewrite the model
cache or earlier records, and so change later runs. Nor may it signal the harness, the fork server
or another call's process (a plugin that killed them failed every later run), or reach them
through abstract Unix sockets. Landlock is the kernel's unprivileged
sandbox for exactly this (https://docs.kernel.org/userspace-api/landlock.html): a ruleset lists
the access rights it handles, rules allow some of them beneath given folders, and
`landlock_restrict_self` applies it to the calling thread and everything it starts, for good.
Files already open (the connection to the caller, stdout, stderr) stay usable. Where the kernel
lacks Landlock the process is not restricted, and `confine` says so; below ABI 6 signals are
not scoped.
"""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446  # syscall numbers (the same on x86-64 and arm64)
CREATE_RULESET_VERSION = 1  # flag: return the highest ABI version
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
# LANDLOCK_ACCESS_FS_*: write file, remove dir/file, make char/dir/reg/sock/fifo/block/sym (ABI 1),
# refer (rename or link across folders, ABI 2), truncate (ABI 3)
WRITES = {1: (1, 4, 5, 6, 7, 8, 9, 10, 11, 12), 2: (13,), 3: (14,)}
SCOPED = 1 | 2  # LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL (ABI 6)


def confine(allowed: list[Path]) -> bool:
    """Forbid this process and its descendants every write to the file system except beneath
    `allowed` (existing folders), and (ABI 6) signals and abstract-socket connections to any
    process outside this sandbox (itself and its own children stay reachable). Returns False,
    restricting nothing, where Landlock is missing."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(ctypes.c_long(CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    if abi < 1:
        return False
    handled = sum(1 << bit for version, bits in WRITES.items() if abi >= version for bit in bits)
    # struct landlock_ruleset_attr {u64 handled_access_fs, handled_access_net, scoped}: the kernel takes a prefix
    attr = struct.pack("=QQQ", handled, 0, SCOPED) if abi >= 6 else struct.pack("=Q", handled)
    buffer = ctypes.create_string_buffer(attr, len(attr))
    ruleset = libc.syscall(ctypes.c_long(CREATE_RULESET), buffer, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        return False
    try:
        for folder in allowed:
            fd = os.open(folder, os.O_PATH | os.O_DIRECTORY)
            try:
                rule = ctypes.create_string_buffer(struct.pack("=Qi", handled, fd))  # landlock_path_beneath_attr, packed
                if libc.syscall(ctypes.c_long(ADD_RULE), ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH), rule,
                                ctypes.c_uint32(0)) != 0:
                    return False
            finally:
                os.close(fd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False
        return libc.syscall(ctypes.c_long(RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)) == 0
    finally:
        os.close(ruleset)
