"""Accuracy of `analyze` on random testbed scenarios, over every data mix an operator may have.

    python benchmarks/accuracy.py --scenarios 40 --seed 20261203 --out /tmp/accuracy

Each scenario (profiler.scenarios.random_runs.random_scenario: generation, upload mode, codec and
level, link and upload bandwidth, local workers, machines x jobs, dispatch delay, database
latency, build scale, sizes, failures, retries, CPU pressure, DAG shape) runs once on the
testbed, observed live by the collectors (mix a), and its files and database are collected
again as each other mix (b-e). Every mix is analysed with the farm's codec given (an operator
knows their store URI) and its binary cache (`--cache`: codecs calibrated on its NARs); the
answers are compared with the run's truth (profiler.testbed.truth.answers). The same
workload is then re-run with a codec change and with a capacity change (C++ local workers;
Rust one more machine), and the what-if projections of mixes (a) and (b) are compared with
those actual re-runs; and once unchanged, to show how far two runs of one workload differ
(the floor under any projection's error).

Prints, per mix and generation: verdict accuracy (headline, and the throughput and latency
answers), share errors in points (median, p90, worst) and the share of runs with every share
within its limit (5 points observed, 10 estimated), the replay's makespan error, the what-if
projections against the re-runs (within 15%), crashes, and for every mix a calibration table
(stated confidence vs hit rate). Results go to OUT/results.json (one record per scenario and
mix), so a table can be re-printed with --table OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from typing import Any

import numpy as np

from profiler.scenarios import random_runs as sc
from profiler.testbed import truth as tr
from profiler.units import to_jsonable

SHARE_LIMIT = {False: 0.05, True: 0.10}  # observed / estimated
# the targets: (a) 5 points observed, 10 estimated; (b) 10 points for every share;
# the other mixes are held to (a)'s limits for information
MIX_SHARE_LIMIT = {"b": {False: 0.10, True: 0.10}}
WHATIF_LIMIT = 0.15


@contextmanager
def database(server_dsn: str | None) -> Iterator[str | None]:
    if server_dsn is None:
        yield None
        return
    import uuid

    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = f"acc_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server_dsn, dbname=name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


def evaluate(
    run: str, s: sc.Scenario, answers: dict[str, Any], mix: str = "a", cache: str | None = None
) -> dict[str, Any]:
    """Analyse one mix's run and score it against the truth (shares within ``mix``'s
    limits). ``cache`` is the farm's binary cache (an operator has theirs at hand): codecs
    are calibrated on its NARs."""
    from profiler.scenarios.analysis import analyze_run

    codec = s.knobs.get("codec", "xz:6")
    rec: dict[str, Any] = {}
    try:
        a = analyze_run(run, codec=codec, cache_dir=cache)
    except Exception as exc:  # a crash is a result: counted, with its message
        rec["error"] = f"{type(exc).__name__}: {exc}"
        rec["crash"] = not _is_clean_refusal(exc)
        if rec["crash"]:
            rec["traceback"] = traceback.format_exc(limit=6)
        return rec
    doc = a.as_dict()
    v = doc["verdict"]
    rec.update(
        headline=v["bottleneck"],
        confidence=v["confidence"],
        close=v.get("close", []),
        throughput=v.get("throughput", {}),
        latency=v.get("latency", {}),
    )
    rec["headline_hit"] = v["bottleneck"] == answers["headline"] or (
        v["bottleneck"] in answers["close"]
    )
    rec["close_hit"] = rec["headline_hit"] or answers["headline"] in v.get("close", [])
    thr = v.get("throughput") or {}
    if "saturated" in thr and thr["saturated"] is not None:
        rec["saturated_hit"] = bool(thr["saturated"]) == answers["saturated"]
    lat = v.get("latency") or {}
    if lat.get("cause"):
        rec["latency_hit"] = lat["cause"] == answers["latency"]
    if doc["steps"]:
        errors = {}
        within = True
        for c, true in answers["shares"].items():
            ours = doc["attribution"].get(c)
            if ours is None:
                continue
            err = abs(ours - true)
            est = c in doc["coverage"]["estimated"]
            errors[c] = err
            within &= err <= MIX_SHARE_LIMIT.get(mix, SHARE_LIMIT)[est]
        rec["share_errors"] = errors
        rec["shares_within"] = within
        rec["estimated"] = doc["coverage"]["estimated"]
    rec["analysis"] = a
    return rec


def _is_clean_refusal(exc: Exception) -> bool:
    from profiler.errors import ProfilerError

    return isinstance(exc, ProfilerError)


def project(a: Any, change: str) -> dict[str, Any]:
    from profiler.analyze import whatif

    try:
        p = whatif.project(a, whatif.parse_change(change))
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    t = p.table.set_index("metric")["change"]
    return {
        "makespan_change": float(t["makespan_s"]),
        "p50_change": float(t["p50_wall_s"]),
        "replay_makespan_error": p.validation.makespan_rel_error,
    }


def rerun(s: sc.Scenario, wl: Any, out: str, **changes: Any) -> dict[str, Any]:
    from profiler.testbed.run import run_testbed

    doc = run_testbed(wl, s.make_knobs(wl, **changes), out, snapshot_seconds=5.0)
    return tr.answers(doc)


def one_scenario(
    s: sc.Scenario, out: str, server_dsn: str | None, reruns: bool, say: Any
) -> list[dict[str, Any]]:
    from profiler.analyze import whatif
    from profiler.scenarios.observe import observed_run

    wl = s.workload()
    knobs = s.make_knobs(wl)
    records = []
    with database(server_dsn) as dsn:
        t0 = time.monotonic()
        observed = observed_run(wl, knobs, out, pg_dsn=dsn)
        answers = tr.answers(observed.truth)
        t_run = time.monotonic()
        with open(os.devnull, "w") as quiet, redirect_stdout(quiet), redirect_stderr(quiet):
            runs = sc.build_mixes(observed.testbed_dir, observed.run_dir, out, dsn)
    t_mixes = time.monotonic()
    say(
        f"  ran in {t_mixes - t0:.0f} s; truth: {answers['headline']}"
        f"{' (close: ' + ', '.join(answers['close']) + ')' if answers['close'] else ''}, "
        f"saturated {answers['saturated']}, latency {answers['latency']}; shares "
        + ", ".join(f"{c} {100 * v:.0f}%" for c, v in answers["shares"].items())
    )
    say(f"  observed in {t_run - t0:.0f} s, mixes collected in {t_mixes - t_run:.0f} s")
    analyses = {}
    for mix, run in sorted(runs.items()):
        rec = evaluate(run, s, answers, mix, os.path.join(observed.testbed_dir, "cache"))
        a = rec.pop("analysis", None)
        if a is not None:
            analyses[mix] = a
            rec["replay"] = project(a, "compress=1")
        rec.update(mix=mix, seed=s.seed, generation=s.knobs["generation"], truth=answers)
        records.append(rec)
        say(
            f"  ({mix}) "
            + (
                rec.get("error", "")
                or f"{rec['headline']} {rec['confidence']:.2f}"
                f"{' HIT' if rec['headline_hit'] else ' miss'}"
                + (
                    f"; worst share error {100 * max(rec['share_errors'].values()):.0f} pts"
                    if rec.get("share_errors")
                    else ""
                )
            )
        )
    if reruns:
        for kind, (change, knob_changes) in (
            ("codec", (f"codec={sc.codec_change(s)}", {"codec": sc.codec_change(s)})),
            ("capacity", sc.worker_change(s)),
        ):
            actual = rerun(s, wl, os.path.join(out, f"rerun-{kind}"), **knob_changes)
            for rec in records:
                a = analyses.get(rec["mix"])
                if a is None or rec["mix"] not in ("a", "b"):
                    continue
                proj = project(a, change)
                if "error" not in proj:
                    for m, key in (("makespan", "makespan_seconds"), ("p50", "p50_wall_seconds")):
                        predicted = answers[key] * (1 + proj[f"{m}_change"])
                        proj[f"{m}_error"] = predicted / actual[key] - 1
                    proj["actual_makespan_change"] = (
                        actual["makespan_seconds"] / answers["makespan_seconds"] - 1
                    )
                rec[f"whatif_{kind}"] = {"change": change, **proj}
            say(
                f"  re-run {change}: makespan {answers['makespan_seconds']:.1f} -> "
                f"{actual['makespan_seconds']:.1f} s ({time.monotonic() - t0:.0f} s so far)"
            )
        # the floor under every what-if error: the same workload and knobs, run again
        same = rerun(s, wl, os.path.join(out, "rerun-same"))
        noise = {
            m: same[key] / answers[key] - 1
            for m, key in (("makespan", "makespan_seconds"), ("p50", "p50_wall_seconds"))
        }
        for rec in records:
            rec["rerun_noise"] = noise
        say(
            f"  re-run unchanged: makespan {answers['makespan_seconds']:.1f} -> "
            f"{same['makespan_seconds']:.1f} s, p50 {answers['p50_wall_seconds']:.2f} -> "
            f"{same['p50_wall_seconds']:.2f} s"
        )
    del whatif
    return records


def _pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{100 * x:.0f}%"


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    arr = np.abs(np.array(values, float)) * 100
    return f"{np.median(arr):.1f}/{np.percentile(arr, 90):.1f}/{arr.max():.1f}"


def noise_lines(records: list[dict[str, Any]]) -> list[str]:
    """How far an unchanged re-run of each scenario landed from its first run."""
    noise = {(r["seed"], r["generation"]): r["rerun_noise"] for r in records if "rerun_noise" in r}
    if not noise:
        return []
    lines = [
        "",
        "re-run noise (the same workload and knobs run again; the floor under the what-if "
        "errors): within 15% makespan / p50",
    ]
    for gen in ("all", "cxx", "rust"):
        vals = [v for (_, g), v in noise.items() if gen in ("all", g)]
        if vals:
            span = sum(abs(v["makespan"]) <= WHATIF_LIMIT for v in vals) / len(vals)
            p50 = sum(abs(v["p50"]) <= WHATIF_LIMIT for v in vals) / len(vals)
            med = np.median([abs(v["p50"]) for v in vals]) * 100
            lines.append(
                f"  {gen:<4} {_pct(span)}/{_pct(p50)} of {len(vals)} (median p50 change {med:.0f}%)"
            )
    return lines


def table(records: list[dict[str, Any]]) -> str:
    """The accuracy table per mix and generation, then the calibration table."""
    lines = [
        "mix gen   n  crash  headline  +close     saturated latency   shares-within "
        "share err pts med/p90/max  replay err med  whatif codec  whatif capacity",
        "(whatif: share of re-runs whose makespan / p50 the projection got within 15%)",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["mix"], r["generation"]), []).append(r)
        groups.setdefault((r["mix"], "all"), []).append(r)

    def rate(rs: list[dict[str, Any]], key: str) -> str:
        vals = [r[key] for r in rs if key in r]
        return f"{_pct(sum(vals) / len(vals)) if vals else '-':>4} ({len(vals)})"

    def whatif(rs: list[dict[str, Any]], kind: str) -> str:
        vals = [r[f"whatif_{kind}"] for r in rs if "makespan_error" in r.get(f"whatif_{kind}", {})]
        if not vals:
            return "-"
        span = sum(abs(v["makespan_error"]) <= WHATIF_LIMIT for v in vals) / len(vals)
        p50 = sum(abs(v["p50_error"]) <= WHATIF_LIMIT for v in vals) / len(vals)
        return f"{_pct(span)}/{_pct(p50)} of {len(vals)}"

    for (mix, gen), rs in sorted(groups.items()):
        crashes = sum(1 for r in rs if r.get("crash"))
        errs = [e for r in rs for e in r.get("share_errors", {}).values()]
        replay = [
            abs(r["replay"]["replay_makespan_error"])
            for r in rs
            if "replay_makespan_error" in r.get("replay", {})
        ]
        lines.append(
            f"({mix}) {gen:<4} {len(rs):>3} {crashes:>5}  {rate(rs, 'headline_hit'):>9} "
            f"{rate(rs, 'close_hit'):>9} "
            f"{rate(rs, 'saturated_hit'):>9} {rate(rs, 'latency_hit'):>9} "
            f"{rate(rs, 'shares_within'):>9}  {_stats(errs):>22}  "
            f"{_pct(float(np.median(replay))) if replay else '-':>14}  "
            f"{whatif(rs, 'codec'):>12}  {whatif(rs, 'capacity'):>14}"
        )
    lines.extend(noise_lines(records))
    lines.append("")
    lines.append(
        "shares within their limits by step length (Hydra's own clocks: the tracker polls "
        "every 0.1 s, the database and short journals keep whole seconds), median step:"
    )
    for mix in ("a", "b"):
        cells = []
        for lo, hi in RESOLVABLE:
            rs = [
                r for r in records
                if r["mix"] == mix and "shares_within" in r
                and lo <= r["truth"]["p50_wall_seconds"] < hi
            ]  # fmt: skip
            cells.append(f"{lo:g}-{hi:g} s: {rate(rs, 'shares_within')}")
        lines.append(f"({mix})  " + ";  ".join(cells))
    lines.append("")
    lines.append("calibration: stated confidence vs how often the headline was right")
    lines.append("mix  " + "  ".join(f"{lo:.1f}-{hi:.1f}" for lo, hi in BINS))
    for mix in sorted({r["mix"] for r in records}):
        cells = []
        for lo, hi in BINS:
            rs = [
                r
                for r in records
                if r["mix"] == mix and "confidence" in r and lo <= r["confidence"] < hi
            ]
            hits = sum(1 for r in rs if r.get("headline_hit"))
            cells.append(f"{_pct(hits / len(rs)) if rs else '-':>4}/{len(rs):<3}")
        lines.append(f"({mix})  " + "  ".join(cells))
    return "\n".join(lines)


BINS = ((0.0, 0.3), (0.3, 0.6), (0.6, 0.8), (0.8, 1.01))
RESOLVABLE = ((0.0, 1.0), (1.0, 2.0), (2.0, math.inf))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scenarios", type=int, default=10)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--out", default="accuracy-out")
    ap.add_argument("--no-db", action="store_true", help="skip the database mixes (a, d)")
    ap.add_argument("--no-rerun", action="store_true", help="skip the what-if re-runs")
    ap.add_argument("--keep", action="store_true", help="keep each scenario's runs")
    ap.add_argument("--table", metavar="RESULTS", help="re-print the table of a results.json")
    opts = ap.parse_args(argv)
    if opts.table:
        with open(opts.table, encoding="utf-8") as f:
            print(table(json.load(f)["records"]))
        return 0
    os.makedirs(opts.out, exist_ok=True)
    records: list[dict[str, Any]] = []
    say = lambda m: print(m, flush=True)  # noqa: E731
    t0 = time.monotonic()
    with ExitStack() as stack:
        server = None
        if not opts.no_db:
            from profiler.testbed.pgserver import PostgresServer, find_pg_bindir

            bindir = find_pg_bindir()
            if bindir is None:
                say("PostgreSQL not installed: mixes (a) and (d) are skipped")
            else:
                server = stack.enter_context(PostgresServer(bindir)).dsn
        for i in range(opts.scenarios):
            s = sc.random_scenario(opts.seed + i)
            say(f"[{i + 1}/{opts.scenarios}] seed {s.seed}: {s.describe()}")
            where = os.path.join(opts.out, f"s{s.seed}")
            try:
                records.extend(one_scenario(s, where, server, not opts.no_rerun, say))
            except Exception as exc:  # the testbed itself failed: say so, go on
                say(f"  scenario failed: {type(exc).__name__}: {exc}")
                traceback.print_exc(limit=4)
            if not opts.keep:
                shutil.rmtree(where, ignore_errors=True)
            with open(os.path.join(opts.out, "results.json"), "w", encoding="utf-8") as f:
                json.dump(
                    to_jsonable({"seed": opts.seed, "scenarios": i + 1, "records": records}),
                    f,
                    indent=1,
                )
    say(f"\n{opts.scenarios} scenarios from seed {opts.seed} in {time.monotonic() - t0:.0f} s")
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
