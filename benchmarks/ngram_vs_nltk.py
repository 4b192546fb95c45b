"""lmbench's ``kn`` against nltk.lm's ``KneserNeyInterpolated`` on the same PTB data, in one run.

    LMBENCH_MIRROR=../shared/corpora python benchmarks/ngram_vs_nltk.py [--order 5] \
        [--train-lines 42068] [--test-lines 10]

Both models train on the first ``--train-lines`` lines of PTB's training split with the sentence
protocol's padding (``order - 1`` ``<s>`` before each line, one ``</s>`` after) and score the first
``--test-lines`` lines of the test split. nltk scores a token in tens to hundreds of milliseconds,
so only a few lines are scored; lmbench's time on the same tokens is the best of repeated runs.
Prints fit seconds, milliseconds per scored token, both perplexities, and the speed ratio
(target: >= 1000x).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from nltk.lm import KneserNeyInterpolated
from nltk.util import everygrams

from lmbench.compose import compose
from lmbench.corpora import load_corpus
from lmbench.models.base import FitSettings
from lmbench.models.ngram import Ngram


def lines_of(corpus, split: str, count: int) -> list[np.ndarray]:
    """The first ``count`` lines of a split, each ending with its ``<eos>``."""
    ids = corpus.splits[split]
    bounds = np.append(corpus.line_starts(split), len(ids))[: count + 1]
    return [ids[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--train-lines", type=int, default=42068, help="default: all of PTB train")
    parser.add_argument("--test-lines", type=int, default=10)
    args = parser.parse_args()
    n = args.order

    cfg = compose("model=ngram", "corpus=ptb", f"model.order={n}", "protocol=sentence")
    corpus = load_corpus(cfg.corpus)
    train = lines_of(corpus, "train", args.train_lines)
    test = lines_of(corpus, "test", args.test_lines)
    corpus.splits["train"] = np.concatenate(train)
    tokens = np.concatenate(test)
    starts = np.cumsum([0] + [len(line) for line in test[:-1]])
    words = [w if w != "<eos>" else "</s>" for w in corpus.vocab.itos]
    print(f"PTB: {len(corpus.train):,} training tokens, {len(tokens)} scored tokens "
          f"({len(test)} test lines), order {n}")

    start = time.perf_counter()
    model = Ngram(cfg.model, corpus)
    model.fit(corpus, FitSettings.from_config(cfg))
    ours_fit = time.perf_counter() - start
    repeats, start = 0, time.perf_counter()
    while time.perf_counter() - start < 1.0:
        ours = model.log_probs(tokens, starts, 1)
        repeats += 1
    ours_ms = (time.perf_counter() - start) / repeats / len(tokens) * 1e3

    start = time.perf_counter()
    nltk_lm = KneserNeyInterpolated(n)
    padded = [["<s>"] * (n - 1) + [words[t] for t in line] for line in train]
    nltk_lm.fit((everygrams(line, max_len=n) for line in padded), (w for line in padded for w in line))
    nltk_fit = time.perf_counter() - start
    start, theirs = time.perf_counter(), []
    for line in test:
        history = ["<s>"] * (n - 1) + [words[t] for t in line]
        theirs += [nltk_lm.logscore(history[i], history[i - n + 1:i]) * math.log(2)
                   for i in range(n - 1, len(history))]
    nltk_ms = (time.perf_counter() - start) / len(tokens) * 1e3

    print(f"{'':<8} {'fit s':>8} {'ms/token':>10} {'perplexity':>11}")
    for name, fit, ms, log_p in (("lmbench", ours_fit, ours_ms, ours), ("nltk", nltk_fit, nltk_ms, theirs)):
        print(f"{name:<8} {fit:8.2f} {ms:10.5f} {math.exp(-np.mean(log_p)):11.3f}")
    print(f"lmbench scores a token {nltk_ms / ours_ms:,.0f}x faster than nltk.lm "
          f"(fits {nltk_fit / ours_fit:,.0f}x faster)")


if __name__ == "__main__":
    main()
