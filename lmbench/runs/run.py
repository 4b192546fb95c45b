"""One job: prepare the corpus, build and fit the model, score valid and test, write the record."""

from __future__ import annotations

import logging
import random
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from lmbench import models, published
from lmbench.corpora import Corpus, load_corpus
from lmbench.errors import UserError
from lmbench.evaluate import evaluate
from lmbench.models.base import FitSettings
from lmbench.runs import checkpoint, jobs, provenance, records
from lmbench.runs.rundir import RunDir, refresh_tables

log = logging.getLogger(__name__)


def resolve_device(requested: str, uses_torch: bool = True) -> str:
    """``auto`` picks cuda, then mps, then cpu (always cpu for a count-based model, which then never
    imports torch); an unavailable explicit choice is an error."""
    if requested == "cpu" or requested == "auto" and not uses_torch:
        return "cpu"
    import torch

    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": torch.backends.mps.is_available()}
    if requested == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if available[d])
    if not available.get(requested, False):
        raise UserError(f"device={requested} is not available on this machine; use device=auto "
                        "or device=cpu.")
    return requested


def seed_everything(seed: int, uses_torch: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed)
    if uses_torch:
        import torch

        torch.manual_seed(seed)


def _evaluate(model, corpus: Corpus, split: str, cfg) -> tuple[dict, np.ndarray]:
    return evaluate(model, corpus, split, cfg.protocol, cfg.eval.batch_size,
                    cfg.eval.bootstrap_samples, cfg.eval.bootstrap_block)


def _floor(corpus: Corpus, cfg) -> dict:
    """The exact oracle's test metrics when the corpus has one (the synthetic corpus). Optional: when
    it cannot be computed the run's own results still stand, and the record says why it is missing."""
    if "synthetic" not in corpus.meta or cfg.model.name == "oracle":
        return {"floor": None}
    try:
        oracle = models.build("oracle", OmegaConf.create({"name": "oracle"}), corpus)
        return {"floor": _evaluate(oracle, corpus, "test", cfg)[0]}
    except Exception as exc:  # the floor is a reference, never a reason to lose the run
        log.warning("no oracle floor for this corpus: %s", exc)
        return {"floor": None, "floor_missing": f"{type(exc).__name__}: {exc}"}


MEMORY_FACTOR = 4  # float32 weights, gradients and two optimizer moments per parameter


def check_memory(cfg, corpus: Corpus, device: str) -> None:
    """Refuse a torch model whose parameters cannot fit in this machine's memory, with its estimated
    size, before allocating it (it is built on the ``meta`` device first, which allocates nothing)."""
    import psutil

    if not models.uses_torch(cfg.model.name):
        return  # counts are sized by their own allocation
    import torch

    try:
        with torch.device("meta"):
            probe = models.build(cfg.model.name, cfg.model, corpus)
        net = getattr(probe, "net", None)
        parameters = sum(p.numel() for p in net.parameters()) if net is not None else 0
    except RuntimeError as exc:
        if "overflow" not in str(exc):
            return  # a family that cannot be sized this way is sized by its own allocation
        parameters = float("inf")
    needed = parameters * 4 * MEMORY_FACTOR
    have = (torch.cuda.get_device_properties(0).total_memory if device == "cuda"
            else psutil.virtual_memory().total)
    if needed > have:
        raise UserError(f"model={cfg.model.name} with these sizes has {parameters:.3g} parameters: about "
                        f"{needed / 2**30:,.3g} GiB to train (weights, gradients, optimizer state), and "
                        f"this {device} has {have / 2**30:,.1f} GiB. Choose smaller model sizes.")


DIVERGED_FACTOR = 2  # an untrained network sits near the uniform guess; twice it is not noise


def diverged(record: dict, train_stats: dict, vocab_size: int) -> str | None:
    """Why a trained model's run did not train: a loss that turned non-finite, or a validation or test
    perplexity far above the vocabulary size (worse than guessing uniformly), or None. (A
    count-based model can land above it honestly, when valid text differs from train.)"""
    if train_stats.get("diverged_step") is not None:
        return f"the training loss became non-finite at step {train_stats['diverged_step']}"
    for split, name in (("valid", "validation"), ("test", "test")):
        ppl = (record["metrics"].get(split) or {}).get("ppl", 0.0)
        if "steps" in train_stats and ppl > DIVERGED_FACTOR * vocab_size:
            return (f"{name} perplexity {ppl:.4g} is above {DIVERGED_FACTOR}x the vocabulary size "
                    f"{vocab_size}: far worse than a uniform guess (a learning rate too high?)")
    return None


def failed_record(cfg, error: Exception, job: dict | None = None) -> dict:
    """The record of a job that could not start (bad input inside a sweep)."""
    return {"version": records.VERSION, "id": records.new_run_id(), "model": cfg.model.name,
            "experiment": cfg.experiment,
            "config": OmegaConf.to_container(cfg, resolve=False, enum_to_str=True),
            "corpus": {"name": cfg.corpus.name, "fingerprint": None}, "status": "failed",
            "error": f"{type(error).__name__}: {error}", "job": job or {}}


@dataclass
class Job:
    """What every phase of a run shares: its config, device, corpus, identity and folders."""

    cfg: Any
    device: str
    corpus: Corpus
    config_hash: str
    run_dir: Path
    results_dir: Path
    facts: dict  # launcher facts: command, launcher, sweep


def prepare(cfg, run_dir: Path, facts: dict | None) -> Job:
    """Pick the device, seed every generator and load the corpus (of a config ``validate`` passed:
    the app's preflight for a single run, ``main`` for a sweep's job)."""
    uses_torch = models.uses_torch(cfg.model.name)
    device = resolve_device(str(cfg.device), uses_torch)
    seed_everything(cfg.seed, uses_torch)
    corpus = load_corpus(cfg.corpus)
    return Job(cfg, device, corpus, jobs.config_hash(cfg), Path(run_dir), Path(cfg.results_dir),
               dict(facts or {}))


def finished_copy(job: Job) -> dict | None:
    """The record of an identical finished job, marked ``skipped`` with its folder (unless ``force``)."""
    done = None if job.cfg.force else jobs.find_done(job.results_dir, job.config_hash, job.corpus.fingerprint)
    if done is None:
        return None
    log.info("skipping: this job already finished in %s (force=true reruns it)", done.path)
    return done.record | {"skipped": str(done.path)}


def start(job: Job):
    """Build the model and claim the run folder, refusing (before anything there is touched) one that
    holds another run: a finished record, a checkpoint without ``train.resume=true``, another job's.
    Resumes this very job killed (or failed) there after a checkpoint, else adopts a killed identical
    run's checkpoint; returns the model and the folder resumed from (or None)."""
    cfg, folder = job.cfg, RunDir(job.run_dir)
    check_memory(cfg, job.corpus, job.device)
    model = models.build(cfg.model.name, cfg.model, job.corpus)
    if not folder.unfinished:
        raise UserError(f"{folder.path} already holds a finished run ({folder.record_path.name}); leave "
                        "it as it is and run without hydra.run.dir: a new folder (force=true reruns a job).")
    killed_here = False
    if models.uses_torch(cfg.model.name):
        saved = folder.path / checkpoint.CHECKPOINT
        killed_here = folder.resumable and folder.is_job(job.config_hash, job.corpus.fingerprint)
        if cfg.train.resume or killed_here:
            checkpoint.load(saved, checkpoint.meta(model, job.corpus, FitSettings.from_config(cfg)))
        else:
            checkpoint.refuse_existing(saved)
    job.run_dir.mkdir(parents=True, exist_ok=True)
    folder.mark_started(job.config_hash, job.corpus.fingerprint, job.facts.get("command"))
    resumed_from = job.run_dir if killed_here else jobs.adopt_partial(
        job.results_dir, job.config_hash, job.corpus.fingerprint, job.run_dir)
    if resumed_from is not None:
        log.info("resuming the killed run in %s", resumed_from)
    return model, resumed_from


def new_record(job: Job, resumed_from: Path | None) -> dict:
    """The record's self-description: config, corpus fingerprint, versions, hardware."""
    cfg, corpus = job.cfg, job.corpus
    return {
        "version": records.VERSION, "id": records.new_run_id(), "model": cfg.model.name,
        "experiment": cfg.experiment, "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "config_hash": job.config_hash,
        "corpus": {"name": corpus.name, "fingerprint": corpus.fingerprint, **corpus.stats()},
        "versions": provenance.versions(), "git_commit": provenance.git_commit(),
        "hardware": provenance.hardware(job.device), "device": job.device, "run_dir": str(job.run_dir),
        "resumed_from": str(resumed_from) if resumed_from else None,
        "status": "running", "started_at": datetime.now(timezone.utc).isoformat(),
    }


def fit_and_score(job: Job, model, resume: bool) -> dict:
    """Train (or estimate) the model, score valid and test, save the test losses; returns the
    record's results: metrics, floor, status, training statistics and timing."""
    cfg, corpus = job.cfg, job.corpus
    started = time.perf_counter()
    train_stats = model.fit(corpus, FitSettings.from_config(cfg, job.run_dir, job.device, resume)) or {}
    train_seconds = time.perf_counter() - started + train_stats.get("resumed_train_seconds", 0.0)
    metrics, losses = {}, {}
    for split in ("valid", "test"):
        metrics[split], losses[split] = _evaluate(model, corpus, split, cfg)
        log.info("%s: ppl %.3f  bpc %.4f  (%d tokens)", split, metrics[split]["ppl"],
                 metrics[split]["bpc"], metrics[split]["tokens"])
    for split, split_losses in losses.items():
        RunDir(job.run_dir).save_losses(split, split_losses)
    reason = diverged({"metrics": metrics}, train_stats, len(corpus.vocab))
    if reason:
        log.warning("diverged: %s", reason)
    train_stats.pop("status", None)
    return {"metrics": metrics, **_floor(corpus, cfg), "status": "diverged" if reason else "ok",
            **({"diverged": reason} if reason else {}), "train": train_stats,
            "timing": {"train_seconds": train_seconds,
                       "train_tokens_per_s": train_stats.get(
                           "train_tokens_per_s", corpus.tokens("train") / max(train_seconds, 1e-9)),
                       "wall_seconds": time.perf_counter() - started}}


def finish(job: Job, record: dict, model, concurrent: int, earlier_jobs: int) -> None:
    """Add memory and job facts, write the record atomically and refresh the results tables."""
    memory = {"peak_rss_mb": provenance.peak_rss_mb(), "parameters": model.num_parameters(),
              "non_embedding_parameters": model.non_embedding_parameters(), "model_bytes": model.size_bytes()}
    if job.device == "cuda":
        import torch

        memory["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    record.update(memory=memory, finished_at=datetime.now(timezone.utc).isoformat(),
                  job=job.facts | {"concurrent_jobs": concurrent, "earlier_jobs_in_process": earlier_jobs})
    RunDir(job.run_dir).write_record(record)
    try:
        refresh_tables(job.results_dir)
    except OSError as exc:  # the tables are derived from the records: the next finished run rewrites them
        log.warning("the tables in %s could not be refreshed (%s); the run's record is written",
                    job.results_dir, exc)


def _fit(job: Job) -> dict:
    """Start the job in its claimed folder, fit and score it, and write its record."""
    model, resumed_from = start(job)
    record = new_record(job, resumed_from)
    with jobs.active() as (other_jobs, earlier_jobs):
        concurrent = other_jobs()
        try:
            record.update(fit_and_score(job, model, bool(job.cfg.train.resume or resumed_from)))
        except UserError:
            raise  # bad input found during fit (e.g. a foreign checkpoint): nothing is written
        except Exception as exc:
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                          traceback=traceback.format_exc())
            raise
        finally:
            if record["status"] != "running":
                finish(job, record, model, max(concurrent, other_jobs()), earlier_jobs)
    return record


def run(cfg, run_dir: Path, facts: dict | None = None) -> dict:
    """Run one job of a config ``config.validate`` has passed (the app's preflight or ``main``; a
    caller of its own validates first) and write its record; returns it. ``facts`` are launcher facts
    (command, launcher, sweep). User errors raise before anything is written; any other failure still writes
    a record with status ``failed`` and the error. An identical finished job is skipped (its record
    returned, ``skipped`` naming its folder) unless ``force=true``; a killed identical job is resumed."""
    job = prepare(cfg, run_dir, facts)
    with RunDir(run_dir).claim(wait=bool(job.facts.get("sweep"))):
        record = finished_copy(job) or _fit(job)
    if published_line := published.line(record):
        print(published_line, flush=True)
    return record
