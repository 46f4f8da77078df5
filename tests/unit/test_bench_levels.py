"""Level ranges and lists in codec specs (``zstd:1-19``, ``xz:0,6,9e``)."""

from __future__ import annotations

import pytest

from profiler.bench.levels import MAX_LEVELS, expand_spec, expand_specs
from profiler.codecs import parse_spec
from profiler.errors import UsageError


def test_range_expands_to_one_spec_per_level_with_its_options() -> None:
    specs = expand_spec("zstd:1-3:long=27")
    assert specs == ["zstd:1:long=27", "zstd:2:long=27", "zstd:3:long=27"]
    assert [parse_spec(s).level for s in specs] == [1, 2, 3]
    assert {parse_spec(s).long_log for s in specs} == {27}


def test_lists_mix_levels_ranges_and_xz_extreme() -> None:
    specs = expand_spec("xz:0,6,8-9e")
    assert specs == ["xz:0", "xz:6", "xz:8e", "xz:9e"]
    parsed = [parse_spec(s) for s in specs]
    assert [p.extreme for p in parsed] == [False, False, True, True]


def test_single_levels_and_query_strings_pass_through() -> None:
    for text in ("zstd:19", "none", "xz:6:parallel", "compression=zstd&compression-level=3"):
        assert expand_spec(text) == [text]


def test_expand_specs_keeps_order_and_drops_repeats() -> None:
    assert expand_specs(["zstd:3,1", "zstd:1-2", "xz:6"]) == ["zstd:3", "zstd:1", "zstd:2", "xz:6"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("zstd:19-1", "runs backwards (write 1-19)"),
        ("zstd:1-x", "'1-x' is not a level or a range"),
        ("zstd:1,,3", "'' is not a level or a range"),
        (f"zstd:1-{MAX_LEVELS + 1}", f"has {MAX_LEVELS + 1} levels"),
    ],
)
def test_bad_ranges_are_one_line_errors(text: str, words: str) -> None:
    with pytest.raises(UsageError) as err:
        expand_spec(text)
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_the_cli_rejects_a_bad_range_before_any_work(tmp_path, capsys) -> None:
    from profiler.cli import main

    out = tmp_path / "r"
    assert main(["bench", "--codec", "zstd:9-3", "--out", str(out)]) != 0
    assert "runs backwards" in capsys.readouterr().err
    assert not out.exists()
