"""Where a run happens: the device, the seeds of the global RNGs, and what a record says about
the environment (python, torch, device, threads, data source, git commit and dirtiness, and the
hardware fingerprint: what decides which kernels ran)."""

from __future__ import annotations

import os
import platform
import re
from datetime import datetime, timezone

import numpy as np
import torch

from bench.checkout import code_is_dirty, git
from bench.errors import UserError


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu.")
    return device


# Variables that make torch, oneDNN, MKL or OpenBLAS pick other kernels than the CPU would.
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR",
                    "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_ISA_FLAG = re.compile(r"^(sse4.*|avx.*|amx.*|fma.*|f16c|.*vnni.*|.*bf16.*|asimd.*|sve.*|neon)$")


def _cpu_info() -> tuple[str, list[str]]:
    """(CPU model name, its instruction-set flags that kernels dispatch on) from /proc/cpuinfo."""
    name, flags = platform.processor() or platform.machine(), []
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return name, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and name in (platform.processor(), platform.machine()):
            name = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = sorted(f for f in value.split() if _ISA_FLAG.match(f))
    return name, flags


def _torch_build() -> dict:
    """torch's version, commit, and the MKL and oneDNN versions it was built with."""
    show = torch.__config__.show()
    line = lambda pattern: (m.group(1).strip() if (m := re.search(pattern, show)) else None)  # noqa: E731
    return {"version": torch.__version__, "git": torch.version.git_version, "cuda": torch.version.cuda,
            "mkl": line(r"Math Kernel Library Version (\S+?)-Product"), "onednn": line(r"MKL-DNN (v[\d.]+)")}


def hardware(device: torch.device) -> dict:
    """What decides which kernels compute a run's numbers: CPU model and instruction-set flags,
    torch's CPU capability (`ATEN_CPU_CAPABILITY` lowers it), torch's build, the BLAS and OpenMP
    libraries loaded (`threadpoolctl`), the kernel-choosing variables set, and on CUDA the GPU,
    its driver, the CUDA runtime and cuDNN. Two records with equal fingerprints ran the same
    kernels; `unlearn-bench reproduce` demands bit-equal numbers only then."""
    import scipy.linalg  # noqa: F401 - the libraries a run loads, so that every process lists the same
    import sklearn.svm  # noqa: F401
    from threadpoolctl import threadpool_info

    name, flags = _cpu_info()
    libraries = sorted({(i.get("user_api"), i.get("internal_api"), i.get("prefix"), i.get("version"),
                         i.get("architecture")) for i in threadpool_info()}, key=str)
    out = {"cpu": name, "cpu_flags": flags, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "torch_build": _torch_build(),
           "libraries": [dict(zip(("api", "library", "prefix", "version", "architecture"), lib)) for lib in libraries],
           "kernel_variables": {k: os.environ[k] for k in KERNEL_VARIABLES if k in os.environ}}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        driver = getattr(torch._C, "_cuda_getDriverVersion", lambda: None)()
        out["cuda"] = {"device": props.name, "capability": f"{props.major}.{props.minor}", "driver": driver,
                       "runtime": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    return out


def slow_bf16(policy) -> str | None:
    """One line when `policy` (a `bench.policy.DevicePolicy`) trains under bf16 autocast on a CPU
    whose oneDNN has no bf16 kernels (`torch.ops.mkldnn._is_mkldnn_bf16_supported()` is False, as on
    an x86 CPU without AVX-512), where torch falls back to slow kernels: docs/speed.md measured
    cnn-small at 291 images/s under the policy against 2,939 in fp32 on an AVX2-only CPU. None
    otherwise, and on CUDA. The policy is part of every record's identity, so the line names the
    cost rather than offering to change it."""
    if not policy.bf16 or policy.torch_device.type != "cpu":
        return None
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    if supported():
        return None
    return (f"this CPU (torch CPU capability {torch.backends.cpu.get_cpu_capability()}) has no bf16 kernels, and "
            "this suite's model trains under bf16 autocast on every CPU (its records say so): every model trained "
            "here, original, reference or by a method, trains about 10x slower than in fp32 (docs/speed.md).")


def fingerprint_differences(a: dict | None, b: dict | None) -> list[str]:
    """How two hardware fingerprints differ, one 'key: A -> B' line per differing field."""
    a, b = a or {}, b or {}
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key, "not recorded"), b.get(key, "not recorded")
        if x == y:
            continue
        if isinstance(x, list) and isinstance(y, list):  # name what came and went, not both lists
            gone, came = [i for i in x if i not in y], [i for i in y if i not in x]
            out.append(f"{key}: " + ", ".join([*(f"-{i}" for i in gone), *(f"+{i}" for i in came)]))
        else:
            out.append(f"{key}: {x} -> {y}")
    return out


def environment(device: torch.device, data_source: str) -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "hardware": hardware(device), "data_source": data_source,
            "git_sha": git("rev-parse", "HEAD") or None, "git_dirty": code_is_dirty(git("status", "--porcelain")),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def hardware_note(published: list[dict], rerun: list[dict]) -> str | None:
    """How the publisher's fingerprint differs from this machine's; None when they are the same."""
    mine = next(((r.get("env") or {}).get("hardware") for r in rerun), None)
    theirs = {str((r.get("env") or {}).get("hardware")): (r.get("env") or {}).get("hardware") for r in published}
    bare = sum(not (r.get("env") or {}).get("hardware") for r in published)
    lines = [f"{bare} of {len(published)} published records carry no hardware fingerprint (made before it was "
             "recorded, or removed), so they are judged as made elsewhere"] if bare else []
    for fp in theirs.values():
        if fp and fp != mine:
            lines.extend(fingerprint_differences(fp, mine))
    return "; ".join(dict.fromkeys(lines)) or None
