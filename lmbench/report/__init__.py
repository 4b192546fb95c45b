"""``python -m lmbench.report DIR``: the comparison report built from every run record below DIR.

Writes, into DIR (or ``--out``): ``table.csv/.md`` (one row per run), ``report.md`` and a
self-contained ``report.html`` (plots embedded, no JavaScript), full-precision CSV and LaTeX tables
(``summary``, ``pairs``, ``memory``, ``speed``, and ``published`` when a run names a published
figure) and the PNG plots under ``plots/``. The report opens with the finding in words, then one
leaderboard and one significance matrix per corpus. Everything is derived from records; rerunning
it on the same records regenerates the same tables byte for byte.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from lmbench import plots
from lmbench.files import atomic_copy, atomic_write_text
from lmbench.models import COUNT_BASED
from lmbench.report import frames, render, scaling, tables
from lmbench.runs.records import write_tables
from lmbench.runs.rundir import DIAGNOSTICS, RunDir, find_runs

__all__ = ["build", "main"]


def _diagnostics(root: Path, rundirs: list[RunDir], label: dict[str, str], folder: Path) -> tuple:
    """Copies of the PNGs ``python -m lmbench.diagnose`` left beside records, and of its comparison
    plots (in ``diagnostics/`` folders of the runs' common parent); and a warning for each PNG refused
    for not being a regular file inside its run's folder (or ``root``): the report embeds no other file."""
    found = []
    for run in rundirs:
        r = run.record
        name = f"{label[r['id']]}_{r['corpus']['name']}_s{r['config'].get('seed')}"
        found += [(png, run.path, name) for png in sorted((run.path / DIAGNOSTICS).glob("*.png"))]
    found += [(png, Path(root), "_".join(png.parent.parent.relative_to(root).parts) or "root")
              for png in sorted(Path(root).rglob(f"{DIAGNOSTICS}/*.png"))
              if not RunDir(png.parent.parent).finished]
    copies, refused = [], []
    for png, inside, name in found:
        if png.is_file() and png.resolve().is_relative_to(inside.resolve()):
            copies.append(folder / plots.file_name(f"diagnostics_{name}_{png.stem}"))
            atomic_copy(png, copies[-1])
        else:
            refused.append(f"{png} is not a file inside {inside} (a link out of it?): not in the report.")
    return copies, refused


def _figures(*, rundirs, label, runs, summary, orders, groups, floor, folder) -> list[tables.Group]:
    """Draw every plot; returns the groups, each with its figures (its corpus's)."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = []
    curves = frames.histories(rundirs, label)
    if not curves.empty:
        ok = runs[(runs.status == "ok") & runs.model.isin(COUNT_BASED) & (runs.model != "oracle")]
        flat = ok.groupby(["label", "model", "corpus"], as_index=False).valid_ppl.mean()
        drawn += plots.learning_curves(curves, flat, floor, folder)
    if not summary.empty:
        family = dict(zip(runs.label, runs.model))
        drawn += plots.tradeoffs(summary.rename(columns={"model": "label"}).assign(
            family=lambda f: f.label.map(family)), floor, folder)
    if not orders.empty:
        drawn += plots.ngram_growth(orders, folder)
    drawn += plots.data_size(frames.data_size([run.record for run in rundirs]), folder)
    drawn += scaling.figures([run.record for run in rundirs], folder)
    figures = []
    for n, group in enumerate(groups):
        first = next(g for g in groups if g.corpus == group.corpus) is group
        mine = [f for prefix in ("tradeoffs", "curves", "datasize", "scaling", "ngram") for f in drawn
                if f.name == plots.file_name(f"{prefix}_{group.corpus}")] if first else []
        if len(group.matrix) > 1:
            alone = sum(g.corpus == group.corpus for g in groups) == 1
            name = group.corpus if alone else f"{group.corpus}_{n}"
            mine.insert(1 if first else 0, plots.significance(
                name, group.title, group.families, group.matrix, group.matrix_kind, folder))
        figures.append(replace(group, figures=mine))
    return figures


def _shown(label, runs, summary, published, pair_table) -> tuple:
    """Labels and frames with the experiment tag every label shares dropped (the intro names it)."""
    if runs.empty:
        return label, runs, summary, published, pair_table
    names, _ = plots.short_names(runs.label)
    return ({run: names[name] for run, name in label.items()}, runs.replace({"label": names}),
            summary.replace({"model": names}), published.replace({"model": names}),
            pair_table.replace(dict.fromkeys(["model_a", "model_b", "better"], names)))


def _write_full_precision(out: Path, runs: pd.DataFrame, summary, pair_table, published) -> None:
    """The CSV and LaTeX tables, at full precision, for readers who compute with them."""
    full = {
        "summary": summary, "pairs": pair_table,
        "memory": runs[["label", "corpus", "seed", "params", "model_mb", "peak_rss_mb", "peak_cuda_mb",
                        "shared_process"]] if not runs.empty else pd.DataFrame(),
        "speed": runs[["label", "corpus", "seed", "train_tok_s", "eval_tok_s", "train_s", "wall_s",
                       "precision", "flops_per_s", "peak_fraction", "hardware", "concurrent"]]
        if not runs.empty else pd.DataFrame(),
    }
    if not published.empty:
        full["published"] = published
    for name, frame in full.items():
        atomic_write_text(out / f"{name}.csv", frame.to_csv(index=False))
        atomic_write_text(out / f"{name}.tex", frame.to_latex(index=False, float_format="%.4g", na_rep="--")
                          if not frame.empty else "")


def build(root: Path, out: Path | None = None) -> dict:
    """Write every table, plot and the report for the records below ``root``; returns a summary."""
    out = Path(out or root)
    rundirs, skipped = find_runs(root)
    rundirs, repeated = frames.distinct(frames.screened(rundirs))
    records = [run.record for run in rundirs]
    for note in skipped:
        print(f"skipped unreadable record {note}", file=sys.stderr)
    write_tables(out, records)
    label = frames.labels(records)
    runs = frames.runs_table(rundirs, label) if records else pd.DataFrame()
    env, warnings = frames.environment(records)
    summary = frames.summary(rundirs, runs) if records else pd.DataFrame()
    pair_table, published = frames.pairs(rundirs, label), frames.published_rows(rundirs, label)
    _write_full_precision(out, runs, summary, pair_table, published)

    label, runs, summary, published, pair_table = _shown(label, runs, summary, published, pair_table)
    floor, budgets = frames.floors(records), frames.budgets(runs) if records else {}
    groups = tables.groups(summary, runs, pair_table, floor, budgets, published)
    orders = frames.ngram_orders(rundirs, label)
    if records:
        groups = _figures(rundirs=rundirs, label=label, runs=runs, summary=summary, orders=orders,
                          groups=groups, floor=floor, folder=out / "plots")
    diagnostics, refused = _diagnostics(root, rundirs, label, out / "plots")
    kinds, corpora = sorted(set(budgets.values())), sorted(set(runs.corpus)) if records else []
    experiments = ", ".join(sorted({r.get("experiment") for r in records if r.get("experiment")}))
    ok = int((runs.status == "ok").sum()) if records else 0
    report = render.Report(
        title="lmbench report" + (f": {', '.join(corpora)}" if corpora else ""),
        kind=kinds[0] if len(kinds) == 1 else "different budgets per corpus (see each leaderboard)"
        if kinds else "no runs",
        intro=f"{len(records)} runs ({ok} ok)" + (f" of experiment={experiments}" if experiments else "")
        + f"; {len(skipped)} unreadable records skipped.",
        findings=[line for group in groups for line in group.findings] + scaling.findings(records, out)
        or ["No finished runs to compare."],
        flags=tables.flags(runs, warnings + repeated + refused, skipped),
        groups=groups, details=tables.details(runs, pair_table, orders, out),
        diagnostics=diagnostics, environment=env)
    atomic_write_text(out / "report.md", render.markdown(report))
    atomic_write_text(out / "report.html", render.page(report))
    figures = [f for group in groups for f in group.figures] + diagnostics
    return {"records": len(records), "skipped": len(skipped), "figures": [str(f) for f in figures],
            "console": render.console(report)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmbench.report", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, nargs="?", default=Path("results"),
                        help="folder searched recursively for record.json files")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: ROOT)")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        sys.exit(f"error: {args.root} is not a folder of run records.")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        sys.exit(f"error: --out {args.out} is a file; give a folder to write the report into.")
    out = args.out or args.root
    try:
        result = build(args.root, args.out)
    except KeyboardInterrupt:
        print(f"Interrupted; the report in {out} was not finished (each of its files is whole: the new "
              "version or the previous one).", file=sys.stderr)
        sys.exit(130)
    print(f"{result['records']} records -> {out / 'report.md'}, {out / 'report.html'}, "
          f"{len(result['figures'])} plots")
