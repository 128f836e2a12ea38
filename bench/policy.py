"""The one device policy: every decision the device implies for how models compute.

On CUDA, training runs under bf16 autocast and batches and conv weights use the channels_last
memory format (faster kernels); on CPU neither. The thread count is fixed for torch and numpy's
BLAS alike (CPU kernels split their sums by thread, so it changes the last bits of results), and
`compile` (the recipe's opt-in) routes training forward passes through torch.compile.
These choices change results, so `DevicePolicy.key()` is part of every cache key (original
models, reference models) and of every record key; nothing else in the harness looks at the
device type to decide how to compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DevicePolicy:
    device: str  # torch device string: "cpu", "cuda", "cuda:1"
    threads: int  # CPU threads for torch and BLAS (>= 1)
    bf16: bool  # bf16 autocast in training loops
    channels_last: bool  # batches and conv weights in channels_last memory format
    compile: bool  # training forward passes through torch.compile

    @staticmethod
    def decide(device: str | torch.device, threads: int = 1, compile: bool = False) -> "DevicePolicy":
        """The policy for `device`: bf16 and channels_last on CUDA, neither on CPU."""
        cuda = torch.device(device).type == "cuda"
        return DevicePolicy(str(device), max(1, int(threads)), bf16=cuda, channels_last=cuda, compile=compile)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def key(self) -> dict:
        """What of the policy shapes results: the kind of device (not its index) and every choice."""
        return {"device": self.torch_device.type, "threads": self.threads, "bf16": self.bf16,
                "channels_last": self.channels_last, "compile": self.compile}

    def apply(self, pools=None) -> None:
        """Fix the thread count for torch and the BLAS and OpenMP pools of this process. `pools`:
        a `threadpools()` controller found earlier (finding them takes ~10 ms); default: now."""
        torch.set_num_threads(self.threads)
        (pools or threadpools()).limit(limits=self.threads)

    def autocast(self):
        """The training loops' autocast context: bf16 where the policy says, else a no-op."""
        return torch.autocast(self.torch_device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def batch_format(self, x: torch.Tensor) -> torch.Tensor:
        """A float batch (N, C, H, W) in the policy's memory format."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def module_format(self, model: torch.nn.Module) -> torch.nn.Module:
        """A model's conv weights in the batches' memory format (faster kernels)."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


CPU = DevicePolicy.decide("cpu")  # the policy of CPU-only helpers and tests: one thread, fp32, plain layout


def threadpools():
    """threadpoolctl's controller of the BLAS and OpenMP pools loaded in this process now."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()
