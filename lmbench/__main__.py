"""``python -m lmbench`` / ``lmbench``: the Hydra app that runs one job (or a sweep with ``-m``)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig

from lmbench import config, models
from lmbench.errors import UserError
from lmbench.records import RECORD_NAME

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")

models.names()  # import every model module so their schemas are registered before composition
config.register_all()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg) -> float | None:
    """Run one job; returns the test perplexity (for sweepers that optimise it)."""
    from lmbench.run import run

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        record = run(cfg, run_dir)
    except UserError as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if not (run_dir / RECORD_NAME).exists():  # nothing of a run that never started is kept
            logging.shutdown()
            shutil.rmtree(run_dir, ignore_errors=True)
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
    return record.get("metrics", {}).get("test", {}).get("ppl")


if __name__ == "__main__":
    main()
