"""Shared fixtures: an isolated corpus cache and results folder, tiny corpora, config composition."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from lmbench import config, models
from lmbench.corpora import load_corpus

ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPORA = ROOT.parent / "shared" / "corpora"

models.load_all()
config.register_all()

TINY_TEXT = "".join(
    f'the {a} said "{b} {c}" and left .\n' for a, b, c in
    [("cat", "hello", "there"), ("dog", "good", "day"), ("man", "not", "now"), ("cat", "see", "you")]
) * 30


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own corpus cache; the mirror is the shared one when it exists."""
    monkeypatch.setenv("LMBENCH_CACHE", str(tmp_path / "cache"))
    if SHARED_CORPORA.is_dir():
        monkeypatch.setenv("LMBENCH_MIRROR", str(SHARED_CORPORA))
    else:
        monkeypatch.delenv("LMBENCH_MIRROR", raising=False)
    return tmp_path / "cache"


def compose_config(*overrides: str):
    """The config ``python -m lmbench <overrides>`` would run, composed without running it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose(config_name="config", overrides=list(overrides))


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
    return load_corpus(compose_config("corpus=file", f"corpus.path={tiny_text_dir}",
                                      "corpus.level=word").corpus)


@pytest.fixture
def tiny_char_corpus(tiny_text_dir):
    return load_corpus(compose_config("corpus=file", f"corpus.path={tiny_text_dir}").corpus)


@pytest.fixture
def small_synthetic():
    """A synthetic corpus small enough to train on in seconds."""
    return load_corpus(compose_config("corpus.train_tokens=20000", "corpus.valid_tokens=3000",
                                      "corpus.test_tokens=3000").corpus)


def needs_shared(*relative: str):
    """Skip marker for tests that need a file from the shared corpus mirror."""
    missing = [r for r in relative if not (SHARED_CORPORA / r).exists()]
    return pytest.mark.skipif(bool(missing), reason=f"corpus mirror lacks {missing}")
