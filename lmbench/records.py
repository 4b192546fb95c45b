"""Run records: one self-describing JSON file per run, written atomically, and the tables derived
from a folder of them. Tables are never edited by hand; they are regenerated from records."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd

from lmbench.paths import checkout_root

RECORD_NAME = "record.json"
REFERENCE_DIR = "reference"  # committed reference runs inside a results folder: not the user's runs
PACKAGES = ("lmbench", "torch", "numpy", "pandas", "nltk", "hydra-core", "omegaconf")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def atomic_write(path: Path, write, binary: bool = False) -> None:
    """Call ``write(file)`` on a temporary file in the same folder, then rename it onto ``path``
    atomically: readers see the old file or the new one, never a partial one. A full disk is a
    ``UserError`` that leaves the old file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            from lmbench.errors import UserError

            raise UserError(f"The disk is full: could not write {path}. Any previous version of "
                            "it is intact; free some space and run again (a killed training run "
                            "resumes from its last checkpoint).") from exc
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = platform.python_version()
    return found


PROJECT_ROOT = checkout_root()


def git_commit(root: Path | None = PROJECT_ROOT) -> str | None:
    """HEAD's hash, with ``-dirty`` when tracked code differs from it (changes under ``results/``,
    such as a sweep's own tables, are output, not code, and do not count); None for an installed
    lmbench, which has no checkout (even inside someone else's repository)."""
    if root is None:
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results"], cwd=root, capture_output=True, text=True,
                               timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("-dirty" if dirty else "")) or None


def hardware(device: str) -> dict:
    import psutil

    torch = sys.modules.get("torch")  # None for a count-based run, which never imports it
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads() if torch else None,
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(), "device": device, "gpu": None}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_record(record: dict, run_dir: Path) -> Path:
    path = Path(run_dir) / RECORD_NAME
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str))
    return path


def record_paths(root: Path, own_only: bool = False) -> list[Path]:
    """Every record file below ``root``; ``own_only`` leaves out ``root/reference/``."""
    paths = sorted(Path(root).rglob(RECORD_NAME))
    if own_only:
        paths = [p for p in paths if p.relative_to(root).parts[0] != REFERENCE_DIR]
    return paths


REQUIRED = {"id": str, "model": str, "status": str, "config": dict, "corpus": dict}  # what tables read


def read_record(path: Path) -> dict:
    """The record in ``path`` (a file or a run folder); a missing, unparsable or incomplete one is a
    ``UserError`` naming the file and what is wrong with it."""
    from lmbench.errors import UserError

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


def collect(root: Path, own_only: bool = False) -> tuple[list[dict], list[str]]:
    """All readable records below ``root`` (see ``record_paths``), and a note for each file
    skipped as unreadable or incomplete: one bad record never breaks a table or a report."""
    from lmbench.errors import UserError

    records, skipped = [], []
    for path in record_paths(root, own_only):
        try:
            record = read_record(path)
        except UserError as exc:
            skipped.append(str(exc))
            continue
        record["_path"] = str(path)
        records.append(record)
    return records, skipped


def read_losses(record: dict):
    """The run's per-token test losses (``test_losses.npy`` beside its record), or None when the file
    is missing, truncated or not the record's test split."""
    import numpy as np

    path = Path(record["_path"]).parent / "test_losses.npy"
    try:
        losses = np.load(path, allow_pickle=False).astype(np.float64)
    except (OSError, ValueError, EOFError):
        return None
    tokens = ((record.get("metrics") or {}).get("test") or {}).get("tokens")
    return losses if losses.ndim == 1 and tokens in (None, len(losses)) else None


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


def write_tables(root: Path, records: list[dict] | None = None) -> pd.DataFrame:
    """Regenerate ``table.csv`` and ``table.md`` in ``root`` from ``records`` (default: every
    record below ``root``, read under a lock so that the last of concurrent jobs sees them all)."""
    if records is None:
        Path(root).mkdir(parents=True, exist_ok=True)
        with open(Path(root) / ".table.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return write_tables(root, collect(root, own_only=True)[0])
    frame = table(records)
    atomic_write_text(Path(root) / "table.csv", frame.to_csv(index=False))
    markdown = frame.to_markdown(index=False, floatfmt=".4g") if not frame.empty else "(no runs)"
    atomic_write_text(Path(root) / "table.md", markdown + "\n")
    return frame
