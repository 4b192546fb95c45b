"""The shared evaluator: metric arithmetic, protocol resets, batch-size independence, bad scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbench import models
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


@pytest.mark.parametrize("name", ["unigram", "oracle", "ngram"])
@pytest.mark.parametrize("protocol", ["stream", "sentence"])
def test_scores_do_not_depend_on_the_evaluation_batch_size(small_synthetic, name, protocol):
    from omegaconf import OmegaConf

    from lmbench.config import SCHEMAS

    model = models.build(name, OmegaConf.structured(SCHEMAS["model"][name]), small_synthetic)
    model.fit(small_synthetic, FitSettings(protocol=protocol))
    scores = [evaluate(model, small_synthetic, "test", protocol, batch_size=b)[1] for b in (1, 7, 512)]
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-6)
    np.testing.assert_allclose(scores[0], scores[2], rtol=1e-6)


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
