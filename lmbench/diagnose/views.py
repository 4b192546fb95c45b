"""Text coloured by a unit's activation, as in Karpathy, Johnson & Fei-Fei (2015): an HTML page
(hover a token for its values) and a PNG that also traces the activation against the true feature.

Colours follow matplotlib's ``RdBu``: red for −1, white for 0, blue for +1, the activation divided by
the unit's largest magnitude over the recorded text (tanh units are already in [−1, 1]; an LSTM
cell is not bounded).
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib.colors
import numpy as np
from matplotlib.patches import Rectangle

from lmbench.corpora import EOS
from lmbench.diagnose.figures import plt, save

CMAP = plt.get_cmap("RdBu")
WIDTH = 110  # characters per line of the PNG's text panel
NEWLINE = "↵"
DARK = 0.6  # above this |activation| the background is dark enough for white text


def ink(v: float) -> str:
    return "white" if abs(v) > DARK else "black"


def scaled(values: np.ndarray) -> np.ndarray:
    """Activations in [-1, 1]: divided by their largest magnitude."""
    peak = np.abs(values).max()
    return values / peak if peak > 0 else values


def pieces(tokens: list[str], level: str) -> list[tuple[str, bool]]:
    """What to draw for each token, and whether a line break follows it. Words are followed by a
    space; a line end shows as ``↵``; a tab as four spaces."""
    out = []
    for t in tokens:
        if t in ("\n", EOS):
            out.append((NEWLINE, True))
        else:
            out.append((t.replace("\t", "    ") if level == "char" else t + " ", False))
    return out


def html_block(tokens: list[str], level: str, values: np.ndarray, feature: np.ndarray, title: str) -> str:
    """One unit's activation over ``tokens`` as a block of coloured spans."""
    spans = []
    for (text, breaks), raw, v, f in zip(pieces(tokens, level), values, scaled(values), feature):
        rgb = matplotlib.colors.to_hex(CMAP((v + 1) / 2))
        spans.append(f"<span style='background:{rgb};color:{ink(v)}' "
                     f"title='activation {raw:+.3f} | feature {f:g}'>{html.escape(text)}</span>"
                     + ("<br>" if breaks else ""))
    return f"<h2>{html.escape(title)}</h2>\n<div class='text'>{''.join(spans)}</div>\n"


def write_html(path: Path, heading: str, blocks: list[str]) -> Path:
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto}"
             ".text{font-family:monospace;white-space:pre-wrap;line-height:1.6;border:1px solid #ccc;"
             "padding:.5em}")
    path.write_text(f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(heading)}"
                    f"</title><style>{style}</style></head><body>\n<h1>{html.escape(heading)}</h1>\n"
                    "<p>Background: the unit's activation (red −1, white 0, blue +1, scaled by the "
                    "unit's largest magnitude). Hover a token for its values.</p>\n"
                    + "".join(blocks) + "</body></html>\n")
    return path


def _layout(tokens: list[str], level: str) -> list[tuple[str, int, int]]:
    """(text, column, row) of every token, wrapped at WIDTH characters."""
    placed, col, row = [], 0, 0
    for text, breaks in pieces(tokens, level):
        if col + len(text) > WIDTH:
            col, row = 0, row + 1
        placed.append((text, col, row))
        col += len(text)
        if breaks:
            col, row = 0, row + 1
    return placed


def write_png(path: Path, tokens: list[str], level: str, values: np.ndarray, feature: np.ndarray,
              title: str, feature_name: str) -> Path:
    """Coloured text above a trace of the activation and the feature over the same tokens."""
    placed = _layout(tokens, level)
    rows = placed[-1][2] + 1 if placed else 1
    width_in = 14.0
    char_in = width_in * 0.96 / WIDTH
    fontsize = char_in * 72 / 0.6  # a monospace character is about 0.6 em wide
    line_in = fontsize * 1.5 / 72
    fig, (text_ax, trace) = plt.subplots(
        2, 1, figsize=(width_in, rows * line_in + 3.2),
        gridspec_kw={"height_ratios": [rows * line_in, 2.4]})
    for (text, col, row), v in zip(placed, scaled(values)):
        text_ax.add_patch(Rectangle((col, row), len(text), 1, color=CMAP((v + 1) / 2), linewidth=0))
        text_ax.text(col, row + 0.5, text, fontsize=fontsize, family="monospace", va="center",
                     ha="left", color=ink(v))
    text_ax.set(xlim=(0, WIDTH), ylim=(rows, 0), title=title)
    text_ax.axis("off")
    x = np.arange(len(values))
    trace.plot(x, values, color="tab:blue", linewidth=1, label="activation")
    trace.set(xlim=(0, max(1, len(values) - 1)), xlabel="token", ylabel="activation")
    other = trace.twinx()
    other.step(x, feature, where="mid", color="black", linewidth=1, alpha=0.6, label=feature_name)
    other.set_ylabel(feature_name)
    handles = trace.get_legend_handles_labels()[0] + other.get_legend_handles_labels()[0]
    trace.legend(handles=handles, fontsize=8, loc="upper right")
    return save(fig, path)
