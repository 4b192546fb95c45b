"""``model=ngram``: a smoothed backoff n-gram: modified Kneser-Ney (as KenLM's lmplz), Katz, add-k.

Training follows the run's protocol. Under ``sentence`` every training line is a segment that
starts from ``<s>`` and ends with its ``<eos>`` playing ``</s>`` (KenLM's convention); under
``stream`` the whole split is one segment, so contexts cross line boundaries exactly as they do at
scoring time. Counting, smoothing and scoring are vectorised over packed n-gram keys
(``lmbench/ngram``); ``fit`` reports per order the n-grams stored and their bytes, and ``coverage``
the fraction of a scored split's n-grams never seen in training, so storage growth and sparsity can
be plotted against order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from lmbench.config import ADD_K, Choice, ModelConfig, Rule, option, size
from lmbench.corpora import Corpus
from lmbench.errors import UserError
from lmbench.evaluate import line_end
from lmbench.hardware import freed_memory
from lmbench.models.base import FitSettings
from lmbench.ngram.arpa import write_arpa
from lmbench.ngram.smoothing import add_k, katz, kneser_ney
from lmbench.ngram.tables import CHUNK, count, pad, pieces
from lmbench.sampling import draw

log = logging.getLogger(__name__)


class Smoothing(Choice):
    kn = "kn"  # interpolated modified Kneser-Ney
    kn_backoff = "kn_backoff"  # back-off modified Kneser-Ney (no interpolation with lower orders)
    katz = "katz"  # Katz backoff with Good-Turing discounts
    add_k = "add_k"  # additive smoothing of the top order


# model.smoothing -> the estimator that turns count tables into a backoff model (and its report)
ESTIMATORS = {
    "kn": lambda tables, cfg: kneser_ney(tables, list(cfg.discount_fallback)),
    "kn_backoff": lambda tables, cfg: kneser_ney(tables, list(cfg.discount_fallback), interpolate=False),
    "katz": lambda tables, cfg: katz(tables, cfg.katz_threshold),
    "add_k": lambda tables, cfg: add_k(tables, float(cfg.add_k)),
}


@dataclass
class NgramConfig(ModelConfig):
    name: str = "ngram"
    order: int = option(5, size(1, 1000))
    smoothing: Smoothing = Smoothing.kn
    # kn: D1, D2, D3+ for an order whose counts-of-counts give invalid discounts (KenLM's defaults)
    discount_fallback: list[float] = option(
        rule=Rule(lambda v: len(v) == 3 and all(0 < d <= k for k, d in enumerate(v, start=1)),
                  "three discounts D1, D2, D3+ with 0 < Dk <= k (KenLM's default is [0.5, 1.0, 1.5])",
                  ([0.5, 2.5, 1.5], [0.5, 1.0], [0.0, 1.0, 1.5])),
        factory=lambda: [0.5, 1.0, 1.5])
    # katz: counts up to this are Good-Turing discounted (Katz's k = 5)
    katz_threshold: int = option(5, size())
    add_k: float = option(1.0, ADD_K)  # add_k: pseudo-count per n-gram; 0 is maximum likelihood
    arpa: bool = False  # also write the model to <run dir>/model.arpa


class Ngram:
    def __init__(self, cfg, corpus: Corpus):
        self.cfg = cfg
        self.smoothing = cfg.smoothing
        self.vocab_size = len(corpus.vocab)
        self.line_end = corpus.line_end
        self.sentence = False  # trained under the sentence protocol (sampling restarts lines)
        self.lm = None
        self.train_counts = None  # of every type, unseen ones included (the unigram table holds them all)

    def fit(self, corpus: Corpus, settings: FitSettings) -> dict:
        """Count and smooth ``corpus.train`` under ``settings.protocol``."""
        protocol = settings.protocol
        self.sentence = protocol == "sentence"
        chunks = pieces(corpus.chunks("train", CHUNK), line_end(corpus, protocol), self.vocab_size)
        with freed_memory(keep=True):  # arrays as long as an order come and go: reuse their pages
            tables = count(chunks, self.cfg.order, self.vocab_size + 1)
            if len(tables[-1].keys) == 0:
                raise UserError(
                    f"model.order={self.cfg.order} is more than the training data supports: no "
                    f"{protocol}-protocol segment of corpus {corpus.name} has {self.cfg.order - 1} "
                    "tokens, so no n-gram of that order exists. Lower model.order.")
            self.lm, report = ESTIMATORS[self.smoothing](tables, self.cfg)
            self.lm.prepare()
        self.train_counts = tables[0].counts
        orders = [{"order": n, "ngrams": size, "bytes": nbytes}
                  for n, (size, nbytes) in enumerate(zip(self.lm.entries(), self.lm.nbytes()), 1)]
        if self.cfg.arpa and settings.run_dir is not None:
            path = write_arpa(self.lm, corpus.vocab.itos, self.line_end, settings.run_dir / "model.arpa")
            log.info("wrote %s", path)
        return {"ngram": {"smoothing": self.smoothing, "protocol": protocol, "orders": orders,
                          "estimates": report}}

    def log_probs(self, tokens: np.ndarray, starts: np.ndarray, batch_size: int) -> np.ndarray:
        """All tokens at once (vectorised lookups), so ``batch_size`` plays no part."""
        log_p = self.lm.log_probs(tokens, starts)
        zero = np.isneginf(log_p)
        if zero.any():
            raise UserError(
                f"add_k with model.add_k=0 (maximum likelihood) gives probability 0 to {zero.sum()} "
                "of the scored tokens, whose n-grams never occurred in training; use "
                "model.add_k > 0 or model.smoothing=kn.")
        return log_p

    def coverage(self, tokens: np.ndarray, starts: np.ndarray) -> dict:
        """Per order n, the fraction of the scored tokens whose n-gram never occurred in training."""
        stream, positions = pad(tokens, starts, self.vocab_size)
        seen = self.lm.seen_fractions(stream, positions, self.train_counts)
        return {"unseen_fraction_by_order": [1 - s for s in seen]}

    def sample(self, length: int, prompt: np.ndarray, temperature: float, top_k: int | None,
               rng: np.random.Generator) -> np.ndarray:
        """Continue ``prompt``; under the sentence protocol a line end restarts from ``<s>``."""
        history = [self.vocab_size]
        for token in prompt:
            history = self._extend(history, int(token))
        out = []
        for _ in range(length):
            out.append(draw(self.lm.distribution(history), temperature, top_k, rng))
            history = self._extend(history, out[-1])
        return np.array(out, dtype=np.int64)

    def _extend(self, history: list[int], token: int) -> list[int]:
        if self.sentence and token == self.line_end:
            return [self.vocab_size]
        return (history + [token])[-max(self.cfg.order - 1, 1):]

    def num_parameters(self) -> int:
        """Stored probabilities and backoff weights."""
        return sum(self.lm.entries()) + sum(len(b) for b in self.lm.log_bo) if self.lm else 0

    def non_embedding_parameters(self) -> int:
        """Stored n-grams of every order: the table is the model, so a scaling plot places each order
        by it (its unigrams, though vocabulary-sized, are counted: order 1 would otherwise be 0)."""
        return sum(self.lm.entries()) if self.lm else 0

    def size_bytes(self) -> int:
        return sum(self.lm.nbytes()) if self.lm else 0
