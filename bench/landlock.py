"""Confining a process with Linux's Landlock (kernel >= 5.13, no privileges needed): no writes
outside given folders and (kernel >= 6.12, ABI 6) no signals to processes outside its sandbox;
and with a seccomp filter (libseccomp) no changing other processes' limits or priorities.

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


FILE_WRITES = (1, 14)  # the rights a rule on one file (not a folder) may grant: write, truncate


def device_files() -> list[Path]:
    """The device files a method may open for writing: /dev/null, and the GPU driver's
    (/dev/nvidia*, /dev/nvidia-caps/*): CUDA opens them read-write, so without them no method
    call could use a GPU. Not /dev as a whole: /dev/shm is a shared folder."""
    dev = Path("/dev")
    found = [dev / "null", *dev.glob("nvidia*"), *dev.glob("nvidia-caps/*")]
    return sorted(p for p in found if p.exists() and not p.is_dir())


def confine(allowed: list[Path], files: list[Path] = ()) -> bool:
    """Forbid this process and its descendants every write to the file system except beneath
    `allowed` (existing folders) and to `files` (existing files, e.g. `device_files()`), and
    (ABI 6) signals and abstract-socket connections to any process outside this sandbox (itself
    and its own children stay reachable); then, where libseccomp is, changing other processes'
    limits and priorities (`deny_acting_on_others`). Returns False where Landlock is missing
    (nothing of it restricts)."""
    restricted = _landlock(allowed, files)
    deny_acting_on_others()
    return restricted


def _landlock(allowed: list[Path], files: list[Path] = ()) -> bool:
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
        on_files = sum(1 << bit for bit in FILE_WRITES) & handled
        for path, rights, flags in [*((p, handled, os.O_DIRECTORY) for p in allowed),
                                    *((p, on_files, 0) for p in files)]:
            fd = os.open(path, os.O_PATH | flags)
            try:
                rule = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd))  # landlock_path_beneath_attr, packed
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


# Syscalls that act on another process without a signal, and the argument naming it (0: the
# caller itself): Landlock does not scope them (a method lowered the harness's CPU-time limit
# to 1 s, and the kernel killed it; setpriority/sched_setaffinity change others' wall time).
OTHERS = {"prlimit64": 0, "setpriority": 1, "sched_setaffinity": 0, "sched_setscheduler": 0, "sched_setparam": 0,
          "sched_setattr": 0, "ioprio_set": 1}
ALLOW, ERRNO_EPERM, CMP_NE = 0x7FFF0000, 0x00050000 | 1, 1  # SCMP_ACT_ALLOW, SCMP_ACT_ERRNO(EPERM), SCMP_CMP_NE


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]  # struct scmp_arg_cmp


def deny_acting_on_others() -> bool:
    """With libseccomp (a seccomp filter, no privileges needed once no_new_privs is set): the
    calls in `OTHERS` fail with EPERM unless they name the caller itself (0). Returns False,
    restricting nothing, where libseccomp is missing."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return False
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    context = lib.seccomp_init(ALLOW)
    if not context:
        return False
    try:
        for name, arg in OTHERS.items():
            number = lib.seccomp_syscall_resolve_name(name.encode())
            rule = _ArgCmp(arg, CMP_NE, 0, 0)
            if number < 0 or lib.seccomp_rule_add_array(context, ERRNO_EPERM, number, 1, ctypes.byref(rule)) != 0:
                return False
        return lib.seccomp_load(context) == 0
    finally:
        lib.seccomp_release(context)
