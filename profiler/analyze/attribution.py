"""Attribution: each step's wall time split into scheduling, I/O, compression, build and post.

Per step (columns added to the step table, seconds):

- **scheduling**: connecting to the builder (and, in the totals only, the time steps waited
  runnable for a machine: no per-step source records it, see :mod:`profiler.analyze.steps`);
- **io**: sending inputs, receiving outputs, writing the cache, uploading;
- **compression**: compressing outputs (estimated from the codec profile, see below) and
  waiting for a local worker slot (C++: a slot is held for the whole receive+compress+upload,
  so the wait is caused by compression);
- **build**: building;
- **post**: preparing the step and post-processing (database writes, notifications).

The copy phase is split: C++ journals give the receive+compress+write pipeline time per
output, so ``copy - pipeline`` is the upload; compression is ``NAR bytes x seconds per byte``
of the codec profile, at most the pipeline (or the copy phase), and the rest of it is I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from profiler.analyze.profiles import SMALL_NAR_BYTES, CodecProfile
from profiler.analyze.steps import CATEGORIES, StepTable

# Phases that hold a machine slot (C++ gives the slot back once it has a local worker slot).
SLOT_COLUMNS = {
    "cxx": ("prepare_s", "connect_s", "send_s", "build_s", "slot_wait_s"),
    "rust": ("prepare_s", "connect_s", "send_s", "build_s", "slot_wait_s", "copy_s", "post_s"),
}


@dataclass
class Attribution:
    """Totals and shares of step wall time per category, and how they were obtained."""

    seconds: dict[str, float]
    shares: dict[str, float]
    estimated: dict[str, bool]
    steps: int
    wall_seconds: float
    queue_seconds: float
    notes: list[str]
    unsplit_seconds: float = 0.0  # copy-phase time that could not be split (no NAR size/profile)
    queue_observed: bool = True  # whether the queue wait (in scheduling) was observed at all

    def how(self, category: str) -> str:
        """How a category's seconds were obtained: observed, estimated, or (compression with
        copy phases that could not be split) not separated from I/O."""
        if self.unsplit_seconds > 0 and category == "compression":
            return "not separated: inside io"
        if self.unsplit_seconds > 0 and category == "io":
            return "includes unsplit compression"
        if category == "scheduling" and not self.queue_observed:
            return "partial: queue wait not observed"
        return "estimated" if self.estimated[category] else "observed"

    def as_dict(self) -> dict[str, float]:
        """The shares (summing to 1), as DESIGN.md's ``attribution`` object."""
        return dict(self.shares)


ASSUMED_UPLOAD_BYTES_PER_SECOND = 100e6  # a builder or runner to its cache, same region
ASSUMED_LINK_BYTES_PER_SECOND = 125e6  # a builder to the runner over SSH, 1 Gbit/s


RECEIVE_SECONDS_PER_BYTE = 1 / ASSUMED_LINK_BYTES_PER_SECOND  # a NAR byte over the link


def put_seconds_per_byte(profile: CodecProfile) -> float:
    """What uploading costs per NAR byte: its compressed bytes at the assumed upload rate."""
    return profile.ratio / ASSUMED_UPLOAD_BYTES_PER_SECOND


def compress_share(profile: CodecProfile, other_seconds_per_byte: float) -> float:
    """Of a phase that compresses NARs and moves bytes costing ``other_seconds_per_byte`` a
    NAR byte, the share spent compressing (0 when the profile has no rate)."""
    total = profile.seconds_per_byte + other_seconds_per_byte
    return float(profile.seconds_per_byte / total) if total > 0 else 0.0


# Without evidence of more, a machine compresses at most this many times slower than the
# calibration: the spread of server cores' speed and a busy builder's share of its cores. A
# slow link, by contrast, can be any number of times slower than the assumed rates.
SLOWDOWN_PRIOR = 3.0
REQUEST_SECONDS = 0.1  # a transfer's own fixed cost per NAR (a request, a handshake), at most


def compression_in_phase(
    phase: Any, expected: Any, other_seconds: Any, share: Any, slowdown: float = SLOWDOWN_PRIOR
) -> Any:
    """Compression seconds of a phase (per step, or a farm's total): the profile's
    ``expected`` time, plus ``share`` of what the phase holds beyond it and the assumed
    transfers (``other_seconds``): a busy machine compresses slower than the calibration
    did, a slow link moves bytes slower than assumed. At most ``slowdown`` times the
    profile's time (the rest of the excess is the transfer), and at most the phase."""
    excess = np.clip(phase - expected - other_seconds, 0.0, None)
    return np.minimum(np.minimum(expected + excess * share, slowdown * expected), phase)


def slowdown_evidence(phase: pd.Series, nar: pd.Series, per_call_seconds: float) -> float:
    """How much slower than calibrated the phases show compression to be, from what phases
    cost whatever their size: each phase less its bytes at the Theil-Sen slope of phase
    seconds over NAR bytes (the median of pairwise slopes, robust to a few odd steps), the
    90th percentile of that (a machine's load varies over a run: a per-NAR cost a tenth of
    the phases show is one it reached), less a transfer's own fixed cost, over the
    profile's cost of one call (a fresh encoder's set-up). A transfer costs per byte; a
    codec's set-up, slowed by a busy machine, costs per NAR. At least
    :data:`SLOWDOWN_PRIOR`; the prior alone with fewer than four sized phases."""
    ok = nar.notna() & (nar > 0) & phase.notna() & (phase > 0)
    x, y = nar[ok].to_numpy(float), phase[ok].to_numpy(float)
    if len(x) < 4 or per_call_seconds <= 0:
        return SLOWDOWN_PRIOR
    if len(x) > 200:  # the pairs grow as n^2: a fixed sample is as good for a median
        keep = np.random.default_rng(0).choice(len(x), 200, replace=False)
        x, y = x[keep], y[keep]
    i, j = np.triu_indices(len(x), 1)
    dx = x[j] - x[i]
    slopes = (y[j] - y[i])[dx != 0] / dx[dx != 0]
    slope = float(np.median(slopes)) if len(slopes) else 0.0
    per_call = float(np.quantile(y - max(slope, 0.0) * x, 0.9))
    return max(SLOWDOWN_PRIOR, (per_call - REQUEST_SECONDS) / per_call_seconds)


def split_copy(
    table: StepTable, profile: CodecProfile | None, upload_mode: str | None = None
) -> pd.DataFrame:
    """Add ``compress_s``, ``receive_s``, ``upload_s`` and the category columns to the steps.

    ``upload_mode`` is the Rust builders' (:func:`profiler.analyze.evidence.upload_mode`):
    in ``direct`` mode a step's upload phase only streams the NAR to the runner, which
    compresses it later outside the step (hydra 14332fbf state/uploader.rs:291-366), so no
    step time is compression. In presigned mode the builder's upload phase is compression and
    the PUT only: what it holds beyond the profile's compression time and the PUT at the
    assumed rate is shared between the two by what a byte costs each way (a busy builder
    compresses slower than the calibration; a slow link uploads slower than assumed)."""
    s = table.steps.copy()
    copy = s["copy_s"].astype(float).fillna(0.0)
    pipeline = s["pipeline_s"].astype(float) if "pipeline_s" in s else pd.Series(np.nan, s.index)
    has_pipe = pipeline.notna() & (pipeline <= copy + 1.0)  # a copy phase holds its pipeline
    pipe = pipeline.where(has_pipe, copy).clip(upper=copy.where(copy > 0, pipeline))
    nar = s["nar_bytes"].astype(float)
    if profile is not None and math.isfinite(profile.seconds_per_byte):
        wanted = profile.seconds(nar)
        # what else a NAR byte costs in the phase: the Rust builder's upload phase is compress
        # + PUT; a C++ pipeline (Nix's copy line) is receive + compress + write; a C++ copy
        # phase without it is receive + compress + write + PUT
        put, receive = put_seconds_per_byte(profile), RECEIVE_SECONDS_PER_BYTE
        if table.generation == "rust":
            other = pd.Series(put, s.index)
        else:
            other = pd.Series(np.where(has_pipe, receive, receive + put), s.index)
        share = other.map(lambda o: compress_share(profile, o))
        slowdown = slowdown_evidence(pipe, nar, float(profile.seconds(SMALL_NAR_BYTES)))
        with_size = compression_in_phase(pipe, wanted, nar * other, share, slowdown)
        compress = with_size.where(nar.notna(), pipe * share).fillna(0.0)
        s["compress_source"] = np.where(
            nar.notna(),
            f"estimated: NAR bytes x {profile.codec} profile, the rest of the phase shared "
            "by per-byte costs",
            f"estimated without NAR sizes: the phase shared by per-byte costs ({profile.codec} "
            "profile vs assumed transfer rates)",
        )
    else:
        compress = pd.Series(0.0, s.index)
        s["compress_source"] = "no codec profile: compression not separated from I/O"
    if table.generation == "rust" and upload_mode == "direct":
        compress = pd.Series(0.0, s.index)
        s["compress_source"] = "direct upload mode: the runner compresses after the step"
    s["compress_s"] = compress
    s["upload_s"] = (copy - pipe.fillna(copy)).clip(lower=0.0)
    s["receive_s"] = (pipe.fillna(copy) - compress).clip(lower=0.0)
    s["scheduling_s"] = s["connect_s"].fillna(0.0)
    if "retry_wait_s" in s:
        s["scheduling_s"] += s["retry_wait_s"].fillna(0.0)
    s["io_s"] = s["send_s"].fillna(0.0) + s["receive_s"] + s["upload_s"]
    s["compression_s"] = s["slot_wait_s"].fillna(0.0) + s["compress_s"]
    s["post_total_s"] = s["prepare_s"].fillna(0.0) + s["post_s"].fillna(0.0)
    s["wall_s"] = (
        s["scheduling_s"]
        + s["io_s"]
        + s["compression_s"]
        + s["build_s"].fillna(0.0)
        + s["post_total_s"]
    )
    slot_cols = SLOT_COLUMNS.get(table.generation, SLOT_COLUMNS["cxx"])
    s["slot_s"] = sum(s[c].fillna(0.0) for c in slot_cols)
    return s


def _category_columns() -> dict[str, str]:
    return {
        "scheduling": "scheduling_s",
        "io": "io_s",
        "compression": "compression_s",
        "build": "build_s",
        "post": "post_total_s",
    }


def attribute(table: StepTable, steps: pd.DataFrame) -> Attribution:
    """Totals over all steps, with the queue wait (when observed) in scheduling."""
    cols = _category_columns()
    seconds = {c: float(steps[col].fillna(0.0).sum()) for c, col in cols.items()}
    queue = table.queue_seconds if math.isfinite(table.queue_seconds) else 0.0
    seconds["scheduling"] += queue
    total = sum(seconds.values())
    shares = {c: (seconds[c] / total if total > 0 else 0.0) for c in CATEGORIES}
    estimated = dict.fromkeys(CATEGORIES, False)
    estimated["compression"] = bool((steps.get("compress_s", pd.Series(dtype=float)) > 0).any())
    estimated["io"] = estimated["compression"]
    estimated["scheduling"] = queue > 0 and "integral" in table.queue_source
    for category in table.estimated:
        estimated[category] = True
    notes = list(table.notes)
    if queue > 0:
        notes.append(f"queue wait {queue:.1f} step-s: {table.queue_source}")
    unsplit = _unsplit(steps)
    if unsplit > 0:
        notes.append(
            f"{unsplit:.1f} step-s of copy phases (receive, compress, upload together) could not "
            "be split: no NAR size for those steps (a journal alone has none for Rust builders: "
            "add the database or status samples) or no codec profile; counted as io, so "
            "compression is absent, not zero"
        )
    observed = math.isfinite(table.queue_seconds)
    return Attribution(
        seconds, shares, estimated, len(steps), total, queue, notes, unsplit, observed
    )


def _unsplit(steps: pd.DataFrame) -> float:
    if "compress_source" not in steps or "copy_s" not in steps:
        return 0.0
    source = steps["compress_source"].astype(str)
    unsplit = source.str.startswith("no ") & (steps["compress_s"].fillna(0.0) <= 0)
    return float(steps.loc[unsplit, "copy_s"].fillna(0.0).sum())


def breakdown(steps: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Per group: steps, wall p50/p90/p99, category shares, and slot time not building."""
    cols = _category_columns()
    rows = []
    for key, g in steps.groupby(by, dropna=False, sort=True):
        wall = g["wall_s"]
        total = float(wall.sum())
        row: dict[str, object] = {
            "group": key if not isinstance(key, tuple) or len(key) != 1 else key[0],
            "steps": len(g),
            "wall_p50_s": float(wall.quantile(0.5)),
            "wall_p90_s": float(wall.quantile(0.9)),
            "wall_p99_s": float(wall.quantile(0.99)),
        }
        for c, col in cols.items():
            row[f"{c}_share"] = float(g[col].fillna(0.0).sum()) / total if total > 0 else 0.0
        slot = float(g["slot_s"].sum())
        row["slot_not_building_share"] = 1 - float(g["build_s"].sum()) / slot if slot > 0 else 0.0
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.set_index("group") if not out.empty else out


def by_window(steps: pd.DataFrame, window_seconds: float) -> pd.DataFrame:
    """:func:`breakdown` per time window of step end (UTC epoch seconds at window start)."""
    keyed = steps.assign(window=(steps["end_ts"] // window_seconds) * window_seconds)
    return breakdown(keyed, "window")
