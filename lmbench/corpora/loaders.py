"""Readers for the supported corpora. Each turns a corpus config into per-split token streams."""

from __future__ import annotations

import codecs
import shutil
from contextlib import contextmanager
from pathlib import Path

from lmbench.corpora.archives import ARCHIVE_SUFFIXES, corpus_root, unpack
from lmbench.corpora.fetch import cache_dir, fetch, sha256_of, writable_cache
from lmbench.corpora.raw import EOS, SPLITS, RawCorpus
from lmbench.errors import CorpusError


def words_of(text: str) -> list[str]:
    """Word-level tokenisation: whitespace-separated words, one ``<eos>`` ending every line. Every
    occurrence of a word is the same string object, so the list costs a pointer a token rather than
    a string (PTB x16: 358 MB instead of 1.16 GB) and counting it hashes each type once."""
    tokens: list[str] = []
    shared: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split()
        tokens.extend(map(shared.setdefault, words, words))
        tokens.append(EOS)
    return tokens


def chars_of_words(text: str) -> str:
    """Character stream of a word-tokenised text: words joined by one space, a newline per line."""
    return "".join(" ".join(line.split()) + "\n" for line in text.splitlines())


def tokenize(text: str, level: str, words_to_chars: bool = False):
    if level == "word":
        return words_of(text)
    return chars_of_words(text) if words_to_chars else text


def _wide_encoding(data: bytes) -> str | None:
    """``utf-32`` or ``utf-16`` for its byte-order mark (UTF-32's first: FF FE 00 00 starts with
    UTF-16's FF FE) or, for ASCII-range text, NUL in all but one of every 4 (or 2) bytes."""
    head = data[:4096]
    if head[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        return "utf-32"
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    for width in (4, 2):
        lanes = [head[i::width].count(0) > 0.9 * (len(head) // width) for i in range(width)]
        if len(head) >= 8 and sum(lanes) == width - 1:
            return f"utf-{8 * width}"
    return None


def decode(data: bytes, where: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Decode bytes (a UTF-8 byte-order mark is dropped, never part of the first token), naming the
    byte offset of the first bad byte and how to get past it."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise CorpusError(f"Unknown text encoding corpus.encoding={encoding!r}.") from None
    wide = _wide_encoding(data)
    if name == "utf-8" and wide:
        raise CorpusError(f"{where} looks like {wide.upper()} text (a {wide.upper()} byte-order mark, or NUL "
                          f"bytes between the characters); set corpus.encoding={wide} to read it.")
    if name == "utf-8" and b"\x00" in data[:8192]:
        raise CorpusError(f"{where} looks binary (it holds NUL bytes); a corpus must be a text file.")
    try:
        text = data.decode("utf-8-sig" if name == "utf-8" else encoding, errors)
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{where} is not valid {encoding}: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"({exc.reason}). Convert the file, or set corpus.encoding (e.g. latin-1) or "
            "corpus.errors=replace to read it anyway.") from exc
    except LookupError as exc:  # an unknown corpus.errors handler
        raise CorpusError(f"Unknown corpus.errors={errors!r}: use strict, replace, ignore or "
                          "backslashreplace.") from exc
    if "\x00" in text[:8192]:  # e.g. UTF-32 read as UTF-16
        advice = (f"it looks like {wide.upper()} text: set corpus.encoding={wide}"
                  if wide and wide not in name else "set corpus.encoding to the file's own")
        raise CorpusError(f"{where} read as {encoding} holds NUL characters, so it is binary or in another "
                          f"encoding; {advice}.")
    return text


def cut(text: str, fractions) -> dict[str, str]:
    """Contiguous train/valid/test pieces of a text by fractions of its characters (three positive
    numbers summing to 1: the option's rule, checked by ``validate``)."""
    a = int(len(text) * fractions[0])
    b = a + int(len(text) * fractions[1])
    return dict(zip(SPLITS, (text[:a], text[a:b], text[b:])))


def load_split_files(cfg) -> RawCorpus:
    paths = {s: fetch(cfg.files[s], cfg.name) for s in SPLITS}
    return RawCorpus({s: tokenize(decode(p.read_bytes(), str(p)), cfg.level, cfg.words_to_chars)
                      for s, p in paths.items()})


def load_one_file(cfg) -> RawCorpus:
    path = fetch(cfg.file, cfg.name)
    pieces = cut(decode(path.read_bytes(), str(path)), cfg.fractions)
    return RawCorpus({s: tokenize(t, cfg.level) for s, t in pieces.items()})


def load_brown(cfg) -> RawCorpus:
    """NLTK's Brown corpus as one word stream (case kept), cut by token counts (Bengio et al.)."""
    try:
        import nltk
    except ImportError:
        raise CorpusError("corpus=brown is read with nltk, which is not installed: "
                          "pip install 'lmbench[brown]'.") from None

    fetch(cfg.file, cfg.name)  # verified nltk_data/corpora/brown.zip in the cache
    data_dir = str(cache_dir() / "nltk_data")
    if data_dir not in nltk.data.path:
        nltk.data.path.insert(0, data_dir)
    words = list(nltk.corpus.brown.words())
    n_train, n_valid = cfg.split_tokens
    if n_train + n_valid >= len(words):
        raise CorpusError(f"corpus.split_tokens={list(cfg.split_tokens)} leaves no test tokens "
                          f"(Brown has {len(words):,}).")
    return RawCorpus({"train": words[:n_train], "valid": words[n_train:n_train + n_valid],
                      "test": words[n_train + n_valid:]},
                     {"total_tokens": len(words)})


@contextmanager
def _user_files(cfg):
    """The user's split files, or the single file to cut by fractions (either may come in a zip/tar
    archive, unpacked safely into the cache), with a name for each that the user recognises. An
    archive that turns out not to be a usable corpus leaves nothing unpacked in the cache."""
    given = Path(cfg.path).expanduser()
    unpacked = None
    if given.is_file() and given.name.lower().endswith(ARCHIVE_SUFFIXES):
        unpacked = unpack(given, writable_cache("unpacked"), cfg.max_unpacked_mb * 2**20)
    root = corpus_root(unpacked) if unpacked else given

    def shown(path: Path) -> str:
        return f"{path.relative_to(unpacked)} in {given}" if unpacked else str(path)

    try:
        if root.is_dir():
            files = {s: root / f"{s}.txt" for s in SPLITS}
            missing = [p.name for p in files.values() if not p.is_file()]
            if missing:
                raise CorpusError(f"corpus.path={shown(root)} is a folder but lacks "
                                  f"{', '.join(missing)}; a folder corpus needs train.txt, valid.txt and "
                                  "test.txt (or point corpus.path at one file to cut by corpus.fractions).")
            yield files, shown
        elif root.is_file():
            yield root, shown
        else:
            raise CorpusError(f"corpus.path={cfg.path} does not exist. Point it at a text file or at a "
                              "folder with train.txt, valid.txt and test.txt.")
    except CorpusError:
        if unpacked:
            shutil.rmtree(unpacked, ignore_errors=True)
        raise


def user_hashes(cfg) -> list[str]:
    """The sha256 of the user's files (a corpus.path folder's three, or one file)."""
    with _user_files(cfg) as (found, _):
        paths = found.values() if isinstance(found, dict) else [found]
        return [sha256_of(p) for p in paths]  # in blocks: a large file is never held whole


def load_user_file(cfg) -> RawCorpus:
    with _user_files(cfg) as (found, shown):
        if isinstance(found, dict):
            texts = {s: decode(p.read_bytes(), shown(p), cfg.encoding, cfg.errors) for s, p in found.items()}
        else:
            text = decode(found.read_bytes(), shown(found), cfg.encoding, cfg.errors)
            if not text.strip():
                raise CorpusError(f"corpus.path={shown(found)} is empty.")
            texts = cut(text, cfg.fractions)
        for split, text in texts.items():
            if not text.strip():
                raise CorpusError(f"The {split} split of corpus.path={cfg.path} is empty.")
        return RawCorpus({s: tokenize(t, cfg.level) for s, t in texts.items()})
