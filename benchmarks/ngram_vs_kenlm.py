"""lmbench's n-gram against KenLM, whole commands side by side: wall time and peak RSS of estimating an
order-5 modified Kneser-Ney model, and scoring speed, on PTB and on PTB repeated with shuffled lines.

    LMBENCH_MIRROR=../shared/corpora python benchmarks/ngram_vs_kenlm.py              # PTB, x16
    python benchmarks/ngram_vs_kenlm.py --copies 1 16 108 --rounds 3                   # up to ~100M

KenLM's side runs its ``lmplz -o 5`` (and ``build_binary`` + ``query`` for scoring) when they are on
PATH; build them from https://github.com/kpu/kenlm (cmake, needs Boost) and put the binaries on PATH.
Without them lmbench's figures are printed alone. lmbench runs as ``python -m lmbench model=ngram
corpus=file protocol=sentence`` (KenLM's convention) on the same files. Rounds alternate lmbench,
KenLM, lmbench, KenLM ... so a busy machine slows both alike; min and median are printed, and the
ratio of the medians (lmbench / KenLM: below 1 is faster or smaller).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], **kwargs) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command, from its own rusage."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status:
        raise SystemExit(f"{command[0]} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def ptb_files() -> dict[str, Path]:
    """PTB's three files from the corpus cache or mirror (prepared by lmbench on first use)."""
    from hydra import compose, initialize_config_dir

    from lmbench import config, models
    from lmbench.corpora.fetch import fetch

    models.load_all()
    config.register_all()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(config_name="config", overrides=["corpus=ptb"])
    return {split: fetch(cfg.corpus.files[split], "ptb") for split in ("train", "valid", "test")}


def make_corpus(folder: Path, ptb: dict[str, Path], copies: int) -> Path:
    """train.txt = PTB train ``copies`` times with its lines shuffled (seed 0); PTB's valid and test."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ptb["train"].read_text().splitlines(keepends=True)
    with open(folder / "train.txt", "w") as out:
        rng = random.Random(0)
        for _ in range(copies):
            rng.shuffle(lines)
            out.writelines(lines)
    for split in ("valid", "test"):
        shutil.copy(ptb[split], folder / f"{split}.txt")
    return folder


def lmbench_round(corpus: Path, work: Path) -> dict:
    run = work / f"run{time.monotonic_ns()}"
    command = [sys.executable, "-m", "lmbench", "model=ngram", "model.order=5", "corpus=file",
               f"corpus.path={corpus}", "corpus.level=word", "protocol=sentence",
               "eval.bootstrap_samples=0", f"results_dir={work / 'results'}", f"hydra.run.dir={run}"]
    seconds, rss = timed(command, env={**os.environ, "LMBENCH_CACHE": str(work / "cache")})
    record = json.loads((run / "record.json").read_text())
    test = record["metrics"]["test"]
    return {"seconds": seconds, "rss": rss, "fit": record["timing"]["train_seconds"],
            "score_tokens_per_s": test["eval_tokens_per_s"], "ppl": test["ppl"]}


def kenlm_round(corpus: Path, work: Path) -> dict:
    arpa, binary = work / "kenlm.arpa", work / "kenlm.probing"
    with open(corpus / "train.txt") as text:
        seconds, rss = timed(["lmplz", "-o", "5", "--arpa", str(arpa), "-S", "50%", "-T", str(work)],
                             stdin=text)
    subprocess.run(["build_binary", "probing", str(arpa), str(binary)], check=True, capture_output=True)
    test = (corpus / "test.txt").read_text()
    tokens = sum(len(line.split()) + 1 for line in test.splitlines())  # words and </s>
    start = time.perf_counter()
    out = subprocess.run(["query", "-v", "summary", str(binary)], input=test, text=True, check=True,
                         capture_output=True).stdout
    score = time.perf_counter() - start
    ppl = next(float(line.split()[-1]) for line in out.splitlines() if "including OOVs" in line)
    return {"seconds": seconds, "rss": rss, "score_tokens_per_s": tokens / score, "ppl": ppl}


def summary(values: list[float], unit: str) -> str:
    return f"min {min(values):10.2f} median {statistics.median(values):10.2f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 16],
                        help="sizes: PTB train repeated this many times (16: ~15M tokens, 108: ~100M)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    kenlm = all(shutil.which(b) for b in ("lmplz", "build_binary", "query"))
    if not kenlm:
        print("KenLM's lmplz / build_binary / query are not on PATH: printing lmbench alone (build "
              "https://github.com/kpu/kenlm and put its bin/ on PATH for the comparison)")
    ptb = ptb_files()
    with tempfile.TemporaryDirectory() as tmp:
        for copies in args.copies:
            corpus = make_corpus(Path(tmp) / f"x{copies}", ptb, copies)
            ours, theirs = [], []
            for _ in range(args.rounds):
                ours.append(lmbench_round(corpus, Path(tmp) / f"x{copies}" / "work"))
                if kenlm:
                    theirs.append(kenlm_round(corpus, Path(tmp) / f"x{copies}"))
            print(f"\nPTB train x{copies} ({copies * 887_521:,} training words + </s>), order 5, "
                  f"{args.rounds} rounds; test ppl lmbench {ours[-1]['ppl']:.4f}"
                  + (f", KenLM {theirs[-1]['ppl']:.4f}" if theirs else ""))
            rows = [("whole command", "seconds", "s"), ("peak RSS", "rss", "MB"),
                    ("test scoring", "score_tokens_per_s", "tokens/s")]
            print(f"  {'fit alone':<14} lmbench {summary([o['fit'] for o in ours], 's')}")
            for label, key, unit in rows:
                line = f"  {label:<14} lmbench {summary([o[key] for o in ours], unit)}"
                if theirs:
                    median = statistics.median
                    ratio = median(o[key] for o in ours) / median(t[key] for t in theirs)
                    line += f" | KenLM {summary([t[key] for t in theirs], unit)} | ratio {ratio:.2f}"
                print(line, flush=True)


if __name__ == "__main__":
    main()
