"""Corpora as every model sees them: one vocabulary from the training split, id streams per split.

A loader turns a corpus config into token streams; this module builds the vocabulary, encodes the
splits and caches the result under a fingerprint of (source hashes, tokenisation, vocab settings),
which every run record carries, so "same data" is provable rather than assumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from omegaconf import OmegaConf

from lmbench import config
from lmbench.corpora import loaders, synthetic
from lmbench.corpora.fetch import cache_dir, writable_cache
from lmbench.corpora.raw import EOS, SPLITS, UNK, RawCorpus, declared_hashes  # noqa: F401  (re-exported)
from lmbench.errors import CorpusError
from lmbench.files import atomic_write

log = logging.getLogger(__name__)
PREPARE_VERSION = 1  # bump when tokenisation or encoding changes, to invalidate prepared caches


@dataclass(frozen=True)
class Loader:
    """``corpus.loader=<name>``: its config schema, its reader, and how it names its sources'
    content without reading the corpus (for the fingerprint)."""

    schema: type
    read: Callable[..., RawCorpus]
    hashes: Callable[..., list[str]] = declared_hashes


LOADERS = {
    "split_files": Loader(config.SplitFilesCorpusConfig, loaders.load_split_files),
    "one_file": Loader(config.OneFileCorpusConfig, loaders.load_one_file),
    "brown": Loader(config.BrownCorpusConfig, loaders.load_brown),
    "user_file": Loader(config.UserFileCorpusConfig, loaders.load_user_file, loaders.user_hashes),
    "synthetic": Loader(config.SyntheticCorpusConfig, synthetic.load_synthetic, lambda cfg: []),
}


@dataclass
class Vocab:
    """Token strings by id. ``<unk>`` is always present; word-level corpora also have ``<eos>``."""

    itos: list[str]
    stoi: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def unk(self) -> int:
        return self.stoi[UNK]

    def encode(self, tokens) -> np.ndarray:
        unk = self.unk
        return np.fromiter((self.stoi.get(t, unk) for t in tokens), dtype=np.int32, count=len(tokens))

    def decode(self, ids) -> list[str]:
        return [self.itos[i] for i in ids]


@dataclass
class Corpus:
    """A prepared corpus: vocabulary, one int32 id stream per split, and facts for the record."""

    name: str
    level: str  # "char" or "word"
    vocab: Vocab
    splits: Mapping[str, np.ndarray]  # a dict, or the prepared file's ``Prepared``
    chars: dict[str, int]  # characters of the underlying text per split, for bits per character
    fingerprint: str
    meta: dict  # loader facts (e.g. the synthetic process's parameters)
    train = property(lambda self: self.splits["train"])
    valid = property(lambda self: self.splits["valid"])
    test = property(lambda self: self.splits["test"])

    @property
    def line_end(self) -> int | None:
        """Id of the token that ends a line (``<eos>`` or ``\\n``), if the corpus has lines."""
        return self.vocab.stoi.get(EOS if self.level == "word" else "\n")

    def sentence_end(self) -> int:
        """``line_end``, which the sentence protocol needs: a CorpusError if the corpus has no lines."""
        if self.line_end is None:
            raise CorpusError(f"Corpus {self.name} has no line structure; use protocol=stream.")
        return self.line_end

    def line_starts(self, split: str) -> np.ndarray:
        """Start index of every line in a split (0 first): the sentence protocol's resets."""
        ends = np.flatnonzero(self.splits[split][:-1] == self.sentence_end()) + 1
        return np.concatenate([[0], ends]).astype(np.int64)

    def tokens(self, split: str) -> int:
        """A split's length, without reading it if it is not loaded."""
        if isinstance(self.splits, Prepared) and split not in self.splits.loaded:
            with self.splits.member(split) as (_, shape, _):
                return shape[0]
        return len(self.splits[split])

    def chunks(self, split: str, size: int) -> Iterator[np.ndarray]:
        """A split's ids in consecutive pieces of ``size`` (the last one shorter): read piece by
        piece from the prepared file if not loaded, so that a pass never holds a large split whole."""
        if isinstance(self.splits, Prepared) and split not in self.splits.loaded:
            with self.splits.member(split) as (file, shape, dtype):
                for a in range(0, shape[0], size):
                    yield np.frombuffer(file.read(min(size, shape[0] - a) * dtype.itemsize), dtype=dtype)
        else:
            ids = self.splits[split]
            yield from (ids[a:a + size] for a in range(0, len(ids), size))

    def detokenize(self, ids) -> str:
        tokens = self.vocab.decode(ids)
        if self.level == "char":
            return "".join(tokens)
        return " ".join(tokens).replace(f" {EOS} ", "\n").replace(EOS, "\n")

    def stats(self) -> dict:
        unk = self.vocab.unk
        return {
            "level": self.level,
            "vocab_size": len(self.vocab),
            **{f"{s}_tokens": self.tokens(s) for s in self.splits},
            **{f"{s}_chars": int(n) for s, n in self.chars.items()},
            **{f"{s}_oov_rate": sum(int(np.count_nonzero(ids == unk)) for ids in self.chunks(s, 1 << 22))
               / max(self.tokens(s), 1) for s in self.splits},
        }


class Prepared(Mapping):
    """The splits of a prepared corpus file (``np.savez``, uncompressed), each read on first use and kept."""

    def __init__(self, path: Path):
        self.path = path
        self.loaded: dict[str, np.ndarray] = {}

    def __getitem__(self, split: str) -> np.ndarray:
        if split not in self.loaded:
            with np.load(self.path, allow_pickle=False) as data:
                self.loaded[split] = data[split]
        return self.loaded[split]

    def __iter__(self) -> Iterator[str]:
        return iter(SPLITS)

    def __len__(self) -> int:
        return len(SPLITS)

    @contextmanager
    def member(self, split: str) -> Iterator[tuple[IO[bytes], tuple[int, ...], np.dtype]]:
        """A split's ``.npy`` member, open past its header, with its shape and dtype."""
        with zipfile.ZipFile(self.path) as archive, archive.open(f"{split}.npy") as file:
            npy = np.lib.format
            read = npy.read_array_header_1_0 if npy.read_magic(file) == (1, 0) else npy.read_array_header_2_0
            shape, _, dtype = read(file)
            yield file, shape, dtype


def _count_chars(tokens: str | list[str]) -> int:
    """Characters of the underlying text: words are followed by a space or the line's newline."""
    if isinstance(tokens, str):
        return len(tokens)
    n, previous = 0, EOS
    for t in tokens:
        if t == EOS:
            n += previous == EOS  # an empty line is still one newline character
        else:
            n += len(t) + 1
        previous = t
    return n


def build_vocab(train: str | list[str], min_count: int, level: str) -> Vocab:
    """Specials first, then training types by descending frequency (ties by string)."""
    counts = Counter(train)
    specials = [EOS, UNK] if level == "word" else [UNK]
    kept = [t for t, c in counts.items() if c >= min_count and t not in specials]
    kept.sort(key=lambda t: (-counts[t], t))
    return Vocab(specials + kept)


def _save_prepared(path: Path, corpus: Corpus) -> None:
    """Cache a prepared corpus; a cache that cannot be written only costs preparing it again."""
    try:
        writable_cache(path.parent.name)
    except CorpusError as exc:
        log.warning("%s The prepared corpus is not cached.", exc)
        return
    header = {key: getattr(corpus, key) for key in ("name", "level", "chars", "fingerprint", "meta")}
    atomic_write(path, lambda file: np.savez(file, itos=np.array(corpus.vocab.itos),
                                             header=np.array(json.dumps(header)), **corpus.splits),
                 binary=True)  # straight to the file: no in-memory copy of the splits


def _load_prepared(path: Path, fingerprint: str) -> Corpus | None:
    """The cached corpus of ``fingerprint``, or None: an entry that is corrupt (a member fails its CRC)
    or was built for another fingerprint (its header says which) is rebuilt, never trusted."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            if sorted(data.files) != sorted(["itos", "header", *SPLITS]):
                raise ValueError(f"members {sorted(data.files)}")
            if header["fingerprint"] != fingerprint:
                raise ValueError(f"built for fingerprint {header['fingerprint'][:16]}")
            itos = [str(s) for s in data["itos"]]
        with zipfile.ZipFile(path) as archive:  # splits are read later: check every member's CRC now
            bad = archive.testzip()
            if bad is not None:
                raise ValueError(f"{bad} fails its CRC")
    except Exception as exc:
        log.warning("The prepared corpus cache %s is unreadable or not this corpus's (%s: %s); preparing "
                    "the corpus again.", path, type(exc).__name__, exc)
        return None
    return Corpus(vocab=Vocab(itos), splits=Prepared(path), **header)


def load_corpus(cfg) -> Corpus:
    """Prepare (or load from cache) the corpus described by a ``corpus`` config node."""
    if cfg.loader not in LOADERS:
        raise CorpusError(f"Unknown corpus loader {cfg.loader!r}; known: {', '.join(sorted(LOADERS))}.")
    loader, level = LOADERS[cfg.loader], str(cfg.level)
    settings = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    settings.pop("name", None)  # the fingerprint names the content, whatever the corpus is called
    payload = {"version": PREPARE_VERSION, "settings": settings, "sources": loader.hashes(cfg)}
    fingerprint = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    path = cache_dir() / "prepared" / f"{cfg.name}-{fingerprint[:16]}.npz"
    cached = _load_prepared(path, fingerprint)
    if cached is not None:
        return cached
    raw = loader.read(cfg)
    for split in SPLITS:
        if len(raw.splits.get(split, ())) == 0:
            raise CorpusError(f"Corpus {cfg.name}: the {split} split is empty.")
    if cfg.lowercase:
        raw.splits = {s: t.lower() if isinstance(t, str) else [w if w == EOS else w.lower() for w in t]
                      for s, t in raw.splits.items()}
    vocab = build_vocab(raw.splits["train"], cfg.min_count, level)
    splits = {s: vocab.encode(raw.splits[s]) for s in SPLITS}
    structural = [vocab.unk] + [i for i, t in enumerate(vocab.itos) if t == EOS or t.isspace()]
    for split in ("valid", "test"):
        if np.all(np.isin(splits[split], structural)):
            raise CorpusError(
                f"Corpus {cfg.name}: no token of the {split} split occurs in the training split, so "
                "every one would be <unk>. Check that the splits are the same kind of text (language, "
                "encoding, corpus.level) and that corpus.min_count is not too high.")
    corpus = Corpus(cfg.name, level, vocab, splits,
                    {s: _count_chars(raw.splits[s]) for s in SPLITS}, fingerprint, raw.meta)
    _save_prepared(path, corpus)
    return corpus
