"""The report of six hours of a farm (a synthetic history: BuildSteps rows and the queue
runner's gauges every 30 s, as `collect db` and `collect history` would store them), drawn
on UTC axes and checked in headless Chromium: every figure decodes, the time figures' alt
texts give the UTC span they cover, the queue wait is in the over-time and per-machine views,
and the per-day cost says the six hours it is extrapolated from."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from profiler.cli import main
from profiler.testbed.history import ORIGIN, write_history
from profiler.units import format_utc_range
from tests.conftest import require_tool
from tests.integration.test_report import PNG, WRAPPER, _chromium, dom_probe

BENCH = str(Path(__file__).parent.parent / "data" / "bench-v1")  # xz:6 and zstd:3
HOURS = 6
# the probe of test_report, with each image's alt text
WITH_ALT = WRAPPER.replace("complete: i.complete}", "complete: i.complete, alt: i.alt}")


@pytest.fixture(scope="module", params=["cxx", "rust"])
def history_report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                   ) -> tuple[Path, str]:  # fmt: skip
    root = tmp_path_factory.mktemp(f"h6-{request.param}")
    run = root / "run"
    write_history(run, 3000, generation=request.param, seed=11, years=HOURS / (365 * 24),
                  part_rows=3000, repeated=0, gauges_every_s=30)  # fmt: skip
    argv = ["report", str(run), "--profiles", BENCH, "--codec", "xz:6",
            "-o", str(root / "report.html"), "-o", str(root / "report.json")]  # fmt: skip
    assert main(argv) == 0
    return root, request.param


def test_six_hours_render_with_utc_axes_in_chromium(history_report: tuple[Path, str]) -> None:
    root, _ = history_report
    binary = require_tool("chromium", "chromium")
    report = root / "report.html"
    shot = root / "shot.png"
    done = _chromium(binary, f"--screenshot={shot}", "--window-size=1280,5000", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 50_000
    result = dom_probe(binary, report, WITH_ALT)
    images = {i["id"]: i for i in result["images"]}
    timed = {"fig-attribution-time", "fig-queue-depth", "fig-timeline"}
    assert timed | {"fig-by-machine", "fig-by-system", "fig-codec-tradeoff"} == set(images)
    for i in images.values():
        assert i["complete"] and i["w"] > 300 and i["h"] > 100, i
    # each time figure names the UTC span it draws, on the history's day (2022-01-01)
    utc_span = re.compile(r"2022-01-01 (\d\d):\d\d:\d\d to (\d\d):\d\d:\d\d UTC")
    for name in timed:
        found = utc_span.search(images[name]["alt"])
        assert found, images[name]["alt"]
        first, last = (int(h) for h in found.groups())
        assert first == 0 and HOURS <= last <= HOURS + 3, images[name][
            "alt"
        ]  # long builds end late
    gauges = format_utc_range(ORIGIN, ORIGIN + HOURS * 3600)
    assert gauges in images["fig-queue-depth"]["alt"]
    # the queue wait: hatched over time, a row of its own by machine
    assert "queue wait (hatched)" in images["fig-attribution-time"]["alt"]
    assert "(queue: before a machine): scheduling 100.0%" in images["fig-by-machine"]["alt"]


def test_the_json_keeps_the_queue_views_and_the_cost_span(history_report: tuple[Path, str]
                                                          ) -> None:  # fmt: skip
    root, generation = history_report
    doc = json.loads((root / "report.json").read_text(encoding="utf-8"))
    queue = doc["attribution_seconds"]["scheduling"]
    assert queue > 0
    basis = [w["fleet_cost_basis"] for w in doc["whatif"] if w["fleet_cost_basis"]]
    assert basis, [w["change"] for w in doc["whatif"]]
    span = basis[0]["span_seconds"]
    assert HOURS * 3600 * 0.9 < span < HOURS * 3600 * 1.5
    assert "misses the farm's daily cycle" in basis[0]["describe"]
    assert generation in doc["generation"]
