"""What a job knows about other jobs: identical finished runs to skip, killed runs to resume, and
jobs running at the same time (which taint speed and memory figures)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf

from lmbench.checkpoint import CHECKPOINT
from lmbench.files import atomic_copy, atomic_write_text
from lmbench.records import RECORD_NAME, REFERENCE_DIR, record_paths

JOB_NAME = "job.json"
IGNORED_KEYS = ("results_dir", "force")  # where results go and whether to redo them: not the job
CHECKPOINT_GLOB = "checkpoint*"  # the resume checkpoint and the best weights
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


def mark_started(run_dir: Path, cfg_hash: str, fingerprint: str, command: str | None) -> None:
    atomic_write_text(Path(run_dir) / JOB_NAME, json.dumps(
        {"config_hash": cfg_hash, "fingerprint": fingerprint, "command": command}))


def same_job(run_dir: Path, cfg_hash: str, fingerprint: str) -> bool:
    try:
        job = json.loads((run_dir / JOB_NAME).read_text())
    except (OSError, ValueError):
        return False
    return job.get("config_hash") == cfg_hash and job.get("fingerprint") == fingerprint


def find_done(results_dir: Path, cfg_hash: str, fingerprint: str) -> Path | None:
    """A finished ``ok`` record of the same job below ``results_dir``, if any."""
    for record_path in record_paths(results_dir):
        if not same_job(record_path.parent, cfg_hash, fingerprint):
            continue
        try:
            if json.loads(record_path.read_text()).get("status") == "ok":
                return record_path
        except (OSError, ValueError):
            continue
    return None


def unfinished(folder: Path) -> bool:
    """No record yet (the job was killed), or a ``failed`` one (e.g. its launcher saw it cancelled)."""
    try:
        return json.loads((folder / RECORD_NAME).read_text()).get("status") == "failed"
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False


def adopt_partial(results_dir: Path, cfg_hash: str, fingerprint: str, run_dir: Path) -> Path | None:
    """Copy the checkpoint of the latest killed or failed run of the same job into ``run_dir``."""
    partial, run_dir = [], Path(run_dir).resolve()
    for job in Path(results_dir).rglob(JOB_NAME):
        folder = job.parent
        if (folder.resolve() != run_dir and job.relative_to(results_dir).parts[0] != REFERENCE_DIR
                and unfinished(folder) and (folder / CHECKPOINT).exists()
                and same_job(folder, cfg_hash, fingerprint)):
            partial.append(folder)
    if not partial:
        return None
    latest = max(partial, key=lambda d: (d / CHECKPOINT).stat().st_mtime)
    for checkpoint in latest.glob(CHECKPOINT_GLOB):
        atomic_copy(checkpoint, run_dir / checkpoint.name)
    return latest


ACTIVE_FOLDER = Path(tempfile.gettempdir()) / "lmbench-active"  # one empty file per running job


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_jobs() -> list[Path]:
    """The registry entries (``<pid>-<n>``) of the lmbench jobs running on this machine now."""
    return [m for m in ACTIVE_FOLDER.glob("*-*")
            if m.name.split("-")[0].isdigit() and _alive(int(m.name.split("-")[0]))]


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
