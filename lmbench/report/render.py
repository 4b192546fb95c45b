"""The report in three forms from one set of formatted tables: Markdown, self-contained HTML (no
JavaScript, no network, prints well) and the console's text."""

from __future__ import annotations

import base64
import html
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lmbench.plots import KIND_COLOURS, colour
from lmbench.report.tables import MISSING, Group, flatten

LEADERBOARD_NOTE = ("Best first. Test perplexity is the mean over seeds with a 95% block-bootstrap "
                    "interval of the seed-averaged model; bpc is bits per character of the test text; "
                    "train speed is training tokens per second; budget is what bounded training and "
                    "what stopped it.")
MATRIX_NOTE = ("Each cell is the row model's mean test loss minus the column model's, in nats/token, "
               "on the same tokens (negative: the row model is better). Green: the row model is "
               "significantly better; red: significantly worse; grey and *n.s.*: not significant "
               "(paired block bootstrap, 95%).")
DETAILS = [
    ("pairs", "Paired comparisons", "Every pair of models scored on the same tokens: the mean "
     "per-token test-loss difference a − b, its 95% paired block-bootstrap interval and two-sided "
     "p-value (below the bootstrap's resolution it is printed as a bound)."),
    ("memory", "Memory", "Peak RSS of the job's process; *shared process* marks jobs that ran after "
     "others in one process, whose peak includes theirs."),
    ("speed", "Speed", "*achieved* is the training arithmetic per second (the model's training FLOPs "
     "per token times its training tokens per second), *of peak* its share of this machine's "
     "matrix-multiply peak at the run's precision and threads. *concurrent* marks figures measured "
     "while other jobs ran (joblib/submitit local launchers, or other lmbench jobs seen running): use "
     "`hydra/launcher=timing` for clean timings."),
    ("ngram", "n-gram storage and sparsity per order", ""),
    ("failed", "Failed or diverged runs", "Each with its error and, where there is one, its log."),
]
CAPTIONS = {"tradeoffs": "test perplexity against parameters and against training time, with the "
                         "Pareto front",
            "curves": "validation perplexity against training tokens (data efficiency) and against "
                      "wall time",
            "significance": "the paired comparisons as a matrix",
            "ngram": "n-gram storage and sparsity against order"}
# right-aligned cells: 233.5 [227.6, 238.5], 46 k tok/s, ± 1.9, < 0.002, −0.004 n.s., 2.5 min (or missing)
NUMERIC = re.compile(rf"^{MISSING}$"
                     r"|^(< |± )?[−+]?[0-9][0-9.,]*( ?(\[[^\]]*\]|k|M|G|%|s|min|h|MB|GB|tok/s|n\.s\.))*$")


@dataclass
class Report:
    """Everything the three forms show."""

    title: str
    kind: str  # what the report compares: the budget kind
    intro: str
    findings: list[str]
    flags: list[str]
    groups: list[Group]
    details: dict
    diagnostics: list[Path]
    environment: dict


def caption(figure: Path) -> str:
    prefix, _, rest = figure.stem.partition("_")
    return f"{rest}: {CAPTIONS[prefix]}" if prefix in CAPTIONS else figure.stem


# Markdown

def _md_table(frame: pd.DataFrame) -> str:
    frame = flatten(frame)
    if frame.empty:
        return "(none)"
    if "log" in frame:
        frame = frame.assign(log=[f"[log]({x})" if x not in ("", MISSING) else "" for x in frame.log])
    rows = ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |"
            for row in [frame.columns, *frame.values.tolist()]]
    align = ["---:" if all(map(NUMERIC.match, frame[c])) else ":---" for c in frame.columns]
    return "\n".join([rows[0], "|" + "|".join(align) + "|", *rows[1:]])


def markdown(report: Report) -> str:
    lines = [f"# {report.title}", "", f"**Compares:** {report.kind}", "", report.intro, "",
             "## Findings", ""]
    lines += [f"- {line}" for line in report.findings]
    lines += [f"- **{line}**" for line in report.flags] + [""]
    for group in report.groups:
        lines += [f"## Perplexity on {group.title}", ""]
        lines += [f"**Compares:** {group.budget}", ""] if group.budget != report.kind else []
        lines += [_md_table(group.leaderboard), "", LEADERBOARD_NOTE, "",
                  f"### Significance on {group.title}", "", MATRIX_NOTE, "",
                  _md_table(group.matrix.reset_index(names="row − column")), ""]
        lines += [f"![{caption(f)}](plots/{f.name})" for f in group.figures] + [""]
    for key, title, note in DETAILS:
        lines += [f"## {title}", ""] + ([note, ""] if note else [])
        lines += [_md_table(report.details.get(key, pd.DataFrame())), ""]
    if report.diagnostics:
        lines += ["## Diagnostics", ""] + [f"![{f.stem}](plots/{f.name})" for f in report.diagnostics] + [""]
    lines += ["## Environment", "", _md_table(report.details.get("provenance", pd.DataFrame())), "",
              "```", json.dumps(report.environment, indent=2), "```", "",
              "## Commands that regenerate each row", "",
              _md_table(report.details.get("commands", pd.DataFrame())), ""]
    return "\n".join(lines)


# HTML

def _inline(text: str) -> str:
    """Escaped text with Markdown's **bold**, *italic* and `code` as HTML."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"\*(.+?)\*", r"<em>\1</em>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _swatch(family: str) -> str:
    return f"<span class='sw' style='background:{colour(family)}'></span>"


def _html_table(frame: pd.DataFrame, cls: str = "", families: list[str] | None = None) -> str:
    frame = flatten(frame)
    if frame.empty:
        return "<p>(none)</p>"
    numeric = {c for c in frame.columns if all(map(NUMERIC.match, frame[c]))}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for i, values in enumerate(frame.itertuples(index=False)):
        cells = []
        for column, value in zip(frame.columns, values):
            if column == "log":
                text = f"<a href='{html.escape(value)}'>log</a>" if value not in ("", MISSING) else ""
            elif column == "model" and families:
                text = _swatch(families[i]) + html.escape(value)
            else:
                text = html.escape(value)
            cells.append(f"<td class='num'>{text}</td>" if column in numeric else f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class='wide'><table class='{cls}'><thead><tr>{head}</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>")


def _html_matrix(group: Group) -> str:
    order = list(group.matrix.index)
    head = "".join(f"<th>{_swatch(f)}{html.escape(m)}</th>" for m, f in zip(order, group.families))
    rows = []
    for row, family in zip(order, group.families):
        cells = "".join(f"<td class='{group.matrix_kind.loc[row, col]}' "
                        f"title='{html.escape(group.matrix_note.loc[row, col])}'>"
                        f"{html.escape(group.matrix.loc[row, col]) if row != col else ''}</td>"
                        for col in order)
        rows.append(f"<tr><th>{_swatch(family)}{html.escape(row)}</th>{cells}</tr>")
    return (f"<div class='wide'><table class='matrix'><thead><tr><th>row − column</th>{head}</tr>"
            f"</thead><tbody>" + "".join(rows) + "</tbody></table></div>")


def _figure(path: Path, text: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f"<figure><img alt='{html.escape(text)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(text)}</figcaption></figure>")


STYLE = """
body{font:15px/1.45 "DejaVu Sans",system-ui,sans-serif;max-width:1120px;margin:0 auto;
padding:0 16px 2em;color:#1b1b1b}
h1{font-size:1.55em;margin:.5em 0 .1em}h2{font-size:1.25em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
h3{font-size:1.05em;margin:1em 0 .3em}.kind{margin:0 0 .3em;font-size:1.05em}.intro{margin:0;color:#555}
.findings{background:#f4f7fb;border-left:4px solid #1f77b4;padding:.4em 1em .4em 1.8em;margin:.6em 0}
.findings li{margin:.25em 0}.flag{color:#a00000;font-weight:600}
table{border-collapse:collapse;font-size:13px;margin:.4em 0}
td,th{border:1px solid #cfcfcf;padding:3px 7px;text-align:left;vertical-align:top}
thead th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.leaderboard tbody tr:first-child{font-weight:700}.note{color:#555;font-size:13px;margin:.2em 0 .8em}
.sw{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.4em;vertical-align:-1px}
table.matrix td{text-align:center;white-space:nowrap;min-width:5.5em}table.matrix th{white-space:nowrap}
.ns{color:#555}
figure{margin:.8em 0;break-inside:avoid}img{max-width:100%;height:auto}figcaption{font-size:13px;color:#555}
pre{white-space:pre-wrap;font-size:12px}td{overflow-wrap:break-word}.wide{overflow-x:auto}
@media print{body{max-width:none;font-size:10pt;padding:0}a{color:inherit}h2,h3{break-after:avoid}
table{font-size:7.5pt}td,th{padding:1px 3px}.wide{overflow:visible}
table,figure,tr,.findings{break-inside:avoid}*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
img{max-height:9cm;width:auto}}
@page{size:A4;margin:1.5cm}
""".strip().replace("\n", "")


def page(report: Report) -> str:
    body = [f"<header><h1>{html.escape(report.title)}</h1><p class='kind'><strong>Compares:</strong> "
            f"{html.escape(report.kind)}</p><p class='intro'>{_inline(report.intro)}</p></header>",
            "<section id='findings'><h2>Findings</h2><ul class='findings'>"
            + "".join(f"<li>{_inline(line)}</li>" for line in report.findings)
            + "".join(f"<li class='flag'>{_inline(line)}</li>" for line in report.flags) + "</ul></section>"]
    for n, group in enumerate(report.groups):
        body += [f"<section class='group' id='group-{n}'><h2>Perplexity on {html.escape(group.title)}</h2>",
                 f"<p><strong>Compares:</strong> {html.escape(group.budget)}</p>"
                 if group.budget != report.kind else "",
                 _html_table(group.leaderboard, "leaderboard", group.families),
                 f"<p class='note'>{_inline(LEADERBOARD_NOTE)}</p>",
                 f"<h3>Significance on {html.escape(group.title)}</h3>", _html_matrix(group),
                 f"<p class='note'>{_inline(MATRIX_NOTE)}</p>"]
        body += [_figure(f, caption(f)) for f in group.figures if not f.stem.startswith("significance")]
        body.append("</section>")
    for key, title, note in DETAILS:
        body += [f"<section id='{key}'><h2>{html.escape(title)}</h2>"
                 + (f"<p class='note'>{_inline(note)}</p>" if note else "")
                 + _html_table(report.details.get(key, pd.DataFrame())) + "</section>"]
    if report.diagnostics:
        body += ["<section id='diagnostics'><h2>Diagnostics</h2>"]
        body += [_figure(f, f.stem) for f in report.diagnostics] + ["</section>"]
    body += ["<section id='environment'><h2>Environment</h2>",
             _html_table(report.details.get("provenance", pd.DataFrame())),
             f"<pre>{html.escape(json.dumps(report.environment, indent=2))}</pre></section>",
             "<section id='commands'><h2>Commands that regenerate each row</h2>",
             _html_table(report.details.get("commands", pd.DataFrame())), "</section>"]
    colours = "".join(f".{k}{{background:{v}}}" for k, v in KIND_COLOURS.items())
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(report.title)} · {html.escape(report.kind)}</title>"
            f"<style>{STYLE}{colours}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# Console

def console(report: Report) -> str:
    """The findings, each leaderboard and the failures, for a terminal."""
    lines = [f"{report.title} · {report.kind}"]
    for line in report.findings + report.flags:  # without Markdown's **, * and `
        plain = re.sub(r"\*\*(.+?)\*\*|\*(.+?)\*|`(.+?)`", lambda m: next(g for g in m.groups() if g), line)
        lines.append(textwrap.fill(plain, 100, initial_indent="- ", subsequent_indent="  "))
    for group in report.groups:
        board = flatten(group.leaderboard)
        align = ["right" if all(map(NUMERIC.match, board[c])) else "left" for c in board.columns]
        lines += ["", group.title + (f" · {group.budget}" if group.budget != report.kind else ""),
                  board.to_markdown(index=False, tablefmt="simple", disable_numparse=True, colalign=align)]
    if not report.groups:
        lines.append("(no finished runs)")
    failures = [f"{r.status}: {r.model} seed {r.seed} ({r.command}) {r.error}".rstrip()
                for r in report.details.get("failed", pd.DataFrame()).itertuples()]
    return "\n".join(lines + ([""] + failures if failures else []))
