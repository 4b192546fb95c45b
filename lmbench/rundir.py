"""A run folder, the only way code reads one: its record, config, corpus, label, test losses and
trained model. The report, ``sample`` and ``diagnose`` all see runs through ``RunDir``."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from lmbench import records
from lmbench.checkpoint import BEST, CHECKPOINT
from lmbench.corpora import Corpus, load_corpus
from lmbench.errors import UserError
from lmbench.files import atomic_write_text, locked

TEST_LOSSES = "test_losses.npy"
HYDRA_CONFIG = Path(".hydra") / "config.yaml"
DIAGNOSTICS = "diagnostics"


class RunDir:
    """One run folder: a finished run's ``record.json`` or, for a killed run, Hydra's saved config
    (and, for a neural model, its checkpoints)."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        self._label: str | None = None

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
            raise UserError(f"{run.path} holds no {records.RECORD_NAME}: give the folder of a finished run.")
        elif not (run.path / HYDRA_CONFIG).is_file():
            raise UserError(f"{run.path} holds no {records.RECORD_NAME} or {HYDRA_CONFIG}: not an lmbench "
                            "run folder.")
        return run

    @property
    def label(self) -> str:
        """How tables and figures name the run: set by the report (see ``report.frames.label_runs``),
        else its family and seed."""
        return self._label or f"{self.family} s{self.config.seed}"

    @label.setter
    def label(self, value: str) -> None:
        self._label = value

    @property
    def finished(self) -> bool:
        return (self.path / records.RECORD_NAME).is_file()

    @cached_property
    def record(self) -> dict:
        return records.read_record(self.path / records.RECORD_NAME)

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

        from lmbench import checkpoint, models
        from lmbench.models.base import FitSettings

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

    def test_losses(self) -> np.ndarray | None:
        """Per-token test losses, or None when the file is missing, truncated or not the record's
        test split."""
        try:
            losses = np.load(self.path / TEST_LOSSES, allow_pickle=False).astype(np.float64)
        except (OSError, ValueError, EOFError):
            return None
        tokens = ((self.record.get("metrics") or {}).get("test") or {}).get("tokens")
        return losses if losses.ndim == 1 and tokens in (None, len(losses)) else None

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
        """``details`` to ``diagnostics/<what>.json``; ``summary`` to ``record["diagnostics"][what]``
        (the record is re-read under the folder's lock just before the atomic rewrite, so nothing
        written meanwhile is lost)."""
        atomic_write_text(self.diagnostics_folder() / f"{what}.json", json.dumps(details, indent=1) + "\n")
        with locked(self.path):
            record = records.read_record(self.path / records.RECORD_NAME)
            record.setdefault("diagnostics", {})[what] = summary
            records.write_record(record, self.path)
        self.__dict__.pop("record", None)


def find_runs(root: Path) -> tuple[list[RunDir], list[str]]:
    """Every finished run below ``root`` (leaving out the committed references in ``root/reference/``),
    and a note for each record skipped as unreadable: one bad record never breaks a table or report."""
    runs, skipped = [], []
    for path in records.record_paths(root):
        run = RunDir(path.parent)
        try:
            run.record  # noqa: B018
        except UserError as exc:
            skipped.append(str(exc))
            continue
        runs.append(run)
    return runs, skipped


def refresh_tables(root: Path) -> None:
    """Regenerate ``root``'s tables from every run below it, under the folder's lock so that the last
    of several jobs finishing at once sees them all."""
    with locked(root, ".table.lock"):
        records.write_tables(root, [run.record for run in find_runs(root)[0]])
