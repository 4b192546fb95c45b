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

Counting makes one pass per order over the stream: the key of the n-gram ending at every position
(from the previous order's index there), then a hash table (``pandas.factorize``, sized for the
distinct keys rather than for every position) finds the distinct keys, and only those are sorted.
Streams and per-position indices are int32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Table:
    """The distinct n-grams of one order seen in training."""

    keys: np.ndarray  # sorted int64: prefix index * width + word
    counts: np.ndarray  # raw training counts
    suffix: np.ndarray  # index of the last n-1 tokens in the order-(n-1) table (order 1: empty)
    bos: np.ndarray  # bool: the n-gram starts with <s>


def index_type(size: int) -> type:
    """The smallest signed dtype holding indices below ``size`` (and -1)."""
    return np.int32 if size < 2**31 else np.int64


def pad(tokens: np.ndarray, starts: np.ndarray, bos: int) -> tuple[np.ndarray, np.ndarray]:
    """The id stream with ``<s>`` inserted before every start (sorted), and where each token landed."""
    tokens = np.asarray(tokens, dtype=index_type(bos + 1))
    starts = np.asarray(starts, dtype=np.int64)
    positions = np.cumsum(np.bincount(starts, minlength=len(tokens) + 1)[:len(tokens)])
    positions += np.arange(len(tokens))
    stream = np.empty(len(tokens) + len(starts), dtype=tokens.dtype)
    stream[positions] = tokens
    stream[starts + np.arange(len(starts))] = bos
    return stream, positions


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
        keys = next_keys(ids, stream, width)
        ids = None  # freed before the hash table's peak, as the keys are after it
        codes, unique = pd.factorize(keys, size_hint=2 * len(tables[-1].keys))  # it grows as needed
        keys = None
        keys, counts, ids = ranked(codes, unique)
        keys -= width
        tables.append(Table(keys, counts, suffixes(tables, keys, width), tables[-1].bos[keys // width]))
    return tables


def next_keys(ids: np.ndarray, stream: np.ndarray, width: int) -> np.ndarray:
    """At every position, ``(prefix + 1) * width + word`` for the n-gram ending there, whose first
    tokens end one position earlier with table index ``prefix``; 0 where no n-gram ends (the
    prefix is missing or the word is ``<s>``), and at position 0."""
    keys = np.zeros(len(stream), dtype=np.int64)
    body = keys[1:]
    body += ids[:-1]
    body += 1
    body *= width
    body += stream[1:]
    body[(ids[:-1] < 0) | (stream[1:] == width - 1)] = 0
    return keys


def ranked(codes: np.ndarray, unique: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From ``pandas.factorize`` of keys: the distinct non-zero keys sorted, their counts, and the
    rank of every key among them (-1 for the key 0)."""
    order = np.argsort(unique)
    skip = int(len(unique) > 0 and unique[order[0]] == 0)  # the key 0: no n-gram ends there
    rank = np.empty(len(unique), dtype=index_type(len(unique)))
    rank[order] = np.arange(-skip, len(unique) - skip)
    counts = np.bincount(codes, minlength=len(unique))[order[skip:]]
    return unique[order[skip:]], counts, rank[codes]


def suffixes(tables: list[Table], keys: np.ndarray, width: int) -> np.ndarray:
    """Index in the order-below table of each n-gram's last n-1 tokens: the suffix of its prefix,
    extended by its word (which that table must hold, since it occurred)."""
    word = keys % width
    if len(tables) == 1:
        return word
    below = tables[-1]
    return np.searchsorted(below.keys, below.suffix[keys // width] * width + word)


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
