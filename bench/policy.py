"""The one device policy: every decision the device implies for how models compute.

Precision and memory format are chosen per device and model by measurement (docs/speed.md, the
`speed` benchmark): on CUDA, training runs under bf16 autocast and batches and conv weights use
the channels_last memory format for every model; on CPU the convolutional nets do the same
(cnn-small, the cifar10-cpu net: 4.76x the kit-style loop with both, 1.97x in fp32 with the plain
layout, median of 3 on a 2-core AVX-512 CPU), while the MLP stays fp32 (bf16 autocast made the
digits MLP 0.73x as fast: its matrices are too small to gain). The choice depends on the model
and the kind of device, never on the particular processor, so a record's key names the same
computation on every machine (a CPU without bf16 instructions emulates it, slower). The thread
count is fixed for torch and numpy's BLAS alike (CPU kernels split their sums by thread, so it
changes the last bits of results), and `compile` (the recipe's opt-in) routes training forward
passes through torch.compile. These choices change results, so `DevicePolicy.key()` is part of
every cache key (original models, reference models) and of every record key; nothing else in
the harness looks at the device type to decide how to compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


# Models trained under bf16 autocast with channels_last batches on CPU too: the convolutional nets.
CPU_MIXED = frozenset({"cnn", "cnn-small", "resnet18", "resnet18-tv"})


@dataclass(frozen=True)
class DevicePolicy:
    device: str  # torch device string: "cpu", "cuda", "cuda:1"
    threads: int  # CPU threads for torch and BLAS (>= 1)
    bf16: bool  # bf16 autocast in training loops
    channels_last: bool  # batches and conv weights in channels_last memory format
    compile: bool  # training forward passes through torch.compile

    @staticmethod
    def decide(device: str | torch.device, threads: int = 1, compile: bool = False,
               model: str | None = None) -> "DevicePolicy":
        """The policy for `model` (a registered model name; None: a plain fp32 one) on `device`:
        bf16 autocast and channels_last on CUDA, and on CPU for the convolutional nets
        (`CPU_MIXED`); fp32 with the plain layout otherwise."""
        fast = torch.device(device).type == "cuda" or model in CPU_MIXED
        return DevicePolicy(str(device), max(1, int(threads)), bf16=fast, channels_last=fast, compile=compile)

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
