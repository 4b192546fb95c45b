"""``python -m lmbench.sample RUN_DIR``: generate text from any finished (or killed) run.

The model is rebuilt from the config in the run's record (or, for a killed run, Hydra's saved
config). A torch model loads the run's best checkpoint; a count-based model (n-gram, unigram) has
no checkpoint and is refitted on its corpus, which is deterministic, so it is the run's model.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from lmbench.corpora import EOS
from lmbench.errors import UserError
from lmbench.runs.rundir import RunDir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmbench.sample", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder (results/runs/...)")
    parser.add_argument("--prompt", default="", help="text the sample continues")
    parser.add_argument("--length", type=int, default=100, help="tokens to generate")
    parser.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.length < 0 or not (math.isfinite(args.temperature) and args.temperature >= 0) or (
                args.top_k is not None and args.top_k < 1):
            raise UserError(f"--length={args.length}, --temperature={args.temperature}, --top-k="
                            f"{args.top_k}: the length and temperature must be finite numbers >= 0 and "
                            "--top-k at least 1 (above the vocabulary it keeps every token).")
        if args.seed < 0:
            raise UserError(f"--seed={args.seed} is out of range: it must be an integer >= 0 (numpy's "
                            "generators take no negative seed).")
        run = RunDir.open(args.run_dir)
        model, corpus = run.model(), run.corpus
        tokens = list(args.prompt)  # a char corpus takes the prompt as is
        if corpus.level == "word":  # a word corpus splits it on whitespace, a newline ending a line
            tokens = [w for line in args.prompt.split("\n") for w in line.split() + [EOS]][:-1]
        prompt = corpus.vocab.encode(tokens)
        ids = model.sample(args.length, prompt, args.temperature, args.top_k,
                           np.random.default_rng(args.seed))
    except UserError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
    separator = "" if corpus.level == "char" or not len(prompt) else " "
    print(args.prompt + separator + corpus.detokenize(ids))


if __name__ == "__main__":
    main()
