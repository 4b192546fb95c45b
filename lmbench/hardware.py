"""What the machine can do for training: whether it multiplies bf16 natively, so ``train.precision=auto``
picks bf16 only where it is faster."""

from __future__ import annotations

from pathlib import Path

import torch

BF16_CPU_FLAGS = {"amx_bf16", "avx512_bf16"}  # x86 features with native bf16 dot products
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matrix products run natively: AMX or AVX512-BF16 CPUs, Ampere+ GPUs."""
    if device.type == "cpu":
        return bool(BF16_CPU_FLAGS & cpu_flags())
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    return False


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto`` is bf16 where the hardware multiplies bf16 natively, fp32 elsewhere."""
    if requested == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return requested


def keep_freed_memory() -> None:
    """Make glibc keep freed memory for reuse. By default it hands each freed block of more than a few
    MB back to the OS and page-faults a fresh one in for the next allocation; a training step frees
    and reallocates the same (tokens x vocabulary) buffers every time, and those page faults cost as
    much as the arithmetic (measured: the zaremba_small LSTM trains ~1.6x faster in fp32 with this)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return
    mallopt(M_MMAP_THRESHOLD, 1 << 30)
    mallopt(M_TRIM_THRESHOLD, 1 << 30)
