"""A backoff language model in ARPA form, and its vectorised queries.

Every smoothing (Kneser-Ney, Katz, add-k) is stored the same way: per order, the natural-log
probability ``log_p`` of every stored n-gram and, below the top order, the log backoff weight
``log_bo`` of every stored context (0 for one with no continuations). Then

    p(w | h) = P(h w)                  if h w is stored,
             = bo(h) * p(w | h[1:])    otherwise (bo = 1 for a context never stored),

which is exactly what an ARPA file says, so scoring, sampling and export share one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from lmbench.ngram.tables import lookup, pad


@dataclass
class BackoffLM:
    """Stored n-grams with their probabilities, and contexts with their backoff weights."""

    keys: list[np.ndarray]  # per order, sorted packed n-gram keys (see tables.py)
    log_p: list[np.ndarray]  # per order, natural-log probability of each stored n-gram
    log_bo: list[np.ndarray]  # per order below the top, natural-log backoff of each stored context

    @cached_property
    def index(self) -> list[pd.Index]:
        """Per order, the keys with a hash table over them (as KenLM's probing model): a lookup is
        one probe rather than a binary search's ~20 cache misses. Built by ``prepare``."""
        return [pd.Index(keys, copy=False) for keys in self.keys]

    def prepare(self) -> BackoffLM:
        """Build the hash tables now rather than on the first query (pandas builds them lazily)."""
        for index in self.index[1:]:
            index.get_indexer(index[:1])
        return self

    @property
    def order(self) -> int:
        return len(self.keys)

    @property
    def width(self) -> int:
        """Vocabulary size plus one: ``<s>`` has id ``width - 1``."""
        return len(self.keys[0])

    def score(self, stream: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Natural-log probability of ``stream[p]`` given the stream before it, for each ``p``: the
        ARPA rule unrolled, the probability of the longest stored n-gram ending at ``p`` plus the
        backoffs of the stored contexts ending at ``p - 1`` that are longer than its context. Only
        those are read, so each position costs one probability and a backoff per missing order."""
        ids = lookup(self.index, stream, self.width)
        here = [found[positions] for found in ids]  # per order, the n-gram ending at each position
        longest = sum(found >= 0 for found in here)  # lookup finds orders 1..longest, no gaps
        log_p = np.empty(len(positions))
        for n, found in enumerate(here):
            at = np.flatnonzero(longest == n + 1)
            log_p[at] = self.log_p[n][found[at]]
        for n in range(self.order - 1):  # the context of n + 1 tokens, backed off from where not found above
            context = ids[n][positions - 1]
            at = np.flatnonzero((longest <= n + 1) & (context >= 0))
            log_p[at] += self.log_bo[n][context[at]]
        return log_p

    def log_probs(self, tokens: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """The protocol's scores: each token given the tokens since the latest start, ``<s>``-padded."""
        stream, positions = pad(tokens, starts, self.width - 1)
        return self.score(stream, positions)

    def distribution(self, history: np.ndarray) -> np.ndarray:
        """Log-probabilities of every vocabulary id after ``history`` (ids, ``<s>`` allowed first)."""
        history = np.asarray(history, dtype=np.int64)
        history = history[max(0, len(history) - self.order + 1):]
        ids = lookup(self.index, history, self.width)
        log_p = self.log_p[0][:-1].copy()
        for n in range(1, min(self.order, len(history) + 1)):
            context = ids[n - 1][-1]  # the last n tokens of the history, in the order-n table
            if context < 0:
                break
            log_p += self.log_bo[n - 1][context]
            keys = self.keys[n]
            lo, hi = np.searchsorted(keys, [context * self.width, (context + 1) * self.width])
            log_p[keys[lo:hi] - context * self.width] = self.log_p[n][lo:hi]
        return log_p

    def seen_fractions(self, stream: np.ndarray, positions: np.ndarray, counts: np.ndarray) -> list[float]:
        """Per order n, the fraction of scored tokens whose n-gram (the token and its n-1 previous
        tokens, fewer at a segment start where the history is ``<s>``) occurred in training.
        ``counts`` are the unigram training counts (the unigram table also holds unseen types)."""
        ids = lookup(self.index, stream, self.width)
        last_bos = np.maximum.accumulate(np.where(stream == self.width - 1, np.arange(len(stream)), 0))
        depth = positions - last_bos[positions] + 1  # longest n-gram ending here, <s> included
        found = np.stack([counts[stream[positions]] > 0] + [i[positions] >= 0 for i in ids[1:]])
        return [float(np.mean(found[np.minimum(n, depth) - 1, np.arange(len(positions))]))
                for n in range(1, self.order + 1)]

    def entries(self) -> list[int]:
        return [len(k) for k in self.keys]

    def nbytes(self) -> list[int]:
        """Bytes held per order for scoring: keys and their hash table, probabilities, backoffs."""
        bo = [b.nbytes for b in self.log_bo] + [0]
        return [i.memory_usage() + p.nbytes + b for i, p, b in zip(self.index, self.log_p, bo)]
