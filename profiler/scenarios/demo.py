"""The end-to-end demo: bench, a testbed observed live, analysis, what-if, report.

Everything runs on this machine in a few minutes and lands in one directory:

- ``bench/``: the quick bench (xz-6, zstd-3, zstd-19) on the built-in corpus;
- ``testbed/``: the emulated queue runner's truth, journals and binary cache;
- ``run/``: what the collectors saw while it ran (status, metrics, journal, and the database
  with its phase tracker when PostgreSQL is installed: a private server is started);
- ``analysis.json``, ``report.html``, ``report.md``, ``report.json``, ``trace.json``.

The testbed runs the C++ queue runner with xz-6 and a single local worker slot: the
situation the farm's operators suspected, made on purpose, so the analysis has something
to find and the truth to be checked against.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from profiler.errors import ProfilerError
from profiler.scenarios.observe import Observed

if TYPE_CHECKING:
    from profiler.analyze.analysis import Analysis

BENCH_CODECS = ("xz:6", "zstd:3", "zstd:19")
WHATIFS = ("codec=zstd:19", "codec=zstd:3", "workers=4")
NO_BENCH_WHATIFS = ("compress=0.5", "workers=4")


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs; the defaults take a few minutes on 2 cores."""

    out: str = "hydra-profiler-demo"
    steps: int = 24
    bench: bool = True
    bench_payloads: tuple[str, ...] = ("default",)
    database: bool = True
    generation: str = "cxx"
    codec: str = "xz:6"
    local_workers: int = 1


def _step(say: Callable[[str], object], n: int, text: str) -> float:
    say(f"\n== demo {n}/5: {text}")
    return time.monotonic()


def run_demo(opts: DemoOptions, say: Callable[[str], object] = print) -> dict[str, str]:
    """Run every stage; return the paths of what it wrote."""
    out = os.path.abspath(opts.out)
    if os.path.exists(out) and os.listdir(out):
        raise ProfilerError(f"{out}: exists and is not empty (pick another --out)")
    os.makedirs(out, exist_ok=True)
    paths = {"out": out, "run": os.path.join(out, "run"), "testbed": os.path.join(out, "testbed")}
    t0 = time.monotonic()
    bench_dir = None
    if opts.bench:
        t = _step(say, 1, f"bench {', '.join(BENCH_CODECS)} on {' '.join(opts.bench_payloads)}")
        bench_dir = paths["bench"] = _bench(os.path.join(out, "bench"), opts)
        say(f"bench done in {time.monotonic() - t:.0f} s")
    else:
        _step(say, 1, "bench skipped (--no-bench): compression split calibrated instead")
    with ExitStack() as stack:
        dsn = _database(stack, opts, say)
        t = _step(say, 3, "testbed with the collectors running against it live")
        observed = _observe(opts, out, dsn, say)
        say(f"testbed and collectors done in {time.monotonic() - t:.0f} s")
    t = _step(say, 4, "analysis and what-if")
    a = _analysis(paths["run"], bench_dir, opts)
    truth = observed.truth["attribution"]
    say("testbed truth (what really happened): " + ", ".join(
        f"{k} {100 * v:.1f}%" for k, v in sorted(truth.items(), key=lambda kv: -kv[1])
    ))  # fmt: skip
    t = _step(say, 5, "report")
    paths.update(_reports(out, a))
    say(f"report done in {time.monotonic() - t:.0f} s")
    with open(os.path.join(out, "demo.json"), "w", encoding="utf-8") as f:
        json.dump({"paths": paths, "truth": truth}, f, indent=2)
    say(f"\ndemo finished in {time.monotonic() - t0:.0f} s; open {paths['report.html']}")
    for name in ("bench", "run", "testbed", "report.html", "report.md", "trace.json"):
        if name in paths:
            say(f"  {name:<12} {paths[name]}")
    return paths


def _bench(out: str, opts: DemoOptions) -> str:
    """The quick suite's bench of :data:`BENCH_CODECS`, one timed run each, printed as
    ``hydra-profiler bench`` prints it (the default farm assumptions)."""
    from profiler.bench import load_suite, render, run_suite
    from profiler.bench.derive import Assumptions
    from profiler.bench.results import check_out

    check_out(out, force=False)
    stored = run_suite(
        load_suite("quick"),
        out,
        name="quick",
        specs=BENCH_CODECS,
        payload_specs=opts.bench_payloads,
        repeat=1,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    )
    sys.stdout.write(render.text_report(stored.rows, stored.meta, Assumptions()))
    if stored.rows["error"].notna().all():
        raise ProfilerError("demo: the bench failed: no codec measured a payload")
    return out


def _database(stack: ExitStack, opts: DemoOptions, say: Callable[[str], object]) -> str | None:
    _step(say, 2, "a private PostgreSQL for Hydra's tables")
    if not opts.database:
        say("skipped (--no-db): the analysis uses the journal and status only")
        return None
    from profiler.testbed.pgserver import PostgresServer, find_pg_bindir

    bindir = find_pg_bindir()
    if bindir is None:
        say(
            "PostgreSQL is not installed (Debian: apt install postgresql): going on without "
            "the database collector; the analysis uses the journal and status"
        )
        return None
    server = stack.enter_context(PostgresServer(bindir))
    say(f"PostgreSQL {bindir.parent.name} on 127.0.0.1:{server.port} (thrown away afterwards)")
    return server.dsn


def _observe(
    opts: DemoOptions, out: str, dsn: str | None, say: Callable[[str], object]
) -> Observed:
    from profiler.scenarios.observe import observed_run
    from profiler.testbed import workload
    from profiler.testbed.engine import Knobs

    wl = workload.generate(opts.steps, seed=3, build_scale=0.3)
    knobs = Knobs(opts.generation, opts.codec, local_workers=opts.local_workers)
    say(
        f"{opts.steps} steps, {opts.generation} queue runner, {opts.codec}, "
        f"{opts.local_workers} local worker slot(s), 2 machines x 2 jobs; collectors: status "
        f"every 0.25 s, metrics every 1 s{', database + phase tracker every 0.1 s' if dsn else ''}"
        ", then the journals"
    )
    return observed_run(wl, knobs, out, pg_dsn=dsn, progress=lambda m: say(f"  {m}"))


def _analysis(run: str, bench_dir: str | None, opts: DemoOptions) -> Analysis:
    """The run analysed with the bench's profiles (else xz-6 calibrated here), its what-ifs
    projected, all printed as ``hydra-profiler analyze`` prints them."""
    from profiler.analyze import whatif as wi
    from profiler.report import terminal
    from profiler.scenarios.analysis import analyze_run

    a = analyze_run(run, bench_dir=bench_dir, codec=opts.codec)
    changes = [wi.parse_change(w) for w in (WHATIFS if bench_dir else NO_BENCH_WHATIFS)]
    done, failed = wi.project_all(a, changes)
    print(terminal.render(a, done, failed), end="")
    return a


def _reports(out: str, a: Analysis) -> dict[str, str]:
    """The HTML, Markdown and JSON reports of the analysis, and its Chrome trace."""
    from profiler.report import outputs

    paths = {name: os.path.join(out, name) for name in ("report.html", "report.md", "report.json")}
    paths["trace.json"] = os.path.join(out, "trace.json")
    outputs.write_reports(
        a,
        [paths["report.html"], paths["report.md"], paths["report.json"]],
        trace=paths["trace.json"],
        whatifs=outputs.default_whatifs(a, a.profiles),
        say=print,
        progress=lambda message: print(message, file=sys.stderr),
    )
    return paths
