"""The torch families on tiny data: they learn, and their scoring keeps the evaluation contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import NEURAL_FAMILIES, seeded_model, tiny_config
from omegaconf import OmegaConf

from lmbench import models
from lmbench.config import validate
from lmbench.errors import UserError
from lmbench.evaluate import evaluate
from lmbench.models.base import FitSettings

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("family", NEURAL_FAMILIES)
def test_each_family_beats_the_unigram(family, tiny_word_corpus, tiny_text_dir, tmp_path):
    cfg = tiny_config(family, tiny_text_dir)
    model = seeded_model(family, tiny_word_corpus, cfg)
    stats = model.fit(tiny_word_corpus, FitSettings.from_config(cfg, tmp_path))
    unigram = models.build("unigram", OmegaConf.create({"name": "unigram", "add_k": 1.0}), tiny_word_corpus)
    unigram.fit(tiny_word_corpus, FitSettings())
    for protocol in ("stream", "sentence"):
        ppl = evaluate(model, tiny_word_corpus, "test", protocol, 8, 0)[0]["ppl"]
        assert ppl < 0.5 * evaluate(unigram, tiny_word_corpus, "test", protocol, 8, 0)[0]["ppl"]
    assert stats["epochs"] == 3 and stats["train_tokens_per_s"] > 0
    assert stats["valid_ppl_history"][-1] < stats["valid_ppl_history"][0]
    assert stats["flops_per_token_forward"] > 0 and 0 <= stats["clipped_fraction"] <= 1
    achieved = stats["flops_per_token_train"] * stats["train_tokens_per_s"]
    assert stats["achieved_flops_per_s"] == pytest.approx(achieved)
    assert 0 < stats["peak_fraction"] < 1 and stats["peak_flops_per_s"] > stats["achieved_flops_per_s"]


@pytest.mark.parametrize("level", ["word", "char"])
@pytest.mark.parametrize("family", NEURAL_FAMILIES)
def test_scores_do_not_depend_on_batch_size(family, level, tiny_word_corpus, tiny_char_corpus, tiny_text_dir):
    corpus = tiny_word_corpus if level == "word" else tiny_char_corpus
    model = seeded_model(family, corpus, tiny_config(family, tiny_text_dir, f"corpus.level={level}"))
    tokens = corpus.valid
    for starts in (np.array([0]), corpus.line_starts("valid")):
        reference = model.log_probs(tokens, starts, 1)
        assert reference.shape == tokens.shape and np.all(reference < 0)
        for batch_size in (3, 64):
            np.testing.assert_allclose(model.log_probs(tokens, starts, batch_size), reference,
                                       rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", NEURAL_FAMILIES)
def test_each_start_empties_the_context(family, tiny_word_corpus, tiny_text_dir):
    model = seeded_model(family, tiny_word_corpus, tiny_config(family, tiny_text_dir))
    tokens = tiny_word_corpus.valid[:60]
    starts = np.array([0, 7, 8, 25, 41])
    scored = model.log_probs(tokens, starts, 4)
    for s, e in zip(starts, [*starts[1:], len(tokens)]):
        np.testing.assert_allclose(scored[s:e], model.log_probs(tokens[s:e], np.array([0]), 4),
                                   rtol=0, atol=1e-5)


def test_transformer_predicts_each_token_once_with_the_fullest_context(tiny_word_corpus, tiny_text_dir):
    model = seeded_model("transformer", tiny_word_corpus, tiny_config("transformer", tiny_text_dir))
    spans = [(0, 5), (5, 40), (40, 41), (41, 100)]
    covered = np.zeros(100, dtype=int)
    for first, lo, hi in model._windows(spans):
        span_start = max(s for s, _ in spans if s <= lo)
        assert first >= span_start and hi - first <= model.window  # inside its span, fits a window
        assert lo - first >= min(lo - span_start, model.window - model.stride)  # context kept
        covered[lo:hi] += 1
    assert np.all(covered == 1)
    assert model.eval_info() == {"eval_window": 12, "eval_stride": 6}


@pytest.mark.parametrize("family", NEURAL_FAMILIES)
def test_sampling_is_seeded_and_in_vocabulary(family, tiny_word_corpus, tiny_text_dir):
    model = seeded_model(family, tiny_word_corpus, tiny_config(family, tiny_text_dir))
    prompt = tiny_word_corpus.train[:5]
    first = model.sample(20, prompt, 1.0, 5, np.random.default_rng(1))
    again = model.sample(20, prompt, 1.0, 5, np.random.default_rng(1))
    assert len(first) == 20 and np.array_equal(first, again)
    assert first.min() >= 0 and first.max() < len(tiny_word_corpus.vocab)
    assert len(model.sample(3, np.array([], dtype=np.int64), 0.0, None, np.random.default_rng(0))) == 3


@pytest.mark.parametrize("family, override, message", [
    ("lstm", "model.hidden_size=0", "hidden_size"),
    ("rnn", "model.layers=0", "layers"),
    ("gru", "model.dropout=1.5", "dropout"),
    ("lstm", "model.tie_weights=true model.emb_size=16", "tie_weights"),
    ("fnn", "model.order=1", "order"),
    ("fnn", "model.tie_weights=true model.emb_size=12", "tie_weights"),
    ("fnn", "model.order=100000", "order"),
    ("transformer", "model.context=100000", "context"),
    ("transformer", "model.heads=3", "heads"),
])
def test_bad_model_config_is_a_user_error(family, override, message, tiny_word_corpus, tiny_text_dir):
    """Refused by its option's rule, or by the model where it needs another option or the data."""
    cfg = tiny_config(family, tiny_text_dir, *override.split())
    with pytest.raises(UserError, match=message):
        validate(cfg)
        models.build(family, cfg.model, tiny_word_corpus)


def test_recurrent_options_shape_the_network(tiny_word_corpus, tiny_text_dir):
    cfg = tiny_config("lstm", tiny_text_dir, "model.forget_bias=1.0", "model.layers=1")
    net = seeded_model("lstm", tiny_word_corpus, cfg).net
    h = cfg.model.hidden_size
    assert torch.all(net.rnn.bias_ih_l0[h:2 * h] == 1.0) and torch.all(net.rnn.bias_hh_l0[h:2 * h] == 0)
    assert torch.all(net.encoder.weight.abs() <= 0.1)
    relu = seeded_model("rnn", tiny_word_corpus, tiny_config("rnn", tiny_text_dir, "model.nonlinearity=relu"))
    assert relu.net.rnn.nonlinearity == "relu"
    tied = seeded_model("gru", tiny_word_corpus, tiny_config("gru", tiny_text_dir))
    untied = seeded_model("gru", tiny_word_corpus,
                          tiny_config("gru", tiny_text_dir, "model.tie_weights=false"))
    assert untied.num_parameters() - tied.num_parameters() == len(tiny_word_corpus.vocab) * 32


@pytest.mark.parametrize("direct", [False, True])
def test_a_tied_fnn_scores_with_its_embeddings_and_learns(direct, tiny_word_corpus, tiny_text_dir, tmp_path):
    tied_cfg = tiny_config("fnn", tiny_text_dir, "model.tie_weights=true", "model.hidden_size=16",
                           f"model.direct={direct}")
    tied = seeded_model("fnn", tiny_word_corpus, tied_cfg)
    untied = seeded_model("fnn", tiny_word_corpus, tiny_config("fnn", tiny_text_dir, "model.hidden_size=16",
                                                                  f"model.direct={direct}"))
    vocab, h = len(tiny_word_corpus.vocab), tied_cfg.model.hidden_size
    assert untied.num_parameters() - tied.num_parameters() == vocab * h
    context = torch.arange(1, tied.context + 1)[None]  # one window of the n-1 previous tokens
    x, hidden = tied.net.layers(context)
    expected = hidden @ tied.net.embed.weight[:vocab].T + tied.net.out_bias
    if direct:
        expected = expected + tied.net.direct(x)
    assert torch.allclose(tied.net.eval()(context), expected)
    stats = tied.fit(tiny_word_corpus, FitSettings.from_config(tied_cfg, tmp_path))
    assert stats["valid_ppl_history"][-1] < stats["valid_ppl_history"][0]
    assert stats["flops_per_token_forward"] == untied.flops_per_token()
