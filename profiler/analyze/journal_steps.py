"""Build steps from the queue runner's journal alone (``collect logs``): each generation's
lines that start, time and end a step, joined by derivation, and the Rust builders' upload
lines; and the re-timing of tracked Rust steps from the journal's microsecond lines.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from profiler.analyze.schema import PHASE_COLUMN
from profiler.hydra.catalogue import store_base

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


def copied_outputs(logs: pd.DataFrame) -> pd.DataFrame:
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


def join_outputs(steps: pd.DataFrame, copied: pd.DataFrame) -> pd.DataFrame:
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


def journal_part(
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
    copied = copied_outputs(logs)
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


def rust_journal_refine(
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


def journal_attempts(logs: pd.DataFrame) -> np.ndarray:
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
