"""Drawing a token from a next-token distribution, with temperature and top-k."""

from __future__ import annotations

import numpy as np


def draw(log_p: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator) -> int:
    """Sample an id from log-probabilities sharpened (T<1) or flattened (T>1), restricted to the
    ``top_k`` most likely ids if given. T=0 means greedy."""
    if temperature <= 0:
        return int(np.argmax(log_p))
    log_p = np.asarray(log_p, dtype=np.float64)
    with np.errstate(over="ignore"):  # a tiny T sends every non-maximum logit to -inf: greedy, as it should
        logits = (log_p - log_p.max()) / temperature
    if top_k and top_k < len(logits):  # a k above the vocabulary keeps every token
        cutoff = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits >= cutoff, logits, -np.inf)
    p = np.exp(logits)
    return int(rng.choice(len(p), p=p / p.sum()))
