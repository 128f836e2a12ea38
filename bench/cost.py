"""Measuring what a method call costs: wall-clock, GPU time, process CPU time, peak memory."""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from pathlib import Path

import torch


def _reset_peak_rss() -> bool:
    """Linux lets a process reset its peak RSS (VmHWM) by writing 5 to /proc/self/clear_refs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # lifetime peak, KiB on Linux


@contextmanager
def measure(device: torch.device):
    """Yields a dict filled on exit: wall_s, gpu_s (CUDA events; None on CPU), cpu_s, peak_mem_bytes."""
    cost: dict = {}
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    else:
        cost["peak_mem_kind"] = "rss" if _reset_peak_rss() else "rss-lifetime"
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        yield cost
    finally:
        if on_cuda:
            end.record()
            torch.cuda.synchronize(device)
            cost["gpu_s"] = start.elapsed_time(end) / 1000.0
            cost["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated(device))
            cost["peak_mem_kind"] = "cuda-allocated"
        else:
            cost["gpu_s"] = None
            cost["peak_mem_bytes"] = _peak_rss_bytes()
        cost["wall_s"] = time.perf_counter() - wall0
        cost["cpu_s"] = time.process_time() - cpu0
