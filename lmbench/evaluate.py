"""The one evaluation protocol: every model's log p(token | preceding tokens) for every token.

``stream``: a split is one stream scored from an empty context. ``sentence``: each line is scored
on its own from an empty context (n-gram toolkits' convention: ``</s>``/``<eos>`` counted, ``<s>``
not). Metrics: mean NLL in nats, perplexity, bits per token and bits per character of the
underlying text, with 95% block-bootstrap intervals over the per-token losses, and what the model
says of its coverage of the split (an n-gram: the fraction of the split's n-grams never seen in training).
"""

from __future__ import annotations

import math
import time

import numpy as np

from lmbench.corpora import Corpus
from lmbench.errors import UserError

LN2 = math.log(2)


class NonFiniteScoreError(RuntimeError):
    """A model produced a NaN/inf log-probability: a bug or a diverged model, never a metric."""


def resets(corpus: Corpus, split: str, protocol: str) -> np.ndarray:
    """Positions where the model's context is emptied under ``protocol``."""
    if line_end(corpus, protocol) is None:
        return np.zeros(1, dtype=np.int64)
    return corpus.line_starts(split)


def line_end(corpus: Corpus, protocol: str) -> int | None:
    """The token after which ``protocol`` empties the model's context; None: only at a split's start."""
    if protocol == "stream":
        return None
    if protocol == "sentence":
        return corpus.sentence_end()
    raise UserError(f"Unknown protocol {protocol!r}; use stream or sentence.")


def token_losses(model, corpus: Corpus, split: str, protocol: str, batch_size: int) -> np.ndarray:
    """Per-token negative log-likelihoods (nats) of one split, checked for shape and finiteness."""
    tokens = corpus.splits[split]
    log_probs = np.asarray(model.log_probs(tokens, resets(corpus, split, protocol), batch_size),
                           dtype=np.float64)
    if log_probs.shape != tokens.shape:
        raise NonFiniteScoreError(f"model returned {log_probs.shape} scores for {tokens.shape} tokens")
    bad = np.flatnonzero(~np.isfinite(log_probs) | (log_probs > 1e-9))
    if len(bad):
        raise NonFiniteScoreError(
            f"model gave log-probability {log_probs[bad[0]]} to token {bad[0]} of the {split} split")
    return -log_probs


def bootstrap_mean_ci(losses: np.ndarray, samples: int, block: int, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the mean loss, resampling contiguous blocks (losses are autocorrelated)."""
    n = len(losses)
    block = block or max(1, int(math.sqrt(n)))
    edges = np.arange(0, n, block)
    sums = np.add.reduceat(losses, edges)
    lengths = np.diff(np.append(edges, n))
    picks = np.random.default_rng(seed).integers(0, len(edges), size=(samples, len(edges)))
    means = sums[picks].sum(axis=1) / lengths[picks].sum(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def _exp(x: float) -> float:
    """e**x, or inf past the float range (the perplexity of a model whose loss exploded)."""
    return math.exp(x) if x < 709 else math.inf


def metrics(losses: np.ndarray, chars: int, samples: int = 1000, block: int = 0) -> dict:
    """Summary metrics of per-token losses; ``chars`` is the split's underlying text length."""
    n = len(losses)
    nll = float(losses.mean())
    low, high = bootstrap_mean_ci(losses, samples, block) if samples else (nll, nll)
    per_char = n / chars
    return {
        "tokens": n,
        "nll": nll,
        "ppl": _exp(nll),
        "ppl_ci": [_exp(low), _exp(high)],
        "bits_per_token": nll / LN2,
        "bpc": nll / LN2 * per_char,
        "bpc_ci": [low / LN2 * per_char, high / LN2 * per_char],
    }


def evaluate(model, corpus: Corpus, split: str, protocol: str, batch_size: int = 64,
             bootstrap_samples: int = 1000, bootstrap_block: int = 0) -> tuple[dict, np.ndarray]:
    """Score one split; returns its metrics (with eval tokens/s and the model's coverage of the split)
    and the per-token losses."""
    start = time.perf_counter()
    losses = token_losses(model, corpus, split, protocol, batch_size)
    seconds = time.perf_counter() - start
    result = metrics(losses, corpus.chars[split], bootstrap_samples, bootstrap_block)
    result.update(protocol=protocol, eval_seconds=seconds, eval_tokens_per_s=len(losses) / max(seconds, 1e-9))
    result.update(model.coverage(corpus.splits[split], resets(corpus, split, protocol)))
    return result, losses


def paired_bootstrap(losses_a: np.ndarray, losses_b: np.ndarray, samples: int = 1000, block: int = 0,
                     seed: int = 0) -> dict:
    """Paired block bootstrap of the mean per-token loss difference a − b on the same tokens.

    Returns the difference (nats/token), its 95% interval and a two-sided p-value: twice the
    smaller fraction of resamples on either side of zero (Koehn 2004, with blocks)."""
    if losses_a.shape != losses_b.shape:
        raise ValueError("paired comparison needs losses on the same tokens")
    diff = losses_a.astype(np.float64) - losses_b.astype(np.float64)
    n = len(diff)
    block = block or max(1, int(math.sqrt(n)))
    edges = np.arange(0, n, block)
    sums, lengths = np.add.reduceat(diff, edges), np.diff(np.append(edges, n))
    picks = np.random.default_rng(seed).integers(0, len(edges), size=(samples, len(edges)))
    means = sums[picks].sum(axis=1) / lengths[picks].sum(axis=1)
    p_value = min(1.0, 2 * min(np.mean(means <= 0), np.mean(means >= 0)))
    low, high = np.quantile(means, [0.025, 0.975])
    return {"diff": float(diff.mean()), "diff_lo": float(low), "diff_hi": float(high),
            "p_value": float(p_value), "significant": bool(low > 0 or high < 0)}
