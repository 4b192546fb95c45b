"""Matplotlib set-up shared by the diagnostics: headless backend, one colour per model family (the
same family has the same colour in every figure: ``lmbench.models.MODELS``), and saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lmbench.models import COLOURS  # noqa: E402


def colours(results: list[dict]) -> list[str]:
    """A colour per result: its family's, unless the family is unknown or appears more than once
    (then one from the default cycle by position)."""
    families = [r["family"] for r in results]
    return [COLOURS[f] if f in COLOURS and families.count(f) == 1 else f"C{i % 10}"
            for i, f in enumerate(families)]


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
