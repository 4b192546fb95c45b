"""nanoGPT's validation loss made deterministic (lmbench.nanogpt_metric): its split, its windows, and
which targets each kind of model scores from which context."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY

from lmbench import models
from lmbench.compose import compose
from lmbench.models.base import FitSettings
from lmbench.nanogpt_metric import lmbench_losses, nanogpt_losses, validation_text, windows


def test_the_split_is_the_last_tenth_cut_into_whole_windows():
    assert validation_text("abcdefghijklmnopqrst") == "st"
    assert windows(np.arange(11), block=2).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_a_bigram_scores_every_target_as_the_stream_does(tiny_char_corpus):
    """A bigram's one token of context is there for every target: the first token of each window,
    predicted from nothing, is the only one left out."""
    cfg = compose("model=ngram", "model.order=2", *TINY)
    model = models.build("ngram", cfg.model, tiny_char_corpus)
    model.fit(tiny_char_corpus, FitSettings.from_config(cfg))
    rows = windows(tiny_char_corpus.test, block=8)
    stream = -model.log_probs(rows.reshape(-1), np.zeros(1, dtype=np.int64), 64).reshape(rows.shape)
    assert np.allclose(lmbench_losses(model, rows), stream[:, 1:])


def test_a_transformer_predicts_a_windows_last_target_from_all_the_context_it_holds(tiny_char_corpus):
    """A window of <bos> + 3 tokens scores targets 1-3 of a 5-token window from the window's start,
    and the last one from the 3 tokens before it (not 4)."""
    torch.manual_seed(0)
    cfg = compose("model=transformer", "model.d_model=8", "model.heads=2", "model.context=4", *TINY)
    model = models.build("transformer", cfg.model, tiny_char_corpus)
    rows = windows(tiny_char_corpus.test, block=4)
    losses = lmbench_losses(model, rows)

    def from_start(part):  # each row scored from an empty context
        return -model.log_probs(part.reshape(-1), np.arange(0, part.size, 4), 64).reshape(part.shape)

    assert np.allclose(losses[:, :3], from_start(rows[:, :4])[:, 1:])
    assert np.allclose(losses[:, 3], from_start(rows[:, 1:])[:, 3])


def test_a_nanogpt_model_scores_each_input_s_next_token():
    """A stand-in for nanoGPT's GPT that bets on the last input repeating: its losses line up with
    the targets."""
    vocab = 5

    def repeat(inputs, targets):
        return 5.0 * F.one_hot(inputs, vocab).float(), None

    rows = windows(np.array([0, 0, 1, 1, 1, 2, 3, 3, 3]), block=2)  # [[0 0 1] [1 1 2] [3 3 3]]
    hit, miss = np.log(np.exp(5) + vocab - 1) - 5, np.log(np.exp(5) + vocab - 1)
    expected = [[hit, miss], [hit, miss], [hit, hit]]
    assert nanogpt_losses(repeat, rows, batch_size=2) == pytest.approx(np.array(expected))
