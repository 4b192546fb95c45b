"""What a job knows about other jobs: identical finished runs to skip, killed runs to resume, and
jobs running at the same time (which taint speed and memory figures)."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import psutil
from omegaconf import OmegaConf

from lmbench.errors import UserError
from lmbench.files import atomic_copy
from lmbench.runs.checkpoint import CHECKPOINT, load
from lmbench.runs.records import settings_hash
from lmbench.runs.rundir import RunDir, run_dirs

_jobs_in_this_process = 0


def config_hash(cfg) -> str:
    return settings_hash(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def find_done(results_dir: Path, cfg_hash: str, fingerprint: str) -> RunDir | None:
    """A finished ``ok`` run of the same job below ``results_dir``, if any."""
    for run in run_dirs(results_dir):
        try:
            if run.is_job(cfg_hash, fingerprint) and run.record["status"] == "ok":
                return run
        except UserError:
            continue
    return None


def adopt_partial(results_dir: Path, cfg_hash: str, fingerprint: str, run_dir: Path) -> Path | None:
    """Copy the checkpoint of the latest killed or failed run of the same job into ``run_dir``."""
    run_dir = Path(run_dir).resolve()
    partial = [run for run in run_dirs(results_dir, marked=True) if run.path.resolve() != run_dir
               and run.unfinished and run.resumable and run.is_job(cfg_hash, fingerprint)]
    if not partial:
        return None
    latest = max(partial, key=lambda run: (run.path / CHECKPOINT).stat().st_mtime)
    load(latest.path / CHECKPOINT)  # a damaged one is refused where it lies, not copied on
    for checkpoint in latest.checkpoints():
        atomic_copy(checkpoint, run_dir / checkpoint.name)
    return latest.path


ACTIVE_FOLDER = Path(tempfile.gettempdir()) / "lmbench-active"  # one empty file per running job


def live_jobs() -> list[Path]:
    """The registry entries (``<pid>-<n>``) of the lmbench jobs running on this machine now."""
    return [m for m in ACTIVE_FOLDER.glob("*-*")
            if (pid := m.name.split("-")[0]).isdigit() and psutil.pid_exists(int(pid))]


@contextmanager
def active():
    """Register this job as running on this machine; yields a function counting the other live
    lmbench jobs (whatever their results folder) and the number of jobs this process ran before."""
    global _jobs_in_this_process
    ACTIVE_FOLDER.mkdir(parents=True, exist_ok=True)
    marker = ACTIVE_FOLDER / f"{os.getpid()}-{_jobs_in_this_process}"
    marker.write_text("")
    earlier_jobs, _jobs_in_this_process = _jobs_in_this_process, _jobs_in_this_process + 1
    try:
        yield (lambda: sum(m != marker for m in live_jobs())), earlier_jobs
    finally:
        marker.unlink(missing_ok=True)
