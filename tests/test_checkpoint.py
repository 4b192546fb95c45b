"""Checkpoint files: a sha256 travels with every checkpoint, so a damaged one is refused with a clear
error instead of resumed; a full disk keeps the last good one; files from before the digest still load."""

from __future__ import annotations

import errno
import hashlib
import io
import os

import pytest
import torch

from lmbench.errors import UserError
from lmbench.runs import checkpoint

PAYLOAD = {"meta": {"epoch": 1}, "model": {"w": torch.arange(4096, dtype=torch.float32)}}


def _zero_64_in_the_middle(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes(64) + data[mid + 64:]


def _wrong_digest(data: bytes) -> bytes:
    body = data.partition(b"\n")[2]
    return checkpoint.MAGIC + hashlib.sha256(b"another checkpoint").hexdigest().encode() + b"\n" + body


@pytest.mark.parametrize("damage", [
    _zero_64_in_the_middle,
    lambda data: data[:-1000],  # truncated
    lambda data: data[:-1] + bytes([data[-1] ^ 1]),  # one bit of the last byte flipped
    _wrong_digest,
    lambda data: data + b"\0" * 64,  # bytes appended
], ids=["zeroed-64", "truncated", "last-bit", "wrong-digest", "appended"])
def test_a_damaged_checkpoint_is_refused_with_what_to_do(tmp_path, damage):
    path = tmp_path / checkpoint.CHECKPOINT
    checkpoint.save(PAYLOAD, path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UserError) as refused:
        checkpoint.load(path)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message
    assert "damaged" in message and "digest" in message and "Delete it" in message


def test_a_checkpoint_round_trips_behind_its_digest(tmp_path):
    path = tmp_path / checkpoint.CHECKPOINT
    checkpoint.save(PAYLOAD, path)
    header, _, body = path.read_bytes().partition(b"\n")
    assert header == checkpoint.MAGIC + hashlib.sha256(body).hexdigest().encode()
    loaded = checkpoint.load(path)
    assert loaded["meta"] == PAYLOAD["meta"] and torch.equal(loaded["model"]["w"], PAYLOAD["model"]["w"])


def test_a_checkpoint_from_before_the_digest_is_read_as_before(tmp_path):
    path = tmp_path / checkpoint.CHECKPOINT
    torch.save(PAYLOAD, path)  # how older versions wrote it: no header
    assert torch.equal(checkpoint.load(path)["model"]["w"], PAYLOAD["model"]["w"])
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="corrupt or unreadable"):
        checkpoint.load(path)


def test_a_full_disk_mid_write_says_so_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / checkpoint.CHECKPOINT
    checkpoint.save(PAYLOAD, path)
    before = path.read_bytes()

    class FullDisk(io.FileIO):  # takes half of what is written, then the disk is full
        def write(self, data):
            super().write(bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(fd, "wb"))
    with pytest.raises(UserError, match="disk is full: could not write .*checkpoint.pt. .* intact"):
        checkpoint.save({"meta": {"epoch": 2}, "model": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and checkpoint.load(path)["meta"] == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.CHECKPOINT]  # no partial file left
