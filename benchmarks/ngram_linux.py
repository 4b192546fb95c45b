"""lmbench's n-gram against KenLM on real text whose n-grams keep growing: word-level C source from
Debian's linux-source-6.1, perplexities (valid and test) and times side by side, per order.

    apt-get install linux-source-6.1     # /usr/src/linux-source-6.1.tar.xz, 139 MB
    python benchmarks/ngram_linux.py --tokens 10000000 --orders 3 5
    python benchmarks/ngram_linux.py --tokens 10000000 100000000 --orders 3 5 --work /tmp/linux

The corpus: every ``.c`` and ``.h`` file of the tarball in archive order, each line split on
whitespace and rejoined by single spaces (empty lines dropped); a file goes to valid or test when
the crc32 of its path is 0 or 1 mod 100, to train otherwise, until train holds ``--tokens`` words.
Words seen in train fewer than ``--min-count`` times (default 1: every training word is in the
vocabulary), words never seen in train, and the words KenLM reserves are spelled ``UNK`` in every
split; both tools score a ``UNK`` that training never saw as their own zero-count ``<unk>``. KenLM's
side is ``lmplz -o N -S --kenlm-memory`` + ``build_binary probing`` + ``query`` on the same files
(``lmplz``, ``build_binary`` and ``query`` on PATH: build https://github.com/kpu/kenlm); lmbench's is
``python -m lmbench model=ngram corpus=file corpus.level=word protocol=sentence`` (KenLM's
convention). Both sides run one after the other on an otherwise idle machine; the ratio is
lmbench / KenLM (below 1: faster or smaller). The first lmbench run per size also prepares the corpus
(timed apart).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path

from ngram_vs_kenlm import lmbench_round, timed

from lmbench.runs.provenance import cpu_name

TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
RESERVED = {"<s>", "</s>", "<unk>", "<eos>", "UNK"}  # KenLM's and lmbench's own tokens


def source_lines(tarball: Path):
    """(split, line) for every non-empty line of the tarball's C files, whitespace normalised."""
    with tarfile.open(tarball, "r|xz") as archive:
        for member in archive:
            if not (member.isfile() and member.name.endswith((".c", ".h"))):
                continue
            split = {0: "valid", 1: "test"}.get(zlib.crc32(member.name.encode()) % 100, "train")
            for raw in archive.extractfile(member).read().decode("utf-8", "replace").splitlines():
                words = raw.split()
                if words:
                    yield split, words


def linux_corpus(tarball: Path, folder: Path, tokens: int, min_count: int) -> dict:
    """Write train/valid/test.txt of the closed-vocabulary corpus into ``folder``; return its sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    counts, sizes = collections.Counter(), collections.Counter()
    raw = {split: open(folder / f"{split}.raw", "w") for split in ("train", "valid", "test")}
    for split, words in source_lines(tarball):
        if split == "train":
            if sizes["train"] >= tokens:
                break
            counts.update(words)
        sizes[split] += len(words)
        raw[split].write(" ".join(words) + "\n")
    for f in raw.values():
        f.close()
    vocab = {w for w, c in counts.items() if c >= min_count} - RESERVED
    for split in raw:
        with open(folder / f"{split}.raw") as text, open(folder / f"{split}.txt", "w") as out:
            for line in text:
                out.write(" ".join(w if w in vocab else "UNK" for w in line.split()) + "\n")
        (folder / f"{split}.raw").unlink()
    return {**sizes, "types": len(vocab) + 1}


def kenlm_round(corpus: Path, work: Path, order: int, memory: str) -> dict:
    """lmplz's wall time and peak RSS, and query's perplexity (including OOVs) of valid and test."""
    arpa, binary = work / f"kenlm{order}.arpa", work / f"kenlm{order}.probing"
    with open(corpus / "train.txt") as text:
        seconds, rss = timed(["lmplz", "-o", str(order), "-S", memory, "-T", str(work), "--arpa", str(arpa)],
                             stdin=text)
    subprocess.run(["build_binary", "probing", str(arpa), str(binary)], check=True, capture_output=True)
    arpa.unlink()
    ppl = {}
    for split in ("valid", "test"):
        with open(corpus / f"{split}.txt") as text:
            out = subprocess.run(["query", "-v", "summary", str(binary)], stdin=text, check=True,
                                 capture_output=True, text=True).stdout
        ppl[split] = float(out.split("Perplexity including OOVs:")[1].split()[0])
    binary.unlink()
    return {"seconds": seconds, "rss": rss, "ppl": ppl}


def compare(corpus: Path, work: Path, order: int, memory: str, kenlm: bool) -> None:
    ours = lmbench_round(work, f"model.order={order}", f"corpus.path={corpus}", "corpus.level=word",
                         "protocol=sentence")
    theirs = kenlm_round(corpus, work, order, memory) if kenlm else None
    for split in ("valid", "test"):
        line = f"  order {order} {split:<5} ppl lmbench {ours['ppl_' + split]:12.6f}"
        if theirs:
            diff = ours["ppl_" + split] / theirs["ppl"][split] - 1
            line += f" | KenLM {theirs['ppl'][split]:12.6f} | relative difference {diff:+.1e}"
        print(line)
    line = (f"  order {order} whole command lmbench {ours['seconds']:7.1f} s (fit {ours['fit']:6.1f} s), "
            f"{ours['rss']:7.0f} MB peak")
    if theirs:
        line += (f" | lmplz {theirs['seconds']:7.1f} s, {theirs['rss']:7.0f} MB peak | ratio "
                 f"{ours['seconds'] / theirs['seconds']:.2f} s, {ours['rss'] / theirs['rss']:.2f} RSS")
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[10_000_000], help="training words")
    parser.add_argument("--orders", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--min-count", type=int, default=1, help="rarer training words become UNK")
    parser.add_argument("--kenlm-memory", default="2G", help="lmplz -S (its sorting memory)")
    parser.add_argument("--work", type=Path, help="a folder for corpora and runs (default: a temporary one)")
    args = parser.parse_args()
    if not TARBALL.exists():
        raise SystemExit(f"{TARBALL} is missing: install Debian's linux-source-6.1 (apt-get install "
                         "linux-source-6.1).")
    kenlm = all(shutil.which(b) for b in ("lmplz", "build_binary", "query"))
    if not kenlm:
        print("KenLM's lmplz / build_binary / query are not on PATH: printing lmbench alone")
    print(f"CPU: {cpu_name()}")
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        for tokens in args.tokens:
            folder = Path(tmp) / f"linux{tokens}"
            sizes = linux_corpus(TARBALL, folder / "corpus", tokens, args.min_count)
            print(f"\nLinux C source, {sizes['train']:,} training words, valid {sizes['valid']:,}, test "
                  f"{sizes['test']:,} (+ one </s> per line); {sizes['types']:,} types, UNK for words seen "
                  f"fewer than {args.min_count} times in train", flush=True)
            first = lmbench_round(folder, "model.order=1", f"corpus.path={folder / 'corpus'}",
                                  "corpus.level=word", "protocol=sentence")
            print(f"  preparing the corpus (a unigram run): {first['seconds']:.1f} s, "
                  f"{first['rss']:.0f} MB peak")
            for order in args.orders:
                compare(folder / "corpus", folder, order, args.kenlm_memory, kenlm)
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
