"""The report of a run with sampled CPU (a frozen testbed run, tests/data/run-v1/cxx-all,
with ``collect cpu``'s tables written as the interface says, 20,000 distinct stacks): the
CPU section's over-time figure and classified flame graph in headless Chromium (nothing
logged to the console, the figure decoded, the flame graph's frames there with their class
and colour, a hover title on each, narrow frames merged so the boxes stay few), and the
same section in Markdown (the flame graph as an SVG file) and JSON."""

from __future__ import annotations

import html
import json
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from profiler.cli import main
from profiler.report.flame import CLASS_COLORS
from tests.conftest import require_tool
from tests.integration.test_report import PNG, _chromium, dom_probe
from tests.unit.test_cpu_evidence import compressing_buckets, frozen, plain, write_cpu

BENCH = str(Path(__file__).parent.parent / "data" / "bench-v1")
STACKS = 20_000
MAX_BOXES = 2_000  # what the merging keeps a 20,000-stack profile to, at most
CLASSES = ["compression", "hashing", "network", "nar", "other"]


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cpu-report")
    run = frozen("cxx-all", root)
    base = plain(run)
    lo, hi = base.table.window
    rows, _ = compressing_buckets(base, lo + 0.6 * (hi - lo), "hydra-queue-run")
    rnd = random.Random(7)
    stacks = []
    for i in range(STACKS):
        cls = rnd.choice(CLASSES)
        stack = f"start_thread;State::builder;copyPathFromRemote;{cls}_{rnd.randrange(300)};"
        stacks.append({"process": "hydra-queue-run", "thread": f"bld~{i % 5}", "class": cls,
                       "stack": stack + f"leaf{rnd.randrange(40)}", "samples": 1,
                       "cpu_seconds": 0.001 + rnd.random() * 0.01})  # fmt: skip
    write_cpu(run, rows, stacks)
    for name in ("report.html", "md/report.md", "report.json"):
        argv = ["report", run, "--profiles", BENCH, "--runner-cores", "2", "-o", str(root / name)]
        assert main(argv) == 0
    return root


def test_html_has_the_cpu_section(out: Path) -> None:
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page and "http://" not in page and "url(" not in page
    assert 'id="fig-cpu-classes"' in page and 'id="table-cpu-classes"' in page
    flame = re.search(r'<svg id="fig-cpu-flame".*?</svg>', page, re.S)
    assert flame
    boxes = re.findall(r'<g class="cpu-([a-z]+)"><title>([^<]*)</title><rect [^>]*fill="([^"]+)"',
                       flame.group(0))  # fmt: skip
    assert 20 < len(boxes) < MAX_BOXES
    for cls, title, fill in boxes:
        assert fill == CLASS_COLORS.get(cls, "#F0F0F0")
        assert re.fullmatch(rf".+ · {cls} · [0-9.]+ CPU-s · [0-9.]+%", html.unescape(title))
    assert {c for c, _, _ in boxes} >= {"compression", "hashing", "merged"}
    assert "measured (hydra-queue-runner CPU samples) for" in page
    assert "hydra-queue-runner CPU (perf samples, " in page  # the verdict's evidence line


# Loads the report in an iframe and writes what the browser made of the CPU section.
WRAPPER = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<iframe id="r" src="{src}" style="width:1280px;height:3000px"></iframe>
<pre id="result">pending</pre>
<script>
document.getElementById('r').addEventListener('load', function () {{
  var out = document.getElementById('result');
  try {{
    var doc = this.contentDocument, win = this.contentWindow;
    var img = doc.getElementById('fig-cpu-classes');
    var svg = doc.getElementById('fig-cpu-flame');
    var fills = {{}};
    svg.querySelectorAll('g').forEach(function (g) {{
      fills[g.getAttribute('class')] = win.getComputedStyle(g.querySelector('rect')).fill;
    }});
    out.textContent = JSON.stringify({{
      img: {{w: img.naturalWidth, h: img.naturalHeight, complete: img.complete}},
      svg: {{w: svg.getBoundingClientRect().width, h: svg.getBoundingClientRect().height}},
      boxes: svg.querySelectorAll('g').length,
      titled: svg.querySelectorAll('g > title').length,
      fills: fills, scripts: doc.scripts.length,
      fetched: win.performance.getEntriesByType('resource').map(function (e) {{ return e.name; }})
    }});
  }} catch (e) {{ out.textContent = 'error: ' + e; }}
}});
</script></body></html>
"""


def _rgb(hex_color: str) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_cpu_section_renders_in_chromium(out: Path) -> None:
    binary = require_tool("chromium", "chromium")
    report = out / "report.html"
    shot = out / "shot.png"
    done = _chromium(binary, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
                     "--window-size=1280,6000", report.as_uri())  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert not [ln for ln in done.stderr.splitlines() if ":CONSOLE" in ln], done.stderr[-3000:]
    assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 50_000
    result = dom_probe(binary, report, WRAPPER)
    assert result["scripts"] == 0 and result["fetched"] == []
    assert result["img"]["complete"] and result["img"]["w"] > 300 and result["img"]["h"] > 100
    assert result["svg"]["w"] > 1000 and result["svg"]["h"] > 50
    assert 20 < result["boxes"] < MAX_BOXES and result["titled"] == result["boxes"]
    for cls in ("compression", "hashing", "network"):
        assert result["fills"][f"cpu-{cls}"] == _rgb(CLASS_COLORS[cls])


def test_markdown_and_json(out: Path) -> None:
    md = out / "md" / "report.md"
    text = md.read_text(encoding="utf-8")
    link = re.search(r"!\[[^\]]*\]\((report-figures/fig-cpu-flame\.svg)\)", text)
    assert link and "## CPU of the sampled processes" in text
    svg = ET.parse(md.parent / link.group(1)).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert (md.parent / "report-figures" / "fig-cpu-classes.png").read_bytes().startswith(PNG)
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    shown = {f["id"] for f in doc["report"]["figures"] if f["shown"]}
    assert {"fig-cpu-classes", "fig-cpu-flame"} <= shown
    process = doc["cpu"]["processes"]["hydra-queue-run"]
    assert process["cores_busy"] > 0 and set(process["cpu_seconds"]) == {"compression", "network"}
    assert doc["cpu"]["compression_split"]["covered_steps"] >= 3
