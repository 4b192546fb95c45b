"""``python -m lmbench.report DIR``: the comparison report built from every run record below DIR.

Writes, into DIR (or ``--out``): ``table.csv/.md`` (one row per run), ``report.md`` and a
self-contained ``report.html`` (plots embedded), CSV and LaTeX tables (``summary``, ``pairs``,
``memory``, ``speed``) and the PNG plots under ``plots/``. Everything is derived from records;
rerunning it on the same records regenerates the same tables byte for byte.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from lmbench import plots
from lmbench.evaluate import bootstrap_mean_ci, paired_bootstrap
from lmbench.jobs import settings_hash
from lmbench.records import atomic_write_text, collect, write_tables

GROUP = ["corpus", "protocol", "fingerprint"]


def _variant(record: dict) -> str:
    """The job hash without the seed: runs of one variant are seeds of one model."""
    return settings_hash(record.get("config", {}), "seed")[:6]


def label_runs(records: list[dict]) -> None:
    """Name each run by its model (and experiment); variants of one model get a config hash."""
    names = {}
    for record in records:
        base = record["model"] + (f" [{record['experiment']}]" if record.get("experiment") else "")
        key = (record["corpus"]["name"], base)
        names.setdefault(key, set()).add(_variant(record))
    for record in records:
        base = record["model"] + (f" [{record['experiment']}]" if record.get("experiment") else "")
        several = len(names[(record["corpus"]["name"], base)]) > 1
        record["_label"] = f"{base} #{_variant(record)}" if several else base


def _losses(record: dict) -> np.ndarray | None:
    path = Path(record["_path"]).parent / "test_losses.npy"
    return np.load(path).astype(np.float64) if path.exists() else None


def _runs(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        test = r.get("metrics", {}).get("test", {})
        job, memory, timing = r.get("job", {}), r.get("memory", {}), r.get("timing", {})
        rows.append({
            "label": r["_label"], "model": r["model"], "corpus": r["corpus"]["name"],
            "protocol": r["config"].get("protocol"),
            "fingerprint": (r["corpus"].get("fingerprint") or "")[:12],
            "seed": r["config"].get("seed"), "status": r["status"], "test_ppl": test.get("ppl"),
            "test_bpc": test.get("bpc"), "valid_ppl": r.get("metrics", {}).get("valid", {}).get("ppl"),
            "params": memory.get("parameters"), "model_mb": (memory.get("model_bytes") or 0) / 2**20,
            "peak_rss_mb": memory.get("peak_rss_mb"), "peak_cuda_mb": memory.get("peak_cuda_mb"),
            "train_s": timing.get("train_seconds"), "train_tok_s": timing.get("train_tokens_per_s"),
            "eval_tok_s": test.get("eval_tokens_per_s"), "wall_s": timing.get("wall_seconds"),
            "hardware": f"{r.get('hardware', {}).get('cpu')} / {r.get('device')}",
            "concurrent": bool(job.get("concurrent_jobs")) or job.get("launcher") in (
                "JoblibLauncher", "LocalLauncher"),
            "shared_process": bool(job.get("earlier_jobs_in_process")),
            "command": job.get("command"), "run": r["id"],
            "error": (r.get("error") or "").strip().split("\n")[0],
        })
    return pd.DataFrame(rows).sort_values(["corpus", "label", "seed", "run"], kind="stable",
                                          ignore_index=True)


def summary(records: list[dict], runs: pd.DataFrame) -> pd.DataFrame:
    """Per model × corpus: mean ± sd over seeds, and a bootstrap CI of the seed-averaged model."""
    ok = [r for r in records if r["status"] == "ok"]
    rows = []
    frame = runs[runs.status == "ok"]
    for key, group in frame.groupby(["label", *GROUP], sort=True):
        label, corpus, protocol, fingerprint = key
        members = [r for r in ok if r["_label"] == label and r["corpus"]["name"] == corpus
                   and r["config"].get("protocol") == protocol
                   and (r["corpus"].get("fingerprint") or "")[:12] == fingerprint]
        losses = [x for x in (_losses(r) for r in members) if x is not None]
        low = high = np.nan
        if losses and len({len(x) for x in losses}) == 1:
            lo, hi = bootstrap_mean_ci(np.mean(losses, axis=0), 1000, 0)
            low, high = np.exp(lo), np.exp(hi)
        rows.append({
            "model": label, "corpus": corpus, "protocol": protocol, "fingerprint": fingerprint,
            "seeds": len(group), "test_ppl": group.test_ppl.mean(),
            "test_ppl_sd": group.test_ppl.std(ddof=1) if len(group) > 1 else 0.0,
            "ci_lo": low, "ci_hi": high, "test_bpc": group.test_bpc.mean(),
            "test_bpc_sd": group.test_bpc.std(ddof=1) if len(group) > 1 else 0.0,
            "valid_ppl": group.valid_ppl.mean(), "params": group.params.median(),
            "train_s": group.train_s.mean(),
            "mixed_hardware": group.hardware.nunique() > 1,
        })
    table = pd.DataFrame(rows)
    return table.sort_values(["corpus", "protocol", "test_ppl"]).reset_index(drop=True) if rows else table


def pairs(records: list[dict]) -> pd.DataFrame:
    """Paired bootstrap on per-token test losses for every pair of models scored on the same tokens."""
    averaged = {}
    for r in records:
        losses = _losses(r) if r["status"] == "ok" else None
        if losses is None:
            continue
        key = (r["corpus"]["name"], r["config"].get("protocol"), r["corpus"]["fingerprint"][:12])
        averaged.setdefault(key, {}).setdefault(r["_label"], []).append(losses)
    rows = []
    for (corpus, protocol, fingerprint), by_label in sorted(averaged.items()):
        means = {label: np.mean(x, axis=0) for label, x in sorted(by_label.items())}
        for a, b in combinations(sorted(means), 2):
            test = paired_bootstrap(means[a], means[b])
            rows.append({"corpus": corpus, "protocol": protocol, "fingerprint": fingerprint,
                         "model_a": a, "model_b": b, **test,
                         "better": (b if test["diff"] > 0 else a) if test["significant"] else "neither"})
    return pd.DataFrame(rows)


def histories(records: list[dict]) -> pd.DataFrame:
    """Validation perplexity per epoch, with the cumulative training + validation wall time."""
    rows = []
    for r in records:
        elapsed = 0.0
        for point in (r.get("train") or {}).get("history", []):
            elapsed += (point.get("train_seconds") or 0.0) + (point.get("valid_seconds") or 0.0)
            if point.get("valid_ppl") is not None:
                rows.append({"label": r["_label"], "corpus": r["corpus"]["name"],
                             "seed": r["config"].get("seed"), "epoch": point.get("epoch"),
                             "seconds": elapsed, "valid_ppl": point["valid_ppl"]})
    return pd.DataFrame(rows)


def ngram_orders(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        orders = ((r.get("train") or {}).get("ngram") or {}).get("orders", [])
        total = 0.0
        for level in sorted(orders, key=lambda o: o["order"]):
            total += level.get("bytes", 0) / 2**20
            rows.append({"label": r["_label"], "corpus": r["corpus"]["name"], "order": level["order"],
                         "ngrams": level.get("ngrams"), "cumulative_mb": total,
                         "test_unseen_fraction": level.get("test_unseen_fraction")})
    return pd.DataFrame(rows)


def diagnostics_figures(root: Path, records: list[dict], folder: Path) -> list[Path]:
    """Copies of the PNGs ``python -m lmbench.diagnose`` left beside records, and of its
    comparison plots (in ``diagnostics/`` folders of the runs' common parent)."""
    copies = []
    for r in records:
        for png in sorted((Path(r["_path"]).parent / "diagnostics").glob("*.png")):
            name = f"diagnostics_{r['_label']}_{r['corpus']['name']}_s{r['config'].get('seed')}_{png.name}"
            copies.append(folder / name.replace(" ", "_").replace("/", "_"))
            copies[-1].write_bytes(png.read_bytes())
    for png in sorted(Path(root).rglob("diagnostics/*.png")):
        if not (png.parent.parent / "record.json").exists():
            where = png.parent.parent.relative_to(root).as_posix().replace("/", "_") or "root"
            copies.append(folder / f"diagnostics_{where}_{png.name}")
            copies[-1].write_bytes(png.read_bytes())
    return copies


def floors(records: list[dict]) -> dict:
    found = {}
    for r in records:
        if r.get("floor"):
            found.setdefault(r["corpus"]["name"], r["floor"]["ppl"])
        if r["model"] == "oracle" and r["status"] == "ok":
            found.setdefault(r["corpus"]["name"], r["metrics"]["test"]["ppl"])
    return found


def environment(records: list[dict]) -> tuple[dict, list[str]]:
    """What the runs ran on, and warnings where figures come from mixed sources."""
    env = {
        "hardware": sorted({f"{r.get('hardware', {}).get('cpu')} ({r.get('hardware', {}).get('cores')} "
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


def _fmt(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4g") if not frame.empty else "(none)"


def _tex(frame: pd.DataFrame) -> str:
    return frame.to_latex(index=False, float_format="%.4g", na_rep="--") if not frame.empty else ""


def build(root: Path, out: Path | None = None) -> dict:
    """Write every table, plot and the report for the records below ``root``; returns a summary."""
    out = Path(out or root)
    records, skipped = collect(root)
    for note in skipped:
        print(f"skipped unreadable record {note}", file=sys.stderr)
    write_tables(out, records)
    label_runs(records)
    runs = _runs(records) if records else pd.DataFrame()
    env, warnings = environment(records)
    tables = {
        "summary": summary(records, runs) if records else pd.DataFrame(),
        "pairs": pairs(records),
        "memory": runs[["label", "corpus", "seed", "params", "model_mb", "peak_rss_mb", "peak_cuda_mb",
                        "shared_process"]] if records else pd.DataFrame(),
        "speed": runs[["label", "corpus", "seed", "train_tok_s", "eval_tok_s", "train_s", "wall_s",
                       "hardware", "concurrent"]] if records else pd.DataFrame(),
    }
    orders = ngram_orders(records)
    for name, frame in tables.items():
        atomic_write_text(out / f"{name}.csv", frame.to_csv(index=False))
        atomic_write_text(out / f"{name}.tex", _tex(frame))
    figure_dir = out / "plots"
    figure_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    if records:
        curve_data, floor = histories(records), floors(records)
        if not curve_data.empty:
            figures += plots.learning_curves(curve_data, floor, figure_dir)
        ok = tables["summary"]
        if not ok.empty:
            figures += plots.tradeoffs(ok.rename(columns={"model": "label"}), floor, figure_dir)
        if not orders.empty:
            figures += plots.ngram_growth(orders, figure_dir)
        figures += diagnostics_figures(root, records, figure_dir)
    _write_documents(out, records, runs, tables, orders, env, warnings, skipped, figures)
    return {"records": len(records), "skipped": len(skipped), "figures": [str(f) for f in figures],
            "console": console_table(tables["summary"], floors(records), runs)}


def console_table(summary_table: pd.DataFrame, floor: dict, runs: pd.DataFrame) -> str:
    """The summary a terminal can show: test perplexity per model, the oracle floor, failures."""
    columns = ["model", "corpus", "seeds", "test_ppl", "test_ppl_sd", "test_bpc", "params", "train_s"]
    formats = ("", "", "", ".4g", ".2g", ".4g", ",.0f", ".1f")
    lines = [summary_table[columns].to_markdown(index=False, floatfmt=formats)
             if not summary_table.empty else "(no finished runs)"]
    lines += [f"oracle floor on {corpus}: test ppl {ppl:.4g} (no model can beat it)"
              for corpus, ppl in sorted(floor.items())]
    failed = runs[runs.status != "ok"] if not runs.empty else runs
    lines += [f"{row.status}: {row.label} seed {row.seed} ({row.command}) {row.error}".rstrip()
              for row in failed.itertuples()]
    return "\n".join(lines)


def _write_documents(out, records, runs, tables, orders, env, warnings, skipped, figures) -> None:
    failed = runs[runs.status != "ok"] if not runs.empty else runs
    sections = [
        ("Perplexity and bits per character",
         "Mean ± sd over seeds; the 95% interval is a block bootstrap over the seed-averaged "
         "per-token test losses.", tables["summary"]),
        ("Paired comparisons",
         "Paired block bootstrap of the per-token test-loss difference (nats/token, a − b) on the "
         "same tokens; `significant` when the 95% interval excludes 0.", tables["pairs"]),
        ("Memory", "Peak RSS of the job's process; `shared_process` marks jobs that ran after "
         "others in one process, whose peak includes theirs.", tables["memory"]),
        ("Speed", "`concurrent` marks figures measured while other jobs ran (joblib/submitit "
         "local launchers, or other lmbench jobs seen running): use `hydra/launcher=timing` for clean "
         "timings.", tables["speed"]),
        ("n-gram storage and sparsity per order", "", orders),
        ("Failed or diverged runs", "", failed[["label", "corpus", "seed", "status", "error", "command"]]
         if not failed.empty else failed),
    ]
    commands = runs[["label", "corpus", "seed", "status", "command"]] if not runs.empty else runs
    lines = ["# lmbench report", "", f"{len(records)} runs; {len(skipped)} unreadable records skipped.", ""]
    lines += [f"> **Warning:** {w}" for w in warnings] + ([""] if warnings else [])
    for title, note, frame in sections:
        lines += [f"## {title}", "", note, "", _fmt(frame), ""]
    lines += ["## Plots", ""] + [f"![{f.stem}](plots/{f.name})" for f in figures] + [""]
    lines += ["## Environment", "", "```", json.dumps(env, indent=2), "```", "",
              "## Commands that regenerate each row", "", _fmt(commands), ""]
    atomic_write_text(out / "report.md", "\n".join(lines))

    body = [f"<h1>lmbench report</h1><p>{len(records)} runs; {len(skipped)} unreadable records skipped.</p>"]
    body += [f"<p class='warn'>Warning: {html.escape(w)}</p>" for w in warnings]
    for title, note, frame in sections:
        body += [f"<h2>{html.escape(title)}</h2><p>{html.escape(note)}</p>",
                 frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–")
                 if not frame.empty else "<p>(none)</p>"]
    body.append("<h2>Plots</h2>")
    for figure in figures:
        data = base64.b64encode(figure.read_bytes()).decode()
        body.append(f"<figure><img alt='{figure.stem}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{figure.stem}</figcaption></figure>")
    body += ["<h2>Environment</h2><pre>", html.escape(json.dumps(env, indent=2)), "</pre>",
             "<h2>Commands that regenerate each row</h2>",
             commands.to_html(index=False) if not commands.empty else ""]
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse;"
             "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}"
             ".warn{color:#a00}pre{white-space:pre-wrap}")
    atomic_write_text(out / "report.html", f"<!doctype html><html><head><meta charset='utf-8'>"
                      f"<title>lmbench report</title><style>{style}</style></head><body>"
                      + "\n".join(body) + "</body></html>")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, nargs="?", default=Path("results"),
                        help="folder searched recursively for record.json files")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: ROOT)")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        sys.exit(f"error: {args.root} is not a folder of run records.")
    result = build(args.root, args.out)
    out = args.out or args.root
    print(f"{result['records']} records -> {out / 'report.md'}, {out / 'report.html'}, "
          f"{len(result['figures'])} plots")


if __name__ == "__main__":
    main()
