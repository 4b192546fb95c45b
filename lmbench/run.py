"""One job: prepare the corpus, build and fit the model, score valid and test, write the record."""

from __future__ import annotations

import logging
import random
import resource
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from lmbench import jobs, models, published
from lmbench.config import validate
from lmbench.corpora import Corpus, load_corpus
from lmbench.errors import UserError
from lmbench.evaluate import evaluate
from lmbench.records import collect, git_commit, hardware, new_run_id, versions, write_record, write_tables

log = logging.getLogger(__name__)


def resolve_device(requested: str) -> str:
    """``auto`` picks cuda, then mps, then cpu; an unavailable explicit choice is an error."""
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


def _evaluate(model, corpus: Corpus, split: str, cfg) -> tuple[dict, np.ndarray]:
    return evaluate(model, corpus, split, cfg.protocol.value, cfg.eval.batch_size,
                    cfg.eval.bootstrap_samples, cfg.eval.bootstrap_block)


def _floor(corpus: Corpus, cfg) -> dict | None:
    """The exact oracle's test metrics when the corpus has one (the synthetic corpus)."""
    if "synthetic" not in corpus.meta or cfg.model.name == "oracle":
        return None
    oracle = models.build("oracle", OmegaConf.create({"name": "oracle"}), corpus)
    return _evaluate(oracle, corpus, "test", cfg)[0]


def failed_record(cfg, error: Exception, job: dict | None = None) -> dict:
    """The record of a job that could not start (bad input inside a sweep)."""
    return {"id": new_run_id(), "model": cfg.model.name, "experiment": cfg.experiment,
            "config": OmegaConf.to_container(cfg, resolve=False, enum_to_str=True),
            "corpus": {"name": cfg.corpus.name, "fingerprint": None}, "status": "failed",
            "error": f"{type(error).__name__}: {error}", "job": job or {}}


def run(cfg, run_dir: Path, job: dict | None = None) -> dict:
    """Run one job and write its record; returns it. ``job`` holds launcher facts (command,
    launcher, sweep). User errors raise before anything is written; any other failure still
    writes a record with status ``failed`` and the error. An identical finished job is skipped
    (its record returned) unless ``force=true``; a killed identical job is resumed."""
    job = dict(job or {})
    validate(cfg)
    device = resolve_device(cfg.device.value)
    seed_everything(cfg.seed)
    corpus = load_corpus(cfg.corpus)
    cfg_hash = jobs.config_hash(cfg)
    results_dir = Path(cfg.results_dir)
    done = None if cfg.force else jobs.find_done(results_dir, cfg_hash, corpus.fingerprint)
    if done is not None:
        log.info("skipping: this job already finished in %s (force=true reruns it)", done.parent)
        return collect(done.parent)[0][0] | {"skipped": True}
    model = models.build(cfg.model.name, cfg.model, corpus)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    jobs.mark_started(run_dir, cfg_hash, corpus.fingerprint, job.get("command"))
    resumed_from = jobs.adopt_partial(results_dir, cfg_hash, corpus.fingerprint, run_dir)
    if resumed_from is not None:
        log.info("resuming the killed run in %s", resumed_from)
    record = {
        "id": new_run_id(),
        "model": cfg.model.name,
        "experiment": cfg.experiment,
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "config_hash": cfg_hash,
        "corpus": {"name": corpus.name, "fingerprint": corpus.fingerprint, **corpus.stats()},
        "versions": versions(),
        "git_commit": git_commit(),
        "hardware": hardware(device),
        "device": device,
        "run_dir": str(run_dir),
        "resumed_from": str(resumed_from) if resumed_from else None,
        "status": "running",
        "started_at": datetime.now(timezone.utc).isoformat(),
    }
    started = time.perf_counter()
    with jobs.active() as (other_jobs, earlier_jobs_in_process):
        concurrent = other_jobs()
        try:
            resume = bool(cfg.train.resume or resumed_from)
            fit_cfg = OmegaConf.merge(cfg, {"device": device, "train": {"resume": resume}})
            train_stats = model.fit(corpus, fit_cfg, run_dir) or {}
            train_seconds = time.perf_counter() - started
            concurrent = max(concurrent, other_jobs())
            metrics, losses = {}, {}
            for split in ("valid", "test"):
                metrics[split], losses[split] = _evaluate(model, corpus, split, cfg)
                log.info("%s: ppl %.3f  bpc %.4f  (%d tokens)", split, metrics[split]["ppl"],
                         metrics[split]["bpc"], metrics[split]["tokens"])
            np.save(Path(run_dir) / "test_losses.npy", losses["test"].astype(np.float16))
            record.update(
                status=train_stats.pop("status", "ok"),
                metrics=metrics,
                floor=_floor(corpus, cfg),
                train=train_stats,
                timing={"train_seconds": train_seconds,
                        "train_tokens_per_s": train_stats.get(
                            "train_tokens_per_s", len(corpus.train) / max(train_seconds, 1e-9)),
                        "wall_seconds": time.perf_counter() - started},
            )
        except UserError:
            raise  # bad input found during fit (e.g. a foreign checkpoint): nothing is written
        except Exception as exc:
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                          traceback=traceback.format_exc())
            raise
        finally:
            if record["status"] != "running":
                memory = {"peak_rss_mb": peak_rss_mb(), "parameters": model.num_parameters(),
                          "model_bytes": model.size_bytes()}
                if device == "cuda":
                    memory["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
                record.update(memory=memory, finished_at=datetime.now(timezone.utc).isoformat(),
                              job=job | {"concurrent_jobs": max(concurrent, other_jobs()),
                                         "earlier_jobs_in_process": earlier_jobs_in_process})
                write_record(record, run_dir)
                write_tables(results_dir)
    if published_line := published.line(record):
        print(published_line, flush=True)
    return record
