"""Figures of the comparison report, drawn from run records with matplotlib (PNG files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _floor_line(ax, floors: dict, corpus: str) -> None:
    if corpus in floors:
        ax.axhline(floors[corpus], color="black", linestyle="--", linewidth=1, label="oracle (floor)")


def learning_curves(histories: pd.DataFrame, floors: dict, folder: Path) -> list[Path]:
    """Validation perplexity against epoch and against wall time, one panel pair per corpus."""
    paths = []
    for corpus, frame in histories.groupby("corpus"):
        fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(10, 4))
        palette = plt.rcParams["axes.prop_cycle"].by_key()["color"] * 9
        colours = dict(zip(sorted(frame.label.unique()), palette))
        for (label, seed), run in frame.groupby(["label", "seed"]):
            tag = label if seed == frame[frame.label == label].seed.min() else None
            for ax, x in ((by_epoch, run.epoch), (by_time, run.seconds)):
                ax.plot(x, run.valid_ppl, marker="o", markersize=3, color=colours[label], label=tag)
        for ax, xlabel in ((by_epoch, "epoch"), (by_time, "training wall time (s)")):
            _floor_line(ax, floors, corpus)
            ax.set(xlabel=xlabel, ylabel="validation perplexity", yscale="log")
            ax.grid(alpha=0.3)
        by_epoch.legend(fontsize=8)
        fig.suptitle(f"{corpus}: validation perplexity during training")
        paths.append(_save(fig, folder / f"curves_{corpus}.png"))
    return paths


def _pareto(points: pd.DataFrame, x: str) -> pd.DataFrame:
    """Points no other point beats on both ``x`` and test perplexity (lower is better)."""
    ordered = points.sort_values([x, "test_ppl"])
    return ordered[ordered.test_ppl <= ordered.test_ppl.cummin()]


def tradeoffs(summary: pd.DataFrame, floors: dict, folder: Path) -> list[Path]:
    """Test perplexity against parameters and against training time (with the Pareto front)."""
    paths = []
    for corpus, frame in summary.groupby("corpus"):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, x, xlabel in ((axes[0], "params", "parameters"),
                              (axes[1], "train_s", "training time (s)")):
            points = frame.dropna(subset=[x])
            points = points[points[x] > 0]
            ax.scatter(points[x], points.test_ppl)
            for _, row in points.iterrows():
                ax.annotate(row.label, (row[x], row.test_ppl), fontsize=8, xytext=(3, 3),
                            textcoords="offset points")
            if x == "train_s" and len(points):
                front = _pareto(points, x)
                ax.step(front[x], front.test_ppl, where="post", color="tab:red", linewidth=1,
                        label="Pareto front")
            _floor_line(ax, floors, corpus)
            ax.set(xlabel=xlabel, ylabel="test perplexity", xscale="log")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        fig.suptitle(f"{corpus}: accuracy against size and training cost")
        paths.append(_save(fig, folder / f"tradeoffs_{corpus}.png"))
    return paths


def ngram_growth(orders: pd.DataFrame, folder: Path) -> list[Path]:
    """n-gram storage and the share of test n-grams never seen in training, against order."""
    paths = []
    for corpus, frame in orders.groupby("corpus"):
        fig, (storage, sparsity) = plt.subplots(1, 2, figsize=(10, 4))
        for label, run in frame.groupby("label"):
            run = run.groupby("order", as_index=False).mean(numeric_only=True)
            storage.plot(run.order, run.cumulative_mb, marker="o", label=label)
            sparsity.plot(run.order, run.test_unseen_fraction, marker="o", label=label)
        storage.set(xlabel="order n", ylabel="model storage up to order n (MB)", yscale="log")
        sparsity.set(xlabel="order n", ylabel="test n-grams unseen in training", ylim=(0, 1))
        for ax in (storage, sparsity):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"{corpus}: n-gram storage growth and sparsity")
        paths.append(_save(fig, folder / f"ngram_{corpus}.png"))
    return paths
