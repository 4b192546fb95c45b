"""Training throughput: lmbench's trainer beside a plain PyTorch loop, printed side by side.

    python benchmarks/train_throughput.py                      # zaremba_small LSTM on PTB
    python benchmarks/train_throughput.py --model gru --tokens 40000 --threads 1
    python benchmarks/train_throughput.py --memory --tokens 20000   # peak RSS, each side in its own process

Both sides train the same network sizes on the same PTB stream with the same batch, bptt, optimizer
and clipping; the plain loop is pytorch/examples' word_language_model inner loop over
``nn.RNN/LSTM/GRU`` (for ``--model fnn`` or ``transformer`` only lmbench's figure is printed).
Rounds alternate between the two so a busy machine slows both alike; medians are reported. With
``--memory`` every round of each side runs in a fresh process (peak RSS is a per-process high-water
mark), after the same imports and the same corpus loading, and the peaks are compared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

import torch
from omegaconf import OmegaConf
from torch import nn

from lmbench import models
from lmbench.compose import compose
from lmbench.corpora import load_corpus
from lmbench.models.base import FitSettings
from lmbench.runs import provenance
from lmbench.train import batchify

# conf/experiment/zaremba_small.yaml's settings, applicable to every recurrent cell
ZAREMBA_TRAIN = ["train.optimizer=sgd", "train.lr=1", "train.batch_size=20", "train.bptt=20", "train.clip=5"]
ZAREMBA_MODEL = ["model.layers=2", "model.emb_size=200", "model.hidden_size=200", "model.dropout=0",
                 "model.init_range=0.1"]


class PlainRNNModel(nn.Module):
    """word_language_model's RNNModel: embedding -> nn.LSTM/GRU/RNN -> linear decoder."""

    def __init__(self, cell, vocab, emb, hidden, layers):
        super().__init__()
        self.encoder = nn.Embedding(vocab, emb)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](emb, hidden, layers)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x, hidden):
        output, hidden = self.rnn(self.encoder(x), hidden)
        return self.decoder(output), hidden


def plain_tokens_per_s(cfg, corpus, tokens: int) -> float:
    m, tc = cfg.model, cfg.train
    model = PlainRNNModel(cfg.model.name, len(corpus.vocab), m.emb_size, m.hidden_size, m.layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=tc.lr)
    data = batchify(corpus.train, tc.batch_size, "cpu")
    hidden, seen, start = None, 0, time.perf_counter()
    for i in range(0, data.size(0) - 1, tc.bptt):
        x, y = data[i:i + tc.bptt], data[i + 1:i + 1 + tc.bptt]
        if hidden is not None:
            hidden = tuple(h.detach() for h in hidden) if isinstance(hidden, tuple) else hidden.detach()
        output, hidden = model(x, hidden)
        loss = nn.functional.cross_entropy(output.view(-1, output.size(-1)), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), tc.clip)
        optimizer.step()
        seen += y.numel()
        if seen >= tokens:
            break
    return seen / (time.perf_counter() - start)


def lmbench_tokens_per_s(cfg, corpus, tokens: int) -> float:
    model = models.build(cfg.model.name, cfg.model, corpus)
    run_cfg = OmegaConf.merge(cfg, {"train": {"max_tokens": tokens, "max_epochs": 1}})
    with tempfile.TemporaryDirectory() as run_dir:
        return model.fit(corpus, FitSettings.from_config(run_cfg, run_dir))["train_tokens_per_s"]


def setup(args):
    """The benchmark's config and PTB (with a short valid split, for a cheap validation)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = [f"model={args.model}", "corpus=ptb", f"train.threads={args.threads}",
                 f"train.precision={args.precision}", *ZAREMBA_TRAIN]
    if args.model in ("rnn", "lstm", "gru"):
        overrides += ZAREMBA_MODEL
    cfg = compose(*overrides)
    corpus = load_corpus(cfg.corpus)
    return cfg, replace(corpus, splits={**corpus.splits, "valid": corpus.valid[:2000]})


def one_side(args) -> None:
    """``--side``: train one side once in this process and print its speed and peak RSS as JSON."""
    cfg, corpus = setup(args)
    train = plain_tokens_per_s if args.side == "plain" else lmbench_tokens_per_s
    speed = train(cfg, corpus, args.tokens)
    print(json.dumps({"tokens_per_s": speed, "peak_rss_mb": provenance.peak_rss_mb()}))


def memory(args) -> None:
    """Peak RSS of each side, every round in a fresh process, sides alternating."""
    peaks = {"plain": [], "lmbench": []}
    for _ in range(args.rounds):
        for side in peaks:
            done = subprocess.run([sys.executable, __file__, "--side", side, "--model", args.model,
                                   "--tokens", str(args.tokens), "--threads", str(args.threads),
                                   "--precision", args.precision], capture_output=True, text=True, check=True)
            peaks[side].append(json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"])
    plain, ours = statistics.median(peaks["plain"]), statistics.median(peaks["lmbench"])
    print(f"{args.model} on PTB, {args.tokens} tokens, precision={args.precision}, peak RSS per process "
          f"(median of {args.rounds}; each side's figures {peaks})")
    print(f"  lmbench trainer : {ours:8.0f} MB")
    print(f"  plain PyTorch   : {plain:8.0f} MB")
    print(f"  ratio           : {ours / plain:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lstm", choices=["rnn", "lstm", "gru", "fnn", "transformer"])
    parser.add_argument("--tokens", type=int, default=60_000, help="training tokens per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps the default")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="lmbench's train.precision (the plain loop is fp32)")
    parser.add_argument("--memory", action="store_true", help="compare peak RSS instead of speed")
    parser.add_argument("--side", choices=["plain", "lmbench"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return one_side(args)
    if args.memory:
        if args.model not in ("rnn", "lstm", "gru"):
            parser.error("--memory compares against the plain loop, which exists for rnn, lstm and gru")
        return memory(args)
    cfg, corpus = setup(args)
    ours, plain = [], []
    for _ in range(args.rounds):
        if args.model in ("rnn", "lstm", "gru"):
            plain.append(plain_tokens_per_s(cfg, corpus, args.tokens))
        ours.append(lmbench_tokens_per_s(cfg, corpus, args.tokens))
    print(f"{args.model} on PTB, batch {cfg.train.batch_size}, bptt {cfg.train.bptt}, "
          f"{torch.get_num_threads()} threads, {args.tokens} tokens x {args.rounds} rounds")
    print(f"  lmbench trainer : {statistics.median(ours):8.0f} tokens/s")
    if plain:
        print(f"  plain PyTorch   : {statistics.median(plain):8.0f} tokens/s")
        print(f"  ratio           : {statistics.median(ours) / statistics.median(plain):8.2f}")


if __name__ == "__main__":
    main()
