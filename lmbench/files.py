"""Atomic writes and locks: every file lmbench writes (records, tables, checkpoints, corpus caches,
downloads) appears whole or not at all, and jobs sharing a folder take turns through one lock."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from lmbench.errors import UserError


def atomic_write(path: Path, write: Callable, binary: bool = False,
                 verify: Callable[[Path], None] | None = None) -> None:
    """Call ``write(file)`` on a temporary file in the same folder, then ``verify(temporary_path)``
    if given, then rename it onto ``path``: readers see the old file or the new one, never a partial
    one. A full disk is a ``UserError`` that leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if verify is not None:
            verify(Path(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise UserError(f"The disk is full: could not write {path}. Any previous version of it is "
                            "intact; free some space and run again (a killed training run resumes "
                            "from its last checkpoint).") from exc
        raise
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def atomic_copy(source: Path, target: Path) -> None:
    """Copy ``source`` onto ``target`` atomically."""
    with open(source, "rb") as src:
        atomic_write(target, lambda f: shutil.copyfileobj(src, f), binary=True)


def locked(folder: Path, name: str = ".lock") -> FileLock:
    """An exclusive lock on ``folder`` (a ``name`` file inside it) across processes, to hold with ``with``."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return FileLock(str(Path(folder) / name))
