"""The analysis as text for a terminal (``hydra-profiler analyze``): the verdict sentence,
its evidence, the attribution, per-machine and USE tables, the what-ifs and the coverage."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from profiler.units import format_share

if TYPE_CHECKING:
    from profiler.analyze.analysis import Analysis
    from profiler.analyze.whatif import Projection


def sentence(a: Analysis) -> str:
    """The verdict in one sentence with its numbers."""
    v, sh = a.verdict, a.attribution.shares
    top = sorted(sh.items(), key=lambda kv: -kv[1])
    how = a.attribution.how

    def share(k: str, s: float) -> str:  # absent is not zero: say which shares are partial
        text = f"{k} {format_share(s)}"
        if how(k).startswith(("partial", "not separated")):
            text += " (" + how(k).split(":")[0] + ")"
        return text

    parts = ", ".join(share(k, s) for k, s in top)
    close = f"; close call with {', '.join(v.close)}" if v.close else ""
    summary = v.summary() if v.throughput else ""
    return (
        f"Bottleneck: {v.bottleneck} (confidence {v.confidence:.2f}{close}). "
        + (f"{summary[:1].upper()}{summary[1:]}. " if summary else "")
        + f"{a.attribution.steps} steps, {a.attribution.wall_seconds:,.0f} step-seconds: {parts}."
    )


def render(
    a: Analysis, whatifs: Sequence[Projection], failed: Sequence[tuple[str, str]] = ()
) -> str:
    """The analysis, its what-if projections and the what-ifs not projected (label, why),
    as the text ``hydra-profiler analyze`` prints."""
    out = io.StringIO()
    _analysis(a, out)
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        _tables(a, whatifs, out)
    _coverage(a, out)
    for label, reason in failed:
        print(f"\nwhat-if {label}: not projected: {reason}", file=out)
    return out.getvalue()


def _analysis(a: Analysis, out: io.StringIO) -> None:
    print(sentence(a), file=out)
    print("\nevidence:", file=out)
    for line in a.verdict.evidence:
        print(f"  - {line}", file=out)
    rows = [
        (k, a.attribution.seconds[k], format_share(a.attribution.shares[k]),
         a.attribution.how(k))
        for k in a.attribution.shares
    ]  # fmt: skip
    att = pd.DataFrame(rows, columns=["category", "step_seconds", "share", "how"])
    print("\nattribution:\n" + att.to_string(index=False, float_format="{:,.1f}".format), file=out)


def _tables(a: Analysis, whatifs: Sequence[Projection], out: io.StringIO) -> None:
    if not a.by_machine.empty:
        cols = ["steps", "wall_p50_s", "wall_p90_s", "scheduling_share", "queue_share",
                "compression_share", "io_share", "build_share",
                "slot_not_building_share"]  # fmt: skip
        shown = a.by_machine[[c for c in cols if c in a.by_machine]]
        print("\nby machine:\n" + shown.round(3).to_string(), file=out)
    _over_time(a, out)
    use = a.use.drop(columns="measures").round(3)
    use = use.astype(object).where(use.notna(), "not seen")  # absent, not zero
    print("\nUSE (utilisation, saturation, errors):\n" + use.to_string(), file=out)
    for name, text in a.use["measures"].items():
        print(f"  {name}: {text}", file=out)
    _cpu(a, out)
    for w in whatifs:
        _whatif(w, out)


def _cpu(a: Analysis, out: io.StringIO) -> None:
    """The sampled CPU per process and class (shares of the process' CPU)."""
    if a.cpu is None:
        return
    table = a.cpu.class_table()
    table["share"] = table["share"].map(format_share)
    print(f"\ncpu ({a.cpu.describe()}, {a.cpu.span_seconds:.1f} s):", file=out)
    print(table.to_string(index=False, float_format="{:,.2f}".format), file=out)


OVER_TIME_ROWS = 24  # the last windows shown; the JSON and the report have every one


def _over_time(a: Analysis, out: io.StringIO) -> None:
    """The per-window breakdown (UTC window starts), its last :data:`OVER_TIME_ROWS` rows."""
    if len(a.by_window) < 2:
        return
    cols = ["steps", "wall_p50_s", "wall_p90_s", "scheduling_share", "queue_share",
            "compression_share", "io_share", "build_share"]  # fmt: skip
    table = a.by_window[[c for c in cols if c in a.by_window]].round(3).tail(OVER_TIME_ROWS)
    table.index = [
        pd.Timestamp(t, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%MZ") if pd.notna(t) else "?"
        for t in table.index
    ]
    table.index.name = "window (UTC)"
    more = len(a.by_window) - len(table)
    head = (
        f"\nover time (last {len(table)} of {len(a.by_window)} windows):"
        if more
        else ("\nover time:")
    )
    print(head + "\n" + table.to_string(), file=out)


def _whatif(w: Projection, out: io.StringIO) -> None:
    v = w.validation
    print(
        f"\nwhat-if {w.label} (replay of this run: makespan {v.simulated_makespan_s:.1f} s "
        f"vs {v.observed_makespan_s:.1f} s observed, {100 * v.makespan_rel_error:+.1f}%; "
        f"step ends off by {v.end_mae_s:.2f} s on average):",
        file=out,
    )
    table = w.table.assign(change=[format_share(x, signed=True) for x in w.table["change"]])
    print(table.to_string(index=False, float_format="{:,.3f}".format), file=out)
    if not w.cost.empty:
        basis = f" ({w.basis.describe()})" if w.basis else ""
        print(f"fleet cost at this run's NAR rate{basis}:", file=out)
        print(w.cost.to_string(index=False, float_format="{:,.2f}".format), file=out)
    for note in w.notes:
        print(f"  - {note}", file=out)


def _coverage(a: Analysis, out: io.StringIO) -> None:
    cov = a.coverage()
    print("\ncoverage:", file=out)
    for s in cov["sources"]:
        print(f"  - {s['name']}: {s['rows']} rows, {s['detail']}, {s['precision']}", file=out)
    print(f"  - compression: {cov['compression']}", file=out)
    if a.cpu is not None:
        cpu = a.cpu
        print(f"  - cpu: {cpu.describe()}, {cpu.span_seconds:.1f} s in buckets of "
              f"{cpu.bucket_seconds:g} s; compression {a.attribution.how('compression')}",
              file=out)  # fmt: skip
    for note in cov["notes"]:
        print(f"  - {note}", file=out)
