"""A fleet directory: ``fleet.json`` and one ordinary bench result per host, read and written.

Layout::

    fleet.json      format_version, kind, scheduler, suite, codecs, options, when, per host
                    (name, address, worker, payloads, status, error, corpus_digest), and
                    whether the shared corpus was byte-equal on every host
    <host>/         the host's bench result (meta.json with the host's environment and
                    ``fleet`` block, results.parquet, samples.parquet, plots)

:func:`fleet_frame` and :func:`host_frame` put the hosts side by side (one row per codec and
host; one per host with its CPU and its speed against the fleet median); the text is in
:mod:`profiler.bench.fleet_render`.

Format history:

* 1 (hydra-profiler 0.1): first version.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from profiler import atomic
from profiler._files import load_versioned
from profiler.errors import BenchmarkError, UsageError

if TYPE_CHECKING:
    from profiler.bench.fleet import FleetRun, HostOutcome
    from profiler.bench.results import StoredResult

FORMAT_VERSION = 1
KIND = "hydra-profiler-fleet"
INDEX = "fleet.json"
OUTLIER_SHARE = 0.25  # a host this much faster or slower than the fleet median is flagged


@dataclass(frozen=True)
class Fleet:
    """A fleet directory loaded: the index and each successful host's result, by name."""

    path: str
    index: dict[str, Any]
    results: dict[str, StoredResult]


def is_fleet(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, INDEX))


def check_fleet_out(directory: str, host_names: list[str], *, force: bool = False) -> bool:
    """May a fleet's results go to ``directory``? New (created: True returned), empty, or a
    fleet directory replaced with ``force``; anything else is refused (UsageError)."""
    from profiler.bench import results

    if results.created_out(directory, INDEX):
        return True
    if os.listdir(directory):
        if not is_fleet(directory):
            raise UsageError(f"--out {directory}: a non-empty directory that is not a fleet "
                             "result; give a new or empty directory")  # fmt: skip
        if not force:
            raise UsageError(f"--out {directory}: already holds a fleet result; give --force "
                             "to replace it, or another --out")  # fmt: skip
        for name in host_names:  # each host's directory must be a bench result to replace
            if os.path.lexists(os.path.join(directory, name)):
                results.check_out(os.path.join(directory, name), force=True)
    atomic.check_writable(os.path.join(directory, INDEX), error=BenchmarkError)
    return False


def shared_corpus(outcomes: list[HostOutcome]) -> dict[str, Any]:
    """Whether the hosts that measured the shared corpus measured the same bytes, and the
    payloads whose NarHash differs between them (or that some of them lack)."""
    shared = [o for o in outcomes if o.status == "ok" and not o.host.payloads]
    digests = {o.host.name: o.corpus_digest for o in shared}
    names = sorted({n for o in shared for n in o.payload_hashes})
    differ = [n for n in names if len({o.payload_hashes.get(n) for o in shared}) > 1]
    return {
        "hosts": sorted(digests),
        "byte_equal": len(set(digests.values())) == 1 if len(digests) > 1 else None,
        "digests": digests,
        "differing_payloads": differ,
    }


def write_index(out: str, run: FleetRun) -> None:
    """(Re)write ``out/fleet.json`` from the run as it stands."""
    doc = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "scheduler": run.spec.describe(),
        "hosts_file": run.spec.source,
        "started_utc": run.started_utc,
        "updated_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "suite": run.request["suite"],
        "codecs": run.request["codecs"],
        "shared_payloads": run.request["payloads"],
        "options": run.request["options"],
        "hosts": [o.as_dict() for o in run.outcomes],
        "shared_corpus": shared_corpus(run.outcomes),
    }
    text = json.dumps(doc, indent=2) + "\n"
    atomic.write_text(os.path.join(out, INDEX), text, error=BenchmarkError)


def write_host_result(
    directory: str, data: Mapping[str, Any], run: FleetRun, outcome: HostOutcome
) -> None:
    """Write one host's result (as :func:`profiler.bench.fleet.measure_on_host` returned it)
    as an ordinary bench result directory, with a ``fleet`` block in its meta.json."""
    from profiler.bench import plots, results

    meta = dict(data["meta"])
    meta["fleet"] = {
        "host": outcome.host.name,
        "address": outcome.host.address,
        "worker": outcome.worker,
        "ran_on": data.get("ran_on"),
        "scheduler": run.spec.describe(),
        "payloads": "own" if outcome.host.payloads else "shared",
        "corpus_digest": data["corpus_digest"],
    }
    results.write_result(directory, meta, data["rows"], data["samples"])
    try:
        plots.write_plots(results.load_result(directory).rows, directory)
    except OSError as exc:
        raise BenchmarkError(f"{directory}: cannot write plots: {exc.strerror}") from None


def done_line(outcome: HostOutcome, rows: list[dict[str, Any]]) -> str:
    """The progress line of a host that finished."""
    from profiler.bench import derive

    table = derive.overall(pd.DataFrame(rows))
    failed = sum(1 for r in rows if r.get("error"))
    speeds = ", ".join(f"{c} {v:.1f} MB/s" for c, v in table["compress_mb_per_s"].items())
    took = f" in {outcome.elapsed_seconds:.0f} s" if outcome.elapsed_seconds else ""
    tail = f"; {failed} cell(s) failed" if failed else ""
    return f"{outcome.host.name}: done{took} ({len(rows)} cells; compress {speeds}){tail}"


def load_fleet(directory: str) -> Fleet:
    """A fleet directory: its index, and the result of every host whose status is ok."""
    from profiler.bench import results

    index = load_versioned(
        os.path.join(directory, INDEX), kind=KIND, what="fleet result", current=FORMAT_VERSION,
        migrations={}, error=BenchmarkError, owner=directory,
    )  # fmt: skip
    loaded = {}
    for host in index.get("hosts", []):
        if host.get("status") == "ok":
            loaded[host["name"]] = results.load_result(os.path.join(directory, host["result"]))
    return Fleet(directory, index, loaded)


def fleet_frame(fleet: Fleet) -> pd.DataFrame:
    """One row per codec and host: ratio, compress and decompress MB/s (byte-weighted over
    the host's payloads), the fleet median of compress MB/s for the codec, and the host's
    ``speed_vs_median`` (host / median - 1) with ``outlier`` when it is beyond 25%."""
    from profiler.bench import derive

    parts = []
    for name, result in fleet.results.items():
        table = derive.overall(result.rows).reset_index()
        table.insert(0, "host", name)
        parts.append(table[["host", "codec", "nar_bytes", "ratio", "compress_mb_per_s",
                            "decompress_mb_per_s"]])  # fmt: skip
    if not parts:
        return pd.DataFrame(columns=["host", "codec", "nar_bytes", "ratio", "compress_mb_per_s",
                                     "decompress_mb_per_s", "median_compress_mb_per_s",
                                     "speed_vs_median", "outlier"])  # fmt: skip
    frame = pd.concat(parts, ignore_index=True)
    median = frame.groupby("codec", sort=False)["compress_mb_per_s"].transform("median")
    frame["median_compress_mb_per_s"] = median
    frame["speed_vs_median"] = frame["compress_mb_per_s"] / median - 1
    frame["outlier"] = frame["speed_vs_median"].abs() > OUTLIER_SHARE
    return frame


def host_frame(fleet: Fleet, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per host of the index: status, error, CPU model and cores, where its payloads
    came from, and its compress speed against the fleet median (geometric mean over codecs;
    ``outlier`` beyond 25%)."""
    rows = []
    for host in fleet.index.get("hosts", []):
        name = host["name"]
        env = fleet.results[name].meta.get("environment", {}) if name in fleet.results else {}
        ratios = cells.loc[cells["host"] == name, "speed_vs_median"].dropna() + 1
        ratios = ratios[ratios > 0]
        speed = math.exp(float(ratios.map(math.log).mean())) - 1 if len(ratios) else math.nan
        rows.append({
            "host": name, "status": host.get("status"), "error": host.get("error"),
            "cpu_model": env.get("cpu_model"), "cpu_count": env.get("cpu_count"),
            "cpus_usable": env.get("cpus_usable"), "hostname": env.get("hostname"),
            "payloads": "own" if host.get("payloads") != "shared" else "shared",
            "speed_vs_median": speed, "outlier": bool(abs(speed) > OUTLIER_SHARE),
        })  # fmt: skip
    return pd.DataFrame(rows)


def load_bench(directory: str) -> StoredResult:
    """A bench result to take codec profiles from: ``directory`` itself, or, for a fleet
    directory, its typical host's (the one whose compress speed is nearest the fleet median,
    ties to the first listed): a report on the farm is about its usual builder."""
    from profiler.bench import results

    if not is_fleet(directory):
        return results.load_result(directory)
    fleet = load_fleet(directory)
    if not fleet.results:
        raise BenchmarkError(f"{directory}: no host of the fleet has a result")
    hosts = host_frame(fleet, fleet_frame(fleet))
    hosts = hosts[hosts["status"] == "ok"]
    distance = hosts["speed_vs_median"].abs().fillna(math.inf).to_numpy()
    return fleet.results[str(hosts["host"].iloc[int(distance.argmin())])]


def fleet_of(result: StoredResult) -> Fleet | None:
    """The fleet ``result`` is one host of (its parent directory), or None."""
    parent = os.path.dirname(os.path.normpath(result.path))
    if "fleet" not in result.meta or not is_fleet(parent):
        return None
    return load_fleet(parent)
