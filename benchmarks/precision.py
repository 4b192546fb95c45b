"""fp32 against bf16 training, side by side: tokens/s, their ratio, and valid perplexity after the same
number of training tokens, for every neural family on PTB; with ``--auto``, ``train.precision=auto``
beside them.

    python benchmarks/precision.py                               # every family, 40k tokens x 2 rounds
    python benchmarks/precision.py --model lstm --tokens 80000 --rounds 3
    python benchmarks/precision.py --model lstm --epoch          # one full epoch per precision
    python benchmarks/precision.py --auto                        # fp32, bf16 and auto
    python benchmarks/precision.py --auto --default              # ... at each family's defaults

The recurrent families train the zaremba_small configuration (2 x 200, SGD lr 20, clip 0.25, batch 20,
bptt 20, init +-0.1; lr 1 for the GRU and the RNN, which lr 20 throws off early); the FNN (Bengio's
n=5, m=60, h=50 with direct connections) and the GPT (2 x 128, context 64) train with
experiment=compare's AdamW settings. Both precisions start from the same seed and see the same
tokens; valid perplexity is scored in float32 on the whole valid split. Rounds alternate fp32, bf16,
fp32, bf16 ... (after a one-step run of each, so that no round pays a precision's first-use costs) so
a busy machine slows both alike; the median is printed, per second of wall time
and per CPU-second (which other processes sharing the machine disturb least).

``--auto`` adds a third run per round, ``train.precision=auto``, and prints per family tokens per
CPU-second in fp32, bf16 and auto (the best round's), what auto chose, auto / the better of the two
(goal >= 0.97; auto's tokens/s are its training's, and its measurement's cost is printed beside them as
a share of the training time), the fixed-precision runs' speed in the precision auto chose over the
better one (the same question without the noise of timing auto's identical work separately) and,
for the GRU, its tokens/s over the LSTM's in auto (goal >= 0.9). ``--default`` trains each family's
defaults (128 units) on the default synthetic corpus instead, the small models for which bf16 can be
the slower precision.
"""

from __future__ import annotations

import argparse
import math
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
AUTO_GOAL, GRU_GOAL = 0.97, 0.9  # auto / the better precision; GRU / LSTM tokens/s, both in auto


def train_once(cfg, corpus, precision: str, tokens: int | None) -> dict:
    """Train a fresh model (seed 0) on ``tokens`` tokens (None: one epoch); tokens/s, valid ppl and the
    precision it trained in (with the measurement behind an ``auto`` choice)."""
    torch.manual_seed(0)
    model = models.build(cfg.model.name, cfg.model, corpus)
    run_cfg = OmegaConf.merge(cfg, {"train": {"precision": precision, "max_epochs": 1, "max_tokens": tokens,
                                              "patience": 0}})
    with tempfile.TemporaryDirectory() as run_dir:
        stats = model.fit(corpus, FitSettings.from_config(run_cfg, run_dir))
    return {"tokens_per_s": stats["train_tokens_per_s"], "valid_ppl": stats["valid_ppl_history"][-1],
            "tokens": stats["tokens"], "tokens_per_cpu_s": stats["tokens"] / stats["train_cpu_seconds"],
            "precision": stats["precision"], "choice": stats["precision_choice"],
            "train_seconds": stats["train_seconds"]}


def compare(family: str, tokens: int | None, rounds: int, threads: int, precisions=("fp32", "bf16"),
            default: bool = False) -> dict:
    """``rounds`` interleaved runs per precision: median tokens/s (wall and CPU), last valid ppl, and
    the runs themselves; on PTB with SETTINGS, or (``default``) the family's defaults."""
    cfg = compose(f"model={family}", f"train.threads={threads}",
                  *([] if default else ["corpus=ptb", *SETTINGS[family]]))
    corpus = load_corpus(cfg.corpus)
    runs = {precision: [] for precision in precisions}
    for precision in precisions:  # one step each first, so no round pays a precision's first-use costs
        train_once(cfg, corpus, precision, 1)
    for _ in range(rounds):
        for precision in runs:
            runs[precision].append(train_once(cfg, corpus, precision, tokens))
    speed = {p: statistics.median(r["tokens_per_s"] for r in rs) for p, rs in runs.items()}
    cpu = {p: statistics.median(r["tokens_per_cpu_s"] for r in rs) for p, rs in runs.items()}
    ppl = {p: rs[-1]["valid_ppl"] for p, rs in runs.items()}
    return {"family": family, "tokens": runs["fp32"][-1]["tokens"], "speed": speed, "cpu": cpu, "ppl": ppl,
            "all": {p: [round(r["tokens_per_s"]) for r in rs] for p, rs in runs.items()}, "runs": runs}


def print_auto(families: list[str], tokens: int | None, rounds: int, threads: int, default: bool) -> None:
    """fp32, bf16 and auto side by side per family (the best round's tokens per CPU-second: the least
    disturbed by other processes), auto / the better of the two, and the GRU against the LSTM in auto."""
    print(f"{'model':<12}{'fp32':>8}{'bf16':>8}{'auto':>8}  chose{'auto/best':>11}{'chosen/best':>13}"
          f"{'measured':>10}   auto's measurements: bf16 speed / fp32's")
    auto = {}
    for family in families:
        runs = compare(family, tokens, rounds, threads, ("fp32", "bf16", "auto"), default)["runs"]
        c = {p: max(r["tokens_per_cpu_s"] for r in rs) for p, rs in runs.items()}
        auto[family], best = c["auto"], max(c["fp32"], c["bf16"])
        autos = runs["auto"]
        chosen = [a["precision"] for a in autos]
        # without native bf16 auto is fp32 unmeasured: no cost, no ratio
        cost = statistics.mean(a["choice"].get("measure_seconds", 0) / a["train_seconds"] for a in autos)
        ratios = [round(a["choice"].get("ratio", math.nan), 2) for a in autos]
        print(f"{family:<12}{c['fp32']:>8.0f}{c['bf16']:>8.0f}{c['auto']:>8.0f}  {chosen[-1]:<5}"
              f"{c['auto'] / best:>10.2f}{'' if c['auto'] / best >= AUTO_GOAL else '!':1}"
              f"{statistics.mean(c[p] for p in chosen) / best:>13.2f}{cost:>10.1%}   {ratios} chose {chosen}",
              flush=True)
    if {"gru", "lstm"} <= auto.keys():
        print(f"GRU / LSTM in auto: {auto['gru'] / auto['lstm']:.2f} (goal >= {GRU_GOAL}); "
              f"goal auto/best >= {AUTO_GOAL} ('!' marks a miss)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all", choices=["all", *SETTINGS])
    parser.add_argument("--tokens", type=int, default=40_000, help="training tokens per run")
    parser.add_argument("--epoch", action="store_true", help="train one full epoch instead of --tokens")
    parser.add_argument("--rounds", type=int, default=2, help="fp32/bf16 pairs, interleaved")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--auto", action="store_true", help="add train.precision=auto beside fp32 and bf16")
    parser.add_argument("--default", action="store_true",
                        help="with --auto: each family's defaults on the synthetic corpus, not PTB")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not native_bf16(torch.device("cpu")):
        print("note: this CPU has no native bf16 (AMX / AVX512-BF16); bf16 will be slow here")
    families = list(SETTINGS) if args.model == "all" else [args.model]
    tokens = None if args.epoch else args.tokens
    per_run = "one epoch" if args.epoch else f"{tokens} tokens"
    if args.auto:
        corpus = "defaults, synthetic corpus" if args.default else "PTB"
        print(f"{corpus}, {args.threads} thread(s), {per_run} per run, {args.rounds} interleaved "
              "fp32/bf16/auto rounds. Training tokens per CPU-second, the best round's; 'chosen/best': "
              "the fixed-precision runs in the precision auto chose over the better one; 'measured': "
              "auto's measurement as a share of its training time.")
        return print_auto(families, tokens, args.rounds, args.threads, args.default)
    print(f"PTB, {args.threads} thread(s), {per_run} per "
          f"run, {args.rounds} interleaved fp32/bf16 rounds. Median training tokens per second of wall "
          "time (each round's in brackets) and per CPU-second (what a busy machine disturbs least); "
          "valid perplexity (float32) after the same tokens.")
    print(f"{'model':<12}{'fp32 tok/s':>11}{'bf16 tok/s':>11}{'ratio':>7}{'fp32 /cpu-s':>12}"
          f"{'bf16 /cpu-s':>12}{'ratio':>7}{'tokens':>9}{'fp32 ppl':>10}{'bf16 ppl':>10}{'diff':>8}")
    for family in families:
        r = compare(family, tokens, args.rounds, args.threads)
        s, c, p = r["speed"], r["cpu"], r["ppl"]
        print(f"{family:<12}{s['fp32']:>11.0f}{s['bf16']:>11.0f}{s['bf16'] / s['fp32']:>6.2f}x"
              f"{c['fp32']:>12.0f}{c['bf16']:>12.0f}{c['bf16'] / c['fp32']:>6.2f}x"
              f"{r['tokens']:>9}{p['fp32']:>10.2f}{p['bf16']:>10.2f}{p['bf16'] / p['fp32'] - 1:>+8.2%}"
              f"   fp32 {r['all']['fp32']} bf16 {r['all']['bf16']}", flush=True)


if __name__ == "__main__":
    main()
