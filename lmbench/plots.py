"""Figures of the comparison report and of the diagnostics, drawn with matplotlib (PNG files). Every
family keeps one colour in every figure and in the HTML tables (``colour``)."""

from __future__ import annotations

import math
import re
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.colors import ListedColormap, to_hex  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from lmbench.files import atomic_write  # noqa: E402
from lmbench.models import COLOURS  # noqa: E402

# significance matrix cells: the row model significantly better, worse, not significantly different,
# not tested (no per-token losses), or itself
KIND_COLOURS = {"better": "#b9e3b0", "worse": "#f5b9b2", "ns": "#e4e4e4", "none": "#ffffff",
                "self": "#ffffff"}


def colour(family: str) -> str:
    """The family's colour: fixed for the built-in families, a stable pick from tab20 otherwise."""
    return COLOURS[family] if family in COLOURS else \
        to_hex(plt.get_cmap("tab20")(zlib.crc32(family.encode()) % 20))


def run_colours(results: list[dict]) -> list[str]:
    """A colour per diagnosed run: its family's, unless the family is unknown or appears more than
    once (then one from the default cycle by position)."""
    families = [r["family"] for r in results]
    return [COLOURS[f] if f in COLOURS and families.count(f) == 1 else f"C{i % 10}"
            for i, f in enumerate(families)]


def short_names(labels) -> tuple[dict, str]:
    """Labels without the experiment tag they all share (it goes into the title instead)."""
    labels = sorted(set(labels))
    tags = {label.split(" [", 1)[1].split("]")[0] if " [" in label else None for label in labels}
    if len(tags) != 1 or None in tags:
        return {label: label for label in labels}, ""
    tag = tags.pop()
    return {label: label.replace(f" [{tag}]", "") for label in labels}, f" (experiment={tag})"


def file_name(stem: str) -> str:
    """``stem`` as a PNG's name in the report's folder: a corpus named ``a/b`` or ``../x`` never makes a
    path, and a name changed here gets a hash of the original so that two never collide."""
    safe = re.sub(r"[^\w.-]", "_", stem)
    return (safe if safe == stem else f"{safe}_{zlib.crc32(stem.encode()):08x}") + ".png"


def save(fig, path: Path, layout: bool = True) -> Path:
    """Write the figure atomically (a link already at its name is replaced, never written through)."""
    if layout:
        fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, dpi=110, format="png"), binary=True)
    plt.close(fig)
    return path


def _floor_line(ax, floors: dict, corpus: str, what: str = "oracle (floor)") -> None:
    if corpus in floors:
        ax.axhline(floors[corpus], color=colour("oracle"), linestyle="--", linewidth=1, label=what)


def _log_axis(axis, unit: str = "") -> None:
    """A log axis labelled like the tables (``200 k``, ``1 M``, ``50 s``), with as many ticks per
    decade as its span leaves room for. Call it once the axis limits are set."""
    low, high = axis.get_view_interval()
    if not 0 < low < high < math.inf:  # nothing finite drawn on it: matplotlib's own ticks
        return
    decades = math.log10(high / low)
    subs = (tuple(range(1, 10)) if decades < 0.6 else (1, 2, 3, 5) if decades < 1.2
            else (1, 2, 5) if decades < 2.5 else (1,))
    axis.set_major_locator(ticker.LogLocator(subs=subs))
    axis.set_major_formatter(ticker.EngFormatter(unit=unit, sep=" "))
    axis.set_minor_formatter(ticker.NullFormatter())


def _label_points(ax, points: list[tuple]) -> None:
    """Name each (x, y, text, colour) point beside it, moving a label up or down as little as
    needed so that it overlaps no other label and no marker."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    obstacles = [Bbox.from_bounds(px - 6, py - 6, 12, 12)
                 for px, py in ax.transData.transform([(x, y) for x, y, *_ in points])]
    for x, y, text, col in sorted(points, key=lambda p: (p[1], p[0])):
        right = ax.transAxes.inverted().transform(ax.transData.transform((x, y)))[0] > 0.75
        offset = -8 if right else 8
        style = {"textcoords": "offset points", "fontsize": 8, "color": col, "va": "center",
                 "ha": "right" if right else "left",
                 "bbox": {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none",
                          "alpha": 0.8}}
        label = ax.annotate(text, (x, y), xytext=(offset, 0), **style)
        box = label.get_window_extent(renderer).padded(1)
        shift = next(s for step in range(200) for s in (step, -step)
                     if not any(box.translated(0, s).overlaps(other) for other in obstacles))
        if shift:
            label.remove()
            ax.annotate(text, (x, y), xytext=(offset, shift * 72 / fig.dpi), **style,
                        arrowprops={"arrowstyle": "-", "color": col, "linewidth": 0.5,
                                    "shrinkA": 0, "shrinkB": 4})
        obstacles.append(box.translated(0, shift))


def learning_curves(histories: pd.DataFrame, flat: pd.DataFrame, floors: dict, folder: Path) -> list[Path]:
    """Validation perplexity against training tokens (data efficiency) and against wall time, one
    figure per corpus; count-based models, which have no curve, are dotted horizontal lines."""
    paths = []
    names, tag = short_names(list(histories.label) + list(flat.label))
    for corpus, frame in histories.groupby("corpus"):
        fig, (by_tokens, by_time) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        for (label, seed), run in frame.groupby(["label", "seed"]):
            first = seed == frame[frame.label == label].seed.min()
            for ax, x in ((by_tokens, run.tokens), (by_time, run.seconds)):
                ax.plot(x, run.valid_ppl, marker="o", markersize=3, color=colour(run.model.iloc[0]),
                        label=names[label] if first else None)
        for row in flat[flat.corpus == corpus].itertuples():
            for ax in (by_tokens, by_time):
                ax.axhline(row.valid_ppl, color=colour(row.model), linestyle=":", linewidth=1.5,
                           label=f"{names[row.label]} (count-based)" if ax is by_tokens else None)
        for ax, xlabel, unit in ((by_tokens, "training tokens seen (log scale)", ""),
                                 (by_time, "training + validation wall time (log scale)", "s")):
            _floor_line(ax, floors, corpus, "oracle floor (test)")
            ax.set(xlabel=xlabel, xscale="log", yscale="log")
            _log_axis(ax.xaxis, unit)
            _log_axis(ax.yaxis)
            ax.grid(alpha=0.3, which="both")
        by_tokens.set_ylabel("validation perplexity (log scale)")
        by_tokens.legend(fontsize=8)
        fig.suptitle(f"{corpus}{tag}: validation perplexity during training (one line per seed)")
        paths.append(save(fig, folder / file_name(f"curves_{corpus}")))
    return paths


def data_size(points: pd.DataFrame, folder: Path) -> list[Path]:
    """Excess test loss over the exact oracle against training tokens, one line per family (the mean
    over seeds): what more data buys each family, and what is left for memory to explain. Where the
    sweep has mixtures (``lmbench.combine --each-corpus``), a second panel shows the mixture's
    perplexity reduction over the n-gram at each size (Mikolov 2012, §5: it grows with data)."""
    paths = []
    for corpus, frame in points.groupby("corpus"):
        excess = frame.groupby(["family", "train_tokens"]).excess.mean().unstack("family")
        gain = {"mix", "ngram"} <= set(excess.columns)
        fig, axes = plt.subplots(1, 2 if gain else 1, figsize=(11 if gain else 6.4, 4.2), squeeze=False)
        ax = axes[0, 0]
        for family in excess.columns:
            ax.plot(excess.index, excess[family], marker="o", color=colour(family), label=family)
        ax.axhline(0, color=colour("oracle"), linestyle="--", linewidth=1, label="oracle (floor)")
        ax.set(xscale="log", xlabel="training tokens (log scale)",
               ylabel="test loss above the oracle's (nats/token)",
               title=f"{corpus}: excess loss over the exact floor against training-set size")
        if gain:
            reduction = 100 * (1 - np.exp(excess["mix"] - excess["ngram"])).dropna()
            axes[0, 1].plot(reduction.index, reduction.values, marker="o", color=colour("mix"))
            axes[0, 1].set(xscale="log", xlabel="training tokens (log scale)",
                           ylabel="test perplexity below the n-gram's (%)",
                           title="the mixture's gain over the n-gram alone")
        for a in axes[0]:
            _log_axis(a.xaxis)
            a.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        paths.append(save(fig, folder / file_name(f"datasize_{corpus}")))
    return paths


def tradeoffs(summary: pd.DataFrame, floors: dict, folder: Path) -> list[Path]:
    """Test perplexity (with its 95% interval) against parameters and against training time,
    with the Pareto front: the models nothing beats on both axes."""
    paths = []
    names, tag = short_names(summary.label)
    for corpus, frame in summary.groupby("corpus"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        panels = ((axes[0], "params", "parameters (log scale)", ""),
                  (axes[1], "train_s", "training time per run (log scale)", "s"))
        for ax, x, xlabel, unit in panels:
            points = frame[frame[x] > 0]  # neither missing nor off a log axis
            for row in points.itertuples():  # the interval (from 16-bit losses) may miss the seeds' mean
                ax.errorbar(getattr(row, x), row.test_ppl, fmt="o", color=colour(row.family),
                            yerr=[[max(0, row.test_ppl - row.ci_lo)], [max(0, row.ci_hi - row.test_ppl)]]
                            if row.ci_lo == row.ci_lo else None, capsize=3, markersize=6)
            if len(points) > 1:
                front = points.sort_values([x, "test_ppl"])
                front = front[front.test_ppl <= front.test_ppl.cummin()]  # nothing beats these on both
                ax.step(front[x], front.test_ppl, where="post", color="#555555", linewidth=1,
                        linestyle="-.", label="Pareto front", zorder=0)
            _floor_line(ax, floors, corpus)
            ax.set(xlabel=xlabel, xscale="log")
            ax.margins(x=0.15, y=0.1)
            _log_axis(ax.xaxis, unit)
            ax.grid(alpha=0.3, which="both")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8, loc="upper right")
        axes[0].set_ylabel("test perplexity")
        fig.suptitle(f"{corpus}{tag}: accuracy against size and training cost (bars: 95% interval)")
        fig.tight_layout()
        for ax, x, *_ in panels:
            _label_points(ax, [(getattr(r, x), r.test_ppl, names[r.label], colour(r.family))
                               for r in frame[frame[x] > 0].itertuples()])
        paths.append(save(fig, folder / file_name(f"tradeoffs_{corpus}"), layout=False))
    return paths


def significance(name: str, title: str, families: list[str], text: pd.DataFrame, kind: pd.DataFrame,
                 folder: Path) -> Path:
    """The paired comparisons as a matrix: row minus column test loss, coloured by which is
    significantly better; grey where the difference is not significant."""
    order = list(text.index)
    names, tag = short_names(order)
    kinds = list(KIND_COLOURS)
    codes = kind.map(kinds.index).to_numpy()
    size = 1.1 + 1.05 * len(order)
    fig, ax = plt.subplots(figsize=(size + 0.6, size))
    ax.imshow(codes, cmap=ListedColormap([KIND_COLOURS[k] for k in kinds]), vmin=0, vmax=len(kinds) - 1)
    for i, row in enumerate(order):
        for j, col in enumerate(order):
            ax.text(j, i, "" if i == j else text.loc[row, col].replace(" n.s.", "\nn.s."),
                    ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(order)), [names[o] for o in order], rotation=30, ha="right")
    ax.set_yticks(range(len(order)), [names[o] for o in order])
    for label, family in zip([*ax.get_xticklabels(), *ax.get_yticklabels()], families * 2):
        label.set(color=colour(family), fontweight="bold")
    ax.set_xticks([x - 0.5 for x in range(1, len(order))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(order))], minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="both", length=0)
    ax.set(xlabel="column model", ylabel="row model")
    ax.set_title(f"{title}{tag}: row − column test loss (nats/token)\n"
                 "green: row significantly better · red: worse · grey: not significant", fontsize=9)
    return save(fig, folder / file_name(f"significance_{name}"))


def ngram_growth(orders: pd.DataFrame, folder: Path) -> list[Path]:
    """n-gram storage and the share of test n-grams never seen in training, against order."""
    paths = []
    names, tag = short_names(orders.label)
    for corpus, frame in orders.groupby("corpus"):
        fig, (storage, sparsity) = plt.subplots(1, 2, figsize=(11, 4))
        for label, run in frame.groupby("label"):
            family = run.model.iloc[0]
            run = run.groupby("order", as_index=False).mean(numeric_only=True)
            for ax, y in ((storage, run.cumulative_mb), (sparsity, run.test_unseen_fraction)):
                ax.plot(run.order, y, marker="o", label=names[label], color=colour(family))
        storage.set(xlabel="order n", ylabel="model storage up to order n (log scale)", yscale="log")
        storage.yaxis.set_major_formatter(ticker.FuncFormatter(lambda mb, _: f"{mb:g} MB"))
        sparsity.set(xlabel="order n", ylabel="test n-grams unseen in training", ylim=(0, 1))
        sparsity.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        for ax in (storage, sparsity):
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="lower right")
        fig.suptitle(f"{corpus}{tag}: n-gram storage growth and sparsity")
        paths.append(save(fig, folder / file_name(f"ngram_{corpus}")))
    return paths
