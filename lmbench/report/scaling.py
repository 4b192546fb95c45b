"""The scaling sweep's plots and fits (``experiment=scaling``; Kaplan et al. 2020): test loss against
non-embedding parameters N and against training FLOPs C, one line per family, and per family the fit
L(N) = L∞ + (N_c/N)^α with a residual-bootstrap interval for α. The n-gram is placed by its stored
n-grams (``LanguageModel.non_embedding_parameters``); it has no training FLOPs."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lmbench import plots
from lmbench.files import atomic_write_text
from lmbench.runs.records import train_flops

EXPERIMENT = "scaling"
ALPHAS = np.linspace(0.005, 2.0, 400)  # the grid α is fitted on
BOOTSTRAP = 1000  # residual-bootstrap replicates for α's interval
# points: the sizes fitted; α with its 95% interval; L∞ in nats/token
FIT_COLUMNS = ["corpus", "family", "points", "alpha", "alpha_lo", "alpha_hi", "l_inf", "n_c"]


def points(records: list[dict]) -> pd.DataFrame:
    """One row per finished run of the scaling experiment: its corpus, family, N (stored n-grams for
    the n-gram), training FLOPs and test loss (nats/token), averaged over seeds."""
    rows = [{"corpus": r["corpus"]["name"], "family": r["model"],
             "n": (r.get("memory") or {}).get("non_embedding_parameters"),
             "flops": train_flops(r.get("train") or {}), "loss": r["metrics"]["test"]["nll"]}
            for r in records if r.get("experiment") == EXPERIMENT and r.get("status") == "ok"
            and ((r.get("metrics") or {}).get("test") or {}).get("nll") is not None]
    frame = pd.DataFrame(rows, columns=["corpus", "family", "n", "flops", "loss"]).dropna(subset=["n"])
    keys = ["corpus", "family", "n"]
    return frame.groupby(keys, as_index=False).mean().sort_values(keys)


def fit(n, loss, alphas: np.ndarray = ALPHAS) -> np.ndarray:
    """Least-squares L∞ ≥ 0 and B = N_c^α > 0 of loss ≈ L∞ + B·N^−α at each α of the grid, for one
    or many loss vectors (rows); returns (α, L∞, B) per row, NaN where no decreasing law fits."""
    y = np.atleast_2d(np.asarray(loss, dtype=float))  # (R, n)
    x = np.asarray(n, dtype=float)[None, :] ** -alphas[:, None]  # (G, n)
    xc = x - x.mean(1, keepdims=True)
    b = (y @ xc.T) / (xc ** 2).sum(1)  # (R, G): the slope of the unconstrained fit
    l_inf = y.mean(1, keepdims=True) - b * x.mean(1)
    floored = l_inf < 0  # L∞ held at 0: B alone
    b = np.where(floored, (y @ x.T) / (x ** 2).sum(1), b)
    l_inf = np.where(floored, 0.0, l_inf)
    sse = ((y[:, None, :] - l_inf[..., None] - b[..., None] * x[None]) ** 2).sum(-1)
    sse = np.where(b > 0, sse, np.inf)
    best = sse.argmin(1)
    rows = np.arange(len(y))
    found = np.isfinite(sse[rows, best])
    return np.where(found[:, None], np.stack([alphas[best], l_inf[rows, best], b[rows, best]], 1), np.nan)


def fit_family(n, loss, seed: int = 0) -> dict:
    """α, L∞ and N_c of one family's points, with a 95% residual-bootstrap interval for α (the
    residuals of the fit resampled onto its curve); NaN with fewer than 3 sizes."""
    n, loss = np.asarray(n, dtype=float), np.asarray(loss, dtype=float)
    if len(n) < 3:
        return {"points": len(n), "alpha": np.nan, "alpha_lo": np.nan, "alpha_hi": np.nan,
                "l_inf": np.nan, "n_c": np.nan}
    alpha, l_inf, b = fit(n, loss)[0]
    curve = l_inf + b * n ** -alpha
    rng = np.random.default_rng(seed)
    replicates = curve + rng.choice(loss - curve, size=(BOOTSTRAP, len(n)))
    lo, hi = np.nanpercentile(fit(n, replicates)[:, 0], [2.5, 97.5]) if np.isfinite(alpha) else (np.nan,) * 2
    return {"points": len(n), "alpha": alpha, "alpha_lo": lo, "alpha_hi": hi, "l_inf": l_inf,
            "n_c": b ** (1 / alpha)}


def fits(frame: pd.DataFrame) -> pd.DataFrame:
    """``fit_family`` for every corpus and family of ``points``, on its sizes up to the one of lowest
    loss: past it (an n-gram's sparse high orders, a network overfitting the corpus) size is no longer
    what limits the loss, and a decreasing law does not describe it."""
    rows = []
    for (corpus, family), group in frame.groupby(["corpus", "family"]):
        kept = group.iloc[:int(np.argmin(group.loss.to_numpy())) + 1]
        rows.append({"corpus": corpus, "family": family, **fit_family(kept.n, kept.loss)})
    return pd.DataFrame(rows, columns=FIT_COLUMNS)


def figures(records: list[dict], folder: Path) -> list[Path]:
    """Per corpus, ``scaling_<corpus>.png``: loss against N (with each family's fitted law) and
    against training FLOPs."""
    frame = points(records)
    fitted = fits(frame).set_index(["corpus", "family"])
    paths = []
    for corpus, group in frame.groupby("corpus"):
        fig, (by_n, by_c) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        for family, rows in group.groupby("family"):
            f = fitted.loc[(corpus, family)]
            fitted_law = np.isfinite(f.alpha)  # drawn as the fitted curve, else the points joined
            label = f"{family} (α = {f.alpha:.2f})" if fitted_law else family
            by_n.plot(rows.n, rows.loss, "o" if fitted_law else "o-", color=plots.colour(family), label=label)
            if fitted_law:
                grid = np.geomspace(rows.n.iloc[0], rows.n.iloc[int(f.points) - 1], 100)  # the sizes fitted
                by_n.plot(grid, f.l_inf + (f.n_c / grid) ** f.alpha, "-", color=plots.colour(family))
            timed = rows.dropna(subset=["flops"])
            if len(timed):
                by_c.plot(timed.flops, timed.loss, "o-", color=plots.colour(family), label=family)
        by_n.set(xscale="log", xlabel="non-embedding parameters N (n-gram: stored n-grams; log scale)",
                 ylabel="test loss (nats/token)", title=f"{corpus}: loss against size, L∞ + (N_c/N)^α")
        by_c.set(xscale="log", xlabel="training FLOPs C (log scale)", title=f"{corpus}: loss against compute")
        for ax in (by_n, by_c):
            ax.grid(alpha=0.3, which="both")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        paths.append(plots.save(fig, folder / plots.file_name(f"scaling_{corpus}")))
    return paths


def findings(records: list[dict], out: Path) -> list[str]:
    """One line per corpus with each family's α (95% interval) and L∞, best α first; the table at
    full precision in ``scaling.csv`` and ``scaling.md``. Empty without scaling records."""
    table = fits(points(records))
    if table.empty:
        return []
    atomic_write_text(out / "scaling.csv", table.to_csv(index=False))
    atomic_write_text(out / "scaling.md", table.to_markdown(index=False, floatfmt=".4g") + "\n")
    lines = []
    for corpus, rows in table.sort_values("alpha", ascending=False).groupby("corpus", sort=True):
        cells = [f"{r.family} α = {r.alpha:.2f} [{r.alpha_lo:.2f}, {r.alpha_hi:.2f}], L∞ = {r.l_inf:.2f}"
                 + (" (α at the fit's limit)" if r.alpha in (ALPHAS[0], ALPHAS[-1]) else "")
                 if np.isfinite(r.alpha) else f"{r.family}: no decreasing law ({r.points} sizes)"
                 for r in rows.itertuples()]
        lines.append(f"Scaling on {corpus}, test loss ≈ L∞ + (N_c/N)^α (nats/token, N non-embedding "
                     "parameters, the n-gram's its stored n-grams; fitted up to each family's lowest "
                     "loss): " + "; ".join(cells) + ".")
    return lines
