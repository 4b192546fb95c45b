"""The interface every model answers, so one evaluator scores n-grams and networks alike."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from lmbench.corpora import Corpus


class LanguageModel(Protocol):
    """A language model over a corpus's vocabulary of integer ids.

    Scoring contract (the evaluation protocol): ``log_probs(tokens, starts)`` returns, for every
    position ``i``, the natural log of p(tokens[i] | tokens[s:i]) where ``s`` is the latest entry of
    ``starts`` that is <= i. ``starts`` always holds 0; at each start the model's context is empty
    (an n-gram pads with ``<s>``, a recurrent model resets its state). The stream protocol passes
    ``starts=[0]``; the sentence protocol passes the start of every line. The result must not depend
    on ``batch_size``, which only says how much work to do at once.
    """

    def fit(self, corpus: Corpus, cfg: Any, run_dir: Any) -> dict:
        """Estimate or train on ``corpus.train`` (``corpus.valid`` for model selection).

        Returns training statistics to store in the run record (may be empty)."""
        ...

    def log_probs(self, tokens: np.ndarray, starts: np.ndarray, batch_size: int) -> np.ndarray:
        """Per-token natural-log probabilities, float64, same length as ``tokens``."""
        ...

    def sample(self, length: int, prompt: np.ndarray, temperature: float, top_k: int | None,
               rng: np.random.Generator) -> np.ndarray:
        """Draw ``length`` token ids continuing ``prompt`` (possibly empty)."""
        ...

    def num_parameters(self) -> int:
        """Free parameters (stored counts or probabilities for count-based models)."""
        ...

    def size_bytes(self) -> int:
        """Bytes the model holds in memory for scoring."""
        ...
