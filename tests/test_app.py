"""The Hydra app end to end, as a user runs it: records, tables, and clear errors for bad input."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, TINY, lmbench, needs_shared, read_records

pytestmark = pytest.mark.slow  # every test here starts the app


def test_default_run_writes_a_complete_record_and_a_table_with_the_oracle_floor(tmp_path):
    done = lmbench(tmp_path, *TINY)
    assert done.returncode == 0, done.stderr
    (record,) = read_records(tmp_path)
    assert record["status"] == "ok"
    assert record["corpus"]["name"] == "synthetic" and len(record["corpus"]["fingerprint"]) == 64
    assert record["corpus"]["train_tokens"] == 3000
    for key in ("versions", "hardware", "timing", "memory", "config", "git_commit"):
        assert key in record
    assert record["versions"]["torch"].startswith("2.")
    assert record["memory"]["peak_rss_mb"] > 0 and record["memory"]["parameters"] > 0
    test = record["metrics"]["test"]
    assert test["ppl_ci"][0] < test["ppl"] < test["ppl_ci"][1]
    assert record["floor"]["ppl"] < test["ppl"]
    table = pd.read_csv(tmp_path / "results" / "table.csv")
    assert set(table["model"]) == {record["model"], "oracle (floor)"}
    assert (tmp_path / "results" / "table.md").read_text().count("oracle (floor)") == 1


def test_sweep_writes_one_record_per_job_and_one_table(tmp_path):
    done = lmbench(tmp_path, "-m", "model=unigram,oracle", "seed=0,1", *TINY)
    assert done.returncode == 0, done.stderr
    found = read_records(tmp_path)
    assert sorted((r["model"], r["config"]["seed"]) for r in found) == [
        ("oracle", 0), ("oracle", 1), ("unigram", 0), ("unigram", 1)]
    assert len({r["corpus"]["fingerprint"] for r in found}) == 1
    table = pd.read_csv(tmp_path / "results" / "table.csv")
    oracle = table[table.model == "oracle"].test_ppl
    assert (oracle <= table[table.model == "unigram"].test_ppl.min()).all()


@pytest.mark.parametrize("override, message", [
    ("model=lstmm", "Could not find 'model/lstmm'"),
    ("corpus=wikitext9", "Could not find 'corpus/wikitext9'"),
    ("model.hidden_sizee=3", "Could not override 'model.hidden_sizee'"),
    ("seed=abc", "Value 'abc' of type 'str' could not be converted to Integer"),
    ("protocol=sentance", "Invalid value 'sentance'"),
    ("train.lr=-1", "train.lr=-1.0 is out of range: it must be positive"),
    ("train.bptt=0", "train.bptt=0 is out of range"),
    ("device=tpu", "Invalid value 'tpu'"),
    ("device=cuda", "device=cuda is not available on this machine"),
    ("hydra/launcher=slurmm", "Could not find 'hydra/launcher/slurmm'"),
    ("eval.bootstrap_samples=-5", "eval.bootstrap_samples=-5 is out of range"),
    ("corpus.min_count=0", "corpus.min_count=0 is out of range"),
    ("corpus.name=../x", "corpus.name=../x is out of range: it must be a name"),
    ("experiment=../debug/tiny", "experiment=../debug/tiny is not an option name"),
    ("model.name=gru", "model.name=gru is not this model's"),
])
def test_bad_config_fails_at_start_up_with_a_clear_message_and_writes_nothing(tmp_path, override,
                                                                               message):
    done = lmbench(tmp_path, override, *TINY)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("*"))


def test_oracle_on_a_real_corpus_is_a_clear_error(tmp_path, tiny_text_dir):
    done = lmbench(tmp_path, "model=oracle", "corpus=file", f"corpus.path={tiny_text_dir}")
    assert done.returncode == 1 and "synthetic" in done.stderr and "Traceback" not in done.stderr
    assert not read_records(tmp_path)


def test_missing_corpus_without_mirror_or_network_is_a_clear_error(tmp_path):
    done = lmbench(tmp_path, "corpus=ptb", env={"LMBENCH_MIRROR": "", "LMBENCH_CACHE": str(tmp_path)})
    assert done.returncode == 1
    assert "ptb/ptb.train.txt" in done.stderr and "LMBENCH_MIRROR" in done.stderr
    assert "Traceback" not in done.stderr and not read_records(tmp_path)


def test_report_rebuilds_the_table_and_skips_a_corrupt_record(tmp_path):
    assert lmbench(tmp_path, *TINY).returncode == 0
    (tmp_path / "results" / "table.csv").unlink()
    bad = tmp_path / "results" / "runs" / "broken"
    bad.mkdir(parents=True)
    (bad / "record.json").write_text('{"id": "x", "status": ')
    done = subprocess.run([sys.executable, "-m", "lmbench.report", str(tmp_path / "results")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "skipped unreadable record" in done.stderr and "broken" in done.stderr
    assert len(pd.read_csv(tmp_path / "results" / "table.csv")) == 2
    assert (tmp_path / "results" / "report.html").exists()


@needs_shared("ptb/ptb.train.txt")
def test_ptb_add_one_unigram_perplexity(tmp_path):
    done = lmbench(tmp_path, "corpus=ptb", "model=unigram")
    assert done.returncode == 0, done.stderr
    (record,) = read_records(tmp_path)
    assert record["metrics"]["test"]["ppl"] == pytest.approx(639.79, abs=0.005)
    assert record["metrics"]["test"]["tokens"] == 82_430


@pytest.mark.slow
@needs_shared("ptb/ptb.train.txt")
def test_scoring_after_training_does_not_grow_the_process(tmp_path):
    """Scoring PTB's 74k-token streams goes in 4,096-token chunks of 10k-word logits (164 MB each):
    on the heap training sets to keep freed memory they fragmented it, and this short run peaked at
    3.7 GB (0.76 GB with glibc's defaults while scoring; a plain PyTorch loop of the model: ~0.6 GB)."""
    done = lmbench(tmp_path, "recipe=ptb/lstm", "train.max_tokens=4000", "train.threads=1")
    assert done.returncode == 0, done.stderr
    (record,) = read_records(tmp_path)
    assert record["memory"]["peak_rss_mb"] < 1200
