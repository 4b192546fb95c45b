"""Fuzzing with hypothesis: tokenizers, vocabulary, the file-corpus loader and config overrides
either work or fail with a clear, typed error — never a crash, a hang or a silent wrong answer."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hydra.errors import HydraException
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from omegaconf.errors import OmegaConfBaseException

from lmbench.compose import compose
from lmbench.config import validate
from lmbench.corpora import EOS, UNK, build_vocab, load_corpus
from lmbench.corpora.loaders import chars_of_words, decode, words_of
from lmbench.errors import CorpusError, UserError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.text())
def test_word_tokens_are_whitespace_free_with_one_eos_per_line(text):
    assume(EOS not in text.split())  # a literal "<eos>" word in the text is that token already
    tokens = words_of(text)
    assert tokens.count(EOS) == len(text.splitlines())
    assert all(t and not any(c.isspace() for c in t) for t in tokens if t != EOS)
    assert [t for t in tokens if t != EOS] == text.split()
    assert len({id(t) for t in tokens if t != EOS}) == len(set(text.split()))  # one string per type


@FUZZ
@given(st.text())
def test_character_stream_of_words_keeps_the_words_and_lines(text):
    chars = chars_of_words(text)
    assert chars.count("\n") == len(text.splitlines())
    assert chars.split() == text.split()


@FUZZ
@given(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=200), st.integers(1, 4),
       st.sampled_from(["word", "char"]))
def test_vocabulary_encodes_known_tokens_exactly_and_unknown_ones_as_unk(train, min_count, level):
    vocab = build_vocab(train, min_count, level)
    assert len(set(vocab.itos)) == len(vocab.itos) and UNK in vocab.stoi
    ids = vocab.encode(train)
    decoded = vocab.decode(ids)
    for token, back in zip(train, decoded):
        assert back == (token if token in vocab.stoi else UNK)
    assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < len(vocab)


@FUZZ
@given(st.binary(max_size=300))
def test_decoding_arbitrary_bytes_gives_text_or_a_corpus_error(data):
    try:
        text = decode(data, "fuzz.txt")
    except CorpusError as error:
        assert "fuzz.txt" in str(error)
    else:
        assert text.encode("utf-8") == data


@pytest.mark.slow  # a corpus load per example
@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=120), min_size=3, max_size=3), st.sampled_from(["word", "char"]))
def test_file_corpus_from_arbitrary_bytes_loads_or_fails_clearly(contents, level):
    with tempfile.TemporaryDirectory() as folder:
        for name, data in zip(("train", "valid", "test"), contents):
            Path(folder, f"{name}.txt").write_bytes(data)
        try:
            corpus = load_corpus(compose("corpus=file", f"corpus.path={folder}",
                                         f"corpus.level={level}").corpus)
        except CorpusError:
            return
        assert all(len(corpus.splits[s]) > 0 for s in ("train", "valid", "test"))
        assert all(corpus.splits[s].max() < len(corpus.vocab) for s in ("train", "valid", "test"))


KEYS = ["seed", "protocol", "device", "train.lr", "train.bptt", "train.batch_size", "train.clip",
        "train.max_epochs", "train.max_minutes", "train.optimizer", "train.schedule", "train.lr_decay",
        "eval.batch_size", "model.order", "model.smoothing", "corpus.min_count", "corpus.lowercase"]
VALUES = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True).map(str),
                   st.sampled_from(["null", "true", "abc", "[1,2]", "{a: 1}", "''", "cpu", "kn", "-0"]))


@pytest.mark.slow  # a Hydra composition per example
@settings(max_examples=80, deadline=None)
@given(st.sampled_from(KEYS), VALUES)
def test_random_config_overrides_compose_or_fail_with_a_clear_error(key, value):
    try:
        cfg = compose(f"{key}={value}")
        validate(cfg)
    except (HydraException, OmegaConfBaseException, UserError) as error:
        assert str(error).strip()
