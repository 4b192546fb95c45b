"""Unpacking a user's zip/tar corpus without trusting it: no absolute paths, no ``..``, no links or
devices, and a cap on the extracted size (a zip bomb stops at the cap, not at a full disk)."""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from lmbench.errors import CorpusError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def _safe_name(name: str, archive: Path) -> PurePosixPath:
    member = PurePosixPath(name)
    if member.is_absolute() or name.startswith(("/", "\\")) or ".." in member.parts or ":" in name:
        raise CorpusError(f"{archive} holds an unsafe path {name!r} (absolute or with '..'); refusing "
                          "to unpack it. Repack the corpus with plain relative paths.")
    return member


def _members(archive: Path):
    """(name, size, opener) of every regular file; anything else is refused."""
    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                if (info.external_attr >> 16) & 0o170000 not in (0, 0o100000):
                    raise CorpusError(f"{archive} holds {info.filename!r}, which is not a regular "
                                      "file (a link?); refusing to unpack it.")
                yield info.filename, info.file_size, lambda info=info: zf.open(info)
        return
    with tarfile.open(archive) as tf:
        for info in tf.getmembers():
            if info.isdir():
                continue
            if not info.isfile():
                raise CorpusError(f"{archive} holds {info.name!r}, which is not a regular file "
                                  "(a link or device); refusing to unpack it.")
            yield info.name, info.size, lambda info=info: tf.extractfile(info)


def unpack(archive: Path, into: Path, max_bytes: int) -> Path:
    """Extract ``archive`` into a folder named by its hash under ``into`` (which exists); returns it."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    target = into / f"{archive.name}-{digest}"
    if target.is_dir():
        return target
    staging = Path(tempfile.mkdtemp(dir=into, prefix=".unpack-"))
    too_big = CorpusError(f"{archive} unpacks to more than corpus.max_unpacked_mb="
                          f"{max_bytes // 2**20} MB; refusing (raise the cap if it is genuine).")
    try:
        declared = written = 0
        for name, size, open_member in _members(archive):
            member = PurePosixPath(name)
            if member.parts[:1] == ("__MACOSX",) or member.name.startswith("._"):
                continue  # a macOS Finder zip's __MACOSX/ folder or AppleDouble file: metadata, not text
            declared += size
            if declared > max_bytes:  # what the archive claims, checked before unpacking
                raise too_big
            destination = staging.joinpath(*_safe_name(name, archive).parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with open_member() as src, open(destination, "wb") as out:
                for block in iter(lambda: src.read(1 << 20), b""):
                    written += len(block)
                    if written > max_bytes:  # what it really holds, if the claim was a lie
                        raise too_big
                    out.write(block)
        os.replace(staging, target)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # a real I/O error (disk full, permissions), not a damaged archive
        raise CorpusError(f"{archive} is not a readable archive: it is damaged or truncated "
                          f"({type(exc).__name__}: {exc}). Repack it, or unpack it yourself and point "
                          "corpus.path at the folder.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def corpus_root(target: Path) -> Path:
    """The folder or single file a user's archive holds (a lone top folder is stepped into)."""
    entries = [p for p in target.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1:
        return entries[0] if entries[0].is_file() else corpus_root(entries[0])
    return target
