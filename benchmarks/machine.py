"""What a benchmark ran on: training figures differ in the last digits between CPUs (their
kernels round differently), so every result records the machine beside its command."""

import os
import platform

import torch


def machine() -> dict:
    """{"cpu", "cores", "torch", "python", "torch_threads"} of this machine and process."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "torch_threads": torch.get_num_threads()}
