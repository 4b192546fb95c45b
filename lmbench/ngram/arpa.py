"""ARPA export, so KenLM, SRILM and friends can load any lmbench n-gram.

Tokens are written as the vocabulary spells them, except: the line-end token becomes ``</s>``,
``<s>`` is added (probability -99, never predicted), and a token that ARPA's whitespace-separated
format cannot hold (empty, containing whitespace, or spelled ``<s>``/``</s>``) is written as
``<0x..>``, the hex of its UTF-8 bytes (so the character-level space is ``<0x20>``). A corpus with
no line-end token still gets a ``</s>`` entry (-99), since KenLM insists on one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lmbench.ngram.backoff import BackoffLM

NEVER = -99.0  # ARPA's log10 of probability zero


def arpa_tokens(itos: list[str], line_end: int | None) -> list[str]:
    """The ARPA spelling of every vocabulary id, then ``<s>``."""
    names = []
    for i, token in enumerate(itos):
        if i == line_end:
            names.append("</s>")
        elif not token or token in ("<s>", "</s>") or any(ch.isspace() for ch in token):
            names.append("<0x" + token.encode().hex() + ">")
        else:
            names.append(token)
    return names + ["<s>"]


def _log10(values: np.ndarray) -> list[str]:
    finite = np.isfinite(values)
    scaled = np.where(finite, values / math.log(10), NEVER)
    return [f"{v:.8g}" for v in scaled]


def write_arpa(lm: BackoffLM, itos: list[str], line_end: int | None, path: str | Path) -> Path:
    """Write ``lm`` as an ARPA file (log10 probabilities and backoffs) and return its path."""
    names = np.array(arpa_tokens(itos, line_end), dtype=object)
    extra = [] if line_end is not None else [f"{NEVER:.8g}\t</s>" + ("\t0" if lm.order > 1 else "")]
    sizes = [len(k) for k in lm.keys]
    sizes[0] += len(extra)
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        f.write("\\data\\\n" + "".join(f"ngram {n}={size}\n" for n, size in enumerate(sizes, 1)))
        text = names
        for n, keys in enumerate(lm.keys, start=1):
            if n > 1:
                text = text[keys // lm.width] + " " + names[keys % lm.width]
            log_p = lm.log_p[n - 1].copy()
            if n == 1:
                log_p[-1] = -np.inf  # <s>
            columns = [_log10(log_p), text]
            if n < lm.order:
                columns.append(_log10(lm.log_bo[n - 1]))
            f.write(f"\n\\{n}-grams:\n")
            f.write("".join("\t".join(row) + "\n" for row in zip(*columns)))
            if n == 1:
                f.write("".join(line + "\n" for line in extra))
        f.write("\n\\end\\\n")
    return path
