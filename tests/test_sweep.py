"""Sweeps: a failing job does not stop the others, launchers isolate jobs, done jobs are skipped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from conftest import ROOT, SYNTHETIC_20K, TINY, lmbench, read_records

pytestmark = pytest.mark.slow  # every test here starts the app


def test_a_failing_job_leaves_a_record_and_the_sweep_goes_on_with_a_failing_exit(tmp_path,
                                                                                 tiny_text_dir):
    done = lmbench(tmp_path, "-m", "model=oracle,unigram", "corpus=file",
                   f"corpus.path={tiny_text_dir}")
    assert done.returncode == 1
    assert "1 failed, 0 diverged of 2 jobs" in done.stderr
    by_model = {r["model"]: r for r in read_records(tmp_path)}
    assert by_model["unigram"]["status"] == "ok"
    assert by_model["oracle"]["status"] == "failed" and "synthetic" in by_model["oracle"]["error"]


def test_timing_launcher_runs_each_job_in_its_own_process(tmp_path):
    done = lmbench(tmp_path, "-m", "hydra/launcher=timing", "seed=0,1", *TINY)
    assert done.returncode == 0, done.stderr
    found = read_records(tmp_path)
    assert len(found) == 2
    for record in found:
        assert record["job"]["launcher"] == "TimingLauncher"
        assert record["job"]["earlier_jobs_in_process"] == 0
    first, second = sorted(found, key=lambda r: r["started_at"])
    assert first["finished_at"] < second["started_at"]  # one at a time


def test_basic_launcher_shares_one_process_and_says_so(tmp_path):
    done = lmbench(tmp_path, "-m", "seed=0,1", *TINY)
    assert done.returncode == 0, done.stderr
    shared = sorted(r["job"]["earlier_jobs_in_process"] for r in read_records(tmp_path))
    assert shared == [0, 1]


def test_a_finished_job_is_skipped_unless_forced_and_reruns_reproduce_it(tmp_path):
    assert lmbench(tmp_path, *TINY).returncode == 0
    again = lmbench(tmp_path, *TINY)
    assert again.returncode == 0 and "skipping: this job already finished" in again.stdout
    assert len(read_records(tmp_path)) == 1
    assert lmbench(tmp_path, *TINY, "force=true").returncode == 0
    first, second = read_records(tmp_path)
    assert first["config_hash"] == second["config_hash"]
    assert first["metrics"]["test"] == {**second["metrics"]["test"],
                                        "eval_seconds": first["metrics"]["test"]["eval_seconds"],
                                        "eval_tokens_per_s": first["metrics"]["test"]["eval_tokens_per_s"]}


def test_compare_experiment_is_a_sweep_of_isolated_jobs(tmp_path):
    done = lmbench(tmp_path, "experiment=compare", "model=ngram,unigram", "seed=0", *TINY)
    assert done.returncode == 0, done.stderr
    found = read_records(tmp_path)
    assert sorted(r["model"] for r in found) == ["ngram", "unigram"]
    assert all(r["experiment"] == "compare" and r["job"]["launcher"] == "TimingLauncher" for r in found)


def test_committed_reference_runs_are_neither_skipped_against_nor_listed_as_the_users(tmp_path):
    import pandas as pd

    reference = lmbench(tmp_path / "results", *TINY)  # lands in results/results = a 'reference'
    assert reference.returncode == 0
    (tmp_path / "results" / "results").rename(tmp_path / "results" / "reference")
    mine = lmbench(tmp_path, *TINY)
    assert mine.returncode == 0 and "skipping" not in mine.stdout
    table = pd.read_csv(tmp_path / "results" / "table.csv")
    assert len(table[table.run != "-"]) == 1


def _kill_when_training(sweep: subprocess.Popen, results, overrides: set[str], deadline: float) -> bool:
    """SIGKILL the sweep's job process whose command line has ``overrides`` once its first
    checkpoint exists (it is half way through training); False if it never got there."""
    while sweep.poll() is None and time.monotonic() < deadline:
        for child in psutil.Process(sweep.pid).children(recursive=True):
            try:
                args = set(child.cmdline())
            except psutil.NoSuchProcess:
                continue
            if overrides <= args and any((results / "sweeps").glob("*/*_gru_synthetic_s1_*/checkpoint.pt")):
                os.kill(child.pid, signal.SIGKILL)
                return True
        time.sleep(0.02)
    return False


def test_six_families_two_seeds_with_one_job_killed_end_with_11_ok_1_failed_and_report_both(tmp_path):
    results = tmp_path / "results"
    sweep = subprocess.Popen(
        [sys.executable, "-m", "lmbench", "experiment=quickstart", "seed=0,1", *SYNTHETIC_20K,
         "train.max_epochs=4", "train.max_minutes=1", "train.patience=0", f"results_dir={results}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = _kill_when_training(sweep, results, {"model=gru", "seed=1"}, time.monotonic() + 600)
    out, err = sweep.communicate(timeout=600)
    assert killed, "the gru seed-1 job finished before it could be killed"
    assert sweep.returncode == 1
    assert "1 failed, 0 diverged of 12 jobs" in err
    found = read_records(tmp_path)
    statuses = sorted((r["model"], r["config"]["seed"], r["status"]) for r in found)
    assert len(found) == 12 and [s for s in statuses if s[2] != "ok"] == [("gru", 1, "failed")]
    (sweep_dir,) = (results / "sweeps").iterdir()
    report = (sweep_dir / "report.md").read_text()
    failed_section = report.split("## Failed or diverged runs")[1].split("##")[0]
    assert "| gru |" in failed_section and "failed" in failed_section
    summary = report.split("## Perplexity")[1].split("##")[0]
    for family in ("ngram", "fnn", "rnn", "lstm", "gru", "transformer"):
        assert f"| {family} |" in summary
    assert "failed: gru seed 1" in out and f"report: {sweep_dir / 'report.html'}" in out


def test_the_slurm_launcher_adds_its_facts_to_the_record_through_the_run_folder(tmp_path, monkeypatch):
    """On the node, after its job: SLURM's job id, requeues and log reach the record by
    ``RunDir.update_record``, which rewrites it under the folder's lock (diagnose writes it too)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from types import SimpleNamespace

    import submitit
    from omegaconf import OmegaConf

    from hydra_plugins.lmbench_launchers._slurm import SlurmLauncher
    from lmbench.runs.rundir import RunDir

    folder = RunDir(tmp_path / "sweep" / "0_lstm_synthetic_s0")
    folder.write_record({"id": "x", "model": "lstm", "status": "ok", "config": {},
                         "corpus": {"name": "synthetic"}, "job": {"launcher": "SlurmLauncher"}})
    output = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(folder.path)}}})
    result = SimpleNamespace(hydra_cfg=output)
    # submitit's launcher, as the launcher derives from it (Hydra's plugin scan may load its module anew)
    monkeypatch.setattr(SlurmLauncher.__bases__[0], "__call__", lambda self, *args: result)
    log = tmp_path / "sweep" / "slurm" / "12_0_log.out"
    node = SimpleNamespace(job_id="12_0", paths=SimpleNamespace(stdout=log))
    monkeypatch.setattr(submitit, "JobEnvironment", lambda: node)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    updates, update = [], RunDir.update_record

    def spied(self, **sections):
        updates.append(sections)
        update(self, **sections)

    monkeypatch.setattr(RunDir, "update_record", spied)
    launcher = object.__new__(SlurmLauncher)  # what __call__ uses of it is its parent's, stubbed above
    assert launcher(["model=lstm"], "hydra.sweep.dir", 0, "job_id_for_0", None) is result
    facts = {"slurm_job_id": "12_0", "requeues": 2, "log": "slurm/12_0_log.out"}
    assert updates == [{"job": facts}]
    assert RunDir(folder.path).record["job"] == {"launcher": "SlurmLauncher", **facts}
