"""What a corpus loader returns: the token constants every module shares, ``RawCorpus``, and the
default way a loader names its sources' content."""

from __future__ import annotations

from dataclasses import dataclass, field

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")


@dataclass
class RawCorpus:
    """What a loader hands back: per split, a text (char level) or a list of word tokens with
    ``<eos>`` ending each line (word level), and facts for ``Corpus.meta``."""

    splits: dict[str, str | list[str]]
    meta: dict = field(default_factory=dict)


def declared_hashes(cfg) -> list[str]:
    """The sha256 of every canonical source file the config declares."""
    files = list(cfg.files.values()) if "files" in cfg else [cfg.file] if "file" in cfg else []
    return sorted(f.sha256 for f in files)
