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
from pathlib import Path

import pytest
from conftest import ROOT, TINY

from lmbench.runs import checkpoint

pytestmark = pytest.mark.slow  # every test here starts the app, several times

JOB = ["model=lstm", *TINY, "corpus.train_tokens=6000", "model.emb_size=16", "model.hidden_size=16",
       "train.max_epochs=4", "train.patience=0", "eval.bootstrap_samples=100"]

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


def _run(results, *prefix, timeout=300, cwd=ROOT, also=()):
    return subprocess.run([sys.executable, *prefix, *JOB, *also, f"results_dir={results}"], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _checkpointed_epoch(results) -> int | None:
    """The epoch of the killed run's latest checkpoint (None: it had none to resume from)."""
    found = list(results.rglob(checkpoint.CHECKPOINT))
    assert len(found) <= 1, found
    return checkpoint.load(found[0])["state"]["epoch"] if found else None


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


# epoch: that of the checkpoint the kill leaves, which the rerun resumes after (None: it starts over)
@pytest.mark.parametrize("target, nth, when, epoch", [
    ("checkpoint.pt", 1, "before", None),  # during the first checkpoint write
    ("checkpoint.pt", 2, "before", 1),  # during a later checkpoint write
    ("checkpoint.pt", 3, "after", 3),  # between epochs
    ("checkpoint_best.pt", 2, "before", 1),  # during a best-weights write (epoch 2's)
    ("record.json", 1, "before", 4),  # during the record write, training finished
    ("job.json", 1, "after", None),  # as the job starts
])
def test_kill_at_a_point_then_rerun_gives_identical_metrics(tmp_path, reference, target, nth, when, epoch):
    killed = _run(tmp_path, "-c", KILLER, target, str(nth), when)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not _ok_records(tmp_path)
    assert _checkpointed_epoch(tmp_path) == epoch
    resumed = _run(tmp_path, "-m", "lmbench")
    assert resumed.returncode == 0, resumed.stderr
    (record,) = _ok_records(tmp_path)
    assert bool(record["resumed_from"]) == (epoch is not None)
    if epoch is not None:
        assert f"after epoch {epoch}" in resumed.stdout + resumed.stderr
    for split in ("valid", "test"):
        assert record["metrics"][split]["ppl"] == reference[split]["ppl"]
        assert record["metrics"][split]["ppl_ci"] == reference[split]["ppl_ci"]


def test_kill_at_a_moment_the_test_does_not_choose_then_rerun_gives_identical_metrics(tmp_path, reference):
    """SIGKILL as soon as the first checkpoint is seen, wherever the run is then (in epoch 2, or
    writing a file of it)."""
    process = subprocess.Popen([sys.executable, "-m", "lmbench", *JOB, f"results_dir={tmp_path}"],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.rglob(checkpoint.CHECKPOINT)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not _ok_records(tmp_path)
    assert 1 <= _checkpointed_epoch(tmp_path) < 4, "the kill came after training"
    resumed = _run(tmp_path, "-m", "lmbench")
    assert resumed.returncode == 0, resumed.stderr
    (record,) = _ok_records(tmp_path)
    assert record["resumed_from"]
    assert record["metrics"]["test"]["ppl"] == reference["test"]["ppl"]


def test_a_killed_sweep_job_marked_failed_resumes_in_its_own_folder(tmp_path, reference):
    """The same sweep command again into the same sweep folder (a fixed hydra.sweep.dir, results_dir
    relative, as the reference tables are run): the job resumes from the checkpoint in its own folder,
    past the failed record a launcher writes for a job that died."""
    from omegaconf import OmegaConf

    from lmbench.runs.run import failed_record
    from lmbench.runs.rundir import RunDir

    sweep = ("hydra.sweep.dir=results/sweep",)
    killed = _run("results", "-c", KILLER, "checkpoint.pt", "3", "after", "-m", cwd=tmp_path, also=sweep)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (folder,) = {p.parent for p in tmp_path.rglob(checkpoint.CHECKPOINT)}
    cfg = OmegaConf.load(folder / ".hydra" / "config.yaml")
    RunDir(folder).write_record(failed_record(cfg, RuntimeError("the job died before it wrote its record")))
    resumed = _run("results", "-m", "lmbench", "-m", cwd=tmp_path, also=sweep)
    assert resumed.returncode == 0, resumed.stderr
    (record,) = _ok_records(tmp_path)
    assert Path(record["resumed_from"]).resolve() == folder.resolve() == Path(record["run_dir"]).resolve()
    assert "after epoch 3" in resumed.stdout + resumed.stderr
    assert record["metrics"]["test"]["ppl"] == reference["test"]["ppl"]
    # its training time counts the killed process's epochs too, not only the last one's
    assert record["timing"]["train_seconds"] >= record["train"]["train_seconds"] > 0


def test_a_damaged_checkpoint_is_refused_on_resume_not_trusted(tmp_path):
    """64 zeroed bytes in a killed run's checkpoint: resuming it exits 1 with one paragraph saying the
    checkpoint is damaged and what to do, instead of training on from it to other metrics."""
    run_dir = tmp_path / "run"
    killed = _run(tmp_path, "-c", KILLER, "checkpoint.pt", "2", "after", also=[f"hydra.run.dir={run_dir}"])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    path = run_dir / checkpoint.CHECKPOINT
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    path.write_bytes(data)
    resumed = _run(tmp_path, "-m", "lmbench", also=["train.resume=true", f"hydra.run.dir={run_dir}"])
    assert resumed.returncode == 1, resumed.stderr
    assert "Traceback" not in resumed.stderr
    error = resumed.stderr[resumed.stderr.index("Error: "):].strip()
    assert "\n" not in error and "damaged" in error and str(path) in error and "Delete it" in error
    assert not _ok_records(tmp_path)
    assert path.read_bytes() == data  # left as it was, for the user to inspect or delete
