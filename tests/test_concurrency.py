"""Many jobs at once: every record lands whole and the shared table ends up listing them all."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import ROOT, TINY, lmbench, read_records

pytestmark = pytest.mark.slow  # every test here starts the app


def test_eight_parallel_jobs_write_eight_valid_records_and_a_consistent_table(tmp_path):
    done = lmbench(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=8",
                   "seed=0,1,2,3,4,5,6,7", *TINY)
    assert done.returncode == 0, done.stderr
    paths = list((tmp_path / "results").rglob("record.json"))
    assert len(paths) == 8
    records = [json.loads(p.read_text()) for p in paths]
    assert sorted(r["config"]["seed"] for r in records) == list(range(8))
    assert all(r["status"] == "ok" for r in records)
    assert any(r["job"]["concurrent_jobs"] > 0 for r in records)
    table = pd.read_csv(tmp_path / "results" / "table.csv")
    assert sorted(table[table.run != "-"].run) == sorted(r["id"] for r in records)
    assert not list((tmp_path / "results").rglob("*.part"))


def test_runs_and_sweeps_started_in_the_same_second_never_share_a_folder(tmp_path):
    """Two different runs whose folder names used to coincide (same model, corpus and seed), and
    two sweeps, all started at once into one results folder: every record survives."""
    results = f"results_dir={tmp_path / 'results'}"
    commands = [["model=unigram", "model.add_k=1"], ["model=unigram", "model.add_k=0.5"],
                ["-m", "model=unigram", "seed=3"], ["-m", "model=unigram", "seed=4"]]
    started = [subprocess.Popen([sys.executable, "-m", "lmbench", *c, *TINY, results], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    for process in started:
        assert process.wait(timeout=300) == 0, process.stderr.read()
    paths = list((tmp_path / "results").rglob("record.json"))
    found = sorted((r["config"]["model"]["add_k"], r["config"]["seed"])
                   for r in (json.loads(p.read_text()) for p in paths))
    assert found == [(0.5, 0), (1.0, 0), (1.0, 3), (1.0, 4)]
    assert len({p.parent for p in paths}) == 4
    assert len(list((tmp_path / "results" / "sweeps").iterdir())) == 2
    table = pd.read_csv(tmp_path / "results" / "table.csv")
    assert len(table[table.run != "-"]) == 4


LONGER = ["corpus.train_tokens=20000", "train.max_epochs=1000", "train.max_minutes=0.25"]  # 15 s of training


def _start(tmp_path, *overrides):
    command = [sys.executable, "-m", "lmbench", *overrides, f"results_dir={tmp_path / 'results'}"]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(folder, pattern, process):
    """Until ``process`` has started its job (written its marker) in ``folder``/``pattern``."""
    while not list(folder.glob(f"{pattern}/job.json")):
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)


@pytest.mark.parametrize("second", [["model=unigram"], ["model=lstm", "train.max_epochs=1"]])
def test_a_run_given_the_folder_of_a_running_run_is_refused_and_writes_nothing_there(tmp_path, second):
    """The second command exits 1 saying the folder is in use; the first keeps its folder and its own
    record, whatever the second would have run (another family, or the same one)."""
    folder = tmp_path / "results" / "shared_run"
    first = _start(tmp_path, "model=lstm", *LONGER, *TINY, f"hydra.run.dir={folder}")
    _wait_for(folder, ".", first)
    refused = lmbench(tmp_path, *second, *TINY, f"hydra.run.dir={folder}")
    assert refused.returncode == 1
    assert "in use by another lmbench process (lmbench model=lstm" in refused.stderr
    assert "Traceback" not in refused.stderr and "ppl" not in refused.stdout
    assert first.wait(timeout=300) == 0, first.stderr.read()
    (record,) = read_records(tmp_path)
    assert record["model"] == "lstm" and record["status"] == "ok"
    assert record["config"]["train"]["max_epochs"] == 1000


def test_two_sweeps_given_one_sweep_folder_keep_both_records(tmp_path):
    """Different jobs of two sweeps never share a job folder; the same job, started again into the
    folder while it runs, waits for it and is skipped: one job, one record."""
    sweep = f"hydra.sweep.dir={tmp_path / 'results' / 'sweep'}"
    for add_k in ("1", "0.5"):
        done = lmbench(tmp_path, "-m", "model=unigram", f"model.add_k={add_k}", *TINY, sweep)
        assert done.returncode == 0, done.stderr
    found = sorted(r["config"]["model"]["add_k"] for r in read_records(tmp_path))
    assert found == [0.5, 1.0]
    job = ["-m", "model=lstm", *LONGER, *TINY, sweep]
    first = _start(tmp_path, *job)
    _wait_for(tmp_path / "results" / "sweep", "0_lstm_*", first)
    second = _start(tmp_path, *job)
    out, err = second.communicate(timeout=300)
    assert first.wait(timeout=300) == 0 and second.returncode == 0, err
    lstm = [r for r in read_records(tmp_path) if r["model"] == "lstm"]
    assert len(lstm) == 1 and lstm[0]["status"] == "ok"
    assert "skipping: this job already finished" in out + err
