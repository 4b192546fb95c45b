"""The comparison report: tables from records, paired tests, plots, regeneration, bad records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_app import SMALL, lmbench

from lmbench.evaluate import paired_bootstrap
from lmbench.report import build


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    base = rng.exponential(3.0, 20_000)
    better = base - 0.05 + rng.normal(0, 0.2, base.shape)
    same = base + rng.normal(0, 0.2, base.shape)
    clear = paired_bootstrap(better, base)
    assert clear["significant"] and clear["diff_hi"] < 0 and clear["p_value"] < 0.01
    null = paired_bootstrap(same, base)
    assert null["diff_lo"] < 0 < null["diff_hi"] and not null["significant"]


def test_sweep_report_has_seed_statistics_pairs_plots_and_regenerates_identically(tmp_path):
    done = lmbench(tmp_path, "-m", "model=unigram,oracle", "seed=0,1", *SMALL)
    assert done.returncode == 0, done.stderr
    (sweep,) = (tmp_path / "results" / "sweeps").iterdir()
    for name in ("report.md", "report.html", "summary.csv", "summary.tex", "pairs.csv", "memory.csv",
                 "speed.csv"):
        assert (sweep / name).exists(), name
    summary = pd.read_csv(sweep / "summary.csv")
    assert list(summary.model) == ["oracle", "unigram"] and (summary.seeds == 2).all()
    assert (summary.ci_lo < summary.test_ppl).all() and (summary.test_ppl < summary.ci_hi).all()
    pair = pd.read_csv(sweep / "pairs.csv").iloc[0]
    assert pair.better == "oracle" and pair.significant
    page = (sweep / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 1
    tables = {p.name: p.read_bytes() for p in sweep.glob("*.csv")}
    out = tmp_path / "again"
    build(sweep, out)
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == tables


def test_report_skips_a_corrupt_record_and_says_so(tmp_path, capsys):
    assert lmbench(tmp_path, *SMALL).returncode == 0
    bad = tmp_path / "results" / "runs" / "broken"
    bad.mkdir(parents=True)
    (bad / "record.json").write_text("{not json")
    result = build(tmp_path / "results")
    assert result == {**result, "records": 1, "skipped": 1}
    assert "broken" in capsys.readouterr().err
    assert "1 unreadable records skipped" in (tmp_path / "results" / "report.md").read_text()


@pytest.mark.parametrize("corpus", ["synthetic", "tinyshakespeare", "ptb"])
def test_the_committed_reference_reports_regenerate_byte_for_byte(tmp_path, corpus):
    from conftest import ROOT

    reference = ROOT / "results" / "reference" / corpus
    committed = {p.name: p.read_bytes() for p in reference.glob("*.csv")}
    assert {"summary.csv", "pairs.csv", "memory.csv", "speed.csv", "table.csv"} <= set(committed)
    build(reference, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.csv")} == committed
    assert (tmp_path / "summary.tex").read_bytes() == (reference / "summary.tex").read_bytes()
