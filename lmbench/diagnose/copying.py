"""Copying probe (Olsson et al. 2022, induction heads), for every family.

``sequences`` sequences of ``length`` tokens drawn uniformly from the vocabulary (``<unk>`` and the
line end, ``<eos>`` or ``\\n``, left out), each followed by its exact repeat, are scored by the
trained model, each from an empty context (zero state, as the sentence protocol starts). The
sequences depend only on the vocabulary and ``seed``, so every run on a corpus reads the same ones.
At each position 1..length the mean loss on the first copy and on the repeat (whose token occurred
``length`` tokens earlier) is given with a 95% bootstrap interval over the sequences, and:

* the copy gain: the mean loss on the first copy minus that on the repeat (nats);
* the copied fraction: the share of the repeat's positions whose loss is significantly below the
  first copy's at the same position (a paired bootstrap over sequences);
* the uniform loss log V for reference: random tokens cost a model about that, or more, at first.

A transformer copies while ``2·length`` fits its context; a recurrent net only what its memory keeps;
an n-gram of order n only at the repeat's first n − 1 positions, beyond which it scores the repeat
exactly as the first copy (a test).
"""

from __future__ import annotations

import math

import numpy as np

from lmbench.diagnose.positions import resampled_means
from lmbench.errors import UserError
from lmbench.plots import plt, run_colours, save


def random_sequences(corpus, length: int, sequences: int, seed: int = 0) -> np.ndarray:
    """``sequences`` × ``length`` ids drawn uniformly (with replacement) from the non-special tokens."""
    if sequences < 2:
        raise UserError(f"sequences={sequences} is too few: a bootstrap over sequences needs at least 2.")
    special = {corpus.vocab.unk, corpus.line_end} - {None}
    allowed = np.array([i for i in range(len(corpus.vocab)) if i not in special], dtype=np.int64)
    if len(allowed) < 2:
        raise UserError(f"Corpus {corpus.name} has fewer than two ordinary tokens to draw sequences from.")
    return np.random.default_rng(seed).choice(allowed, size=(sequences, length))


def copy_losses(model, drawn: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per-token losses (sequences × length, nats) on the first copy and on the repeat, each sequence
    followed by its repeat and scored from an empty context."""
    count, length = drawn.shape
    ids = np.concatenate([drawn, drawn], axis=1).reshape(-1)
    starts = np.arange(0, len(ids), 2 * length, dtype=np.int64)
    losses = -np.asarray(model.log_probs(ids, starts, batch_size), dtype=np.float64)
    losses = losses.reshape(count, 2 * length)
    return losses[:, :length], losses[:, length:]


def compare_copies(first: np.ndarray, repeat: np.ndarray) -> dict:
    """The per-position curves of both copies with their intervals, the copy gain and the copied
    fraction; the same bootstrap resamples (one seed) pair the two copies of each sequence."""
    found = {"length": first.shape[1], "sequences": len(first)}
    for name, losses in (("first", first), ("repeat", repeat)):
        low, high = np.quantile(resampled_means(losses), [0.025, 0.975], axis=0)
        found |= {f"{name}_loss": float(losses.mean()), name: losses.mean(axis=0).tolist(),
                  f"{name}_low": low.tolist(), f"{name}_high": high.tolist()}
    gain = resampled_means(first - repeat)  # samples × length
    found |= {"copy_gain": found["first_loss"] - found["repeat_loss"],
              "copied_fraction": float((np.quantile(gain, 0.025, axis=0) > 0).mean())}
    return found


SUMMARY = ("length", "sequences", "first_loss", "repeat_loss", "copy_gain", "copied_fraction", "uniform_loss")


def diagnose(run, length: int = 50, sequences: int = 200, seed: int = 0) -> dict:
    """Score a finished run on the repeated sequences; writes ``copying.json``/``.png`` and the record
    summary."""
    drawn = random_sequences(run.corpus, length, sequences, seed)
    found = compare_copies(*copy_losses(run.model(trained=True), drawn))
    details = {"family": run.family, "label": run.label, "corpus": run.corpus.name, "seed": seed,
               "uniform_loss": math.log(len(run.corpus.vocab)), **found}
    run.save_diagnostic("copying", details, {k: details[k] for k in (*SUMMARY, "seed")})
    plot([details], run.diagnostics_folder() / "copying.png")
    return details


def plot(results: list[dict], path):
    """Mean loss per position on the first copy (dashed) and the repeat (solid, with its interval),
    one colour per run; the uniform loss dotted."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r, c in zip(results, run_colours(results)):
        t = np.arange(1, r["length"] + 1)
        ax.plot(t, r["first"], color=c, linewidth=1, linestyle="--")
        ax.plot(t, r["repeat"], color=c, linewidth=1.2,
                label=f"{r['label']} (copy gain {r['copy_gain']:+.3f} nats)")
        ax.fill_between(t, r["repeat_low"], r["repeat_high"], color=c, alpha=0.2, linewidth=0)
    ax.axhline(results[0]["uniform_loss"], color="grey", linestyle=":", linewidth=1, label="uniform, log V")
    ax.set(xlabel="position in the copy", ylabel="mean loss (nats)",
           title=f"{results[0]['corpus']}: {results[0]['length']} random tokens (dashed), then their "
                 "repeat (solid)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, path)
