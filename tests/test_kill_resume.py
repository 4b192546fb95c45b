"""``kill -9`` at many points of a training run, then the same command again: the rerun adopts the
killed run's checkpoint and finishes with metrics identical to an uninterrupted run, and no
half-written file is ever taken for a whole one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

JOB = ["model=lstm", "corpus.train_tokens=6000", "corpus.valid_tokens=1000", "corpus.test_tokens=1000",
       "model.emb_size=16", "model.hidden_size=16", "train.max_epochs=4", "train.patience=0",
       "train.threads=1", "eval.bootstrap_samples=100"]

# Runs the app with os.replace patched to SIGKILL the process at the n-th rename onto a file whose
# name ends with TARGET: "before" = the temporary file is fully written but not yet renamed (a kill
# during the write), "after" = right after the rename.
KILLER = """
import os, signal, sys
target, nth, when = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.argv = [sys.argv[0]] + sys.argv[4:]
real_replace, seen = os.replace, [0]
def replace(src, dst):
    if str(dst).endswith(target):
        seen[0] += 1
        if seen[0] == nth and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
        if seen[0] == nth and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return
    real_replace(src, dst)
os.replace = replace
from lmbench.__main__ import main
main()
"""


def _run(results, *prefix, timeout=300):
    return subprocess.run([sys.executable, *prefix, *JOB, f"results_dir={results}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _ok_records(results):
    found = []
    for path in results.rglob("record.json"):
        record = json.loads(path.read_text())  # never a partial file: json must parse
        if record["status"] == "ok":
            found.append(record)
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    results = tmp_path_factory.mktemp("uninterrupted")
    done = _run(results, "-m", "lmbench")
    assert done.returncode == 0, done.stderr
    (record,) = _ok_records(results)
    return record["metrics"]


@pytest.mark.slow
@pytest.mark.parametrize("target, nth, when", [
    ("checkpoint.pt", 1, "before"),  # during the first checkpoint write
    ("checkpoint.pt", 2, "before"),  # during a later checkpoint write
    ("checkpoint.pt", 3, "after"),  # between epochs
    ("checkpoint_best.pt", 2, "before"),  # during a best-weights write
    ("record.json", 1, "before"),  # during the record write, training finished
    ("job.json", 1, "after"),  # as the job starts
])
def test_kill_at_a_point_then_rerun_gives_identical_metrics(tmp_path, reference, target, nth, when):
    killed = _run(tmp_path, "-c", KILLER, target, str(nth), when)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not _ok_records(tmp_path)
    resumed = _run(tmp_path, "-m", "lmbench")
    assert resumed.returncode == 0, resumed.stderr
    (record,) = _ok_records(tmp_path)
    for split in ("valid", "test"):
        assert record["metrics"][split]["ppl"] == reference[split]["ppl"]
        assert record["metrics"][split]["ppl_ci"] == reference[split]["ppl_ci"]


@pytest.mark.slow
def test_kill_at_a_random_moment_then_rerun_gives_identical_metrics(tmp_path, reference):
    process = subprocess.Popen([sys.executable, "-m", "lmbench", *JOB, f"results_dir={tmp_path}"],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.rglob("checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    resumed = _run(tmp_path, "-m", "lmbench")
    assert resumed.returncode == 0, resumed.stderr
    (record,) = _ok_records(tmp_path)
    assert record["metrics"]["test"]["ppl"] == reference["test"]["ppl"]
