"""The bench's terminal and JSON reports: per-payload table, weighting and units stated."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from profiler.bench import derive, render

MB = 1_000_000


def cell(payload: str, codec: str, nar: int, packed: int, comp_s: float, **extra: Any) -> dict:
    return {
        "payload": payload,
        "class": "user",
        "codec": codec,
        "spec": codec,
        "writer": "nix",
        "threads": 1,
        "nar_bytes": nar,
        "compressed_bytes": packed,
        "ratio": packed / nar,
        "compress_best_seconds": comp_s,
        "compress_median_seconds": comp_s,
        "compress_cpu_seconds": comp_s,
        "compress_runs": 2,
        "compress_mb_per_s": nar / comp_s / MB,
        "decompress_best_seconds": comp_s / 10,
        "decompress_median_seconds": comp_s / 10,
        "decompress_cpu_seconds": comp_s / 10,
        "decompress_runs": 2,
        "decompress_mb_per_s": nar / (comp_s / 10) / MB,
        "compress_peak_bytes": 1 << 20,
        "decompress_peak_bytes": 1 << 20,
        "throttled": False,
        "notes": "",
        "error": None,
        **extra,
    }


def rows() -> pd.DataFrame:
    # the big payload compresses well and fast, the small one badly and slowly: a byte-weighted
    # figure and a per-payload one differ, and the per-payload table must show both
    return pd.DataFrame(
        [
            cell("big", "xz:6", 90 * MB, 9 * MB, 9.0),
            cell("big", "zstd:3", 90 * MB, 18 * MB, 0.9),
            cell("small", "xz:6", 10 * MB, 8 * MB, 5.0),
            cell("small", "zstd:3", 10 * MB, 9 * MB, 0.5, throttled=True),
        ]
    )


def test_text_report_has_one_row_per_payload_and_codec() -> None:
    text = render.text_report(rows(), {}, derive.Assumptions())
    section = text.split("Per payload (")[1]
    lines = [ln for ln in section.splitlines()[4:] if ln.strip()]  # title, blank, header, rule
    assert len(lines) == 4
    assert lines[0].split()[:2] == ["big", "user"]
    assert " small " in f" {lines[2]} " and "throttled" in lines[3]
    assert "0.100" in lines[0] and "0.800" in lines[2]  # each payload's own ratio
    assert "10.0" in lines[0] and "2.0" in lines[2]  # each payload's own MB/s


def test_text_report_states_units_and_weighting() -> None:
    text = render.text_report(rows(), {}, derive.Assumptions())
    assert "MB/s = 10^6 bytes" in text and "MiB = 2^20 bytes" in text
    assert "byte-weighted over all payloads" in text
    # the per-codec xz:6 ratio is byte-weighted: (9 + 8) / (90 + 10), not the mean 0.45
    assert "0.170" in text.split("Per codec")[1].split("\n\n")[1]


def test_json_report_has_payload_cells_weighting_and_units() -> None:
    doc = json.loads(render.json_report(rows(), {}, derive.Assumptions()))
    assert [(c["payload"], c["codec"]) for c in doc["payloads"]] == [
        ("big", "xz:6"),
        ("big", "zstd:3"),
        ("small", "xz:6"),
        ("small", "zstd:3"),
    ]
    assert doc["payloads"][2]["ratio"] == 0.8
    assert "byte-weighted" in doc["weighting"]["codecs"]
    assert "codecs" in doc and "cells" in doc  # the existing keys are kept


def test_failed_cells_are_not_in_the_payload_table() -> None:
    frame = rows()
    frame.loc[3, ["error", "compressed_bytes"]] = ["boom", None]
    assert len(render.payload_records(frame)) == 3


def test_farm_table_says_what_its_seconds_add_up() -> None:
    a = derive.Assumptions()
    text = render.text_report(rows(), {}, a)
    assert "compress+upload s/GiB" in text and "download+decomp s/GiB" in text
    assert " upload s/GiB" not in text.replace("compress+upload s/GiB", "")
    assert "GiB = 2^30 bytes" in text and "TB = 10^12 bytes" in text
    view = derive.operator_view(derive.overall(rows()), a)
    # xz:6 compresses 100 MB in 14 s best-run time; the column is that plus sending 17 %
    compress = 14.0 * (1 << 30) / (100 * MB)
    upload = (1 << 30) * 0.17 * 8 / a.uplink_bits_per_second
    got = view.loc["xz:6", "compress_and_upload_seconds_per_gib"]
    assert abs(got - (compress + upload)) < 1e-9
    assert got == view.loc["xz:6", "upload_seconds_per_gib"]  # the old key is kept


def test_class_table_names_the_baseline_it_divides_by() -> None:
    frame = rows()
    frame["codec"] = frame["codec"].replace({"xz:6": "xz:1"})
    text = render.text_report(frame, {}, derive.Assumptions())
    assert "size relative to xz:1;" in text and "relative to xz:6" not in text
