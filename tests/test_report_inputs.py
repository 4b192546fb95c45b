"""The report on records lmbench writes at the edges: exploded or ≈1 perplexities, odd corpus names,
diagnostics PNGs that are links, Ctrl-C while building, and a rerun sweep whose jobs were skipped."""

from __future__ import annotations

import base64
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TINY, lmbench
from test_report import _edit, _reference_runs

from lmbench.report import build, main
from lmbench.report.tables import perplexity, with_interval

RUNS = ["9_lstm_synthetic_s0", "12_gru_synthetic_s0", "0_ngram_synthetic_s0"]
PNG = (ROOT / "results" / "reference" / "synthetic" / "plots" / "ngram_synthetic.png").read_bytes()


def _perplexity(value: float, status: str):
    """A record's change: valid and test perplexity ``value`` (json writes inf/NaN), and ``status``."""
    def change(r):
        for split in ("valid", "test"):
            r["metrics"][split].update(ppl=value, ppl_ci=[value, value], nll=math.log(max(value, 1e-300)))
        r["train"]["history"][-1]["valid_ppl"] = value
        r["status"] = status
        if status == "diverged":
            r["diverged"] = "the training loss became non-finite at step 12"
    return change


@pytest.mark.parametrize("value, status", [(math.inf, "diverged"), (math.inf, "ok"), (math.nan, "ok"),
                                           (-math.inf, "ok")])
def test_a_run_whose_perplexity_is_not_finite_is_listed_as_diverged_never_ranked_or_tested(
        tmp_path, value, status):
    """lmbench writes ``Infinity`` for an exploded loss (older versions with status ok)."""
    sweep = _reference_runs(tmp_path, RUNS)
    _edit(sweep / RUNS[0], _perplexity(value, status))
    np.save(sweep / RUNS[0] / "test_losses.npy", np.full(20_000, np.inf, np.float16))  # fp16 overflow
    result = build(sweep)
    assert list(pd.read_csv(sweep / "summary.csv").model) == ["gru [compare]", "ngram [compare]"]
    assert len(pd.read_csv(sweep / "pairs.csv")) == 1  # gru against ngram only
    assert pd.read_csv(sweep / "table.csv").set_index("model").status["lstm"] == "diverged"
    md = (sweep / "report.md").read_text()
    assert "1 of 3 runs did not finish: lstm seed 0 (diverged)" in md
    failed = md.split("## Failed or diverged runs")[1].split("## ")[0]
    assert "| lstm | synthetic | 0 | diverged |" in failed
    assert ("non-finite at step 12" if status == "diverged" else f"perplexity is {value}") in failed
    assert "| lstm |" not in md.split("## Perplexity on synthetic")[1].split("## Paired")[0]
    assert "diverged: lstm seed 0" in result["console"]


def test_perplexities_that_are_not_finite_or_near_one_are_formatted():
    assert (perplexity(1.0000001), perplexity(1.0), perplexity(0.9999999)) == ("1.000",) * 3
    assert with_interval(1.0000001, 1.0, 1.0000003) == "1.000 [1.000, 1.000]"
    assert {perplexity(math.inf), perplexity(-math.inf), perplexity(math.nan)} == {"–"}
    assert with_interval(math.inf, math.inf, math.inf) == "–"
    assert with_interval(5.0, math.nan, math.nan) == "5.000"


@pytest.mark.parametrize("base", [1.0, 1.0000001])
def test_a_perplexity_of_about_one_is_ranked_and_plotted(tmp_path, base):
    """Losses ≈ 0 stored in 16 bits (as lmbench stores them) put the interval beside the mean."""
    sweep = _reference_runs(tmp_path, RUNS)
    for n, name in enumerate(RUNS):
        ppl = base + n * 1e-7
        _edit(sweep / name, lambda r, ppl=ppl: [r["metrics"][s].update(
            ppl=ppl, ppl_ci=[ppl, ppl], nll=math.log(ppl), bpc=0.0) for s in ("valid", "test")])
        np.save(sweep / name / "test_losses.npy", np.full(20_000, math.log(ppl), np.float16))
    build(sweep)
    board = (sweep / "report.md").read_text().split("## Perplexity on synthetic")[1]
    assert "| 1 | lstm | 1.000 [1.000, 1.000] | 0.000 |" in board
    assert (sweep / "plots" / "tradeoffs_synthetic.png").stat().st_size > 10_000


@pytest.mark.parametrize("name", ["a/../../b", "../escaped", "Zürich ✓ Ωmega", "with space#frag"])
def test_a_corpus_name_never_becomes_a_path(tmp_path, name):
    sweep = _reference_runs(tmp_path, RUNS[:2])
    for run in RUNS[:2]:
        _edit(sweep / run, lambda r: r["corpus"].update(name=name))
    before = {p for p in tmp_path.rglob("*") if sweep not in p.parents}
    result = build(sweep)
    assert {p for p in tmp_path.rglob("*") if sweep not in p.parents} == before
    drawn = {p.name for p in (sweep / "plots").iterdir()}
    assert all(p.is_file() for p in (sweep / "plots").iterdir()) and len(drawn) == 3
    assert {os.path.basename(f) for f in result["figures"]} == drawn
    md = (sweep / "report.md").read_text()
    assert sorted(md.count(f"(plots/{f})") for f in drawn) == [1, 1, 1] and f"Perplexity on {name}" in md
    assert (sweep / "report.html").read_text().count("data:image/png;base64,") == 2  # matrix as a table


def test_diagnostics_pngs_that_link_out_of_the_runs_are_refused_with_a_warning(tmp_path):
    sweep = _reference_runs(tmp_path, RUNS[:2])
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"TOP SECRET " * 50)
    run = sweep / RUNS[0] / "diagnostics"
    run.mkdir()
    (run / "gradients.png").write_bytes(PNG)
    (run / "same.png").symlink_to(run / "gradients.png")  # a link inside the run: fine
    (run / "passwd.png").symlink_to("/etc/passwd")
    (run / "secret.png").symlink_to(secret)
    (sweep / "diagnostics").mkdir()
    (sweep / "diagnostics" / "compare.png").symlink_to(secret)  # the sweep's comparison plots
    (sweep / RUNS[1] / "diagnostics").symlink_to(tmp_path, target_is_directory=True)  # a linked folder
    (sweep / "plots").mkdir()
    (sweep / "plots" / "tradeoffs_synthetic.png").symlink_to(secret)  # never written through
    result = build(sweep)
    page = (sweep / "report.html").read_text()
    for linked in (secret, Path("/etc/passwd")):
        assert base64.b64encode(linked.read_bytes()[:33]).decode() not in page
    assert secret.read_bytes() == b"TOP SECRET " * 50
    assert not (sweep / "plots" / "tradeoffs_synthetic.png").is_symlink()
    assert page.count(base64.b64encode(PNG).decode()) == 2  # gradients.png and its link inside the run
    assert sorted(n for f in result["figures"] if (n := os.path.basename(f)).startswith("diag")) == [
        "diagnostics_lstm_synthetic_s0_gradients.png", "diagnostics_lstm_synthetic_s0_same.png"]
    findings = (sweep / "report.md").read_text().split("## Findings")[1].split("## ")[0]
    for refused in ("passwd.png", "secret.png", "compare.png"):
        assert f"{refused} is not a file inside" in findings, refused


def _previous_report(tmp_path):
    """A report in ``out`` from two runs (the interrupted build is of more)."""
    out = tmp_path / "out"
    build(_reference_runs(tmp_path, RUNS[:2]), out)
    return out, (out / "report.html").read_bytes()


def test_ctrl_c_while_writing_the_report_says_so_in_one_line_and_leaves_every_file_whole(
        tmp_path, monkeypatch, capsys):
    from lmbench import files, report

    out, previous = _previous_report(tmp_path)
    three = _reference_runs(tmp_path / "three", RUNS)

    def interrupted(path, text):
        def half(f):  # Ctrl-C with part of the page written
            f.write(text[:1000])
            raise KeyboardInterrupt
        files.atomic_write(path, half if path.name == "report.html" else lambda f: f.write(text))

    monkeypatch.setattr(report, "atomic_write_text", interrupted)
    with pytest.raises(SystemExit) as stop:
        try:
            main([str(three), "--out", str(out)])
        except KeyboardInterrupt:  # would stop pytest itself
            pytest.fail("Ctrl-C left the report command as a traceback")
    assert stop.value.code == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("Interrupted; the report") and "\n" not in err
    assert (out / "report.html").read_bytes() == previous
    assert not list(out.rglob("*.part"))


@pytest.mark.slow
def test_ctrl_c_of_the_report_command_exits_130_without_a_traceback(tmp_path):
    out, previous = _previous_report(tmp_path)
    started = (out / "table.csv").stat().st_mtime_ns
    process = subprocess.Popen([sys.executable, "-m", "lmbench.report",
                                str(ROOT / "results" / "reference" / "synthetic"), "--out", str(out)],
                               cwd=ROOT, stderr=subprocess.PIPE, text=True)
    while (out / "table.csv").stat().st_mtime_ns == started:  # building: the tables come first
        assert process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert process.stderr.read().strip().count("\n") == 0
    assert (out / "report.html").read_bytes() == previous
    assert not list(out.rglob("*.part"))


@pytest.mark.slow
def test_a_rerun_sweep_reports_the_finished_runs_its_skipped_jobs_point_to(tmp_path):
    sweeps = tmp_path / "results" / "sweeps"
    assert lmbench(tmp_path, "-m", "model=unigram,oracle", *TINY).returncode == 0
    first = set(sweeps.iterdir())
    again = lmbench(tmp_path, "-m", "model=unigram,oracle", *TINY)
    assert again.returncode == 0 and (again.stdout + again.stderr).count("already finished in") == 2
    (rerun,) = set(sweeps.iterdir()) - first
    assert "2 runs (2 ok)" in (rerun / "report.md").read_text()
