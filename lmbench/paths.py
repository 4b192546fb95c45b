"""Where lmbench finds its configs and keeps its corpus cache: a checkout's own ``conf/`` and
``corpora/``, or, installed from a wheel, the configs packaged with it and the user's cache folder."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CACHE_ENV = "LMBENCH_CACHE"


def checkout_root() -> Path | None:
    """The repository folder when lmbench runs from a checkout (or an editable install of one)."""
    root = PACKAGE_DIR.parent
    is_checkout = (root / "pyproject.toml").is_file() and (root / "conf" / "config.yaml").is_file()
    return root if is_checkout else None


def conf_dir() -> Path:
    """The checkout's ``conf/``, or the copy a wheel installs as ``lmbench/conf``."""
    root = checkout_root()
    return root / "conf" if root else PACKAGE_DIR / "conf"


def cache_dir() -> Path:
    """The corpus cache: ``$LMBENCH_CACHE``, else the checkout's ``corpora/``, else
    ``$XDG_CACHE_HOME/lmbench`` (``~/.cache/lmbench``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    root = checkout_root()
    if root:
        return root / "corpora"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lmbench"
