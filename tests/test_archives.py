"""User corpora in zip/tar archives: unpacked when safe, refused when not."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from lmbench.compose import compose
from lmbench.corpora import load_corpus
from lmbench.errors import CorpusError

TEXT = "the cat sat on the mat .\nthe dog sat on the log .\n" * 20


def _load(path, *overrides):
    return load_corpus(compose("corpus=file", f"corpus.path={path}", "corpus.level=word",
                               *overrides).corpus)


def test_zip_with_a_folder_of_splits_loads(tmp_path):
    archive = tmp_path / "corpus.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for split in ("train", "valid", "test"):
            zf.writestr(f"mycorpus/{split}.txt", TEXT)
    corpus = _load(archive)
    assert corpus.vocab.decode(corpus.test[:3]) == ["the", "cat", "sat"]


def test_tar_with_one_file_is_cut_by_fractions(tmp_path):
    archive = tmp_path / "corpus.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        data = TEXT.encode()
        info = tarfile.TarInfo("book.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    assert len(_load(archive).train) > 0


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/evil.txt", "a/../../escape.txt"])
def test_zip_slip_and_absolute_paths_are_refused(tmp_path, name, isolated_cache):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(name, TEXT)
    with pytest.raises(CorpusError, match="unsafe path"):
        _load(archive)
    assert not (tmp_path / "escape.txt").exists() and not (isolated_cache.parent / "escape.txt").exists()


def test_links_in_a_tar_are_refused(tmp_path):
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("train.txt")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(CorpusError, match="not a regular file"):
        _load(archive)


def test_an_archive_larger_than_the_cap_is_refused_and_leaves_nothing(tmp_path, isolated_cache):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train.txt", "a" * (3 * 2**20))
    with pytest.raises(CorpusError, match="more than corpus.max_unpacked_mb=1 MB"):
        _load(archive, "corpus.max_unpacked_mb=1")
    assert not [p for p in (isolated_cache / "unpacked").iterdir()]


def test_a_corrupt_archive_is_a_clear_error(tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CorpusError, match="not a readable archive"):
        _load(archive)


def test_a_macos_finder_zip_loads_without_its_metadata(tmp_path, isolated_cache):
    archive = tmp_path / "corpus.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # what Finder's "Compress" writes beside the folder
        for split in ("train", "valid", "test"):
            zf.writestr(f"mycorpus/{split}.txt", TEXT)
            zf.writestr(f"__MACOSX/mycorpus/._{split}.txt", b"\x00\x05\x16\x07 AppleDouble")
        zf.writestr("mycorpus/._train.txt", b"\x00\x05\x16\x07 AppleDouble")
    corpus = _load(archive)
    assert corpus.vocab.decode(corpus.test[:3]) == ["the", "cat", "sat"]
    assert not list((isolated_cache / "unpacked").rglob("*MACOSX*"))
    assert not list((isolated_cache / "unpacked").rglob("._*"))


def test_a_macos_zip_of_one_file_is_cut_by_fractions(tmp_path):
    archive = tmp_path / "book.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("book.txt", TEXT)
        zf.writestr("__MACOSX/._book.txt", b"\x00\x05\x16\x07 AppleDouble")
    assert len(_load(archive).train) > 0
