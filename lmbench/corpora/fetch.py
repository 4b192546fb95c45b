"""Find a corpus's canonical file: the local cache, then a mirror folder, then the canonical URL.

Every file is checked against its declared sha256 before it is used or moved into the cache, and it
only ever enters the cache by an atomic rename, so an interrupted or corrupt copy is never read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

from lmbench.errors import ChecksumError, CorpusError
from lmbench.files import atomic_copy, atomic_write
from lmbench.paths import CACHE_ENV, cache_dir

MIRROR_ENV = "LMBENCH_MIRROR"


def writable_cache(sub: str = "") -> Path:
    """The cache folder (or ``sub`` inside it), created if needed; a cache that is a file or cannot be
    written is a ``CorpusError`` saying so (rather than a failed download or a traceback)."""
    folder = cache_dir() / sub
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise CorpusError(f"The corpus cache {cache_dir()} cannot be written ({exc.strerror}: "
                          f"{exc.filename}). Set {CACHE_ENV} to a writable folder, or fix its "
                          "permissions.") from None
    return folder


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, expected: str, what: str) -> None:
    try:
        actual = sha256_of(path)
    except OSError as exc:  # a folder where the file belongs, or no permission to read it
        raise CorpusError(f"{what} ({path}) cannot be read ({exc.strerror}): a corpus file belongs "
                          "there. Remove or replace it with the file, and run again.") from None
    if actual != expected:
        raise ChecksumError(
            f"Checksum mismatch for {what} ({path}): expected sha256 {expected}, got {actual}. "
            "The file is corrupt, truncated or a different version; the cache was left untouched. "
            "Delete the bad copy (or fix the mirror) and run again.")


def _download(url: str, target: Path, expected: str) -> None:
    if not url.startswith("https://"):
        raise CorpusError(f"Refusing to download {url}: only https URLs are allowed.")
    with urllib.request.urlopen(url, timeout=30) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm.wrapattr(response, "read", total=total, desc=f"download {target.name}") as counted:
            atomic_write(target, lambda out: shutil.copyfileobj(counted, out), binary=True,
                         verify=lambda tmp: _verify(tmp, expected, f"the download of {url}"))


def fetch(spec, corpus: str) -> Path:
    """Return the cached path of a verified copy of ``spec`` (a ``SourceFile`` config)."""
    target = cache_dir() / spec.path
    if target.exists():
        _verify(target, spec.sha256, f"cached file {spec.path} of corpus {corpus}")
        return target
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        if not Path(mirror).is_dir():
            raise CorpusError(
                f"{MIRROR_ENV}={mirror} is not an existing folder. Point it at a corpus mirror "
                "(a folder laid out like corpora/, e.g. ../shared/corpora) or unset it.")
        candidate = Path(mirror) / spec.path
        if candidate.exists():
            _verify(candidate, spec.sha256, f"mirror file {spec.path} of corpus {corpus}")
            writable_cache(str(Path(spec.path).parent))
            atomic_copy(candidate, target)  # verified, then in by an atomic rename
            return target
    writable_cache(str(Path(spec.path).parent))
    try:
        _download(spec.url, target, spec.sha256)
    except ChecksumError:
        raise
    except Exception as exc:  # network errors come in many types; all mean "not reachable"
        looked = f"not in the cache ({target})"
        looked += f", not in the mirror ({Path(mirror) / spec.path})" if mirror else \
            f", no mirror set (${MIRROR_ENV})"
        raise CorpusError(
            f"Corpus {corpus}: file {spec.path} is {looked}, and downloading {spec.url} failed "
            f"({exc}). Connect to the internet, or set {MIRROR_ENV} to a folder holding "
            f"{spec.path}, or place the file at {target} yourself.") from exc
    return target
