"""What the machine can do for training: whether it multiplies bf16 natively and, where it does,
whether bf16 trains the model at hand faster (``train.precision=auto``), its matmul peak (so a record
can say what fraction of the machine a run used), and how many cores a job may take. torch is imported only
by the functions that need it, so the launchers and count-based models can use the rest without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
_peaks: dict[str, dict] = {}  # this process's measurements, by key
PEAK_SIZE = 512  # square matmul of the peak benchmark: 0.27 GFLOP, milliseconds per product

BF16_CPU_FLAGS = {"amx_bf16", "avx512_bf16"}  # x86 features with native bf16 dot products
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
GLIBC_DEFAULT_THRESHOLD = 128 * 1024  # both thresholds' default (before glibc's own adjustments)
_keeping_freed_memory = False
# train.precision=auto keeps bf16 only where it is this much faster than fp32 (near parity fp32's rounding
# wins) and its mean loss over the timed steps is within this many nats of fp32's (bf16 gone wrong)
BF16_MIN_SPEEDUP, BF16_LOSS_TOLERANCE = 1.02, 0.02


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
    import torch

    if device.type == "cpu":
        return bool(BF16_CPU_FLAGS & cpu_flags())
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    return False


def resolve_precision(requested: str, device: torch.device) -> str:
    """The hardware's rule: ``auto`` is bf16 where the hardware multiplies bf16 natively (a candidate
    that ``choose_precision`` times against fp32), fp32 elsewhere. A plain string, not the config's enum,
    so a checkpoint can keep it."""
    if requested == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return str(requested)


def choose_precision(requested: str, device: torch.device, measure,
                     shape: dict | None = None) -> tuple[str, dict]:
    """The precision to train in, and why. ``auto`` where bf16 is native calls ``measure()`` ->
    {"fp32": (seconds per step, mean loss), "bf16": (...), "seconds": its cost}, timed on the model's
    own training steps, and keeps bf16 only if it is BF16_MIN_SPEEDUP faster with a loss within
    BF16_LOSS_TOLERANCE of fp32's: even with AMX, bf16 is slower for small models (the GRU, RNN and
    GPT at the default 128 units, nanoGPT's baby GPT on characters) and faster for PTB-sized ones.
    With ``shape`` (what decides the speed: model, batch, threads) the choice is measured once per
    machine and cached like the matmul peak, so every seed and rerun of a job trains alike."""
    precision = resolve_precision(requested, device)
    if requested != "auto":
        return precision, {"why": f"train.precision={requested}"}
    if precision == "fp32":
        return precision, {"why": f"no native bf16 on {device.type}"}
    path = None if shape is None else _machine_cache("precision", device, shape)
    if path is not None and path.is_file():
        try:
            saved = json.loads(path.read_text())
            return saved["precision"], {**saved["choice"], "cached": str(path)}
        except (OSError, ValueError, KeyError):
            pass
    precision, choice = _choose(measure())
    if path is not None:
        from lmbench.files import atomic_write_text

        try:
            atomic_write_text(path, json.dumps({"shape": shape, "precision": precision, "choice": choice}))
        except OSError as exc:  # an unwritable cache only costs the next run this measurement
            log.warning("could not cache the precision choice in %s: %s", path, exc)
    return precision, choice


def _choose(timed: dict) -> tuple[str, dict]:
    (fp32_s, fp32_loss), (bf16_s, bf16_loss) = timed["fp32"], timed["bf16"]
    ratio = fp32_s / bf16_s
    choice = {"fp32_s": fp32_s, "bf16_s": bf16_s, "ratio": ratio, "fp32_loss": fp32_loss,
              "bf16_loss": bf16_loss, "measure_seconds": timed["seconds"]}
    if not abs(bf16_loss - fp32_loss) <= BF16_LOSS_TOLERANCE:  # a NaN loss fails too
        return "fp32", {**choice, "why": f"bf16 loss {bf16_loss:.4f} against fp32's {fp32_loss:.4f}"}
    if ratio < BF16_MIN_SPEEDUP:
        return "fp32", {**choice, "why": f"bf16 trains at {ratio:.2f}x fp32's speed"}
    return "bf16", {**choice, "why": f"bf16 trains at {ratio:.2f}x fp32's speed"}


def _machine_cache(kind: str, device: torch.device, what: dict) -> Path:
    """The file caching a measurement of ``kind`` for ``what`` on this processor and torch version."""
    import torch

    from lmbench.corpora.fetch import cache_dir
    from lmbench.runs.provenance import cpu_name

    processor = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    key = json.dumps({"processor": processor, "device": device.type, "torch": torch.__version__, **what},
                     sort_keys=True)
    return cache_dir() / "machine" / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def keep_freed_memory(keep: bool = True) -> None:
    """Make glibc keep freed memory for reuse (``keep=False``: its defaults again). By default it
    hands each freed block of more than a few MB back to the OS and page-faults a fresh one in for
    the next allocation; a training step frees and reallocates the same (tokens x vocabulary)
    buffers every time, and faulting those pages in again cost the zaremba_small LSTM 10% of its CPU
    time in fp32, 25% in bf16 (measured)."""
    global _keeping_freed_memory
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return
    mallopt(M_MMAP_THRESHOLD, 1 << 30 if keep else GLIBC_DEFAULT_THRESHOLD)
    mallopt(M_TRIM_THRESHOLD, 1 << 30 if keep else GLIBC_DEFAULT_THRESHOLD)
    _keeping_freed_memory = keep


@contextmanager
def freed_memory(keep: bool):
    """glibc keeping freed memory (or returning it) inside the block, the setting before it after.
    An n-gram's fit keeps it: it allocates and frees arrays of every n-gram over and over. Scoring
    returns it: its (tokens x vocabulary) blocks change size from chunk to chunk, and a heap that
    keeps freed memory fragments under them (a validation pass of the PTB LSTM grew the process
    from 0.6 to 3.4 GB)."""
    before = _keeping_freed_memory
    keep_freed_memory(keep)
    try:
        yield
    finally:
        keep_freed_memory(before)


def measure_peak(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of the fastest of 8 (PEAK_SIZE x PEAK_SIZE) products, on one thread. On a CPU it is timed
    in CPU time, so other processes sharing the machine lower the figure little."""
    import torch

    threads, best = torch.get_num_threads(), math.inf
    torch.set_num_threads(1)
    try:
        a, b = (torch.randn(PEAK_SIZE, PEAK_SIZE, device=device).to(dtype) for _ in range(2))
        clock = time.process_time if device.type == "cpu" else time.perf_counter
        sync = torch.cuda.synchronize if device.type == "cuda" else lambda device: None
        for _ in range(9):  # the first one warms up
            sync(device)
            start = clock()
            a @ b
            sync(device)
            best = min(best, clock() - start)
    finally:
        torch.set_num_threads(threads)
    return 2 * PEAK_SIZE ** 3 / best


def matmul_peak(device: torch.device) -> dict:
    """{"fp32": FLOP/s, "bf16": FLOP/s}: the matmul peak a run can hope for, one core's peak times
    the run's threads on a CPU. One core's (or the GPU's) figures are measured once and cached
    beside the corpus cache under a key of the processor and the torch version."""
    import torch

    from lmbench.corpora.fetch import cache_dir
    from lmbench.files import atomic_write_text
    from lmbench.runs.provenance import cpu_name

    processor = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    key = f"{processor}|{device.type}|{torch.__version__}"
    cores = torch.get_num_threads() if device.type == "cpu" else 1
    if key not in _peaks:
        path = cache_dir() / "machine" / f"peak-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
        try:
            _peaks[key] = json.loads(path.read_text())["peak"]
        except (OSError, ValueError, KeyError):
            _peaks[key] = {"fp32": measure_peak(device, torch.float32),
                           "bf16": measure_peak(device, torch.bfloat16)}
            try:
                atomic_write_text(path, json.dumps({"key": key, "peak": _peaks[key]}, indent=2))
            except Exception as exc:  # an unwritable cache only costs the next run this measurement
                log.warning("could not cache the matmul peak in %s: %s", path, exc)
    return {dtype: flops * cores for dtype, flops in _peaks[key].items()}


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a SLURM or container limit)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def running_jobs() -> int:
    """lmbench jobs running on this machine now, this one included (see ``lmbench.runs.jobs.active``)."""
    from lmbench.runs.jobs import live_jobs

    return max(1, len(live_jobs()))


def resolve_threads(requested, parallel_jobs: int) -> int:
    """``auto``: this job's share of the cores among ``parallel_jobs`` jobs (at least 1); a number
    stays itself (0: torch's default, one thread per core)."""
    if requested == "auto":
        return max(1, available_cores() // max(1, parallel_jobs))
    return int(requested)


def cpus_to_request(threads) -> int:
    """The CPUs a scheduler (SLURM) should give a job: its ``train.threads``, or 1 where that is
    ``auto`` or 0 (the job then uses every core it is given)."""
    return int(threads) if threads != "auto" and int(threads) > 0 else 1
