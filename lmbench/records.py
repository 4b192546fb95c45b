"""Run records: one self-describing JSON file per run, written atomically, and the tables derived
from a folder of them. Tables are never edited by hand; they are regenerated from records."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from lmbench.errors import UserError
from lmbench.files import atomic_write_text

RECORD_NAME = "record.json"
REFERENCE_DIR = "reference"  # committed reference runs inside a results folder: not the user's runs


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def write_record(record: dict, run_dir: Path) -> Path:
    path = Path(run_dir) / RECORD_NAME
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str))
    return path


def record_paths(root: Path) -> list[Path]:
    """Every record file below ``root``, leaving out the committed references in ``root/reference/``
    (report those with ``python -m lmbench.report results/reference/<name>``)."""
    return [p for p in sorted(Path(root).rglob(RECORD_NAME)) if p.relative_to(root).parts[0] != REFERENCE_DIR]


REQUIRED = {"id": str, "model": str, "status": str, "config": dict, "corpus": dict}  # what tables read


def read_record(path: Path) -> dict:
    """The record in ``path`` (a file or a run folder); a missing, unparsable or incomplete one is a
    ``UserError`` naming the file and what is wrong with it."""
    path = Path(path) / RECORD_NAME if Path(path).is_dir() else Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path} is not a readable lmbench record ({type(exc).__name__}: {exc}).") from None
    if not isinstance(record, dict):
        raise UserError(f"{path} is not an lmbench record (it holds a JSON {type(record).__name__}).")
    wrong = [k for k, kind in REQUIRED.items() if not isinstance(record.get(k), kind)]
    if wrong or "name" not in record["corpus"]:
        raise UserError(f"{path} is an incomplete lmbench record (missing or malformed: "
                        f"{', '.join(wrong) or 'corpus.name'}).")
    return record


def train_seconds(record: dict) -> float | None:
    """Training time over every process that trained the run: the fit time of the process that finished
    it, or the sum of its epochs' times when longer (a resumed run's earlier epochs count too)."""
    fit = (record.get("timing") or {}).get("train_seconds")
    epochs = (record.get("train") or {}).get("train_seconds")
    return max(fit, epochs) if fit is not None and epochs is not None else fit

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
        "train_s": train_seconds(record),
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
