"""hydra-profiler bench --fleet: the suite on every host of a fleet, side by side."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
from typing import Any

from profiler.errors import UsageError


def _request(args: argparse.Namespace, suite: dict[str, Any], specs: list[str]) -> dict[str, Any]:
    """What every host measures: the shared payloads, codecs and options (as bench's)."""
    return {
        "suite": args.suite,
        "payloads": list(args.payloads or suite["payloads"]),
        "codecs": list(specs),
        "options": {
            "min_runs": args.repeat if args.repeat is not None else int(suite.get("min_runs", 2)),
            "min_time_seconds": args.min_time
            if args.min_time is not None
            else float(suite.get("min_time_seconds", 0.5)),
        },
    }


def run_fleet(args: argparse.Namespace, suite: dict[str, Any], specs: list[str], a: Any) -> int:
    """Measure the suite on the fleet, write OUT/<host>/ and OUT/fleet.json, print the fleet
    side by side; 1 when a host failed (the others' results are kept)."""
    from profiler.bench import fleet, fleet_render, fleet_view
    from profiler.bench.fleet_hosts import load_hosts

    if args.profile:
        raise UsageError("--profile records one machine's harness; not with a fleet")
    spec = load_hosts(args.fleet, scheduler=args.scheduler, local_workers=args.local_cluster)
    out = args.out or f"fleet-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
    names = [h.name for h in spec.hosts]
    created = fleet_view.check_fleet_out(out, names, force=args.force)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    request = _request(args, suite, specs)
    n = len(request["codecs"])
    progress(f"bench --fleet: {len(names)} host(s) on {spec.describe()}, {n} codec(s) -> {out}")
    try:
        run = fleet.run_fleet(spec, request, out, progress=progress)
    except BaseException:
        if created:  # nothing was measured: leave no empty directory behind
            with contextlib.suppress(OSError):
                os.rmdir(out)
        raise
    progress(f"wrote {out}/ (fleet.json, {', '.join(n + '/' for n in _ok(run))})")
    loaded = fleet_view.load_fleet(out)
    if args.format == "json":
        sys.stdout.write(fleet_render.fleet_json(loaded))
    elif args.format == "csv":
        sys.stdout.write(_csv(loaded))
    else:
        sys.stdout.write(fleet_render.fleet_text(loaded))
    return 1 if any(o.status != "ok" for o in run.outcomes) else 0


def _ok(run: Any) -> list[str]:
    return [o.host.name for o in run.outcomes if o.status == "ok"]


def _csv(loaded: Any) -> str:
    import pandas as pd

    frames = [r.rows.assign(host=name) for name, r in loaded.results.items()]
    if not frames:
        return ""
    rows = pd.concat(frames, ignore_index=True)
    return str(rows[["host", *[c for c in rows.columns if c != "host"]]].to_csv(index=False))
