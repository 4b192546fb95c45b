"""Sweeps on a real SLURM cluster (one node: scripts/slurm-local.sh, which .ci/run starts): four jobs
end ok; a job cancelled half way fails the sweep and the rerun resumes it to the uninterrupted
metrics; a job reaching its time limit is requeued and resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import ROOT, SYNTHETIC_20K


def _no_cluster() -> str | None:
    """Why the slurm tests cannot run here, if they cannot."""
    if shutil.which("sbatch") is None:
        return "SLURM is not installed (no sbatch): scripts/slurm-local.sh sets up a one-node cluster"
    if subprocess.run(["sinfo"], capture_output=True).returncode != 0:
        return "no SLURM controller answers (sinfo fails): scripts/slurm-local.sh starts one"
    return None


NO_CLUSTER = _no_cluster()
pytestmark = [pytest.mark.slurm, pytest.mark.slow,
              pytest.mark.skipif(NO_CLUSTER is not None, reason=str(NO_CLUSTER))]

# 30 epochs of ~0.5 s: a job cancelled after its first one is still training when SLURM kills it
# (5-7 s after scancel: submitit ignores the SIGTERM, slurmd sends SIGKILL at least 5 s later)
# long enough that a job cancelled after its first epoch is still training when SLURM kills it:
# submitit ignores scancel's SIGTERM, and slurmd sends SIGKILL only KillWait (>= 5 s) later
JOB = [*SYNTHETIC_20K, "train.max_epochs=60", "train.patience=0"]
SWEEP = ["-m", "hydra/launcher=slurm", "model=lstm,gru", "seed=0,1", *JOB]


class Sweep:
    """``lmbench`` sweeps on the cluster with results in ``root/results``; ``cancel_all`` cancels
    every SLURM job they submitted (each test's jobs share a unique name)."""

    def __init__(self, root: Path):
        self.root, self.results, self.runs = root, root / "results", 0
        self.name = f"lmbench-test-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "LMBENCH_CACHE": str(root / "cache")}

    def start(self, *overrides: str) -> subprocess.Popen:
        self.runs += 1
        with (self.root / f"sweep{self.runs}.out").open("w") as out, \
                (self.root / f"sweep{self.runs}.err").open("w") as err:
            return subprocess.Popen([sys.executable, "-m", "lmbench", *overrides,
                                     f"hydra.launcher.name={self.name}", f"results_dir={self.results}"],
                                    cwd=ROOT, env=self.env, stdout=out, stderr=err)

    def finish(self, sweep: subprocess.Popen) -> tuple[int, str, str]:
        try:
            code = sweep.wait(timeout=400)
        finally:
            sweep.kill()  # a no-op unless it is stuck
        return code, *((self.root / f"sweep{self.runs}.{s}").read_text() for s in ("out", "err"))

    def run(self, *overrides: str) -> tuple[int, str, str]:
        return self.finish(self.start(*overrides))

    def records(self, sweep_dir: Path) -> dict:
        found = [json.loads(p.read_text()) for p in sweep_dir.glob("*/record.json")]
        return {(r["model"], r["config"]["seed"]): r for r in found}

    def cancel_all(self) -> None:
        subprocess.run(["scancel", f"--name={self.name}"], check=False)


@pytest.fixture
def cluster(tmp_path):
    sweeps = Sweep(tmp_path)
    yield sweeps
    sweeps.cancel_all()


@pytest.fixture(scope="module")
def four_jobs(tmp_path_factory):
    """The 4-job sweep, uninterrupted: exit status, stdout, stderr, sweep folder, records."""
    sweeps = Sweep(tmp_path_factory.mktemp("four_jobs"))
    try:
        code, out, err = sweeps.run(*SWEEP)
    finally:
        sweeps.cancel_all()
    (sweep_dir,) = (sweeps.results / "sweeps").iterdir()
    return code, out, err, sweep_dir, sweeps.records(sweep_dir)


def test_a_sweep_of_four_jobs_ends_with_four_ok_records_and_the_report(four_jobs):
    code, out, err, sweep_dir, records = four_jobs
    assert code == 0, err
    assert sorted(records) == [("gru", 0), ("gru", 1), ("lstm", 0), ("lstm", 1)]
    for record in records.values():
        assert record["status"] == "ok" and record["job"]["launcher"] == "SlurmLauncher"
        assert (sweep_dir / record["job"]["log"]).is_file()  # the job's log, in the sweep folder
        assert record["job"]["requeues"] == 0
    assert len({r["job"]["slurm_job_id"] for r in records.values()}) == 4
    assert f"report: {sweep_dir / 'report.html'}" in out and (sweep_dir / "report.md").is_file()
    assert "sacct" not in err  # no accounting database here: job states come from squeue


def _test_metrics(record: dict) -> dict:
    return {k: v for k, v in record["metrics"]["test"].items() if not k.startswith("eval_")}


def test_a_cancelled_job_fails_the_sweep_and_the_rerun_resumes_it_to_identical_metrics(cluster, four_jobs):
    lstm_sweep = ["-m", "hydra/launcher=slurm", "model=lstm", "seed=0,1", *JOB]  # the 4-job sweep's lstm jobs
    sweep = cluster.start(*lstm_sweep)
    deadline = time.monotonic() + 300
    while not (found := list(cluster.results.glob("sweeps/*/1_lstm_synthetic_s1_*/checkpoint.pt"))):
        assert sweep.poll() is None and time.monotonic() < deadline, "lstm seed 1 never checkpointed"
        time.sleep(0.2)
    first_dir = found[0].parents[1]
    (task,) = (first_dir / "slurm").glob("*_1")  # the sweep is one array: job 1 is task 1
    subprocess.run(["scancel", task.name], check=True)
    code, out, err = cluster.finish(sweep)
    assert code == 1 and "1 failed, 0 diverged of 2 jobs" in err
    first = cluster.records(first_dir)
    cancelled = first.pop(("lstm", 1))
    assert cancelled["status"] == "failed" and "CANCELLED" in cancelled["error"]
    assert cancelled["job"]["slurm_job_id"] == task.name
    assert (first_dir / cancelled["job"]["log"]).is_file()
    assert first[("lstm", 0)]["status"] == "ok"

    code, out, err = cluster.run(*lstm_sweep)
    assert code == 0, err
    (second_dir,) = set((cluster.results / "sweeps").iterdir()) - {first_dir}
    (resumed,) = cluster.records(second_dir).values()  # the finished job was skipped
    assert resumed["resumed_from"] == str(found[0].parent)
    uninterrupted = four_jobs[4][("lstm", 1)]
    assert _test_metrics(resumed) == _test_metrics(uninterrupted)
    assert resumed["train"]["history"][-1]["valid_ppl"] == uninterrupted["train"]["history"][-1]["valid_ppl"]


def test_a_job_reaching_its_time_limit_is_requeued_and_resumes_from_its_checkpoint(cluster):
    # A 1-minute limit, signalled 15 s before it: SLURM checks limits every 30 s and signals up to
    # 30 s early, so 15-45 s into each run of the job. 45 s of training cannot finish before the
    # first signal; each run then trains until its own signal and is requeued again.
    code, out, err = cluster.run("-m", "hydra/launcher=slurm", "model=gru", *SYNTHETIC_20K,
                                 "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=15",
                                 "hydra.launcher.max_num_timeout=10", "train.max_minutes=0.75",
                                 "train.max_epochs=1000", "train.patience=0")
    assert code == 0, err
    (sweep_dir,) = (cluster.results / "sweeps").iterdir()
    (record,) = cluster.records(sweep_dir).values()
    assert record["status"] == "ok" and record["job"]["requeues"] >= 1
    assert record["train"]["stopped_by"] == "max_minutes"
    log = (sweep_dir / record["job"]["log"]).read_text()
    assert "DUE TO JOB REQUEUE" in log
    resumed_after = [int(n) for n in re.findall(r"resumed from \S+ after epoch (\d+)", log)]
    assert resumed_after and resumed_after[0] >= 1
    epochs = list(range(1, record["train"]["epochs"] + 1))
    assert [h["epoch"] for h in record["train"]["history"]] == epochs
    # every epoch trained once across the requeues: none before a requeue was redone (an epoch's log line
    # follows its checkpoint, so a kill between the two can lose the line, never repeat the epoch)
    trained = [int(n) for n in re.findall(r"\] - epoch (\d+) \|", log)]
    assert len(trained) == len(set(trained)) and set(trained) <= set(epochs)
    assert len(trained) >= len(epochs) - record["job"]["requeues"]  # at most one line lost per requeue


def test_a_sweep_sbatch_refuses_is_one_paragraph_and_runs_nothing(cluster):
    code, out, err = cluster.run("-m", "hydra/launcher=slurm", "hydra.launcher.partition=no_such_partition",
                                 "model=unigram", *JOB)
    assert code == 1 and "Traceback" not in err
    assert "Error: sbatch refused the sweep's jobs" in err and "partition" in err
    assert not list(cluster.results.rglob("record.json"))
