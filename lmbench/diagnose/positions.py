"""Context use per position (Kaplan et al. 2020, §3.2.1; Olsson et al. 2022), for every family.

The split is cut into non-overlapping windows of ``window`` tokens, each scored from an empty context
(zero state, nothing carried over: the models' own reset, as the sentence protocol uses), and the
loss is averaged at each position 1..window, with a 95% bootstrap interval over the windows. This is
an added measurement beside the headline perplexity, whose protocol is unchanged. From the curve:

* a fit L(t) = L∞ + A·t^−β (least squares; β on a grid, L∞ and A solved for each β);
* the in-context-learning score: the loss at 0.9·window minus the loss at 0.1·window (Olsson et al.;
  each the mean of the positions within 0.05·window of it), negative when later tokens gain from
  their longer context;
* the plateau: the first position whose loss is not significantly above the mean loss of the last
  10% of positions (a paired bootstrap over windows), after which more context no longer helps.

An n-gram's curve is flat beyond position n − 1 and Bengio's network's beyond its window; a
recurrent net's flattens where its memory ends; a transformer's keeps falling.
"""

from __future__ import annotations

import numpy as np

from lmbench.errors import UserError
from lmbench.plots import plt, run_colours, save

BOOTSTRAP = 1000
BETAS = np.linspace(0.02, 3.0, 150)


def window_losses(model, tokens: np.ndarray, window: int, batch_size: int = 64) -> np.ndarray:
    """Per-token losses (windows × window, nats) of the split's whole windows, each scored from an
    empty context."""
    count = len(tokens) // window
    if count < 2:
        raise UserError(f"window={window} leaves fewer than two whole windows in a split of {len(tokens)} "
                        "tokens: choose a shorter window.")
    ids = np.asarray(tokens[:count * window], dtype=np.int64)
    starts = np.arange(0, count * window, window, dtype=np.int64)
    return -np.asarray(model.log_probs(ids, starts, batch_size), dtype=np.float64).reshape(count, window)


def resampled_means(losses: np.ndarray, samples: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """Per-position means of ``samples`` bootstrap resamples of the windows (samples × window)."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(losses), np.full(len(losses), 1 / len(losses)), size=samples)
    return counts @ losses / len(losses)


def fit_power_law(positions: np.ndarray, loss: np.ndarray) -> dict:
    """L∞, A and β of L(t) = L∞ + A·t^−β with the least squared error over the positions."""
    best = None
    for beta in BETAS:
        design = np.stack([np.ones_like(positions, dtype=float), positions ** -beta], axis=1)
        coef, *_ = np.linalg.lstsq(design, loss, rcond=None)
        error = float(((design @ coef - loss) ** 2).sum())
        if best is None or error < best[0]:
            best = (error, float(coef[0]), float(coef[1]), float(beta))
    return {"L_inf": best[1], "A": best[2], "beta": best[3], "rmse": (best[0] / len(loss)) ** 0.5}


def plateau(losses: np.ndarray, means: np.ndarray) -> int:
    """The first position (1-based) whose loss is not significantly above the last 10% of positions'."""
    tail = max(1, losses.shape[1] // 10)
    above = means - means[:, -tail:].mean(axis=1, keepdims=True)  # samples × window
    significant = np.quantile(above, 0.025, axis=0) > 0
    return int(np.argmin(significant) + 1) if not significant.all() else losses.shape[1]


def curve(losses: np.ndarray) -> dict:
    """The per-position summary of ``losses`` (windows × window)."""
    window = losses.shape[1]
    mean, means = losses.mean(axis=0), resampled_means(losses)
    low, high = np.quantile(means, [0.025, 0.975], axis=0)
    positions = np.arange(1, window + 1)

    def near(at: float) -> float:
        return mean[np.abs(positions - at * window) <= max(0.05 * window, 0.5)].mean()

    return {"window": window, "windows": len(losses), "mean_loss": float(losses.mean()),
            "fit": fit_power_law(positions, mean), "icl_score": float(near(0.9) - near(0.1)),
            "plateau": plateau(losses, means),
            "loss": mean.tolist(), "low": low.tolist(), "high": high.tolist()}


def diagnose(run, split: str = "test", window: int = 128) -> dict:
    """Score a finished run's windows; writes ``positions.json``/``.png`` and the record summary."""
    found = curve(window_losses(run.model(trained=True), run.corpus.splits[split], window))
    summary = {k: found[k] for k in ("window", "windows", "mean_loss", "fit", "icl_score", "plateau")}
    details = {"family": run.family, "label": run.label, "corpus": run.corpus.name, "split": split,
               **found}
    run.save_diagnostic("positions", details, summary | {"split": split})
    plot([details], run.diagnostics_folder() / "positions.png")
    return details


def plot(results: list[dict], path):
    """Mean loss against position (log x) with its interval, one curve per run, its plateau marked."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r, c in zip(results, run_colours(results)):
        t = np.arange(1, r["window"] + 1)
        ax.plot(t, r["loss"], color=c, linewidth=1.2,
                label=f"{r['label']} (plateau at {r['plateau']}, ICL {r['icl_score']:+.3f} nats)")
        ax.fill_between(t, r["low"], r["high"], color=c, alpha=0.2, linewidth=0)
        ax.axvline(r["plateau"], color=c, linestyle=":", linewidth=1)
    ax.set(xscale="log", xlabel="position in the window (tokens of context + 1)", ylabel="mean loss (nats)",
           title=f"{results[0]['corpus']} ({results[0]['split']}): loss per position, "
                 f"windows of {results[0]['window']} from an empty context")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return save(fig, path)
