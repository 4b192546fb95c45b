"""The comparison report: tables from records, paired tests, plots, regeneration, bad records."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TINY, lmbench

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


@pytest.mark.slow
def test_sweep_report_has_seed_statistics_pairs_plots_and_regenerates_identically(tmp_path):
    done = lmbench(tmp_path, "-m", "model=unigram,oracle", "seed=0,1", *TINY)
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


@pytest.mark.slow
def test_report_skips_a_corrupt_record_and_says_so(tmp_path, capsys):
    assert lmbench(tmp_path, *TINY).returncode == 0
    bad = tmp_path / "results" / "runs" / "broken"
    bad.mkdir(parents=True)
    (bad / "record.json").write_text("{not json")
    result = build(tmp_path / "results")
    assert result == {**result, "records": 1, "skipped": 1}
    assert "broken" in capsys.readouterr().err
    assert "1 unreadable records skipped" in (tmp_path / "results" / "report.md").read_text()


REFERENCES = sorted(p.name for p in (ROOT / "results" / "reference").iterdir() if p.is_dir())


@pytest.mark.parametrize("corpus", REFERENCES)
def test_the_committed_reference_reports_regenerate_their_numbers(tmp_path, corpus):
    """Every table of every committed report, rebuilt from its records: the same rows and columns,
    the same numbers (to 1e-9), so formatting may change but a figure may not."""
    reference = ROOT / "results" / "reference" / corpus
    committed = sorted(p.name for p in reference.glob("*.csv"))
    assert {"summary.csv", "pairs.csv", "memory.csv", "speed.csv", "table.csv"} <= set(committed)
    build(reference, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == committed
    for name in committed:
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / name), pd.read_csv(reference / name),
                                      check_exact=False, rtol=1e-9, obj=name)


def test_the_golden_report_regenerates_word_for_word(tmp_path):
    """One report kept whole (the synthetic corpus's: every section, the oracle's floor)."""
    reference = ROOT / "results" / "reference" / "synthetic"
    build(reference, tmp_path)
    assert (tmp_path / "report.md").read_text() == (reference / "report.md").read_text()


def test_numbers_are_formatted_for_people():
    from lmbench.report.tables import count, counts, duration, p_value, with_interval

    assert with_interval(233.46, 227.61, 238.49) == "233.5 [227.6, 238.5]"
    assert with_interval(5.0512, 4.9219, 5.1858) == "5.051 [4.922, 5.186]"
    assert with_interval(14_567.2, 14_001.0, 15_002.0) == "14,567 [14,001, 15,002]"
    assert list(counts(pd.Series([358_600, 35_000, 1_161_000]))) == ["0.36 M", "0.035 M", "1.2 M"]
    assert (count(46_324), count(1_063_155), count(950)) == ("46 k", "1.1 M", "950")
    assert (duration(0.1177), duration(31.2), duration(152.6), duration(4000)) == \
        ("0.12 s", "31 s", "2.5 min", "67 min")
    assert (p_value(0.0), p_value(0.058), p_value(0.0, samples=10_000)) == ("< 0.002", "0.058", "< 0.0002")


def _reference_runs(tmp_path, names: list[str]):
    """Copies of committed synthetic reference runs (record and per-token losses) in one sweep folder."""
    sweep = tmp_path / "sweep"
    for name in names:
        source = ROOT / "results" / "reference" / "synthetic" / name
        (sweep / name).mkdir(parents=True)
        for part in ("record.json", "test_losses.npy"):
            (sweep / name / part).write_bytes((source / part).read_bytes())
    return sweep


def _edit(run_dir, change) -> None:
    import json

    record = json.loads((run_dir / "record.json").read_text())
    change(record)
    (run_dir / "record.json").write_text(json.dumps(record))


def test_report_labels_its_budget_sets_published_figures_beside_ours_and_links_failed_runs_logs(tmp_path):
    runs = ["9_lstm_synthetic_s0", "10_lstm_synthetic_s1", "12_gru_synthetic_s0", "13_gru_synthetic_s1",
            "0_ngram_synthetic_s0"]
    sweep = _reference_runs(tmp_path, runs)
    claim = {"row": "LSTM", "value": 240.0, "tolerance": 0.05, "metric": "test_ppl",
             "source": "Someone et al., Table 1", "at_most": None}
    for name in runs[:2]:
        _edit(sweep / name, lambda r: r["config"].update(published=claim))
    _edit(sweep / runs[3], lambda r: [r.pop(k) for k in ("hardware", "device", "metrics", "timing")]
          and r.update(status="failed", error="RuntimeError: out of memory",
                       job={**r["job"], "log": "logs/gru_s1.out"}))
    (sweep / "logs").mkdir()
    (sweep / "logs" / "gru_s1.out").write_text("RuntimeError: out of memory\n")
    result = build(sweep)

    md = (sweep / "report.md").read_text()
    kind = "equal budget: 2.5 min of training per family on Intel(R) Xeon(R) Processor (2 cores)"
    assert md.startswith(f"# lmbench report: synthetic\n\n**Compares:** {kind}")
    board = md.split("## Perplexity on synthetic")[1].split("\n\n")[1]
    assert "| published | source | diff % | goal met |" in board.splitlines()[0]
    lstm = next(line for line in board.splitlines() if "| LSTM |" in line)  # named by its published row
    assert "| 240 | Someone et al., Table 1 | −2." in lstm and "| within 5%: yes |" in lstm
    assert "2.5 min · converged" in lstm
    assert "counts (no budget)" in next(line for line in board.splitlines() if "| ngram |" in line)
    findings = md.split("## Findings")[1].split("## ")[0]
    assert "Published figures: 1 of 1 rows with a goal meet it." in findings
    assert "1 of 5 runs did not finish: gru seed 1 (failed)" in findings
    failed = md.split("## Failed or diverged runs")[1].split("## ")[0]
    assert "RuntimeError: out of memory" in failed and "[log](logs/gru_s1.out)" in failed
    assert "<a href='logs/gru_s1.out'>log</a>" in (sweep / "report.html").read_text()
    published = pd.read_csv(sweep / "published.csv")
    assert published.model.tolist() == ["LSTM [compare]"] and published.met.all()
    assert abs(published.ours[0] - pd.read_csv(sweep / "summary.csv").set_index("model")
               .test_ppl["LSTM [compare]"]) < 1e-9  # full precision, the mean over seeds
    assert result["console"].splitlines()[0] == f"lmbench report: synthetic · {kind}"
    assert "failed: gru seed 1 (lmbench model=gru seed=1 experiment=compare" in result["console"]


def test_a_report_of_models_trained_to_convergence_says_so(tmp_path):
    runs = ["9_lstm_synthetic_s0", "12_gru_synthetic_s0", "0_ngram_synthetic_s0"]
    sweep = _reference_runs(tmp_path, runs)
    for name in runs:
        _edit(sweep / name, lambda r: r["config"]["train"].update(max_minutes=None))
    result = build(sweep)
    kind = "trained to convergence (early stopping on validation perplexity)"
    assert f"**Compares:** {kind}" in (sweep / "report.md").read_text()
    assert f"<title>lmbench report: synthetic · {kind}</title>" in (sweep / "report.html").read_text()
    assert "≤ 100 epochs · converged" in result["console"]


def test_a_gpu_budget_names_the_gpu_and_mixed_hardware_is_flagged_first(tmp_path):
    sweep = _reference_runs(tmp_path, ["9_lstm_synthetic_s0", "0_ngram_synthetic_s0"])
    _edit(sweep / "9_lstm_synthetic_s0", lambda r: r.update(
        device="cuda", hardware={**r["hardware"], "device": "cuda", "gpu": "NVIDIA H100 80GB HBM3"}))
    build(sweep)
    md = (sweep / "report.md").read_text()
    assert "**Compares:** equal budget: 2.5 min of training per family on NVIDIA H100 80GB HBM3" in md
    findings = md.split("## Findings")[1].split("## ")[0]
    assert "**Warning: Runs come from more than one machine/device" in findings


def test_a_record_with_null_sections_is_listed_without_breaking_the_report(tmp_path):
    sweep = _reference_runs(tmp_path, ["9_lstm_synthetic_s0", "12_gru_synthetic_s0"])
    _edit(sweep / "9_lstm_synthetic_s0", lambda r: r.update(
        metrics=None, memory=None, timing=None, hardware=None, job=None, train=None))
    result = build(sweep)
    board = result["console"].split("\n\n")[1].splitlines()
    assert board[3].split()[:3] == ["1", "gru", "231.9"] and board[4].split()[:3] == ["2", "lstm", "–"]
    assert "on Intel(R) Xeon(R) Processor (2 cores)" in result["console"].splitlines()[0]


@pytest.mark.slow
def test_training_sizes_get_the_excess_over_the_floor_plot_and_each_its_mixture_gain(tmp_path):
    from matplotlib.image import imread

    from lmbench.combine import main
    from lmbench.report import build
    from lmbench.report.frames import data_size
    from lmbench.runs.rundir import find_runs

    done = lmbench(tmp_path, "-m", "model=ngram,unigram", "corpus.train_tokens=3000,30000",
                   "corpus.valid_tokens=2000", "corpus.test_tokens=2000")
    assert done.returncode == 0, done.stderr
    sweep = next((tmp_path / "results" / "sweeps").iterdir())
    points = data_size([r.record for r in find_runs(sweep)[0]]).set_index(["family", "train_tokens"]).excess
    assert points["ngram", 30000] < points["ngram", 3000]  # more data closes part of the gap
    assert (points > 0).all()  # no model beats the exact floor
    assert "plots/datasize_synthetic.png" in (sweep / "report.md").read_text()
    alone = imread(sweep / "plots" / "datasize_synthetic.png").shape[1]
    main([str(sweep), "--each-corpus"])
    runs = [r.record for r in find_runs(sweep)[0]]
    mixes = [r for r in runs if r["model"] == "mix"]
    assert sorted(m["corpus"]["train_tokens"] for m in mixes) == [3000, 30000]
    for mix in mixes:  # scored the same tokens as its components: their floor is its floor
        assert {r["floor"]["nll"] for r in runs if r["corpus"] == mix["corpus"]} == {mix["floor"]["nll"]}
    points = data_size(runs).set_index(["family", "train_tokens"]).excess
    assert points["mix", 30000] < points["unigram", 30000]
    build(sweep)
    assert imread(sweep / "plots" / "datasize_synthetic.png").shape[1] > 1.4 * alone  # the gain panel


def test_copies_of_one_finished_job_count_once_not_as_seeds(tmp_path):
    """Identical commands started together finish the same job three times: one run in the leaderboard
    (no '± 0.0' over three 'seeds'), the others named in the flags."""
    sweep = _reference_runs(tmp_path, ["9_lstm_synthetic_s0", "0_ngram_synthetic_s0"])
    for copy in ("copy_a", "copy_b"):
        shutil.copytree(sweep / "9_lstm_synthetic_s0", sweep / copy)
        _edit(sweep / copy, lambda r, copy=copy: r.update(id=copy, started_at=r["started_at"] + "1"))
    built = build(sweep)
    report = (sweep / "report.md").read_text()
    assert "mean of" not in report and "± sd" not in report
    assert "2 runs repeat a job already counted" in report
    assert "copy_a" in report and "copy_b" in report
    assert built["records"] == 2  # the lstm and the n-gram
