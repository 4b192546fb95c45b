"""Faults while writing: a full disk is a clear error and the previous file survives intact."""

from __future__ import annotations

import errno
import json
import os

import pytest

from lmbench.errors import UserError
from lmbench.runs.rundir import RunDir


def test_full_disk_during_a_record_write_keeps_the_previous_record(tmp_path, monkeypatch):
    RunDir(tmp_path).write_record({"id": "first", "status": "ok"})

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("lmbench.files.os.fsync", disk_full)
    with pytest.raises(UserError, match="disk is full.*record.json.*intact"):
        RunDir(tmp_path).write_record({"id": "second", "status": "ok"})
    assert json.loads((tmp_path / "record.json").read_text())["id"] == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_full_disk_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import torch

    from lmbench.runs import checkpoint

    path = tmp_path / checkpoint.CHECKPOINT
    checkpoint.save({"meta": {"epoch": 1}, "model": {"w": torch.ones(3)}}, path)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("lmbench.files.os.fsync", disk_full)
    with pytest.raises(UserError, match="disk is full.*checkpoint.pt.*intact.*resumes"):
        checkpoint.save({"meta": {"epoch": 2}, "model": {"w": torch.zeros(3)}}, path)
    assert checkpoint.load(path)["meta"] == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.CHECKPOINT]
