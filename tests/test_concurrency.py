"""Many jobs at once: every record lands whole and the shared table ends up listing them all."""

from __future__ import annotations

import json

import pandas as pd
from test_app import lmbench

TINY = ["corpus.train_tokens=3000", "corpus.valid_tokens=500", "corpus.test_tokens=500",
        "eval.bootstrap_samples=50"]


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
