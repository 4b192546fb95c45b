"""experiment=scaling: non-embedding parameters and FLOPs against hand counts, the fit of
L(N) = L∞ + (N_c/N)^α, the sweep's config, and one tiny sweep through to its report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY, lmbench
from hydra.core.override_parser.overrides_parser import OverridesParser

from lmbench import models
from lmbench.compose import compose
from lmbench.models.base import FitSettings
from lmbench.report import scaling
from lmbench.runs.records import row

RUNGS = {"1e4": 1e4, "3e4": 3e4, "1e5": 1e5, "3e5": 3e5, "1e6": 1e6, "3e6": 3e6}


def sweep() -> list[str]:
    """The ``size=`` values the experiment sweeps."""
    params = compose("experiment=scaling", return_hydra_config=True).hydra.sweeper.params
    assert set(params) == {"size", "seed"}
    (override,) = OverridesParser.create().parse_overrides([f"size={params['size']}"])
    return list(override.sweep_string_iterator())


def built(size: str, corpus):
    cfg = compose("experiment=scaling", f"size={size}")
    return models.build(cfg.model.name, cfg.model, corpus)


# ---------------------------------------------------------------- counts by hand, the 1e4 rung
def test_recurrent_cells_count_gates_times_an_input_and_a_recurrent_matmul(tiny_char_corpus):
    v = len(tiny_char_corpus.vocab)
    for family, gates, h in (("rnn", 1, 50), ("lstm", 4, 25), ("gru", 3, 29)):
        model = built(f"{family}/1e4", tiny_char_corpus)
        # 2 layers (input width h, as emb_size = h): gate weights onto the input and the state, two biases
        cells = 2 * gates * (h * h + h * h + 2 * h)
        assert model.non_embedding_parameters() == cells, family
        decoder = h * v + v  # weight and bias, left out of N but multiplied
        assert model.flops_per_token() == 2 * (cells + decoder), family


def test_fnn_n_is_its_hidden_layer(tiny_char_corpus):
    v, h, window = len(tiny_char_corpus.vocab), 35, 8 * 35  # order 9: 8 context embeddings of 35
    model = built("fnn/1e4", tiny_char_corpus)
    assert model.non_embedding_parameters() == window * h + h == 9835
    assert model.flops_per_token() == 2 * (window * h + h + h * v + v)


def test_transformer_n_is_twelve_layers_d_squared_and_its_small_change(tiny_char_corpus):
    v, d, layers, window = len(tiny_char_corpus.vocab), 16, 4, 128
    block = (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d  # +2 norms
    model = built("transformer/1e4", tiny_char_corpus)
    assert model.non_embedding_parameters() == layers * block + 2 * d == 13_152
    assert 12 * layers * d * d < model.non_embedding_parameters() < 1.1 * 12 * layers * d * d
    attention = 2 * 2 * layers * d * window // 2  # scores and weighted sums over half a window on average
    assert model.flops_per_token() == 2 * model.non_embedding_parameters() + attention + 2 * v * d


def test_ngram_size_is_its_stored_ngrams(tmp_path):
    from lmbench.corpora import load_corpus

    (tmp_path / "c").mkdir()
    for split in ("train", "valid", "test"):
        (tmp_path / "c" / f"{split}.txt").write_text("a b a c\nb a\n" * 5)
    corpus = load_corpus(compose("corpus=file", f"corpus.path={tmp_path / 'c'}", "corpus.level=word").corpus)
    model = built("ngram/order3", corpus)
    model.fit(corpus, FitSettings())
    # one stream <s> a b a c <eos> b a <eos> a b ...: 5 words and <s>; 8 distinct bigrams, 9 trigrams
    assert model.non_embedding_parameters() == 6 + 8 + 9


def test_count_based_models_without_a_size_say_none(tiny_word_corpus):
    assert built("ngram/order1", tiny_word_corpus).non_embedding_parameters() == 0  # before fitting
    cfg = compose("model=unigram")
    assert models.build("unigram", cfg.model, tiny_word_corpus).non_embedding_parameters() is None


def test_a_record_row_has_non_embedding_parameters_and_training_flops():
    record = {"id": "r", "model": "lstm", "status": "ok", "config": {"train": {}}, "corpus": {"name": "c"},
              "memory": {"parameters": 20, "non_embedding_parameters": 12},
              "train": {"flops_per_token_train": 72, "tokens": 1000}}
    assert (row(record)["non_embedding_params"], row(record)["train_flops"]) == (12, 72_000)
    ngram = record | {"model": "ngram", "train": {"ngram": {}}}
    assert row(ngram)["train_flops"] is None


# ---------------------------------------------------------------- the fit
def test_the_fit_recovers_a_known_law():
    n = np.geomspace(1e4, 3e6, 6)
    alpha, l_inf, b = scaling.fit(n, 1.2 + (3e3 / n) ** 0.4)[0]
    assert alpha == pytest.approx(0.4, abs=0.006) and l_inf == pytest.approx(1.2, abs=0.01)
    assert b ** (1 / alpha) == pytest.approx(3e3, rel=0.05)


def test_the_bootstrap_interval_holds_the_true_alpha_of_noisy_points():
    n = np.geomspace(1e4, 3e6, 6)
    loss = 1.5 + (2e4 / n) ** 0.3 + np.random.default_rng(1).normal(0, 0.005, n.shape)
    f = scaling.fit_family(n, loss)
    assert f["alpha_lo"] <= 0.3 <= f["alpha_hi"] and f["alpha_lo"] < f["alpha"] < f["alpha_hi"]
    assert f["l_inf"] == pytest.approx(1.5, abs=0.1)


def test_no_law_for_a_loss_that_grows_with_size_or_too_few_sizes():
    assert np.isnan(scaling.fit([1e4, 1e5, 1e6], [1.0, 1.1, 1.3])[0]).all()
    assert np.isnan(scaling.fit_family([1e4, 1e5], [2.0, 1.5])["alpha"])


# ---------------------------------------------------------------- the experiment
def test_the_sweep_covers_every_family_at_six_matched_sizes_and_the_ngram_at_orders_one_to_eight(
        tiny_char_corpus):
    sizes = sweep()
    assert [s for s in sizes if s.startswith("ngram/")] == [f"ngram/order{o}" for o in range(1, 9)]
    budgets = set()
    for size in sizes:
        cfg = compose("experiment=scaling", "corpus=tinyshakespeare", f"size={size}")
        family, _, rung = size.partition("/")
        assert (cfg.model.name, cfg.experiment, cfg.corpus.name) == (family, "scaling", "tinyshakespeare")
        if family == "ngram":
            assert cfg.model.order == int(rung.removeprefix("order"))
            continue
        budgets.add(cfg.train.max_tokens)
        n = models.build(family, cfg.model, tiny_char_corpus).non_embedding_parameters()
        assert 0.85 < n / RUNGS[rung] < 1.35, size
        assert cfg.train.lr == pytest.approx(0.003239 - 0.0001395 * np.log(RUNGS[rung]), abs=2e-5)
    assert {s.partition("/")[0] for s in sizes} == {"rnn", "lstm", "gru", "fnn", "transformer", "ngram"}
    assert len(sizes) == 5 * 6 + 8 and budgets == {10_000_000}
    hydra = compose("experiment=scaling", return_hydra_config=True).hydra
    assert hydra.mode.name == "MULTIRUN" and "timing" in hydra.launcher._target_


@pytest.mark.slow
def test_a_tiny_scaling_sweep_records_sizes_and_flops_and_reports_the_fit(tmp_path):
    """Three n-gram orders and the smallest LSTM, on the tiny synthetic corpus, in one process."""
    done = lmbench(tmp_path, "experiment=scaling", "size=ngram/order1,ngram/order2,ngram/order3,lstm/1e4",
                   "hydra/launcher=basic", "train.max_tokens=2000", "train.warmup_steps=0", *TINY)
    assert done.returncode == 0, done.stderr
    (folder,) = (tmp_path / "results" / "sweeps").iterdir()
    records = {r["config"]["model"].get("order", r["model"]): r
               for r in (json.loads(p.read_text()) for p in folder.rglob("record.json"))}
    lstm = records["lstm"]
    assert lstm["memory"]["non_embedding_parameters"] == 10_400 and lstm["experiment"] == "scaling"
    assert row(lstm)["train_flops"] == lstm["train"]["flops_per_token_train"] * lstm["train"]["tokens"]
    assert [records[o]["memory"]["non_embedding_parameters"] > 0 for o in (1, 2, 3)] == [True] * 3
    assert (folder / "plots" / "scaling_synthetic.png").exists()
    fitted = (folder / "scaling.csv").read_text()
    assert "ngram" in fitted and "lstm" in fitted
    assert "Scaling on synthetic" in (folder / "report.md").read_text()
