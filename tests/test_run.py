"""A job's life cycle in process: records on success and on failure, atomically written."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import TINY

from lmbench.compose import compose
from lmbench.files import locked
from lmbench.models.unigram import Unigram
from lmbench.runs import records
from lmbench.runs.run import run
from lmbench.runs.rundir import RunDir


class ExplodingUnigram(Unigram):
    """A unigram whose training crashes half way, as a bug or an out-of-memory would."""

    def fit(self, corpus, settings):
        raise RuntimeError("simulated crash in fit")


def test_a_run_that_raises_still_writes_a_failed_record(tmp_path, monkeypatch):
    monkeypatch.setattr("lmbench.models.unigram.Unigram", ExplodingUnigram)
    cfg = compose("model=unigram", *TINY, f"results_dir={tmp_path}")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(cfg, tmp_path / "job")
    record = json.loads((tmp_path / "job" / "record.json").read_text())
    assert record["status"] == "failed" and record["version"] == records.VERSION
    assert "simulated crash in fit" in record["error"] and "Traceback" in record["traceback"]
    assert (tmp_path / "table.csv").read_text().count("failed") == 1


def test_records_are_written_without_leftover_temporary_files(tmp_path):
    cfg = compose(*TINY, f"results_dir={tmp_path}")
    record = run(cfg, tmp_path / "job")
    assert record["status"] == "ok" and record["version"] == records.VERSION
    assert json.loads((tmp_path / "job" / "record.json").read_text())["id"] == record["id"]
    assert not list(tmp_path.rglob("*.part"))
    assert (tmp_path / "job" / "test_losses.npy").exists()


SMALLEST = {"id": "x", "model": "unigram", "status": "ok", "config": {}, "corpus": {"name": "synthetic"}}


def test_a_record_update_waits_for_the_folders_lock_and_keeps_what_the_record_holds(tmp_path):
    import threading

    folder = RunDir(tmp_path)
    folder.write_record({**SMALLEST, "version": records.VERSION, "job": {"command": "lmbench"}})
    with locked(tmp_path):
        writer = threading.Thread(target=folder.update_record, kwargs={"job": {"requeues": 1}})
        writer.start()
        writer.join(0.5)
        assert writer.is_alive()  # a diagnose writing the same record holds the lock: the update waits
        folder.write_record({**folder.record, "diagnostics": {"cells": {}}})
    writer.join()
    found = json.loads(folder.record_path.read_text())
    assert found["job"] == {"command": "lmbench", "requeues": 1} and found["diagnostics"] == {"cells": {}}


def test_an_old_record_without_a_version_is_read_in_the_current_layout(tmp_path):
    orders = [{"order": 1, "test_unseen_fraction": 0.0}, {"order": 2, "test_unseen_fraction": 0.4}]
    old = {**SMALLEST, "model": "ngram", "metrics": {"test": {"ppl": 3.0}}, "timing": {"train_seconds": 20.0},
           "train": {"train_seconds": 90.0, "ngram": {"orders": orders}}}
    RunDir(tmp_path / "old").write_record(old)
    record = RunDir(tmp_path / "old").record
    assert record["version"] == records.VERSION
    assert record["timing"]["train_seconds"] == 90.0  # version 0 left out the epochs before a resume
    assert record["metrics"]["test"]["unseen_fraction_by_order"] == [0.0, 0.4]
    assert "version" not in json.loads((tmp_path / "old" / "record.json").read_text())  # read, not rewritten
    RunDir(tmp_path / "new").write_record({**old, "version": records.VERSION})
    assert RunDir(tmp_path / "new").record["timing"]["train_seconds"] == 20.0  # the current layout, as is


def test_a_record_under_a_corrected_row_name_is_still_the_job_its_recipe_composes_today(tmp_path):
    from omegaconf import OmegaConf

    from lmbench.runs.jobs import config_hash, find_done

    cfg = compose("recipe=brown/mlp_h100")
    today = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    old_name, = records.RENAMED_ROWS
    config = {**today, "published": {**today["published"], "beats_rows": ["Kneser-Ney n=3", old_name]}}
    old = {**SMALLEST, "version": 1, "status": "ok", "config": config, "config_hash": "old",
           "corpus": {"name": "brown", "fingerprint": "f"}}
    folder = RunDir(tmp_path / "run")
    folder.write_record(old)
    folder.mark_started("old", "f", None)
    assert folder.record["config"]["published"]["beats_rows"] == today["published"]["beats_rows"]
    assert find_done(tmp_path, config_hash(cfg), "f").path == folder.path  # a rerun skips it as done


def test_git_commit_is_dirty_for_changed_code_but_not_for_changed_results(tmp_path):
    from lmbench.runs.provenance import git_commit

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
