"""Where a result came from: package versions, the code's git commit, the hardware, peak memory."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from lmbench.paths import checkout_root

PACKAGES = ("lmbench", "torch", "numpy", "pandas", "nltk", "hydra-core", "omegaconf")
PROJECT_ROOT = checkout_root()


def versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = platform.python_version()
    return found


def git_commit(root: Path | None = PROJECT_ROOT) -> str | None:
    """HEAD's hash, with ``-dirty`` when tracked code differs from it (changes under ``results/``,
    such as a sweep's own tables, are output, not code, and do not count); None for an installed
    lmbench, which has no checkout (even inside someone else's repository)."""
    if root is None:
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results"], cwd=root, capture_output=True, text=True,
                               timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("-dirty" if dirty else "")) or None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: str) -> dict:
    import psutil

    torch = sys.modules.get("torch")  # None for a count-based run, which never imports it
    return {"cpu": cpu_name(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads() if torch else None,
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(), "device": device,
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    try:
        import resource
    except ImportError:  # Windows: psutil reads the peak working set
        import psutil

        return psutil.Process().memory_info().peak_wset / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
