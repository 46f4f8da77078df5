"""Numbers on the command line, fuzzed (reliability D15, D19, D22): nan, inf, negative, zero,
huge, empty, words. Each value is either refused in one line naming the option (exit 2)
before any work, or accepted, and then the command goes on to a failure planted after the
checks (a missing payload, run, result or workload); never a traceback."""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.analyze.whatif import parse_change
from profiler.cli import main
from profiler.errors import PayloadError, UsageError
from profiler.payloads import resolve as payloads
from profiler.units import parse_bits_per_second, parse_bytes, parse_seconds

FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
VALUES = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.integers(-(10**40), 10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "1e400", "-1e400", "-0", "+3", "0x10",
                     "1_000", "١٢", "3.", ".5", "5s", "1MB", "1Gbit", "0Mbit", "-5MB", "2h"]),
    st.text(max_size=6),
)  # fmt: skip


def whole(lo: int | None = None, hi: int | None = None) -> Callable[[str], bool]:
    def ok(text: str) -> bool:
        try:
            n = int(text)
        except ValueError:
            return False
        return (lo is None or n >= lo) and (hi is None or n <= hi)

    return ok


def real(lo: float, hi: float, *, strict_lo: bool = False, strict_hi: bool = False) -> Callable:
    def ok(text: str) -> bool:
        try:
            x = float(text)
        except ValueError:
            return False
        if not math.isfinite(x):
            return False
        return (x > lo if strict_lo else x >= lo) and (x < hi if strict_hi else x <= hi)

    return ok


def parsed(parse: Callable[[str], float]) -> Callable[[str], bool]:
    def ok(text: str) -> bool:
        try:
            x = float(parse(text))
        except ValueError:
            return False
        return math.isfinite(x) and x > 0

    return ok


def _whatif_ok(text: str) -> bool:
    try:
        parse_change(text)
    except UsageError:
        return False
    return True


def _window_ok(text: str) -> bool:
    try:
        return math.isfinite(parse_seconds(text)) and parse_seconds(text) > 0
    except ValueError:
        return False


OUT = tempfile.mkdtemp(prefix="cli-values-")
# command line, then the message that shows every check passed
BENCH = (["bench", "/nonexistent-payload", "--codec", "zstd:1", "--out", f"{OUT}/b"],
         "payload '/nonexistent-payload': no such path")  # fmt: skip
COMPARE = (["compare", "/nonexistent-a", "/nonexistent-b"], "not a bench result")
TESTBED = (["testbed", "--workload", "/nonexistent.json", "--out", f"{OUT}/t"],
           "not a testbed workload")  # fmt: skip
ANALYZE = (["analyze", "/nonexistent-run"], "no such run directory")
REPORT = (["report", "/nonexistent-run", "-o", f"{OUT}/r.html"], "no such run directory")
CASES: dict[str, tuple[tuple[list[str], str], str, Callable[[str], bool]]] = {
    "bench --repeat": (BENCH, "--repeat", whole(1, 10_000)),
    "bench --min-time": (BENCH, "--min-time", real(0, 86_400)),
    "bench --storage-price": (BENCH, "--storage-price", real(0, 1e9)),
    "bench --daily-nar": (BENCH, "--daily-nar", parsed(parse_bytes)),
    "bench --client-link": (BENCH, "--client-link", parsed(parse_bits_per_second)),
    "bench --uplink": (BENCH, "--uplink", parsed(parse_bits_per_second)),
    "compare --alpha": (COMPARE, "--alpha", real(0, 1, strict_lo=True, strict_hi=True)),
    "testbed --steps": (TESTBED, "--steps", whole(1, 100_000)),
    "testbed --seed": (TESTBED, "--seed", whole()),
    "testbed --machines": (TESTBED, "--machines", whole(1, 1_000)),
    "testbed --max-jobs": (TESTBED, "--max-jobs", whole(1, 1_000)),
    "testbed --local-workers": (TESTBED, "--local-workers", whole(1, 1_024)),
    "testbed --dispatch-delay": (TESTBED, "--dispatch-delay", real(0, 3_600)),
    "testbed --db-latency": (TESTBED, "--db-latency", real(0, 3_600)),
    "testbed --build-scale": (TESTBED, "--build-scale", real(0, 1_000)),
    "testbed --retry": (TESTBED, "--retry", whole(0, 100_000)),
    "testbed --fail": (TESTBED, "--fail", whole(0, 100_000)),
    "testbed --port": (TESTBED, "--port", whole(0, 65_535)),
    "testbed --link": (TESTBED, "--link", lambda t: parsed(parse_bits_per_second)(t)),
    "testbed --upload": (TESTBED, "--upload", lambda t: parsed(parse_bits_per_second)(t)),
    "analyze --slots": (ANALYZE, "--slots", whole(1, 100_000)),
    "analyze --local-workers": (ANALYZE, "--local-workers", whole(1, 100_000)),
    "analyze --runner-cores": (ANALYZE, "--runner-cores", whole(1, 100_000)),
    "analyze --window": (ANALYZE, "--window", _window_ok),
    "report --window": (REPORT, "--window", _window_ok),
}


def _check(capsys: pytest.CaptureFixture[str], case: str, value: str) -> None:
    (argv, reached), option, valid = CASES[case]
    code = main([*argv, f"{option}={value}"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("hydra-profiler")]
    assert len(lines) == 1 and lines[0].startswith("hydra-profiler: error: "), err
    assert code in (1, 2)
    if valid(value):
        assert reached in lines[0], f"{option}={value!r} was refused: {lines[0]}"
    else:
        assert code == 2 and reached not in lines[0], f"{option}={value!r} was accepted"
        assert option in lines[0]
    assert not os.listdir(OUT), "an output was created before the checks"


@pytest.mark.parametrize("case", sorted(CASES))
@FUZZ
@given(value=VALUES)
def test_fuzzed_numbers_are_refused_in_one_line_or_accepted(
    capsys: pytest.CaptureFixture[str], case: str, value: str
) -> None:
    _check(capsys, case, value)


@pytest.mark.parametrize(
    ("case", "value", "message"),
    [
        ("bench --repeat", "0", "argument --repeat: must be at least 1, got 0"),
        ("bench --min-time", "nan", "argument --min-time: expected a finite number"),
        ("bench --min-time", "-1", "argument --min-time: must be at least 0"),
        ("compare --alpha", "5", "argument --alpha: must be less than 1"),
        ("compare --alpha", "nan", "argument --alpha: expected a finite number"),
        ("testbed --local-workers", "0", "argument --local-workers: must be at least 1"),
        ("testbed --dispatch-delay", "-1", "argument --dispatch-delay: must be at least 0"),
        ("testbed --port", "99999", "argument --port: must be at most 65535"),
    ],
)
def test_the_findings_values_say_what_is_wrong(
    capsys: pytest.CaptureFixture[str], case: str, value: str, message: str
) -> None:
    _check(capsys, case, value)
    (argv, _), option, _ = CASES[case]
    main([*argv, f"{option}={value}"])
    assert message in capsys.readouterr().err


@FUZZ
@given(key=st.sampled_from(["workers", "upload", "compress", "machines", "codec"]), value=VALUES)
def test_fuzzed_whatifs_fail_before_the_run_is_read(
    capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    text = f"{key}={value}"
    for argv in (ANALYZE[0], REPORT[0]):
        code = main([*argv, "--whatif", text])
        err = capsys.readouterr().err
        assert "Traceback" not in err and code in (1, 2)
        if _whatif_ok(text):
            assert ANALYZE[1] in err
        else:
            assert code == 2 and err.startswith(f"hydra-profiler: error: --whatif {text!r}")
            assert "analysing" not in err  # refused before the run was read


@FUZZ
@given(count=VALUES, seed=st.none() | VALUES)
def test_fuzzed_samples_say_what_is_wrong(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, count: str, seed: str
) -> None:
    def planted(n: int, s: int = 0) -> list[str]:
        raise PayloadError(f"planted: sample of {n} with seed {s}")

    monkeypatch.setattr(payloads, "store_sample", planted)
    if ":" in count or (seed is not None and ":" in seed):
        return
    spec = f"sample:{count}" + ("" if seed is None else f":{seed}")
    code = main(["payloads", spec])
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    if not count:
        assert code == 2  # 'sample:' alone is no sample spec: a path that does not exist
    elif whole(1)(count) and (seed is None or seed == "" or whole()(seed)):
        assert code == 1 and "planted: sample of" in err
    else:
        assert code == 2 and ("must be" in err or "no such path" in err), err


def test_no_output_was_left(tmp_path: Path) -> None:
    assert os.listdir(OUT) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--codec", "xz:19:threads=2"],
        ["bench", "--codec", "compression=xz&compression-level=12&parallel-compression=true"],
        ["testbed", "--codec", "xz:-1:threads=2", "--out", f"{OUT}/t"],
        ["analyze", "/nonexistent-run", "--codec", "xz:19:threads=2"],
        ["analyze", "/nonexistent-run", "--whatif", "codec=xz:19:threads=2"],
        ["report", "/nonexistent-run", "-o", f"{OUT}/r.html", "--codec", "xz:19:threads=2"],
        ["report", "/nonexistent-run", "-o", f"{OUT}/r.html", "--whatif", "codec=xz:19:parallel"],
    ],
)
def test_an_xz_level_out_of_range_is_one_line_everywhere(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.search(r"level (19|12|-1) out of range for xz \(valid: xz 0-9, zstd 1-22", err)
    assert not os.listdir(OUT)
