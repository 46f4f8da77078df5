"""Hypothesis: random damage to a real small run, then export, analyze and report.

Damage: truncation, bit flips, random bytes, a file removed or replaced by a directory,
absurdly nested JSON, wrong types and missing keys anywhere in the manifest, hostile names,
extra files (segments, parts and compacted files that are garbage or hold wrong types),
Parquet columns dropped, retyped or made NaN/infinite. Every command must give a correct
result or exit 1 with one line naming the run, never a traceback; JSON output stays strict
JSON; and rows never vanish without a warning, except where no store could tell (a segment
cut at a line boundary or removed, or the manifest told it was absorbed).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.runhelp import STATUS, cli, one_line_error

NAMES = [
    "../../../victim.txt",
    "/etc/hostname",
    "compacted-20000101T000000.000000Z.parquet",
    "part-20000101T000000.000000Z-1-000001.parquet",
    "20000101T000000.000000Z-1-000001.jsonl",
    "..",
    "",
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
    | st.sampled_from(NAMES),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
MANIFEST_KEYS = [
    ("compacted",), ("compacted", "samples"), ("compacted", "samples", "parquet"),
    ("compacted", "samples", "segments"), ("compacted", "samples", "pending"),
    ("compacted", "samples", "rows"), ("compacted", "log_events"), ("sources",),
    ("sources", 0), ("notes",), ("format_version",), ("kind",), ("host",),
]  # fmt: skip
SEGMENT_LINES = st.lists(
    st.fixed_dictionaries(
        {"ts": JSON_VALUES, "metric": JSON_VALUES, "value": JSON_VALUES},
        optional={"kind": JSON_VALUES, "machine": JSON_VALUES, "source": JSON_VALUES},
    ).map(lambda d: json.dumps(d))
    | st.just("[" * 50000)
    | st.text(max_size=20),
    min_size=1,
    max_size=4,
)


def _files(run: Path) -> list[str]:
    return sorted(
        str(p.relative_to(run))
        for p in run.rglob("*")
        if p.is_file() and not p.name.endswith(".lock")
    )


@st.composite
def damages(draw: st.DrawFn, files: list[str]) -> list[tuple[str, Any]]:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(
            ["truncate", "flip", "bytes", "remove", "dir", "nested", "manifest_set",
             "manifest_del", "extra", "parquet"]
        ))  # fmt: skip
        name = draw(st.sampled_from(files))
        if kind == "truncate":
            out.append((kind, (name, draw(st.floats(0, 1)))))
        elif kind == "flip":
            flips = draw(
                st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)), min_size=1, max_size=4)
            )
            out.append((kind, (name, flips)))
        elif kind == "bytes":
            out.append((kind, (name, draw(st.binary(max_size=64)))))
        elif kind in ("remove", "dir", "nested"):
            out.append((kind, name))
        elif kind == "manifest_set":
            out.append((kind, (draw(st.sampled_from(MANIFEST_KEYS)), draw(JSON_VALUES))))
        elif kind == "manifest_del":
            out.append((kind, draw(st.sampled_from(MANIFEST_KEYS))))
        elif kind == "extra":
            table = draw(st.sampled_from(["samples", "events", "log_events", "newtable"]))
            fname = draw(st.sampled_from([*NAMES[2:5], "x.jsonl", "junk", ".hidden.jsonl"]))
            content = draw(
                st.binary(max_size=32) | SEGMENT_LINES.map(lambda ls: "\n".join(ls).encode())
            )
            out.append((kind, (table, fname, content)))
        else:
            column = draw(st.sampled_from(["ts", "value", "metric", "kind", "event", "nar_bytes"]))
            how = draw(st.sampled_from(["drop", "text", "nan", "inf", "null"]))
            out.append((kind, (name, column, how)))
    return out  # fmt: skip


def _parquet(path: Path, column: str, how: str) -> None:
    table = pq.read_table(path)
    if column not in table.column_names:
        return
    i = table.schema.get_field_index(column)
    n = table.num_rows
    if how == "drop":
        table = table.remove_column(i)
    else:
        values = {
            "text": pa.array(["abc"] * n),
            "nan": pa.array([math.nan] * n),
            "inf": pa.array([math.inf] * n),
            "null": pa.nulls(n, table.schema.field(i).type),
        }[how]
        table = table.set_column(i, column, values)
    pq.write_table(table, path)


def _set(doc: Any, keys: tuple[Any, ...], value: Any, delete: bool = False) -> None:
    for key in keys[:-1]:
        try:
            doc = doc[key]
        except (KeyError, IndexError, TypeError):
            return
    try:
        if delete:
            del doc[keys[-1]]
        else:
            doc[keys[-1]] = value
    except (KeyError, IndexError, TypeError):
        pass


def _damage_manifest(run: Path, kind: str, arg: Any) -> bool:
    path = run / "manifest.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):  # damaged already
        return False
    keys = arg if kind == "manifest_del" else arg[0]
    _set(doc, keys, None if kind == "manifest_del" else arg[1], delete=kind == "manifest_del")
    path.write_text(json.dumps(doc))
    return "segments" in keys or keys[-1] in ("samples", "log_events")


def _damage_file(path: Path, kind: str, arg: Any) -> bool:
    data = path.read_bytes()
    segment = path.name.endswith(".jsonl")
    if kind == "truncate":
        path.write_bytes(data[: int(len(data) * arg[1])])
        return segment
    if kind == "flip":
        b = bytearray(data)
        for where, bit in arg[1]:
            if b:
                b[min(int(where * len(b)), len(b) - 1)] ^= 1 << bit
        path.write_bytes(bytes(b))
    elif kind == "bytes":
        path.write_bytes(arg[1])
        return segment and not arg[1].strip()
    elif kind in ("remove", "dir"):
        path.unlink()
        if kind == "dir":
            path.mkdir()
        return segment and kind == "remove"
    elif kind == "nested":
        path.write_text("[" * 100000)
    elif kind == "parquet" and path.name.endswith(".parquet"):
        try:
            _parquet(path, arg[1], arg[2])
        except (OSError, pa.ArrowException):
            pass
    return False


def apply(run: Path, damage: list[tuple[str, Any]]) -> bool:
    """Damage ``run``; whether rows may vanish without a warning (see the module doc)."""
    silent_ok = False
    for kind, arg in damage:
        if kind in ("manifest_set", "manifest_del"):
            silent_ok |= _damage_manifest(run, kind, arg)
        elif kind == "extra":
            table, fname, content = arg
            (run / "tables" / table).mkdir(parents=True, exist_ok=True)
            (run / "tables" / table / fname).write_bytes(content)
        else:
            path = run / (arg[0] if isinstance(arg, tuple) else arg)
            if path.is_file():
                silent_ok |= _damage_file(path, kind, arg)
    return silent_ok


def check(run: Path, *args: str | Path) -> tuple[int, str, str]:
    code, out, err = cli(*args)
    assert code in (0, 1), (args, code, err)
    assert "Traceback" not in err
    if code == 1:
        one_line_error(err, run)
    return code, out, err


def _rows(csv_text: str) -> int:
    return max(len(csv_text.splitlines()) - 1, 0)


def _fuzz(base: Path, damage: list[tuple[str, Any]], commands: Callable[[Path], None]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(base, run)
        victim = Path(tmp) / "victim.txt"  # what ../../../victim.txt in the manifest names
        victim.write_text("precious")
        silent_ok = apply(run, damage)
        before = _rows(cli("export", base, "samples")[1])
        code, out, err = check(run, "export", run, "samples")
        if code == 0 and _rows(out) < before and not silent_ok:
            assert "warning" in err, "rows vanished without a warning"
        for table in ("rates", "events", "log_events"):
            code, out, _ = check(run, "export", run, table, "--format", "json")
            if code == 0:
                json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
        commands(run)
        check(run, "collect", "status", "--file", STATUS, "--once", "--out", run)  # compacts
        check(run, "export", run, "samples")
        assert victim.read_text() == "precious"


@pytest.fixture(scope="module")
def files(base_run: Path) -> list[str]:
    return _files(base_run)


EXAMPLES = int(os.environ.get("STORE_FUZZ_EXAMPLES", "40"))  # more for a longer hunt
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(data=st.data())
def test_damaged_runs_give_a_result_or_one_line_export_analyze(
    base_run: Path,
    files: list[str],
    data: st.DataObject,
) -> None:
    damage = data.draw(damages(files))
    _fuzz(base_run, damage, lambda run: check(run, "analyze", run))


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_runs_give_a_report_or_one_line(
    base_run: Path,
    files: list[str],
    data: st.DataObject,
) -> None:
    damage = data.draw(damages(files))

    def report(run: Path) -> None:
        out = run.parent / "r.md"
        code, _, _ = check(run, "report", run, "-o", out)
        assert code == 1 or out.exists()

    _fuzz(base_run, damage, report)
