"""Training checkpoints: written atomically with a sha256 of their bytes, read with ``weights_only=True``,
refused when damaged or when they belong to another model, vocabulary or config.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (all that
``weights_only`` loading admits) with a ``meta`` entry saying what produced it. On disk it is one
header line, ``lmbench-checkpoint sha256=<hex>``, then the ``torch.save`` bytes that digest covers.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from omegaconf import OmegaConf

from lmbench.errors import UserError
from lmbench.files import atomic_write

CHECKPOINT = "checkpoint.pt"  # the latest epoch: everything a resume needs
BEST = "checkpoint_best.pt"  # the weights with the best validation perplexity (scored on test, sampled from)
BUDGET_KEYS = ("max_epochs", "max_tokens", "max_minutes", "patience", "resume")  # may change on resume
MAGIC = b"lmbench-checkpoint sha256="  # starts the header line: the digest of the bytes after it


def meta(model, corpus, settings) -> dict:
    """What a checkpoint must agree with to be loaded into this run (``settings``: its FitSettings)."""
    train = OmegaConf.to_container(settings.train, resolve=True, enum_to_str=True)
    return {
        "model": OmegaConf.to_container(model.cfg, resolve=True, enum_to_str=True),
        "corpus_fingerprint": corpus.fingerprint,
        "vocab_size": len(corpus.vocab),
        "train": {k: v for k, v in train.items() if k not in BUDGET_KEYS},
        "seed": settings.seed,
        "protocol": settings.protocol,
    }


def refuse_existing(path: Path) -> None:
    """A run that does not resume never overwrites a checkpoint left in its folder."""
    if path.exists():
        raise UserError(f"{path} already exists: pass train.resume=true to continue that run, or start "
                        "it in a new folder (without hydra.run.dir).")


def save(payload: dict, path: Path) -> None:
    """Write the header and the bytes in one atomic write (a temporary file and a rename), so the digest
    always travels with its data; a full disk is a ``UserError`` that keeps the previous checkpoint."""
    import torch  # here, not at the top: lmbench.runs.jobs imports this module for count-based runs too

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    atomic_write(path, lambda f: f.write(MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n" + data),
                 binary=True)


def load(path: Path, expected: dict | None = None, device="cpu") -> dict:
    """Read a checkpoint; a missing, damaged, corrupt or mismatched one is a ``UserError``. A file
    without the header (written before checkpoints carried a digest) is read as it is, unverified."""
    import torch

    if not path.is_file():
        raise UserError(f"No checkpoint at {path}; nothing to resume or load.")
    data = path.read_bytes()
    if data.startswith(MAGIC):
        digest, _, data = data[len(MAGIC):].partition(b"\n")
        if hashlib.sha256(data).hexdigest().encode() != digest:
            raise UserError(f"Checkpoint {path} is damaged (corrupt): its bytes no longer match the sha256 "
                            "digest saved with it (a disk or copy error, or an edit), so it cannot be "
                            f"trusted. Delete it, or its whole run folder {path.parent}, and run again to "
                            "start the run over; the epochs it held cannot be recovered.")
    try:
        payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holding non-tensor objects
        raise UserError(f"Checkpoint {path} is corrupt or unreadable ({type(exc).__name__}: {exc}).") \
            from exc
    if not isinstance(payload, dict) or "meta" not in payload or "model" not in payload:
        raise UserError(f"Checkpoint {path} is not an lmbench checkpoint.")
    if expected is not None and (differs := _differences(payload["meta"], expected)):
        raise UserError(f"Checkpoint {path} belongs to another run ({'; '.join(differs)}). Use the "
                        "same model, corpus and training config to resume, or a new run folder.")
    return payload


def _differences(found: dict, expected: dict, prefix: str = "") -> list[str]:
    """``key: checkpoint has X, this run has Y`` for every differing (nested) entry."""
    out = []
    for key in sorted(set(found) | set(expected)):
        a, b = found.get(key), expected.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: checkpoint has {a!r}, this run has {b!r}")
    return out


def load_weights(net, path: Path, corpus) -> None:
    """Load a run's saved weights into ``net`` (to sample or diagnose it); a corpus that changed since
    the run (another vocabulary) or weights of another shape are a ``UserError``."""
    payload = load(path)
    trained_on = payload["meta"].get("corpus_fingerprint")
    if trained_on != corpus.fingerprint:
        raise UserError(f"The corpus of the run in {path.parent} has changed since it ran (fingerprint "
                        f"{str(trained_on)[:12]} then, {corpus.fingerprint[:12]} now: edited files or other "
                        "corpus settings), so its vocabulary no longer matches the model. Restore the "
                        "corpus files the run used.")
    try:
        net.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise UserError(f"The weights in {path} do not fit the model its run's config builds: "
                        f"{str(exc).splitlines()[0]}") from None
