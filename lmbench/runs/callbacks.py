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
        """Count the jobs' statuses first, so the exit status never depends on the report: a report
        that cannot be built is logged with its error and fails the sweep too."""
        from lmbench import report  # matplotlib and the report load only for a sweep's end

        sweep_dir = Path(str(config.hydra.sweep.dir))
        runs, skipped = find_runs(sweep_dir)
        statuses = Counter(run.record["status"] for run in runs)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        try:
            built = report.build(sweep_dir)
            refresh_tables(Path(str(config.results_dir)))
        except Exception as exc:  # any failure of the summary code: say it, and fail the sweep
            log.exception("the sweep's report could not be built (%s: %s)", type(exc).__name__, exc)
            built = None
        log.info("sweep finished: %s (records in %s; report %s)", summary or "no records", sweep_dir,
                 sweep_dir / "report.html")
        for note in skipped:
            log.warning("unreadable record %s", note)
        if built is not None:
            print(f"\n{built['console']}\n\nreport: {sweep_dir / 'report.html'} (and report.md, tables, "
                  f"plots beside it)", flush=True)
        if statuses["failed"] or statuses["diverged"] or built is None:
            unbuilt = "; the report could not be built (see the log)" if built is None else ""
            print(f"sweep: {statuses['failed']} failed, {statuses['diverged']} diverged of {len(runs)} "
                  f"jobs{unbuilt}", file=sys.stderr)
            sys.exit(1)
