"""The fleet's hosts file, the workers matched to hosts, and the fleet's side-by-side figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from profiler.bench.fleet_cluster import match_workers
from profiler.bench.fleet_hosts import Host, load_hosts
from profiler.bench.fleet_view import Fleet, fleet_frame, host_frame, shared_corpus
from profiler.errors import UsageError

GOOD = """\
scheduler = "tcp://hydra.example:8786"

[[host]]
name = "builder-1"
address = "builder-1.example"
payloads = ["/var/cache/nars"]

[[host]]
name = "builder-2"
"""


def _hosts(tmp_path: Path, text: str) -> str:
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    return str(path)


def test_a_good_file(tmp_path: Path) -> None:
    spec = load_hosts(_hosts(tmp_path, GOOD))
    assert spec.scheduler == "tcp://hydra.example:8786" and spec.describe() == spec.scheduler
    assert spec.hosts == (
        Host("builder-1", "builder-1.example", ("/var/cache/nars",)),
        Host("builder-2", "builder-2"),  # the address defaults to the name
    )


def test_overrides_and_local_clusters(tmp_path: Path) -> None:
    path = _hosts(tmp_path, GOOD)
    assert load_hosts(path, scheduler="tcp://other:8786").scheduler == "tcp://other:8786"
    assert load_hosts(path, local_workers=2).local_workers == 2
    alone = load_hosts(None, local_workers=3)
    assert [h.name for h in alone.hosts] == ["local-1", "local-2", "local-3"]
    ssh = load_hosts(_hosts(tmp_path, GOOD.replace('scheduler = "tcp://hydra.example:8786"', "")))
    assert ssh.scheduler is None and ssh.describe() == "ssh:builder-1.example"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schedular = 'tcp://x:1'\n", r"hosts.toml: unknown key 'schedular'"),
        ("scheduler = 'x:1'\n[[host]]\nname='a'\n", r"hosts.toml: scheduler: expected a sched"),
        ("scheduler = 'tcp://x:1'\n", r"hosts.toml: host: no \[\[host\]\] listed"),
        ("[[host]]\nname = 'a/b'\n", r"hosts.toml: host\[0\].name: must be a name"),
        ("[[host]]\nname = 'a'\n[[host]]\nname = 'a'\n", r"host\[1\].name: 'a' repeats host\[0\]"),
        ("[[host]]\nname = 'a'\naddress = 3\n", r"host\[0\].address: must be a non-empty"),
        ("[[host]]\nname = 'a'\npayloads = '/x'\n", r"host\[0\].payloads: must be a list"),
        ("[[host]]\nname = 'a'\nport = 22\n", r"host\[0\]: unknown key 'port'"),
        ("host = 'a'\n", r"hosts.toml: host: must be an array of tables"),
        ("ssh_options = 'x'\n[[host]]\nname='a'\n", r"hosts.toml: ssh_options: must be a table"),
        ("scheduler = 'local:2'\n[[host]]\nname='a'\n", r"local:2 runs 2 workers, but the file"),
        ("scheduler = 'local:0'\n", r"scheduler: local:N needs N from 1 to 64"),
        ("[[host]\n", r"hosts.toml: invalid TOML"),
    ],
)
def test_bad_files_fail_in_one_line_naming_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        load_hosts(_hosts(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"nope.toml: cannot read the hosts file"):
        load_hosts(str(tmp_path / "nope.toml"))


WORKERS = {
    "tcp://10.0.0.1:4001": {"name": "w-a", "host": "10.0.0.1"},
    "tcp://10.0.0.1:4002": {"name": "w-b", "host": "10.0.0.1"},
    "tcp://10.0.0.2:4001": {"name": "builder-2", "host": "10.0.0.2"},
}


def test_workers_are_matched_by_name_then_by_machine_one_host_per_machine() -> None:
    hosts = (
        Host("builder-2", "builder-2.invalid"),  # by the worker's name
        Host("one", "10.0.0.1"),  # by the worker's host
        Host("again", "10.0.0.1"),  # the same machine: no second suite there
        Host("gone", "10.9.9.9"),  # no worker at all
    )
    assert match_workers(hosts, WORKERS) == {
        "builder-2": "tcp://10.0.0.2:4001",
        "one": "tcp://10.0.0.1:4001",
    }


def test_named_workers_may_share_a_machine_when_the_operator_says_so() -> None:
    hosts = (Host("x", "w-a"), Host("y", "w-b"))
    assert match_workers(hosts, WORKERS) == {"x": "tcp://10.0.0.1:4001", "y": "tcp://10.0.0.1:4002"}


class _Result:
    def __init__(self, rows: list[dict[str, object]], cpu: str) -> None:
        self.rows = pd.DataFrame(rows)
        self.meta = {"environment": {"cpu_model": cpu, "cpu_count": 8, "cpus_usable": 8}}


def _cells(nar_bytes: int, seconds: float, codec: str) -> dict[str, object]:
    return {"payload": "p", "codec": codec, "nar_bytes": nar_bytes, "compressed_bytes": 25,
            "compress_best_seconds": seconds, "decompress_best_seconds": seconds / 10,
            "error": None}  # fmt: skip


def test_a_host_far_from_the_fleet_median_is_flagged() -> None:
    speeds = {"fast": 1.0, "usual": 1.25, "slow": 2.0}  # seconds for 100 MB: 100, 80, 50 MB/s
    results = {
        h: _Result([_cells(100_000_000, s, "xz:6"), _cells(100_000_000, s / 10, "zstd:3")], h)
        for h, s in speeds.items()
    }
    listed = [{"name": h, "status": "ok", "payloads": "shared"} for h in speeds]
    listed.append({"name": "down", "status": "failed", "error": "boom", "payloads": "shared"})
    index = {"hosts": listed}
    fleet = Fleet("f", index, results)  # type: ignore[arg-type]
    cells = fleet_frame(fleet).set_index(["host", "codec"])
    assert cells.loc[("usual", "xz:6"), "median_compress_mb_per_s"] == pytest.approx(80.0)
    assert cells.loc[("fast", "xz:6"), "speed_vs_median"] == pytest.approx(0.25)  # not beyond
    assert not cells.loc[("fast", "xz:6"), "outlier"]
    assert cells.loc[("slow", "zstd:3"), "speed_vs_median"] == pytest.approx(-0.375)
    assert cells.loc[("slow", "zstd:3"), "outlier"]
    hosts = host_frame(fleet, fleet_frame(fleet)).set_index("host")
    assert list(hosts.index) == ["fast", "usual", "slow", "down"]
    assert hosts.loc["slow", "outlier"] and not hosts.loc["usual", "outlier"]
    assert hosts.loc["slow", "cpu_model"] == "slow" and hosts.loc["down", "status"] == "failed"


def test_the_shared_corpus_is_checked_byte_equal_across_hosts() -> None:
    from profiler.bench.fleet import HostOutcome
    from profiler.bench.fleet_render import corpus_line

    def ok(name: str, hashes: dict[str, str], own: tuple[str, ...] = ()) -> HostOutcome:
        o = HostOutcome(Host(name, name, own), "tcp://w", "ok")
        o.payload_hashes, o.corpus_digest = hashes, "sha256:" + "".join(sorted(hashes.values()))
        return o

    same = [ok("a", {"elf": "h1", "docs": "h2"}), ok("b", {"elf": "h1", "docs": "h2"})]
    doc = shared_corpus([*same, ok("own", {"x": "h9"}, ("/nars",))])  # own payloads: not shared
    assert doc["byte_equal"] is True and doc["hosts"] == ["a", "b"]
    assert doc["differing_payloads"] == []
    differ = shared_corpus([*same, ok("c", {"elf": "h1", "docs": "OTHER"})])
    assert differ["byte_equal"] is False and differ["differing_payloads"] == ["docs"]
    line = corpus_line({"shared_corpus": differ})
    assert "NOT byte-equal on a, b, c" in line and "differ: docs" in line
    lacking = shared_corpus([*same, ok("d", {"elf": "h1"})])
    assert lacking["differing_payloads"] == ["docs"]
    assert shared_corpus(same[:1])["byte_equal"] is None  # one host: nothing to compare
