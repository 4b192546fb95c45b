"""The copying probe: random tokens then their exact repeat. An n-gram scores the repeat as the first
copy beyond its order (exact), the bookkeeping of the curves and the summary, and the diagnose command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY
from omegaconf import OmegaConf

from lmbench import models
from lmbench.compose import compose
from lmbench.corpora import load_corpus
from lmbench.diagnose.copying import compare_copies, copy_losses, random_sequences
from lmbench.errors import UserError
from lmbench.models.base import FitSettings


def fitted(order: int):
    cfg = compose("model=ngram", f"model.order={order}", *TINY)
    corpus = load_corpus(cfg.corpus)
    model = models.build("ngram", cfg.model, corpus)
    model.fit(corpus, FitSettings.from_config(cfg))
    return corpus, model


@pytest.mark.parametrize("order", [2, 3])
def test_an_ngram_copies_only_its_first_order_minus_one_tokens(order):
    """From position n on, the repeat's n − 1 tokens of context are the first copy's at the same
    position: an n-gram scores them exactly alike, whatever it learnt. Before n its context reaches
    back into the first copy, so there (only there) the two copies differ."""
    corpus, model = fitted(order)
    first, repeat = copy_losses(model, random_sequences(corpus, 12, 30))
    assert first.shape == repeat.shape == (30, 12)
    assert np.allclose(repeat[:, order - 1:], first[:, order - 1:])
    assert not np.allclose(repeat[:, :order - 1], first[:, :order - 1])
    found = compare_copies(first, repeat)
    assert found["copied_fraction"] <= (order - 1) / 12


def test_the_copies_are_cut_from_one_scoring_of_the_doubled_sequences():
    corpus, model = fitted(2)
    drawn = random_sequences(corpus, 5, 4)
    first, repeat = copy_losses(model, drawn)
    ids = np.concatenate([drawn, drawn], axis=1).reshape(-1)
    stream = -model.log_probs(ids, np.arange(0, 40, 10), 64).reshape(4, 10)
    assert np.array_equal(first, stream[:, :5]) and np.array_equal(repeat, stream[:, 5:])
    found = compare_copies(first, repeat)
    assert found["first_loss"] == pytest.approx(first.mean()) == pytest.approx(np.mean(found["first"]))
    assert found["repeat_loss"] == pytest.approx(stream[:, 5:].mean())


def test_the_sequences_depend_on_the_seed_only_and_leave_out_the_specials():
    corpus = load_corpus(compose(*TINY).corpus)
    drawn = random_sequences(corpus, 50, 200, seed=3)
    assert drawn.shape == (200, 50) and np.array_equal(drawn, random_sequences(corpus, 50, 200, seed=3))
    assert not np.array_equal(drawn, random_sequences(corpus, 50, 200, seed=4))
    specials = {corpus.vocab.unk, corpus.vocab.stoi["<eos>"]}
    assert specials.isdisjoint(drawn.ravel().tolist())
    assert len(np.unique(drawn)) == len(corpus.vocab) - 2  # 10,000 draws reach every other token
    with pytest.raises(UserError, match="sequences=1"):
        random_sequences(corpus, 5, 1)


def test_the_summary_finds_a_known_copy_gain():
    """A model that pays 5 nats on the first copy and, past 3 positions, 2 nats less on the repeat."""
    rng = np.random.default_rng(0)
    first = 5 + rng.normal(0, 0.5, size=(300, 20))
    repeat = first - np.r_[np.zeros(3), np.full(17, 2.0)] + rng.normal(0, 0.5, size=(300, 20))
    found = compare_copies(first, repeat)
    assert found["copied_fraction"] == pytest.approx(17 / 20)
    assert found["copy_gain"] == pytest.approx(2 * 17 / 20, abs=0.05)
    assert all(lo <= m <= hi for lo, m, hi in zip(found["repeat_low"], found["repeat"], found["repeat_high"]))
    assert compare_copies(first, first)["copied_fraction"] == 0 == compare_copies(first, first)["copy_gain"]


@pytest.mark.slow
def test_diagnose_copying_on_two_runs_and_refuses_bad_options(tmp_path, capsys):
    from lmbench.diagnose.__main__ import main
    from lmbench.runs.run import run

    for order in (2, 3):
        cfg = compose("model=ngram", f"model.order={order}", *TINY, f"results_dir={tmp_path}")
        run(OmegaConf.merge(cfg, {"device": "cpu"}), tmp_path / f"n{order}")
    folders = [str(tmp_path / "n2"), str(tmp_path / "n3")]
    assert main([*folders, "what=copying", "length=8", "sequences=20"]) == 0
    assert "copy gain" in capsys.readouterr().out
    for order in (2, 3):
        summary = json.loads((tmp_path / f"n{order}" / "record.json").read_text())["diagnostics"]["copying"]
        assert summary["length"] == 8 and summary["sequences"] == 20 and summary["seed"] == 0
        assert summary["copy_gain"] == pytest.approx(summary["first_loss"] - summary["repeat_loss"])
        assert summary["uniform_loss"] == pytest.approx(np.log(len(load_corpus(cfg.corpus).vocab)))
        details = json.loads((tmp_path / f"n{order}" / "diagnostics" / "copying.json").read_text())
        assert len(details["first"]) == len(details["repeat_high"]) == 8
        assert (tmp_path / f"n{order}" / "diagnostics" / "copying.png").is_file()
    assert list((tmp_path / "diagnostics").glob("copying_synthetic_*.png"))
    for bad, message in (("length=0", "length=0 is out of range"), ("sequences=1", "sequences=1 is too few")):
        assert main([folders[0], "what=copying", bad]) == 1
        assert message in capsys.readouterr().err
