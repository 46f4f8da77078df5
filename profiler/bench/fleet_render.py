"""A fleet side by side, as text (``bench --fleet``, ``compare FLEET_DIR``) and JSON.

The text is one row per codec with a column group per host (compress MB/s, ratio), a row
per host with its CPU model and cores and its speed against the fleet median, failures in
one line each, and whether the shared corpus was the same bytes everywhere.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from profiler.bench.fleet_view import OUTLIER_SHARE, Fleet, fleet_frame, host_frame
from profiler.units import format_share

FLAG = "!"


def _mbps(value: float, outlier: bool) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.1f}" + (FLAG if outlier else " ")


def _grid(headers: list[list[str]], rows: list[list[str]], left: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in [*headers, *rows]) for i in range(len(headers[-1]))]

    def line(cells: list[str], all_left: bool = False) -> str:
        return "  ".join(
            c.ljust(w) if all_left or i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(h, all_left=h is not headers[-1]) for h in headers]
    out.append("  ".join("-" * w for w in widths))
    return out + [line(r) for r in rows]


def codec_lines(cells: pd.DataFrame, hosts: list[str]) -> list[str]:
    """One row per codec, a column group per host: compress MB/s and ratio."""
    top, header = [""], ["codec"]
    for h in hosts:
        top += [h, ""]
        header += ["comp MB/s", "ratio"]
    rows = []
    for codec, group in cells.groupby("codec", sort=False):
        by_host = {r["host"]: r for r in group.to_dict("records")}
        row = [str(codec)]
        for h in hosts:
            r = by_host.get(h)
            row += (
                ["-", "-"]
                if r is None
                else [_mbps(r["compress_mb_per_s"], bool(r["outlier"])), f"{r['ratio']:.3f}"]
            )
        rows.append(row)
    return _grid([top, header], rows, {0})


def _share(value: float) -> str:
    """A signed share, with no "-0.0%" for a speed a hair below the median."""
    if not _missing(value) and abs(value) < 0.0005:
        value = 0.0
    return format_share(value, signed=True, missing="-")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cores(r: Any) -> str:
    if _missing(r["cpu_count"]):
        return "-"
    return f"{int(r['cpus_usable'] or r['cpu_count'])}/{int(r['cpu_count'])}"


def host_lines(hosts: pd.DataFrame) -> list[str]:
    """One row per host: status, CPU model, usable/all cores, payloads, speed vs median."""
    header = ["host", "status", "CPU", "cores", "payloads", "speed vs median"]
    rows = []
    for r in hosts.to_dict("records"):
        speed = _share(r["speed_vs_median"])
        cpu = "-" if _missing(r["cpu_model"]) else str(r["cpu_model"])
        rows.append([r["host"], r["status"], cpu, _cores(r), r["payloads"],
                     speed + (FLAG if r["outlier"] else "")])  # fmt: skip
    return _grid([header], rows, {0, 1, 2, 4})


def corpus_line(index: dict[str, Any]) -> str:
    """Whether the shared corpus was byte-equal on the hosts that measured it."""
    shared = index.get("shared_corpus", {})
    digests = shared.get("digests", {})
    if not digests:
        return "shared corpus: measured on no host"
    if shared.get("byte_equal") is None:
        return f"shared corpus: measured on {', '.join(digests)} only"
    if shared["byte_equal"]:
        digest = next(iter(digests.values()))
        return f"shared corpus: byte-equal on {', '.join(digests)} ({digest[:23]}...)"
    differ = ", ".join(shared.get("differing_payloads", [])) or "?"
    return (f"shared corpus: NOT byte-equal on {', '.join(digests)} (payloads that differ: "
            f"{differ}): their ratios and speeds are of different bytes")  # fmt: skip


def fleet_text(fleet: Fleet) -> str:
    """The fleet side by side, for the terminal."""
    index = fleet.index
    cells = fleet_frame(fleet)
    hosts = host_frame(fleet, cells)
    failed = hosts[hosts["status"] != "ok"]
    head = (f"Fleet bench of suite {index.get('suite')} on {index.get('scheduler')}: "
            f"{len(hosts)} hosts, {len(hosts) - len(failed)} measured")  # fmt: skip
    parts = [head + ("" if cells.empty else "; compress MB/s and ratio per host:")]
    if not cells.empty:
        parts.append("\n".join(codec_lines(cells, list(fleet.results))))
    parts.append("\n".join(host_lines(hosts)))
    notes = [f"{r['host']}: FAILED: {r['error']}" for r in failed.to_dict("records")]
    if (cells["outlier"].any() if not cells.empty else False) or hosts["outlier"].any():
        notes.append(f"{FLAG} more than {OUTLIER_SHARE:.0%} from the fleet median compress speed "
                     "(per codec; a host's: geometric mean over codecs)")  # fmt: skip
    notes.append(corpus_line(index))
    parts.append("\n".join(notes))
    return "\n\n".join(parts) + "\n"


def fleet_json(fleet: Fleet) -> str:
    """The fleet as JSON: the index, one record per codec and host, one per host."""
    cells = fleet_frame(fleet)
    hosts = host_frame(fleet, cells)
    doc = {
        "fleet": fleet.index,
        "cells": json.loads(cells.to_json(orient="records")),
        "hosts": json.loads(hosts.to_json(orient="records")),
    }
    return json.dumps(doc, indent=2) + "\n"


def wide_frame(fleet: Fleet) -> tuple[pd.DataFrame, str]:
    """The codec rows as a table (``codec``, then ``<host> comp MB/s`` and ``<host> ratio``
    per host) and a caption with each host's CPU, the flags and the corpus line, for a report.
    """
    cells = fleet_frame(fleet)
    hosts = host_frame(fleet, cells)
    wide = pd.DataFrame({"codec": pd.unique(cells["codec"])})
    for name in fleet.results:
        mine = cells[cells["host"] == name].set_index("codec")
        wide[f"{name} comp MB/s"] = wide["codec"].map(mine["compress_mb_per_s"])
        wide[f"{name} ratio"] = wide["codec"].map(mine["ratio"])
    about = []
    for r in hosts.to_dict("records"):
        if r["status"] != "ok":
            about.append(f"{r['host']}: FAILED: {r['error']}")
            continue
        speed = _share(r["speed_vs_median"])
        flag = f" ({FLAG} over {OUTLIER_SHARE:.0%} from the median)" if r["outlier"] else ""
        about.append(f"{r['host']}: {r['cpu_model']}, {_cores(r)} cores, {speed} vs median{flag}")
    caption = "; ".join(about) + ". " + corpus_line(fleet.index) + "."
    return wide, caption
