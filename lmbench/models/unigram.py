"""Add-k unigram: p(w) = (count(w) + k) / (N + k|V|), the same for every context."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmbench.config import ADD_K, ModelConfig, option
from lmbench.corpora import Corpus
from lmbench.errors import UserError
from lmbench.models.base import FitSettings


@dataclass
class UnigramConfig(ModelConfig):
    name: str = "unigram"
    add_k: float = option(1.0, ADD_K)


class Unigram:
    def __init__(self, cfg, corpus: Corpus):
        self.add_k = float(cfg.add_k)
        self.vocab_size = len(corpus.vocab)
        self.log_p = np.full(self.vocab_size, -np.log(self.vocab_size))

    def fit(self, corpus: Corpus, settings: FitSettings) -> dict:
        counts = np.bincount(corpus.train, minlength=self.vocab_size).astype(np.float64) + self.add_k
        if np.any(counts == 0):
            raise UserError("model.add_k=0 leaves vocabulary types with probability 0 "
                            "(e.g. <unk>); use add_k > 0.")
        self.log_p = np.log(counts / counts.sum())
        return {}

    def log_probs(self, tokens: np.ndarray, starts: np.ndarray, batch_size: int) -> np.ndarray:
        return self.log_p[tokens]

    def coverage(self, tokens: np.ndarray, starts: np.ndarray) -> dict:
        return {}

    def sample(self, length, prompt, temperature, top_k, rng) -> np.ndarray:
        from lmbench.sampling import draw

        return np.array([draw(self.log_p, temperature, top_k, rng) for _ in range(length)])

    def num_parameters(self) -> int:
        return self.vocab_size - 1

    def non_embedding_parameters(self) -> None:
        """None: its one table is vocabulary-sized, all of it what Kaplan et al.'s N leaves out."""
        return None

    def size_bytes(self) -> int:
        return self.log_p.nbytes
