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
from typing import Any

import numpy as np
import pandas as pd

from profiler.analyze.estimates import (
    rust_imports,
    rust_step_rows,
    split_slot_wait,
    without_retries,
)
from profiler.analyze.gauges import queue_increments
from profiler.analyze.journal_steps import (
    copied_outputs,
    join_outputs,
    journal_part,
    rust_journal_refine,
)
from profiler.analyze.schema import DURATIONS, PHASE_COLUMN, Source, StepTable
from profiler.hydra import facts
from profiler.hydra.catalogue import store_base
from profiler.payloads.binary_cache import path_sizes
from profiler.store import RunReader

FINAL_BUSY = facts.FINAL_PHASE
_NO_LOGS = pd.DataFrame(columns=["event"])


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


def _with_logs(
    steps: pd.DataFrame, logs: pd.DataFrame | None, builds: pd.DataFrame | None
) -> pd.DataFrame:
    """Output sizes and pipeline times, sharper step bounds; NAR size from Builds else."""
    if logs is None or "event" not in logs:
        logs = None
    steps = join_outputs(steps, copied_outputs(logs if logs is not None else _NO_LOGS))
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
        # a step exported twice joins once (its last copy): each copy of the step would
        # otherwise meet each copy of its row, and the repeats counted be their product
        info = info.drop_duplicates(["build", "stepnr"], keep="last")
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


"""C++ transactions under ``startDbUpdate`` (counted in ``nrActiveDbUpdates``) per step:
creating its row and finishing it with its builds (hydra f17273f3
src/hydra-queue-runner/builder.cc:195, :327-337)."""


def _queue_wait(
    samples: pd.DataFrame | None,
    gen: str,
    window: tuple[float, float],
    steps: pd.DataFrame,
    retried: pd.Series,
) -> tuple[float, str, pd.DataFrame]:
    """The queue wait's total, source and increments over time, less the retry waits the
    steps hold (taken off the increments evenly over time)."""
    waits, source = queue_increments(samples, gen, window)
    raw_s = float(waits["seconds"].sum()) if len(waits) else math.nan
    queue_s, source = without_retries(raw_s, source, steps, retried, gen)
    if raw_s > 0:
        waits = waits.assign(seconds=waits["seconds"] * (queue_s / raw_s))
    return queue_s, source, waits


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
        parts, notes = journal_part(logs, gen, notes)
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
    steps["retry_wait_s"], retried = retry_waits(steps)
    queue_s, queue_src, waits = _queue_wait(samples, gen, window, steps, retried)
    if samples is not None:
        sources.append(Source("samples", len(samples), "status/metrics samples", queue_src))
    if math.isnan(queue_s):
        notes.append(queue_src)
    steps["queue_s"] = np.nan  # per step: not observed (the total is queue_seconds)
    return StepTable(steps, gen, queue_s, queue_src, sources, notes, window, estimated, waits)


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
    steps, refine_note = rust_journal_refine(steps, logs, gen)
    steps, split_note, split_estimated = split_slot_wait(
        steps, samples, (window[0] - 1, window[1] + 1)
    )
    steps, import_note = rust_imports(steps, samples, gen)
    steps, row_note = rust_step_rows(steps, logs, samples, gen)
    notes.extend(n for n in (refine_note, split_note, import_note, row_note) if n)
    estimated = split_estimated + (("build", "io") if import_note else ())
    return steps, frozenset(estimated + (("post",) if row_note else ()))
