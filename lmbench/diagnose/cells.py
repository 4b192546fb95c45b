"""Interpretable cells (Karpathy, Johnson & Fei-Fei 2015): hidden units that track a feature of the text.

The trained network reads a text from its empty context one token at a time; after each token every
unit's activation is recorded (h of every layer, and the cell c too for the LSTM). Each unit is
ranked by the absolute Pearson correlation of its activation with a feature of the text *after that
token*:

* synthetic corpus, the true latent state: inside a span, nesting depth, and one indicator per
  delimiter type (the innermost open span is of that type), defined inside spans only so that it
  measures memory of the type rather than of being inside;
* other text: inside double quotes (reset at a line end, as in code and dialogue lines), inside
  parentheses, position in the line, and at character level the line's indentation.

The top units and their correlations go into the record; ``cells.html`` (hover a token for its
values) and ``cells.png`` (which also traces the activation against the feature) colour the text by a
chosen unit's activation in matplotlib's ``RdBu``: red for −1, white for 0, blue for +1, the activation
divided by the unit's largest magnitude over the text shown (tanh units are already in [−1, 1]; an
LSTM cell is not bounded).
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib.colors
import numpy as np
import torch
from matplotlib.patches import Rectangle

from lmbench.corpora import EOS
from lmbench.corpora.synthetic import SyntheticProcess
from lmbench.errors import UserError
from lmbench.plots import plt, save
from lmbench.train import state_tensors

TOP = 5  # units kept per feature
CMAP = plt.get_cmap("RdBu")
WIDTH = 110  # characters per line of the PNG's text panel
NEWLINE = "↵"
DARK = 0.6  # above this |activation| the background is dark enough for white text


def activations(model, ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(n, units) activations after each token of ``ids`` read from the empty context (the start
    token first, as in scoring), and a label per unit: ``h0.17`` is unit 17 of layer 0's h."""
    net = model.net.eval()
    inputs = torch.as_tensor(np.concatenate([[model.start_id], ids]), dtype=torch.long)
    rows, state = [], None
    with torch.inference_mode():
        for i, x in enumerate(inputs):
            _, state = net(x.view(1, 1), state)
            if i:
                rows.append(torch.cat([s[:, 0].reshape(-1) for s in state_tensors(state)]))
    names = ("h", "c") if isinstance(state, tuple) else ("h",)
    layers, _, size = state_tensors(state)[0].shape
    labels = [f"{name}{layer}.{j}" for name in names for layer in range(layers) for j in range(size)]
    return torch.stack(rows).float().numpy(), labels


def synthetic_features(corpus, tokens: list[str]) -> dict[str, np.ndarray]:
    """The process's latent state after each token: inside a span, depth, innermost span type."""
    process = SyntheticProcess(corpus.meta["synthetic"])
    # the latents hold the state *before* each token: shift by one, with a word appended at the end
    after = {k: v[1:] for k, v in process.latents(tokens + [process.words[0]]).items()}
    features = {"inside a span": after["inside"].astype(float), "depth": after["depth"].astype(float)}
    for j, (opener, closer) in enumerate(process.delimiters):
        features[f"type {opener} {closer}"] = np.where(after["inside"], after["delimiter"] == j, np.nan)
    return features


def text_features(tokens: list[str], level: str) -> dict[str, np.ndarray]:
    """Simple features of ordinary text after each token (characters or words)."""
    names = ["inside quotes", "inside parentheses", "position in line"]
    names += ["indentation"] if level == "char" else []
    values = np.zeros((len(tokens), 4))
    quoted, parens, position, indent, leading = False, 0, 0, 0, True
    for i, t in enumerate(tokens):
        if t in ("\n", EOS):
            quoted, position, indent, leading = False, 0, 0, True
        else:
            position += 1
            leading = leading and t in (" ", "\t")
            indent += leading
            quoted ^= t.count('"') % 2 == 1
            parens = max(0, parens + t.count("(") - t.count(")"))
        values[i] = quoted, parens > 0, position, indent
    return {name: values[:, j] for j, name in enumerate(names)}


def _standardise(x: np.ndarray) -> np.ndarray:
    """Columns scaled to mean 0 and unit variance; a constant column becomes all zeros."""
    std = x.std(axis=0)
    return np.divide(x - x.mean(axis=0), std, out=np.zeros_like(x, dtype=float), where=std > 0)


def correlations(acts: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of every unit (column of ``acts``) with ``feature`` over the positions
    where the feature is defined (not NaN); 0 where undefined."""
    kept = ~np.isnan(feature)
    return _standardise(acts[kept].astype(float)).T @ _standardise(feature[kept]) / max(1, kept.sum())


def rank(acts: np.ndarray, labels: list[str], found: dict[str, np.ndarray]) -> dict:
    """Per feature that varies over the text, its TOP units by |correlation|, strongest first."""
    ranking = {}
    for name, feature in found.items():
        if not np.nanstd(feature) > 0:
            continue
        r = correlations(acts, feature)
        ranking[name] = [{"unit": labels[j], "index": int(j), "corr": float(r[j])}
                         for j in np.argsort(-np.abs(r), kind="stable")[:TOP]]
    return ranking


def diagnose(run, split: str = "test", tokens: int = 20_000, unit: str | None = None,
             feature: str | None = None, show: int = 400) -> dict | None:
    """Rank a trained run's units; writes ``cells.json``, ``cells.html``, ``cells.png`` and the record
    summary. ``unit`` (a label such as ``c0.17``) and ``feature`` pick what the views show (default:
    the first feature and its best unit). Returns the details, or None for a non-recurrent family."""
    from lmbench.models.recurrent import Recurrent

    model = run.model(trained=True)
    if not isinstance(model, Recurrent):
        run.save_diagnostic("cells", {}, {"skipped": f"model {run.family} has no recurrent hidden units"})
        return None
    corpus = run.corpus
    ids = corpus.splits[split][:tokens]
    acts, labels = activations(model, ids)
    text = corpus.vocab.decode(ids)
    found = (synthetic_features(corpus, text) if "synthetic" in corpus.meta
             else text_features(text, corpus.level))
    ranking = rank(acts, labels, found)
    feature = feature or next(iter(ranking))
    if feature not in found:
        raise UserError(f"feature={feature!r} is not one of: {', '.join(found)}.")
    unit = unit or ranking[feature][0]["unit"]
    if unit not in labels:
        raise UserError(f"unit={unit!r} is not a unit of this model ({labels[0]} ... {labels[-1]}).")
    index = labels.index(unit)
    corr = float(correlations(acts[:, [index]], found[feature])[0])
    summary = {"split": split, "tokens": len(ids), "units": len(labels), "top": ranking,
               "shown": {"unit": unit, "feature": feature, "corr": corr}}
    run.save_diagnostic("cells", {**summary, "label": run.label, "corpus": corpus.name, "unit_labels": labels,
                                  "correlations": {name: correlations(acts, f).tolist()
                                                   for name, f in found.items()}}, summary)
    _write_views(run, ids, acts, labels, found, ranking, summary, show)
    return summary


def _write_views(run, ids, acts, labels, found, ranking, summary: dict, show: int) -> None:
    """``cells.html``: the text coloured by the chosen unit and by each feature's best unit;
    ``cells.png``: the chosen unit against its feature."""
    corpus = run.corpus
    unit, feature, corr = (summary["shown"][k] for k in ("unit", "feature", "corr"))
    title = f"{run.label} on {corpus.name} ({summary['split']})"
    text = corpus.vocab.decode(ids[:show])
    tracked = {unit: {feature: corr}}  # the chosen unit first, then each feature's best unit
    for name, best in ranking.items():
        tracked.setdefault(best[0]["unit"], {}).setdefault(name, best[0]["corr"])
    blocks = []
    for u, pairs in tracked.items():
        heading = f"unit {u}: " + "; ".join(f"correlation {r:+.2f} with '{f}'" for f, r in pairs.items())
        first = found[next(iter(pairs))][:show]  # the feature a hovered token reports
        blocks.append(html_block(text, corpus.level, acts[:show, labels.index(u)], first, heading))
    heading = html.escape(f"Interpretable cells: {title}")
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto}"
             ".text{font-family:monospace;white-space:pre-wrap;line-height:1.6;border:1px solid #ccc;"
             "padding:.5em}")
    folder = run.diagnostics_folder()
    (folder / "cells.html").write_text(
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{heading}</title><style>{style}</style>"
        f"</head><body>\n<h1>{heading}</h1>\n<p>Background: the unit's activation (red −1, white 0, blue +1, "
        "scaled by the unit's largest magnitude). Hover a token for its values.</p>\n"
        + "".join(blocks) + "</body></html>\n")
    write_png(folder / "cells.png", text, corpus.level, acts[:show, labels.index(unit)],
              found[feature][:show], f"{title}: unit {unit}, correlation {corr:+.2f} with '{feature}'",
              feature)


def ink(v: float) -> str:
    return "white" if abs(v) > DARK else "black"


def scaled(values: np.ndarray) -> np.ndarray:
    """Activations in [-1, 1]: divided by their largest magnitude."""
    peak = np.abs(values).max()
    return values / peak if peak > 0 else values


def pieces(tokens: list[str], level: str) -> list[tuple[str, bool]]:
    """What to draw for each token, and whether a line break follows it. Words are followed by a
    space; a line end shows as ``↵``; a tab as four spaces."""
    return [(NEWLINE, True) if t in ("\n", EOS)
            else (t.replace("\t", "    ") if level == "char" else t + " ", False) for t in tokens]


def html_block(tokens: list[str], level: str, values: np.ndarray, feature: np.ndarray, title: str) -> str:
    """One unit's activation over ``tokens`` as a block of coloured spans."""
    spans = []
    for (text, breaks), raw, v, f in zip(pieces(tokens, level), values, scaled(values), feature):
        rgb = matplotlib.colors.to_hex(CMAP((v + 1) / 2))
        spans.append(f"<span style='background:{rgb};color:{ink(v)}' "
                     f"title='activation {raw:+.3f} | feature {f:g}'>{html.escape(text)}</span>"
                     + ("<br>" if breaks else ""))
    return f"<h2>{html.escape(title)}</h2>\n<div class='text'>{''.join(spans)}</div>\n"


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
    fontsize = width_in * 0.96 / WIDTH * 72 / 0.6  # a character's width in points; it is about 0.6 em
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
