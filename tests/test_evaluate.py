"""The shared evaluator: metric arithmetic, protocol resets, the uniform model's perplexity, bad scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbench import models
from lmbench.corpora import EOS, UNK, Corpus, Vocab
from lmbench.evaluate import NonFiniteScoreError, bootstrap_mean_ci, evaluate, metrics, resets
from lmbench.models.base import FitSettings
from lmbench.models.unigram import Unigram


def test_metrics_follow_from_the_mean_loss():
    losses = np.array([1.0, 2.0, 3.0])
    result = metrics(losses, chars=6, samples=0)
    assert result["nll"] == 2.0
    assert result["ppl"] == pytest.approx(math.exp(2.0))
    assert result["bits_per_token"] == pytest.approx(2.0 / math.log(2))
    assert result["bpc"] == pytest.approx(3 * 2.0 / math.log(2) / 6)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 20), min_size=5, max_size=400), st.integers(0, 50))
def test_bootstrap_interval_brackets_the_mean(values, block):
    losses = np.array(values)
    low, high = bootstrap_mean_ci(losses, samples=200, block=block)
    assert low - 1e-9 <= losses.mean() <= high + 1e-9


def test_sentence_protocol_resets_at_every_line(tiny_word_corpus):
    starts = resets(tiny_word_corpus, "test", "sentence")
    ids = tiny_word_corpus.test
    assert starts[0] == 0 and len(starts) == np.sum(ids == tiny_word_corpus.line_end)
    assert np.all(ids[starts[1:] - 1] == tiny_word_corpus.line_end)
    assert list(resets(tiny_word_corpus, "test", "stream")) == [0]


def test_char_level_bits_per_character_equal_bits_per_token(tiny_char_corpus):
    model = models.build("unigram", _unigram_cfg(), tiny_char_corpus)
    model.fit(tiny_char_corpus, FitSettings())
    result, _ = evaluate(model, tiny_char_corpus, "test", "stream")
    assert result["bpc"] == pytest.approx(result["bits_per_token"])


class Uniform:
    """p(w) = 1/V in every context: the model whose perplexity is the vocabulary size by definition."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def fit(self, corpus, settings) -> dict:
        return {}

    def coverage(self, tokens, starts) -> dict:
        return {}

    def log_probs(self, tokens, starts, batch_size):
        return np.full(len(tokens), -math.log(self.vocab_size))

    def sample(self, length, prompt, temperature, top_k, rng):
        return rng.integers(0, self.vocab_size, length)

    def num_parameters(self) -> int:
        return 0

    def size_bytes(self) -> int:
        return 0


def assert_scores_the_vocabulary_size(corpus, protocol):
    size = len(corpus.vocab)
    result, losses = evaluate(Uniform(size), corpus, "test", protocol, bootstrap_samples=50)
    assert result["tokens"] == len(corpus.test) and np.allclose(losses, math.log(size))
    assert result["ppl"] == pytest.approx(size, rel=1e-12)
    assert result["ppl_ci"] == pytest.approx([size, size], rel=1e-12)
    assert result["bits_per_token"] == pytest.approx(math.log2(size), rel=1e-12)
    per_char = len(corpus.test) / corpus.chars["test"]
    assert result["bpc"] == pytest.approx(math.log2(size) * per_char, rel=1e-12)


@pytest.mark.parametrize("protocol", ["stream", "sentence"])
@pytest.mark.parametrize("corpus", ["tiny_word_corpus", "tiny_char_corpus"])
def test_a_uniform_model_scores_perplexity_equal_to_the_vocabulary_size(corpus, protocol, request):
    assert_scores_the_vocabulary_size(request.getfixturevalue(corpus), protocol)


@settings(max_examples=40, deadline=None)
@given(words=st.integers(1, 5000), data=st.data(), protocol=st.sampled_from(["stream", "sentence"]))
def test_a_uniform_model_scores_perplexity_equal_to_any_vocabulary_size(words, data, protocol):
    vocab = Vocab([EOS, UNK, *(f"w{i}" for i in range(words))])
    ids = st.lists(st.integers(0, len(vocab.itos) - 1), min_size=1, max_size=300)
    splits = {split: np.array(data.draw(ids, label=split), dtype=np.int32)
              for split in ("train", "valid", "test")}
    chars = {split: int(sum(len(vocab.itos[i]) + 1 for i in tokens)) for split, tokens in splits.items()}
    assert_scores_the_vocabulary_size(Corpus("random", "word", vocab, splits, chars, "random", {}), protocol)


class _Broken(Unigram):
    def log_probs(self, tokens, starts, batch_size):
        scores = super().log_probs(tokens, starts, batch_size).copy()
        scores[3] = np.nan
        return scores


def test_a_non_finite_score_is_an_error_not_a_metric(tiny_word_corpus):
    model = _Broken(_unigram_cfg(), tiny_word_corpus)
    model.fit(tiny_word_corpus, FitSettings())
    with pytest.raises(NonFiniteScoreError, match="token 3"):
        evaluate(model, tiny_word_corpus, "test", "stream")


def _unigram_cfg():
    from omegaconf import OmegaConf

    from lmbench.models.unigram import UnigramConfig

    return OmegaConf.structured(UnigramConfig())
