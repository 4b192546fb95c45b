"""From n-gram counts to a backoff model: modified Kneser-Ney (interpolated or back-off), Katz and
add-k smoothing.

Each function takes the tables of ``tables.count`` and returns a ``BackoffLM`` plus one report
per order (its discounts, and whether they are the fallback). Everything is a bincount or a
gather over whole tables; nothing loops over n-grams.
"""

from __future__ import annotations

import logging

import numpy as np

from lmbench.ngram.backoff import BackoffLM
from lmbench.ngram.tables import Table

log = logging.getLogger(__name__)


def _per_context(table: Table, width: int, values: np.ndarray, contexts: int) -> np.ndarray:
    """Sum of ``values`` over the continuations of every context (the order below's entries)."""
    return np.bincount(table.keys // width, weights=values, minlength=contexts)


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(x)


# ---------------------------------------------------------------- modified Kneser-Ney
def adjusted_counts(tables: list[Table]) -> list[np.ndarray]:
    """KenLM's counts: raw at the top order and for n-grams starting with ``<s>`` (nothing can
    precede them); below the top, the number of distinct words seen before the n-gram."""
    counts = []
    for n, table in enumerate(tables[:-1]):
        continuations = np.bincount(tables[n + 1].suffix, minlength=len(table.keys))
        counts.append(np.where(table.bos, table.counts, continuations))
    counts.append(tables[-1].counts)
    return counts


def kn_discounts(counts: np.ndarray) -> np.ndarray | None:
    """Chen & Goodman's D1, D2, D3+ from counts-of-counts, as ``[0, D1, D2, D3+]``, or None when
    they are undefined or outside 0 < Dk <= k (tiny or character data)."""
    n = np.bincount(np.minimum(counts, 5), minlength=5)[1:5].astype(np.float64)  # not max(counts) long
    if np.any(n[:3] == 0):
        return None
    y = n[0] / (n[0] + 2 * n[1])
    k = np.arange(1, 4)
    d = k - (k + 1) * y * n[1:] / n[:3]
    return np.concatenate([[0.0], d]) if np.all((d > 0) & (d <= k)) else None


def kneser_ney(tables: list[Table], fallback: list[float],
               interpolate: bool = True) -> tuple[BackoffLM, list[dict]]:
    """Interpolated modified Kneser-Ney exactly as KenLM's ``lmplz`` estimates it; the unigram
    level is interpolated with the uniform distribution over the vocabulary (``<s>`` excluded).
    KenLM always adds its own zero-count ``<unk>``: where the corpus's ``<unk>`` is a trained word
    (PTB), KenLM's uniform share is spread over one type more than ours, which moves PTB's test
    perplexity by about 1e-6 (relative); with the same vocabulary the two agree to float32.

    ``interpolate=False`` is back-off Kneser-Ney (Kneser & Ney 1995; Chen & Goodman's "backoff"
    variant, the n-grams of Bengio et al.'s Brown table): a seen n-gram gets only its discounted
    count, an unseen one the lower order's probability times a weight that makes the context sum
    to one. Discounts and continuation counts are the same.

    An order whose discounts are invalid uses ``fallback`` (KenLM's ``--discount_fallback``)."""
    width = len(tables[0].keys)
    vocab = width - 1
    counts = adjusted_counts(tables)
    probs, log_bo, report = [], [], []
    for n, (table, c) in enumerate(zip(tables, counts), start=1):
        d = kn_discounts(c)
        fell_back = d is None
        if fell_back:
            log.warning("kn: the counts-of-counts of order %d give no valid discounts (tiny or "
                        "character data); using the fallback discounts %s.", n, list(fallback))
            d = np.concatenate([[0.0], fallback])
        report.append({"order": n, "discounts": d[1:].tolist(), "fallback": fell_back})
        discount = d[np.minimum(c, 3)]
        if n == 1:
            total = c.sum()
            p = (c - discount) / total + discount.sum() / total / vocab
            p[-1] = 0.0
        else:
            totals = _per_context(table, width, c, len(tables[n - 2].keys))
            freed = _per_context(table, width, discount, len(totals))
            gamma = np.divide(freed, totals, out=np.ones_like(totals), where=totals > 0)
            prefix, lower = table.keys // width, probs[-1][table.suffix]
            if interpolate:
                p = (c - discount) / totals[prefix] + gamma[prefix] * lower
                log_bo.append(np.log(gamma))
            else:
                p, alpha = _backoff_level(c - discount, prefix, totals, gamma, lower, vocab)
                log_bo.append(_log(alpha))
        probs.append(p)
    return BackoffLM([t.keys for t in tables], [_log(p) for p in probs], log_bo), report


def _backoff_level(kept: np.ndarray, prefix: np.ndarray, totals: np.ndarray, freed: np.ndarray,
                   lower: np.ndarray, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """Back-off Kneser-Ney for one order: each seen n-gram's discounted count ``kept`` over its
    context's total, and each context's weight on the order below, the ``freed`` share of its mass
    over the lower-order mass of the words it does not keep. A discount can take a whole count
    (D3+ = 3 on tiny data): that n-gram backs off like an unseen one. A context keeping every word
    of the vocabulary has nothing to back off to: its discounted counts are renormalised instead."""
    contexts = len(totals)
    keeps = kept > 0
    complete = np.bincount(prefix, weights=keeps, minlength=contexts) == vocab
    denominator = np.where(complete, np.bincount(prefix, weights=kept, minlength=contexts), totals)
    room = 1 - np.bincount(prefix, weights=lower * keeps, minlength=contexts)
    alpha = np.divide(freed, room, out=np.ones(contexts), where=~complete & (totals > 0))
    return np.where(keeps, kept / denominator[prefix], alpha[prefix] * lower), alpha


# ---------------------------------------------------------------- Katz
def good_turing(counts: np.ndarray, threshold: int) -> np.ndarray:
    """Katz's discount coefficients ``d[r]`` for counts r <= ``threshold`` (``d[r] = 1`` above).

    d_r = (r*/r - A) / (1 - A), r* = (r+1) n_{r+1} / n_r, A = (k+1) n_{k+1} / n_1. A coefficient
    outside (0, 1) is set to 1 (no discount for that count), as SRILM does."""
    capped = np.minimum(counts, threshold + 2)  # counts of counts up to k + 1, not max(counts) long
    n = np.bincount(capped, minlength=threshold + 3)[:threshold + 2].astype(np.float64)
    r = np.arange(1, threshold + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        common = (threshold + 1) * n[threshold + 1] / n[1]
        d = ((r + 1) * n[r + 1] / (r * n[r]) - common) / (1 - common)
    return np.concatenate([[1.0], np.where(np.isfinite(d) & (d > 0) & (d < 1), d, 1.0)])


def _katz_level(counts: np.ndarray, multiplier: np.ndarray, prefix: np.ndarray, contexts: int,
                lower: np.ndarray, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of seen n-grams and backoff weights of their contexts, for one order.

    ``lower`` is the order-below probability of each seen n-gram's suffix. A context that frees
    no mass (no continuation discounted) gets one more count in its denominator (Doug Paul's rule,
    as in SRILM); one followed by the whole vocabulary is renormalised and never backs off."""
    total = np.bincount(prefix, weights=counts, minlength=contexts)
    kept = np.bincount(prefix, weights=multiplier * counts, minlength=contexts)
    stuck = (kept == total) & (total > 0)
    complete = np.bincount(prefix, minlength=contexts) == vocab
    denominator = np.where(complete, kept, total + (stuck & ~complete))
    p = multiplier * counts / denominator[prefix]
    backs_off = (total > 0) & ~complete
    freed = np.divide(denominator - kept, denominator, out=np.zeros(contexts), where=backs_off)
    room = 1 - np.bincount(prefix, weights=lower, minlength=contexts)
    alpha = np.divide(freed, room, out=np.ones(contexts), where=backs_off)
    return p, alpha


def katz(tables: list[Table], threshold: int) -> tuple[BackoffLM, list[dict]]:
    """Katz backoff: Good-Turing-discounted raw counts at every order, and backoff weights that
    make every context's distribution sum to one. The unigram level gives the freed mass to the
    vocabulary types never seen in training, uniformly."""
    width = len(tables[0].keys)
    vocab = width - 1
    probs, log_bo, report = [], [], []
    for n, table in enumerate(tables, start=1):
        c = table.counts
        d = good_turing(c, threshold)
        undiscounted = [int(r) for r in np.flatnonzero(d[1:] == 1.0) + 1]
        if undiscounted:
            log.warning("katz: Good-Turing coefficients of order %d are out of range for counts %s "
                        "(irregular counts-of-counts: tiny, character or vocabulary-capped data); "
                        "those counts are not discounted.", n, undiscounted)
        report.append({"order": n, "coefficients": d[1:].tolist(), "undiscounted": undiscounted})
        multiplier = d[np.where(c <= threshold, c, 0)]
        if n == 1:
            seen = c > 0
            p, alpha = _katz_level(c[seen], multiplier[seen], np.zeros(seen.sum(), np.int64), 1,
                                   np.full(seen.sum(), 1 / vocab), vocab)
            unigram = np.full(width, alpha[0] / vocab)
            unigram[seen] = p
            unigram[-1] = 0.0
            probs.append(unigram)
        else:
            p, alpha = _katz_level(c, multiplier, table.keys // width, len(tables[n - 2].keys),
                                   probs[-1][table.suffix], vocab)
            probs.append(p)
            log_bo.append(_log(alpha))
    return BackoffLM([t.keys for t in tables], [_log(p) for p in probs], log_bo), report


# ---------------------------------------------------------------- add-k
def add_k(tables: list[Table], k: float) -> tuple[BackoffLM, list[dict]]:
    """Additive smoothing of the top order: p(w | h) = (c(h w) + k) / (c(h) + k |V|) for a seen
    history h, uniform for an unseen one (k = 0 is maximum likelihood). Near a segment start the
    top-order history is the shorter ``<s>``-anchored one, so those n-grams are smoothed the same
    way; other lower-order entries only index contexts and carry the uniform distribution."""
    width = len(tables[0].keys)
    vocab = width - 1
    top = len(tables)
    uniform = np.full(width, 1 / vocab)
    uniform[-1] = 0.0
    if top == 1:
        c = tables[0].counts
        probs = [(c + k) / (c.sum() + k * vocab) * (np.arange(width) < vocab)]
    else:
        probs = [uniform]
    log_bo = []
    for n, table in enumerate(tables[1:], start=2):
        c = table.counts
        context = tables[n - 2]
        total = _per_context(table, width, c, len(context.keys))
        full = (n == top) | context.bos  # contexts whose continuations are top-order n-grams
        prefix = table.keys // width
        probs.append(np.where(full[prefix], (c + k) / (total[prefix] + k * vocab), 1 / vocab))
        weight = np.divide(k * vocab, total + k * vocab, out=np.ones_like(total), where=full & (total > 0))
        log_bo.append(_log(weight))
    report = [{"order": top, "k": k}]
    return BackoffLM([t.keys for t in tables], [_log(p) for p in probs], log_bo), report
