"""The package's public face: a few names, imported when first used."""

from __future__ import annotations

import subprocess
import sys

import pytest

import profiler


def test_the_public_names_are_the_stages_own() -> None:
    from profiler.analyze.analysis import Analysis
    from profiler.bench.results import load_result
    from profiler.codecs import parse_spec
    from profiler.scenarios.analysis import analyze_run
    from profiler.store import Run, read_run

    assert profiler.Analysis is Analysis
    assert profiler.analyze_run is analyze_run and profiler.read_run is read_run
    assert profiler.Run is Run and profiler.load_result is load_result
    assert profiler.parse_spec is parse_spec
    assert set(profiler.__all__) <= set(dir(profiler))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = profiler.nope  # type: ignore[attr-defined]


def test_importing_the_package_loads_nothing_heavy() -> None:
    heavy = ("pandas", "numpy", "pyarrow", "matplotlib")
    code = f"import sys, profiler; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
