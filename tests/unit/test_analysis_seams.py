"""The seams between stages: a pure ``analyze()`` given its codec profiles, the scenario that
loads or calibrates them, the ``Analysis`` the renderers read, and outputs by suffix."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

import pytest

from profiler.analyze.analysis import Analysis, analyze, farm_codec, running_jobs
from profiler.bench import profiles
from profiler.bench.profiles import CodecProfile, farm_profile, from_result
from profiler.bench.results import load_result
from profiler.errors import ProfilerError, UsageError
from profiler.report import build, outputs, render
from profiler.scenarios.analysis import analyze_run
from profiler.store import read_run

DATA = Path(__file__).parent.parent / "data"
BENCH = str(DATA / "bench-v1")  # xz:6 and zstd:3


def _run(name: str, tmp_path: Path) -> str:
    """A copy of a frozen run (reading may take its lock or compact it)."""
    run = tmp_path / name
    shutil.copytree(DATA / "run-v1" / name, run)
    return str(run)


@pytest.fixture
def no_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> CodecProfile:
        raise AssertionError("calibrated")

    monkeypatch.setattr(profiles, "calibrate", refuse)


@pytest.mark.usefixtures("no_calibration")
def test_analyze_uses_the_profiles_it_is_given_and_calibrates_nothing(tmp_path: Path) -> None:
    run = _run("cxx-all", tmp_path)
    bare = analyze(run)
    assert bare.profile is None and bare.coverage()["compression"] == "not separated"
    measured = from_result(load_result(BENCH))
    a = analyze(run, profiles=measured)
    assert a.profile is measured["zstd:3"] and a.profiles is measured and a.bench is None
    own = CodecProfile("zstd:3", 2e-8, 0.3, "calibrated by the caller")
    given = analyze(run, profile=own, calibration_cache="/cache", notes=["a caller's note"])
    assert given.profile is own and given.calibration_cache == "/cache"
    assert "a caller's note" in given.attribution.notes
    assert analyze(run, profiles=measured, profile=own).profile is measured["zstd:3"]


def test_a_profile_of_another_codec_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfilerError, match="zstd:19's, but the farm's codec is zstd:3"):
        analyze(_run("cxx-all", tmp_path), profile=CodecProfile("zstd:19", 1e-8, 0.3, "x"))


@pytest.mark.parametrize("name", ["cxx-all", "rust-all", "rust-journal"])
def test_farm_codec_is_the_codec_the_analysis_finds(name: str, tmp_path: Path) -> None:
    run = _run(name, tmp_path)
    assert farm_codec(read_run(run)).spec == analyze(run).codec
    assert farm_codec(read_run(run), codec="zstd:19").spec.startswith("zstd:19")


@pytest.mark.usefixtures("no_calibration")
def test_the_scenario_loads_the_bench_once_and_the_analysis_keeps_what_reports_read(
    tmp_path: Path,
) -> None:
    run = _run("cxx-all", tmp_path)
    a = analyze_run(run, bench_dir=BENCH)
    assert a.bench is not None and a.bench.path == BENCH
    assert set(a.profiles) == {"xz:6", "zstd:3"} and a.profile is a.profiles["zstd:3"]
    samples = read_run(run).table("samples")
    expected = running_jobs(samples)
    assert expected is not None and a.running_series is not None
    assert a.running_series[1].tolist() == expected[1].tolist()
    rows, table = build.codec_frame(a.bench)
    assert list(table["codec"]) == ["xz:6", "zstd:3"] and len(rows) == len(a.bench.rows)


def test_analysis_is_built_by_keyword_and_never_changed(tmp_path: Path) -> None:
    a = analyze(_run("cxx-status-only", tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.codec = "zstd:3"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Analysis(a.run)  # type: ignore[misc]


def test_farm_profile_prefers_the_bench_and_says_why_a_cache_was_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    measured = {"xz:6": CodecProfile("xz:6", 1e-8, 0.25, "bench")}
    assert farm_profile("xz:6", measured, cache_dir=str(tmp_path)).profile is measured["xz:6"]
    corpus = CodecProfile("zstd:3", 1e-9, 0.3, "corpus")

    def calibrate(_spec: str, _per_class: int, cache_dir: str | None) -> CodecProfile:
        if cache_dir is not None:
            raise ProfilerError(f"calibration on the farm's NARs: {cache_dir}: no readable NAR")
        return corpus

    monkeypatch.setattr(profiles, "calibrate", calibrate)
    found = farm_profile("zstd:3", measured, cache_dir=str(tmp_path))
    assert found.profile is corpus and found.calibration_cache is None
    assert found.note.endswith("no readable NAR: calibrated on the built-in corpus instead")


def test_outputs_pick_the_renderer_by_suffix(tmp_path: Path) -> None:
    assert isinstance(outputs.renderer_for("r.HTM"), render.HtmlRenderer)
    assert isinstance(outputs.renderer_for("r.json"), render.JsonRenderer)
    md = outputs.renderer_for(str(tmp_path / "out" / "r.md"))
    assert isinstance(md, render.MarkdownRenderer) and md.name == "markdown"
    assert md.figure_dir == str(tmp_path / "out" / "r-figures")
    for renderer in (render.HtmlRenderer(), render.JsonRenderer(), md):
        assert not renderer.binary and renderer.extension in outputs.SUFFIXES
    with pytest.raises(UsageError, match=re.escape("unknown report format '.pdf'")):
        outputs.renderer_for("r.pdf")


def test_a_trace_alone_builds_no_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = analyze(_run("rust-journal", tmp_path))

    def refuse(*_args: object, **_kwargs: object) -> build.Report:
        raise AssertionError("built a report")

    monkeypatch.setattr(build, "build_report", refuse)
    said: list[str] = []
    trace = str(tmp_path / "t" / "trace.json")
    outputs.write_reports(a, [], trace=trace, say=said.append)
    assert os.path.getsize(trace) > 0
    assert said == [f"wrote Chrome trace {trace} (open in https://ui.perfetto.dev)"]


def test_default_whatifs_add_the_codecs_the_bench_measured(tmp_path: Path) -> None:
    a = analyze_run(_run("cxx-db-only", tmp_path), bench_dir=BENCH)  # xz:6
    labels = [c.label for c in outputs.default_whatifs(a, a.profiles)]
    assert labels == ["compression time x0.5", "codec zstd:3"]
    assert [c.label for c in outputs.default_whatifs(a, None)] == ["compression time x0.5"]


def test_default_whatifs_take_every_pareto_codec_of_the_bench(tmp_path: Path) -> None:
    """A codec on the bench's front that the defaults do not name (zstd-19 with a 128 MiB
    window, the smallest) is projected; a dominated one (zstd:9: larger and slower than
    zstd:3) is not; the run's codec (xz:6) is not projected against itself."""
    import pandas as pd

    from profiler.bench.results import StoredResult
    from tests.unit.test_bench_plots import _cell

    a = analyze_run(_run("cxx-db-only", tmp_path), bench_dir=BENCH)  # the run: xz:6
    cells = [("xz:6", 250, 1.0), ("zstd:3", 300, 0.05), ("zstd:9", 320, 0.2),
             ("zstd:19:long=27", 230, 2.0), ("gzip:6", 280, 0.3)]  # fmt: skip
    rows = pd.DataFrame([_cell("p", "user", c, 1000, size, t, 0.01) for c, size, t in cells])
    bench = StoredResult("bench", {}, rows, pd.DataFrame())
    with_front = dataclasses.replace(a, bench=bench, profiles=from_result(bench))
    assert with_front.pareto_codecs() == ["zstd:19:long=27", "xz:6", "gzip:6", "zstd:3"]
    labels = [c.label for c in outputs.default_whatifs(with_front, with_front.profiles)]
    assert labels == ["compression time x0.5", "codec zstd:3", "codec zstd:19:long=27",
                      "codec gzip:6"]  # fmt: skip
