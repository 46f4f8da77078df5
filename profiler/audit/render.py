"""An audit for people: the terminal summary, a Markdown and an HTML section (the report
includes the HTML one), a CSV of the NARs, and the plots (ratio by NAR size, by writer)."""

from __future__ import annotations

import html
import io
import math
from typing import Any

import pandas as pd

from profiler.audit.bill import MIN_FOR_CI
from profiler.units import format_bytes

CSV_COLUMNS = (
    "url", "store_path", "nar_size", "file_size", "method", "level", "exact", "writer",
    "layout", "size_class", "decompress_cpu_seconds", "infer_seconds", "last_modified",
)  # fmt: skip


NO_CI = "*"
NO_CI_NOTE = f"{NO_CI} fewer than {MIN_FOR_CI} NARs in the class: no interval"


def _ci(d: dict[str, Any] | None, fmt: str | Any = "{:.3f}", scale: float = 1.0) -> str:
    """``value [low, high]``, or ``value*`` when the sample is too small for an interval;
    ``fmt`` is a format string or a function of the value."""
    if not d or d.get("value") is None or math.isnan(d["value"]):
        return "n/a"

    def show(v: float) -> str:
        return fmt(v * scale) if callable(fmt) else fmt.format(v * scale)

    if d.get("low") is None:
        return f"{show(d['value'])}{NO_CI}"
    return f"{show(d['value'])} [{show(d['low'])}, {show(d['high'])}]"


def _pct(d: dict[str, Any] | None) -> str:
    return _ci(d, "{:+.1f}%", 100.0)


def tables(doc: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per size class and overall, per codec projection) as tables, from the JSON document."""
    bill = doc.get("bill") or {}
    groups = [*(bill.get("classes") or [])]
    if bill.get("overall"):
        groups.append({**bill["overall"], "class": "overall"})
    rows, proj = [], []
    for g in groups:
        rows.append(
            {
                "class": g["class"],
                "NARs": g["nars"],
                "NAR bytes": format_bytes(g["nar_bytes"]),
                "stored bytes": format_bytes(g["file_bytes"]),
                "ratio [95% CI]": _ci(g["ratio"]),
                "egress per download": _ci(g["file_bytes_per_nar"], format_bytes),
                "client decode CPU s/NAR": _ci(g["decompress_cpu_seconds_per_nar"], "{:.4f}"),
            }
        )
        for codec, p in (g.get("projections") or {}).items():
            proj.append(
                {
                    "class": g["class"],
                    "codec": codec,
                    "NARs": p["nars"],
                    "ratio": _ci(p["ratio"]),
                    "bytes vs stored": _pct(p["bytes_vs_stored"]),
                    "decode CPU s/NAR": _ci(p["decompress_cpu_seconds_per_nar"], "{:.4f}"),
                    "compress CPU s/GiB": f"{p['compress_cpu_seconds_per_gib']:.1f}"
                    if p.get("compress_cpu_seconds_per_gib") is not None
                    else "n/a",
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(proj)


def text(doc: dict[str, Any]) -> str:
    """The terminal summary."""
    s = doc["summary"]
    lines = [f"cache {doc['cache']}: {s['headline']}"]
    sampled, seed = doc["options"]["sample"], doc["options"]["seed"]
    lines.append(
        f"audited {s['nars']} NAR(s) of {doc['listed']} listed"
        f" ({'all' if sampled is None else f'sample {sampled}, seed {seed}'}"
        f", {doc['options']['order']} order) in {doc['seconds']:.1f} s"
        + ("; INTERRUPTED, partial" if doc["interrupted"] else "")
    )
    if s.get("written_as_by"):
        lines.append("written as by: " + "; ".join(s["written_as_by"]))
    for w in s.get("writers", []):
        level = "level unknown (tie or no match)" if w["level"] is None else f"level {w['level']}"
        lines.append(f"  {w['nars']:6d}  {w['method']} {level}, {w['layout']}")
    if doc["faults"]:
        lines.append(f"{len(doc['faults'])} fault(s):")
        lines += [f"  {f['kind']}: {f['key']}: {f['message']}" for f in doc["faults"][:50]]
        if len(doc["faults"]) > 50:
            lines.append(f"  ... {len(doc['faults']) - 50} more in the JSON")
    classes, proj = tables(doc)
    if not classes.empty:
        lines += ["", classes.to_string(index=False)]
        lines.append(f"[95% CI: bootstrap over the sampled NARs; {NO_CI_NOTE}]")
    if not proj.empty:
        lines += ["", "projected on the same NARs (measured here):", proj.to_string(index=False)]
    cache = (doc.get("bill") or {}).get("cache")
    if cache:
        est = cache["stored_bytes_estimate"]
        lines.append(
            f"\nwhole cache ({cache['narinfos']} narinfos): about {format_bytes(est['value'])}"
            + (
                f" [{format_bytes(est['low'])}, {format_bytes(est['high'])}]"
                if est.get("low") is not None
                else ""
            )
            + f", ${cache['usd_per_month_estimate']:.2f}/month at "
            f"${cache['storage_usd_per_tb_month']}/TB-month"
        )
    return "\n".join(lines) + "\n"


def markdown(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    out = [f"## Binary cache audit: {doc['cache']}", "", f"**{s['headline']}**", ""]
    out.append(f"{s['nars']} NAR(s) audited of {doc['listed']} listed; {s['faults']} fault(s).")
    classes, proj = tables(doc)
    for title, t in (("By NAR size", classes), ("Other codecs on the same NARs", proj)):
        if not t.empty:
            out += ["", f"### {title}", "", *_md(t)]
    if doc["faults"]:
        out += ["", "### Faults", ""]
        out += [f"- `{f['kind']}` {f['key']}: {f['message']}" for f in doc["faults"]]
    return "\n".join(out) + "\n"


def _md(t: pd.DataFrame) -> list[str]:
    def cell(v: object) -> str:
        return str(v).replace("|", "\\|")

    head = [str(c) for c in t.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in t.itertuples(index=False)]
    return lines


def html_section(doc: dict[str, Any], images: dict[str, str] | None = None) -> str:
    """An HTML ``<section>`` (the report embeds it); ``images`` maps a title to a file name
    or data URI."""
    s = doc["summary"]
    esc = html.escape
    parts = [
        '<section class="audit">',
        f"<h2>Binary cache audit: {esc(doc['cache'])}</h2>",
        f"<p><strong>{esc(s['headline'])}</strong></p>",
        f"<p>{s['nars']} NAR(s) audited of {doc['listed']} listed; {s['faults']} fault(s).</p>",
    ]
    classes, proj = tables(doc)
    for title, t in (("By NAR size", classes), ("Other codecs on the same NARs", proj)):
        if not t.empty:
            parts += [f"<h3>{esc(title)}</h3>", t.to_html(index=False, escape=True, border=0)]
    for title, src in (images or {}).items():
        parts.append(f'<figure><img src="{esc(src)}" alt="{esc(title)}"><figcaption>'
                     f"{esc(title)}</figcaption></figure>")  # fmt: skip
    if doc["faults"]:
        parts.append("<h3>Faults</h3><ul>")
        parts += [
            f"<li><code>{esc(f['kind'])}</code> {esc(f['key'])}: {esc(f['message'])}</li>"
            for f in doc["faults"]
        ]
        parts.append("</ul>")
    parts.append("</section>")
    return "\n".join(parts) + "\n"


def csv(doc: dict[str, Any]) -> str:
    t = pd.DataFrame(doc["nars"])
    if t.empty:
        t = pd.DataFrame(columns=list(CSV_COLUMNS))
    cols = [c for c in CSV_COLUMNS if c in t] + [str(c) for c in t if "|" in str(c)]
    buf = io.StringIO()
    t[cols].to_csv(buf, index=False)
    return buf.getvalue()


def plots(doc: dict[str, Any], directory: str) -> dict[str, str]:
    """Ratio by NAR size (one point per NAR, coloured by writer) and ratio by writer (box
    per writer); the files written, by title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = pd.DataFrame(doc["nars"])
    if t.empty:
        return {}
    t["ratio"] = t["file_size"] / t["nar_size"]
    t["who"] = [
        f"{m} {'?' if lv is None or lv != lv else int(lv)}"
        for m, lv in zip(t["method"], t["level"], strict=True)
    ]
    out = {}
    fig, ax = plt.subplots(figsize=(7, 4))
    for who, g in t.groupby("who"):
        ax.scatter(g["nar_size"], g["ratio"], s=12, label=str(who))
    ax.set_xscale("log")
    ax.set_xlabel("NarSize (bytes, log)")
    ax.set_ylabel("FileSize / NarSize")
    ax.set_title("Compression ratio by NAR size, per inferred writer")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(f"{directory}/ratio_by_size.png", dpi=110)
    plt.close(fig)
    out["Ratio by NAR size"] = "ratio_by_size.png"
    fig, ax = plt.subplots(figsize=(7, 4))
    groups = [(str(k), g["ratio"].to_numpy()) for k, g in t.groupby("who")]
    ax.boxplot([g for _, g in groups], tick_labels=[k for k, _ in groups])
    ax.set_ylabel("FileSize / NarSize")
    ax.set_title("Compression ratio by inferred writer (method, level)")
    fig.tight_layout()
    fig.savefig(f"{directory}/ratio_by_writer.png", dpi=110)
    plt.close(fig)
    out["Ratio by writer"] = "ratio_by_writer.png"
    return out
