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

The top units and their correlations go into the record; ``cells.html`` and ``cells.png`` colour the
text by a chosen unit's activation (``lmbench.diagnose.views``).
"""

from __future__ import annotations

import numpy as np
import torch

from lmbench.corpora import EOS
from lmbench.corpora.synthetic import SyntheticProcess
from lmbench.diagnose.views import html_block, write_html, write_png
from lmbench.errors import UserError
from lmbench.train import state_tensors

TOP = 5  # units kept per feature


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


def features(corpus, ids: np.ndarray) -> dict[str, np.ndarray]:
    tokens = corpus.vocab.decode(ids)
    if "synthetic" in corpus.meta:
        return synthetic_features(corpus, tokens)
    return text_features(tokens, corpus.level)


def _standardise(x: np.ndarray) -> np.ndarray:
    """Columns scaled to mean 0 and unit variance; a constant column becomes all zeros."""
    std = x.std(axis=0)
    return np.divide(x - x.mean(axis=0), std, out=np.zeros_like(x, dtype=float), where=std > 0)


def correlations(acts: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of every unit (column of ``acts``) with ``feature`` over the positions
    where the feature is defined (not NaN); 0 where undefined."""
    kept = ~np.isnan(feature)
    return _standardise(acts[kept].astype(float)).T @ _standardise(feature[kept]) / max(1, kept.sum())


def rank(acts: np.ndarray, labels: list[str], found: dict[str, np.ndarray], top: int = TOP) -> dict:
    """Per feature that varies over the text, its ``top`` units by |correlation|, strongest first."""
    ranking = {}
    for name, feature in found.items():
        if not np.nanstd(feature) > 0:
            continue
        r = correlations(acts, feature)
        ranking[name] = [{"unit": labels[j], "index": int(j), "corr": float(r[j])}
                         for j in np.argsort(-np.abs(r), kind="stable")[:top]]
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
    found = features(corpus, ids)
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
    folder = run.diagnostics_folder()
    write_html(folder / "cells.html", f"Interpretable cells: {title}", blocks)
    write_png(folder / "cells.png", text, corpus.level, acts[:show, labels.index(unit)],
              found[feature][:show], f"{title}: unit {unit}, correlation {corr:+.2f} with '{feature}'",
              feature)
