"""Host facts of the emulated Rust runner, read from the checked-in tree tests/data/proc
(a /proc with PSI files and a cgroup v2 mount), exactly."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from profiler.testbed.status.host import Cgroup, HostFacts, Pressure, read_host

TREE = Path(__file__).resolve().parents[1] / "data" / "proc"
PROC = str(TREE / "proc")
CGROUP = str(TREE / "sys" / "fs" / "cgroup")
SERVICE = "system.slice/hydra-queue-runner.service"
# free space by file system: (blocks, blocks available)
FREE = {"/build": (1000, 300), "/nix/store": (5000, 3500)}

EXPECTED = HostFacts(
    bogomips=4799.99,  # the first processor's line
    total_mem=16_303_664 * 1024,
    mem_usage=(16_303_664 - 11_010_024) * 1024,  # MemTotal - MemAvailable
    load=(0.52, 0.71, 0.80),
    pressure={
        "cpuSome": Pressure(1.23, 0.87, 0.50, 123_456_789),
        "memSome": Pressure(0.30, 0.10, 0.02, 2_345_678),
        "memFull": Pressure(0.20, 0.05, 0.01, 1_234_567),
        "ioSome": Pressure(4.51, 3.02, 1.70, 98_765_432),
        "ioFull": Pressure(2.25, 1.50, 0.85, 45_678_901),
        "irqFull": Pressure(0.0, 0.0, 0.0, 4_567),
    },
    build_dir_free=30.0,
    store_free=70.0,
    vsize_bytes=262_144 * 4096,
    rss_bytes=12_800 * 4096,
    shared_bytes=3_200 * 4096,
    cgroup=Cgroup(
        memory_current=734_003_200,
        memory_peak=1_073_741_824,
        swap_current=0,
        zswap_current=4_096,
        read_bytes=1_048_576 + 4_096,  # io.stat: summed over devices
        write_bytes=2_097_152 + 8_192,
        usage_usec=9_876_543,
        user_usec=7_654_321,
        system_usec=2_222_222,
    ),
)


def fake_statvfs(path: str) -> os.statvfs_result:
    if path not in FREE:
        raise FileNotFoundError(path)
    blocks, available = FREE[path]
    return os.statvfs_result((4096, 4096, blocks, available, available, 0, 0, 0, 0, 255))


def read(proc: str = PROC, cgroup: str = CGROUP) -> HostFacts:
    return read_host(
        proc,
        cgroup,
        build_dir="/build",
        store_dir="/nix/store",
        page_size=4096,
        statvfs=fake_statvfs,
    )


def test_host_facts_from_the_proc_tree() -> None:
    assert read() == EXPECTED


def test_nothing_readable_is_all_zeros(tmp_path: Path) -> None:
    facts = read_host(
        str(tmp_path),
        str(tmp_path),
        build_dir="/nowhere",
        store_dir="/nowhere",
        page_size=4096,
        statvfs=fake_statvfs,
    )
    assert facts == HostFacts()
    assert set(facts.pressure) == {"cpuSome", "memSome", "memFull", "ioSome", "ioFull", "irqFull"}


def test_cgroup_on_the_hybrid_unified_mount(tmp_path: Path) -> None:
    shutil.copytree(Path(CGROUP), tmp_path / "unified")
    assert read(cgroup=str(tmp_path)).cgroup == EXPECTED.cgroup


def test_cgroup_max_and_missing_files_are_zero(tmp_path: Path) -> None:
    shutil.copytree(Path(CGROUP), tmp_path, dirs_exist_ok=True)
    (tmp_path / SERVICE / "memory.peak").write_text("max\n")
    (tmp_path / SERVICE / "io.stat").unlink()
    cgroup = read(cgroup=str(tmp_path)).cgroup
    assert cgroup == EXPECTED.cgroup._replace(memory_peak=0, read_bytes=0, write_bytes=0)
    # a cgroup directory is one with cgroup.procs
    (tmp_path / SERVICE / "cgroup.procs").unlink()
    assert read(cgroup=str(tmp_path)).cgroup == Cgroup()
