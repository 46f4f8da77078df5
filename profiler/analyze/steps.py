"""The step table: one row per build step, joined from whatever a run holds.

Sources, best first (reference ``hydra.md`` §2.4, §3, §4 and §8):

- ``db_phases`` (the live phase tracker of ``collect db``): per-step intervals of each busy
  phase, to within the poll interval;
- ``db_steps`` / ``db_builds``: machine, system, jobset, and Hydra's own times, whose meaning
  depends on the generation (C++: ``stop - start`` is the build only and ``overhead`` the copy
  time in ms; Rust: ``stop - start`` is the whole step and ``overhead`` import + upload);
- ``log_events``: C++ ``copying path ... (N bytes, compressed P% in M ms)`` gives the NAR size,
  compressed size and the receive+compress+write pipeline time per output;
- ``samples`` (status/metrics): the runnable-steps gauge, whose time integral is the total time
  steps waited for a machine (or, Rust, the queue wait counter), for the scheduling share that
  no per-step source records.

Hydra never stores compression time separately: the copy phase (C++ busy 40, Rust upload) holds
receive, compression, cache write and upload together. It is split with a codec profile
(:mod:`profiler.bench.profiles`): compression = NAR bytes x measured seconds per byte, capped
at the phase, the rest I/O; such columns are marked estimated.

The columns, their units and categories are in :mod:`profiler.analyze.schema`; every
duration column is seconds; ``*_source`` columns say where a value came from and
``resolution_s`` how precise the phase boundaries are.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from profiler.analyze.schema import DURATIONS, PHASE_COLUMN, Source, StepTable
from profiler.hydra import facts
from profiler.hydra.catalogue import store_base
from profiler.payloads.binary_cache import path_sizes
from profiler.store import RunReader

FINAL_BUSY = facts.FINAL_PHASE
_NO_LOGS = pd.DataFrame(columns=["event"])
# a store path, full (/nix/store/..., C++ and the database) or a base name (Rust's StorePath
# Display, harmonia): the name without the hash and the .drv
_STORE_NAME = re.compile(r"^(?:/nix/store/)?[0-9a-df-np-sv-z]{32}-(.+?)(\.drv)?$")


def store_name(path: Any) -> str | None:
    """``/nix/store/<hash>-hello-2.12.drv`` or ``<hash>-hello-2.12.drv`` -> ``hello-2.12``
    (None if not a store path)."""
    if not isinstance(path, str):
        return None
    m = _STORE_NAME.match(path)
    return m.group(1) if m else None


def _table(reader: RunReader, name: str) -> pd.DataFrame | None:
    return reader.table(name) if name in reader.tables() else None


def _phase_steps(phases: pd.DataFrame) -> pd.DataFrame:
    """Sum the tracker's phase intervals per step into duration columns."""
    seen = _poll_midpoints(phases[phases["phase"].isin(list(PHASE_COLUMN))].copy())
    seen["column"] = seen["phase"].map(PHASE_COLUMN)
    seen["seconds"] = seen["end_ts"].astype(float) - seen["start_ts"].astype(float)
    wide = seen.pivot_table(
        index=["build", "stepnr"], columns="column", values="seconds", aggfunc="sum"
    )
    span = seen.groupby(["build", "stepnr"]).agg(
        start_ts=("start_ts", "min"),
        end_ts=("end_ts", "max"),
        resolution_s=("resolution_seconds", "max"),
        machine=("machine", "last"),
        system=("system", "last"),
        gap=("gap", "max"),
    )
    copies = seen[seen["phase"] == "receiving-outputs"].groupby(["build", "stepnr"])
    span = span.join(copies["start_ts"].min().rename("copy_start_ts"))
    span = span.join(copies["end_ts"].max().rename("copy_end_ts"))
    out = span.join(wide).reset_index()
    for column in set(PHASE_COLUMN.values()):
        if column not in out:
            out[column] = 0.0
        out[column] = out[column].fillna(0.0)
    out["timing_source"] = "tracker"
    return out


# C++ tracked phases whose time holds the next phase's row update at its end (``updateStep``
# writes before each phase's work: hydra a40d4286 subprojects/hydra/hydra-queue-runner/
# builder.cc:201-205, build-remote.cc:431, :512, :532, :562, :582, builder.cc:226) -> where the
# write goes: with the machine's slot held (preparing) or after its release (post-processing)
_CXX_WRITE_AT_END = {
    "connecting": "prepare_s",
    "sending-inputs": "prepare_s",
    "building": "prepare_s",
    "waiting-for-local-slot": "prepare_s",
    "receiving-outputs": "post_s",
}


def _tracked_part(phases: pd.DataFrame, generation: str) -> tuple[pd.DataFrame, str | None]:
    """The tracker's steps; C++ phases less the row updates written at their ends."""
    tracked = _phase_steps(phases)
    if generation != "cxx":
        return tracked, None
    return cxx_update_writes(tracked, phases)


def cxx_update_writes(
    tracked: pd.DataFrame, phases: pd.DataFrame
) -> tuple[pd.DataFrame, str | None]:
    """C++: the tracker sees a phase from its row update's commit to the next one's, so each
    phase but the first holds the next update's write at its end, and the first (busy 1,
    from the step's insert to the Connecting update) is one write and nothing else (the log
    file is opened in between: build-remote.cc:425). That write's median over the steps is
    moved from each phase seen to database time (:data:`_CXX_WRITE_AT_END`), estimated."""
    prep = phases[phases["phase"] == "preparing"]
    if prep.empty or tracked.empty:
        return tracked, None
    prep = _poll_midpoints(prep.copy())
    span = prep["end_ts"].astype(float) - prep["start_ts"].astype(float)
    write_s = float(np.median(span.clip(lower=0.0)))
    if not math.isfinite(write_s) or write_s <= 1e-3:
        return tracked, None
    seen = phases[phases["phase"].isin(list(_CXX_WRITE_AT_END))]
    counts = seen.groupby(["build", "stepnr", "phase"]).size().unstack(fill_value=0)
    out = tracked.set_index(["build", "stepnr"])
    moved = 0.0
    for phase, target in _CXX_WRITE_AT_END.items():
        if phase not in counts:
            continue
        column = PHASE_COLUMN[phase]
        n = counts[phase].reindex(out.index).fillna(0)
        take = np.minimum(out[column].astype(float), n * write_s)
        out[column] = out[column].astype(float) - take
        out[target] = out[target].astype(float) + take
        moved += float(take.sum())
    if moved <= 0:
        return tracked, None
    return out.reset_index(), (
        f"{write_s * 1000:.0f} ms per phase update (the tracker's span from a step's insert to "
        "its Connecting update) moved from the end of each phase seen to database time: the "
        "next phase's row update is written before its work (estimated)"
    )


def _poll_midpoints(seen: pd.DataFrame) -> pd.DataFrame:
    """Boundaries the tracker saw at a poll happened at some time since the poll before
    (``*_err_s`` earlier at most): the middle of that window is the unbiased estimate (the
    poll time itself puts every transition late by half an interval, lengthening each
    step's first phase and shortening its last). Boundaries seen by notification are exact.

    A step whose end came by notification after an unseen phase (``end_err_s`` > 0: the last
    phase seen may have ended any time since the last poll) ran one more phase in that window
    when the last one seen was receiving-outputs: post-processing, the only phase after it in
    both generations (C++ busy 40 then 50: a40d4286 build-remote.cc:582, builder.cc:226; Rust
    ``ReceivingOutputs`` then ``PostProcessing``: 14332fbf hydra-builder/src/state.rs:625,
    :645). It gets the second half of the window; after any other phase which phases ran is
    not known and the window stays with the phase seen."""
    unseen_post = pd.Series(False, index=seen.index)
    if {"end_obs", "end_err_s"} <= set(seen.columns):
        end_err = pd.to_numeric(seen["end_err_s"], errors="coerce").fillna(0.0)
        unseen_post = (
            (seen["end_obs"] == "notify") & (end_err > 0) & (seen["phase"] == "receiving-outputs")
        )
    post = seen[unseen_post].copy()
    for side in ("start", "end"):
        obs, err_column = f"{side}_obs", f"{side}_err_s"
        if obs not in seen or err_column not in seen:
            continue
        err = pd.to_numeric(seen[err_column], errors="coerce")
        half = err.fillna(0.0).clip(lower=0.0) / 2
        moved = seen[obs] == "poll"
        if side == "end":
            moved |= unseen_post
        seen[f"{side}_ts"] = seen[f"{side}_ts"].astype(float) - half.where(moved, 0.0)
    if not post.empty:
        post["phase"] = "post-processing"
        post["busy"] = FINAL_BUSY
        post["start_ts"] = seen.loc[unseen_post, "end_ts"]
        seen = pd.concat([seen, post], ignore_index=True)
    return seen


def _db_steps(db: pd.DataFrame, generation: str) -> pd.DataFrame:
    """Steps known only from ``db_steps`` (no tracker): Hydra's times, by generation."""
    out = pd.DataFrame(
        {
            "build": db["build"],
            "stepnr": db["stepnr"],
            "machine": db["machine"],
            "system": db["system"],
            "resolution_s": 1.0,
            "timing_source": "db",
        }
    )
    span = db["stop_time"].astype(float) - db["start_time"].astype(float)
    overhead = db["overhead_ms"].astype(float).fillna(0.0) / 1000
    # Rust: stop - start is the whole step from its dispatch (set_start_time_now when the
    # job is created, hydra 14332fbf state/mod.rs:880) incl. overhead; no queue wait in it
    if generation == "rust":
        out["start_ts"] = db["start_time"].astype(float)
        out["end_ts"] = db["stop_time"].astype(float)
        out["copy_s"] = overhead
        out["build_s"] = (span - overhead).clip(lower=0)
    else:  # C++: the build only; overhead = the copies around it
        out["start_ts"] = db["start_time"].astype(float)
        out["end_ts"] = db["stop_time"].astype(float) + overhead
        out["build_s"] = span
        out["copy_s"] = overhead
    for column in set(PHASE_COLUMN.values()) - {"build_s", "copy_s"}:
        out[column] = 0.0
    return out


def _copied_outputs(logs: pd.DataFrame) -> pd.DataFrame:
    """C++ ``copying path`` events: per output name, NAR bytes, compressed bytes, pipeline s."""
    copied = logs[logs["event"] == "output_copied"]
    if copied.empty:
        return pd.DataFrame(columns=["name", "ts", "nar_bytes", "compressed_bytes", "pipeline_s"])
    nar = copied["nar_bytes"].astype(float)
    return pd.DataFrame(
        {
            "name": copied["path"].map(store_name),
            "ts": copied["ts"].astype(float),
            "nar_bytes": nar,
            "compressed_bytes": (nar * (1 - copied["compressed_percent"].astype(float) / 100))
            .round()
            .astype(float),
            "pipeline_s": copied["ms"].astype(float) / 1000,
        }
    )


def _join_outputs(steps: pd.DataFrame, copied: pd.DataFrame) -> pd.DataFrame:
    """Attach each step's copied outputs, matched by name and the time of the copy: the
    step of that name whose span holds the copy (give or take a second: short-format
    journals keep whole seconds), else the one whose start or end is nearest. Linear in the
    lines and steps (a farm rebuilds the same names all day: ``source``, ``hook``...)."""
    steps = steps.copy()
    steps["nar_bytes"] = np.nan
    steps["compressed_bytes"] = np.nan
    steps["pipeline_s"] = np.nan
    if copied.empty or "drv_path" not in steps:
        return steps
    owners = copy_owners(steps, steps["drv_path"].map(store_name), copied)
    nar = steps["nar_bytes"].to_dict()
    packed = steps["compressed_bytes"].to_dict()
    pipe = steps["pipeline_s"].to_dict()
    for best, n, c, p in zip(
        owners, copied["nar_bytes"], copied["compressed_bytes"], copied["pipeline_s"], strict=True
    ):
        if best is None:
            continue
        for column, value in ((nar, n), (packed, c), (pipe, p)):
            old = column[best]
            column[best] = float(value) if math.isnan(old) else old + float(value)
    steps["nar_bytes"] = pd.Series(nar)
    steps["compressed_bytes"] = pd.Series(packed)
    steps["pipeline_s"] = pd.Series(pipe)
    return steps


def copy_owners(steps: pd.DataFrame, names: pd.Series, copied: pd.DataFrame) -> list[Any]:
    """Per copy line (``copied``: name, ts), the index of the step of that name (``names``,
    aligned with ``steps``) whose span holds it, else the nearest; None for a name no step
    has."""
    index = _SpanIndex.by_name(steps, names)
    return [
        index[key].nearest(float(ts)) if (key := str(name or "")) in index else None
        for name, ts in zip(copied["name"], copied["ts"], strict=True)
    ]


SPAN_SLACK_S = 1.0  # log times are whole seconds in short-format journals


class _SpanIndex:
    """The steps of one name, sorted by start, to find the one a copy line belongs to in
    O(log n): the spans holding a time are among those started by then, and of those the
    one ending last reaches furthest (a running maximum of ends); otherwise the nearest
    start or end is next to that position."""

    def __init__(self, rows: list[tuple[float, float, Any]]) -> None:
        rows.sort(key=lambda r: r[0])
        self.starts = np.array([r[0] for r in rows], float)
        self.ends = np.array([r[1] for r in rows], float)
        self.keys = [r[2] for r in rows]
        reach = np.maximum.accumulate(self.ends) if rows else self.ends
        self.reach = reach
        self.reach_at = np.zeros(len(rows), int)
        for i in range(1, len(rows)):
            self.reach_at[i] = i if self.ends[i] >= reach[i - 1] else self.reach_at[i - 1]

    @classmethod
    def by_name(cls, steps: pd.DataFrame, names: pd.Series) -> dict[str, _SpanIndex]:
        groups: dict[str, list[tuple[float, float, Any]]] = {}
        start = steps["start_ts"].astype(float)
        end = steps["end_ts"].astype(float)
        for i, name, a, b in zip(steps.index, names, start, end, strict=True):
            if name and not (pd.isna(a) or pd.isna(b)):
                groups.setdefault(str(name), []).append((float(a), float(b), i))
        return {name: cls(rows) for name, rows in groups.items()}

    def _holds(self, j: int, ts: float) -> bool:
        return bool(self.starts[j] - SPAN_SLACK_S <= ts <= self.ends[j] + SPAN_SLACK_S)

    def nearest(self, ts: float) -> Any:
        n = len(self.keys)
        if not n:
            return None
        hi = int(np.searchsorted(self.starts, ts + SPAN_SLACK_S, side="right"))
        # a span holding ts: the earliest-started one among the few just before hi, else
        # the one reaching furthest among all started by then
        window = range(max(0, hi - 8), hi)
        # (each tested as the distance is: ts + 1 may round where start - 1 does not)
        holding = [j for j in window if self._holds(j, ts)]
        if holding:
            return self.keys[min(holding, key=lambda j: self.keys[j])]
        if hi > 0 and self._holds(int(self.reach_at[hi - 1]), ts):
            return self.keys[int(self.reach_at[hi - 1])]
        near = [j for j in (hi - 1, hi) if 0 <= j < n]
        if hi > 0:
            near.append(int(self.reach_at[hi - 1]))
        return self.keys[
            min(near, key=lambda j: min(abs(ts - self.starts[j]), abs(ts - self.ends[j])))
        ]


def _with_logs(
    steps: pd.DataFrame, logs: pd.DataFrame | None, builds: pd.DataFrame | None
) -> pd.DataFrame:
    """Output sizes and pipeline times, sharper step bounds; NAR size from Builds else."""
    if logs is None or "event" not in logs:
        logs = None
    steps = _join_outputs(steps, _copied_outputs(logs if logs is not None else _NO_LOGS))
    if logs is not None and "drv_path" in steps:
        steps = _sharpen(steps, logs, builds)
    if "size_bytes" in steps:
        # Builds.size is NULL for failed builds (only the success path writes it: C++
        # hydra-queue-runner.cc:458 at a40d4286): nullable integers become NaN here
        size = pd.to_numeric(steps["size_bytes"], errors="coerce").astype(float)
        missing = steps["nar_bytes"].isna()
        steps.loc[missing, "nar_bytes"] = size[missing]
    return steps


def _sharpen(steps: pd.DataFrame, logs: pd.DataFrame, builds: pd.DataFrame | None) -> pd.DataFrame:
    """Widen tracked steps to the journal's step start and end, when it has them.

    The tracker sees a step from its row's insert to ``step_finished``; the C++ runner logs
    "performing step" before the insert and "marking build ... as succeeded" after the
    last write, so the time in between (database writes) is added to preparing and post.
    Only for the top-level step of a build (a build's end is its last step's end).
    """
    tracked = steps["timing_source"] == "tracker"
    if not tracked.any() or "drv" not in logs:
        return steps
    ts = logs["ts"].astype(float)
    # C++ only: Rust logs "Submitting build" after creating the row (hydra 14332fbf
    # state/mod.rs:1094-1133), so a Rust line before a row's start is another attempt's
    started = logs[logs["event"] == "step_started"]
    started = started.assign(ts=ts, key=started["drv"].map(store_base))
    steps = steps.copy()
    # each step's own start line: the last one of its drv at or before the row's start (a
    # retried drv has one per attempt)
    begin = _preceding(started, steps["drv_path"].map(store_base), steps["start_ts"])
    early = tracked & begin.notna() & (begin < steps["start_ts"]) & (steps["start_ts"] - begin < 60)
    steps.loc[early, "prepare_s"] += steps.loc[early, "start_ts"] - begin[early]
    steps.loc[early, "start_ts"] = begin[early]
    if builds is None or "build_id" not in logs:
        return steps
    done = logs[logs["event"].isin(["build_succeeded", "build_failed"])]
    return to_build_end(steps, done.assign(ts=ts).groupby("build_id")["ts"].max(), builds)


def to_build_end(
    steps: pd.DataFrame, finished: pd.Series, builds: pd.DataFrame | None
) -> pd.DataFrame:
    """Tracked steps that end their build run on to the build's end (``finished``: build
    -> time), the writes after the step's row (the builds' rows, whose commit releases the
    dependants) added to post-processing: a build's top-level step only, its last attempt."""
    tracked = steps["timing_source"] == "tracker"
    if builds is None or builds.empty or finished.empty or not tracked.any():
        return steps
    if "drv_path" not in steps or "drv_path" not in builds:
        return steps
    steps = steps.copy()
    top = builds.drop_duplicates("build", keep="last").set_index("build")["drv_path"]
    finish = steps["build"].map(finished).astype(float)
    is_top = steps["drv_path"] == steps["build"].map(top)
    # the build's last step only (not an earlier attempt that failed and was retried)
    is_top &= steps["end_ts"] >= steps.groupby("build")["end_ts"].transform("max")
    late = tracked & is_top & finish.notna() & (finish > steps["end_ts"])
    late &= finish - steps["end_ts"] < 60
    steps.loc[late, "post_s"] += finish[late] - steps.loc[late, "end_ts"]
    steps.loc[late, "end_ts"] = finish[late]
    return steps


def _preceding(events: pd.DataFrame, keys: pd.Series, at: pd.Series) -> pd.Series:
    """Per row, the time of the last event of its key at or before ``at`` (NaN if none)."""
    times: dict[Any, np.ndarray] = {
        k: np.sort(g.to_numpy(float)) for k, g in events.groupby("key")["ts"]
    }
    out = []
    none = np.array([])
    for key, t in zip(keys, at.astype(float), strict=True):
        mine = times.get(key, none)
        i = int(np.searchsorted(mine, t, side="right"))
        out.append(float(mine[i - 1]) if i else math.nan)
    return pd.Series(out, index=keys.index, dtype=float)


def _is_text(x: Any) -> bool:
    return isinstance(x, str) and bool(x)


def retry_waits(steps: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per step, the back-off it waited after an earlier attempt of its drv failed (the gap
    from that attempt's end to this one's start), and whether a step is such an attempt.

    Both generations retry a transient failure after ``retryInterval x retryBackoff^(tries-1)``
    seconds in a new BuildSteps row (hydra a40d4286 builder.cc:63-64; 14332fbf
    state/mod.rs:2255-2257)."""
    n = len(steps)
    wait, retried = np.zeros(n), np.zeros(n, bool)
    if n and "drv_path" in steps:
        status = (
            pd.to_numeric(steps["status"], errors="coerce").to_numpy(float)
            if "status" in steps
            else np.full(n, math.nan)
        )
        start = steps["start_ts"].to_numpy(float)
        end = steps["end_ts"].to_numpy(float)
        # one code per drv (-1: none, never paired); codes sort where strings and NaN cannot
        keys = pd.factorize(steps["drv_path"].where(steps["drv_path"].map(_is_text)))[0]
        for a, b in itertools.pairwise(np.lexsort((start, keys))):
            gap = start[b] - end[a]
            # an attempt that did not succeed (NaN: unknown) and its drv's next attempt
            if keys[a] == keys[b] >= 0 and status[a] != 0 and 0 <= gap < 3600:
                wait[b] += gap
                retried[a] = True
    return pd.Series(wait, index=steps.index), pd.Series(retried, index=steps.index)


JOURNAL_CAVEAT = {
    "cxx": "step start to the build's success line; the copy phase is the journal's "
    "receive+compress+write time plus the S3 store's upload time where it logs one (Nix "
    "2.0-2.32); the time before it (connecting, sending inputs, building, waiting for a "
    "worker slot) is counted as build unless the status's phase gauges split it; the time "
    "after it as post-processing (with a Nix that logs no upload, the upload too)",
    "rust": "dispatch to done; build and upload times from the builders' lines, the "
    "time before the build as connecting and sending inputs, the rest as post-processing",
}


def _events(logs: pd.DataFrame, *names: str) -> pd.DataFrame:
    rows = logs[logs["event"].isin(names)]
    return rows.assign(ts=rows["ts"].astype(float))


def _last(rows: pd.DataFrame, key: str) -> dict[Any, float]:
    return {k: float(v) for k, v in rows.groupby(key)["ts"].max().items()}


def _base_row(
    r: dict[Any, Any], build: Any, stepnr: Any, machine: Any, end: float
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(set(PHASE_COLUMN.values()), 0.0)
    row.update(
        build=build, stepnr=stepnr, drv_path=r["drv"], machine=machine, system=None,
        start_ts=float(r["ts"]), end_ts=end, resolution_s=1e-6, timing_source="journal",
        gap=False,
    )  # fmt: skip
    return row


def _journal_part(
    logs: pd.DataFrame | None, gen: str, notes: list[str]
) -> tuple[list[pd.DataFrame], list[str]]:
    if logs is None or "event" not in logs:
        return [], notes
    journal = journal_steps(logs, gen)
    if journal.empty:
        return [], notes
    caveat = JOURNAL_CAVEAT.get(gen, JOURNAL_CAVEAT["cxx"])
    note = f"{len(journal)} step(s) timed from the journal only (no database): {caveat}"
    return [journal], [*notes, note]


def journal_steps(logs: pd.DataFrame, generation: str) -> pd.DataFrame:
    """Steps from the journal alone (no database): see :data:`JOURNAL_CAVEAT`."""
    if "drv" not in logs or "build_id" not in logs:
        return pd.DataFrame()
    if generation == "rust":
        if not {"step_nr", "hostname"} <= set(logs.columns):
            return pd.DataFrame()
        return _rust_journal_steps(logs)
    started = _events(logs, "step_started").drop_duplicates("drv", keep="last")
    done = _last(_events(logs, "build_succeeded", "build_failed"), "build_id")
    spans = []
    for r in started.to_dict("records"):
        end = done.get(r["build_id"])
        if end is not None and end >= r["ts"]:
            spans.append((r, float(end)))
    # each copy line goes to the step of its name whose span holds it (a farm rebuilds the
    # same names: matching by name alone gave every step all their copies, quadratically)
    copied = _copied_outputs(logs)
    names = pd.Series([store_name(r["drv"]) or "" for r, _ in spans], dtype=object)
    frame = pd.DataFrame(
        {"start_ts": [float(r["ts"]) for r, _ in spans], "end_ts": [e for _, e in spans]}
    )
    mine: dict[Any, list[int]] = {}
    for j, owner in enumerate(copy_owners(frame, names, copied)):
        if owner is not None:
            mine.setdefault(owner, []).append(j)
    pipeline_s = copied["pipeline_s"].to_numpy(float)
    copy_ts = copied["ts"].to_numpy(float)
    packed_bytes = copied["compressed_bytes"].to_numpy(float)
    uploads = _S3Uploads(logs)
    rows = []
    for k, (r, end) in enumerate(spans):
        row = _base_row(r, r["build_id"], 1, r["machine"], end)
        lines = mine.get(k, [])
        pipeline = min(float(pipeline_s[lines].sum()), end - row["start_ts"])
        last_copy = float(copy_ts[lines].max()) if lines else end
        # before the copy: connecting, sending, building and waiting for a worker slot
        copy_start = last_copy - pipeline
        row["build_s"] = row["pre_copy_s"] = max(0.0, copy_start - row["start_ts"])
        # after Nix's copy line, the S3 store uploads the NAR (its own line, Nix <= 2.32)
        put = sum(uploads.take(last_copy, end, float(packed_bytes[j])) for j in lines)
        row["copy_s"] = min(pipeline + put, max(0.0, end - row["start_ts"] - row["build_s"]))
        row["post_s"] = max(0.0, end - row["start_ts"] - row["build_s"] - row["copy_s"])
        rows.append(row)
    out = pd.DataFrame(rows)
    if not out.empty:  # a build's steps in the order they started ("performing step" lines)
        out = out.sort_values("start_ts", kind="stable").reset_index(drop=True)
        out["stepnr"] = out.groupby("build").cumcount() + 1
    return out


class _S3Uploads:
    """Nix's ``uploaded 's3://...' (N bytes) in M ms`` lines (S3 store, Nix 2.0-2.32), each
    matched once to the output whose compressed size it carries, after that output's copy
    line (binary-cache-store.cc prints the copy line, then uploads: nix 2.34.0 :184)."""

    def __init__(self, logs: pd.DataFrame) -> None:
        lines = logs[logs["event"] == "s3_upload"] if "event" in logs else logs.iloc[:0]
        lines = lines[lines["url"].astype(str).str.contains("/nar/")] if "url" in lines else lines
        ts = lines["ts"].astype(float).to_numpy() if "ts" in lines else np.array([])
        order = np.argsort(ts, kind="stable")
        self.ts = ts[order]
        self.bytes = (lines["bytes"].astype(float).to_numpy() if "bytes" in lines else ts)[order]
        seconds = lines["ms"].astype(float).to_numpy() / 1000 if "ms" in lines else ts
        self.seconds = seconds[order]
        self.used = np.zeros(len(self.ts), bool)

    def take(self, after: float, before: float, packed: float) -> float:
        """Upload seconds of the output of ``packed`` compressed bytes (0 if none matches):
        among the unused lines between ``after`` and ``before`` (give or take a second),
        the one whose size is nearest."""
        if not len(self.ts) or not math.isfinite(packed):
            return 0.0
        lo = int(np.searchsorted(self.ts, after - 1, side="left"))
        hi = int(np.searchsorted(self.ts, before + 1, side="right"))
        if hi <= lo:
            return 0.0
        error = np.where(self.used[lo:hi], np.inf, np.abs(self.bytes[lo:hi] - packed))
        i = int(np.argmin(error))
        if not error[i] <= max(1024.0, 0.05 * packed):
            return 0.0
        self.used[lo + i] = True
        return float(self.seconds[lo + i]) if math.isfinite(self.seconds[lo + i]) else 0.0


def _rust_journal_steps(logs: pd.DataFrame) -> pd.DataFrame:
    """Rust steps from the runner's dispatch and done/failed lines and the builders' build
    and upload lines, all joined by the drv's base name (the runner and the builders print
    store paths as base names; the builders' upload lines carry it in their span fields)."""
    logs = logs.assign(key=logs["drv"].map(store_base))
    dispatched = _events(logs, "dispatch").drop_duplicates("key", keep="last")
    done = _last(_events(logs, "job_done"), "key")
    failed = _last(_events(logs, "job_removed"), "key")
    b_start = _last(_events(logs, "build_started"), "key")
    b_end = _last(_events(logs, "build_finished"), "key")
    # a failed job's process ends with "Build of {drv} failed with: ..." (hydra 14332fbf
    # subprojects/hydra-builder/src/state.rs:310), not "Finished building"
    b_failed = _last(_events(logs, "build_step_failed"), "key")
    upload, modes, outputs = _uploads(logs)
    rows = []
    for r in dispatched.to_dict("records"):
        key = r["key"]
        end, status = done.get(key), 0
        if end is None or (key in failed and failed[key] > end):
            end, status = failed.get(key), 1
        if end is None or end < r["ts"]:
            continue
        row = _base_row(r, r["build_id"], r["step_nr"], r["hostname"], end)
        row["status"] = status
        row["stop_ts"] = end  # the runner's stop: steps_building falls here
        b_stop = b_end.get(key)
        if status == 1 and key in b_failed and (b_stop is None or b_failed[key] > b_stop):
            b_stop = b_failed[key]
        row["builder_lines"] = key in b_start and b_stop is not None
        if key in b_start and b_stop is not None:
            row["connect_s"] = max(0.0, b_start[key] - row["start_ts"])
            row["build_s"] = max(0.0, min(b_stop, end) - b_start[key])
        row["copy_s"] = upload.get(key, 0.0)
        row["upload_mode"] = modes.get(key)
        row["outputs"] = outputs.get(key)
        used = row["connect_s"] + row["build_s"] + row["copy_s"]
        row["post_s"] = max(0.0, end - row["start_ts"] - used)
        rows.append(row)
    return pd.DataFrame(rows)


# Phase columns a Rust step's journal lines time (the rest of a tracked step is post).
_RUST_JOURNAL_COLUMNS = ("connect_s", "build_s", "copy_s")


def _rust_journal_refine(
    steps: pd.DataFrame, logs: pd.DataFrame | None, generation: str
) -> tuple[pd.DataFrame, str | None]:
    """Rust steps the tracker timed, re-timed from the journal where it has the step's lines
    to the microsecond (tracing's RFC 3339 timestamps, in both journal formats): the tracker
    sees a transition only at its next poll and misses phases shorter than a poll (the
    builder's upload, typically), the journal's lines bracket them.

    Dispatch (``Submitting build``) to the builder's ``Building {drv}`` (job received) is
    dispatch; from there to ``Finished building`` the input import and the build; then the
    upload (its ``elapsed``); the rest to the step's end (tracker, by notification) post-
    processing (hydra-builder/src/state.rs at 14332fbf: import, ``StepStatus::Building``
    :564, build, "Finished building" :586, ``ReceivingOutputs`` :625, upload, ``PostProcessing``
    :645). The import is BuildSteps.overhead (import + upload ms: build.rs:369) less the
    upload, where the database has it."""
    if generation != "rust" or logs is None or "event" not in logs or steps.empty:
        return steps, None
    tracked = (steps["timing_source"] == "tracker") & steps.get(
        "drv_path", pd.Series(None, index=steps.index)
    ).notna()
    if not tracked.any():
        return steps, None
    journal = journal_steps(logs, "rust")
    if journal.empty or "builder_lines" not in journal:
        return steps, None
    precise = (journal["start_ts"] % 1 != 0) & (journal["end_ts"] % 1 != 0)
    journal = journal[journal["builder_lines"].astype(bool) & precise]
    if journal.empty:
        return steps, None
    by_key: dict[str, list[dict[Any, Any]]] = {}
    for j in journal.to_dict("records"):
        by_key.setdefault(store_base(j["drv_path"]) or "", []).append(j)
    steps = steps.copy()
    refined = 0
    for i in steps.index[tracked]:
        row = steps.loc[i]
        start, end = float(row["start_ts"]), float(row["end_ts"])
        slack = max(1.0, float(row.get("resolution_s") or 0.0))
        near = [
            j for j in by_key.get(store_base(row["drv_path"]) or "", [])
            if start - slack <= j["start_ts"] <= end and j["end_ts"] <= end + slack
        ]  # fmt: skip
        # "Submitting build ... build_id= step_nr=" names the row: another attempt of the
        # same drv (a retry's aborted row) within the slack is not this one
        numbered = [j for j in near if pd.notna(j.get("build")) and pd.notna(j.get("stepnr"))]
        if numbered:
            near = [
                j for j in numbered
                if str(j["build"]) == str(row["build"]) and str(j["stepnr"]) == str(row["stepnr"])
            ]  # fmt: skip
        if not near:
            continue
        j = min(near, key=lambda j: abs(j["start_ts"] - start))
        begin = min(start, float(j["start_ts"]))
        parts = {c: float(j[c]) for c in _RUST_JOURNAL_COLUMNS}
        overhead = float(pd.to_numeric(row.get("overhead_ms"), errors="coerce")) / 1000
        if math.isfinite(overhead):  # import = overhead - upload, out of the build span
            parts["send_s"] = min(parts["build_s"], max(0.0, overhead - parts["copy_s"]))
            parts["build_s"] -= parts["send_s"]
        for column in set(PHASE_COLUMN.values()):
            steps.loc[i, column] = parts.get(column, 0.0)
        steps.loc[i, "prepare_s"] = max(0.0, float(j["start_ts"]) - begin)
        steps.loc[i, "post_s"] = max(0.0, end - begin - sum(parts.values()))
        steps.loc[i, ["start_ts", "resolution_s", "stop_ts"]] = [begin, 1e-3, j["end_ts"]]
        steps.loc[i, "timing_source"] = "tracker+journal"
        refined += 1
    if not refined:
        return steps, None
    return steps, (
        f"{refined} Rust step(s) re-timed from the journal's microsecond lines (dispatch, the "
        "builder's build and upload lines) within the tracker's span"
    )


def _uploads(logs: pd.DataFrame) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    """Rust builders' upload time, mode and uploaded store paths (``outputs``, base names,
    from the upload spans' fields) per drv (base name). The real lines run inside
    ``process_build{drv=...}``, so they name their drv; a line without one (an excerpt cut
    before its span fields) belongs to the build that finished on the same builder most
    recently before it."""
    lines = _events(logs, "build_finished", "upload_finished").sort_values("ts")
    out: dict[str, float] = {}
    modes: dict[str, str] = {}
    outputs: dict[str, str] = {}
    waiting: dict[Any, list[str]] = {}
    for r in lines.to_dict("records"):
        queue = waiting.setdefault(r["host"], [])
        key = r.get("key")
        if r["event"] == "build_finished":
            if isinstance(key, str):
                queue.append(key)
            continue
        if not isinstance(key, str):
            if not queue:
                continue
            key = queue.pop(0)
        elif key in queue:
            queue.remove(key)
        out[key] = out.get(key, 0.0) + float(r["elapsed"])
        if isinstance(r.get("mode"), str):
            modes[key] = r["mode"]
        if isinstance(r.get("outputs"), str) and r["outputs"]:
            outputs[key] = r["outputs"]
    return out, modes, outputs


def with_cache_sizes(table: StepTable, cache_dir: str | None) -> StepTable:
    """Steps without a NAR size get it from the farm's binary cache: the narinfos of the
    paths their builder uploaded (``outputs``: the Rust builder's upload spans name them),
    NarSize summed, FileSize summed as the compressed size. The journal has no sizes for a
    Rust step, and without them the compression split and a codec what-if fall back on
    per-byte rates, blind to a small NAR's set-up cost."""
    s = table.steps
    if not cache_dir or s.empty or "outputs" not in s:
        return table
    want = s["nar_bytes"].isna() & s["outputs"].map(lambda o: isinstance(o, str) and bool(o))
    if not want.any():
        return table
    lists = s.loc[want, "outputs"].str.split()
    sizes = path_sizes(cache_dir, {b for paths in lists for b in paths})
    nar: dict[Any, float] = s["nar_bytes"].astype(float).to_dict()
    packed: dict[Any, float] = s["compressed_bytes"].astype(float).to_dict()
    found = 0
    for i, paths in lists.items():
        known = [sizes[b] for b in paths if b in sizes]
        if len(known) != len(paths):
            continue  # a path the cache lacks: a partial sum would understate the NAR
        nar[i] = float(sum(n for n, _ in known))
        files = [f for _, f in known if f is not None]
        if len(files) == len(known):
            packed[i] = float(sum(files))
        found += 1
    if not found:
        table.notes.append(
            f"no NAR sizes for {int(want.sum())} step(s) in the cache {cache_dir} (their "
            "uploaded paths have no narinfo there)"
        )
        return table
    steps = s.assign(nar_bytes=pd.Series(nar), compressed_bytes=pd.Series(packed))
    table.notes.append(
        f"NAR sizes of {found} of {int(want.sum())} journal-timed step(s) from the cache's "
        "narinfos (NarSize of the paths their builder uploaded)"
    )
    return dataclasses.replace(table, steps=steps)


def run_generation(reader: RunReader) -> str:
    """The queue runner generation the run's data says (``cxx``, ``rust`` or ``unknown``):
    what :func:`build_step_table` times the steps with unless told."""
    return _generation(reader, _table(reader, "db_steps"))


def _generation(reader: RunReader, db: pd.DataFrame | None) -> str:
    if db is not None and "generation" in db and db["generation"].notna().any():
        values = set(db["generation"].dropna()) - {"unknown"}
        if len(values) == 1:
            return str(values.pop())
    logs = _table(reader, "log_events")
    if logs is not None and "generation" in logs and not logs.empty:
        return str(logs["generation"].mode().iloc[0])
    samples = _table(reader, "samples")
    if samples is not None and "generation" in samples and not samples.empty:
        return str(samples["generation"].mode().iloc[0])
    return "unknown"


def queue_estimate(
    samples: pd.DataFrame | None, generation: str, window: tuple[float, float]
) -> tuple[float, str]:
    """Total step-seconds spent runnable but not dispatched, and how it was obtained.

    Rust: the ``job_wait_time_seconds`` histogram's sum (each step's wait from runnable to
    dispatch, observed at dispatch: ``state/queue.rs`` :data:`facts.RUST_JOB_WAIT_SOURCE`),
    its increase over the run. Never ``machine_type_wait_time``/``waitTimeMs``: those add up
    runnable -> insertion into the scheduling queue, not the wait for a machine. Otherwise the
    steps waiting for a machine are integrated over time (:func:`waiting_series`: C++ the
    runnable gauge; Rust runnable minus building, since its runnable count includes building
    steps), a step-function between samples, so to within a sample interval per change.
    """
    if samples is None or samples.empty:
        return math.nan, "no status samples: queue wait not observed"
    start, end = window
    if generation == "rust":
        waited = _counter_increase(samples, "job_wait_seconds_sum", "machine_type")
        if math.isfinite(waited):
            return waited, (
                "Rust job_wait_time_seconds histogram (runnable -> dispatch, observed at "
                "dispatch): its sum's increase over the run"
            )
    gauge = waiting_series(samples, generation)
    if len(gauge) < 2:
        return math.nan, "fewer than two runnable-steps samples: queue wait not observed"
    ts = gauge.index.to_numpy(float)
    value = gauge.to_numpy(float)
    if math.isfinite(start) and math.isfinite(end):
        # from the stretch of queueing that led up to the first step (steps wait before
        # the first one starts) to the last step's end
        first = int(np.searchsorted(ts, start - 1))
        while first > 0 and value[first - 1] > 0:
            first -= 1
        keep = (np.arange(len(ts)) >= first) & (ts <= end + 1)
        ts, value = ts[keep], value[keep]
    if len(ts) < 2:
        return math.nan, "no runnable-steps samples inside the steps' window"
    # each sample holds until the next: trapezoids would invent half-steps
    total = float(np.sum(value[:-1] * np.diff(ts)))
    interval = float(np.median(np.diff(ts)))
    what = (
        "runnable minus building steps (Rust counts building steps as runnable)"
        if generation == "rust"
        else "the runnable-steps gauge"
    )
    return total, f"integral of {what} (samples every {interval:.2g} s)"


def _counter_increase(samples: pd.DataFrame, metric: str, by: str) -> float:
    """A counter's increase over the samples, summed over its series (``by`` label); a drop
    is a restart (the increase since is the new value). NaN without two samples."""
    rows = samples[samples["metric"] == metric]
    if rows.empty:
        return math.nan
    keys = rows[by].fillna("") if by in rows else pd.Series("", index=rows.index)
    total, seen = 0.0, False
    for _, series in rows.assign(_key=keys).sort_values("ts").groupby("_key"):
        values = series["value"].to_numpy(float)
        if len(values) < 2:
            continue
        seen = True
        steps = np.diff(values)
        total += float(np.where(steps >= 0, steps, values[1:]).sum())
    return total if seen else math.nan


def handing_over(steps: pd.DataFrame, generation: str) -> np.ndarray:
    """Rust: the times a live step is neither waiting nor in ``steps_building``, as
    ``(start, end)`` rows. Its runnable flag is never cleared (:data:`facts.RUNNABLE_SOURCES`),
    so runnable minus building counts it as waiting (a) from its dispatch until the job is
    handed to the builder: the runner counts it building only once ``build_drv`` returned,
    after the row's insert, the notification and the Connecting update (hydra 14332fbf
    state/mod.rs:1094-1180), the step table's preparing and dispatch time from its start;
    (b) from its stop (``stop_ts``: building falls at track_build_*, machine.rs:186-206)
    to its end, while its rows are written. Empty for C++ (a dispatched step leaves the
    runnable count at once)."""
    needed = {"start_ts", "prepare_s", "connect_s"}
    if not facts.RUNNABLE_INCLUDES_BUILDING.get(generation, False) or not needed <= set(steps):
        return np.empty((0, 2))

    def column(name: str) -> pd.Series:
        return pd.to_numeric(steps[name], errors="coerce")

    start = column("start_ts")
    span = column("prepare_s").fillna(0.0) + column("connect_s").fillna(0.0)
    ok = start.notna() & (span > 0)
    windows = [np.column_stack([start[ok], (start + span)[ok]])]
    if {"stop_ts", "end_ts"} <= set(steps):
        stop, end = column("stop_ts"), column("end_ts")
        after = stop.notna() & end.notna() & (end > stop)
        windows.append(np.column_stack([stop[after], end[after]]))
    return np.concatenate(windows).astype(float)


def waiting_series(
    samples: pd.DataFrame, generation: str, handover: np.ndarray | None = None
) -> pd.Series:
    """Steps waiting for a machine over time: C++ ``nrRunnableSteps``; Rust
    ``steps_runnable`` minus ``steps_building``, because the Rust runnable flag is never
    cleared on dispatch (:data:`facts.RUNNABLE_SOURCES`), less the steps dispatched and not
    yet handed over at each sample (``handover``: :func:`handing_over`)."""
    runnable = metric_series(samples, "steps_runnable")
    if not facts.RUNNABLE_INCLUDES_BUILDING.get(generation, False) or runnable.empty:
        return runnable
    building = metric_series(samples, "steps_building")
    if building.empty:
        return runnable
    aligned = building.reindex(runnable.index.union(building.index)).ffill()
    out: pd.Series = (runnable - aligned.reindex(runnable.index).fillna(0.0)).clip(lower=0.0)
    if handover is not None and len(handover):
        t = out.index.to_numpy(float)[:, None]
        inside = ((handover[:, 0] <= t) & (t < handover[:, 1])).sum(axis=1)
        out = (out - inside).clip(lower=0.0)
    return out


SERIES_KEYS = ("machine", "machine_type", "jobset", "bucket")


def metric_series(samples: pd.DataFrame, metric: str, agg: str = "sum") -> pd.Series:
    """One metric over time: its samples at each time aggregated over series (machines...)."""
    rows = samples[samples["metric"] == metric]
    if rows.empty:
        return pd.Series(dtype=float)
    # one value per series and time (documents stamped with the same whole second, as C++
    # status "time" is, would otherwise be added up), then aggregated over the series
    keys = [k for k in SERIES_KEYS if k in rows and rows[k].notna().any()]
    if keys:
        rows = rows.assign(**{k: rows[k].astype(str) for k in keys})
    per_series = rows.groupby(["ts", *keys], sort=False)["value"].last().reset_index()
    out: pd.Series = per_series.groupby("ts")["value"].agg(agg).sort_index()
    return out


def gauge_integral(samples: pd.DataFrame | None, metric: str, window: tuple[float, float]) -> float:
    """Time integral of a gauge (summed over series) inside ``window``; NaN if unsampled."""
    if samples is None or samples.empty or "metric" not in samples:
        return math.nan
    return series_integral(metric_series(samples[samples["ts"].between(*window)], metric))


def series_integral(series: pd.Series) -> float:
    """Time integral of a series held from each sample to the next; NaN under two samples."""
    if len(series) < 2:
        return math.nan
    return float(np.sum(series.to_numpy(float)[:-1] * np.diff(series.index.to_numpy(float))))


def _with_db(
    steps: pd.DataFrame, db: pd.DataFrame | None, builds: pd.DataFrame | None
) -> pd.DataFrame:
    """Attach BuildSteps' drv, status and times, and the builds' jobset, job and size."""
    if db is not None and not db.empty:
        wanted = ["status", "overhead_ms", "start_time", "stop_time", "machine", "system"]
        if "drv_path" not in steps:
            wanted.append("drv_path")
        keep = ["build", "stepnr", *(c for c in wanted if c in db)]
        info = db[keep].rename(columns={"machine": "db_machine", "system": "db_system"})
        steps = steps.merge(info, on=["build", "stepnr"], how="left")
        for c in ("machine", "system"):
            if f"db_{c}" in steps:
                steps[c] = steps[c].where(steps[c].notna(), steps[f"db_{c}"])
    if builds is not None and not builds.empty:
        jobs = builds.drop_duplicates("build", keep="last")
        jobs = jobs.assign(jobset=jobs["project"].astype(str) + ":" + jobs["jobset"].astype(str))
        cols = [c for c in ("build", "jobset", "job", "size_bytes") if c in jobs]
        steps = steps.merge(jobs[cols], on="build", how="left")
    return steps


COUNTED_WRITES_PER_STEP = 2
# before the journal's copy line: the step's insert (builder.cc:195) and the Connecting,
# SendingInputs, Building and ReceivingOutputs updates (build-remote.cc:431, :512, :532, :582)
WRITES_BEFORE_COPY = 5
"""C++ transactions under ``startDbUpdate`` (counted in ``nrActiveDbUpdates``) per step:
creating its row and finishing it with its builds (hydra f17273f3
src/hydra-queue-runner/builder.cc:195, :327-337)."""


def _split_slot_wait(
    steps: pd.DataFrame, samples: pd.DataFrame | None, window: tuple[float, float]
) -> tuple[pd.DataFrame, str | None, tuple[str, ...]]:
    """C++ journal-only steps: 'before the copy' (creating the step's row, connecting,
    sending inputs, building, waiting for a worker slot) split by the integrals of the
    status's phase gauges (nrStepsCopyingTo, nrStepsBuilding, nrStepsWaitingForDownloadSlot:
    step-seconds in each phase over the farm), shared in proportion to each step's time
    before the copy; the rest is connecting.

    The gauges cover the work of a phase, not the database write that starts it
    (``updateStep``, builder.cc:201-205, before ``MaintainCount`` in build-remote.cc:512-
    537): with ``nrActiveDbUpdates`` sampled, a write's latency is its integral over the
    counted transactions (:data:`COUNTED_WRITES_PER_STEP`), and each step's time before the
    copy holds :data:`WRITES_BEFORE_COPY` of them, database time. Returns the steps, a note
    and the categories estimated."""
    if "pre_copy_s" not in steps or steps["pre_copy_s"].isna().all():
        return steps, None, ()
    pre = steps["pre_copy_s"].fillna(0.0)
    total = float(pre.sum())
    wait = gauge_integral(samples, "steps_waiting_for_download_slot", window)
    if not math.isfinite(wait) or total <= 0:
        return steps, None, ()
    send = gauge_integral(samples, "steps_copying_to", window)
    building = gauge_integral(samples, "steps_building", window)
    parts = {"slot_wait_s": wait}
    n = int(pre.gt(0).sum())
    db = gauge_integral(samples, "db_updates_active", window)
    write_s = db / (COUNTED_WRITES_PER_STEP * n) if math.isfinite(db) and n else 0.0
    if math.isfinite(send) and math.isfinite(building) and building > 0:
        parts.update(send_s=send, build_s=building)
        if write_s > 0:
            parts.update(prepare_s=WRITES_BEFORE_COPY * n * write_s)
    used = sum(parts.values())
    scale = min(1.0, total / used) if used > 0 else 1.0
    steps = steps.copy()
    if "connect_s" not in steps:
        steps["connect_s"] = 0.0
    shares = {c: v * scale / total for c, v in parts.items()}
    for column, share in shares.items():
        steps[column] = pre * share
    rest = max(0.0, 1.0 - sum(shares.values()))
    if "build_s" in parts:
        steps["connect_s"] = steps["connect_s"].fillna(0.0) + pre * rest
        how = (
            f"sending inputs {100 * shares['send_s']:.0f}%, building "
            f"{100 * shares['build_s']:.0f}%, waiting for a worker slot "
            f"{100 * shares['slot_wait_s']:.0f}%, "
            + (
                f"writing the step's row {100 * shares['prepare_s']:.0f}% ("
                f"{WRITES_BEFORE_COPY} database writes of {write_s * 1000:.0f} ms from "
                "nrActiveDbUpdates: the insert and each phase's update), "
                if "prepare_s" in shares
                else ""
            )
            + f"connecting {100 * (rest + shares.get('connect_s', 0.0)):.0f}%"
        )
    else:
        steps["build_s"] = pre * (1 - shares["slot_wait_s"])
        how = f"waiting for a worker slot {100 * shares['slot_wait_s']:.0f}%, the rest building"
    estimated = ("build", "scheduling", "io") + (("post",) if "prepare_s" in shares else ())
    return (
        steps,
        (
            "the journal steps' time before the copy split by the status's phase gauges "
            f"(step-seconds per phase over the farm; estimated): {how}"
        ),
        estimated,
    )


def build_step_table(reader: RunReader, *, generation: str | None = None) -> StepTable:
    """Join a run's sources into the step table (without the compression split).

    Parameters
    ----------
    reader
        The stored run (:func:`profiler.store.read_run`).
    generation
        Force ``cxx``/``rust`` semantics; default: from the data.
    """
    phases = _table(reader, "db_phases")
    db = _table(reader, "db_steps")
    builds = _table(reader, "db_builds")
    logs = _table(reader, "log_events")
    gen = generation or _generation(reader, db)
    sources: list[Source] = []
    notes: list[str] = []
    parts = []
    estimated_writes: tuple[str, ...] = ()
    if phases is not None and not phases.empty:
        tracked, write_note = _tracked_part(phases, gen)
        if write_note:
            notes.append(write_note)
            estimated_writes = ("post",)
        parts.append(tracked)
        res = float(tracked["resolution_s"].max())
        sources.append(Source("db_phases", len(phases), "live phase tracker", f"+-{res:g} s"))
    if db is not None and not db.empty:
        sources.append(Source("db_steps", len(db), f"Hydra BuildSteps ({gen})", "1 s"))
        known = {(b, s) for p in parts for b, s in zip(p["build"], p["stepnr"], strict=True)}
        rest = db[[(b, s) not in known for b, s in zip(db["build"], db["stepnr"], strict=True)]]
        if not rest.empty:
            parts.append(_db_steps(rest, gen))
            notes.append(
                f"{len(rest)} step(s) without tracker phases: timed from BuildSteps only "
                "(whole seconds; scheduling and post-processing not separable)"
            )
    if not parts:
        parts, notes = _journal_part(logs, gen, notes)
    if not parts:
        empty = pd.DataFrame(columns=["step", *DURATIONS])
        return StepTable(empty, gen, notes=["no per-step source in the run (db, tracker, journal)"])
    steps = _with_db(pd.concat(parts, ignore_index=True), db, builds)
    steps["step"] = steps["build"].astype(str) + "/" + steps["stepnr"].astype(str)
    repeated = steps["step"].duplicated(keep="last")
    if repeated.any():  # e.g. the database collected twice into one run: the last copy counts
        notes.append(f"{int(repeated.sum())} repeated step row(s) (same build and step) dropped")
        steps = steps[~repeated].reset_index(drop=True)
    steps["generation"] = gen
    if logs is not None:
        sources.append(
            Source("log_events", len(logs), "queue-runner journal", "1 s (short) / 1 us (json)")
        )
    steps = _with_logs(steps, logs, builds)
    finished = _table(reader, "db_build_finished")
    if finished is not None and not finished.empty:  # the tracker heard the builds finish
        steps = to_build_end(steps, finished.groupby("build")["ts"].max(), builds)
        sources.append(Source("db_build_finished", len(finished), "build_finished", "notify"))
    window = (float(steps["start_ts"].min()), float(steps["end_ts"].max()))
    samples = _table(reader, "samples")
    steps, estimated = _refine(steps, logs, samples, gen, window, notes)
    estimated |= frozenset(estimated_writes)
    queue_s, queue_src = queue_estimate(samples, gen, window)
    steps["retry_wait_s"], retried = retry_waits(steps)
    queue_s, queue_src = _without_retries(queue_s, queue_src, steps, retried, gen)
    if samples is not None:
        sources.append(Source("samples", len(samples), "status/metrics samples", queue_src))
    if math.isnan(queue_s):
        notes.append(queue_src)
    steps["queue_s"] = np.nan  # per step: not observed (the total is queue_seconds)
    return StepTable(steps, gen, queue_s, queue_src, sources, notes, window, estimated)


def _refine(
    steps: pd.DataFrame,
    logs: pd.DataFrame | None,
    samples: pd.DataFrame | None,
    gen: str,
    window: tuple[float, float],
    notes: list[str],
) -> tuple[pd.DataFrame, frozenset[str]]:
    """Sharper times where the journal and the counters have them; which categories that
    made estimates (notes appended to ``notes``)."""
    steps, refine_note = _rust_journal_refine(steps, logs, gen)
    steps, split_note, split_estimated = _split_slot_wait(
        steps, samples, (window[0] - 1, window[1] + 1)
    )
    steps, import_note = _rust_imports(steps, samples, gen)
    steps, row_note = _rust_step_rows(steps, logs, samples, gen)
    notes.extend(n for n in (refine_note, split_note, import_note, row_note) if n)
    estimated = split_estimated + (("build", "io") if import_note else ())
    return steps, frozenset(estimated + (("post",) if row_note else ()))


def _one_reader(samples: pd.DataFrame, metric: str) -> pd.DataFrame:
    """A metric's samples from one source (the one with most of them): the status and the
    metrics endpoint read the same counter at different moments, so interleaved they can
    step back and look like a restart."""
    rows = samples[samples["metric"] == metric]
    if "source" in rows and rows["source"].nunique() > 1:
        rows = rows[rows["source"] == rows["source"].value_counts().idxmax()]
    return rows


def _journal_attempts(logs: pd.DataFrame) -> np.ndarray:
    """Rust runner journal: per dispatch (``Submitting build``), its stop (the next ``marking
    job as done`` or ``removing job`` line of its drv, before the drv's next dispatch), as
    rows of (dispatch, stop); a dispatch without a stop is left out."""
    keyed = logs.assign(key=logs["drv"].map(store_base))
    starts = _events(keyed, "dispatch")[["key", "ts"]].assign(kind=0)
    stops = _events(keyed, "job_done", "job_removed")[["key", "ts"]].assign(kind=1)
    rows = pd.concat([starts, stops]).dropna(subset=["key"]).sort_values(["key", "ts", "kind"])
    out: list[tuple[float, float]] = []
    for _, group in rows.groupby("key", sort=False):
        open_at = math.nan
        for ts, kind in zip(group["ts"].to_numpy(float), group["kind"].to_numpy(int), strict=True):
            if kind == 0:
                open_at = ts
            elif math.isfinite(open_at):
                out.append((open_at, ts))
                open_at = math.nan
    return np.array(out, float).reshape(-1, 2)


def _rust_step_rows(
    steps: pd.DataFrame,
    logs: pd.DataFrame | None,
    samples: pd.DataFrame | None,
    generation: str,
) -> tuple[pd.DataFrame, str | None]:
    """Rust: the time from a step's dispatch to its ``Submitting build`` line, which neither
    the journal nor the tracker sees: the runner takes the machine's slot, stamps the step's
    start (set_start_time_now) and creates its BuildSteps row and notifies before it logs
    (hydra 14332fbf subprojects/hydra-queue-runner/src/state/mod.rs:880, :1094-1133). The
    step-time counter (``totalStepTimeMs``/``steps_total_time_ms``: stop - start of every
    attempt, added at the stop, machine.rs:186-206, metrics.rs:1188-1206) holds it: its
    increase less the journal's dispatch-to-stop spans of the attempts it counted is that
    time, spread evenly over the steps as database time before their first line (estimated).
    """
    needed = ("event", "drv", "ts")
    if (
        generation != "rust"
        or steps.empty
        or logs is None
        or not all(c in logs for c in needed)
        or samples is None
        or samples.empty
        or "metric" not in samples
    ):
        return steps, None
    rows = _one_reader(samples, "step_seconds_total").sort_values("ts")
    if len(rows) < 2:
        return steps, None
    first, last = float(rows["ts"].iloc[0]), float(rows["ts"].iloc[-1])
    attempts = _journal_attempts(logs)
    if not len(attempts):
        return steps, None
    counted = attempts[(attempts[:, 1] > first) & (attempts[:, 1] <= last)]
    increase = _counter_increase(rows, "step_seconds_total", "_none_")
    if not len(counted) or not math.isfinite(increase):
        return steps, None
    done = samples[samples["metric"] == "steps_done_total"]
    if "source" in rows:  # the attempts it counted, from the same reader
        done = done[done["source"] == rows["source"].iloc[0]]
    done = done[(done["ts"] >= first) & (done["ts"] <= last)]
    n = _counter_increase(done, "steps_done_total", "_none_") if len(done) >= 2 else math.nan
    if not math.isfinite(n) or n <= 0:
        n = float(len(counted))  # every attempt the counter holds is in the journal
    mean_span = float((counted[:, 1] - counted[:, 0]).mean())
    per_attempt = (increase - mean_span * n) / n
    if per_attempt <= 1e-3:  # nothing the counter's milliseconds can tell from zero
        return steps, None
    steps = _rust_before_line(steps, per_attempt)
    note = (
        f"{per_attempt * 1000:.0f} ms per step between dispatch and the 'Submitting build' line "
        f"(creating the step's row and notifying) from the step-time counter less the "
        f"journal's spans of {int(n)} attempt(s), added to each step as database time, and "
        f"the Connecting update after the line ({per_attempt * 500:.0f} ms, taken as one of "
        "those two writes) moved from dispatch to database time (estimated)"
    )
    attempts[:, 0] -= per_attempt
    steps, end_note = _rust_row_ends(steps, attempts, samples)
    return steps, "; ".join(n for n in (note, end_note) if n)


def _rust_before_line(steps: pd.DataFrame, before_s: float) -> pd.DataFrame:
    """Rust steps get the ``before_s`` between dispatch and their ``Submitting build`` line:
    the step row's insert and the ``build_started`` notification, two transactions (hydra
    14332fbf state/mod.rs:1094-1127). A journal-timed step starts at the line; a step the
    journal re-timed (:func:`_rust_journal_refine`) already has the tracker's part (the
    notification, after the insert's commit) as preparing; a tracker-only step starts at the
    insert's commit (the notification is in its busy-1 span). The Connecting update after
    the line (:1134-1142), one write (half of ``before_s``), is in the journal's dispatch time
    (to the builder's ``Building`` line): it moves to database time."""
    steps = steps.copy()
    known = steps["start_ts"].notna()
    prepare = steps["prepare_s"].astype(float).fillna(0.0)
    source = steps["timing_source"]
    add = pd.Series(before_s, index=steps.index)
    add[source == "tracker+journal"] = (before_s - prepare).clip(lower=0.0)
    add[source == "tracker"] = before_s / 2
    add = add.where(known, 0.0)
    steps["prepare_s"] = prepare + add
    steps.loc[known, "start_ts"] = steps.loc[known, "start_ts"].astype(float) - add[known]
    timed = known & source.isin(["journal", "tracker+journal"])
    connect = steps["connect_s"].astype(float).fillna(0.0)
    update = connect.clip(upper=before_s / 2).where(timed, 0.0)
    steps["connect_s"] = connect - update
    steps["prepare_s"] += update
    return steps


def _rust_row_ends(
    steps: pd.DataFrame, attempts: np.ndarray, samples: pd.DataFrame
) -> tuple[pd.DataFrame, str | None]:
    """Rust journal-timed steps end at ``marking job as done`` (the stop), but the machine
    keeps the job while the step's row is written, and frees it after (succeed_step, hydra
    14332fbf state/mod.rs:1927-1940). The machines' ``currentJobs`` (jobs held, dispatch to
    removal) integrated over the status samples, less the attempts' dispatch-to-stop spans, is
    that time; spread evenly over the attempts and added to the journal steps' post-processing
    when it stands clear of the samples' own error (each rise and fall is seen up to an
    interval late: the integral's deviation is about interval x sqrt(attempts / 6))."""
    held_series = metric_series(
        _one_reader(samples, "machine_current_jobs"), "machine_current_jobs"
    )
    journal = steps["timing_source"] == "journal"
    if len(held_series) < 3 or not journal.any():
        return steps, None
    t = held_series.index.to_numpy(float)
    first, last = float(t[0]), float(t[-1])
    held = series_integral(held_series)
    seen = float(
        (np.minimum(attempts[:, 1], last) - np.maximum(attempts[:, 0], first)).clip(0).sum()
    )
    inside = int(((attempts[:, 1] > first) & (attempts[:, 1] <= last)).sum())
    interval = float(np.median(np.diff(t)))
    noise = interval * math.sqrt(max(inside, 1) / 6)
    extra = held - seen
    if inside == 0 or extra <= 2 * noise or extra / inside <= 1e-3:
        return steps, None
    per_attempt = extra / inside
    steps = steps.copy()
    steps.loc[journal, "post_s"] = steps.loc[journal, "post_s"].astype(float) + per_attempt
    steps.loc[journal, "end_ts"] = steps.loc[journal, "end_ts"].astype(float) + per_attempt
    return steps, (
        f"{per_attempt * 1000:.0f} ms per journal step after its 'marking job as done' line "
        f"(writing the step's row while the machine holds the job) from the machines' "
        f"currentJobs over {len(t)} samples (+-{noise / inside * 1000:.0f} ms) less the "
        "journal's spans (estimated)"
    )


def _rust_imports(
    steps: pd.DataFrame, samples: pd.DataFrame | None, generation: str
) -> tuple[pd.DataFrame, str | None]:
    """Rust steps timed from the journal alone: the builder's ``Building {drv}`` line comes
    when it receives the job, before it imports the inputs (hydra-builder/src/state.rs at
    14332fbf: import, then ``StepStatus::Building`` :564), so their build span holds the
    import. Each builder's import counter (``totalStepImportTimeMs`` / ``machine_total_step_
    import_time_ms``: the builders' import_time_ms summed, state/metrics.rs) says how much:
    it is taken out of that machine's journal steps in proportion to their build spans."""
    if generation != "rust" or samples is None or samples.empty or "metric" not in samples:
        return steps, None
    journal = (steps["timing_source"] == "journal") & (steps["build_s"] > 0)
    if not journal.any():
        return steps, None
    metric = "machine_step_import_seconds_total"
    rows = samples[samples["metric"] == metric]
    per_machine: dict[str, float] = {}
    if "machine" in rows:
        for machine, series in rows.groupby(rows["machine"].astype(str)):
            per_machine[str(machine)] = _counter_increase(series, metric, "_none_")
    steps = steps.copy()
    moved = 0.0
    groups = (
        steps[journal].groupby(steps.loc[journal, "machine"].astype(str)).groups
        if per_machine
        else {"": steps.index[journal]}
    )
    farm = _counter_increase(samples, "step_import_seconds_total", "_none_")
    for key, index in groups.items():
        total = per_machine.get(str(key), math.nan) if per_machine else farm
        if not math.isfinite(total) or total <= 0:
            continue
        spans = steps.loc[index, "build_s"].astype(float)
        share = min(1.0, total / float(spans.sum())) if spans.sum() > 0 else 0.0
        taken = spans * share
        steps.loc[index, "send_s"] = steps.loc[index, "send_s"].astype(float) + taken
        steps.loc[index, "build_s"] = spans - taken
        moved += float(taken.sum())
    if moved <= 0:
        return steps, None
    return steps, (
        f"{moved:.3g} step-s of input imports taken out of the journal steps' build spans by "
        "the builders' import counters, in proportion to each step's span (estimated)"
    )


def _without_retries(
    queue_s: float, source: str, steps: pd.DataFrame, retried: pd.Series, generation: str
) -> tuple[float, str]:
    """The queue total less what the steps' retry waits hold (they are counted per step).

    The runnable-steps gauges count a step through its back-off (C++ ``makeRunnable`` after
    setting ``after``: a40d4286 builder.cc:64-67; Rust keeps the job queued with its
    runnable flag). Rust's ``job_wait_time_seconds`` measures a retried step from the job's
    ``runnable_since``, which the retry keeps (14332fbf state/queue.rs:514), so it also holds
    the failed attempts' whole time."""
    waits = float(steps["retry_wait_s"].sum())
    if not math.isfinite(queue_s) or (waits <= 0 and not retried.any()):
        return queue_s, source
    held = waits
    if generation == "rust" and source.startswith("Rust job_wait"):
        spans = steps.loc[retried, "end_ts"].astype(float) - steps.loc[retried, "start_ts"]
        held += float(spans.clip(lower=0).sum())
    less = min(held, queue_s)
    return queue_s - less, f"{source}, less {less:.3g} step-s of retries (counted per step)"


def workers_from_samples(samples: pd.DataFrame | None) -> int | None:
    """C++ local worker slots from the status: while a step waits for a slot (busy 35,
    ``nrStepsWaitingForDownloadSlot``) every slot is taken, so the steps copying from builders
    then (``nrStepsCopyingFrom``, counted while a slot is held) are all the slots. None when no
    step was seen waiting."""
    if samples is None or samples.empty or "metric" not in samples:
        return None
    waiting = metric_series(samples, "steps_waiting_for_download_slot")
    copying = metric_series(samples, "steps_copying_from")
    if waiting.empty or copying.empty:
        return None
    both = pd.concat([waiting.rename("w"), copying.rename("c")], axis=1, join="inner")
    held = both.loc[both["w"] > 0, "c"]
    return int(held.max()) if not held.empty and held.max() >= 1 else None


def waited_for_worker(s: pd.DataFrame, above_s: float = 0.05) -> bool:
    """Whether any step waited longer than ``above_s`` for a C++ local worker slot."""
    return "slot_wait_s" in s and bool((s["slot_wait_s"].fillna(0) > above_s).any())


def peak_concurrency(
    start: pd.Series, end: pd.Series, host: pd.Series | None = None, margin: float = 0.0
) -> int:
    """The most of the intervals ``[start, end)`` open at once on one host (0 when none has
    both ends). Each interval is shrunk by ``margin`` at both ends (the boundaries'
    uncertainty: back-to-back intervals do not overlap); one ending as another starts does
    not overlap it."""
    ok = start.notna() & end.notna() & (end >= start)
    if not ok.any():
        return 0
    groups = host[ok].astype(str) if host is not None else pd.Series("", index=start[ok].index)
    peak = 0
    for idx in groups.groupby(groups).groups.values():
        t = np.concatenate([end[idx].to_numpy(float) - margin, start[idx].to_numpy(float) + margin])
        d = np.concatenate([-np.ones(len(idx)), np.ones(len(idx))])
        order = np.lexsort((d, t))  # at one instant, ends before starts
        peak = max(peak, int(np.cumsum(d[order]).max()))
    return peak


def local_worker_slots(generation: str, s: pd.DataFrame) -> int | None:
    """C++ local worker slots: the most copy phases seen at once, if steps ever waited
    for one (None otherwise, and for Rust, which has none)."""
    if generation != "cxx" or not waited_for_worker(s):
        return None
    if "copy_start_ts" not in s or s["copy_start_ts"].isna().all():
        return None
    tracked = s.dropna(subset=["copy_start_ts", "copy_end_ts"])
    margin = float(tracked["resolution_s"].max()) if "resolution_s" in tracked else 0.0
    margin = margin if math.isfinite(margin) else 0.0
    start, end = tracked["copy_start_ts"], tracked["copy_end_ts"]
    return max(1, peak_concurrency(start, end, margin=margin))
