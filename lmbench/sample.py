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
from omegaconf import OmegaConf

from lmbench import checkpoint, models
from lmbench.corpora import load_corpus
from lmbench.errors import UserError
from lmbench.models.base import FitSettings
from lmbench.models.neural import NeuralModel
from lmbench.records import RECORD_NAME, read_record


def run_config(run_dir: Path):
    record, hydra_config = run_dir / RECORD_NAME, run_dir / ".hydra" / "config.yaml"
    if record.is_file():
        return OmegaConf.create(read_record(record)["config"])
    if hydra_config.is_file():
        try:
            return OmegaConf.load(hydra_config)
        except Exception as exc:  # yaml and OmegaConf errors alike
            raise UserError(f"{hydra_config} is not a readable config ({type(exc).__name__}).") from None
    raise UserError(f"{run_dir} holds no {RECORD_NAME} or .hydra/config.yaml: not an lmbench run folder.")


def load_model(run_dir: Path):
    """The run's model, ready to score or sample, and its corpus."""
    cfg = run_config(run_dir)
    corpus = load_corpus(cfg.corpus)
    record = run_dir / RECORD_NAME
    if record.is_file() and read_record(record)["corpus"].get("fingerprint") != corpus.fingerprint:
        raise UserError(f"The corpus of the run in {run_dir} has changed since it ran (another "
                        "fingerprint: edited files?); restore the corpus files the run used.")
    model = models.build(cfg.model.name, cfg.model, corpus)
    if isinstance(model, NeuralModel):
        best = run_dir / checkpoint.BEST
        path = best if best.is_file() else run_dir / checkpoint.CHECKPOINT
        checkpoint.load_weights(model.net, path, corpus)
    else:
        model.fit(corpus, FitSettings.from_config(cfg))
    return model, corpus


def encode_prompt(corpus, text: str) -> np.ndarray:
    """Word corpora split the prompt on whitespace (a newline ends a line); char corpora take it as is."""
    if corpus.level == "char":
        return corpus.vocab.encode(list(text))
    words = [w for line in text.split("\n") for w in line.split() + ["<eos>"]][:-1]
    return corpus.vocab.encode(words)


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
        model, corpus = load_model(args.run_dir)
        prompt = encode_prompt(corpus, args.prompt)
        ids = model.sample(args.length, prompt, args.temperature, args.top_k,
                           np.random.default_rng(args.seed))
    except UserError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
    separator = "" if corpus.level == "char" or not len(prompt) else " "
    print(args.prompt + separator + corpus.detokenize(ids))


if __name__ == "__main__":
    main()
