"""One job: prepare the corpus, build and fit the model, score valid and test, write the record."""

from __future__ import annotations

import logging
import random
import resource
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from lmbench import models
from lmbench.config import validate
from lmbench.corpora import Corpus, load_corpus
from lmbench.evaluate import evaluate
from lmbench.records import collect, git_commit, hardware, new_run_id, versions, write_record, write_tables

log = logging.getLogger(__name__)


def resolve_device(requested: str) -> str:
    """``auto`` picks cuda, then mps, then cpu; an unavailable explicit choice is an error."""
    from lmbench.errors import UserError

    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": torch.backends.mps.is_available()}
    if requested == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if available[d])
    if not available.get(requested, False):
        raise UserError(f"device={requested} is not available on this machine; use device=auto "
                        "or device=cpu.")
    return requested


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _score(model, corpus: Corpus, cfg) -> tuple[dict, dict]:
    results, losses = {}, {}
    for split in ("valid", "test"):
        results[split], losses[split] = evaluate(
            model, corpus, split, cfg.protocol.value, cfg.eval.batch_size, cfg.eval.bootstrap_samples,
            cfg.eval.bootstrap_block)
        log.info("%s: ppl %.3f  bpc %.4f  (%d tokens)", split, results[split]["ppl"],
                 results[split]["bpc"], results[split]["tokens"])
    return results, losses


def _floor(corpus: Corpus, cfg) -> dict | None:
    """The exact oracle's test metrics when the corpus has one (the synthetic corpus)."""
    if "synthetic" not in corpus.meta or cfg.model.name == "oracle":
        return None
    oracle = models.build("oracle", OmegaConf.create({"name": "oracle"}), corpus)
    return evaluate(oracle, corpus, "test", cfg.protocol.value, cfg.eval.batch_size,
                    cfg.eval.bootstrap_samples, cfg.eval.bootstrap_block)[0]


def run(cfg, run_dir: Path) -> dict:
    """Run one job and write its record. User errors raise before anything is written; any other
    failure still writes a record with status ``failed`` and the error."""
    validate(cfg)
    device = resolve_device(cfg.device.value)
    seed_everything(cfg.seed)
    corpus = load_corpus(cfg.corpus)
    model = models.build(cfg.model.name, cfg.model, corpus)
    record = {
        "id": new_run_id(),
        "model": cfg.model.name,
        "experiment": cfg.experiment,
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "corpus": {"name": corpus.name, "fingerprint": corpus.fingerprint, **corpus.stats()},
        "versions": versions(),
        "git_commit": git_commit(),
        "hardware": hardware(device),
        "device": device,
        "run_dir": str(run_dir),
        "status": "running",
    }
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        fit_cfg = OmegaConf.merge(cfg, {"device": device})
        train_stats = model.fit(corpus, fit_cfg, run_dir) or {}
        train_seconds = time.perf_counter() - started
        metrics, losses = _score(model, corpus, cfg)
        np.save(Path(run_dir) / "test_losses.npy", losses["test"].astype(np.float16))
        record.update(
            status=train_stats.pop("status", "ok"),
            metrics=metrics,
            floor=_floor(corpus, cfg),
            train=train_stats,
            timing={"train_seconds": train_seconds,
                    "train_tokens_per_s": train_stats.get("train_tokens_per_s",
                                                          len(corpus.train) / max(train_seconds, 1e-9)),
                    "wall_seconds": time.perf_counter() - started},
        )
    except Exception as exc:
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc())
        raise
    finally:
        memory = {"peak_rss_mb": peak_rss_mb(), "parameters": model.num_parameters(),
                  "model_bytes": model.size_bytes()}
        if device == "cuda":
            memory["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
        record["memory"] = memory
        write_record(record, run_dir)
        results = Path(cfg.results_dir)
        write_tables(results, collect(results)[0])
    return record
