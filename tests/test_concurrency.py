"""Many jobs at once: every record lands whole and the shared table ends up listing them all."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, TINY, lmbench

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
