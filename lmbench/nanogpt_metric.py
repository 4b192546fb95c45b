"""nanoGPT's validation loss made deterministic, so that an lmbench model and a nanoGPT model can be
scored alike on nanoGPT's own split (``benchmarks/nanogpt.py``).

nanoGPT (Karpathy) validates on the last 10% of its text and estimates the loss from random windows
of ``block + 1`` tokens: the first ``block`` are the inputs, the last ``block`` the targets, so every
target is predicted from 1 to ``block`` tokens of context. Here every non-overlapping window of the
split is taken instead of random ones, and each window's ``block`` losses are all counted.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

TRAIN_FRACTION = 0.9  # nanoGPT's data/shakespeare_char/prepare.py: data[int(n * 0.9):] is validation
BLOCK = 64  # nanoGPT README's CPU configuration: --block_size=64


def validation_text(text: str) -> str:
    """nanoGPT's validation split of a text: its last 10%."""
    return text[int(len(text) * TRAIN_FRACTION):]


def windows(ids, block: int = BLOCK) -> np.ndarray:
    """Every non-overlapping window of ``block + 1`` ids (windows × (block + 1)), in order."""
    count = len(ids) // (block + 1)
    return np.asarray(ids[:count * (block + 1)], dtype=np.int64).reshape(count, block + 1)


def lmbench_losses(model, rows: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Per-target losses (windows × block, nats) of an lmbench ``LanguageModel``: each window scored
    from an empty context (a start at each window), its first token, predicted from nothing, dropped as
    nanoGPT never scores it. A model that sees fewer than ``block`` tokens of context predicts a
    window's last tokens from as many as it sees (a transformer slides its window)."""
    starts = np.arange(0, rows.size, rows.shape[1], dtype=np.int64)
    log_p = model.log_probs(rows.reshape(-1), starts, batch_size)
    return -np.asarray(log_p, dtype=np.float64).reshape(rows.shape)[:, 1:]


@torch.no_grad()
def nanogpt_losses(model, rows: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Per-target losses (windows × block, nats) of a nanoGPT ``GPT``, whose ``forward(inputs,
    targets)`` returns the logits at every position when given targets."""
    losses = []
    for batch in torch.from_numpy(rows).split(batch_size):
        inputs, targets = batch[:, :-1].contiguous(), batch[:, 1:].contiguous()
        logits, _ = model(inputs, targets)  # (B, block, V)
        losses.append(F.cross_entropy(logits.transpose(1, 2).double(), targets, reduction="none"))
    return torch.cat(losses).numpy()
