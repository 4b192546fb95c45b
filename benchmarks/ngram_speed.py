"""Build and score PTB with lmbench's n-gram; print wall seconds and peak RSS per step.

    LMBENCH_MIRROR=../shared/corpora python benchmarks/ngram_speed.py [--order 5] \
        [--smoothing kn|katz|add_k] [--protocol sentence|stream] [--repeat 3]

Peak RSS is the process's high-water mark after each step (it never goes down), read from
``getrusage``; the corpus is prepared once beforehand so its first-use cost is not counted.
Targets (2 cores): 5-gram kn build <= 5 s and <= 1 GB peak RSS, test scoring <= 2 s.
"""

from __future__ import annotations

import argparse
import math
import resource
import time

from lmbench.compose import compose
from lmbench.corpora import load_corpus
from lmbench.evaluate import resets
from lmbench.models.base import FitSettings
from lmbench.models.ngram import Ngram


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step(name: str, fn, repeat: int = 1):
    """Run ``fn`` ``repeat`` times; print the best wall time and the peak RSS so far."""
    best, result = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    print(f"{name:<22} {best:8.3f} s   peak RSS {peak_mb():7.0f} MB")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--smoothing", default="kn", choices=["kn", "katz", "add_k"])
    parser.add_argument("--protocol", default="sentence", choices=["sentence", "stream"])
    parser.add_argument("--repeat", type=int, default=3, help="timing runs per step (best is shown)")
    args = parser.parse_args()

    cfg = compose("model=ngram", "corpus=ptb", f"model.order={args.order}",
                      f"model.smoothing={args.smoothing}", f"protocol={args.protocol}")
    load_corpus(cfg.corpus)  # prepare and cache once
    print(f"PTB, order {args.order}, {args.smoothing}, {args.protocol} protocol")
    print(f"{'start':<22} {'':>8}     peak RSS {peak_mb():7.0f} MB")
    corpus = step("load corpus", lambda: load_corpus(cfg.corpus))
    model = Ngram(cfg.model, corpus)
    step("build (fit)", lambda: model.fit(corpus, FitSettings.from_config(cfg)), args.repeat)
    for split in ("test", "valid"):
        starts = resets(corpus, split, args.protocol)
        tokens = corpus.splits[split]
        log_p = step(f"score {split} ({len(tokens):,})",
                     lambda t=tokens, s=starts: model.log_probs(t, s, 1), args.repeat)
        print(f"{'':<22} perplexity {math.exp(-log_p.mean()):.6f}")
    print(f"model: {model.num_parameters():,} parameters, {model.size_bytes() / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
