"""Rendering a :class:`~profiler.report.build.Report`: one self-contained HTML file (inline
CSS, figures as ``data:`` URIs, a Content Security Policy that lets nothing load and no
script run), Markdown with the figures written next to it, or JSON.

Each format is also a :class:`Renderer` (:class:`HtmlRenderer`, :class:`MarkdownRenderer`,
:class:`JsonRenderer`; the Chrome trace's is :class:`profiler.report.trace.TraceRenderer`),
which :mod:`profiler.report.outputs` picks by an output file's suffix.
"""

from __future__ import annotations

import base64
import html
import json
import os
from typing import Protocol, TypeVar

from profiler import __version__, atomic
from profiler.report.build import FigureItem, Report, TableItem
from profiler.report.cpu_section import SvgItem
from profiler.report.flame import legend_html
from profiler.units import to_jsonable

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
  background:#fafafa;margin:0}
main{max-width:1180px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:1.6em;margin:0 0 4px}h2{margin-top:2em;border-bottom:1px solid #ddd;
  padding-bottom:4px}h3{font-size:1.05em;margin:1.4em 0 .4em}
.sub{color:#666;font-size:.9em;margin:0 0 16px;word-break:break-all}
.verdict{font-size:1.2em;background:#fdf3f3;border-left:5px solid #C44E52;padding:10px 14px}
dl.hl{display:grid;grid-template-columns:repeat(auto-fill,minmax(135px,1fr));gap:8px 20px;
  margin:16px 0}dl.hl dt{color:#666;font-size:.8em}
dl.hl dd{margin:0;font-weight:600}
nav ol{columns:2;font-size:.95em}
figure{margin:12px 0 24px}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption,.caption{color:#555;font-size:.9em}
.missing{color:#8a5a00;background:#fff8e6;border-left:4px solid #e0a000;padding:6px 10px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.88em;margin:6px 0 4px}
th,td{padding:3px 9px;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}
th{background:#f3f3f3;white-space:nowrap}td:first-child{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f3f3f3;padding:0 3px}
footer{margin-top:3em;color:#888;font-size:.85em}
svg.flame{display:block;border:1px solid #eee}svg.flame g:hover rect{stroke:#222}
.legend{font-size:.85em;color:#444}.swatch{white-space:nowrap;margin-right:8px}
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
S_contra = TypeVar("S_contra", contravariant=True)


class Renderer(Protocol[S_contra]):
    """One output format of a report (or, for the Chrome trace, of the analysis itself):
    ``name`` as people read it, the file ``extension`` it is written to, whether the
    document is ``binary`` (bytes) or text."""

    name: str
    extension: str
    binary: bool

    def render(self, source: S_contra) -> str | bytes:
        """The whole document."""
        ...


def _inline(text: str) -> str:
    """Escape, then show `...` as code."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _html_table(t: TableItem) -> str:
    shown = t.display()
    numeric = t.numeric()
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = []
    for row in shown.itertuples(index=False):
        cells = "".join(
            f'<td class="num">{html.escape(v)}</td>' if num else f"<td>{html.escape(v)}</td>"
            for v, num in zip(row, numeric, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    caption = f'<p class="caption">{_inline(t.caption)}</p>' if t.caption else ""
    return (
        f'<h3>{html.escape(t.title)}</h3><div class="scroll"><table id="{t.id}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>{caption}"
    )


def _html_figure(f: FigureItem) -> str:
    if f.png is None:
        return (
            f'<h3>{html.escape(f.title)}</h3><p class="missing" id="{f.id}-missing">'
            f"Not shown: {_inline(f.missing)}</p>"
        )
    data = base64.b64encode(f.png).decode("ascii")
    return (
        f'<h3>{html.escape(f.title)}</h3><figure><img id="{f.id}" alt="{html.escape(f.alt)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{_inline(f.caption)}</figcaption>'
        "</figure>"
    )


def _html_svg(f: SvgItem) -> str:
    if f.svg is None:
        return (
            f'<h3>{html.escape(f.title)}</h3><p class="missing" id="{f.id}-missing">'
            f"Not shown: {_inline(f.missing)}</p>"
        )
    return (
        f'<h3>{html.escape(f.title)}</h3><figure><p class="legend">{legend_html()}</p>'
        f'<div class="scroll">{f.svg}</div><figcaption>{_inline(f.caption)}</figcaption>'
        "</figure>"
    )


def _html_item(item: FigureItem | TableItem | SvgItem) -> str:
    if isinstance(item, FigureItem):
        return _html_figure(item)
    return _html_svg(item) if isinstance(item, SvgItem) else _html_table(item)


def to_html(report: Report) -> str:
    """The report as one self-contained HTML file (no script, nothing loaded from outside).

    Parameters
    ----------
    report : Report
        From :func:`build_report`.

    Returns
    -------
    str
        The HTML document: inline CSS, figures as ``data:image/png;base64`` ``<img>``
        elements with ``id`` and ``alt``, tables as ``<table>``.
    """
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head>",
        "<body><main>",
        f"<header><h1>{html.escape(report.title)}</h1>",
        f'<p class="sub">{html.escape(report.subtitle)}</p></header>',
        f'<p class="verdict" id="verdict-sentence">{html.escape(report.verdict)}</p>',
        '<dl class="hl">',
        *(
            f"<div><dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd></div>"
            for k, v in report.highlights
        ),
        "</dl>",
        "<nav><ol>",
        *(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>' for s in report.sections),
        "</ol></nav>",
    ]
    for s in report.sections:
        out.append(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>')
        out.extend(f"<p>{_inline(p)}</p>" for p in s.paragraphs)
        if s.bullets:
            out.append("<ul>" + "".join(f"<li>{_inline(b)}</li>" for b in s.bullets) + "</ul>")
        for item in s.items:
            out.append(_html_item(item))
        out.append("</section>")
    out.append(
        f"<footer>Made by hydra-profiler {html.escape(__version__)}; re-make it with "
        f"<code>hydra-profiler report</code> from the same run directory.</footer>"
    )
    out.append("</main></body></html>")
    return "\n".join(out) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(t: TableItem) -> list[str]:
    shown = t.display()
    numeric = t.numeric()
    lines = [
        f"### {t.title}",
        "",
        "| " + " | ".join(_md_escape(str(c)) for c in shown.columns) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    lines += ["| " + " | ".join(_md_escape(v) for v in row) + " |" for row in shown.itertuples(
        index=False
    )]  # fmt: skip
    if t.caption:
        lines += ["", f"*{t.caption}*"]
    return [*lines, ""]


def _md_figure(f: FigureItem, figure_dir: str, link_dir: str) -> list[str]:
    if f.png is None:
        return [f"### {f.title}", "", f"> Not shown: {f.missing}", ""]
    os.makedirs(figure_dir, exist_ok=True)
    path = os.path.join(figure_dir, f"{f.id}.png")
    atomic.write_bytes(path, f.png)
    link = os.path.relpath(path, link_dir).replace(os.sep, "/")
    alt = f.alt.replace("[", "(").replace("]", ")")
    return [f"### {f.title}", "", f"![{alt}]({link})", "", f"*{f.caption}*", ""]


def _md_svg(f: SvgItem, figure_dir: str, link_dir: str) -> list[str]:
    if f.standalone is None:
        return [f"### {f.title}", "", f"> Not shown: {f.missing}", ""]
    os.makedirs(figure_dir, exist_ok=True)
    path = os.path.join(figure_dir, f"{f.id}.svg")
    atomic.write_bytes(path, f.standalone.encode("utf-8"))
    link = os.path.relpath(path, link_dir).replace(os.sep, "/")
    alt = f.alt.replace("[", "(").replace("]", ")")
    return [f"### {f.title}", "", f"![{alt}]({link})", "", f"*{f.caption}*", ""]


def _md_item(item: FigureItem | TableItem | SvgItem, figure_dir: str, base: str) -> list[str]:
    if isinstance(item, FigureItem):
        return _md_figure(item, figure_dir, base)
    return _md_svg(item, figure_dir, base) if isinstance(item, SvgItem) else _md_table(item)


def to_markdown(report: Report, figure_dir: str, *, link_dir: str | None = None) -> str:
    """The report as Markdown, its figures written as PNG files into ``figure_dir``.

    Parameters
    ----------
    report : Report
        From :func:`build_report`.
    figure_dir : str
        Where to write ``<figure id>.png`` (created when there is a figure).
    link_dir : str, optional
        The directory the Markdown file will be in, which links are relative to (default:
        the parent of ``figure_dir``).

    Returns
    -------
    str
        The Markdown document.
    """
    base = link_dir if link_dir is not None else os.path.dirname(os.path.abspath(figure_dir))
    lines = [f"# {report.title}", "", f"{report.subtitle}", "", f"**{report.verdict}**", ""]
    lines += [f"- {k}: {v}" for k, v in report.highlights]
    for s in report.sections:
        lines += ["", f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        lines += [f"- {_md_escape(b)}" for b in s.bullets]
        if s.bullets:
            lines.append("")
        for item in s.items:
            lines += _md_item(item, figure_dir, base)
    lines += ["", f"*Made by hydra-profiler {__version__}.*"]
    return "\n".join(lines) + "\n"


def to_json(report: Report) -> str:
    """The report's data as JSON: ``analyze --format json``'s document, what-ifs, codecs.

    Parameters
    ----------
    report : Report
        From :func:`build_report`.

    Returns
    -------
    str
        Strict JSON (non-finite numbers as ``null``) with at least ``verdict``,
        ``attribution``, ``whatif``, ``codecs`` and ``report`` (figure ids, window).
    """
    return json.dumps(to_jsonable(report.data), indent=2, allow_nan=False) + "\n"


class HtmlRenderer:
    """:func:`to_html` as a :class:`Renderer`."""

    name = "html"
    extension = ".html"
    binary = False

    def render(self, source: Report) -> str:
        return to_html(source)


class MarkdownRenderer:
    """:func:`to_markdown` as a :class:`Renderer`: the figures go into ``figure_dir``."""

    name = "markdown"
    extension = ".md"
    binary = False

    def __init__(self, figure_dir: str) -> None:
        self.figure_dir = figure_dir

    def render(self, source: Report) -> str:
        return to_markdown(source, self.figure_dir)


class JsonRenderer:
    """:func:`to_json` as a :class:`Renderer`."""

    name = "json"
    extension = ".json"
    binary = False

    def render(self, source: Report) -> str:
        return to_json(source)
