"""Published results beside ours: the figure a run reproduces, how far ours is from it, and whether
it meets the goal its recipe sets (``published.tolerance`` or ``published.at_most``)."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import OmegaConf

from lmbench import paths


def comparison(record: dict) -> dict | None:
    """The record's published figure against its own, or None when its config names no published row."""
    published = (record.get("config") or {}).get("published") or {}
    if not published.get("row") and published.get("value") is None and published.get("at_most") is None:
        return None
    split, key = published.get("metric", "test_ppl").split("_")
    ours = ((record.get("metrics") or {}).get(split) or {}).get(key)
    value, tolerance, at_most = published.get("value"), published.get("tolerance"), published.get("at_most")
    diff = None if value is None or ours is None else (ours - value) / value
    beats, by = published.get("beats_rows"), published.get("beats_by")
    if beats:
        goal, met = f"≥ {100 * (by or 0):g}% below the best of {', '.join(beats)}", None
    elif tolerance is not None:
        goal, met = f"within {100 * tolerance:g}%", None if diff is None else abs(diff) <= tolerance
    elif at_most is not None:
        goal, met = f"≤ {at_most:g}", None if ours is None else ours <= at_most
    else:
        goal, met = "report", None
    return {"row": published.get("row") or record.get("model"), "metric": f"{split} {key}",
            "published": value, "source": published.get("source"), "ours": ours,
            "diff_pct": None if diff is None else 100 * diff, "goal": goal, "met": met,
            "beats_rows": list(beats or []), "beats_by": by or 0.0}


def line(record: dict) -> str | None:
    """One line for the console: published, ours, the difference and the goal."""
    c = comparison(record)
    if c is None:
        return None
    published = "-" if c["published"] is None else f"{c['published']:g}"
    ours = "-" if c["ours"] is None else f"{c['ours']:.2f}"
    diff = "" if c["diff_pct"] is None else f" ({c['diff_pct']:+.1f}%)"
    verdict = {True: "met", False: "NOT met", None: "-"}[c["met"]]
    return (f"{c['row']}: {c['metric']} published {published} [{c['source'] or 'no source'}], "
            f"lmbench {ours}{diff}; goal {c['goal']}: {verdict}")


def judge_relative(rows: list[dict]) -> list[dict]:
    """Rows (comparisons with their ``corpus``) whose goal names other rows, judged against the best
    of those found on the same corpus; the goal then names that row and the margin reached."""
    for row in rows:
        rivals = [r for r in rows if r["row"] in row["beats_rows"] and r["corpus"] == row["corpus"]
                  and r["ours"] is not None]
        if not rivals or row["ours"] is None:
            continue
        best = min(rivals, key=lambda r: r["ours"])
        margin = 1 - row["ours"] / best["ours"]
        row["goal"] = (f"≥ {100 * row['beats_by']:g}% below {best['row']} ({best['ours']:.1f}): "
                       f"{100 * margin:.1f}%")
        row["met"] = margin >= row["beats_by"]
    return rows


def orderings() -> dict[str, list[dict]]:
    """The published orderings the report checks, per experiment (``conf/orderings.yaml``): each a
    ``rows`` label, a ``source`` and an ``order``."""
    return OmegaConf.to_container(OmegaConf.load(paths.conf_dir() / "orderings.yaml"))


def check_order(order: list[list[str]], ours: dict[str, float],
                pair: Callable[[str, str], dict | None]) -> dict:
    """Whether the rows we have keep a published ordering (groups of row names, best first): every row
    of a group below every row of the next group that has rows here, each such pair significantly.
    ``ours``: row name -> our figure; ``pair(a, b)``: the paired test of rows a and b, or None."""
    groups = [[row for row in group if row in ours] for group in order]
    groups = [group for group in groups if group]
    pairs = []
    for better, worse in zip(groups, groups[1:]):
        for a in better:
            for b in worse:
                test = pair(a, b) or {}
                pairs.append({"better": a, "worse": b, "in_order": ours[a] < ours[b],
                              "p_value": test.get("p_value"), "significant": bool(test.get("significant"))})
    missing = [row for group in order for row in group if row not in ours]
    return {"pairs": pairs, "missing": missing,
            "holds": all(p["in_order"] and p["significant"] for p in pairs)}
