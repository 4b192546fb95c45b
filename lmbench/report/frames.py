"""Full-precision tables derived from runs' records: one row per run, the per-model summary, paired
tests, learning curves, n-gram storage, published figures, budgets and the environment."""

from __future__ import annotations

import json
import math
from itertools import combinations

import numpy as np
import pandas as pd

from lmbench import published
from lmbench.evaluate import bootstrap_mean_ci, paired_bootstrap
from lmbench.models import COUNT_BASED
from lmbench.runs import records
from lmbench.runs.records import settings_hash
from lmbench.runs.rundir import RunDir

GROUP = ["corpus", "protocol", "fingerprint"]
BOOTSTRAP_SAMPLES = 1000


def _variant(record: dict) -> str:
    """The job hash without the seed: runs of one variant are seeds of one model."""
    return settings_hash(record.get("config") or {}, "seed")[:6]


def _base_label(record: dict) -> str:
    """The published row a run reproduces (``published.row``), else its model; and its experiment."""
    row = ((record.get("config") or {}).get("published") or {}).get("row")
    return (row or record["model"]) + (f" [{record['experiment']}]" if record.get("experiment") else "")


def labels(records: list[dict]) -> dict[str, str]:
    """Each run's name in tables and figures, by run id: its published row or model (and experiment);
    variants of one name get a config hash."""
    variants = {}
    for r in records:
        variants.setdefault((r["corpus"]["name"], _base_label(r)), set()).add(_variant(r))
    several = {key for key, found in variants.items() if len(found) > 1}
    return {r["id"]: _base_label(r) + (f" #{_variant(r)}" if (r["corpus"]["name"], _base_label(r)) in several
                                       else "") for r in records}


def screened(rundirs: list[RunDir]) -> list[RunDir]:
    """The runs, an ``ok`` one whose perplexity is not a finite number (an exploded loss) marked
    ``diverged`` in memory: listed with the failures, never ranked or tested."""
    for run in rundirs:
        metrics = run.record.get("metrics") or {}
        bad = [f"{split} perplexity is {ppl}" for split in ("valid", "test")
               if isinstance(ppl := (metrics.get(split) or {}).get("ppl"), float) and not math.isfinite(ppl)]
        if run.record["status"] == "ok" and bad:
            run.record.update(status="diverged", diverged=bad[0])
    return rundirs


def distinct(rundirs: list[RunDir]) -> tuple[list[RunDir], list[str]]:
    """The runs, each finished job once: an ``ok`` run repeating an earlier one (the same config hash
    and corpus, e.g. identical commands started together) is left out, never counted as a seed."""
    first, later = {}, []
    for run in sorted(rundirs, key=lambda run: run.record.get("started_at") or ""):
        job = (run.record.get("config_hash"), run.record["corpus"].get("fingerprint"))
        if run.record["status"] == "ok" and None not in job and first.setdefault(job, run) is not run:
            later.append(run)
    repeated = [run for run in rundirs if run in later]  # in the order found
    note = [f"{len(repeated)} runs repeat a job already counted (same config and corpus) and are left "
            f"out: {', '.join(str(run.path) for run in repeated)}."] if repeated else []
    return [run for run in rundirs if run not in repeated], note


def runs_table(rundirs: list[RunDir], label: dict[str, str]) -> pd.DataFrame:
    """One row per run (``records.row``; a diverged run's reason as its error), with its label and log."""
    rows = [{"label": label[run.record["id"]],
             **records.row(run.record | {"error": run.record.get("error") or run.record.get("diverged")}),
             "log": str(run.log_path() or "")} for run in rundirs]
    return pd.DataFrame(rows).sort_values(["corpus", "label", "seed", "run"], kind="stable",
                                          ignore_index=True)


def summary(rundirs: list[RunDir], runs: pd.DataFrame) -> pd.DataFrame:
    """Per model × corpus: mean ± sd over seeds, and a bootstrap CI of the seed-averaged model."""
    rows = []
    for (name, corpus, protocol, fingerprint), group in runs[runs.status == "ok"].groupby(["label", *GROUP]):
        losses = [x for x in (run.losses() for run in rundirs
                              if run.record["status"] == "ok" and run.record["id"] in set(group.run))
                  if x is not None]
        low = high = np.nan
        if losses and len({len(x) for x in losses}) == 1:
            lo, hi = bootstrap_mean_ci(np.mean(losses, axis=0), BOOTSTRAP_SAMPLES, 0)
            low, high = np.exp(lo), np.exp(hi)
        rows.append({
            "model": name, "corpus": corpus, "protocol": protocol, "fingerprint": fingerprint,
            "seeds": len(group), "test_ppl": group.test_ppl.mean(),
            "test_ppl_sd": group.test_ppl.std(ddof=1) if len(group) > 1 else 0.0,
            "ci_lo": low, "ci_hi": high, "test_bpc": group.test_bpc.mean(),
            "test_bpc_sd": group.test_bpc.std(ddof=1) if len(group) > 1 else 0.0,
            "valid_ppl": group.valid_ppl.mean(), "params": group.params.median(),
            "train_s": group.train_s.mean(), "mixed_hardware": group.hardware.nunique() > 1,
        })
    table = pd.DataFrame(rows)
    return table.sort_values(["corpus", "protocol", "test_ppl"]).reset_index(drop=True) if rows else table


def pairs(rundirs: list[RunDir], label: dict[str, str]) -> pd.DataFrame:
    """Paired bootstrap on per-token test losses for every pair of models scored on the same tokens."""
    averaged = {}
    for run in rundirs:
        r = run.record
        if r["status"] == "ok" and (losses := run.losses()) is not None:
            key = (r["corpus"]["name"], r["config"].get("protocol"), r["corpus"]["fingerprint"][:12])
            averaged.setdefault(key, {}).setdefault(label[r["id"]], []).append(losses)
    rows = []
    for (corpus, protocol, fingerprint), by_label in sorted(averaged.items()):
        means = {label: np.mean(x, axis=0) for label, x in sorted(by_label.items())}
        for a, b in combinations(sorted(means), 2):
            test = paired_bootstrap(means[a], means[b], samples=BOOTSTRAP_SAMPLES)
            rows.append({"corpus": corpus, "protocol": protocol, "fingerprint": fingerprint,
                         "model_a": a, "model_b": b, **test,
                         "better": (b if test["diff"] > 0 else a) if test["significant"] else "neither"})
    return pd.DataFrame(rows)


def histories(rundirs: list[RunDir], label: dict[str, str]) -> pd.DataFrame:
    """Validation perplexity per epoch, with the cumulative training tokens and the cumulative
    training + validation wall time."""
    rows = []
    for run in rundirs:
        r = run.record
        elapsed = tokens = 0.0
        per_epoch = (r.get("train") or {}).get("tokens_per_epoch") or 0
        for point in (r.get("train") or {}).get("history", []):
            seconds = point.get("train_seconds") or 0.0
            elapsed += seconds + (point.get("valid_seconds") or 0.0)
            tokens += point["tokens_per_s"] * seconds if point.get("tokens_per_s") else per_epoch
            if point.get("valid_ppl") is not None and np.isfinite(point["valid_ppl"]):  # diverged: no point
                rows.append({"label": label[r["id"]], "model": r["model"], "corpus": r["corpus"]["name"],
                             "seed": r["config"].get("seed"), "epoch": point.get("epoch"),
                             "tokens": tokens, "seconds": elapsed, "valid_ppl": point["valid_ppl"]})
    return pd.DataFrame(rows)


def data_size(records: list[dict]) -> pd.DataFrame:
    """Test loss above the exact oracle's (nats/token) against training-split size, for corpora with a
    floor scored at two or more sizes: how much of each family's gap to the floor is data."""
    rows = [{"corpus": r["corpus"]["name"], "family": r["model"], "train_tokens": r["corpus"]["train_tokens"],
             "excess": r["metrics"]["test"]["nll"] - r["floor"]["nll"]}
            for r in records if r.get("status") == "ok" and (r.get("floor") or {}).get("nll") is not None
            and ((r.get("metrics") or {}).get("test") or {}).get("nll") is not None
            and r["corpus"].get("train_tokens")]
    frame = pd.DataFrame(rows, columns=["corpus", "family", "train_tokens", "excess"])
    sizes = frame.groupby("corpus").train_tokens.nunique()
    return frame[frame.corpus.isin(sizes[sizes > 1].index)].reset_index(drop=True)


def ngram_orders(rundirs: list[RunDir], label: dict[str, str]) -> pd.DataFrame:
    rows = []
    for run in rundirs:
        r = run.record
        orders = ((r.get("train") or {}).get("ngram") or {}).get("orders", [])
        unseen = ((r.get("metrics") or {}).get("test") or {}).get("unseen_fraction_by_order")
        total = 0.0
        for level in sorted(orders, key=lambda o: o["order"]):
            total += level.get("bytes", 0) / 2**20
            rows.append({"label": label[r["id"]], "model": r["model"], "corpus": r["corpus"]["name"],
                         "order": level["order"], "ngrams": level.get("ngrams"), "cumulative_mb": total,
                         "test_unseen_fraction": unseen[level["order"] - 1]})
    return pd.DataFrame(rows)


def published_rows(rundirs: list[RunDir], label: dict[str, str]) -> pd.DataFrame:
    """Per model × corpus with a published figure: ours (averaged over seeds) against it."""
    members = {}
    for run in rundirs:
        r = run.record
        if r["status"] == "ok" and published.comparison(r) is not None:
            members.setdefault((label[r["id"]], r["corpus"]["name"]), []).append(r)
    rows = []
    for (label, corpus), runs in sorted(members.items()):
        found = [r.get("metrics") or {} for r in runs]
        metrics = {split: {key: np.mean([m[split][key] for m in found]) for key in found[0][split] or {}
                           if all(isinstance((m.get(split) or {}).get(key), (int, float)) for m in found)}
                   for split in found[0]}
        rows.append({"model": label, "corpus": corpus, "experiment": runs[0].get("experiment"),
                     **published.comparison({**runs[0], "metrics": metrics})})
    rows = published.judge_relative(rows)
    return pd.DataFrame(rows).drop(columns=["beats_rows", "beats_by"], errors="ignore")


def floors(records: list[dict]) -> dict:
    found = {}
    for r in records:
        if r.get("floor"):
            found.setdefault(r["corpus"]["name"], r["floor"]["ppl"])
        if r["model"] == "oracle" and r["status"] == "ok":
            found.setdefault(r["corpus"]["name"], r["metrics"]["test"]["ppl"])
    return found


def budgets(runs: pd.DataFrame) -> dict:
    """Per corpus, what the comparison holds equal: minutes or tokens of training per family on
    one device, or training to convergence. Count-based models have no budget."""
    found = {}
    for corpus, frame in runs.groupby("corpus"):
        frame = frame[frame.status == "ok"] if (frame.status == "ok").any() else frame
        trained = frame[~frame.model.isin(COUNT_BASED)]
        minutes = sorted(set(trained.budget_min.dropna()))
        tokens = sorted(set(trained.budget_tokens.dropna()))
        on = " / ".join(sorted(set(trained.device_name.dropna()))) or "unrecorded hardware"
        if trained.empty:
            found[corpus] = "count-based models only (no training budget)"
        elif len(minutes) == 1 and trained.budget_min.notna().all():
            found[corpus] = f"equal budget: {minutes[0]:g} min of training per family on {on}"
        elif len(tokens) == 1 and trained.budget_tokens.notna().all() and not minutes:
            found[corpus] = f"equal budget: {tokens[0]:,.0f} training tokens per family"
        elif minutes or tokens:
            found[corpus] = ("mixed budgets: " + ", ".join([f"{m:g} min" for m in minutes]
                                                           + [f"{t:,.0f} tokens" for t in tokens]))
        else:
            capped = int((trained.stopped_by == "max_epochs").sum())
            found[corpus] = "trained to convergence (early stopping on validation perplexity)" + (
                f"; {capped} of {len(trained)} runs stopped at their epoch cap first" if capped else "")
    return found


def environment(records: list[dict]) -> tuple[dict, list[str]]:
    """What the runs ran on, and warnings where figures come from mixed sources."""
    env = {
        "hardware": sorted({f"{r['hardware'].get('cpu')} ({r['hardware'].get('cores')} "
                            f"cores) / {r.get('device')}" for r in records if r.get("hardware")}),
        "versions": [json.loads(v) for v in sorted({json.dumps(r.get("versions"), sort_keys=True)
                                                    for r in records if r.get("versions")})],
        "git_commits": sorted({r.get("git_commit") or "unknown" for r in records}),
        "fingerprints": sorted({f"{r['corpus']['name']}: {r['corpus'].get('fingerprint')}" for r in records
                                if r["corpus"].get("fingerprint")}),
    }
    warnings = []
    if len(env["hardware"]) > 1:
        warnings.append("Runs come from more than one machine/device: compare speed and memory only "
                        "within one hardware row (rows with mixed hardware are flagged).")
    names = [f.split(":")[0] for f in env["fingerprints"]]
    for name in sorted({n for n in names if names.count(n) > 1}):
        warnings.append(f"Corpus {name} appears with different fingerprints (different data or "
                        "preparation); its rows are kept apart, never averaged.")
    if len(env["versions"]) > 1:
        warnings.append("Runs used different package versions.")
    return env, warnings
