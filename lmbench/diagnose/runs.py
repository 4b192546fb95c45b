"""A finished run as the diagnostics see it: its record, its corpus and its model, rebuilt from the
record's resolved config, and the place its diagnostic files and record summaries go."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from omegaconf import OmegaConf

from lmbench import checkpoint, models
from lmbench.corpora import Corpus, load_corpus
from lmbench.errors import UserError
from lmbench.models.base import FitSettings
from lmbench.records import RECORD_NAME, atomic_write_text, read_record, write_record

FOLDER = "diagnostics"


@dataclass
class Run:
    """One run folder holding a ``record.json`` (and, for a neural model, its checkpoint)."""

    path: Path

    @classmethod
    def open(cls, path) -> Run:
        run = cls(Path(path))
        if not (run.path / RECORD_NAME).is_file():
            raise UserError(f"{run.path} holds no {RECORD_NAME}: give the folder of a finished run.")
        run.record  # noqa: B018  (an unreadable record is refused here, before any work)
        return run

    @property
    def record(self) -> dict:
        return read_record(self.path / RECORD_NAME)

    @cached_property
    def config(self):
        return OmegaConf.create(self.record["config"])

    @property
    def family(self) -> str:
        return self.config.model.name

    @property
    def label(self) -> str:
        return f"{self.family} s{self.config.seed}"

    @cached_property
    def corpus(self) -> Corpus:
        corpus = load_corpus(self.config.corpus)
        if corpus.fingerprint != self.record["corpus"].get("fingerprint"):
            raise UserError(f"The corpus of the run in {self.path} has changed since it ran (another "
                            "fingerprint: edited files?); restore the corpus files the run used.")
        return corpus

    def model(self, trained: bool = True):
        """The run's model on CPU: its best checkpoint, or (``trained=False``) the weights it started
        training from (the run seeds torch with its seed before building the model). Count-based
        models have no checkpoint and are refitted, which is deterministic."""
        torch.manual_seed(self.config.seed)
        model = models.build(self.family, self.config.model, self.corpus)
        if not hasattr(model, "net"):
            if trained:
                model.fit(self.corpus, FitSettings.from_config(self.config))
            return model
        if trained:
            checkpoint.load_weights(model.net, self.path / checkpoint.BEST, self.corpus)
        return model.to("cpu")

    def folder(self) -> Path:
        out = self.path / FOLDER
        out.mkdir(exist_ok=True)
        return out

    def save(self, what: str, details: dict, summary: dict) -> None:
        """``details`` to ``diagnostics/<what>.json``; ``summary`` to ``record["diagnostics"][what]``
        (the record is re-read just before the atomic rewrite, so nothing written meanwhile is lost)."""
        atomic_write_text(self.folder() / f"{what}.json", json.dumps(details, indent=1) + "\n")
        record = self.record
        record.setdefault("diagnostics", {})[what] = summary
        write_record(record, self.path)


def common_folder(runs: list[Run]) -> Path:
    """Where figures comparing several runs go: ``diagnostics/`` in the runs' common parent folder."""
    out = Path(os.path.commonpath([r.path.resolve().parent for r in runs])) / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    return out
