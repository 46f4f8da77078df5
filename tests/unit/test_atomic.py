"""Whole files or nothing, and durable when asked (profiler.atomic)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from profiler import atomic
from profiler.errors import ProfilerError


def test_a_durable_write_syncs_the_file_then_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    target = tmp_path / "manifest.json"
    atomic.write_bytes(str(target), b"{}\n", durable=True)
    assert target.read_bytes() == b"{}\n"
    assert len(synced) == 2 and synced[1] == str(tmp_path)
    assert synced[0].startswith(str(tmp_path / ".manifest.json."))  # the temporary, renamed
    synced.clear()
    atomic.write_bytes(str(target), b"[]\n")  # an output file: no fsync
    assert synced == [] and target.read_bytes() == b"[]\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")

    def write() -> None:
        with atomic.replacing(str(target), durable=True) as f:
            f.write("new")
            raise OSError("boom")

    with pytest.raises(ProfilerError, match=r"out\.txt: cannot write: boom"):
        write()
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]
