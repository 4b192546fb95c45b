"""fp32 against bf16 training, side by side: tokens/s, their ratio, and valid perplexity after the same
number of training tokens, for every neural family on PTB.

    python benchmarks/precision.py                               # every family, 40k tokens x 2 rounds
    python benchmarks/precision.py --model lstm --tokens 80000 --rounds 3
    python benchmarks/precision.py --model lstm --epoch          # one full epoch per precision

The recurrent families train the zaremba_small configuration (2 x 200, SGD lr 20, clip 0.25, batch 20,
bptt 20, init +-0.1; lr 1 for the GRU and the RNN, which lr 20 throws off early); the FNN (Bengio's
n=5, m=60, h=50 with direct connections) and the GPT (2 x 128, context 64) train with
experiment=compare's AdamW settings. Both precisions start from the same seed and see the same
tokens; valid perplexity is scored in float32 on the whole valid split. Rounds alternate fp32, bf16,
fp32, bf16 ... so a busy machine slows both alike; the median is printed, per second of wall time
and per CPU-second (which other processes sharing the machine disturb least).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch
from omegaconf import OmegaConf

from lmbench import models
from lmbench.compose import compose
from lmbench.corpora import load_corpus
from lmbench.hardware import native_bf16
from lmbench.models.base import FitSettings

RECURRENT = ["train.optimizer=sgd", "train.lr=20", "train.schedule=step", "train.batch_size=20",
             "train.bptt=20", "train.clip=0.25", "model.layers=2", "model.emb_size=200",
             "model.hidden_size=200", "model.dropout=0", "model.init_range=0.1"]
COMPARE = ["train.optimizer=adamw", "train.lr=2e-3", "train.weight_decay=0.01", "train.batch_size=32",
           "train.bptt=35", "train.clip=1"]
# lr 20 sends the GRU and the vanilla RNN to perplexities of 10^4-10^6 early on
STABLE = ["train.lr=1" if o == "train.lr=20" else o for o in RECURRENT]
SETTINGS = {"lstm": [*RECURRENT, "model.forget_bias=null"], "gru": STABLE, "rnn": STABLE, "fnn": COMPARE,
            "transformer": COMPARE}


def train_once(cfg, corpus, precision: str, tokens: int | None) -> dict:
    """Train a fresh model (seed 0) on ``tokens`` tokens (None: one epoch); tokens/s and valid ppl."""
    torch.manual_seed(0)
    model = models.build(cfg.model.name, cfg.model, corpus)
    run_cfg = OmegaConf.merge(cfg, {"train": {"precision": precision, "max_epochs": 1, "max_tokens": tokens,
                                              "patience": 0}})
    with tempfile.TemporaryDirectory() as run_dir:
        stats = model.fit(corpus, FitSettings.from_config(run_cfg, run_dir))
    return {"tokens_per_s": stats["train_tokens_per_s"], "valid_ppl": stats["valid_ppl_history"][-1],
            "tokens": stats["tokens"], "tokens_per_cpu_s": stats["tokens"] / stats["train_cpu_seconds"]}


def compare(family: str, tokens: int | None, rounds: int, threads: int) -> dict:
    overrides = [f"model={family}", "corpus=ptb", f"train.threads={threads}", *SETTINGS[family]]
    cfg = compose(*overrides)
    corpus = load_corpus(cfg.corpus)
    runs = {"fp32": [], "bf16": []}
    for _ in range(rounds):
        for precision in runs:
            runs[precision].append(train_once(cfg, corpus, precision, tokens))
    speed = {p: statistics.median(r["tokens_per_s"] for r in rs) for p, rs in runs.items()}
    cpu = {p: statistics.median(r["tokens_per_cpu_s"] for r in rs) for p, rs in runs.items()}
    ppl = {p: rs[-1]["valid_ppl"] for p, rs in runs.items()}
    return {"family": family, "tokens": runs["fp32"][-1]["tokens"], "speed": speed, "cpu": cpu, "ppl": ppl,
            "all": {p: [round(r["tokens_per_s"]) for r in rs] for p, rs in runs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all", choices=["all", *SETTINGS])
    parser.add_argument("--tokens", type=int, default=40_000, help="training tokens per run")
    parser.add_argument("--epoch", action="store_true", help="train one full epoch instead of --tokens")
    parser.add_argument("--rounds", type=int, default=2, help="fp32/bf16 pairs, interleaved")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not native_bf16(torch.device("cpu")):
        print("note: this CPU has no native bf16 (AMX / AVX512-BF16); bf16 will be slow here")
    families = list(SETTINGS) if args.model == "all" else [args.model]
    print(f"PTB, {args.threads} thread(s), {'one epoch' if args.epoch else f'{args.tokens} tokens'} per "
          f"run, {args.rounds} interleaved fp32/bf16 rounds. Median training tokens per second of wall "
          "time (each round's in brackets) and per CPU-second (what a busy machine disturbs least); "
          "valid perplexity (float32) after the same tokens.")
    print(f"{'model':<12}{'fp32 tok/s':>11}{'bf16 tok/s':>11}{'ratio':>7}{'fp32 /cpu-s':>12}"
          f"{'bf16 /cpu-s':>12}{'ratio':>7}{'tokens':>9}{'fp32 ppl':>10}{'bf16 ppl':>10}{'diff':>8}")
    for family in families:
        r = compare(family, None if args.epoch else args.tokens, args.rounds, args.threads)
        s, c, p = r["speed"], r["cpu"], r["ppl"]
        print(f"{family:<12}{s['fp32']:>11.0f}{s['bf16']:>11.0f}{s['bf16'] / s['fp32']:>6.2f}x"
              f"{c['fp32']:>12.0f}{c['bf16']:>12.0f}{c['bf16'] / c['fp32']:>6.2f}x"
              f"{r['tokens']:>9}{p['fp32']:>10.2f}{p['bf16']:>10.2f}{p['bf16'] / p['fp32'] - 1:>+8.2%}"
              f"   fp32 {r['all']['fp32']} bf16 {r['all']['bf16']}", flush=True)


if __name__ == "__main__":
    main()
