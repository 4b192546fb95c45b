"""The report's words and tables for people: numbers formatted once (``233.5 [227.6, 238.5]``,
``0.36 M``, ``46 k``, ``31 s``), so Markdown, HTML and the console all show the same content.
The CSV and LaTeX tables keep full precision; they are written from ``frames``, not from here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from lmbench.models import COUNT_BASED
from lmbench.published import check_order, orderings
from lmbench.report.frames import BOOTSTRAP_SAMPLES, GROUP

MISSING = "–"
MINUS = "−"
STOPPED = {"early_stopping": "converged", "max_minutes": "time up", "max_epochs": "epoch cap",
           "max_tokens": "token cap", "diverged": "diverged"}


def _missing(x) -> bool:
    """None, NaN or ±inf (an exploded loss's perplexity): shown as ``–``, never formatted."""
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def _sig(x: float) -> str:
    return f"{x:.2g}" if abs(x) < 10 else f"{x:.0f}"


def count(x, scale: float | None = None) -> str:
    """Tokens, tokens/s, parameters: ``46 k``, ``1.7 M``, ``950``; ``scale`` fixes the prefix
    (``0.36 M`` with scale 1e6), so that a column can share one."""
    if _missing(x):
        return MISSING
    scale = scale or next((s for s in (1e9, 1e6, 1e3) if abs(x) >= s), 1)
    return _sig(x / scale) + {1e9: " G", 1e6: " M", 1e3: " k", 1: ""}[scale]


def counts(values: pd.Series) -> pd.Series:
    """A column of counts with one prefix, chosen by its largest value (``0.36 M`` beside ``1.2 M``)."""
    top = values.abs().max()
    scale = None if _missing(top) else next((s for s in (1e9, 1e6, 1e3) if top >= 0.1 * s), 1)
    return values.map(lambda x: count(x, scale))


def duration(seconds) -> str:
    """``0.12 s``, ``31 s``, ``2.5 min``, ``1.3 h``."""
    if _missing(seconds):
        return MISSING
    if seconds < 99.5:
        return f"{_sig(seconds)} s"
    if seconds < 99.5 * 60:
        return f"{_sig(seconds / 60)} min"
    return f"{_sig(seconds / 3600)} h"


def megabytes(mb) -> str:
    if _missing(mb) or mb == 0:
        return MISSING
    return f"{_sig(mb / 1024)} GB" if mb >= 1000 else f"{_sig(mb)} MB"


def decimals(x: float) -> int:
    """Four significant digits for perplexities (``233.5``, ``5.071``), none past the point above 1000."""
    return min(3, max(0, 3 - math.floor(math.log10(abs(x))))) if x and not _missing(x) else 1


def perplexity(x, places: int | None = None) -> str:
    return MISSING if _missing(x) else f"{x:,.{decimals(x) if places is None else places}f}"


def with_interval(x, low, high) -> str:
    """``233.5 [227.6, 238.5]``: the interval printed to the value's precision."""
    if _missing(x):
        return MISSING
    places = decimals(x)
    interval = "" if _missing(low) else f" [{perplexity(low, places)}, {perplexity(high, places)}]"
    return perplexity(x, places) + interval


def p_value(p, samples: int = BOOTSTRAP_SAMPLES) -> str:
    """Two-sided bootstrap p-value; 0 resamples past zero means below the resolution 2/samples."""
    return MISSING if _missing(p) else f"< {2 / samples:g}" if p == 0 else f"{p:.2g}"


def nats(x) -> str:
    return MISSING if _missing(x) else f"{x:+.3f}".replace("-", MINUS)


def percent(x) -> str:
    return MISSING if _missing(x) else f"{x:+.1f}%".replace("-", MINUS)


@dataclass
class Group:
    """One leaderboard: the models scored on the same tokens (corpus, protocol, fingerprint)."""

    corpus: str
    title: str
    level: str  # "word" or "char"
    budget: str
    leaderboard: pd.DataFrame
    families: list[str]
    matrix: pd.DataFrame
    matrix_kind: pd.DataFrame  # "better", "worse", "ns", "none" or "self": the row model against the column's
    matrix_note: pd.DataFrame  # interval and p-value of each cell
    findings: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def _budget_cell(rows: pd.DataFrame) -> str:
    """What bounded a model's training, and what stopped it (per seed when seeds differ)."""
    if rows.model.iloc[0] in COUNT_BASED:
        return "counts (no budget)"
    if rows.model.iloc[0] == "mix":
        return "mixture of finished runs"
    minutes, tokens = rows.budget_min.dropna(), rows.budget_tokens.dropna()
    budget = (f"{minutes.iloc[0]:g} min" if len(minutes) else
              f"{count(tokens.iloc[0])} tok" if len(tokens) else f"≤ {rows.max_epochs.max():g} epochs")
    stops = rows.stopped_by.dropna().map(lambda s: STOPPED.get(s, s)).value_counts()
    if len(stops) <= 1:
        return " · ".join([budget, *stops.index])
    return f"{budget} · " + ", ".join(f"{name} ×{n}" for name, n in sorted(stops.items()))


def leaderboard(summary: pd.DataFrame, runs: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """One group's rows, best first, formatted for reading."""
    ok = dict(list(runs[runs.status == "ok"].groupby(["label", *GROUP])))
    several = (summary.seeds > 1).any()
    parameters = counts(summary.params)
    rows = []
    for rank, row in enumerate(summary.itertuples(), 1):
        members = ok[(row.model, row.corpus, row.protocol, row.fingerprint)]
        line = {"#": str(rank), "model": row.model,
                "test perplexity [95% CI]": with_interval(row.test_ppl, row.ci_lo, row.ci_hi)}
        if several:
            line["± sd"] = MISSING if row.seeds < 2 or _missing(row.test_ppl_sd) \
                else f"± {row.test_ppl_sd:.{decimals(row.test_ppl)}f}"
            line["seeds"] = str(row.seeds)
        line |= {"bpc": MISSING if _missing(row.test_bpc) else f"{row.test_bpc:.3f}",
                 "parameters": parameters[row.Index], "train time": duration(row.train_s),
                 "train speed": f"{count(members.train_tok_s.mean())} tok/s"
                 if members.train_tok_s.notna().any() else MISSING,
                 "budget": _budget_cell(members)}
        if not published.empty:
            match = published[(published.model == row.model) & (published.corpus == row.corpus)]
            found = match.iloc[0] if len(match) else None
            unjudged = found is None or found.goal == "report"
            metric = "" if found is None or found.metric == "test ppl" else f" ({found.metric})"
            line |= {"published": MISSING if found is None or _missing(found.published)
                     else f"{found.published:g}{metric}",
                     "source": MISSING if found is None or _missing(found.source) else str(found.source),
                     "diff %": MISSING if found is None else percent(found.diff_pct),
                     "goal met": MISSING if unjudged else
                     f"{found.goal}: " + {True: "yes", False: "NO"}.get(found.met, MISSING)}
        rows.append(line)
    return pd.DataFrame(rows)


def matrix(order: list[str], pair_rows: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """Row minus column, mean test loss in nats/token, for every pair; with each cell's kind
    (``none`` where there is no paired test: per-token losses missing)."""
    text = pd.DataFrame("no test", index=order, columns=order)
    kind = pd.DataFrame("none", index=order, columns=order)
    note = pd.DataFrame("", index=order, columns=order)
    for model in order:
        text.loc[model, model], kind.loc[model, model] = MISSING, "self"
    for pair in pair_rows.itertuples():
        for row, col, sign in ((pair.model_a, pair.model_b, 1), (pair.model_b, pair.model_a, -1)):
            if row not in order or col not in order:
                continue
            diff, low, high = sign * pair.diff, *sorted((sign * pair.diff_lo, sign * pair.diff_hi))
            kind.loc[row, col] = ("better" if diff < 0 else "worse") if pair.significant else "ns"
            text.loc[row, col] = nats(diff) + ("" if pair.significant else " n.s.")
            note.loc[row, col] = (f"{row} − {col}: {nats(diff)} nats/token, 95% CI "
                                  f"[{nats(low)}, {nats(high)}], p {_p_words(pair.p_value)}")
    return text, kind, note


def findings(group: Group, summary: pd.DataFrame, pair_rows: pd.DataFrame, floor: float | None,
             published: pd.DataFrame) -> list[str]:
    """The comparison in words: the best model, its margin and whether it is significant, the
    pairs that are not significantly different, the floor, and published goals met."""
    best = summary.iloc[0]
    lines = [_best_line(group, summary, pair_rows)]
    if len(pair_rows):
        lines.append(_significance_line(pair_rows))
    if floor is not None:
        lines.append(f"The exact oracle's floor is {perplexity(floor)}: {best.model} is "
                     f"{100 * (best.test_ppl / floor - 1):.1f}% above it "
                     f"({math.log(best.test_ppl / floor):.3f} nats/token left to learn).")
    if not published.empty:
        judged = published[published.met.notna()]
        ungoaled, parts = len(published) - len(judged), []
        if len(judged):
            parts.append(f"{int(judged.met.astype(bool).sum())} of {len(judged)} rows with a goal meet it")
        if ungoaled:
            parts.append(f"{ungoaled} of {len(published)} rows {'has' if ungoaled == 1 else 'have'} no goal")
        lines.append("Published figures: " + "; ".join(parts) + ".")
        lines += _ordering_lines(published, pair_rows)
    return lines


def _ordering_lines(published: pd.DataFrame, pair_rows: pd.DataFrame) -> list[str]:
    """Whether the rows of each published table on this corpus keep the table's published orderings."""
    lines, known = [], orderings()
    for experiment, rows in published.groupby("experiment"):
        label = dict(zip(rows.row, rows.model))
        ours = {row: x for row, x in zip(rows.row, rows.ours) if not _missing(x)}
        lines += [_ordering_line(spec, ours, lambda a, b, label=label: _pair(pair_rows, label[a], label[b]))
                  for spec in known.get(experiment, [])]
    return lines


def _ordering_line(spec: dict, ours: dict[str, float], pair) -> str:
    """One ordering of ``conf/orderings.yaml`` checked against our figures (``pair``: the paired test)."""
    verdict = check_order(spec["order"], ours, pair)
    chain = " < ".join(" / ".join(group) for group in spec["order"])
    problems = [f"{p['better']} ({ours[p['better']]:.4g}) is not below {p['worse']} "
                f"({ours[p['worse']]:.4g})" for p in verdict["pairs"] if not p["in_order"]]
    problems += [f"{p['better']} vs {p['worse']} not significantly apart "
                 f"({'no paired test' if p['p_value'] is None else 'p ' + _p_words(p['p_value'])})"
                 for p in verdict["pairs"] if p["in_order"] and not p["significant"]]
    so_far = " so far" if verdict["missing"] else ""
    result = f"**kept{so_far}**, every adjacent pair significantly apart" if verdict["holds"] else \
        "**not kept**: " + "; ".join(problems)
    missing = f" Not run yet: {'; '.join(verdict['missing'])}." if verdict["missing"] else ""
    return f"Published ordering over {spec['rows']}, {chain} ({spec['source']}): {result}.{missing}"


def _best_line(group: Group, summary: pd.DataFrame, pair_rows: pd.DataFrame) -> str:
    """The best model, its score, and its margin over the runner-up with the paired test's verdict."""
    best = summary.iloc[0]
    seeds = f" (mean of {best.seeds} seeds)" if best.seeds > 1 else ""
    score = f"test perplexity {with_interval(best.test_ppl, best.ci_lo, best.ci_hi)}{seeds}"
    if group.level == "char" and not _missing(best.test_bpc):
        score = f"{best.test_bpc:.3f} bits per character, {score}"
    line = (f"**{group.title}** ({'characters' if group.level == 'char' else 'words'}): "
            f"**{best.model}** is best, {score}.")
    if len(summary) < 2 or _missing(summary.iloc[1].test_ppl):
        return line
    second = summary.iloc[1]
    pair = _pair(pair_rows, best.model, second.model)
    margin = f"{100 * (1 - best.test_ppl / second.test_ppl):.1f}% lower perplexity than " \
             f"{second.model} ({perplexity(second.test_ppl)})"
    if pair is None:
        return line + f" It has {margin}; no paired test (per-token losses missing)."
    low, high = (100 * (math.exp(x) - 1) for x in (pair["diff_lo"], pair["diff_hi"]))
    verdict = "significant" if pair["significant"] else "**not significant**"
    return line + (f" It has {margin}: {verdict} (paired bootstrap p {_p_words(pair['p_value'])}; "
                   f"95% interval of the perplexity ratio {percent(low)} to {percent(high)}).")


def _significance_line(pair_rows: pd.DataFrame) -> str:
    """Which pairs of models the paired bootstrap cannot tell apart."""
    unclear = pair_rows[~pair_rows.significant]
    if unclear.empty:
        pairs = "The pair of models differs" if len(pair_rows) == 1 else \
            f"All {len(pair_rows)} pairs of models differ"
        return f"{pairs} significantly (paired bootstrap, 95%)."
    listed = "; ".join(f"{p.model_a} vs {p.model_b} (p {_p_words(p.p_value)})" for p in unclear.itertuples())
    return (f"Not significantly different: {listed}. The other {len(pair_rows) - len(unclear)} of "
            f"{len(pair_rows)} pairs differ significantly.")


def _p_words(p: float) -> str:
    text = p_value(p)
    return text if text.startswith("<") else f"= {text}"


def _pair(pair_rows: pd.DataFrame, a: str, b: str) -> dict | None:
    """The paired test of ``a`` against ``b``, oriented as a − b."""
    for pair in pair_rows.to_dict("records"):
        if (pair["model_a"], pair["model_b"]) == (a, b):
            return pair
        if (pair["model_a"], pair["model_b"]) == (b, a):
            return {**pair, "diff": -pair["diff"], "diff_lo": -pair["diff_hi"], "diff_hi": -pair["diff_lo"]}
    return None


def groups(summary: pd.DataFrame, runs: pd.DataFrame, pair_table: pd.DataFrame, floors: dict,
           budgets: dict, published: pd.DataFrame) -> list[Group]:
    """One group per corpus (split further by protocol or corpus fingerprint where they differ), each
    complete but for its figures; with several groups every finding after the first names its group."""
    found = []
    if summary.empty:
        return found
    keys = list(summary[GROUP].drop_duplicates().itertuples(index=False))
    for corpus, protocol, fingerprint in keys:
        title = corpus
        if sum(k[0] == corpus and k[1] != protocol for k in keys):
            title += f", protocol={protocol}"
        if sum(k[0] == corpus and k[2] != fingerprint for k in keys):
            title += f", corpus fingerprint {fingerprint}"
        key = [corpus, protocol, fingerprint]
        rows = summary[summary[GROUP].eq(key).all(axis=1)].reset_index(drop=True)
        pair_rows = pair_table[pair_table[GROUP].eq(key).all(axis=1)] if not pair_table.empty else pair_table
        mine = published[published.corpus == corpus] if not published.empty else published
        families = [runs[runs.label == label].model.iloc[0] for label in rows.model]
        level = runs[runs.corpus == corpus].level.iloc[0]
        group = Group(corpus, title, level, budgets.get(corpus, ""), leaderboard(rows, runs, mine), families,
                      *matrix(list(rows.model), pair_rows))
        lines = findings(group, rows, pair_rows, floors.get(corpus), mine)
        if len(keys) > 1:
            lines = lines[:1] + [f"*{title}*: {line}" for line in lines[1:]]
        found.append(replace(group, findings=lines))
    return found


def flags(runs: pd.DataFrame, warnings: list[str], skipped: list[str]) -> list[str]:
    """What a reader must know before trusting the figures: failures, concurrent timings, mixed sources."""
    lines = [f"Warning: {w}" for w in warnings]
    if runs.empty:
        return lines
    failed = runs[runs.status != "ok"]
    if len(failed):
        named = ", ".join(f"{r.label} seed {r.seed} ({r.status})" for r in failed.itertuples())
        lines.append(f"{len(failed)} of {len(runs)} runs did not finish: {named}; see *Failed or "
                     "diverged runs*.")
    if runs.concurrent.any():
        lines.append(f"{int(runs.concurrent.sum())} runs were timed while other jobs ran: their speed "
                     "figures are not clean (use `hydra/launcher=timing`).")
    if runs.shared_process.any():
        lines.append(f"{int(runs.shared_process.sum())} runs shared a process with earlier jobs: their "
                     "peak memory includes the earlier jobs'.")
    if skipped:
        lines.append(f"{len(skipped)} unreadable records were skipped (named on stderr).")
    return lines


def details(runs: pd.DataFrame, pair_table: pd.DataFrame, orders: pd.DataFrame, out: Path) -> dict:
    """The supporting tables, formatted: every paired test, memory, speed, n-gram storage, failures."""
    tables = {}  # a table left out, or one without rows, shows as "(none)"
    if not pair_table.empty:
        tables["pairs"] = pd.DataFrame({
            "corpus": pair_table.corpus, "a": pair_table.model_a, "b": pair_table.model_b,
            "a − b (nats/token)": pair_table["diff"].map(nats),
            "95% CI": [f"[{nats(lo)}, {nats(hi)}]" for lo, hi in zip(pair_table.diff_lo, pair_table.diff_hi)],
            "p": pair_table.p_value.map(p_value),
            "better": pair_table.better.where(pair_table.significant, "neither (n.s.)"),
        })
    if not orders.empty:
        per_order = orders.groupby(["label", "corpus", "order"], as_index=False).mean(numeric_only=True)
        tables["ngram"] = pd.DataFrame({
            "model": per_order.label, "corpus": per_order.corpus, "order": per_order.order.map(str),
            "n-grams": per_order.ngrams.map(count),
            "storage up to order": per_order.cumulative_mb.map(megabytes),
            "test n-grams unseen": [MISSING if _missing(x) else f"{100 * x:.1f}%"
                                    for x in per_order.test_unseen_fraction],
        })
    if runs.empty:
        return tables
    done = runs[runs.status == "ok"]
    tables["memory"], tables["speed"] = _memory_table(done), _speed_table(done)
    named = runs.assign(model=runs.label, seed=runs.seed.map(str), device=runs.device_name)
    failed = named[named.status != "ok"]
    tables["failed"] = failed[["model", "corpus", "seed", "status", "error", "command"]].assign(
        log=[_relative(log, out) for log in failed.log])
    tables["provenance"] = named[["model", "corpus", "seed", "protocol", "fingerprint", "device", "run"]]
    tables["commands"] = named[["model", "corpus", "seed", "status", "command"]]
    return tables


def _memory_table(done: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "model": done.label, "corpus": done.corpus, "seed": done.seed.map(str),
        "parameters": counts(done.params), "model size": done.model_mb.map(megabytes),
        "peak RSS": done.peak_rss_mb.map(megabytes), "peak CUDA": done.peak_cuda_mb.map(megabytes),
        "shared process": done.shared_process.map({True: "yes", False: ""}),
    })


def _speed_table(done: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "model": done.label, "corpus": done.corpus, "seed": done.seed.map(str),
        "train speed": [MISSING if _missing(x) else f"{count(x)} tok/s" for x in done.train_tok_s],
        "eval speed": [MISSING if _missing(x) else f"{count(x)} tok/s" for x in done.eval_tok_s],
        "train time": done.train_s.map(duration), "wall time": done.wall_s.map(duration),
        "precision": done.precision.fillna(MISSING),
        "achieved": [MISSING if _missing(x) else f"{count(x)}FLOP/s" for x in done.flops_per_s],
        "of peak": [MISSING if _missing(x) else f"{100 * x:.0f}%" for x in done.peak_fraction],
        "device": done.device_name, "concurrent": done.concurrent.map({True: "yes", False: ""}),
    })


def _relative(path: str, out: Path) -> str:
    """A log's path as a link from the report's folder."""
    if not path:
        return ""
    try:
        return Path(path).resolve().relative_to(Path(out).resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_uri()


def flatten(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell a string (missing ones ``–``), ready for any renderer."""
    return frame.map(lambda v: MISSING if _missing(v) else str(v)) if not frame.empty else frame

