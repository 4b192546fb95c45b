"""Exactness against KenLM: lmplz's ARPA files and query scores for a 2,000-line PTB sample, entry
by entry; kenlm.Model reading lmbench's ARPA export with the same scores; the full-PTB test
perplexities of the issue (slow)."""

from __future__ import annotations

import gzip
import math
import shutil
import subprocess

import numpy as np
import pytest
from conftest import ROOT, needs_shared

from lmbench import models
from lmbench.compose import compose
from lmbench.corpora import load_corpus
from lmbench.evaluate import evaluate, resets
from lmbench.models.base import FitSettings
from lmbench.ngram.arpa import arpa_tokens, write_arpa
from lmbench.ngram.smoothing import kneser_ney
from lmbench.ngram.tables import count, pad

REFERENCE = ROOT.parent / "shared" / "reference"
needs_reference = pytest.mark.skipif(not (REFERENCE / "ptb2k.train.txt").exists(),
                                     reason="no KenLM reference files in ../shared/reference")
# the discounts lmplz printed for these files (README of the reference folder)
LMPLZ_DISCOUNTS = {
    3: [[0.544, 1.04979, 1.58212], [0.810271, 1.22083, 1.71557], [0.912648, 1.31303, 1.58033]],
    5: [[0.544, 1.04979, 1.58212], [0.810271, 1.22083, 1.71557], [0.928511, 1.36148, 1.53361],
        [0.973916, 1.57606, 1.26274], [0.982234, 1.52783, 1.03553]],
}


@pytest.fixture
def ptb2k(tmp_path):
    """KenLM's training sample as a folder corpus; valid and test are its 300 scored lines."""
    folder = tmp_path / "ptb2k"
    folder.mkdir()
    shutil.copy(REFERENCE / "ptb2k.train.txt", folder / "train.txt")
    for split in ("valid", "test"):
        shutil.copy(REFERENCE / "ptb300.valid.txt", folder / f"{split}.txt")
    return load_corpus(compose("corpus=file", f"corpus.path={folder}", "corpus.level=word").corpus)


def fit(corpus, protocol: str = "sentence", **options):
    overrides = [f"model.{key}={value}" for key, value in options.items()]
    cfg = compose("model=ngram", f"protocol={protocol}", *overrides)
    model = models.build("ngram", cfg.model, corpus)
    return model, model.fit(corpus, FitSettings.from_config(cfg))


def read_arpa(path) -> dict[tuple[str, ...], tuple[float, float]]:
    """Every n-gram of an ARPA file: (log10 probability, log10 backoff or 0)."""
    entries = {}
    with (gzip.open if str(path).endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
        in_grams = False
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("\\"):
                in_grams = line.endswith("-grams:")
            elif in_grams and line:
                fields = line.split("\t")
                backoff = float(fields[2]) if len(fields) > 2 else 0.0
                entries[tuple(fields[1].split(" "))] = (float(fields[0]), backoff)
    return entries


@needs_reference
@pytest.mark.parametrize("order", [3, 5])
def test_arpa_export_matches_lmplz_entry_by_entry(ptb2k, order, tmp_path):
    model, stats = fit(ptb2k, order=order)
    estimates = stats["ngram"]["estimates"]
    np.testing.assert_allclose([e["discounts"] for e in estimates], LMPLZ_DISCOUNTS[order],
                               rtol=0, atol=5e-6)  # printed to 6 significant digits
    ours = read_arpa(write_arpa(model.lm, ptb2k.vocab.itos, ptb2k.line_end, tmp_path / "ours.arpa"))
    theirs = read_arpa(REFERENCE / f"ptb2k.o{order}.arpa.gz")
    assert ours.keys() == theirs.keys()
    keys = [k for k in theirs if k != ("<s>",)]  # <s> is never predicted: -99 here, 0 in lmplz's
    log_p = np.array([[ours[k][0], theirs[k][0]] for k in keys])
    log_bo = np.array([[ours[k][1], theirs[k][1]] for k in theirs])
    # lmplz computes in float32 and prints 7-8 significant digits
    np.testing.assert_allclose(log_p[:, 0], log_p[:, 1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(log_bo[:, 0], log_bo[:, 1], rtol=0, atol=1e-6)


@needs_reference
@pytest.mark.parametrize("order, kenlm_ppl", [(3, 383.29022297928464), (5, 380.4572522609314)])
def test_scores_match_kenlm_query(ptb2k, order, kenlm_ppl):
    model, _ = fit(ptb2k, order=order)
    result, losses = evaluate(model, ptb2k, "test", "sentence", bootstrap_samples=0)
    assert result["tokens"] == 7060
    assert result["ppl"] == pytest.approx(kenlm_ppl, rel=1e-6)
    starts = resets(ptb2k, "test", "sentence")
    ours = np.add.reduceat(-losses, starts) / math.log(10)
    query = [line.split() for line in (REFERENCE / f"ptb2k.o{order}.query-valid300.txt").open()]
    np.testing.assert_allclose(ours, [float(q[1]) for q in query], rtol=0, atol=1e-4)
    oov = np.add.reduceat((ptb2k.test == ptb2k.vocab.unk).astype(int), starts)
    assert oov.tolist() == [int(q[3]) for q in query]


def kenlm_scores(path, corpus, protocol):
    """Per-token log10 probabilities kenlm gives the test split under ``protocol``."""
    kenlm = pytest.importorskip("kenlm")
    lm = kenlm.Model(str(path))
    names = arpa_tokens(corpus.vocab.itos, corpus.line_end)
    ids = corpus.test
    if protocol == "stream":
        text = " ".join(names[i] for i in ids)
        return np.array([p for p, _, _ in lm.full_scores(text, bos=True, eos=False)])
    bounds = np.append(resets(corpus, "test", protocol), len(ids))
    return np.concatenate([[p for p, _, _ in lm.full_scores(" ".join(names[i] for i in ids[a:b - 1]))]
                           for a, b in zip(bounds[:-1], bounds[1:])])


@needs_reference
@pytest.mark.parametrize("smoothing, order, protocol", [
    ("kn", 5, "sentence"), ("kn_backoff", 4, "sentence"), ("katz", 4, "sentence"), ("add_k", 3, "sentence"),
    ("kn", 3, "stream")])
def test_kenlm_reads_our_arpa_with_the_same_scores(ptb2k, tmp_path, smoothing, order, protocol):
    model, _ = fit(ptb2k, protocol, order=order, smoothing=smoothing)
    path = write_arpa(model.lm, ptb2k.vocab.itos, ptb2k.line_end, tmp_path / "model.arpa")
    ours = model.log_probs(ptb2k.test, resets(ptb2k, "test", protocol), 1) / math.log(10)
    np.testing.assert_allclose(kenlm_scores(path, ptb2k, protocol), ours, rtol=0, atol=2e-6)


def test_kenlm_reads_a_character_model_with_escaped_tokens(tiny_char_corpus, tmp_path):
    model, _ = fit(tiny_char_corpus, "sentence", order=6)  # the pip kenlm stops at order 6
    path = write_arpa(model.lm, tiny_char_corpus.vocab.itos, tiny_char_corpus.line_end, tmp_path / "c.arpa")
    assert ("<0x20>",) in read_arpa(path)  # the space, escaped
    ours = model.log_probs(tiny_char_corpus.test, resets(tiny_char_corpus, "test", "sentence"), 1)
    theirs = kenlm_scores(path, tiny_char_corpus, "sentence")
    np.testing.assert_allclose(theirs, ours / math.log(10), rtol=0, atol=2e-6)


PTB = ("ptb/ptb.train.txt", "ptb/ptb.valid.txt", "ptb/ptb.test.txt")


@pytest.mark.slow
@needs_shared(*PTB)
def test_ptb_sentence_perplexity_matches_kenlm(tmp_path):
    """The issue's acceptance figures: `lmplz -o N` + `query` on PTB, literal <unk> a word."""
    from lmbench.runs.run import run

    kenlm_ppl = {5: 141.1862070921484, 3: 148.2814995024931}
    cfg = compose("model=ngram", "corpus=ptb", "protocol=sentence", "model.order=5",
                  "eval.bootstrap_samples=0", f"results_dir={tmp_path}")
    (tmp_path / "run").mkdir()
    record = run(cfg, tmp_path / "run")
    assert record["metrics"]["test"]["tokens"] == 82430
    # KenLM also keeps its own zero-count <unk>, so its uniform share is over one more type: 1e-6
    assert record["metrics"]["test"]["ppl"] == pytest.approx(kenlm_ppl[5], rel=2e-6)
    corpus = load_corpus(cfg.corpus)
    model, _ = fit(corpus, order=3)
    assert evaluate(model, corpus, "test", "sentence", bootstrap_samples=0)[0]["ppl"] == \
        pytest.approx(kenlm_ppl[3], rel=2e-6)
    # ... with that extra type the estimates are KenLM's to float32 precision
    width = len(corpus.vocab) + 2
    train, _ = pad(corpus.train, resets(corpus, "train", "sentence"), width - 1)
    for order, ppl in kenlm_ppl.items():
        lm, _ = kneser_ney(count([train], order, width), [0.5, 1.0, 1.5])
        log_p = lm.log_probs(corpus.test, resets(corpus, "test", "sentence"))
        assert math.exp(-log_p.mean()) == pytest.approx(ppl, rel=1e-7)


# ---------------------------------------------------------------- at scale: a wide vocabulary, many pieces
def phrase_text(rng: np.random.Generator, lines: int, phrases: list[list[int]]) -> str:
    """Lines of up to four parts, each a phrase of a shared pool (Zipf-chosen, so n-grams up to
    order 6 repeat) or one to three free words, most of them drawn from 3M rare ids (a wide tail)."""
    out = []
    for _ in range(lines):
        parts = []
        for _ in range(rng.integers(1, 5)):
            if rng.random() < 0.5:
                parts += phrases[min(rng.zipf(1.3), len(phrases)) - 1]
            else:
                parts += words(rng, rng.integers(1, 4), rare=0.8)
        out.append(" ".join(f"w{i}" for i in parts) + "\n")
    return "".join(out)


def words(rng: np.random.Generator, n: int, rare: float) -> list[int]:
    return np.where(rng.random(n) < rare, rng.integers(10**6, 4 * 10**6, n), rng.zipf(1.15, n)).tolist()


@pytest.fixture(scope="module")
def wide_text(tmp_path_factory):
    """511,599 training words of 134,598 types (valid and test: 2,000 lines each, OOVs included),
    generated with a fixed seed; with ``CHUNK`` at 2**15 the training split is counted in 17 pieces."""
    folder = tmp_path_factory.mktemp("wide")
    rng = np.random.default_rng(0)
    phrases = [words(rng, rng.integers(2, 7), rare=0.1) for _ in range(20_000)]
    for split, lines in (("train", 60_000), ("valid", 2_000), ("test", 2_000)):
        (folder / f"{split}.txt").write_text(phrase_text(rng, lines, phrases))
    return folder


# `lmplz -o N -S 1G` (KenLM 4cb443e, default estimation) on wide_text's train.txt, then `query -v summary`
# on valid.txt and test.txt: perplexity including OOVs
KENLM_WIDE = {3: {"valid": 73.10180762509444, "test": 63.45564881500937},
              5: {"valid": 71.99034076106668, "test": 62.2689913493652}}
needs_lmplz = pytest.mark.skipif(not (shutil.which("lmplz") and shutil.which("query")),
                                 reason="KenLM's lmplz and query are not on PATH (github.com/kpu/kenlm)")


@pytest.fixture
def wide(wide_text, monkeypatch):
    """wide_text as a corpus, counted in pieces of 2**15 tokens."""
    monkeypatch.setattr("lmbench.models.ngram.CHUNK", 1 << 15)
    cfg = compose("corpus=file", f"corpus.path={wide_text}", "corpus.level=word")
    corpus = load_corpus(cfg.corpus)
    assert len(corpus.vocab) > 100_000 and len(corpus.train) > 16 * (1 << 15)
    return corpus


@pytest.mark.parametrize("order", [3, 5])
def test_a_wide_vocabulary_counted_in_many_pieces_scores_as_kenlm(wide, order):
    """The issue's failure in small: past one counting piece with a vocabulary above 100k types,
    the perplexities are still KenLM's, to 1e-6 (they agree to 1e-7)."""
    model, _ = fit(wide, order=order)
    for split, ppl in KENLM_WIDE[order].items():
        result, _ = evaluate(model, wide, split, "sentence", bootstrap_samples=0)
        assert result["ppl"] == pytest.approx(ppl, rel=1e-6)


@needs_lmplz
@pytest.mark.parametrize("order", [3, 5])
def test_a_wide_vocabulary_matches_lmplz_entry_by_entry(wide, wide_text, order, tmp_path):
    """The same files estimated by KenLM here: every ARPA entry and both splits' query perplexities."""
    arpa = tmp_path / "kenlm.arpa"
    with open(wide_text / "train.txt") as train:
        subprocess.run(["lmplz", "-o", str(order), "-S", "1G", "-T", str(tmp_path), "--arpa", str(arpa)],
                       stdin=train, check=True, capture_output=True)
    model, _ = fit(wide, order=order)
    ours = read_arpa(write_arpa(model.lm, wide.vocab.itos, wide.line_end, tmp_path / "ours.arpa"))
    theirs = read_arpa(arpa)
    assert ours.keys() == theirs.keys()
    keys = [k for k in theirs if k != ("<s>",)]
    np.testing.assert_allclose([ours[k] for k in keys], [theirs[k] for k in keys], rtol=0, atol=1e-6)
    for split in ("valid", "test"):
        out = subprocess.run(["query", "-v", "summary", str(arpa)], stdin=open(wide_text / f"{split}.txt"),
                             check=True, capture_output=True, text=True).stdout
        kenlm_ppl = float(out.split("Perplexity including OOVs:")[1].split()[0])
        ppl = evaluate(model, wide, split, "sentence", bootstrap_samples=0)[0]["ppl"]
        assert ppl == pytest.approx(kenlm_ppl, rel=1e-6)
