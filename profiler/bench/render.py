"""Bench results as text tables (terminal), JSON and CSV (machines)."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from profiler.bench import derive
from profiler.bench.stored import stored_summary
from profiler.units import format_bytes


def _num(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:,.{digits}f}"


def _mib(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value / (1 << 20):.0f}"


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def codec_table(table: pd.DataFrame, view: pd.DataFrame) -> str:
    base = derive.baseline_codec(table)
    header = [
        "codec",
        "ratio",
        f"size vs {base}",
        "comp MB/s",
        "decomp MB/s",
        "CPU s/GiB",
        "peak MiB c/d",
        "threads",
        "pareto",
    ]
    rows = []
    for codec, r in table.iterrows():
        v = view.loc[str(codec)]
        rows.append(
            [
                str(codec),
                _num(r["ratio"], 3),
                f"{v['size_vs_baseline']:.2f}x",
                _num(r["compress_mb_per_s"]),
                _num(r["decompress_mb_per_s"], 0),
                _num(r["compress_cpu_seconds_per_gib"], 0),
                f"{_mib(r['compress_peak_bytes'])}/{_mib(r['decompress_peak_bytes'])}",
                str(int(r["threads"])),
                "*" if v["pareto"] else "",
            ]
        )
    return _table(header, rows)


def farm_table(view: pd.DataFrame, a: derive.Assumptions) -> str:
    header = [
        "codec",
        "CPU-h/day",
        "cores",
        "TB/month",
        "$/month",
        "download+decomp s/GiB",
        "compress+upload s/GiB",
    ]
    rows = [
        [
            str(codec),
            _num(v["cpu_hours_per_day"]),
            _num(v["cores_busy"]),
            _num(v["stored_tb_per_month"], 2),
            _num(v["storage_usd_per_month"], 0),
            _num(v["client_seconds_per_gib"]),
            _num(v["upload_seconds_per_gib"]),
        ]
        for codec, v in view.iterrows()
    ]
    title = (
        f"At {format_bytes(a.daily_nar_bytes)} of NAR a day, "
        f"${a.storage_usd_per_tb_month:g}/TB-month, clients on "
        f"{a.client_link_bits_per_second / 1e6:g} Mbit/s, builders on "
        f"{a.uplink_bits_per_second / 1e6:g} Mbit/s:"
    )
    return title + "\n" + _table(header, rows)


def class_table(classes: pd.DataFrame) -> str:
    codecs = [c for c in classes.columns if c != "nar_bytes"]
    base = "xz:6" if "xz:6" in codecs else codecs[0]
    header = ["class", "NarSize", *[f"{c} ratio" if c == base else c for c in codecs]]
    rows = []
    for klass, r in classes.iterrows():
        cells = [str(klass), format_bytes(r["nar_bytes"])]
        for c in codecs:
            cell = _num(r[c], 3)
            if c != base and r[base] and not math.isnan(r[c]):
                cell += f" ({r[c] / r[base]:.2f}x)"
            cells.append(cell)
        rows.append(cells)
    return _table(header, rows)


UNITS = (
    "Units: MB/s = 10^6 bytes of NAR per second of the best run's wall time (as lzbench "
    "and zstd report it); MiB = 2^20 bytes; ratio = compressed bytes / NAR bytes (lower is "
    "smaller); GiB = 2^30 bytes of NAR; TB = 10^12 bytes stored; Mbit/s = 10^6 bits/s."
)
WEIGHTING = {
    "codecs": "byte-weighted over all payloads: sum of compressed bytes / sum of NAR bytes, "
    "sum of NAR bytes / sum of best seconds (a large payload counts for what it weighs)",
    "classes": "byte-weighted within each class, same sums",
    "payloads": "one cell each: that payload's bytes and best run",
}


def _flags(r: dict[str, Any]) -> str:
    marks = []
    if r.get("contended"):
        marks.append("contended")
    if r.get("throttled"):
        marks.append("throttled")
    if r.get("stored"):
        marks.append("stored in cache")
    return ", ".join(marks)


def _stored_text(rows: list[dict[str, Any]]) -> str:
    summary = stored_summary(rows) or {}
    said = [
        f"{m} on {s['payloads']} payload(s), ratio {s['ratio']:.3f} "
        f"({format_bytes(s['compressed_bytes'])} of {format_bytes(s['nar_bytes'])})"
        for m, s in summary.items()
    ]
    return (
        "What the cache stores (reference, not measured: sum FileSize / sum NarSize): "
        + "; ".join(said)
    )


def payload_records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """One record per payload x codec cell with figures (failed cells are left out)."""
    ok = derive.successful(rows)
    keep = ["payload", "class", "codec", "nar_bytes", "compressed_bytes", "ratio"]
    keep += ["compress_mb_per_s", "decompress_mb_per_s"]
    keep += [c for c in ("throttled", "contended", "stored") if c in ok.columns]
    return [{str(k): v for k, v in r.items()} for r in ok[keep].to_dict("records")]


def _with_stored(
    records: list[dict[str, Any]], stored: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``records`` with each payload's stored reference row after its measured ones."""
    refs = {r["payload"]: {**r, "stored": True} for r in stored}
    out: list[dict[str, Any]] = []
    for i, r in enumerate(records):
        out.append(r)
        following = records[i + 1]["payload"] if i + 1 < len(records) else None
        if following != r["payload"] and r["payload"] in refs:
            ref = refs.pop(r["payload"])
            out.append({**ref, "compress_mb_per_s": None, "decompress_mb_per_s": None})
    return out


def payload_table(rows: pd.DataFrame, stored: list[dict[str, Any]] | None = None) -> str:
    """The lzbench-style table: one row per payload x codec, payloads in measured order;
    a payload read from a binary cache also gets a row for what the cache stores."""
    header = ["payload", "class", "NarSize", "codec", "ratio", "comp MB/s", "decomp MB/s", "flags"]
    lines = []
    last = None
    for r in _with_stored(payload_records(rows), stored or []):
        first = r["payload"] != last
        last = r["payload"]
        lines.append(
            [
                str(r["payload"]) if first else "",
                str(r["class"]) if first else "",
                format_bytes(r["nar_bytes"]) if first else "",
                str(r["codec"]),
                _num(r["ratio"], 3),
                _num(r["compress_mb_per_s"]),
                _num(r["decompress_mb_per_s"], 0),
                _flags(r),
            ]
        )
    return _table(header, lines, left=4)


def text_report(rows: pd.DataFrame, meta: dict[str, Any], a: derive.Assumptions) -> str:
    """The terminal report: per codec, what it means for the farm, per class, and notes."""
    parts = []
    if rows["error"].isna().any():
        table = derive.overall(rows)
        view = derive.operator_view(table, a)
        env = meta.get("environment", {})
        parts.append(
            f"Codecs over {rows['payload'].nunique()} payloads "
            f"({format_bytes(table['nar_bytes'].iloc[0])} of NAR) on "
            f"{env.get('cpu_model', '?')} x{env.get('cpus_usable', '?')}, "
            f"liblzma {env.get('liblzma_version', '?')}, "
            f"libzstd {env.get('libzstd_version', '?')}:"
        )
        parts.append(UNITS)
        parts.append(f"Per codec ({WEIGHTING['codecs']}):")
        parts.append(codec_table(table, view))
        if meta.get("stored"):
            parts.append(_stored_text(meta["stored"]))
        parts.append(farm_table(view, a))
        parts.append(
            "Ratio by payload class (in brackets: size relative to "
            f"{derive.baseline_codec(table)}; {WEIGHTING['classes']}):"
        )
        parts.append(class_table(derive.per_class(rows)))
        parts.append(f"Per payload ({WEIGHTING['payloads']}):")
        parts.append(payload_table(rows, meta.get("stored")))
    records = rows.to_dict("records")
    notes = [f"{r['payload']} {r['codec']}: {r['notes']}" for r in records if r["notes"]]
    notes += [
        f"{r['payload']} {r['codec']}: FAILED: {r['error']}"
        for r in records
        if isinstance(r["error"], str)
    ]
    if notes:
        parts.append("Notes:\n" + "\n".join(f"  - {n}" for n in dict.fromkeys(notes)))
    return "\n\n".join(parts) + "\n"


def json_report(rows: pd.DataFrame, meta: dict[str, Any], a: derive.Assumptions) -> str:
    doc: dict[str, Any] = {"meta": meta, "cells": json.loads(rows.to_json(orient="records"))}
    ok = derive.successful(rows)
    if len(ok):
        table = derive.overall(rows)
        view = derive.operator_view(table, a)
        doc["codecs"] = json.loads(table.join(view).reset_index().to_json(orient="records"))
        doc["pareto"] = derive.pareto_codecs(table)
        doc["assumptions"] = a.__dict__
        cells = pd.DataFrame(payload_records(rows))
        doc["payloads"] = json.loads(cells.to_json(orient="records"))
        doc["weighting"] = WEIGHTING
        doc["units"] = UNITS
        if meta.get("stored"):
            doc["stored"] = {
                "payloads": meta["stored"],
                "by_method": stored_summary(meta["stored"]),
            }
    return json.dumps(doc, indent=2, default=str) + "\n"


def csv_report(rows: pd.DataFrame) -> str:
    return str(rows.to_csv(index=False))
