"""A job's life cycle in process: records on success and on failure, atomically written."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import TINY, compose_config

from lmbench import models
from lmbench.models.unigram import Unigram
from lmbench.run import run


class ExplodingUnigram(Unigram):
    """A unigram whose training crashes half way, as a bug or an out-of-memory would."""

    def fit(self, corpus, settings):
        raise RuntimeError("simulated crash in fit")


def test_a_run_that_raises_still_writes_a_failed_record(tmp_path, monkeypatch):
    monkeypatch.setitem(models._REGISTRY, "unigram", ExplodingUnigram)
    cfg = compose_config("model=unigram", *TINY, f"results_dir={tmp_path}")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(cfg, tmp_path / "job")
    record = json.loads((tmp_path / "job" / "record.json").read_text())
    assert record["status"] == "failed"
    assert "simulated crash in fit" in record["error"] and "Traceback" in record["traceback"]
    assert (tmp_path / "table.csv").read_text().count("failed") == 1


def test_records_are_written_without_leftover_temporary_files(tmp_path):
    cfg = compose_config(*TINY, f"results_dir={tmp_path}")
    record = run(cfg, tmp_path / "job")
    assert record["status"] == "ok"
    assert json.loads((tmp_path / "job" / "record.json").read_text())["id"] == record["id"]
    assert not list(tmp_path.rglob("*.part"))
    assert (tmp_path / "job" / "test_losses.npy").exists()


def test_git_commit_is_dirty_for_changed_code_but_not_for_changed_results(tmp_path):
    from lmbench.provenance import git_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.md").write_text("old\n")
    (tmp_path / "model.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    clean = git_commit(tmp_path)
    assert clean and len(clean) == 40
    (tmp_path / "results" / "table.md").write_text("a sweep rewrote its table\n")
    assert git_commit(tmp_path) == clean
    (tmp_path / "model.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == clean + "-dirty"
