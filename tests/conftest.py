"""Shared fixtures and helpers, the one home of both: an isolated corpus cache, tiny corpora, config
composition, the app run as a user runs it, and the sizes tests run at (one name per meaning)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lmbench import models
from lmbench.compose import compose, register_all
from lmbench.corpora import load_corpus

ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPORA = ROOT.parent / "shared" / "corpora"

register_all()

# ---------------------------------------------------------------- the sizes tests run at
# A job of seconds: 3,000 synthetic tokens, one epoch, a short bootstrap (conf/debug/tiny.yaml).
TINY = ["debug=tiny"]
RECIPES = sorted(p.relative_to(ROOT / "conf" / "recipe").with_suffix("").as_posix()
                 for p in (ROOT / "conf" / "recipe").rglob("*.yaml"))  # every recipe=, as ptb/kn5
# Networks 8 wide, for a TINY job of a neural family that only has to run, not to learn.
TINY_NETWORKS = {
    "fnn": ["model.emb_size=8", "model.hidden_size=8"],
    **{family: ["model.emb_size=8", "model.hidden_size=8"] for family in ("rnn", "lstm", "gru")},
    "transformer": ["model.d_model=8", "model.heads=2", "model.context=16"],
}
# Networks that learn the tiny word corpus in three epochs (to well under the unigram's perplexity).
LEARNING_NETWORKS = {
    "fnn": ["model.order=3", "model.emb_size=16", "model.hidden_size=32"],
    "rnn": ["model.emb_size=32", "model.hidden_size=32"],
    "lstm": ["model.emb_size=32", "model.hidden_size=32", "model.layers=2", "model.dropout=0.1"],
    "gru": ["model.emb_size=32", "model.hidden_size=32", "model.tie_weights=true"],
    "transformer": ["model.d_model=32", "model.heads=2", "model.layers=1", "model.context=12"],
}
NEURAL_FAMILIES = list(LEARNING_NETWORKS)
# A synthetic corpus big enough for the oracle floor and paired tests to separate models clearly.
SYNTHETIC_20K = ["corpus.train_tokens=20000", "corpus.valid_tokens=3000", "corpus.test_tokens=3000"]

TINY_TEXT = "".join(
    f'the {a} said "{b} {c}" and left .\n' for a, b, c in
    [("cat", "hello", "there"), ("dog", "good", "day"), ("man", "not", "now"), ("cat", "see", "you")]
) * 30


# ---------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own corpus cache; the mirror is the shared one when it exists."""
    monkeypatch.setenv("LMBENCH_CACHE", str(tmp_path / "cache"))
    if SHARED_CORPORA.is_dir():
        monkeypatch.setenv("LMBENCH_MIRROR", str(SHARED_CORPORA))
    else:
        monkeypatch.delenv("LMBENCH_MIRROR", raising=False)
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def fast_tests_start_no_python(request, monkeypatch):
    """Starting Python (the app, a sweep, a CLI) costs seconds: a test that does must be marked
    ``slow``, so that ``pytest -m "not slow"`` stays fast. Other programs (git, uname) are let through."""
    if request.node.get_closest_marker("slow"):
        return

    class Refused(subprocess.Popen):
        def __init__(self, args, *rest, **options):
            program = str(args[0] if isinstance(args, (list, tuple)) else args).split()[0]
            if program == sys.executable or Path(program).name.startswith("python"):
                pytest.fail(f"{request.node.nodeid} starts Python: mark it @pytest.mark.slow", pytrace=False)
            super().__init__(args, *rest, **options)

    monkeypatch.setattr(subprocess, "Popen", Refused)


@pytest.fixture
def one_thread():
    """Tiny models train far faster on one thread, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_text_dir(tmp_path) -> Path:
    """A folder corpus of a few hundred words with train/valid/test files."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    lines = TINY_TEXT.splitlines(keepends=True)
    (folder / "train.txt").write_text("".join(lines[:100]))
    (folder / "valid.txt").write_text("".join(lines[100:110]))
    (folder / "test.txt").write_text("".join(lines[110:120]))
    return folder


@pytest.fixture
def tiny_word_corpus(tiny_text_dir):
    return load_corpus(compose("corpus=file", f"corpus.path={tiny_text_dir}",
                               "corpus.level=word").corpus)


@pytest.fixture
def tiny_char_corpus(tiny_text_dir):
    return load_corpus(compose("corpus=file", f"corpus.path={tiny_text_dir}").corpus)


@pytest.fixture
def small_synthetic():
    """A synthetic corpus small enough to train on in seconds."""
    return load_corpus(compose(*SYNTHETIC_20K).corpus)


# ---------------------------------------------------------------- helpers
def needs_shared(*relative: str):
    """Skip marker for tests that need a file from the shared corpus mirror."""
    missing = [r for r in relative if not (SHARED_CORPORA / r).exists()]
    return pytest.mark.skipif(bool(missing), reason=f"corpus mirror lacks {missing}")


def lmbench(tmp_path, *overrides, env=None):
    """Run ``python -m lmbench`` with results under ``tmp_path/results``; returns the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "lmbench", *overrides, f"results_dir={tmp_path / 'results'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def read_records(tmp_path) -> list[dict]:
    """Every run record below ``tmp_path/results``."""
    return [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("record.json")]


def tiny_config(family: str, corpus_dir, *overrides: str):
    """The run config of a short job of a LEARNING_NETWORKS network on the tiny word corpus, device
    resolved; fp32 on one thread, so the results depend neither on this machine's bf16 support nor
    on its load."""
    cfg = compose(f"model={family}", "corpus=file", f"corpus.path={corpus_dir}",
                  "corpus.level=word", "train.batch_size=4", "train.bptt=8",
                  "train.max_epochs=3", "train.lr=0.01", "train.optimizer=adam", "train.clip=1",
                  "train.precision=fp32", "train.threads=1", *LEARNING_NETWORKS[family], *overrides)
    return OmegaConf.merge(cfg, {"device": "cpu"})


def seeded_model(family: str, corpus, cfg):
    """``models.build`` with torch seeded, so the same config gives the same initial weights."""
    torch.manual_seed(0)
    return models.build(family, cfg.model, corpus)
