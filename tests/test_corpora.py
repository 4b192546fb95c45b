"""Corpora: canonical sizes, vocabulary rules, fingerprints, the cache/mirror lookup and bad input."""

from __future__ import annotations

import hashlib
import zipfile

import numpy as np
import pytest
from conftest import needs_shared
from omegaconf import OmegaConf

from lmbench.compose import compose
from lmbench.config import SourceFile, validate
from lmbench.corpora import EOS, UNK, load_corpus
from lmbench.corpora.fetch import fetch
from lmbench.errors import ChecksumError, CorpusError, UserError


@needs_shared("ptb/ptb.train.txt")
def test_ptb_has_the_canonical_token_counts_with_one_eos_per_line():
    corpus = load_corpus(compose("corpus=ptb").corpus)
    assert [len(corpus.splits[s]) for s in ("train", "valid", "test")] == [929_589, 73_760, 82_430]
    assert len(corpus.vocab) == 10_000
    assert corpus.vocab.itos[:2] == [EOS, UNK]
    assert corpus.stats()["test_oov_rate"] == pytest.approx(np.mean(corpus.test == corpus.vocab.unk))


@needs_shared("ptb/ptb.train.txt")
def test_ptb_char_is_derived_from_the_word_files():
    corpus = load_corpus(compose("corpus=ptb_char").corpus)
    assert corpus.level == "char"
    assert corpus.detokenize(corpus.test[:20]) == "no it was n't black "
    assert len(corpus.vocab) < 60
    assert corpus.chars["test"] == len(corpus.test)


@needs_shared("tinyshakespeare/input.txt")
def test_tinyshakespeare_keeps_every_character_and_splits_contiguously():
    corpus = load_corpus(compose("corpus=tinyshakespeare").corpus)
    total = sum(len(corpus.splits[s]) for s in ("train", "valid", "test"))
    assert total == 1_115_394
    assert corpus.detokenize(corpus.train[:14]) == "First Citizen:"
    assert "\n" in corpus.vocab.stoi


@pytest.mark.slow  # nltk reads the whole corpus
@needs_shared("nltk_data/corpora/brown.zip")
def test_brown_uses_the_bengio_split_and_rare_word_rule():
    corpus = load_corpus(compose("corpus=brown").corpus)
    sizes = [len(corpus.splits[s]) for s in ("train", "valid", "test")]
    assert sizes == [800_000, 200_000, 1_161_192 - 1_000_000]
    counts = np.bincount(corpus.train, minlength=len(corpus.vocab))
    assert counts[2:].min() >= 4  # every kept word occurs more than 3 times in train


def test_vocabulary_comes_from_train_only(tiny_text_dir):
    (tiny_text_dir / "test.txt").write_text("the zebra said and\n")
    corpus = load_corpus(compose("corpus=file", f"corpus.path={tiny_text_dir}",
                                 "corpus.level=word").corpus)
    assert "zebra" not in corpus.vocab.stoi
    assert corpus.vocab.decode(corpus.test) == ["the", UNK, "said", "and", EOS]
    assert corpus.chars["test"] == len("the zebra said and\n")


def test_prepared_corpus_is_cached_under_its_fingerprint(tiny_text_dir, isolated_cache):
    cfg = compose("corpus=file", f"corpus.path={tiny_text_dir}").corpus
    first = load_corpus(cfg)
    prepared = list((isolated_cache / "prepared").glob("*.npz"))
    assert len(prepared) == 1 and first.fingerprint[:16] in prepared[0].name
    again = load_corpus(cfg)
    assert again.fingerprint == first.fingerprint
    assert again.stats() == first.stats()  # from the file, read in chunks
    for split in first.splits:  # streamed from the file before it is loaded, sliced after
        for _ in range(2):
            assert again.tokens(split) == len(first.splits[split])
            assert np.array_equal(np.concatenate(list(again.chunks(split, 7))), first.splits[split])
            assert np.array_equal(again.splits[split], first.splits[split])
    lowered = load_corpus(compose("corpus=file", f"corpus.path={tiny_text_dir}",
                                  "corpus.lowercase=true").corpus)
    assert lowered.fingerprint != first.fingerprint


def test_a_corrupt_prepared_split_is_rebuilt_not_read(tiny_text_dir, isolated_cache):
    cfg = compose("corpus=file", f"corpus.path={tiny_text_dir}").corpus
    first = load_corpus(cfg)
    (path,) = (isolated_cache / "prepared").glob("*.npz")
    data = bytearray(path.read_bytes())
    start = zipfile.ZipFile(path).getinfo("train.npy").header_offset  # the member's local header
    name, extra = (int.from_bytes(data[start + at:start + at + 2], "little") for at in (26, 28))
    data[start + 30 + name + extra + 200] ^= 0xFF  # a byte of the train split's ids
    path.write_bytes(bytes(data))
    again = load_corpus(cfg)
    assert all(np.array_equal(again.splits[s], first.splits[s]) for s in first.splits)


def test_a_cache_entry_of_another_fingerprint_is_rebuilt_not_trusted(tiny_text_dir, isolated_cache, caplog):
    chars = load_corpus(compose("corpus=file", f"corpus.path={tiny_text_dir}").corpus)
    words_cfg = compose("corpus=file", f"corpus.path={tiny_text_dir}", "corpus.level=word").corpus
    words = load_corpus(words_cfg)
    prepared = isolated_cache / "prepared"
    (words_path,) = prepared.glob(f"*-{words.fingerprint[:16]}.npz")
    words_path.write_bytes(next(prepared.glob(f"*-{chars.fingerprint[:16]}.npz")).read_bytes())
    again = load_corpus(words_cfg)  # whole, every CRC right, but built for the char corpus
    assert f"built for fingerprint {chars.fingerprint[:16]}" in caplog.text
    assert again.fingerprint == words.fingerprint and again.vocab.itos == words.vocab.itos
    assert all(np.array_equal(again.splits[s], words.splits[s]) for s in words.splits)
    assert load_corpus(words_cfg).vocab.itos == words.vocab.itos  # the entry was rewritten, now trusted


def test_changed_source_text_changes_the_fingerprint(tiny_text_dir):
    cfg = compose("corpus=file", f"corpus.path={tiny_text_dir}").corpus
    before = load_corpus(cfg).fingerprint
    (tiny_text_dir / "valid.txt").write_text("something else entirely\n")
    assert load_corpus(cfg).fingerprint != before


def _spec(path: str, content: bytes, url: str = "https://127.0.0.1:9/missing.txt"):
    return OmegaConf.structured(SourceFile(path=path, sha256=hashlib.sha256(content).hexdigest(),
                                           url=url))


def test_mirror_file_is_verified_then_installed_in_the_cache(tmp_path, monkeypatch, isolated_cache):
    mirror = tmp_path / "mirror"
    (mirror / "demo").mkdir(parents=True)
    (mirror / "demo" / "a.txt").write_bytes(b"hello\n")
    monkeypatch.setenv("LMBENCH_MIRROR", str(mirror))
    path = fetch(_spec("demo/a.txt", b"hello\n"), "demo")
    assert path == isolated_cache / "demo" / "a.txt" and path.read_bytes() == b"hello\n"
    assert not list(path.parent.glob(".part-*"))


def test_checksum_mismatch_names_the_file_and_both_hashes_and_leaves_the_cache_untouched(
        tmp_path, monkeypatch, isolated_cache):
    mirror = tmp_path / "mirror"
    (mirror / "demo").mkdir(parents=True)
    (mirror / "demo" / "a.txt").write_bytes(b"truncated")
    monkeypatch.setenv("LMBENCH_MIRROR", str(mirror))
    spec = _spec("demo/a.txt", b"hello\n")
    with pytest.raises(ChecksumError) as error:
        fetch(spec, "demo")
    message = str(error.value)
    assert "demo/a.txt" in message and spec.sha256 in message
    assert hashlib.sha256(b"truncated").hexdigest() in message
    assert not (isolated_cache / "demo").exists()


def test_missing_file_without_network_or_mirror_says_where_it_looked(monkeypatch, isolated_cache):
    monkeypatch.delenv("LMBENCH_MIRROR", raising=False)
    with pytest.raises(CorpusError, match="LMBENCH_MIRROR") as error:
        fetch(_spec("demo/b.txt", b"x"), "demo")
    assert "demo/b.txt" in str(error.value)
    assert not (isolated_cache / "demo" / "b.txt").exists()


def test_mirror_that_does_not_exist_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LMBENCH_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(CorpusError, match="not an existing folder"):
        fetch(_spec("demo/c.txt", b"x"), "demo")


def test_only_https_downloads_are_allowed(monkeypatch):
    monkeypatch.delenv("LMBENCH_MIRROR", raising=False)
    with pytest.raises(CorpusError, match="only https"):
        fetch(_spec("demo/d.txt", b"x", url="http://example.com/d.txt"), "demo")


@pytest.mark.parametrize("write, message", [
    (lambda d: (d / "valid.txt").unlink(), "lacks valid.txt"),
    (lambda d: (d / "test.txt").write_text("  \n"), "test split .* is empty"),
    (lambda d: (d / "train.txt").write_bytes("caf\xe9 ok".encode("latin-1")),
     "not valid utf-8: byte 0xe9 at offset 3"),
    (lambda d: (d / "train.txt").write_bytes(b"\x7fELF\x00\x00\x01"), "looks binary"),
])
def test_bad_user_corpus_gives_a_clear_error(tiny_text_dir, write, message):
    write(tiny_text_dir)
    with pytest.raises(CorpusError, match=message):
        load_corpus(compose("corpus=file", f"corpus.path={tiny_text_dir}").corpus)


def test_user_corpus_encoding_option_reads_other_encodings(tiny_text_dir):
    for split in ("train", "valid", "test"):
        (tiny_text_dir / f"{split}.txt").write_bytes("café crème\n".encode("latin-1"))
    corpus = load_corpus(compose("corpus=file", f"corpus.path={tiny_text_dir}",
                                 "corpus.encoding=latin-1").corpus)
    assert "é" in corpus.vocab.stoi


def test_single_user_file_is_cut_by_fractions(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("abcdefghij" * 100)
    corpus = load_corpus(compose("corpus=file", f"corpus.path={path}",
                                 "corpus.fractions=[0.8,0.1,0.1]").corpus)
    assert [len(corpus.splits[s]) for s in ("train", "valid", "test")] == [800, 100, 100]


def test_missing_user_corpus_path(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(compose("corpus=file", f"corpus.path={tmp_path / 'nope'}").corpus)


def test_a_split_with_no_token_in_common_with_train_is_an_error(tiny_text_dir):
    (tiny_text_dir / "valid.txt").write_text("ЖЖЖ ЩЩЩ\n")
    with pytest.raises(CorpusError, match="no token of the valid split occurs in the training"):
        load_corpus(compose("corpus=file", f"corpus.path={tiny_text_dir}").corpus)


def test_a_mirror_entry_that_is_a_folder_is_a_clear_error(tmp_path, monkeypatch, isolated_cache):
    mirror = tmp_path / "mirror"
    (mirror / "demo" / "a.txt").mkdir(parents=True)
    monkeypatch.setenv("LMBENCH_MIRROR", str(mirror))
    with pytest.raises(CorpusError, match=r"mirror file demo/a.txt .* cannot be read \(Is a directory\)"):
        fetch(_spec("demo/a.txt", b"hello\n"), "demo")
    assert not (isolated_cache / "demo").exists()


def test_a_cache_entry_that_is_a_folder_is_a_clear_error(isolated_cache):
    (isolated_cache / "demo" / "a.txt").mkdir(parents=True)
    with pytest.raises(CorpusError, match=r"cached file demo/a.txt .* cannot be read \(Is a directory\)"):
        fetch(_spec("demo/a.txt", b"hello\n"), "demo")


@pytest.mark.parametrize("handler", ["xmlcharrefreplace", "namereplace"])
def test_an_encode_only_errors_handler_is_refused_before_reading(tiny_text_dir, handler):
    with pytest.raises(UserError, match=f"corpus.errors={handler} is out of range: it must be a handler "
                                        "that decodes"):
        validate(compose("corpus=file", f"corpus.path={tiny_text_dir}", f"corpus.errors={handler}"))


@pytest.mark.parametrize("handler, word", [("backslashreplace", "caf\\xe9"), ("surrogateescape", "caf\udce9"),
                                           ("replace", "caf\ufffd"), ("ignore", "caf")])
def test_every_decoding_errors_handler_reads_a_bad_byte(tiny_text_dir, handler, word):
    (tiny_text_dir / "train.txt").write_bytes(b"caf\xe9 hello\n" + (tiny_text_dir / "valid.txt").read_bytes())
    cfg = compose("corpus=file", f"corpus.path={tiny_text_dir}", "corpus.level=word",
                  f"corpus.errors={handler}")
    validate(cfg)
    assert word in load_corpus(cfg.corpus).vocab.stoi


@pytest.mark.parametrize("encoding", ["utf-32", "utf-32-le", "utf-32-be"])
def test_utf32_text_is_named_utf32_and_reads_with_that_encoding(tmp_path, encoding):
    path = tmp_path / "text.txt"
    path.write_bytes(("the cat sat\n" * 200).encode(encoding))
    overrides = ["corpus=file", f"corpus.path={path}", "corpus.level=word"]
    with pytest.raises(CorpusError, match="looks like UTF-32 text.*set corpus.encoding=utf-32 "):
        load_corpus(compose(*overrides).corpus)
    corpus = load_corpus(compose(*overrides, f"corpus.encoding={encoding}").corpus)
    assert corpus.vocab.itos[2:] == ["cat", "sat", "the"]


def test_utf32_text_read_as_utf16_is_refused_not_trained_on(tmp_path):
    path = tmp_path / "text.txt"
    path.write_bytes(("the cat sat\n" * 200).encode("utf-32"))
    with pytest.raises(CorpusError, match="read as utf-16 holds NUL characters.*set corpus.encoding=utf-32"):
        load_corpus(compose("corpus=file", f"corpus.path={path}", "corpus.encoding=utf-16").corpus)
