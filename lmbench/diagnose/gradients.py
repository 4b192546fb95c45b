"""Gradient flow through time: ‖∂L_t/∂h_{t−k}‖ against the distance k (Bengio et al. 1994; Pascanu
et al. 2013).

A window of real text is cut from each of ``rows`` parallel streams of a split (as the trainer cuts
them); the network reads ``warmup`` tokens without gradients to reach a realistic state, then
``distance + 1`` more one step at a time, keeping every recurrent state. One backward pass from the
loss at the last position gives, per row, the gradient with respect to the state k steps earlier for
every k at once; h is the whole recurrent state (all layers, and the cell c too for the LSTM, since
that is the path gating protects). Norms are averaged over windows and rows geometrically (the mean
of their logs), which is what a log-scale plot shows and what a few huge values cannot dominate.

Reported per run, at initialisation and for the trained checkpoint:

* ``decay_rate``: minus the least-squares slope of ln‖∂L_t/∂h_{t−k}‖ against k, per step; the
  norm shrinks by a factor e every 1/decay_rate steps (negative: it grows);
* ``exploding_events``: window rows whose gradient grows more than ``EXPLODE`` times above its value
  at k = 1 somewhere further back;
* clipping: global-norm clipping rescales the whole gradient by one factor, so it shifts the curve
  down without bending it (the decay rate is the same). The clipped curve uses, per window, the
  factor ``min(1, clip / ‖∂L_t/∂θ‖)`` the trainer's ``train.clip`` would apply to this loss's
  parameter gradient; ``clipped_fraction`` is the share of windows clipping would rescale.

The computation runs on a float64 copy of the network: a vanilla RNN's gradient can fall below
float32's smallest number within a hundred steps, and a norm that underflows to 0 has no log.

Families without a recurrent state (n-grams, feed-forward, transformer) are skipped with a note: in
them the gradient does not travel through time step by step.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from lmbench.errors import UserError
from lmbench.plots import plt, run_colours, save
from lmbench.train import state_tensors

EXPLODE = 10.0  # growth over the k = 1 norm that counts as an exploding gradient
TINY = 1e-300  # floor for a norm that is exactly 0 (e.g. dead relu units) before taking logs


def window_norms(net, tokens: torch.Tensor, warmup: int) -> tuple[np.ndarray, float]:
    """For one window (``tokens``: (T, B) ids), L being the summed loss of predicting its last token:
    per row the norm of ∂L/∂h for the state h k steps before the last input, k = 1..T − warmup − 2
    (shape (K, B)); and ‖∂L/∂θ‖ / B, the parameter-gradient norm of the row-mean loss."""
    inputs, target = tokens[:-1], tokens[-1]
    with torch.no_grad():
        _, state = net(inputs[:warmup], None)
    leaves, states = [s.detach().requires_grad_() for s in state_tensors(state)], []
    state = tuple(leaves) if isinstance(state, tuple) else leaves[0]
    for t in range(warmup, len(inputs)):
        logits, state = net(inputs[t:t + 1], state)
        for s in state_tensors(state):
            s.retain_grad()
        states.append(state)
    net.zero_grad(set_to_none=True)
    F.cross_entropy(logits[-1], target, reduction="sum").backward()
    # states[-1] follows the last input and feeds nothing; states[-1 - k] is k steps back
    norms = [sum((s.grad ** 2).sum(dim=(0, 2)) for s in state_tensors(state)).sqrt()
             for state in reversed(states[:-1])]
    grads = [p.grad.pow(2).sum() for p in net.parameters() if p.grad is not None]
    param_norm = float(torch.stack(grads).sum().sqrt()) / tokens.shape[1]
    return torch.stack(norms).numpy(), param_norm


def flow(model, ids: np.ndarray, clip: float, distance: int = 100, windows: int = 8, rows: int = 16,
         warmup: int = 50) -> dict:
    """Gradient norms against distance over ``windows`` windows of ``rows`` streams of ``ids``."""
    streams = len(ids) // rows
    length = warmup + distance + 2
    if streams < length:
        raise UserError(f"The split has {len(ids)} tokens: too few for {rows} rows of "
                        f"{length} tokens; lower distance= or rows=.")
    data = torch.as_tensor(np.asarray(ids[:streams * rows], dtype=np.int64)).view(rows, streams).t()
    net = copy.deepcopy(model.net).double().eval()
    found = [window_norms(net, data[start:start + length], warmup)
             for start in np.linspace(0, streams - length, windows).astype(int)]
    scales = [min(1.0, clip / norm) if clip > 0 and norm > 0 else 1.0 for _, norm in found]
    norms = np.stack([window for window, _ in found]).transpose(0, 2, 1)  # (windows, rows, K)
    finite = np.isfinite(norms).all(axis=2)
    logs = np.log(np.maximum(norms[finite], TINY))  # (finite samples, K)
    curve = logs.mean(axis=0)
    shift = np.log(np.repeat(np.array(scales)[:, None], norms.shape[1], axis=1)[finite]).mean()
    k = np.arange(1, distance + 1)
    exploding = (norms.max(axis=2) > EXPLODE * norms[:, :, 0]) | ~finite
    return {
        "distance": k.tolist(),
        "norm": np.exp(curve).tolist(),
        "norm_clipped": np.exp(curve + shift).tolist(),
        "decay_rate": float(-np.polyfit(k, curve, 1)[0]) if finite.any() else None,
        "exploding_events": int(exploding.sum()),
        "samples": int(finite.size),
        "clipped_fraction": float(np.mean(np.array(scales) < 1.0)),
        "finite": bool(finite.all()),
    }


def diagnose(run, split: str = "valid", distance: int = 100, windows: int = 8, rows: int = 16) -> dict | None:
    """Gradient flow of a run at initialisation and trained; writes ``gradients.json``/``.png`` and
    the record summary. Returns the details, or None for a family without a recurrent state."""
    from lmbench.models.recurrent import Recurrent

    trained = run.model(trained=True)
    if not isinstance(trained, Recurrent):
        run.save_diagnostic("gradients", {}, {"skipped": f"model {run.family} has no recurrent state: its "
                                   "gradient does not travel back through time step by step"})
        return None
    ids, clip = run.corpus.splits[split], float(run.config.train.clip)
    settings = {"split": split, "windows": windows, "rows": rows, "clip": clip}
    details = {"family": run.family, "label": run.label, "corpus": run.corpus.name, **settings,
               "init": flow(run.model(trained=False), ids, clip, distance, windows, rows),
               "trained": flow(trained, ids, clip, distance, windows, rows)}
    keys = ("decay_rate", "exploding_events", "samples", "clipped_fraction", "finite")
    summary = {**settings, "distance": distance,
               **{when: {k: details[when][k] for k in keys} for when in ("init", "trained")}}
    run.save_diagnostic("gradients", details, summary)
    plot([details], run.diagnostics_folder() / "gradients.png", clipped=True)
    return details


def plot(results: list[dict], path, clipped: bool = False):
    """Log-scale norm against distance: per result a solid trained curve and a dashed one at
    initialisation (and, with ``clipped``, the trained curve after clipping, dotted)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r, c in zip(results, run_colours(results)):
        for when, style in (("trained", "-"), ("init", "--")):
            ax.plot(r[when]["distance"], r[when]["norm"], style, color=c,
                    label=f"{r['label']} {when} (decay {r[when]['decay_rate']:.3f}/step)")
        if clipped:
            ax.plot(r["trained"]["distance"], r["trained"]["norm_clipped"], ":", color=c,
                    label=f"{r['label']} trained, clipped at {r['clip']:g}")
    corpus = results[0]["corpus"]
    ax.set(yscale="log", xlabel="distance k (steps back)", title=f"{corpus}: gradient flow through time",
           ylabel=r"$\|\partial L_t / \partial h_{t-k}\|$ (geometric mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, path)

