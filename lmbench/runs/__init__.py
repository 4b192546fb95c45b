"""Run bookkeeping around the core: one job's phases (``run``), its folder (``rundir``), the job's
identity and resumption (``jobs``), the record's layout and the tables (``records``), checkpoints,
the checks before a folder exists (``preflight``), provenance, and the sweep's summary (``callbacks``)."""
