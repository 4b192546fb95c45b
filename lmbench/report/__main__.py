"""``python -m lmbench.report DIR [--out OUT]``."""

from lmbench.report import main

main()
