"""The hosts of a fleet bench (``hydra-profiler bench --fleet hosts.toml``), checked.

A hosts file names how to reach the builders and what each measures::

    scheduler = "tcp://hydra.example:8786"   # an existing scheduler whose workers run there,
                                             # or "local:N": a LocalCluster of N processes;
                                             # none: an SSH cluster over the hosts' addresses
    ssh_scheduler = "hydra.example"          # SSH only: where the scheduler runs (1st host)
    remote_python = "/usr/bin/python3"       # SSH only: the hosts' Python
    [ssh_options]                            # SSH only: asyncssh.connect keywords
    username = "bench"

    [[host]]
    name = "builder-1"                       # the result directory and table column
    address = "builder-1.example"            # SSH address / the worker's host (default: name)
    payloads = ["/var/cache/nars"]           # optional: this host's own NARs, paths there

Every error is one line naming the file and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from profiler.errors import UsageError

MAX_LOCAL_WORKERS = 64
_TOP_KEYS = ("scheduler", "ssh_scheduler", "ssh_options", "remote_python", "host")
_HOST_KEYS = ("name", "address", "payloads")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a safe directory name
_LOCAL = re.compile(r"local:(\d+)")


@dataclass(frozen=True)
class Host:
    """One builder: its name in results, its address, and its own payloads (if any)."""

    name: str
    address: str
    payloads: tuple[str, ...] = ()


@dataclass(frozen=True)
class FleetSpec:
    """A checked hosts file: the hosts and how to reach them.

    ``scheduler`` is an address (``tcp://...``), ``local:N``, or None for an SSH cluster.
    """

    source: str
    hosts: tuple[Host, ...]
    scheduler: str | None = None
    ssh_scheduler: str | None = None
    ssh_options: dict[str, Any] = field(default_factory=dict)
    remote_python: str | None = None

    @property
    def local_workers(self) -> int | None:
        """N of ``local:N``, else None."""
        m = _LOCAL.fullmatch(self.scheduler or "")
        return int(m.group(1)) if m else None

    def describe(self) -> str:
        """The scheduler as fleet.json and the tables name it."""
        if self.scheduler:
            return self.scheduler
        return "ssh:" + (self.ssh_scheduler or self.hosts[0].address)


def load_hosts(
    path: str | None, *, scheduler: str | None = None, local_workers: int | None = None
) -> FleetSpec:
    """The hosts file at ``path`` (None: no file, only ``--local-cluster N``), checked.

    ``scheduler`` (``--scheduler``) and ``local_workers`` (``--local-cluster``) override the
    file's ``scheduler``. With ``local:N`` the hosts are the N workers in order: the file
    lists N hosts, or none (then they are named ``local-1`` .. ``local-N``).
    """
    doc = _read(path) if path else {}
    where = path or ("--local-cluster" if local_workers is not None else "--scheduler")
    unknown = [k for k in doc if k not in _TOP_KEYS]
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_TOP_KEYS)})")
    chosen = f"local:{local_workers}" if local_workers is not None else scheduler
    sched = chosen if chosen is not None else _optional_str(doc, "scheduler", where)
    hosts = _hosts(doc.get("host", []), where)
    spec = FleetSpec(
        where,
        hosts,
        sched,
        _optional_str(doc, "ssh_scheduler", where),
        _ssh_options(doc.get("ssh_options", {}), where),
        _optional_str(doc, "remote_python", where),
    )
    return _checked(spec, "--local-cluster" if local_workers is not None else "scheduler")


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the hosts file: {exc.strerror or exc}") from None


def _optional_str(doc: dict[str, Any], key: str, where: str) -> str | None:
    value = doc.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise UsageError(f"{where}: {key}: must be a non-empty string, got {value!r}")
    return value


def _ssh_options(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where}: ssh_options: must be a table (asyncssh.connect keywords)")
    return dict(value)


def _hosts(items: Any, where: str) -> tuple[Host, ...]:
    if not isinstance(items, list) or not all(isinstance(h, dict) for h in items):
        raise UsageError(f"{where}: host: must be an array of tables ([[host]] sections)")
    out: list[Host] = []
    for i, item in enumerate(items):
        out.append(_host(item, f"{where}: host[{i}]"))
    seen: dict[str, int] = {}
    for i, h in enumerate(out):
        if h.name in seen:
            raise UsageError(f"{where}: host[{i}].name: {h.name!r} repeats host[{seen[h.name]}]")
        seen[h.name] = i
    return tuple(out)


def _host(item: dict[str, Any], where: str) -> Host:
    unknown = [k for k in item if k not in _HOST_KEYS]
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_HOST_KEYS)})")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(
            f"{where}.name: must be a name of letters, digits, '.', '_' or '-' (it names the "
            f"host's result directory), got {name!r}"
        )
    address = item.get("address", name)
    if not isinstance(address, str) or not address.strip():
        raise UsageError(f"{where}.address: must be a non-empty string, got {address!r}")
    payloads = item.get("payloads", [])
    if not isinstance(payloads, list) or not all(
        isinstance(p, str) and p.strip() for p in payloads
    ):
        raise UsageError(f"{where}.payloads: must be a list of paths on that host")
    return Host(name, address.strip(), tuple(payloads))


def _checked(spec: FleetSpec, key: str) -> FleetSpec:
    where, sched = spec.source, spec.scheduler
    if sched is not None and sched.startswith("local"):
        n = spec.local_workers
        if n is None or not 1 <= n <= MAX_LOCAL_WORKERS:
            raise UsageError(
                f"{where}: {key}: local:N needs N from 1 to {MAX_LOCAL_WORKERS}, got {sched!r}"
            )
        if not spec.hosts:
            names = tuple(Host(f"local-{i + 1}", f"local-{i + 1}") for i in range(n))
            return FleetSpec(where, names, sched)
        if len(spec.hosts) != n:
            raise UsageError(
                f"{where}: {key}: local:{n} runs {n} workers, but the file lists "
                f"{len(spec.hosts)} hosts (the hosts are the workers in order)"
            )
        return spec
    if sched is not None and "://" not in sched:
        raise UsageError(
            f"{where}: {key}: expected a scheduler address (tcp://HOST:8786) or local:N, "
            f"got {sched!r}"
        )
    if not spec.hosts:
        raise UsageError(f"{where}: host: no [[host]] listed; the fleet needs at least one")
    return spec
