"""Faults while writing: a full disk is a clear error and the previous file survives intact."""

from __future__ import annotations

import errno
import json
import os

import pytest

from lmbench.errors import UserError
from lmbench.records import write_record


def test_full_disk_during_a_record_write_keeps_the_previous_record(tmp_path, monkeypatch):
    write_record({"id": "first", "status": "ok"}, tmp_path)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("lmbench.records.os.fsync", disk_full)
    with pytest.raises(UserError, match="disk is full.*record.json.*intact"):
        write_record({"id": "second", "status": "ok"}, tmp_path)
    assert json.loads((tmp_path / "record.json").read_text())["id"] == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
