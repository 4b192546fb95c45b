"""A run folder, the one owner of its files: its record (written and read, old layouts migrated),
job marker, claim, checkpoints, config, corpus, label, per-split losses, skipped-job pointer and
trained model. The run, launchers, the report, ``sample``, ``diagnose`` and ``combine`` all see runs
through ``RunDir``."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from lmbench.corpora import Corpus, load_corpus
from lmbench.errors import UserError
from lmbench.files import atomic_write_text, locked
from lmbench.runs import records
from lmbench.runs.checkpoint import BEST, CHECKPOINT

RECORD = "record.json"
JOB = "job.json"  # the job marker: config hash, corpus fingerprint and command, written as the job starts
SKIPPED = "skipped.json"  # a sweep job skipped as done: the folder of the finished run it repeats
CHECKPOINTS = "checkpoint*"  # the resume checkpoint and the best weights
LOSSES = "{split}_losses.npy"  # per-token losses in nats, float32 (older runs: test only, float16)
HYDRA_CONFIG = Path(".hydra") / "config.yaml"
DIAGNOSTICS = "diagnostics"
REFERENCE_DIR = "reference"  # committed reference runs inside a results folder: not the user's runs


class FolderBusyError(UserError):
    """Another process is running a job in this folder: nothing may be written or removed there."""


class RunDir:
    """One run folder: a finished run's record or, for a killed run, Hydra's saved config (and, for a
    neural model, its checkpoints)."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.record_path = self.path / RECORD

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @classmethod
    def open(cls, path, finished_only: bool = False) -> RunDir:
        """The run in ``path``; a folder without a readable record (or, unless ``finished_only``, a
        saved config) is a ``UserError``."""
        run = cls(path)
        if run.finished:
            run.record  # noqa: B018  (an unreadable record is refused here, before any work)
        elif finished_only:
            raise UserError(f"{run.path} holds no {RECORD}: give the folder of a finished run.")
        elif not (run.path / HYDRA_CONFIG).is_file():
            raise UserError(f"{run.path} holds no {RECORD} or {HYDRA_CONFIG}: not an lmbench "
                            "run folder.")
        return run

    @property
    def label(self) -> str:
        """The run's own name, its family and seed (the report names runs in its own column)."""
        return f"{self.family} s{self.config.seed}"

    @property
    def finished(self) -> bool:
        return self.record_path.is_file()

    @cached_property
    def record(self) -> records.Record:
        return self._read_record()

    def _read_record(self) -> records.Record:
        """The record, migrated to the current version; a missing, unparsable or incomplete one is a
        ``UserError`` naming the file and what is wrong with it."""
        try:
            record = json.loads(self.record_path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UserError(f"{self.record_path} is not a readable lmbench record ({type(exc).__name__}: "
                            f"{exc}).") from None
        if not isinstance(record, dict):
            raise UserError(f"{self.record_path} is not an lmbench record (it holds a JSON "
                            f"{type(record).__name__}).")
        wrong = [k for k, kind in records.REQUIRED.items() if not isinstance(record.get(k), kind)]
        if wrong or "name" not in record["corpus"]:
            raise UserError(f"{self.record_path} is an incomplete lmbench record (missing or malformed: "
                            f"{', '.join(wrong) or 'corpus.name'}).")
        return records.migrate(record)

    def write_record(self, record: dict) -> None:
        """Write ``record`` atomically: readers see the old record or the new one, never a partial one."""
        atomic_write_text(self.record_path, json.dumps(record, indent=2, sort_keys=True, default=str))
        self.__dict__.pop("record", None)

    def update_record(self, **sections) -> None:
        """Merge ``sections`` into the record (a dict into the section of its name, one level deep),
        re-read under the folder's lock just before the rewrite, so nothing written meanwhile is lost."""
        with locked(self.path):
            record = self._read_record()
            for key, value in sections.items():
                record[key] = {**(record.get(key) or {}), **value} if isinstance(value, dict) else value
            self.write_record(record)

    @property
    def unfinished(self) -> bool:
        """No record yet (the job was killed), or a ``failed`` one (e.g. its launcher saw it cancelled)."""
        try:
            return not self.finished or self._read_record()["status"] == "failed"
        except UserError:
            return False

    def checkpoints(self) -> list[Path]:
        """The resume checkpoint and the best weights, those the folder holds."""
        return sorted(self.path.glob(CHECKPOINTS))

    @property
    def resumable(self) -> bool:
        """Holds the latest epoch's checkpoint, which a resume starts from."""
        return (self.path / CHECKPOINT).is_file()

    @contextmanager
    def claim(self, wait: bool) -> Iterator[None]:
        """Hold the folder for this process's job (a lock on the folder itself: no file is added).
        Another process given the same folder waits for it (``wait``: a sweep's duplicate of a running
        job, which then finds it finished or resumable) or is refused: two jobs never write one folder,
        and one record never replaces another. A folder made here and left empty is removed."""
        made = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        folder = os.open(self.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(folder, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                command = self.marker.get("command")
                raise FolderBusyError(f"{self.path} is in use by another lmbench process"
                                      f"{f' ({command})' if command else ''}: wait for it to finish, "
                                      "or run without hydra.run.dir (every run then gets a folder of its "
                                      "own).") from None
            yield
        finally:
            os.close(folder)  # releases the lock
            if made and self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()

    def mark_started(self, cfg_hash: str, fingerprint: str, command: str | None) -> None:
        """Write the job marker, which says whose run this folder holds."""
        atomic_write_text(self.path / JOB, json.dumps(
            {"config_hash": cfg_hash, "fingerprint": fingerprint, "command": command}))

    def mark_skipped(self, finished: str) -> None:
        """Leave only a pointer to the finished run this sweep job repeats, so its sweep reports it."""
        atomic_write_text(self.path / SKIPPED, json.dumps({"run_dir": finished}))

    @property
    def marker(self) -> dict:
        """The job marker (config hash, corpus fingerprint, command); empty when missing or unreadable."""
        try:
            return json.loads((self.path / JOB).read_text())
        except (OSError, ValueError):
            return {}

    def is_job(self, cfg_hash: str, fingerprint: str) -> bool:
        """The folder's job marker names this job: its config hash and corpus fingerprint (a finished
        run's as its record, migrated, has them)."""
        marker = self.marker
        if self.finished and self.record.get("config_hash"):
            marker = {**marker, "config_hash": self.record["config_hash"]}
        return marker.get("config_hash") == cfg_hash and marker.get("fingerprint") == fingerprint

    @cached_property
    def config(self):
        if self.finished:
            return OmegaConf.create(self.record["config"])
        try:
            return OmegaConf.load(self.path / HYDRA_CONFIG)
        except Exception as exc:  # yaml and OmegaConf errors alike
            raise UserError(f"{self.path / HYDRA_CONFIG} is not a readable config "
                            f"({type(exc).__name__}).") from None

    @property
    def family(self) -> str:
        return self.config.model.name

    @cached_property
    def corpus(self) -> Corpus:
        """The run's corpus, refused when it changed since the run (another fingerprint)."""
        corpus = load_corpus(self.config.corpus)
        if self.finished and corpus.fingerprint != self.record["corpus"].get("fingerprint"):
            raise UserError(f"The corpus of the run in {self.path} has changed since it ran (another "
                            "fingerprint: edited files?); restore the corpus files the run used.")
        return corpus

    def model(self, trained: bool = True):
        """The run's model on CPU: its best checkpoint (a killed run's latest), or (``trained=False``)
        the weights it started training from (the run seeds torch before building the model).
        Count-based models have no checkpoint and are refitted, which is deterministic."""
        import torch

        from lmbench import models
        from lmbench.models.base import FitSettings
        from lmbench.runs import checkpoint

        torch.manual_seed(self.config.seed)
        model = models.build(self.family, self.config.model, self.corpus)
        if not models.uses_torch(self.family):
            if trained:
                model.fit(self.corpus, FitSettings.from_config(self.config))
            return model
        if trained:
            best = self.path / BEST
            checkpoint.load_weights(model.net, best if best.is_file() else self.path / CHECKPOINT,
                                    self.corpus)
        return model.to("cpu")

    def losses(self, split: str = "test") -> np.ndarray | None:
        """Per-token losses of ``split``, or None when the file is missing, truncated or not the
        record's split."""
        try:
            losses = np.load(self.path / LOSSES.format(split=split), allow_pickle=False).astype(np.float64)
        except (OSError, ValueError, EOFError):
            return None
        tokens = ((self.record.get("metrics") or {}).get(split) or {}).get("tokens")
        return losses if losses.ndim == 1 and tokens in (None, len(losses)) else None

    def save_losses(self, split: str, losses: np.ndarray) -> None:
        """float32: 1e-6 relative at 8 nats, so a mixture of runs is not biased by their rounding."""
        with open(self.path / LOSSES.format(split=split), "wb") as f:
            np.save(f, losses.astype(np.float32))

    def log_path(self) -> Path | None:
        """The job's log: the record's ``job.log`` (relative to the sweep folder, or absolute), else
        the Hydra log in the folder."""
        named = (self.record.get("job") or {}).get("log")
        if named:
            return Path(named) if Path(named).is_absolute() else self.path.parent / named
        return next(iter(sorted(self.path.glob("*.log"))), None)

    def diagnostics_folder(self) -> Path:
        """Where ``python -m lmbench.diagnose`` writes this run's files."""
        out = self.path / DIAGNOSTICS
        out.mkdir(exist_ok=True)
        return out

    def save_diagnostic(self, what: str, details: dict, summary: dict) -> None:
        """``details`` to ``diagnostics/<what>.json``; ``summary`` to ``record["diagnostics"][what]``."""
        atomic_write_text(self.diagnostics_folder() / f"{what}.json", json.dumps(details, indent=1) + "\n")
        self.update_record(diagnostics={what: summary})


def run_dirs(root: Path, marked: bool = False) -> list[RunDir]:
    """Every folder below ``root`` holding a record (``marked``: a job marker, as a killed run does),
    leaving out the committed references in ``root/reference/`` (report those with
    ``python -m lmbench.report results/reference/<name>``)."""
    return [RunDir(p.parent) for p in sorted(Path(root).rglob(JOB if marked else RECORD))
            if p.relative_to(root).parts[0] != REFERENCE_DIR]


def find_runs(root: Path) -> tuple[list[RunDir], list[str]]:
    """Every finished run below ``root`` and every one its skipped sweep jobs point to (leaving out the
    committed references in ``root/reference/``), and a note for each record skipped as unreadable:
    one bad record never breaks a table or report."""
    runs, skipped, seen = [], [], set()
    for run in [*run_dirs(root), *map(_pointed_to, sorted(Path(root).rglob(SKIPPED)))]:
        if run.path.resolve() in seen:
            continue
        seen.add(run.path.resolve())
        try:
            run.record  # noqa: B018
        except UserError as exc:
            skipped.append(str(exc))
            continue
        runs.append(run)
    return runs, skipped


def _pointed_to(pointer: Path) -> RunDir:
    """The run a skipped job's pointer names (an unreadable pointer: its own folder, which has no record)."""
    try:
        return RunDir(json.loads(pointer.read_text())["run_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return RunDir(pointer.parent)


def refresh_tables(root: Path) -> None:
    """Regenerate ``root``'s tables from every run below it, under the folder's lock so that the last
    of several jobs finishing at once sees them all."""
    with locked(root, ".table.lock"):
        records.write_tables(root, [run.record for run in find_runs(root)[0]])
