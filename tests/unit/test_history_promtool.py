"""Reading `promtool tsdb dump` lines (prometheus v2.42.0 cmd/promtool/tsdb.go: ``%s %g %d``
of labels.String(), the value, the milliseconds) and the selectors collect history writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler.collect.history.importer import query, rest_of_target
from profiler.collect.history.promtool import (
    DumpFile,
    TsdbDump,
    go_unquote,
    matches,
    parse_line,
    parse_selector,
)
from profiler.errors import CollectorError, UsageError

LINE = (
    '{__name__="hydraqueuerunner_steps_done", instance="127.0.0.1:9198", job="hydra"} '
    "1.5e+06 1764806400123"
)


def test_a_line_is_labels_seconds_and_the_value_text() -> None:
    labels, ts, value = parse_line(LINE + "\n")  # type: ignore[misc]
    assert labels == {"__name__": "hydraqueuerunner_steps_done", "instance": "127.0.0.1:9198",
                      "job": "hydra"}  # fmt: skip
    assert ts == 1764806400.123 and value == "1.5e+06" and float(value) == 1.5e6


def test_go_quoted_values_are_unescaped() -> None:
    # strconv.Quote: \\ \" \n \t, \x for bytes, \u for unprintable runes; printable UTF-8 as is
    assert go_unquote(r"a\"b\\c\nd\te\x41\u00e9Ω") == 'a"b\\c\nd\teAéΩ'
    labels, _, _ = parse_line(r'{__name__="m", machine="ssh://b\"1\", x"} 2 1000')  # type: ignore[misc]
    assert labels["machine"] == 'ssh://b"1", x'


@pytest.mark.parametrize(
    "line",
    [
        '{__name__="m"} NaN 1000',  # a staleness marker: a range query never returns it
        '{__name__="h"} {count:3, sum:1.5, [0,1]:3} 1000',  # a native histogram
        "",
    ],
)
def test_points_a_range_query_would_not_give_are_skipped(line: str) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize("line", ["garbage", '{__name__="m"} 1', '{__name__="m"} one 1000',
                                  '{__name__="m"} 1 1.5'])  # fmt: skip
def test_a_malformed_line_is_an_error(line: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the caller turns it into file:line
        parse_line(line)


def test_the_importers_selectors_match_as_prometheus_would() -> None:
    runner = parse_selector(query('job="hydra"'))
    assert matches({"__name__": "hydraqueuerunner_steps_done", "job": "hydra"}, runner)
    assert matches({"__name__": "hydra_queue_runner_running", "job": "hydra"}, runner)
    assert not matches({"__name__": "hydraqueuerunner_x", "job": "other"}, runner)
    assert not matches({"__name__": "xhydraqueuerunner_x", "job": "hydra"}, runner)  # anchored
    rest = parse_selector(rest_of_target("hydra", 'h"1'))
    target = {"job": "hydra", "instance": 'h"1'}
    assert matches({"__name__": "process_cpu_seconds_total", **target}, rest)
    assert not matches({"__name__": "up", **target}, rest)  # Prometheus' own
    assert not matches({"__name__": "hydraqueuerunner_x", **target}, rest)  # the first query's
    assert not matches({"__name__": "process_cpu_seconds_total", "job": "hydra"}, rest)
    with pytest.raises(UsageError, match="matcher"):
        parse_selector("{job=hydra}")


def test_a_dump_file_gives_the_chunks_points_and_a_bad_line_its_place(tmp_path: Path) -> None:
    dump = tmp_path / "dump.txt"
    lines = [
        '{__name__="hydraqueuerunner_steps_done", instance="i", job="hydra"} 1 1000',
        '{__name__="hydraqueuerunner_steps_done", instance="i", job="hydra"} 2 2000',
        '{__name__="hydraqueuerunner_steps_done", instance="i", job="hydra"} NaN 2500',
        '{__name__="hydraqueuerunner_steps_done", instance="i", job="hydra"} 3 3000',
        '{__name__="up", instance="i", job="hydra"} 1 1000',
    ]
    dump.write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = DumpFile(str(dump))
    got = source.query_range(query(), 1.0, 2.0, 1.0)  # [1, 3): the chunk's own points
    assert [(s.labels["__name__"], s.points) for s in got] == [
        ("hydraqueuerunner_steps_done", [(1.0, "1"), (2.0, "2")])
    ]
    with pytest.raises(CollectorError, match="a dump keeps no"):
        source.metadata()
    dump.write_text(lines[0] + "\n" + "{oops\n", encoding="utf-8")
    with pytest.raises(CollectorError, match=r"dump.txt:2: not a `promtool tsdb dump` line"):
        DumpFile(str(dump)).query_range(query(), 0, 10, 1)


def test_a_tsdb_must_look_like_one_and_promtool_must_run(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        TsdbDump(str(tmp_path / "absent"))
    with pytest.raises(UsageError, match="no TSDB blocks"):
        TsdbDump(str(tmp_path))
    (tmp_path / "wal").mkdir()
    tsdb = TsdbDump(str(tmp_path), promtool=str(tmp_path / "no-promtool"))
    with pytest.raises(CollectorError, match=r"cannot run .*install"):
        tsdb.query_range(query(), 0, 10, 1)
