"""Run records: the layout of the self-describing JSON file of each run (``rundir.RunDir`` reads and
writes it), its migration from older layouts, and the tables derived from a folder of them. Tables
are never edited by hand; they are regenerated from records."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TypedDict

import pandas as pd

from lmbench.files import atomic_write_text
from lmbench.models import COUNT_BASED

VERSION = 2  # of the record layout: bump it, and add the step to ``migrate``, when the layout changes


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
    memory: dict  # peak_rss_mb, parameters, non_embedding_parameters, model_bytes, peak_cuda_mb on CUDA
    job: dict  # launcher facts: command, launcher, sweep, concurrent jobs; SLURM's job id, requeues, log
    diagnostics: dict  # per diagnostic (gradients, memory, cells, positions) its summary (lmbench.diagnose)


IGNORED_KEYS = ("results_dir", "force")  # where results go and whether to redo them: not the job


# Options added after records were made, at the default that changes nothing: left out of the hash,
# so those records still count as the same job. (section, model name or None for any, option, default)
ADDED_LATER = [("model", "fnn", "tie_weights", False), ("published", None, "beats_rows", None),
               ("published", None, "beats_by", None)]


def settings_hash(settings: dict, *also_ignored: str) -> str:
    """Hash of a resolved config (as a plain dict) over what decides a job's result: the output
    place, ``force`` and ``train.resume`` are left out, and so are ``also_ignored`` top-level keys
    and options added later at their neutral default (``ADDED_LATER``)."""
    settings = json.loads(json.dumps(settings))
    for key in (*IGNORED_KEYS, *also_ignored):
        settings.pop(key, None)
    settings.get("train", {}).pop("resume", None)
    model = (settings.get("model") or {}).get("name")
    for section, model_name, option, neutral in ADDED_LATER:
        options = settings.get(section) or {}
        if model_name in (None, model) and options.get(option, ...) == neutral:
            del options[option]
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


# Published rows whose name said something the source does not: old name, corrected name.
RENAMED_ROWS = {"Kneser-Ney n=5 (their best n-gram)": "Kneser-Ney n=5 (their best Kneser-Ney)"}
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
    if record["version"] < 2:
        # 1: published rows named as since corrected (RENAMED_ROWS); the job's identity follows the name
        published = (record.get("config") or {}).get("published") or {}
        beaten = published.get("beats_rows") or []
        if published.get("row") in RENAMED_ROWS or set(beaten) & set(RENAMED_ROWS):
            published["row"] = RENAMED_ROWS.get(published["row"], published["row"])
            published["beats_rows"] = [RENAMED_ROWS.get(row, row) for row in beaten] or None
            record["config_hash"] = settings_hash(record["config"])
        record["version"] = 2
    return record


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


TABLE_COLUMNS = ["model", "corpus", "protocol", "seed", "status", "valid_ppl", "test_ppl", "test_ppl_lo",
                 "test_ppl_hi", "test_bpc", "params", "model_mb", "peak_rss_mb", "train_s", "train_tok_s",
                 "eval_tok_s", "device", "fingerprint", "run"]


def row(record: dict, test: dict | None = None) -> dict:
    """The one mapping from a record to the numbers tables show (``table.csv`` takes
    ``TABLE_COLUMNS`` of it, the report all of it); ``test`` replaces the test metrics (the floor's)."""
    metrics = record.get("metrics") or {}
    test = (metrics.get("test") or {}) if test is None else test
    valid, train = metrics.get("valid") or {}, record.get("train") or {}
    timing, memory, job = record.get("timing") or {}, record.get("memory") or {}, record.get("job") or {}
    trained = record["model"] not in COUNT_BASED
    train_cfg = (record["config"].get("train") or {}) if trained else {}
    hardware = record.get("hardware") or {}
    return {
        "model": record["model"], "corpus": record["corpus"]["name"], "level": record["corpus"].get("level"),
        "protocol": record["config"].get("protocol"), "seed": record["config"].get("seed"),
        "status": record["status"], "valid_ppl": valid.get("ppl"), "test_ppl": test.get("ppl"),
        "test_ppl_lo": (test.get("ppl_ci") or [None, None])[0],
        "test_ppl_hi": (test.get("ppl_ci") or [None, None])[1], "test_bpc": test.get("bpc"),
        "params": memory.get("parameters"), "non_embedding_params": memory.get("non_embedding_parameters"),
        "train_flops": train_flops(train),
        "model_mb": memory.get("model_bytes") / 2**20 if memory.get("model_bytes") else None,
        "peak_rss_mb": memory.get("peak_rss_mb"), "peak_cuda_mb": memory.get("peak_cuda_mb"),
        "train_s": timing.get("train_seconds"), "train_tok_s": timing.get("train_tokens_per_s"),
        "eval_tok_s": test.get("eval_tokens_per_s"), "wall_s": timing.get("wall_seconds"),
        "device": record.get("device"), "fingerprint": (record["corpus"].get("fingerprint") or "")[:12],
        "run": record["id"], "precision": train.get("precision"),
        "flops_per_s": train.get("achieved_flops_per_s"), "peak_fraction": train.get("peak_fraction"),
        "hardware": f"{hardware.get('cpu')} / {record.get('device')}", "device_name": device_name(record),
        "budget_min": train_cfg.get("max_minutes"), "budget_tokens": train_cfg.get("max_tokens"),
        "max_epochs": train_cfg.get("max_epochs"), "stopped_by": train.get("stopped_by") if trained else None,
        "concurrent": bool(job.get("concurrent_jobs"))
        or job.get("launcher") in ("JoblibLauncher", "LocalLauncher"),
        "shared_process": bool(job.get("earlier_jobs_in_process")), "command": job.get("command"),
        "error": (record.get("error") or "").strip().split("\n")[0],
    }


def train_flops(train: dict) -> float | None:
    """Training compute C: FLOPs per training token (forward and backward, ``flops_per_token_train``)
    times the tokens trained; None for a count-based model."""
    per_token, tokens = train.get("flops_per_token_train"), train.get("tokens")
    return float(per_token) * tokens if per_token and tokens else None


def device_name(record: dict) -> str | None:
    """The GPU's name on CUDA, else the CPU's with its core count; None when not recorded."""
    hw = record.get("hardware") or {}
    if record.get("device") == "cuda" and hw.get("gpu"):
        return hw["gpu"]
    return f"{hw.get('cpu') or 'unknown CPU'} ({hw.get('cores')} cores)" if hw.get("cores") else hw.get("cpu")


def table(records: list[dict]) -> pd.DataFrame:
    """One row per run, plus one floor row per corpus that has an exact oracle."""
    rows, floors = [], {}
    for record in records:
        rows.append(row(record))
        floor = record.get("floor")
        if floor:
            key = (record["corpus"].get("fingerprint"), record["config"].get("protocol"))
            floors.setdefault(key, row(record, floor) | {
                "model": "oracle (floor)", "status": "ok", "valid_ppl": None, "seed": None, "params": None,
                "model_mb": None, "peak_rss_mb": None, "train_s": None, "train_tok_s": None, "run": "-"})
    frame = pd.DataFrame(rows + list(floors.values()), columns=TABLE_COLUMNS)
    if frame.empty:
        return frame
    return frame.sort_values(["corpus", "protocol", "test_ppl", "model", "seed"],
                             na_position="last", kind="stable").reset_index(drop=True)


def write_tables(root: Path, records: list[dict]) -> None:
    """Write ``table.csv`` and ``table.md`` in ``root`` from ``records`` (the one writer of these
    tables; ``rundir.refresh_tables`` regenerates them from a folder)."""
    frame = table(records)
    atomic_write_text(Path(root) / "table.csv", frame.to_csv(index=False))
    markdown = frame.to_markdown(index=False, floatfmt=".4g") if not frame.empty else "(no runs)"
    atomic_write_text(Path(root) / "table.md", markdown + "\n")
