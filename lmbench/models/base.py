"""The interface every model answers, so one evaluator scores n-grams and networks alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from omegaconf import OmegaConf

from lmbench.config import TrainConfig
from lmbench.corpora import Corpus


@dataclass(frozen=True)
class FitSettings:
    """What fitting a model takes from its run, and nothing more: a count-based model reads the
    protocol (and an n-gram the run folder for its ARPA file), a trained one all of it."""

    protocol: str = "stream"  # the training text is segmented as it is scored
    run_dir: Path | None = None  # checkpoints and other files the fit writes; None: nowhere
    device: str = "cpu"  # resolved, never auto
    train: Any = field(default_factory=lambda: OmegaConf.structured(TrainConfig))  # the train config node
    resume: bool = False  # continue from the checkpoint in run_dir
    eval_batch_size: int = 64  # for the validation after each epoch
    seed: int = 0  # recorded in checkpoints, so a resume refuses another seed's

    @classmethod
    def from_config(cls, cfg, run_dir=None, device: str = "cpu", resume: bool | None = None) -> FitSettings:
        """The settings a run's config gives (``resume`` defaults to ``train.resume``)."""
        return cls(protocol=str(cfg.protocol), run_dir=None if run_dir is None else Path(run_dir),
                   device=device, train=cfg.train, resume=cfg.train.resume if resume is None else resume,
                   eval_batch_size=cfg.eval.batch_size, seed=cfg.seed)


@runtime_checkable
class LanguageModel(Protocol):
    """A language model over a corpus's vocabulary of integer ids.

    Scoring contract (the evaluation protocol): ``log_probs(tokens, starts)`` returns, for every
    position ``i``, the natural log of p(tokens[i] | tokens[s:i]) where ``s`` is the latest entry of
    ``starts`` that is <= i. ``starts`` always holds 0; at each start the model's context is empty
    (an n-gram pads with ``<s>``, a recurrent model resets its state). The stream protocol passes
    ``starts=[0]``; the sentence protocol passes the start of every line. The result must not depend
    on ``batch_size``, which only says how much work to do at once.
    """

    def fit(self, corpus: Corpus, settings: FitSettings) -> dict:
        """Estimate or train on ``corpus.train`` (``corpus.valid`` for model selection), never
        reading ``corpus.test``. Returns training statistics for the run record (may be empty)."""
        ...

    def log_probs(self, tokens: np.ndarray, starts: np.ndarray, batch_size: int) -> np.ndarray:
        """Per-token natural-log probabilities, float64, same length as ``tokens``."""
        ...

    def sample(self, length: int, prompt: np.ndarray, temperature: float, top_k: int | None,
               rng: np.random.Generator) -> np.ndarray:
        """Draw ``length`` token ids continuing ``prompt`` (possibly empty)."""
        ...

    def coverage(self, tokens: np.ndarray, starts: np.ndarray) -> dict:
        """How much of a scored split the training data covered (e.g. an n-gram's unseen n-grams per
        order), for the split's metrics in the record (may be empty)."""
        ...

    def num_parameters(self) -> int:
        """Free parameters (stored counts or probabilities for count-based models)."""
        ...

    def non_embedding_parameters(self) -> int | None:
        """Kaplan et al. (2020)'s size N, which scaling laws are fitted against: the parameters less the
        vocabulary-sized tables (token embeddings, the output layer) and positional embeddings. An
        n-gram gives its stored n-grams (its table is its size); models with no such size give None."""
        ...

    def size_bytes(self) -> int:
        """Bytes the model holds in memory for scoring."""
        ...
