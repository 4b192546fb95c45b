"""Exactness against KenLM: lmplz's ARPA files and query scores for a 2,000-line PTB sample, entry
by entry; kenlm.Model reading lmbench's ARPA export with the same scores; the full-PTB test
perplexities of the issue (slow)."""

from __future__ import annotations

import gzip
import math
import shutil

import numpy as np
import pytest
from conftest import ROOT, compose_config, needs_shared

from lmbench import models
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
    return load_corpus(compose_config("corpus=file", f"corpus.path={folder}", "corpus.level=word").corpus)


def fit(corpus, protocol: str = "sentence", **options):
    overrides = [f"model.{key}={value}" for key, value in options.items()]
    cfg = compose_config("model=ngram", f"protocol={protocol}", *overrides)
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
    from lmbench.run import run

    kenlm_ppl = {5: 141.1862070921484, 3: 148.2814995024931}
    cfg = compose_config("model=ngram", "corpus=ptb", "protocol=sentence", "model.order=5",
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
