"""Golden Rust status and metrics (tests/data/golden/rust, see their .sources.md): every key
and family is read, and the semantics the source gives them are the ones the analysis uses."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from profiler.analyze.gauges import waiting_series
from profiler.analyze.verdict import pressure
from profiler.collect.status.normalize import from_status
from profiler.collect.status.prometheus import from_prometheus

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "rust"
# the serde camelCase field names of the structs at hydra 14332fbf (io/queue_runner.rs
# QueueRunnerStats, io/machine.rs Machine): the fixture's keys must be exactly these
QUEUE_RUNNER_KEYS = 52
MACHINE_KEYS = 26


def test_every_status_field_is_read_and_capacity_is_pressure_gated() -> None:
    doc = json.loads((GOLDEN / "status.json").read_text())
    assert len(doc["queueRunner"]) == QUEUE_RUNNER_KEYS
    assert all(len(m) == MACHINE_KEYS for m in doc["machines"].values())
    samples = from_status(doc, 1_795_900_000.0, "golden")
    assert not samples.unknown, samples.unknown
    frame = pd.DataFrame(list(samples))
    cap = frame[frame["metric"] == "machine_has_capacity"].set_index("machine")["value"]
    assert cap["elated-minsky"] == 0.0 and cap["goofy-hopcroft"] == 1.0
    # a second sample a little later: the pressure gate holds while slots are free
    later = pd.DataFrame(list(from_status(doc, 1_795_900_010.0, "golden")))
    both = pd.concat([frame, later], ignore_index=True)
    p = pressure(both, (1_795_899_990.0, 1_795_900_020.0), None, "rust")
    assert p.free_from.startswith("builders' hasCapacity")
    # Rust runnable includes building: waiting = runnable - building
    waiting = waiting_series(both, "rust")
    qr = doc["queueRunner"]
    assert waiting.iloc[0] == qr["nrStepsRunnable"] - qr["nrStepsBuilding"]


def test_every_metric_family_is_read_including_the_process_and_the_wait_histogram() -> None:
    samples = from_prometheus((GOLDEN / "metrics.prom").read_text(), 1_795_900_000.0, "golden")
    frame = pd.DataFrame(list(samples))
    unknown = sorted(m for m in set(frame["metric"]) if str(m).startswith("prom_"))
    assert not unknown, unknown
    assert set(frame["generation"]) == {"rust"}
    assert frame[frame["metric"] == "process_cpu_seconds_total"]["value"].tolist() == [881234.0]
    assert (frame["metric"] == "job_wait_seconds_sum").sum() > 0
