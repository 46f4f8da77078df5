"""Helpers for tests of damaged runs: a small real run, the CLI in-process, checks."""

from __future__ import annotations

import io
import math
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from profiler.cli import main
from profiler.store import Run, read_run

ROOT = Path(__file__).resolve().parents[1]
JOURNAL = ROOT / "tests/data/golden/cxx/2025-final.journal.txt"
STATUS = ROOT / "tests/data/status/cxx-2025.json"


def cli(*args: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def one_line_error(err: str, *names: str | Path) -> str:
    """The error line of a failed command: exactly one line, naming ``names``."""
    lines = [ln for ln in err.splitlines() if not ln.startswith(("analysing", "drawing"))]
    errors = [ln for ln in lines if ln.startswith("hydra-profiler: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for name in names:
        assert str(name) in errors[0], (name, errors[0])
    return errors[0]


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (lock files aside) and its bytes."""
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def make_base_run(run: Path) -> Path:
    """A small real run: a golden journal and a status document, compacted; then one more
    status sample and two events still in segments."""
    assert cli("collect", "logs", "--file", JOURNAL, "--out", run)[0] == 0
    assert cli("collect", "status", "--file", STATUS, "--once", "--out", run)[0] == 0
    rows = [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in read_run(run).table("samples").to_dict(orient="records")
    ]
    with Run.open(run, command="test") as r:
        r.writer("samples").append_many([{**x, "ts": x["ts"] + 30} for x in rows])
        with r.writer("events") as w:
            w.append({"ts": rows[0]["ts"], "source": "test", "event": "note", "detail": "a"})
            w.append({"ts": rows[0]["ts"] + 1, "source": "test", "event": "gap", "detail": "b"})
    return run
