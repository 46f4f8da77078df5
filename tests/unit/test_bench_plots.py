"""Bench plots: byte-weighted overall figures, the Pareto front, and the PNG files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.image
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.patches import Rectangle

from profiler.bench import derive, plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAN = math.nan


def _cell(
    payload: str,
    klass: str,
    codec: str,
    nar: int,
    compressed: int,
    compress_s: float,
    decompress_s: float,
) -> dict[str, Any]:
    return {
        "payload": payload,
        "class": klass,
        "codec": codec,
        "nar_bytes": nar,
        "compressed_bytes": compressed,
        "ratio": compressed / nar,
        "compress_best_seconds": compress_s,
        "compress_mb_per_s": nar / compress_s / 1e6,
        "decompress_best_seconds": decompress_s,
        "decompress_mb_per_s": nar / decompress_s / 1e6,
        "compress_peak_bytes": 96 << 20,
        "decompress_peak_bytes": 8 << 20,
        "error": None,
    }


def _failed(payload: str, klass: str, codec: str, nar: int, error: str) -> dict[str, Any]:
    return {
        "payload": payload,
        "class": klass,
        "codec": codec,
        "nar_bytes": nar,
        "compressed_bytes": None,
        "ratio": NAN,
        "compress_best_seconds": NAN,
        "compress_mb_per_s": NAN,
        "decompress_best_seconds": NAN,
        "decompress_mb_per_s": NAN,
        "compress_peak_bytes": None,
        "decompress_peak_bytes": None,
        "error": error,
    }


ELF, PY = 40_000_000, 24_000_000


@pytest.fixture
def rows() -> pd.DataFrame:
    """2 classes x 3 codecs, plus a huge payload whose zstd:3 cell failed.

    Overall, zstd:19 compresses worse than xz:6 and more slowly, so it is dominated.
    """
    return pd.DataFrame(
        [
            _cell("coreutils", "elf", "xz:6", ELF, 10_000_000, 8.0, 0.5),
            _cell("coreutils", "elf", "zstd:19", ELF, 11_000_000, 16.0, 0.0625),
            _cell("coreutils", "elf", "zstd:3", ELF, 14_000_000, 0.125, 0.03125),
            _failed("chromium", "elf", "zstd:3", 1_000_000_000, "worker killed: out of memory"),
            _cell("python3", "python", "xz:6", PY, 4_000_000, 4.0, 0.25),
            _cell("python3", "python", "zstd:19", PY, 4_800_000, 8.0, 0.03125),
            _cell("python3", "python", "zstd:3", PY, 7_200_000, 0.0625, 0.015625),
        ]
    )


def test_overall_is_byte_weighted_over_successful_cells(rows: pd.DataFrame) -> None:
    table = derive.overall(rows)
    assert list(table.index) == ["xz:6", "zstd:19", "zstd:3"]
    assert list(table.columns)[:5] == [
        "nar_bytes",
        "compressed_bytes",
        "ratio",
        "compress_mb_per_s",
        "decompress_mb_per_s",
    ]
    zstd3 = table.loc["zstd:3"]
    # The failed chromium cell (1 GB NAR, no figures) is not counted.
    assert zstd3["nar_bytes"] == ELF + PY
    assert zstd3["compressed_bytes"] == 14_000_000 + 7_200_000
    assert zstd3["ratio"] == (14_000_000 + 7_200_000) / (ELF + PY)
    assert zstd3["compress_mb_per_s"] == (ELF + PY) / (0.125 + 0.0625) / 1e6
    assert zstd3["decompress_mb_per_s"] == (ELF + PY) / (0.03125 + 0.015625) / 1e6
    xz = table.loc["xz:6"]
    assert xz["ratio"] == 14_000_000 / 64_000_000
    assert xz["compress_mb_per_s"] == 64_000_000 / 12.0 / 1e6
    # Sum/sum, not the mean of the per-cell ratios.
    assert xz["ratio"] != (10 / 40 + 4 / 24) / 2


def test_overall_drops_codecs_with_only_failed_cells(rows: pd.DataFrame) -> None:
    extra = pd.DataFrame([_failed("coreutils", "elf", "zstd:22:long=31", ELF, "bad window")])
    table = derive.overall(pd.concat([extra, rows], ignore_index=True))
    assert list(table.index) == ["xz:6", "zstd:19", "zstd:3"]


def test_overall_of_only_failures_is_empty(rows: pd.DataFrame) -> None:
    table = derive.overall(rows[rows["error"].notna()])
    assert table.empty
    assert "ratio" in table.columns


def test_class_ratios_are_sum_over_sum_per_class(rows: pd.DataFrame) -> None:
    table = derive.class_ratios(rows)
    assert list(table.index) == ["elf", "python"]
    assert list(table.columns) == ["xz:6", "zstd:19", "zstd:3"]
    assert table.at["elf", "zstd:3"] == 14_000_000 / ELF
    assert table.at["python", "xz:6"] == 4_000_000 / PY


def _table(points: dict[str, tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(
        points, orient="index", columns=["ratio", "compress_mb_per_s"]
    ).rename_axis("codec")


def test_pareto_codecs_drops_dominated_ones() -> None:
    table = _table(
        {
            "xz:6": (0.30, 3.0),
            "zstd:19": (0.32, 2.5),  # worse and slower than xz:6
            "xz:9": (0.30, 2.0),  # ties xz:6 on ratio, slower: dominated
            "zstd:3": (0.40, 300.0),
            "gzip:6": (0.42, 40.0),  # worse and slower than zstd:3
            "zstd:-1": (0.45, 600.0),
        }
    )
    assert derive.pareto_codecs(table) == ["xz:6", "zstd:3", "zstd:-1"]


def test_pareto_codecs_keeps_identical_points() -> None:
    table = _table({"a": (0.5, 10.0), "b": (0.5, 10.0), "c": (0.6, 5.0)})
    assert derive.pareto_codecs(table) == ["a", "b"]


def test_pareto_codecs_of_overall(rows: pd.DataFrame) -> None:
    assert derive.pareto_codecs(derive.overall(rows)) == ["xz:6", "zstd:3"]


def _scatter(fig: Any, label: str) -> PathCollection:
    (ax,) = fig.axes
    found = [c for c in ax.collections if c.get_label() == label]
    assert len(found) == 1, [c.get_label() for c in ax.collections]
    assert isinstance(found[0], PathCollection)
    return found[0]


def test_tradeoff_plot_highlights_exactly_the_pareto_set(rows: pd.DataFrame) -> None:
    fig = plots.plot_tradeoff(rows)
    table = derive.overall(rows)
    (ax,) = fig.axes
    assert ax.get_title() == "Codec trade-off: ratio vs compression speed"
    assert ax.get_yscale() == "linear"
    assert ax.get_xscale() == "log"
    assert ax.get_ylabel() == "compressed size / NAR size"

    def points(codecs: list[str]) -> list[tuple[float, float]]:
        return [(table.at[c, "compress_mb_per_s"], table.at[c, "ratio"]) for c in codecs]

    highlighted = [tuple(p) for p in _scatter(fig, "Pareto-optimal").get_offsets()]
    others = [tuple(p) for p in _scatter(fig, "dominated").get_offsets()]
    assert highlighted == pytest.approx(points(["xz:6", "zstd:3"]))
    assert others == pytest.approx(points(["zstd:19"]))
    assert sorted(t.get_text() for t in ax.texts) == ["xz:6", "zstd:19", "zstd:3"]


def test_decompress_plot_has_one_bar_per_codec(rows: pd.DataFrame) -> None:
    (ax,) = plots.plot_decompress(rows).axes
    widths = [p.get_width() for p in ax.patches if isinstance(p, Rectangle)]
    assert widths == pytest.approx(list(derive.overall(rows)["decompress_mb_per_s"]))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["xz:6", "zstd:19", "zstd:3"]


def test_class_ratio_plot_groups_bars_by_class(rows: pd.DataFrame) -> None:
    (ax,) = plots.plot_class_ratios(rows).axes
    heights = [p.get_height() for p in ax.patches if isinstance(p, Rectangle)]
    # Codec by codec, each over the classes.
    assert heights == pytest.approx(list(derive.class_ratios(rows).to_numpy().T.ravel()))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["elf", "python"]


def test_write_plots_writes_three_readable_pngs(rows: pd.DataFrame, tmp_path: Path) -> None:
    directory = tmp_path / "result" / "plots"
    paths = plots.write_plots(rows, str(directory))
    assert [Path(p).name for p in paths] == ["tradeoff.png", "decompress.png", "class_ratios.png"]
    for path in paths:
        data = Path(path).read_bytes()
        assert data.startswith(PNG_SIGNATURE), path
        image = matplotlib.image.imread(path)
        height, width = image.shape[:2]
        assert width > 300 and height > 200, (path, image.shape)


def test_write_plots_without_successful_cells_writes_nothing(
    rows: pd.DataFrame, tmp_path: Path
) -> None:
    directory = tmp_path / "plots"
    assert plots.write_plots(rows[rows["error"].notna()], str(directory)) == []
    assert plots.write_plots(pd.DataFrame(), str(directory)) == []
    assert not directory.exists()
