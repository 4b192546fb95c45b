"""Hydra callbacks: a sweep ends with a summary, fresh tables, and an exit status that says
whether every job succeeded."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from pathlib import Path

from hydra.experimental.callback import Callback

from lmbench.runs.rundir import find_runs, refresh_tables

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        from lmbench import report  # matplotlib and the report load only for a sweep's end

        sweep_dir = Path(str(config.hydra.sweep.dir))
        runs, skipped = find_runs(sweep_dir)
        statuses = Counter(run.record["status"] for run in runs)
        built = report.build(sweep_dir)
        results_dir = Path(str(config.results_dir))
        refresh_tables(results_dir)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        log.info("sweep finished: %s (records in %s; report %s)", summary or "no records", sweep_dir,
                 sweep_dir / "report.html")
        for note in skipped:
            log.warning("unreadable record %s", note)
        print(f"\n{built['console']}\n\nreport: {sweep_dir / 'report.html'} (and report.md, tables, "
              f"plots beside it)", flush=True)
        if statuses["failed"] or statuses["diverged"]:
            print(f"sweep: {statuses['failed']} failed, {statuses['diverged']} diverged of "
                  f"{len(runs)} jobs", file=sys.stderr)
            sys.exit(1)
