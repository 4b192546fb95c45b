"""Run records: the layout of the self-describing JSON file of each run (``rundir.RunDir`` reads and
writes it), its migration from older layouts, and the tables derived from a folder of them. Tables
are never edited by hand; they are regenerated from records."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TypedDict

import pandas as pd

from lmbench.files import atomic_write_text

VERSION = 1  # of the record layout: bump it, and add the step to ``migrate``, when the layout changes


class Record(TypedDict, total=False):
    """A run's ``record.json``, as ``migrate`` hands it to readers. A job that could not start (see
    ``run.failed_record``) has only version, id, model, experiment, config, corpus, status, error, job."""

    version: int  # the layout's VERSION; a record without one is version 0
    id: str  # unique run id: UTC start time and a random suffix
    model: str  # model family (config model.name)
    experiment: str | None  # the experiment the job came from, if any
    config: dict  # the job's whole config, resolved (unresolved for a job that could not start)
    config_hash: str  # jobs.config_hash of the config: the job's identity
    corpus: dict  # name, fingerprint (None when never loaded) and the corpus's statistics
    versions: dict  # versions of Python and the packages the run used
    git_commit: str | None  # lmbench's commit (``-dirty`` with changed code); None when installed
    hardware: dict  # cpu, cores, torch_threads, memory_gb, platform, device, gpu
    device: str  # cpu, cuda or mps
    run_dir: str  # the folder the run wrote
    resumed_from: str | None  # the folder of the killed run whose checkpoint it resumed
    status: str  # running, ok, diverged or failed
    started_at: str  # ISO UTC time
    finished_at: str  # ISO UTC time
    metrics: dict  # per split (valid, test): ppl, bpc, nll, tokens, CIs, eval speed, the model's extras
    floor: dict | None  # the exact oracle's test metrics, for a corpus that has one
    floor_missing: str  # why the floor could not be computed
    diverged: str  # why the run counts as diverged
    error: str  # the exception that failed the run
    traceback: str  # its traceback
    train: dict  # the model's training statistics: epochs, history, train_seconds (epochs only), ...
    timing: dict  # train_seconds (every process that trained the run), train_tokens_per_s, wall_seconds
    memory: dict  # peak_rss_mb, parameters, model_bytes, peak_cuda_mb on CUDA
    job: dict  # launcher facts: command, launcher, sweep, concurrent jobs; SLURM's job id, requeues, log
    diagnostics: dict  # per diagnostic (gradients, memory, cells) its summary, from lmbench.diagnose


REQUIRED = {"id": str, "model": str, "status": str, "config": dict, "corpus": dict}  # what tables read


def migrate(record: dict) -> Record:
    """``record`` upgraded to the current ``VERSION``, one version at a time, so that readers only
    ever see the current layout."""
    if record.get("version", 0) < 1:
        # 0: timing.train_seconds left out the epochs of the processes before a resume, and the
        # n-gram's test unseen fractions were in train.ngram.orders
        timing, train = record.get("timing") or {}, record.get("train") or {}
        if timing.get("train_seconds") is not None and train.get("train_seconds") is not None:
            timing["train_seconds"] = max(timing["train_seconds"], train["train_seconds"])
        test = (record.get("metrics") or {}).get("test")
        orders = (train.get("ngram") or {}).get("orders")
        if test and orders and not test.get("unseen_fraction_by_order"):
            test["unseen_fraction_by_order"] = [o.get("test_unseen_fraction") for o in orders]
        record["version"] = 1
    return record


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def _row(record: dict, test: dict, model: str) -> dict:
    valid = (record.get("metrics") or {}).get("valid") or {}
    timing, memory = record.get("timing") or {}, record.get("memory") or {}
    return {
        "model": model,
        "corpus": record["corpus"]["name"],
        "protocol": record["config"].get("protocol"),
        "seed": record["config"].get("seed"),
        "status": record["status"],
        "valid_ppl": valid.get("ppl"),
        "test_ppl": test.get("ppl"),
        "test_ppl_lo": (test.get("ppl_ci") or [None, None])[0],
        "test_ppl_hi": (test.get("ppl_ci") or [None, None])[1],
        "test_bpc": test.get("bpc"),
        "params": memory.get("parameters"),
        "model_mb": memory.get("model_bytes") / 2**20 if memory.get("model_bytes") else None,
        "peak_rss_mb": memory.get("peak_rss_mb"),
        "train_s": timing.get("train_seconds"),
        "train_tok_s": timing.get("train_tokens_per_s"),
        "eval_tok_s": test.get("eval_tokens_per_s"),
        "device": record.get("device"),
        "fingerprint": (record["corpus"].get("fingerprint") or "")[:12],
        "run": record["id"],
    }


def table(records: list[dict]) -> pd.DataFrame:
    """One row per run, plus one floor row per corpus that has an exact oracle."""
    rows, floors = [], {}
    for record in records:
        rows.append(_row(record, (record.get("metrics") or {}).get("test") or {}, record["model"]))
        floor = record.get("floor")
        if floor:
            key = (record["corpus"].get("fingerprint"), record["config"].get("protocol"))
            floors.setdefault(key, _row(record, floor, "oracle (floor)") | {
                "status": "ok", "valid_ppl": None, "seed": None, "params": None, "model_mb": None,
                "peak_rss_mb": None, "train_s": None, "train_tok_s": None, "run": "-"})
    frame = pd.DataFrame(rows + list(floors.values()))
    if frame.empty:
        return frame
    return frame.sort_values(["corpus", "protocol", "test_ppl", "model", "seed"],
                             na_position="last", kind="stable").reset_index(drop=True)


def write_tables(root: Path, records: list[dict]) -> pd.DataFrame:
    """Write ``table.csv`` and ``table.md`` in ``root`` from ``records`` (the one writer of these
    tables; ``rundir.refresh_tables`` regenerates them from a folder)."""
    frame = table(records)
    atomic_write_text(Path(root) / "table.csv", frame.to_csv(index=False))
    markdown = frame.to_markdown(index=False, floatfmt=".4g") if not frame.empty else "(no runs)"
    atomic_write_text(Path(root) / "table.md", markdown + "\n")
    return frame
