"""Where a report goes: the format by the file's suffix, the default what-ifs, the figure
directory of a Markdown report, and whole files (written atomically, or not at all).

:func:`write_reports` is what ``hydra-profiler report`` (and the demo) does with an analysis:
the Chrome trace first, then the what-ifs projected, the report built once and rendered into
every file asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from profiler.errors import ProfilerError, UsageError
from profiler.report.render import HtmlRenderer, JsonRenderer, MarkdownRenderer, Renderer

if TYPE_CHECKING:
    from profiler.analyze.analysis import Analysis
    from profiler.analyze.whatif import Change, Projection
    from profiler.bench.profiles import CodecProfile
    from profiler.report.build import Report

DEFAULT_CODECS = ("zstd:19", "zstd:3")
# A report file's suffix -> its renderer, made for the file's path.
SUFFIXES: dict[str, Callable[[str], Renderer[Report]]] = {
    ".html": lambda _out: HtmlRenderer(),
    ".htm": lambda _out: HtmlRenderer(),
    ".md": lambda out: MarkdownRenderer(figure_dir(out)),
    ".json": lambda _out: JsonRenderer(),
}
Say = Callable[[str], object]


def _quiet(_message: str) -> None:
    pass


def renderer_for(out: str) -> Renderer[Report]:
    """The renderer of the report file ``out``, by its suffix (a UsageError for another)."""
    suffix = os.path.splitext(out)[1].lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"-o {out}: unknown report format {suffix or '(none)'!r}; "
                         "use .html, .md or .json")  # fmt: skip
    return SUFFIXES[suffix](out)


def figure_dir(out: str) -> str:
    """Where a Markdown report's figures go: ``OUT_stem-figures`` next to it."""
    stem, _ = os.path.splitext(out)
    return f"{stem}-figures"


def default_whatifs(a: Analysis, profiles: Mapping[str, CodecProfile] | None) -> list[Change]:
    """The what-ifs a report projects when none is asked for: compression twice as fast,
    and with a bench result's ``profiles`` each of :data:`DEFAULT_CODECS` it measured and
    every codec on its Pareto front (:meth:`Analysis.pareto_codecs`), unless it is the run's
    codec."""
    from profiler.analyze import whatif as wi
    from profiler.bench.profiles import canonical

    specs = ["compress=0.5"]
    if profiles:
        measured = set(profiles)
        current = canonical(a.codec) if a.codec else ""
        wanted = [c for c in DEFAULT_CODECS if c in measured]
        wanted += [c for c in a.pareto_codecs() if c in measured and c not in wanted]
        specs += [f"codec={c}" for c in wanted if c != current]
    return [wi.parse_change(s) for s in specs]


def projections(
    a: Analysis, changes: Sequence[Change], *, slots: int | None = None
) -> tuple[list[Projection], list[str]]:
    """Each change projected; those the data cannot support, as notes."""
    from profiler.analyze import whatif as wi

    done, failed = wi.project_all(a, list(changes), slots=slots)
    return done, [f"what-if {label} not projected: {reason}" for label, reason in failed]


def write(path: str, document: str | bytes) -> None:
    """Write a whole file (its directory created), atomically."""
    from profiler import atomic

    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise atomic.cannot_write(path, exc) from None
    if isinstance(document, bytes):
        atomic.write_bytes(path, document)
    else:
        atomic.write_text(path, document)


def write_reports(
    a: Analysis,
    outs: Sequence[str],
    *,
    trace: str | None = None,
    whatifs: Sequence[Change] = (),
    slots: int | None = None,
    window_seconds: float | None = None,
    say: Say = _quiet,
    progress: Say = _quiet,
    audit_dir: str | None = None,
) -> None:
    """Write the Chrome trace of ``a`` to ``trace``, and its report, with ``whatifs``
    projected, to every file of ``outs`` (the format by suffix: :data:`SUFFIXES`).
    ``audit_dir``: a ``cache audit --out`` directory, whose section every report includes.

    ``say`` is told each file written, ``progress`` when the figures are drawn.
    """
    from profiler.report.trace import TraceRenderer

    if trace:
        write(trace, TraceRenderer().render(a))
        say(f"wrote Chrome trace {trace} (open in https://ui.perfetto.dev)")
    if not outs:
        return
    from profiler.report import build

    done, failed = projections(a, whatifs, slots=slots)
    progress("drawing figures...")
    report = build.build_report(
        a, whatifs=done, window_seconds=window_seconds, failed_whatifs=failed
    )
    missing = [f.title for f in report.figures() if f.png is None]
    note = f" ({len(missing)} figure(s) not shown: {', '.join(missing)})" if missing else ""
    audit = load_audit(audit_dir) if audit_dir else None
    for out in outs:
        _write_report(report, out, note, say, audit)


def load_audit(directory: str) -> tuple[dict[str, object], dict[str, str]]:
    """A ``cache audit --out`` directory's document and its plots (as data URIs, so the HTML
    report stays one file)."""
    import base64
    import json

    path = os.path.join(directory, "audit.json")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as exc:
        raise UsageError(f"--audit {directory}: {exc.strerror}: {path}") from None
    except ValueError as exc:
        raise UsageError(f"--audit {directory}: audit.json is not JSON: {exc}") from None
    if not isinstance(doc, dict) or "nars" not in doc or "summary" not in doc:
        raise UsageError(f"--audit {directory}: audit.json is not a cache audit result")
    images = {}
    for title, name in (("Ratio by NAR size", "ratio_by_size.png"),
                        ("Ratio by writer", "ratio_by_writer.png")):  # fmt: skip
        png = os.path.join(directory, name)
        if os.path.isfile(png):
            with open(png, "rb") as f:
                images[title] = "data:image/png;base64," + base64.b64encode(f.read()).decode()
    return doc, images


def _with_audit(
    document: str, renderer: Renderer[Report], audit: tuple[dict[str, object], dict[str, str]]
) -> str:
    import json

    from profiler.audit import render as audit_render

    doc, images = audit
    if isinstance(renderer, HtmlRenderer):
        section = audit_render.html_section(doc, images)
        at = document.rfind("</body>")
        return document[:at] + section + document[at:] if at >= 0 else document + section
    if isinstance(renderer, MarkdownRenderer):
        return document.rstrip("\n") + "\n\n" + audit_render.markdown(doc)
    report = json.loads(document)
    report["cache_audit"] = {"cache": doc.get("cache"), "summary": doc.get("summary"),
                             "bill": doc.get("bill")}  # fmt: skip
    return json.dumps(report, indent=1)


def _write_report(
    report: Report,
    out: str,
    note: str,
    say: Say,
    audit: tuple[dict[str, object], dict[str, str]] | None = None,
) -> None:
    renderer = renderer_for(out)
    try:
        document = renderer.render(report)
        if audit is not None and isinstance(document, str):
            document = _with_audit(document, renderer, audit)
    except OSError as exc:
        if not isinstance(renderer, MarkdownRenderer):
            raise
        figures = renderer.figure_dir  # the only renderer that writes files: its figures
        raise ProfilerError(f"{figures}: cannot write figures: {exc.strerror or exc}") from None
    write(out, document)
    if isinstance(renderer, MarkdownRenderer):
        say(f"wrote figures into {renderer.figure_dir}/")
    say(f"wrote {renderer.name} report {out}{note}")
