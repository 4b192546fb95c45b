"""``python -m lmbench.combine RUN_OR_SWEEP_DIR...``: mixtures of finished runs, scored like any run.

Linear interpolation of the components' per-token probabilities (Mikolov 2012, Table 4.1; Bengio et
al. 2003's MLP mixed with a trigram), weights fitted by EM on the validation split and scored on test,
or fixed (``--fixed``, equal weights: the 0.5 of Bengio and the RNNLM toolkit); ``--greedy`` adds
components one at a time by validation gain (Mikolov, Table 4.6); ``--each-corpus`` mixes each
corpus's runs apart (every training size of ``experiment=data_size``: Mikolov's WSJ finding, the
network's gain over the n-gram growing with data); ``--cache`` interpolates a unigram
cache of the recently scored tokens (Kuhn & De Mori 1990), its size and weight tuned on validation.
The mixture writes a record (model ``mix``, its components and weights) with its per-token losses,
so tables, the report and the paired bootstrap treat it as one more run.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lmbench.errors import UserError
from lmbench.evaluate import metrics
from lmbench.published import line
from lmbench.runs import provenance, records
from lmbench.runs.records import settings_hash
from lmbench.runs.rundir import RunDir, find_runs

CACHE_SIZES = (50, 100, 200, 500, 1000, 2000)  # tokens of history the cache counts (tuned on valid)
CACHE_WEIGHTS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)


def log_mix(losses: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-token losses (nats) of the mixture of components' ``losses`` (components × tokens)."""
    with np.errstate(divide="ignore"):
        joint = np.log(weights)[:, None] - losses
    top = joint.max(axis=0)
    return -(top + np.log(np.exp(joint - top).sum(axis=0)))


def em_weights(losses: np.ndarray, tolerance: float = 1e-7, rounds: int = 1000) -> np.ndarray:
    """The mixture weights that maximise the likelihood of ``losses`` (components × tokens): EM,
    whose every round raises it (Dempster et al. 1977), from equal weights; one component alone where
    that is better, since EM approaches a corner of the simplex only slowly."""
    weights = np.full(len(losses), 1 / len(losses))
    for _ in range(rounds):
        with np.errstate(divide="ignore"):
            posterior = np.exp(np.log(weights)[:, None] - losses + log_mix(losses, weights))
        updated = posterior.mean(axis=1)
        done = np.abs(updated - weights).max() < tolerance
        weights = updated
        if done:
            break
    return min([weights, *np.eye(len(losses))], key=lambda w: log_mix(losses, w).mean())


def greedy(losses: np.ndarray) -> list[tuple[int, float]]:
    """Components added one at a time, each the one whose addition lowers the EM mixture's loss most:
    (component, mixture loss) in the order added (Mikolov 2012, Table 4.6)."""
    chosen, order = [], []
    while len(chosen) < len(losses):
        loss, best = min((log_mix(losses[chosen + [i]], em_weights(losses[chosen + [i]])).mean(), i)
                         for i in range(len(losses)) if i not in chosen)
        chosen.append(best)
        order.append((best, float(loss)))
    return order


def cache_probabilities(ids: np.ndarray, size: int) -> np.ndarray:
    """p(token t) under a unigram cache of the ``size`` tokens scored before it: their count of that
    token over the history's length (0 for the first token). Only earlier tokens are read."""
    n = len(ids)
    position = np.arange(n, dtype=np.int64)
    keys = np.sort(ids.astype(np.int64) * n + position)
    start = ids.astype(np.int64) * n + np.maximum(position - size, 0)
    seen = np.searchsorted(keys, ids.astype(np.int64) * n + position) - np.searchsorted(keys, start)
    return seen / np.maximum(np.minimum(position, size), 1)


def with_cache(losses: np.ndarray, ids: np.ndarray, size: int, weight: float) -> np.ndarray:
    """Per-token losses of ``(1 - weight) · model + weight · cache``."""
    return -np.log((1 - weight) * np.exp(-losses) + weight * cache_probabilities(ids, size))


def tune_cache(losses: np.ndarray, ids: np.ndarray) -> tuple[int, float]:
    """The cache size and weight with the lowest validation loss, on a grid."""
    return min(((size, weight) for size in CACHE_SIZES for weight in CACHE_WEIGHTS),
               key=lambda sw: with_cache(losses, ids, *sw).mean())


def tokens(run: RunDir) -> dict:
    """What decides which tokens a run scored: its corpus (fingerprint, vocabulary included) and protocol."""
    return {"corpus fingerprint": run.record["corpus"].get("fingerprint"),
            "protocol": run.config.get("protocol")}


def components(paths: list[Path], each_corpus: bool = False) -> list[list[RunDir]]:
    """The finished runs in ``paths`` (run or sweep folders) as groups to mix: one group, or with
    ``each_corpus`` one per corpus and protocol (a data-size sweep's sizes). Refused unless every run
    is ``ok``, has its valid and test per-token losses and scored the same tokens as its group."""
    runs = []
    for path in paths:
        found = [RunDir.open(path, finished_only=True)] if RunDir(path).finished else find_runs(path)[0]
        runs += [run for run in found if run.record["model"] != "mix" and run.record["status"] == "ok"]
    if not runs:
        raise UserError(f"No finished ok runs in {', '.join(map(str, paths))}: nothing to combine.")
    groups = {}
    for run in runs:
        groups.setdefault(str(tokens(run)) if each_corpus else "all", []).append(run)
    for group in groups.values():
        first, wanted = group[0], tokens(group[0])
        for run in group:
            differs = [f"{k} {v} against {wanted[k]}" for k, v in tokens(run).items() if v != wanted[k]]
            if differs:
                raise UserError(f"{run.path} scored other tokens than {first.path} ({'; '.join(differs)}): "
                                "only runs on the same corpus (same vocabulary) and protocol can be mixed "
                                "(--each-corpus mixes each corpus's runs apart).")
            for split in ("valid", "test"):
                if run.losses(split) is None:
                    raise UserError(f"{run.path} has no per-token {split} losses (older runs kept test "
                                    "losses only): rerun it to mix it.")
    return list(groups.values())


def combine(runs: list[RunDir], fixed: bool = False, cache: bool = False,
            published: dict | None = None) -> tuple[dict, dict]:
    """The mixture's record and its per-token losses by split: weights from validation (EM, or equal
    when ``fixed``), metrics on both splits, and (``cache``) a unigram cache tuned on validation."""
    valid = np.stack([run.losses("valid") for run in runs])
    test = np.stack([run.losses("test") for run in runs])
    weights = np.full(len(runs), 1 / len(runs)) if fixed else em_weights(valid)
    mixed = {"valid": log_mix(valid, weights), "test": log_mix(test, weights)}
    corpus = runs[0].corpus
    tuned = None
    if cache:
        tuned = tune_cache(mixed["valid"], corpus.splits["valid"])
        mixed = {split: with_cache(losses, corpus.splits[split], *tuned) for split, losses in mixed.items()}
    names = [run.label for run in runs]
    published = {"row": " + ".join(names) + (" + cache" if cache else ""), **(published or {})}
    settings = {"model": {"name": "mix", "components": [run.record["config_hash"] for run in runs],
                          "weights": "fixed" if fixed else "em", "cache": cache},
                "protocol": runs[0].config.get("protocol"), "seed": 0,
                "corpus": runs[0].record["config"]["corpus"], "published": published}
    now = datetime.now(timezone.utc).isoformat()
    record = {
        "version": records.VERSION, "id": records.new_run_id(), "model": "mix", "experiment": None,
        "config": settings, "config_hash": settings_hash(settings), "corpus": runs[0].record["corpus"],
        "versions": provenance.versions(), "git_commit": provenance.git_commit(),
        "hardware": provenance.hardware("cpu"), "device": "cpu", "status": "ok",
        "started_at": now, "finished_at": now,
        "metrics": {split: metrics(losses, corpus.chars[split]) | {"protocol": settings["protocol"]}
                    for split, losses in mixed.items()},
        "floor": runs[0].record.get("floor"),  # the same tokens: the same exact floor, where there is one
        "mixture": {"components": [{"run": run.record["id"], "run_dir": str(run.path), "label": name,
                                    "model": run.family, "weight": float(w)}
                                   for run, name, w in zip(runs, names, weights)],
                    "weights_from": "equal (fixed)" if fixed else "EM on validation",
                    "cache": {"size": tuned[0], "weight": tuned[1]} if tuned else None},
    }
    return record, mixed


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lmbench.combine", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run or sweep folders")
    parser.add_argument("--fixed", action="store_true", help="equal weights instead of EM on validation")
    parser.add_argument("--cache", action="store_true", help="interpolate a unigram cache of the history")
    parser.add_argument("--each-corpus", action="store_true",
                        help="mix each corpus's runs apart (e.g. each training size of experiment=data_size)")
    parser.add_argument("--greedy", action="store_true", help="print the greedy order of components")
    parser.add_argument("--out", type=Path, help="the mixture's folder (default: beside the first run)")
    parser.add_argument("--row", help="its name in tables (default: its components', joined by +)")
    parser.add_argument("--published", type=float, help="the published test perplexity it reproduces")
    parser.add_argument("--source", help="where the published figure comes from (paper, table)")
    parser.add_argument("--tolerance", type=float, help="goal: within this relative difference of it")
    return parser.parse_args(argv)


def mix(runs: list[RunDir], args: argparse.Namespace, published: dict) -> None:
    """Combine ``runs``, write the mixture's folder and print its weights and perplexities."""
    record, mixed = combine(runs, args.fixed, args.cache, published)
    out = RunDir(args.out or runs[0].path.parent / f"mix_{record['id']}")
    out.path.mkdir(parents=True, exist_ok=True)
    record["run_dir"] = str(out.path)
    for split, losses in mixed.items():
        out.save_losses(split, losses)
    out.write_record(record)
    for part in record["mixture"]["components"]:
        print(f"{part['weight']:.3f}  {part['label']}  ({part['run_dir']})")
    if cache := record["mixture"]["cache"]:
        print(f"cache: {cache['size']} tokens, weight {cache['weight']}")
    print(f"mixture: valid ppl {record['metrics']['valid']['ppl']:.2f}, test ppl "
          f"{record['metrics']['test']['ppl']:.2f}  ({out.path})")
    print(line(record))
    if args.greedy:
        for step, (i, loss) in enumerate(greedy(np.stack([run.losses("valid") for run in runs])), 1):
            print(f"greedy {step}: + {runs[i].label}  valid ppl {np.exp(loss):.2f}")


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    published = {key: value for key, value in (("row", args.row), ("value", args.published),
                                               ("source", args.source), ("tolerance", args.tolerance))
                 if value is not None}
    try:
        groups = components(args.paths, args.each_corpus)
        if args.out and len(groups) > 1:
            raise UserError("--out names one folder, and --each-corpus found several corpora to mix: "
                            "leave --out out (each mixture goes beside its first run).")
        for runs in groups:
            mix(runs, args, published)
    except UserError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
