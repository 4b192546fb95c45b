"""Loss per position of windows scored from an empty context: exact for count-based models, the fit,
the plateau and the diagnose command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SYNTHETIC_20K, TINY
from omegaconf import OmegaConf

from lmbench import models
from lmbench.compose import compose
from lmbench.corpora import load_corpus
from lmbench.diagnose.positions import curve, fit_power_law, plateau, resampled_means, window_losses
from lmbench.models.base import FitSettings


@pytest.mark.parametrize("order", [1, 2, 3])
def test_an_ngram_scores_a_window_as_the_stream_beyond_its_order(order):
    """Past its first n − 1 positions an n-gram sees all it ever sees, so a window from an empty
    context gives the stream's very losses there: its curve is flat beyond n − 1 by construction."""
    cfg = compose("model=ngram", f"model.order={order}", *SYNTHETIC_20K)
    corpus = load_corpus(cfg.corpus)
    model = models.build("ngram", cfg.model, corpus)
    model.fit(corpus, FitSettings.from_config(cfg))
    tokens = corpus.splits["test"]
    windows = window_losses(model, tokens, 16)
    stream = -model.log_probs(tokens[:windows.size], np.zeros(1, dtype=np.int64), 64).reshape(windows.shape)
    assert np.allclose(windows[:, order - 1:], stream[:, order - 1:])
    if order > 1:  # the first positions lose their context: on average they pay for it
        assert windows[:, 0].mean() > stream[:, 0].mean()


def test_the_curve_averages_to_the_windows_loss_and_finds_a_known_plateau():
    rng = np.random.default_rng(0)
    shape = np.r_[np.linspace(3.0, 2.0, 10), np.full(54, 2.0)]  # improves for 10 positions, then flat
    losses = shape + rng.normal(0, 0.3, size=(400, 64))
    found = curve(losses)
    assert np.mean(found["loss"]) == pytest.approx(found["mean_loss"]) == pytest.approx(losses.mean())
    assert 8 <= found["plateau"] <= 11
    assert found["icl_score"] < -0.3 and all(lo <= m <= hi for lo, m, hi in
                                            zip(found["low"], found["loss"], found["high"]))
    assert plateau(losses[:, 20:], resampled_means(losses[:, 20:])) <= 3  # flat from the start


def test_the_power_law_fit_recovers_its_parameters():
    t = np.arange(1, 257, dtype=float)
    fit = fit_power_law(t, 1.5 + 2.0 * t ** -0.6)
    assert fit["L_inf"] == pytest.approx(1.5, abs=0.02) and fit["beta"] == pytest.approx(0.6, abs=0.03)
    assert fit["A"] == pytest.approx(2.0, abs=0.05)


@pytest.mark.slow
def test_diagnose_positions_for_a_count_based_and_a_neural_run(tmp_path):
    from lmbench.diagnose.__main__ import main
    from lmbench.runs.run import run

    for family in ("ngram", "lstm"):
        run(OmegaConf.merge(compose(f"model={family}", *TINY, f"results_dir={tmp_path}"), {"device": "cpu"}),
            tmp_path / family)
    assert main([str(tmp_path / "ngram"), str(tmp_path / "lstm"), "what=positions", "window=20"]) == 0
    for family in ("ngram", "lstm"):
        record = json.loads((tmp_path / family / "record.json").read_text())
        summary = record["diagnostics"]["positions"]
        assert summary["window"] == 20 and summary["windows"] == 25 and 1 <= summary["plateau"] <= 20
        assert (tmp_path / family / "diagnostics" / "positions.png").is_file()
    assert list((tmp_path / "diagnostics").glob("positions_synthetic_*.png"))
