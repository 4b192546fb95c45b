"""What a job knows about other jobs: identical finished runs to skip, killed runs to resume, and
jobs running at the same time (which taint speed and memory figures)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import psutil
from omegaconf import OmegaConf

from lmbench.errors import UserError
from lmbench.files import atomic_copy
from lmbench.runs.checkpoint import CHECKPOINT, load
from lmbench.runs.rundir import RunDir, run_dirs

IGNORED_KEYS = ("results_dir", "force")  # where results go and whether to redo them: not the job
_jobs_in_this_process = 0


# Options added after records were made, at the default that changes nothing: left out of the hash,
# so those records still count as the same job. (section, model name or None for any, option, default)
ADDED_LATER = [("model", "fnn", "tie_weights", False), ("published", None, "beats_rows", None),
               ("published", None, "beats_by", None)]


def settings_hash(settings: dict, *also_ignored: str) -> str:
    """Hash of a resolved config (as a plain dict) over what decides a job's result: the output
    place, ``force`` and ``train.resume`` are left out, and so are ``also_ignored`` top-level keys
    and options added later at their neutral default (``ADDED_LATER``)."""
    settings = json.loads(json.dumps(settings))
    for key in (*IGNORED_KEYS, *also_ignored):
        settings.pop(key, None)
    settings.get("train", {}).pop("resume", None)
    model = (settings.get("model") or {}).get("name")
    for section, model_name, option, neutral in ADDED_LATER:
        options = settings.get(section) or {}
        if model_name in (None, model) and options.get(option, ...) == neutral:
            del options[option]
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


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
