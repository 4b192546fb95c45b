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

Counting makes one pass per order over the stream, in chunks: the key of the n-gram ending at every
position (from the previous order's index there) is hashed (``pandas.factorize``), unless its
context is always followed by the same word, and only the distinct keys are sorted. The stream and
the per-position indices are int32, so counting needs about 8 bytes per token plus one chunk's
work, whatever the order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CHUNK = 1 << 22  # stream positions hashed at once when counting


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
        out = np.empty(len(stream), dtype=index_type(len(stream))) if ids is stream else ids
        keys, counts = extend(ids, stream, width, tables[-1].counts, out)
        ids = out
        tables.append(Table(keys, counts, suffixes(tables, keys, width), tables[-1].bos[keys // width]))
    return tables


def extend(ids: np.ndarray, stream: np.ndarray, width: int, occurrences: np.ndarray,
           out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The n-grams one word longer than those ``ids`` indexes (``occurrences`` holds how often each
    of those ends in the stream): their sorted distinct keys and counts, and in ``out`` (which may
    be ``ids``) the index of the one ending at each position, -1 if none.

    A context always followed by the same word makes one n-gram, known without hashing; the other
    positions are hashed. Chunks go from the end of the stream backwards, so that ``out`` overwrites
    ``ids`` only once read: it holds each chunk's codes until all chunks' keys are ranked."""
    contexts = len(occurrences)
    lone = np.full(contexts + 1, -1, dtype=stream.dtype)  # a word is rarely always followed by one word:
    if ids is not stream:  # only longer contexts are worth the check
        lone = lone_words(ids, stream, contexts)
    dtype = np.uint32 if (contexts + 1) * width < 2**32 else np.int64  # 32-bit keys hash faster
    followed = occurrences - np.bincount(ids[-1:][ids[-1:] >= 0], minlength=contexts)  # by a word
    chunks, hint = [], 2 * contexts
    for a in reversed(range(0, len(stream) - 1, CHUNK)):
        b = min(a + CHUNK, len(stream) - 1)  # positions a + 1 .. b end n-grams: prefix at a .. b - 1
        prefix, word = ids[a:b], stream[a + 1:b + 1]
        hashed = lone[prefix] < 0
        codes, unique = pd.factorize(packed(prefix[hashed], word[hashed], width, dtype), size_hint=hint)
        chunks.append((slice(a + 1, b + 1), unique, np.bincount(codes, minlength=len(unique))))
        position_codes = prefix + len(unique)  # a lone context's n-gram: its index, past the hashed
        position_codes[hashed] = codes
        out[a + 1:b + 1] = position_codes
        hint = 2 * len(unique)  # the next chunk likely holds as many
    out[:1] = -1  # no n-gram ends at position 0
    direct = packed(np.arange(contexts), lone[:-1], width, dtype)
    keys, ranks = merged([unique for _, unique, _ in chunks] + [direct])
    counts = np.zeros(len(keys), dtype=np.int64)
    direct = ranks.pop()
    counts[direct[direct >= 0]] += followed[direct >= 0]
    for (where, _, n), rank in zip(chunks, ranks):
        counts[rank[rank >= 0]] += n[rank >= 0]
        out[where] = np.concatenate([rank, direct])[out[where]]
    return keys.astype(np.int64) - width, counts


def lone_words(ids: np.ndarray, stream: np.ndarray, contexts: int) -> np.ndarray:
    """Per context, the only word ever following it, or -1 if several do or none; one more slot, for
    the index -1 of a missing context, is -1 too."""
    lone = np.full(contexts + 1, -1, dtype=stream.dtype)
    spans = [(a, min(a + CHUNK, len(stream) - 1)) for a in range(0, len(stream) - 1, CHUNK)]
    for a, b in spans:
        lone[ids[a:b]] = stream[a + 1:b + 1]  # any occurrence's word
    lone[-1] = -1
    for a, b in spans:
        prefix = ids[a:b]
        lone[prefix[lone[prefix] != stream[a + 1:b + 1]]] = -1
    return lone


def packed(prefix: np.ndarray, word: np.ndarray, width: int, dtype: type) -> np.ndarray:
    """The keys ``(prefix + 1) * width + word`` of n-grams from their first tokens' index in the
    order below and their last word; 0 where there is none (``prefix`` or ``word`` -1, or the word
    ``<s>``)."""
    keys = prefix.astype(dtype)
    keys += dtype(1)  # prefix -1 wraps to 0 in uint32
    keys *= dtype(width)
    keys += word.astype(dtype)
    keys[(prefix < 0) | (word < 0) | (word == width - 1)] = 0
    return keys


def merged(uniques: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The sorted distinct non-zero keys of all chunks, and per chunk the rank among them of each
    of its distinct keys (-1 for 0). Only distinct keys are sorted."""
    codes, keys = pd.factorize(np.concatenate(uniques))
    order = np.argsort(keys)
    skip = int(len(keys) > 0 and keys[order[0]] == 0)  # the key 0: no n-gram ends there
    rank = np.empty(len(keys), dtype=index_type(len(keys)))
    rank[order] = np.arange(-skip, len(keys) - skip)
    return keys[order[skip:]], np.split(rank[codes], np.cumsum([len(u) for u in uniques])[:-1])


def suffixes(tables: list[Table], keys: np.ndarray, width: int) -> np.ndarray:
    """Index in the order-below table of each n-gram's last n-1 tokens: the suffix of its prefix,
    extended by its word (which that table must hold, since it occurred)."""
    word = keys % width
    if len(tables) == 1:
        return word
    below = tables[-1]
    return np.searchsorted(below.keys, below.suffix[keys // width] * width + word)


def lookup(index: list[pd.Index], stream: np.ndarray, width: int) -> list[np.ndarray]:
    """For every order, the table index of the n-gram ending at each stream position, -1 if the
    model never saw it (or it would hold ``<s>`` past its first token). ``index`` holds each
    order's keys, hashed."""
    ids = [np.asarray(stream, dtype=np.int64)]
    for table in index[1:]:
        prev = ids[-1]
        found = np.full(len(stream), -1, dtype=np.int64)
        ends = np.flatnonzero(prev[:-1] >= 0) + 1
        if len(ends):
            found[ends] = table.get_indexer(prev[ends - 1] * width + stream[ends])
        ids.append(found)
    return ids
