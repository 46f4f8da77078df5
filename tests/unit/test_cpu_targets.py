"""Resolving --pid, --match and --unit against a fake /proc (no systemd needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler.collect.cpu import targets
from profiler.errors import CollectorError

CGROUP_V2 = "0::/system.slice/{unit}\n"
CGROUP_V1 = "12:pids:/system.slice/{unit}\n1:name=systemd:/system.slice/{unit}\n"


def fake_proc(root: Path, procs: dict[int, tuple[str, str, str]]) -> str:
    """``procs``: pid -> (comm, argv[0], cgroup file text)."""
    for pid, (comm, argv0, cgroup) in procs.items():
        d = root / str(pid)
        d.mkdir(parents=True)
        (d / "comm").write_text(comm + "\n")
        (d / "cmdline").write_bytes(argv0.encode() + b"\0--flag\0")
        (d / "cgroup").write_text(cgroup)
    (root / "self").mkdir()  # not a pid
    return str(root)


@pytest.fixture
def proc(tmp_path: Path) -> str:
    return fake_proc(
        tmp_path,
        {
            # the kernel keeps 15 characters of a comm
            100: ("hydra-queue-run", "/nix/store/x/bin/hydra-queue-runner",
                  CGROUP_V2.format(unit="hydra-queue-runner.service")),
            101: ("nix-daemon", "nix-daemon", CGROUP_V2.format(unit="nix-daemon.service")),
            102: (".hydra-queue-bu", "/nix/store/y/bin/.hydra-queue-builder-wrapped",
                  CGROUP_V1.format(unit="hydra-queue-builder-dev.service")),
            103: ("sh", "/bin/sh", CGROUP_V2.format(unit="hydra-queue-runner.service/sub")),
            104: ("python3", "/usr/bin/python3", "0::/user.slice\n"),
        },
    )  # fmt: skip


def test_pid_names_its_comm(proc: str) -> None:
    t = targets.by_pid([100], proc)
    assert t.pids == (100,)
    assert t.label == "pid 100 (hydra-queue-run)"
    assert t.comms == {100: "hydra-queue-run"}


def test_missing_pid_is_one_line(proc: str) -> None:
    with pytest.raises(CollectorError, match="no process 999"):
        targets.by_pid([999], proc)


def test_match_finds_the_runner_by_argv0_despite_the_short_comm(proc: str) -> None:
    t = targets.by_match("hydra-queue-runner", proc)
    assert t.pids == (100,)
    assert targets.by_match("hydra-queue-bu", proc).pids == (102,)  # the comm alone
    assert targets.by_match("hydra", proc).pids == (100, 102)
    assert targets.by_match("hydra", proc, exclude=(100,)).pids == (102,)


def test_match_without_a_process_is_an_error(proc: str) -> None:
    with pytest.raises(CollectorError, match="no process matches 'nginx'"):
        targets.by_match("nginx", proc)


def test_unit_is_its_cgroup_and_below_in_v1_and_v2(proc: str) -> None:
    t = targets.by_unit("hydra-queue-runner", proc)
    assert t.pids == (100, 103)
    assert t.label.startswith("unit hydra-queue-runner.service")
    assert targets.by_unit("hydra-queue-builder-dev.service", proc).pids == (102,)
    with pytest.raises(CollectorError, match=r"no process in unit hydra-notify\.service"):
        targets.by_unit("hydra-notify", proc)


def test_python_targets_are_flagged(proc: str) -> None:
    assert targets.by_pid([104], proc).python
    assert not targets.by_pid([100, 104], proc).python


def test_unreadable_proc_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match="cannot list"):
        targets.by_match("x", str(tmp_path / "missing"))
