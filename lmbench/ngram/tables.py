"""N-gram tables: every distinct n-gram of a padded id stream, as sorted packed int64 keys.

An n-gram of order n is the key ``prefix * width + word``, where ``prefix`` is the index of its
first n-1 tokens in the order-(n-1) table (order 1 is a dense table: key = word id, over the
vocabulary plus ``<s>``). Sorting by key groups n-grams by context, so per-context sums are
bincounts over ``key // width`` and a context's continuations are one contiguous slice: a trie in
flat arrays, like KenLM's, with no bit budget limiting the order.

Padding follows KenLM: each segment (a line under the sentence protocol, the whole split under the
stream protocol) is preceded by one ``<s>``. An n-gram may start with ``<s>`` but never hold it
elsewhere, so ``<s> <s> w`` is just ``<s> w``: the first tokens of a segment are predicted from
shorter, ``<s>``-anchored histories, and ``<s>`` itself is never predicted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Table:
    """The distinct n-grams of one order seen in training."""

    keys: np.ndarray  # sorted int64: prefix index * width + word
    counts: np.ndarray  # raw training counts
    suffix: np.ndarray  # index of the last n-1 tokens in the order-(n-1) table (order 1: empty)
    bos: np.ndarray  # bool: the n-gram starts with <s>


def pad(tokens: np.ndarray, starts: np.ndarray, bos: int) -> tuple[np.ndarray, np.ndarray]:
    """The id stream with ``<s>`` inserted before every start, and where each token landed in it."""
    starts = np.asarray(starts, dtype=np.int64)
    stream = np.insert(np.asarray(tokens, dtype=np.int64), starts, bos)
    index = np.arange(len(tokens))
    return stream, index + np.searchsorted(starts, index, side="right")


def count(stream: np.ndarray, order: int, width: int) -> list[Table]:
    """Tables of orders 1..``order`` of a padded stream (``width - 1`` is ``<s>``).

    An order's table may be empty when no segment is long enough; the caller decides what that means.
    """
    bos = width - 1
    unigrams = np.bincount(stream, minlength=width)
    unigrams[bos] = 0  # <s> is context only
    vocab = np.arange(width, dtype=np.int64)
    tables = [Table(vocab, unigrams, np.empty(0, np.int64), vocab == bos)]
    ids = stream  # index in the current order's table of the n-gram ending at each position
    for _ in range(2, order + 1):
        ends = np.flatnonzero((ids[:-1] >= 0) & (stream[1:] != bos)) + 1
        keys = ids[ends - 1]
        keys *= width
        keys += stream[ends]
        unique, where, inverse, counts = group(keys)
        del keys
        tables.append(Table(unique, counts, ids[ends[where]], tables[-1].bos[unique // width]))
        ids = None  # the previous order's ids go before the next order's are made
        ids = np.full(len(stream), -1, dtype=np.int64)
        ids[ends] = inverse
    return tables


def group(keys: np.ndarray) -> tuple[np.ndarray, ...]:
    """``np.unique(keys, return_index, return_inverse, return_counts)`` with any occurrence as the
    index (any occurrence of an n-gram has its suffix). Keys are non-negative; when a key and its
    position fit in one int64 together, sorting the packed values replaces the argsort (2.5x faster
    at 15M keys: numpy sorts plain integers with SIMD)."""
    if len(keys) == 0:
        return keys, keys, keys, keys
    shift = max(1, (len(keys) - 1).bit_length())
    if int(keys.max()) < 1 << (63 - shift):
        ordered = keys << shift
        ordered |= np.arange(len(keys))
        ordered.sort()
        order = ordered & ((1 << shift) - 1)
        ordered >>= shift
    else:
        order = np.argsort(keys)
        ordered = keys[order]
    new = np.empty(len(keys), dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    firsts = np.flatnonzero(new)
    unique, where, counts = ordered[firsts], order[firsts], np.diff(np.append(firsts, len(keys)))
    del ordered, new  # the peak of memory is below: free what is no longer needed first
    inverse = np.empty(len(keys), dtype=np.int64)
    small = np.int32 if len(firsts) < 2**31 else np.int64
    inverse[order] = np.repeat(np.arange(len(firsts), dtype=small), counts)  # each sorted key's group
    return unique, where, inverse, counts


def lookup(keys: list[np.ndarray], stream: np.ndarray, width: int) -> list[np.ndarray]:
    """For every order, the table index of the n-gram ending at each stream position, -1 if the
    model never saw it (or it would hold ``<s>`` past its first token)."""
    ids = [np.asarray(stream, dtype=np.int64)]
    for table in keys[1:]:
        prev = ids[-1]
        found = np.full(len(stream), -1, dtype=np.int64)
        ends = np.flatnonzero(prev[:-1] >= 0) + 1
        if len(table) and len(ends):
            query = prev[ends - 1] * width + stream[ends]
            at = np.minimum(np.searchsorted(table, query), len(table) - 1)
            hit = table[at] == query
            found[ends[hit]] = at[hit]
        ids.append(found)
    return ids
