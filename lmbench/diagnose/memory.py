"""Long-range memory probe on the synthetic corpus, where the truth is known.

A closer's type is fixed by its opener, possibly many tokens back; the exact oracle gives each closer
probability 1/``mean_distance`` whatever the distance, so a model's *excess loss* over the oracle at a
closer (its log-loss minus the oracle's) measures what it has forgotten. A model that lost the
opener's type pays about ln(num_delimiters) more. Binned by the distance to the opener, the excess
loss rises where memory fades; the *effective memory* is the distance at which the binned curve
has climbed half of its rise, from its value at the shortest distance to its maximum (see
``effective_memory``: what a model pays with the opener just read is a failure to learn the
dependency, not forgetting, so it is the baseline rather than the oracle's zero).

By default the probe text is a fresh sample of the corpus's process (seeded from the corpus seed,
independent of the three splits), long enough for dense bins; ``split=test`` probes the test split.
"""

from __future__ import annotations

import math

import numpy as np
from omegaconf import OmegaConf

from lmbench import models
from lmbench.corpora.synthetic import SyntheticProcess
from lmbench.plots import plt, run_colours, save

EDGES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, math.inf)
MIN_CLOSERS = 20  # bins with fewer closers are too noisy to plot or to define the effective memory
MIN_RISE = 0.05  # nats: an excess loss rising less than this with distance shows no forgetting
PROBE_STREAM = 99  # seed stream of the probe sample; the splits use streams 1..3


def probe_ids(corpus, split: str, tokens: int) -> np.ndarray:
    """The ids to probe: a fresh sample of the process (``split=probe``) or one of the splits."""
    if split != "probe":
        return corpus.splits[split]
    meta = corpus.meta["synthetic"]
    rng = np.random.default_rng([meta["seed"], PROBE_STREAM])
    return corpus.vocab.encode(SyntheticProcess(meta).generate(tokens, rng)).astype(np.int64)


def closer_excess(model, corpus, ids: np.ndarray, batch_size: int = 64) -> dict:
    """Per closer its distance to the opener and excess loss (nats); the mean excess over all tokens."""
    starts = np.zeros(1, dtype=np.int64)  # one stream from the process's initial state
    oracle = models.build("oracle", OmegaConf.create({"name": "oracle"}), corpus)
    excess = oracle.log_probs(ids, starts, batch_size) - model.log_probs(ids, starts, batch_size)
    distance = SyntheticProcess(corpus.meta["synthetic"]).latents(corpus.vocab.decode(ids))["distance"]
    closers = distance > 0
    return {"distance": distance[closers], "excess": excess[closers], "mean_excess": float(excess.mean())}


def binned(distance: np.ndarray, excess: np.ndarray) -> list[dict]:
    """Mean excess loss and its standard error per distance bin holding at least MIN_CLOSERS."""
    bins = []
    for lo, hi in zip(EDGES[:-1], EDGES[1:]):
        inside = (distance >= lo) & (distance < hi)
        n = int(inside.sum())
        if n >= MIN_CLOSERS:
            e = excess[inside]
            bins.append({"lo": lo, "hi": hi if hi < math.inf else None, "closers": n,
                         "distance": float(distance[inside].mean()), "excess": float(e.mean()),
                         "sem": float(e.std(ddof=1) / math.sqrt(n))})
    return bins


def effective_memory(bins: list[dict]) -> float | None:
    """The distance where the binned excess loss first climbs half of its rise: from its value at
    the shortest distance (what the model pays with the opener just read, which is not forgetting)
    to its maximum. Interpolated linearly between bin distances; None if it does not rise by more
    than its noise (two standard errors of the shortest-distance bin) or ``MIN_RISE`` nats."""
    if len(bins) < 2:
        return None
    d = np.array([b["distance"] for b in bins])
    e = np.array([b["excess"] for b in bins])
    rise = e.max() - e[0]
    if rise <= max(MIN_RISE, 2 * bins[0]["sem"]):
        return None
    level = e[0] + rise / 2
    i = int(np.argmax(e >= level))
    return float(d[i - 1] + (level - e[i - 1]) / (e[i] - e[i - 1]) * (d[i] - d[i - 1]))


def diagnose(run, split: str = "probe", tokens: int = 100_000) -> dict | None:
    """Probe a trained run; writes ``memory.json``/``.png`` and the record summary. Returns the
    details, or None for a run on a corpus other than the synthetic one (nothing to compare with)."""
    corpus = run.corpus
    if "synthetic" not in corpus.meta:
        run.save_diagnostic("memory", {}, {"skipped": f"corpus {corpus.name} has no known dependencies; the "
                                "probe needs corpus=synthetic"})
        return None
    ids = probe_ids(corpus, split, tokens)
    found = closer_excess(run.model(trained=True), corpus, ids)
    bins = binned(found["distance"], found["excess"])
    summary = {
        "split": split, "tokens": len(ids), "closers": len(found["excess"]),
        "effective_memory": effective_memory(bins),
        "shortest_excess": bins[0]["excess"] if bins else None,
        "max_excess": max((b["excess"] for b in bins), default=None),
        "mean_excess_closers": float(found["excess"].mean()) if len(found["excess"]) else None,
        "mean_excess_all": found["mean_excess"],
        "forgetting_cost": math.log(len(corpus.meta["synthetic"]["delimiters"]) or 1),
    }
    details = {"family": run.family, "label": run.label, "corpus": corpus.name,
               "mean_distance": corpus.meta["synthetic"]["mean_distance"], **summary, "bins": bins}
    run.save_diagnostic("memory", details, summary)
    plot([details], run.diagnostics_folder() / "memory.png")
    return details


def plot(results: list[dict], path):
    """Excess loss against distance (log x), one curve per result, its effective memory marked."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r, c in zip(results, run_colours(results)):
        found = r["effective_memory"]
        ax.errorbar([b["distance"] for b in r["bins"]], [b["excess"] for b in r["bins"]],
                    yerr=[b["sem"] for b in r["bins"]], color=c, marker="o", markersize=3, capsize=2,
                    label=f"{r['label']} (effective memory {'n/a' if found is None else f'{found:.1f}'})")
        if found is not None:
            ax.axvline(found, color=c, linestyle=":", linewidth=1)
    ax.axhline(results[0]["forgetting_cost"], color="black", linestyle="--", linewidth=1,
               label="ln(delimiter types): the opener forgotten")
    ax.axhline(0, color="gray", linewidth=0.5)
    ax.set(xscale="log", xlabel="distance from the closer back to its opener (tokens)",
           ylabel="excess loss over the oracle (nats)",
           title=f"{results[0]['corpus']} (mean distance {results[0]['mean_distance']:g}): long-range memory")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return save(fig, path)
