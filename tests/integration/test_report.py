"""Reports of a real observed testbed run (status over HTTP, a real PostgreSQL with the phase
tracker, the journal), written by the `report` command, checked as files and in a real
browser: the HTML is self-contained and every figure decodes in headless Chromium, the JSON
keeps the analyze keys, the Markdown links PNG files that exist, and the Chrome trace is
well formed (phases of a step contiguous and in pipeline order)."""

from __future__ import annotations

import argparse
import base64
import html
import itertools
import json
import re
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from profiler.commands import report as report_cmd
from profiler.report.trace import PHASES
from profiler.scenarios.observe import observed_run
from profiler.testbed import workload
from profiler.testbed.engine import Knobs
from tests.conftest import fresh_database, require_tool

PNG = b"\x89PNG\r\n\x1a\n"
BENCH = str(Path(__file__).parent.parent / "data" / "bench-v1")  # xz:6 and zstd:3
FIGURES = {"fig-attribution-time", "fig-queue-depth", "fig-by-machine", "fig-by-system",
           "fig-timeline", "fig-codec-tradeoff"}  # fmt: skip
CHROMIUM_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def module_db(pg_dsn: str) -> Iterator[str]:
    """A fresh database for this module (conftest's db_dsn is per test)."""
    with fresh_database(pg_dsn) as dsn:
        yield dsn


def _report(*argv: str) -> None:
    parser = argparse.ArgumentParser()
    report_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["report", *argv])
    assert args.run(args) == 0


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory, module_db: str) -> Path:
    """One observed run (12 steps, zstd:3) and every report of it."""
    root = tmp_path_factory.mktemp("report")
    wl = workload.generate(12, seed=3, build_scale=0.3)
    observed = observed_run(wl, Knobs(codec="zstd:3"), str(root / "obs"), pg_dsn=module_db)
    common = (observed.run_dir, "--profiles", BENCH, "--codec", "zstd:3")
    _report(*common, "-o", str(root / "report.html"), "--trace", str(root / "trace.json"))
    _report(*common, "-o", str(root / "md" / "report.md"))
    _report(*common, "-o", str(root / "report.json"))
    return root


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_html_is_self_contained(out: Path) -> None:
    page = (out / "report.html").read_text(encoding="utf-8")
    tags = _Tags()
    tags.feed(page)
    assert not [t for t, _ in tags.tags if t in ("script", "link", "iframe", "object", "embed")]
    for tag, attrs in tags.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "srcset", "action", "poster", "data"):
                assert value and (value.startswith(("#", "data:image/png;base64,"))), (tag, name)
            assert "http://" not in (value or "") and "https://" not in (value or ""), (tag, name)
    assert "url(" not in page and "@import" not in page
    imgs = {a["id"]: a for t, a in tags.tags if t == "img"}
    assert set(imgs) == FIGURES
    for a in imgs.values():
        assert a["alt"] and len(a["alt"]) > 30
        data = base64.b64decode((a["src"] or "").removeprefix("data:image/png;base64,"))
        assert data.startswith(PNG) and len(data) > 5000
    assert "Bottleneck: " in page and "What if: compression time x0.5" in page


def test_json_keeps_the_analyze_keys(out: Path) -> None:
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert doc["verdict"]["bottleneck"] in (
        "compression", "io", "scheduling", "database", "builder-capacity", "idle",
    )  # fmt: skip
    assert 0 <= doc["verdict"]["confidence"] <= 1 and doc["verdict"]["evidence"]
    assert set(doc["attribution"]) == {"scheduling", "io", "compression", "build", "post"}
    assert sum(doc["attribution"].values()) == pytest.approx(1.0)
    assert doc["steps"] == 12 and doc["codec"] == "zstd:3"
    # default what-ifs: codec=zstd:3 is the run's own, zstd:19 was not measured, xz:6 is on
    # the bench's Pareto front (the smaller of the two)
    assert [w["change"] for w in doc["whatif"]] == ["compression time x0.5", "codec xz:6"]
    assert doc["whatif"][0]["projection"] and doc["whatif"][0]["replay"]["simulated_makespan_s"]
    assert [c["codec"] for c in doc["codecs"]] == ["xz:6", "zstd:3"]
    assert {f["id"] for f in doc["report"]["figures"] if f["shown"]} == FIGURES
    assert {s["name"] for s in doc["coverage"]["sources"]} >= {"db_phases", "db_steps", "samples"}


def test_markdown_links_existing_pngs(out: Path) -> None:
    md = out / "md" / "report.md"
    text = md.read_text(encoding="utf-8")
    links = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", text)
    assert {Path(link).stem for _, link in links} == FIGURES
    for alt, link in links:
        assert alt and link.startswith("report-figures/") and not Path(link).is_absolute()
        assert (md.parent / link).read_bytes().startswith(PNG)
    assert text.startswith("# Hydra queue runner profile") and "**Bottleneck: " in text


def test_chrome_trace(out: Path) -> None:
    text = (out / "trace.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    assert json.loads(json.dumps(doc)) == doc
    assert doc["displayTimeUnit"] in ("ms", "ns")
    events = doc["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    processes = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]) for e in meta if e["name"] == "thread_name"}
    xs = [e for e in events if e["ph"] == "X"]
    for e in xs:
        assert e["ts"] >= 0 and e["dur"] >= 0, e
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        assert e["pid"] in processes and (e["pid"], e["tid"]) in threads
        assert e["name"] and e["cat"] and "step" in e["args"]
    steps = [e for e in xs if e["cat"] == "step"]
    assert len(steps) == 12 and {e["args"]["step"] for e in steps} == {f"{i}/1" for i in
                                                                        range(1, 13)}  # fmt: skip
    assert all(e["args"]["drv"].startswith("/nix/store/") for e in steps)
    order = [name for name, _, _ in PHASES]
    category = {name: cat for name, _, cat in PHASES}
    built = 0
    for step in steps:
        phases = sorted((e for e in xs if e["cat"] != "step"
                         and e["args"]["step"] == step["args"]["step"]),
                        key=lambda e: e["ts"])  # fmt: skip
        names = [e["name"] for e in phases]
        assert names, step
        built += "build" in names  # the tracker can miss a build shorter than its poll
        assert names == sorted(names, key=order.index), names
        assert all(e["cat"] == category[e["name"]] for e in phases)
        assert phases[0]["ts"] == pytest.approx(step["ts"], abs=1e-3)
        for a, b in itertools.pairwise(phases):
            assert a["ts"] + a["dur"] == pytest.approx(b["ts"], abs=1e-3)
        assert phases[-1]["ts"] + phases[-1]["dur"] <= step["ts"] + step["dur"] + 1e-3
        assert all((e["pid"], e["tid"]) == (step["pid"], step["tid"]) for e in phases)
    assert built >= len(steps) // 2
    # steps on one lane never overlap
    for _, lane in itertools.groupby(sorted(steps, key=lambda e: (e["pid"], e["tid"], e["ts"])),
                                     key=lambda e: (e["pid"], e["tid"])):  # fmt: skip
        for a, b in itertools.pairwise(list(lane)):
            assert a["ts"] + a["dur"] <= b["ts"] + 1e-3
    assert any(e["ph"] == "C" and e["name"] == "runnable steps" for e in events)


# The report itself stays script-free; this wrapper loads it in an iframe and writes what the
# browser made of it into its own DOM, which --dump-dom prints.
WRAPPER = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<iframe id="r" src="{src}" style="width:1280px;height:3000px"></iframe>
<pre id="result">pending</pre>
<script>
document.getElementById('r').addEventListener('load', function () {{
  var out = document.getElementById('result');
  try {{
    var doc = this.contentDocument;
    var images = Array.from(doc.images).map(function (i) {{
      return {{id: i.id, w: i.naturalWidth, h: i.naturalHeight, complete: i.complete}};
    }});
    var fetched = this.contentWindow.performance.getEntriesByType('resource')
      .map(function (e) {{ return e.name; }});
    out.textContent = JSON.stringify({{title: doc.title, images: images, fetched: fetched,
      scripts: doc.scripts.length, tables: doc.querySelectorAll('table').length}});
  }} catch (e) {{ out.textContent = 'error: ' + e; }}
}});
</script></body></html>
"""


def dom_probe(binary: str, report: Path, wrapper_template: str) -> dict[str, Any]:
    """What the script of ``wrapper_template`` (a page next to ``report`` that loads it in
    a frame, ``{src}`` its name) writes as JSON into ``<pre id="result">``, in headless
    Chromium."""
    wrapper = report.parent / "wrapper.html"
    wrapper.write_text(wrapper_template.format(src=html.escape(report.name)), encoding="utf-8")
    done = _chromium(binary, "--allow-file-access-from-files", "--virtual-time-budget=15000",
                     "--dump-dom", wrapper.as_uri())  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:]
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return result


def _chromium(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         "--disable-extensions", "--hide-scrollbars", "--timeout=30000", *args],
        capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False,
    )  # fmt: skip


def test_html_renders_in_chromium(out: Path) -> None:
    binary = require_tool("chromium", "chromium")
    report = out / "report.html"
    shot = out / "shot.png"
    done = _chromium(binary, f"--screenshot={shot}", "--window-size=1280,4000",
                     report.as_uri())  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(PNG) and len(data) > 50_000  # a blank page is a few KiB
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 4000)
    result = dom_probe(binary, report, WRAPPER)
    assert result["title"].startswith("Hydra queue runner profile")
    assert result["scripts"] == 0 and result["fetched"] == [] and result["tables"] >= 8
    images = {i["id"]: i for i in result["images"]}
    assert set(images) == FIGURES
    for i in images.values():
        assert i["complete"] and i["w"] > 300 and i["h"] > 100, i
