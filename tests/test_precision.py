"""train.precision=auto: fp32 without measuring where bf16 is not native, else the faster of fp32 and
bf16 on the model's own steps; the measurement leaves the run as it was, the record says what was
chosen and why, and a resume keeps the choice."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from conftest import seeded_model, tiny_config
from omegaconf import OmegaConf

from lmbench import hardware
from lmbench import train as train_module
from lmbench.hardware import choose_precision
from lmbench.models.base import FitSettings
from lmbench.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


def never_measured():
    pytest.fail("measured")


def timings(fp32_s, bf16_s, bf16_loss=2.0):
    return lambda: {"fp32": (fp32_s, 2.0), "bf16": (bf16_s, bf16_loss), "seconds": 0.1}


def test_auto_is_fp32_without_measuring_where_bf16_is_not_native(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert choose_precision("auto", CPU, never_measured) == ("fp32", {"why": "no native bf16 on cpu"})
    assert choose_precision("auto", torch.device("mps"), never_measured)[0] == "fp32"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"amx_bf16"})
    assert choose_precision("bf16", CPU, never_measured) == ("bf16", {"why": "train.precision=bf16"})
    assert choose_precision("fp32", CPU, never_measured)[0] == "fp32"


def test_auto_keeps_bf16_only_where_it_is_faster_and_its_loss_agrees(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"amx_bf16"})
    precision, choice = choose_precision("auto", CPU, timings(0.3, 0.2))
    assert precision == "bf16" and choice["ratio"] == pytest.approx(1.5)
    assert choice["fp32_s"] == 0.3 and choice["bf16_s"] == 0.2 and "1.50x" in choice["why"]
    assert choose_precision("auto", CPU, timings(0.2, 0.21))[0] == "fp32"  # bf16 slower: the GRU's case
    assert choose_precision("auto", CPU, timings(0.2, 0.199))[0] == "fp32"  # within the noise
    assert choose_precision("auto", CPU, timings(0.3, 0.2, bf16_loss=2.5))[0] == "fp32"
    precision, choice = choose_precision("auto", CPU, timings(0.3, 0.2, bf16_loss=math.nan))
    assert precision == "fp32" and "loss" in choice["why"]


def same(a, b) -> bool:
    """Equal nested dicts / lists of tensors and numbers, bit for bit."""
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_measuring_leaves_weights_optimizer_and_rng_as_they_were(tiny_word_corpus, tiny_text_dir, tmp_path):
    cfg = tiny_config("lstm", tiny_text_dir)  # dropout and Adam: the RNG and the optimizer state matter
    trainer = Trainer(seeded_model("lstm", tiny_word_corpus, cfg), tiny_word_corpus,
                      FitSettings.from_config(cfg, tmp_path))
    trainer.run_epoch(1)  # Adam's moments are no longer zero
    before = [copy.deepcopy(trainer.model.net.state_dict()), copy.deepcopy(trainer.optimizer.state_dict()),
              torch.get_rng_state(), trainer.state.step]
    timed = trainer._time_precisions()
    assert timed["fp32"][0] > 0 and timed["bf16"][0] > 0
    assert abs(timed["fp32"][1] - timed["bf16"][1]) < hardware.BF16_LOSS_TOLERANCE
    assert same([trainer.model.net.state_dict(), trainer.optimizer.state_dict(), torch.get_rng_state(),
                 trainer.state.step], before)
    assert all(p.grad is None for p in trainer.params)


def fit(corpus, cfg, run_dir):
    model = seeded_model("lstm", corpus, cfg)
    return model, model.fit(corpus, FitSettings.from_config(cfg, run_dir))


@pytest.mark.parametrize("chosen, min_speedup", [("bf16", 0.0), ("fp32", math.inf)])
def test_auto_trains_exactly_like_the_precision_it_chose(chosen, min_speedup, tiny_word_corpus, tiny_text_dir,
                                                        tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"amx_bf16"})  # measured on any CPU
    monkeypatch.setattr(hardware, "BF16_MIN_SPEEDUP", min_speedup)
    cfg = tiny_config("lstm", tiny_text_dir, "train.max_epochs=2")
    auto, auto_stats = fit(tiny_word_corpus, OmegaConf.merge(cfg, {"train": {"precision": "auto"}}),
                           tmp_path / "auto")
    fixed, fixed_stats = fit(tiny_word_corpus, OmegaConf.merge(cfg, {"train": {"precision": chosen}}),
                             tmp_path / "fixed")
    assert auto_stats["precision"] == chosen and fixed_stats["precision_choice"]["why"].endswith(chosen)
    choice = auto_stats["precision_choice"]
    assert choice["ratio"] == pytest.approx(choice["fp32_s"] / choice["bf16_s"]) and "speed" in choice["why"]
    assert auto_stats["valid_ppl_history"] == fixed_stats["valid_ppl_history"]
    tokens, starts = tiny_word_corpus.test, np.array([0])
    assert np.array_equal(auto.log_probs(tokens, starts, 8), fixed.log_probs(tokens, starts, 8))


def test_a_resumed_run_keeps_the_precision_it_chose(tiny_word_corpus, tiny_text_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"amx_bf16"})
    monkeypatch.setattr(hardware, "BF16_MIN_SPEEDUP", 0.0)  # bf16 wins the measurement
    cfg = tiny_config("lstm", tiny_text_dir, "train.precision=auto", "train.max_epochs=1")
    first = fit(tiny_word_corpus, cfg, tmp_path)[1]
    monkeypatch.setattr(train_module.Trainer, "_time_precisions", lambda self: never_measured())
    resumed = OmegaConf.merge(cfg, {"train": {"max_epochs": 2, "resume": True}})
    stats = fit(tiny_word_corpus, resumed, tmp_path)[1]
    assert stats["epochs"] == 2 and stats["precision"] == first["precision"] == "bf16"
    assert stats["precision_choice"] == first["precision_choice"]


def test_a_choice_is_measured_once_per_machine_and_job_shape(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"amx_bf16"})
    shape = {"model": {"name": "gru", "hidden_size": 128}, "batch_size": 32, "threads": 1}
    first = choose_precision("auto", CPU, timings(0.2, 0.25), shape)
    assert first[0] == "fp32"
    again = choose_precision("auto", CPU, never_measured, shape)  # another seed, a rerun: same choice
    assert again[0] == "fp32" and again[1]["why"] == first[1]["why"] and "cached" in again[1]
    other = choose_precision("auto", CPU, timings(0.3, 0.2), {**shape, "batch_size": 64})
    assert other[0] == "bf16"
    assert choose_precision("auto", CPU, timings(0.3, 0.2))[0] == "bf16"  # no shape: always measured
