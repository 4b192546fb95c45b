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

Counting makes one pass over the stream, in pieces: per order above 1, hash tables (``KeyIds``)
grow from each distinct key ``prefix * width + word``, ``prefix`` the previous order's index, to its
index by first appearance, and counts accumulate per index. Only one piece's per-position arrays
exist at a time (about 70 bytes a token, ``CHUNK`` tokens), so memory grows with the distinct
n-grams, 40-70 bytes each while counting (hash slot, key, count), not with the tokens. The
(n-1)-gram ending where an n-gram ends is its suffix (its last n-1 tokens), the same at every
occurrence, so it is recorded for each n-gram new in a piece. At the end each order's keys are
sorted, lowest order first, re-indexing the next order's prefixes and suffixes, and the tables are
checked against their invariants (``check``): a wrong key is an error, never a model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

CHUNK = 1 << 20  # tokens counted at once


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
    stream = padded(tokens, starts, bos)
    return stream, np.flatnonzero(stream != bos)


def padded(tokens: np.ndarray, starts: np.ndarray, bos: int) -> np.ndarray:
    """The id stream with ``<s>`` inserted before every start (sorted) and no int64 temporaries."""
    stream = np.full(len(tokens) + len(starts), bos, dtype=index_type(bos + 1))
    token = np.ones(len(stream), dtype=bool)
    token[np.asarray(starts, dtype=np.int64) + np.arange(len(starts))] = False
    stream[token] = tokens
    return stream


def pieces(chunks: Iterable[np.ndarray], line_end: int | None, bos: int) -> Iterator[np.ndarray]:
    """Consecutive chunks of a split, ``<s>``-padded chunk by chunk as ``padded`` pads the whole
    split: before its first token and, if ``line_end`` is given (the sentence protocol), before
    every token following a ``line_end``."""
    before = line_end  # the split's first token starts a segment
    for i, tokens in enumerate(chunks):
        if line_end is None:
            starts = np.zeros(int(i == 0), dtype=np.int64)
        else:
            starts = np.flatnonzero(np.concatenate([[before], tokens[:-1]]) == line_end)
            before = tokens[-1]
        yield padded(tokens, starts, bos)


def count(pieces: Iterable[np.ndarray], order: int, width: int) -> list[Table]:
    """Tables of orders 1..``order`` of a padded stream (``width - 1`` is ``<s>``) given in
    consecutive pieces, so that only one piece's per-position arrays exist at a time. The tables
    are checked (``check``) before they are returned: a corrupted table is an error, never a model.

    An order's table may be empty when no segment is long enough; the caller decides what that means.
    """
    bos = width - 1
    unigrams = np.zeros(width, dtype=np.int64)
    seen = [KeyIds() for _ in range(order - 1)]  # per order above 1, its keys numbered
    counts = [np.zeros(0, dtype=np.int64) for _ in seen]
    suffix = [[] for _ in seen]  # per order above 1, by first appearance: its last n-1 tokens' index below
    last = [-1] * order  # per order, the index of the n-gram ending just before the piece
    segments = Segments(order)
    for piece in pieces:
        unigrams += np.bincount(piece, minlength=width)
        segments.add(piece == bos)
        ids = word = piece.astype(np.int64)
        for n in range(order - 1):  # the order n + 2 index of each position's n-gram from the n + 1
            below_size = len(counts[n - 1]) if n else width
            prefix = prefixes(ids, last[n], below_size, width)
            last[n] = int(ids[-1])
            packed = np.where((prefix < 0) | (word == bos), -1, prefix * width + word)
            fresh = below_size - len(suffix[n - 1][-1]) if n else width  # the order below's first new index
            below, ids = ids, seen[n].ids(packed, fresh * width)  # a new prefix makes a new n-gram
            known = len(counts[n])
            new = ids >= known  # the n-grams first seen in this piece (-1, none, is below)
            suffixes = np.empty(len(seen[n]) - known, dtype=index_type(below_size))
            suffixes[ids[new] - known] = below[new]  # the same at each occurrence of an n-gram
            suffix[n].append(suffixes)
            grown = np.bincount(ids + 1, minlength=len(seen[n]) + 1)[1:]
            grown[:known] += counts[n]
            counts[n] = grown
    unigrams[bos] = 0  # <s> is context only
    found = [keys.keys() for keys in seen]
    del seen  # the hash tables
    tables = ranked(unigrams, found, counts, [np.concatenate(parts) for parts in suffix], width)
    check(tables, segments.occurrences())
    return tables


class KeyIds:
    """Distinct int64 keys numbered 0, 1, 2... by first appearance over successive calls: a factorize
    that keeps its hash table, from pandas' public API. Each call's new keys become a run of their
    own, hashed by ``pd.Index`` when first searched, and every ``JOIN`` runs of one level are joined
    into one of the next, so a run's keys are consecutive in the numbering (an id is a position plus
    the keys of the runs before) and, over c calls, a key is rehashed about log8(c) times and searched
    in at most 7 runs per level. Against pandas' private ``Int64Factorizer``, which it replaced
    (benchmarks/ngram_factorize.py): counting as fast on PTB (one piece), faster on 10M+ words of
    Linux C source in 1M-token pieces, a stream with tens of millions of distinct n-grams per order."""

    JOIN = 8

    def __init__(self):
        self.runs: list[pd.Index] = []  # oldest (and largest) first
        self.levels: list[int] = []  # per run, how many times its keys were joined: non-increasing
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def ids(self, keys: np.ndarray, new_from: int) -> np.ndarray:
        """Each key's number, -1 for -1 (no key), keys not seen before numbered from ``len(self)`` on
        in order of first appearance; keys from ``new_from`` up are known to be new, and not searched."""
        codes, uniques = pd.factorize(keys)  # uniques in order of first appearance
        ids = np.full(len(uniques), -1, dtype=np.int64)
        todo, start = np.flatnonzero((uniques >= 0) & (uniques < new_from)), 0
        for run in self.runs:
            if len(todo) == 0:
                break
            found = run.get_indexer(uniques[todo])
            hit = found >= 0
            ids[todo[hit]] = found[hit] + start
            todo, start = todo[~hit], start + len(run)
        new = np.flatnonzero((ids < 0) & (uniques >= 0))
        ids[new] = np.arange(self.size, self.size + len(new))
        self.size += len(new)
        if len(new):
            self.runs.append(pd.Index(uniques[new], copy=False))
            self.levels.append(0)
        while len(self.runs) >= self.JOIN and self.levels[-self.JOIN] == self.levels[-1]:
            joined = pd.Index(np.concatenate([run.to_numpy() for run in self.runs[-self.JOIN:]]), copy=False)
            level = self.levels[-1] + 1
            del self.runs[-self.JOIN:], self.levels[-self.JOIN:]
            self.runs.append(joined)
            self.levels.append(level)
        return ids[codes]

    def keys(self) -> np.ndarray:
        """Every key seen, in order of its number."""
        return np.concatenate([run.to_numpy() for run in self.runs] + [np.zeros(0, dtype=np.int64)])


def prefixes(ids: np.ndarray, before: int, below_size: int, width: int) -> np.ndarray:
    """The index of the n-gram ending one position earlier (``before`` for the first), as int64: a
    prefix times ``width`` is a key, which must fit 63 bits (int32 ids would wrap past 2**31)."""
    if below_size > MAX_KEY // width:
        raise TableError(f"{below_size:,} distinct n-grams of one order times a width of {width:,} do "
                         "not fit a 63-bit key; lower model.order or the vocabulary.")
    prefix = np.empty(len(ids), dtype=np.int64)
    prefix[0], prefix[1:] = before, ids[:-1]
    return prefix


MAX_KEY = 2**63 - 1


class TableError(RuntimeError):
    """Counting produced tables that break their invariants (or would overflow a key): a bug or a
    limit of lmbench, reported rather than turned into a model with wrong probabilities."""


class Segments:
    """The n-gram occurrences a padded stream must yield per order, counted apart from the tables:
    a segment of m positions (its ``<s>`` included) holds m - n + 1 n-grams of each order n >= 2
    (a stream's first segment may lack its ``<s>``: the same count; an empty one holds none)."""

    def __init__(self, order: int):
        self.order, self.open, self.lengths = order, 0, []

    def add(self, is_bos: np.ndarray) -> None:
        """One piece, given where its ``<s>`` are."""
        starts = np.flatnonzero(is_bos)
        if len(starts) == 0:
            self.open += len(is_bos)
            return
        self.lengths.append(np.diff(starts, prepend=-self.open))  # the open one ends at the first
        self.open = len(is_bos) - starts[-1]

    def occurrences(self) -> np.ndarray:
        """Per order 2..``order``, the number of n-gram occurrences."""
        lengths = np.concatenate(self.lengths + [[self.open]]).astype(np.int64)
        return np.array([np.maximum(lengths - n + 1, 0).sum() for n in range(2, self.order + 1)])


def check(tables: list[Table], occurrences: np.ndarray) -> None:
    """Raise ``TableError`` unless, per order above 1, the keys are distinct and sorted, no key holds
    ``<s>`` past its first token, every prefix and suffix index lies in the order below, every
    suffix ends with its n-gram's word, and the counts sum to the n-gram occurrences of the stream.
    A handful of passes over each table: cheap beside counting, and what would have caught a key
    overflow."""
    width = len(tables[0].keys)
    for n, (table, below, expected) in enumerate(zip(tables[1:], tables, occurrences), start=2):
        keys, words, problem = table.keys, table.keys % width, None
        if len(keys) and not (keys[0] >= 0 and np.all(keys[1:] > keys[:-1])):
            problem = "keys are not distinct and sorted"
        elif len(keys) and keys[-1] // width >= len(below.keys):
            problem = "a prefix index is outside the order below"
        elif np.any(words == width - 1):
            problem = "a key holds <s> past its first token"
        elif len(keys) and not (table.suffix.min() >= 0 and table.suffix.max() < len(below.keys)):
            problem = "a suffix index is outside the order below"
        elif not np.array_equal(below.keys[table.suffix] % width if n > 2 else table.suffix, words):
            problem = "a suffix does not end with its n-gram's word"
        elif (len(keys) and table.counts.min() < 1) or table.counts.sum() != expected:
            problem = f"counts sum to {table.counts.sum():,}, not the stream's {expected:,} {n}-grams"
        if problem:
            raise TableError(f"the order-{n} n-gram table is corrupted ({problem}); this is a bug in "
                             "lmbench's counting: please report it with the corpus size and vocabulary.")


def ranked(unigrams: np.ndarray, keys: list[np.ndarray], counts: list[np.ndarray],
           suffix: list[np.ndarray], width: int) -> list[Table]:
    """The tables from each order's keys, counts and suffixes by first appearance: sorted, lowest
    order first, each order's prefixes and suffixes re-indexed by the sorted order below.

    The suffix of the n-gram ending at a position is the (n-1)-gram ending there, so counting
    records it, and no table is searched for it."""
    vocab = np.arange(width, dtype=np.int64)
    tables = [Table(vocab, unigrams, np.empty(0, np.int64), vocab == width - 1)]
    rank = vocab  # the sorted index of the order below's n-grams, by first appearance
    while keys:  # emptied as it goes: each order's unsorted arrays are freed once sorted
        found, n, below = keys.pop(0), counts.pop(0), suffix.pop(0)
        prefix, word = np.divmod(found, width)
        found, order = sort_with_order(rank[prefix] * width + word)
        below = rank[below[order]]
        rank = np.empty(len(found), dtype=np.int64)  # int64: times width, it makes keys
        rank[order] = np.arange(len(found))
        tables.append(Table(found, n[order], below, tables[-1].bos[found // width]))
    return tables


def sort_with_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative int64 ``keys`` sorted, and the permutation that sorts them. Each key shifted left
    and joined with its position sorts in one pass, faster than ``argsort`` (which moves indices
    and compares keys through them); when the two do not fit in 63 bits, ``argsort`` it is."""
    bits = len(keys).bit_length()
    if len(keys) == 0 or int(keys.max()) >> (63 - bits):
        order = np.argsort(keys)
        return keys[order], order
    packed = keys << bits
    packed |= np.arange(len(keys))
    packed.sort()
    return packed >> bits, packed & ((1 << bits) - 1)


def lookup(index: list[pd.Index], stream: np.ndarray, width: int) -> list[np.ndarray]:
    """For every order, the table index of the n-gram ending at each stream position, -1 if the
    model never saw it (or it would hold ``<s>`` past its first token). ``index`` holds each
    order's keys, hashed. An n-gram is looked up only where its first and last n-1 tokens were
    found: every stored n-gram's prefix and suffix are stored too (``count`` counts them where it
    occurs), so where either is missing it cannot be, and an order found at a position implies
    every order below it."""
    ids = [np.asarray(stream, dtype=np.int64)]
    for table in index[1:]:
        prev = ids[-1]
        found = np.full(len(stream), -1, dtype=np.int64)
        ends = np.flatnonzero((prev[:-1] >= 0) & (prev[1:] >= 0)) + 1
        if len(ends):
            found[ends] = table.get_indexer(prev[ends - 1] * width + stream[ends])
        ids.append(found)
    return ids
