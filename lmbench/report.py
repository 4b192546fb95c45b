"""``python -m lmbench.report DIR``: rebuild the results tables from every record below DIR."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmbench.records import collect, write_tables


def build(root: Path) -> int:
    records, skipped = collect(root)
    for note in skipped:
        print(f"skipped unreadable record {note}", file=sys.stderr)
    frame = write_tables(root, records)
    print(f"{len(records)} records -> {root / 'table.md'} and {root / 'table.csv'}")
    if not frame.empty:
        print(frame[["model", "corpus", "protocol", "seed", "status", "test_ppl", "test_bpc"]]
              .to_markdown(index=False, floatfmt=".4g"))
    return len(records)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path, nargs="?", default=Path("results"),
                        help="folder searched recursively for record.json files")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        sys.exit(f"error: {args.root} is not a folder of run records.")
    build(args.root)


if __name__ == "__main__":
    main()
