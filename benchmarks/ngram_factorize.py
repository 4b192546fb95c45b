"""N-gram counting with ``tables.KeyIds`` (pandas' public API) against the private
``pandas._libs.hashtable.Int64Factorizer`` it replaced (issue 25), side by side in one process.

    LMBENCH_MIRROR=../shared/corpora python benchmarks/ngram_factorize.py [--order 5] [--repeats 3]

Inputs: PTB's training split (sentence protocol, one piece: below ``tables.CHUNK`` tokens), and a
larger stream counted in ``tables.CHUNK``-token pieces: the first ``--tokens`` training words of the
Linux C source as benchmarks/ngram_linux.py builds them (``/usr/src/linux-source-6.1.tar.xz``, every
word in the vocabulary, one ``</s>`` per line, sentence protocol), or where that tarball is missing a
synthetic stream of ``--tokens`` ids drawn from a Zipf law (exponent 1) over 1M types (stream
protocol). Rounds alternate the two (private, public, private, public ...) so a busy machine slows
both alike; wall and CPU seconds of ``tables.count`` are printed (min and median), with the CPU
seconds spent numbering keys (``KeyIds.ids``), and the ratio public / private of the medians (below
1: the public one is faster). Every round's tables must equal the first private round's.

Measured on a shared 2-core Intel Xeon, order 5, CPU seconds of ``tables.count`` (median of 3 rounds,
private -> public): PTB 0.58 -> 0.54 s (0.93), Linux 10M words 11.60 -> 10.44 s (0.90; numbering keys
6.6 -> 5.4 s), Zipf 10M tokens 22.2 -> 21.1 s (0.95); one round of ``--tokens 40000000`` (52M tokens,
12-17M distinct n-grams per order) 77.6 -> 46.2 s (0.60).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from ngram_linux import TARBALL, source_lines
from pandas._libs.hashtable import Int64Factorizer  # the private factorizer measured against

from lmbench.compose import compose
from lmbench.corpora import load_corpus
from lmbench.evaluate import line_end
from lmbench.ngram import tables
from lmbench.runs.provenance import cpu_name


class PrivateKeyIds:
    """``tables.KeyIds`` as it was: one hash table per order that grows over the pieces."""

    def __init__(self):
        self.table = Int64Factorizer(1 << 16)

    def __len__(self) -> int:
        return self.table.get_count()

    def ids(self, keys: np.ndarray, new_from: int) -> np.ndarray:
        return self.table.factorize(keys, na_sentinel=-1, na_value=-1)

    def keys(self) -> np.ndarray:
        return self.table.uniques.to_array()


def timed(numbering: type, spent: list[float]) -> type:
    """``numbering`` with the CPU seconds of its ``ids`` calls added to ``spent[0]``."""

    class Timed(numbering):
        def ids(self, keys, new_from):
            start = time.process_time()
            found = super().ids(keys, new_from)
            spent[0] += time.process_time() - start
            return found

    return Timed


def ptb(order: int):
    """PTB's training split in pieces as the model's fit counts it, its width and a description."""
    corpus = load_corpus(compose("model=ngram", "corpus=ptb", f"model.order={order}").corpus)
    width, end = len(corpus.vocab) + 1, line_end(corpus, "sentence")
    return (lambda: tables.pieces(corpus.chunks("train", tables.CHUNK), end, width - 1), width,
            f"PTB train, {len(corpus.splits['train']):,} tokens")


def in_pieces(stream: np.ndarray, line_end: int | None, bos: int):
    """A function giving ``stream``'s padded pieces of ``tables.CHUNK`` tokens anew."""
    return lambda: tables.pieces(np.array_split(stream, range(tables.CHUNK, len(stream), tables.CHUNK)),
                                 line_end, bos)


def linux(tokens: int):
    """The first ``tokens`` training words of the Linux C source, ids by first appearance, one
    ``</s>`` (id 0) ending each line."""
    vocab, ids, words = {"</s>": 0}, [], 0
    for split, line in source_lines(TARBALL):
        if split != "train":
            continue
        if words >= tokens:
            break
        ids.extend([vocab.setdefault(w, len(vocab)) for w in line])
        ids.append(0)
        words += len(line)
    stream, width = np.array(ids, dtype=np.int32), len(vocab) + 1
    return (in_pieces(stream, 0, width - 1), width,
            f"Linux C source, {words:,} words + {len(stream) - words:,} </s>, {len(vocab):,} types")


def zipf(tokens: int, types: int = 1_000_000):
    """``tokens`` ids drawn with probability proportional to 1 / rank over ``types`` ids."""
    weights = 1 / np.arange(1, types + 1)
    stream = np.random.default_rng(0).choice(types, tokens, p=weights / weights.sum()).astype(np.int32)
    return (in_pieces(stream, None, types), types + 1,
            f"Zipf (s = 1) stream, {tokens:,} tokens, {types:,} types")


def larger(tokens: int):
    return linux(tokens) if TARBALL.exists() else zipf(tokens)


def same(a: list[tables.Table], b: list[tables.Table]) -> bool:
    return len(a) == len(b) and all(np.array_equal(getattr(x, f), getattr(y, f)) for x, y in zip(a, b)
                                    for f in ("keys", "counts", "suffix", "bos"))


def compare(pieces, width: int, order: int, repeats: int) -> None:
    public = tables.KeyIds
    sides = {"private": PrivateKeyIds, "public": public}
    times = {side: {"wall": [], "cpu": [], "numbering": []} for side in sides}
    reference = None
    try:
        for _ in range(repeats):
            for side, numbering in sides.items():
                spent = [0.0]
                tables.KeyIds = timed(numbering, spent)
                wall, cpu = time.perf_counter(), time.process_time()
                found = tables.count(pieces(), order, width)
                times[side]["wall"].append(time.perf_counter() - wall)
                times[side]["cpu"].append(time.process_time() - cpu)
                times[side]["numbering"].append(spent[0])
                reference = reference or found
                assert same(found, reference), f"the {side} numbering gave other tables"
    finally:
        tables.KeyIds = public
    print(f"  distinct n-grams per order: {', '.join(f'{len(t.keys):,}' for t in reference)}")
    for side, got in times.items():
        print(f"  {side:<8} count wall {min(got['wall']):6.2f} / {statistics.median(got['wall']):6.2f} s, "
              f"cpu {min(got['cpu']):6.2f} / {statistics.median(got['cpu']):6.2f} s (min / median); "
              f"numbering keys {statistics.median(got['numbering']):6.2f} s cpu (median)")
    ratio = {k: statistics.median(times["public"][k]) / statistics.median(times["private"][k])
             for k in ("wall", "cpu", "numbering")}
    print(f"  public / private (medians): count wall {ratio['wall']:.3f}, cpu {ratio['cpu']:.3f}; "
          f"numbering keys cpu {ratio['numbering']:.3f}; tables identical", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=10_000_000, help="words of the larger stream")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per side")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}; order {args.order}, {args.repeats} rounds per side, pieces of "
          f"{tables.CHUNK:,} tokens")
    for load, size in ((ptb, args.order), (larger, args.tokens)):
        start = time.perf_counter()
        pieces, width, name = load(size)
        print(f"\n{name} (prepared in {time.perf_counter() - start:.1f} s)", flush=True)
        compare(pieces, width, args.order, args.repeats)


if __name__ == "__main__":
    main()
