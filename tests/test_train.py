"""The one trainer: exact resume, divergence, schedules, budgets, checkpoint safety."""

from __future__ import annotations

import logging
import math
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import seeded_model, tiny_config
from omegaconf import OmegaConf

from lmbench import hardware
from lmbench import train as train_module
from lmbench.config import validate
from lmbench.corpora import load_corpus
from lmbench.errors import UserError
from lmbench.hardware import resolve_precision
from lmbench.models.base import FitSettings
from lmbench.models.neural import LinearCrossEntropy
from lmbench.runs import checkpoint
from lmbench.train import Schedule, TrainState

pytestmark = pytest.mark.usefixtures("one_thread")


def fit(corpus, cfg, run_dir, family="lstm"):
    model = seeded_model(family, corpus, cfg)
    return model, model.fit(corpus, FitSettings.from_config(cfg, run_dir))


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_killed_and_resumed_run_ends_exactly_like_an_uninterrupted_one(family, tiny_word_corpus,
                                                                       tiny_text_dir, tmp_path, caplog):
    # dropout makes the RNG state part of what a resume must restore
    cfg = tiny_config(family, tiny_text_dir, "model.dropout=0.3", "train.max_epochs=3")
    whole, whole_stats = fit(tiny_word_corpus, cfg, tmp_path / "whole", family)
    killed = OmegaConf.merge(cfg, {"train": {"max_epochs": 1}})  # stops after epoch 1's checkpoint
    fit(tiny_word_corpus, killed, tmp_path / "resumed", family)
    assert checkpoint.load(tmp_path / "resumed" / checkpoint.CHECKPOINT)["state"]["epoch"] == 1
    resumed_cfg = OmegaConf.merge(cfg, {"train": {"resume": True}})
    with caplog.at_level(logging.INFO, logger="lmbench.train"):
        resumed, resumed_stats = fit(tiny_word_corpus, resumed_cfg, tmp_path / "resumed", family)
    assert "after epoch 1" in caplog.text  # it went on from epoch 1, not from scratch
    assert resumed_stats["valid_ppl_history"] == whole_stats["valid_ppl_history"]
    assert resumed_stats["lr_history"] == whole_stats["lr_history"]
    tokens, starts = tiny_word_corpus.test, np.array([0])
    assert np.array_equal(resumed.log_probs(tokens, starts, 8), whole.log_probs(tokens, starts, 8))


def test_nan_loss_stops_with_the_last_good_weights(tiny_word_corpus, tiny_text_dir, tmp_path):
    cfg = tiny_config("lstm", tiny_text_dir, "train.max_epochs=3")
    model = seeded_model("lstm", tiny_word_corpus, cfg)
    steps_per_epoch = math.ceil((len(tiny_word_corpus.train) // 4 - 1) / 8)
    calls = []
    chunk_loss = model.chunk_loss

    def poisoned(x, y, state):  # the loss goes NaN at the 3rd step of epoch 2
        loss, state = chunk_loss(x, y, state)
        calls.append(1)
        return (loss * math.nan if len(calls) >= steps_per_epoch + 3 else loss), state

    model.chunk_loss = poisoned
    stats = model.fit(tiny_word_corpus, FitSettings.from_config(cfg, tmp_path))
    assert stats["stopped_by"] == "diverged"
    assert stats["diverged_step"] == steps_per_epoch + 3 and stats["epochs"] == 1
    saved = checkpoint.load(tmp_path / checkpoint.CHECKPOINT)
    assert saved["state"]["epoch"] == 1  # the last good checkpoint was kept
    weights = model.net.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in saved["model"].items())
    assert np.all(np.isfinite(model.log_probs(tiny_word_corpus.test, np.array([0]), 8)))


def test_a_checkpoint_from_another_run_or_a_corrupt_one_is_refused(tiny_word_corpus, tiny_text_dir,
                                                                  tmp_path):
    cfg = tiny_config("lstm", tiny_text_dir, "train.max_epochs=1")
    fit(tiny_word_corpus, cfg, tmp_path)
    path = tmp_path / checkpoint.CHECKPOINT
    before = path.read_bytes()
    with pytest.raises(UserError, match="already exists"):  # a fresh run never overwrites one
        fit(tiny_word_corpus, cfg, tmp_path)
    for change, differs in [({"model": {"hidden_size": 16, "emb_size": 16}}, "model.hidden_size"),
                            ({"train": {"bptt": 5}}, "train.bptt"),
                            ({"corpus": {"level": "char"}}, "corpus_fingerprint")]:
        other = OmegaConf.merge(cfg, change, {"train": {"resume": True}})
        corpus = load_corpus(other.corpus) if "corpus" in change else tiny_word_corpus
        with pytest.raises(UserError, match=f"belongs to another run \\(.*{differs}: checkpoint has"):
            fit(corpus, other, tmp_path)
    assert path.read_bytes() == before
    path.write_bytes(before[: len(before) // 2])
    with pytest.raises(UserError, match="corrupt"):
        fit(tiny_word_corpus, OmegaConf.merge(cfg, {"train": {"resume": True}}), tmp_path)
    with pytest.raises(UserError, match="No checkpoint"):
        fit(tiny_word_corpus, OmegaConf.merge(cfg, {"train": {"resume": True}}), tmp_path / "empty")


def test_budgets_stop_training(tiny_word_corpus, tiny_text_dir, tmp_path):
    cfg = tiny_config("rnn", tiny_text_dir, "train.max_tokens=100", "train.max_epochs=5")
    _, stats = fit(tiny_word_corpus, cfg, tmp_path / "tokens", "rnn")
    assert stats["stopped_by"] == "max_tokens" and 100 <= stats["tokens"] < 100 + 4 * 8
    assert stats["epochs"] == 1
    cfg = tiny_config("rnn", tiny_text_dir, "train.max_minutes=0.000001")
    _, stats = fit(tiny_word_corpus, cfg, tmp_path / "minutes", "rnn")
    assert stats["stopped_by"] == "max_minutes" and stats["steps"] == 1


def test_early_stopping_and_plateau_decay(tiny_word_corpus, tiny_text_dir, tmp_path):
    # SGD steps of 1e-30 leave float32 weights unchanged, so validation never improves
    cfg = tiny_config("gru", tiny_text_dir, "train.lr=1e-30", "train.optimizer=sgd", "train.patience=2",
                      "train.max_epochs=5", "train.lr_decay=0.5", "train.schedule=plateau")
    _, stats = fit(tiny_word_corpus, cfg, tmp_path, "gru")
    assert stats["stopped_by"] == "early_stopping" and stats["epochs"] == 3 and stats["best_epoch"] == 1
    assert stats["lr_history"] == [1e-30, 1e-30, 5e-31]  # decayed after the first epoch without gain


def test_schedules():
    tc = OmegaConf.create({"lr": 1.0, "lr_decay": 0.5, "decay_start": 4, "schedule": "step",
                           "warmup_steps": 10})
    step = Schedule(tc, total_steps=110)
    assert [step.epoch_start(TrainState(lr=1.0), e) for e in range(1, 8)] == [1, 1, 1, 1, 0.5, 0.25, 0.125]
    assert step.at_step(3) is None
    plateau = Schedule(OmegaConf.merge(tc, {"schedule": "plateau"}), total_steps=110)
    state = TrainState(lr=0.25)
    assert plateau.epoch_start(state, 9) == 0.25
    plateau.validated(state, 0.25, improved=True)
    assert state.lr == 0.25
    plateau.validated(state, 0.25, improved=False)
    assert state.lr == 0.125
    cosine = Schedule(OmegaConf.merge(tc, {"schedule": "cosine"}), total_steps=110)
    assert cosine.at_step(0) == pytest.approx(0.1) and cosine.at_step(9) == 1.0
    assert cosine.at_step(60) == pytest.approx(0.5) and cosine.at_step(110) == pytest.approx(0)


@pytest.mark.parametrize("family", ["fnn", "lstm", "transformer"])
def test_bf16_trains_and_is_recorded(family, tiny_word_corpus, tiny_text_dir, tmp_path):
    cfg = tiny_config(family, tiny_text_dir, "train.precision=bf16", "train.max_epochs=2")
    model, stats = fit(tiny_word_corpus, cfg, tmp_path, family)
    assert stats["precision"] == "bf16"
    assert stats["valid_ppl_history"][1] < stats["valid_ppl_history"][0]
    assert np.all(np.isfinite(model.log_probs(tiny_word_corpus.test, np.array([0]), 8)))


def test_auto_precision_follows_the_hardware(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert resolve_precision("auto", cpu) == "bf16"
    assert resolve_precision("auto", torch.device("mps")) == "fp32"


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc tuning")
def test_freed_memory_is_kept_only_inside_the_block():
    """A freed 64 MB block stays in the process (its pages reused, not faulted in again) inside
    ``freed_memory(keep=True)``, goes back to the system under ``keep=False``, and each block leaves
    the setting it found. In a fresh process, as mallopt's thresholds outlive any test."""
    script = """
import numpy as np, psutil
from lmbench import hardware
def growth():
    before = psutil.Process().memory_info().rss
    block = np.ones(1 << 23)
    del block
    return (psutil.Process().memory_info().rss - before) / 2**20
with hardware.freed_memory(keep=False):
    returned = growth()
with hardware.freed_memory(keep=True):
    kept = growth()
    with hardware.freed_memory(keep=False):
        assert not hardware._keeping_freed_memory
    assert hardware._keeping_freed_memory
assert not hardware._keeping_freed_memory
print(round(returned), round(kept))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    returned, kept = map(int, done.stdout.split())
    assert returned < 8 and kept > 56


def test_auto_threads_share_the_cores_among_running_jobs(tiny_word_corpus, tiny_text_dir, tmp_path,
                                                         monkeypatch):
    monkeypatch.setattr(hardware, "available_cores", lambda: 8)
    assert hardware.resolve_threads("auto", 1) == 8 and hardware.resolve_threads("auto", 3) == 2
    assert hardware.resolve_threads("auto", 20) == 1 and hardware.resolve_threads(3, 20) == 3
    assert hardware.cpus_to_request("auto") == 1 and hardware.cpus_to_request(0) == 1
    assert hardware.cpus_to_request(4) == 4
    monkeypatch.setattr(hardware, "available_cores", lambda: 2)
    monkeypatch.setattr(train_module, "running_jobs", lambda: 2)  # another lmbench job is running
    cfg = tiny_config("rnn", tiny_text_dir, "train.threads=auto", "train.max_tokens=50", "train.bptt=32")
    assert fit(tiny_word_corpus, cfg, tmp_path / "shared", "rnn")[1]["threads"] == 1
    monkeypatch.setattr(train_module, "running_jobs", lambda: 1)
    assert fit(tiny_word_corpus, cfg, tmp_path / "alone", "rnn")[1]["threads"] == 2
    # a resumed run keeps the threads it started with, so it does the same sums as an unbroken one
    cfg = OmegaConf.merge(cfg, {"train": {"max_tokens": None, "max_epochs": 1}})
    fit(tiny_word_corpus, cfg, tmp_path / "resumed", "rnn")
    monkeypatch.setattr(train_module, "running_jobs", lambda: 2)
    resumed = OmegaConf.merge(cfg, {"train": {"max_epochs": 2, "resume": True}})
    assert fit(tiny_word_corpus, resumed, tmp_path / "resumed", "rnn")[1]["threads"] == 2


def test_matmul_peak_is_measured_once_and_cached_by_processor(isolated_cache, monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(hardware, "_peaks", {})  # as in a fresh process
    peak = hardware.matmul_peak(cpu)
    assert 1e8 < peak["fp32"] < 1e15 and 1e8 < peak["bf16"] < 1e15
    [cached] = (isolated_cache / "machine").glob("peak-*.json")
    monkeypatch.setattr(hardware, "_peaks", {})  # a new process reads the file, measuring nothing
    monkeypatch.setattr(hardware, "measure_peak", lambda *a: pytest.fail("measured again"))
    assert hardware.matmul_peak(cpu) == peak
    torch.set_num_threads(2)  # a run on two cores can hope for twice one core's peak
    assert hardware.matmul_peak(cpu) == {dtype: 2 * flops for dtype, flops in peak.items()}


@pytest.mark.parametrize("bias", [True, False])
def test_fused_bf16_loss_matches_float32_cross_entropy(bias):
    torch.manual_seed(0)
    features = torch.randn(64, 32, requires_grad=True)
    weight = (0.3 * torch.randn(500, 32)).requires_grad_()
    b = (0.1 * torch.randn(500)).requires_grad_() if bias else None
    targets = torch.randint(0, 500, (64,))
    reference = F.cross_entropy(F.linear(features, weight, b), targets)
    expected = torch.autograd.grad(2 * reference, [features, weight] + ([b] if bias else []))
    loss = LinearCrossEntropy.apply(features, weight, b, targets)
    got = torch.autograd.grad(2 * loss, [features, weight] + ([b] if bias else []))
    assert loss.dtype == torch.float32 and abs(loss.item() - reference.item()) < 0.02
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and torch.allclose(g, e, rtol=0.05, atol=0.02 * e.abs().max().item())


@pytest.mark.parametrize("override, message", [
    ("train.bptt=0", "train.bptt"), ("train.lr=-1", "train.lr"), ("train.threads=-1", "train.threads"),
    ("train.threads=many", "train.threads"), ("train.threads=2.5", "train.threads"),
])
def test_bad_train_config_is_a_user_error(override, message, tiny_text_dir):
    with pytest.raises(UserError, match=message):
        validate(tiny_config("lstm", tiny_text_dir, override))
