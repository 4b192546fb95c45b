"""``python -m lmbench.diagnose <run_dir> [<run_dir> ...] [what=<name>|all] [key=value]``

``<name>``: gradients, memory, cells, positions or copying. Each run gets
``<run_dir>/diagnostics/<what>.json`` and figures, and ``record["diagnostics"][what]``. With several
runs, figures comparing them (one per corpus, a curve per run) go into ``diagnostics/`` of the runs'
common parent folder. Options (``key=value``) go to every diagnostic that takes them; each one's
defaults are its ``diagnose`` function's:

* gradients: ``split=valid distance=100 windows=8 rows=16``
* memory: ``split=probe tokens=100000`` (``probe``: a fresh sample of the synthetic process)
* cells: ``split=test tokens=20000 unit=<label, e.g. c0.17> feature=<name> show=400``
* positions: ``split=test window=128`` (every family: the loss per position of windows scored from
  an empty context)
* copying: ``length=50 sequences=200 seed=0`` (every family: random tokens then their exact repeat,
  the loss per position on each copy)

``threads=1`` sets torch's CPU threads (0 keeps its default of one per core), as ``train.threads``
does: these small sequential computations gain little from more, and lose much when cores are shared.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections import defaultdict
from pathlib import Path

import torch

from lmbench.corpora.raw import SPLITS
from lmbench.diagnose import cells, copying, gradients, memory, positions
from lmbench.errors import UserError
from lmbench.runs.rundir import DIAGNOSTICS as FOLDER
from lmbench.runs.rundir import RunDir

DIAGNOSTICS = {"gradients": gradients, "memory": memory, "cells": cells, "positions": positions,
               "copying": copying}


def parameters(fn) -> dict[str, inspect.Parameter]:
    """The options a ``diagnose(run, ...)`` function takes: all its parameters but the run."""
    return dict(list(inspect.signature(fn).parameters.items())[1:])


def keyword_args(what: str, given: dict[str, str]) -> dict:
    """The options diagnostic ``what`` takes, converted to the type of its defaults."""
    out = {}
    for name, param in parameters(DIAGNOSTICS[what].diagnose).items():
        if name in given:
            kind = type(param.default) if isinstance(param.default, (int, float)) else str
            try:
                out[name] = kind(given[name])
            except ValueError:
                raise UserError(f"{name}={given[name]} is not a valid {kind.__name__}.") from None
            if kind is int and name != "seed" and out[name] < 1:  # counts: tokens, steps, windows, rows
                raise UserError(f"{name}={given[name]} is out of range: it must be at least 1.")
            splits = dict.fromkeys([*SPLITS, param.default])  # memory's default, probe, is one more
            if name == "split" and out[name] not in splits:
                raise UserError(f"split={given[name]} is not a split the {what} diagnostic reads: use one "
                                f"of {', '.join(splits)}.")
    return out


def compare(what: str, results: list[dict], runs: list[RunDir]) -> None:
    """One figure per corpus with a curve per run, in ``diagnostics/`` of the runs' common parent folder."""
    folder = Path(os.path.commonpath([r.path.resolve().parent for r in runs])) / FOLDER
    labels = [run.label for run in runs]
    by_corpus = defaultdict(list)
    for run, result in zip(runs, results):
        if result is not None:
            if labels.count(run.label) > 1:  # same family and seed: tell the runs apart by folder
                result = {**result, "label": f"{run.label} ({run.path.name})"}
            by_corpus[(run.corpus.name, run.corpus.fingerprint[:8])].append(result)
    for (name, fingerprint), found in by_corpus.items():
        path = DIAGNOSTICS[what].plot(found, folder / f"{what}_{name}_{fingerprint}.png")
        print(f"{what}: comparison figure {path}")


def describe(what: str, result: dict | None, run: RunDir) -> str:
    if result is None:
        return "skipped: " + run.record["diagnostics"][what]["skipped"]
    if what == "gradients":
        t, i = result["trained"], result["init"]
        return (f"decay rate {t['decay_rate']:.4f}/step trained, {i['decay_rate']:.4f}/step at init; "
                f"exploding events {t['exploding_events']} trained, {i['exploding_events']} at init")
    if what == "memory":
        if not result["bins"]:
            return f"too few closers ({result['closers']}) to bin; probe more tokens"
        found = result["effective_memory"]
        memory_text = "none: no rise with distance" if found is None else f"{found:.1f} tokens"
        return (f"effective memory {memory_text}; excess over the oracle at closers "
                f"{result['shortest_excess']:.3f} nats at the shortest distance, "
                f"{result['max_excess']:.3f} at most")
    if what == "positions":
        fit = result["fit"]
        return (f"windows of {result['window']}: plateau at position {result['plateau']}, ICL score "
                f"{result['icl_score']:+.3f} nats, fit L = {fit['L_inf']:.3f} + {fit['A']:.3f}"
                f"·t^-{fit['beta']:.2f}")
    if what == "copying":
        return (f"repeat of {result['length']} random tokens: first copy {result['first_loss']:.3f} nats, "
                f"repeat {result['repeat_loss']:.3f} nats, copy gain {result['copy_gain']:+.3f} nats "
                f"({result['copied_fraction']:.0%} of positions significant; uniform "
                f"{result['uniform_loss']:.3f})")
    shown = result["shown"]
    return f"unit {shown['unit']} correlates {shown['corr']:+.3f} with '{shown['feature']}'"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmbench.diagnose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="+", metavar="RUN_DIR|key=value")
    items = parser.parse_args(argv).items
    paths, given = [a for a in items if "=" not in a], dict(a.split("=", 1) for a in items if "=" in a)
    what = given.pop("what", "all")
    chosen = list(DIAGNOSTICS) if what == "all" else [what]
    try:
        threads = given.pop("threads", "1")
        if not threads.isdigit():
            raise UserError(f"threads={threads} must be a whole number (0 keeps torch's default).")
        if int(threads):
            torch.set_num_threads(int(threads))
        if not paths:
            raise UserError("Give at least one run folder.")
        if any(w not in DIAGNOSTICS for w in chosen):
            raise UserError(f"what={what} is not one of {', '.join(DIAGNOSTICS)}, all.")
        known = {k for w in chosen for k in parameters(DIAGNOSTICS[w].diagnose)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise UserError(f"Unknown option(s) {', '.join(unknown)} for what={what}; see --help.")
        settings = {w: keyword_args(w, given) for w in chosen}
        runs = [RunDir.open(p, finished_only=True) for p in paths]
        for w in chosen:
            results = []
            for run in runs:
                results.append(DIAGNOSTICS[w].diagnose(run, **settings[w]))
                print(f"{run.path} {w}: {describe(w, results[-1], run)}")
            if len(runs) > 1 and w != "cells":
                compare(w, results, runs)
    except UserError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
