"""Status JSON and Prometheus text of the emulated queue runner, both generations."""

from __future__ import annotations

import json
import math
import os
import re
import struct
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from profiler.testbed.state import MachineState, RunnerState, S3Stats, StoreStats
from profiler.testbed.status import (
    HostFacts,
    cxx_metrics,
    cxx_status,
    cxx_status_text,
    read_host,
    rust_endpoint,
    rust_metrics,
    rust_status,
)
from profiler.testbed.status.metrics import CXX_FAMILIES, PREFIX, RUST_FAMILIES, RUST_LABELLED

STARTED = 1_750_000_000.25
NOW = STARTED + 3_723.6
DRV_A = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-2.12.drv"
DRV_B = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-zlib-1.3.drv"
DRV_C = "/nix/store/cccccccccccccccccccccccccccccccc-qemu-9.0.drv"

CXX_TOP_KEYS = {
    "status", "time", "uptime", "pid", "nrQueuedBuilds", "nrActiveSteps", "nrStepsBuilding",
    "nrStepsCopyingTo", "nrStepsWaitingForDownloadSlot", "nrStepsCopyingFrom", "nrStepsWaiting",
    "nrUnsupportedSteps", "bytesSent", "bytesReceived", "nrBuildsRead", "buildReadTimeMs",
    "buildReadTimeAvgMs", "nrBuildsDone", "nrStepsStarted", "nrStepsDone", "nrRetries",
    "maxNrRetries", "nrQueueWakeups", "nrDispatcherWakeups", "dispatchTimeMs",
    "dispatchTimeAvgMs", "nrDbConnections", "nrActiveDbUpdates", "nrUnfinishedSteps",
    "nrRunnableSteps", "totalStepTime", "totalStepBuildTime", "avgStepTime", "avgStepBuildTime",
    "machines", "jobsets", "machineTypes", "store", "s3",
}  # fmt: skip
CXX_FLOATS = {"buildReadTimeAvgMs", "dispatchTimeAvgMs", "avgStepTime", "avgStepBuildTime"}
CXX_OBJECTS = {"machines", "jobsets", "machineTypes", "store", "s3"}

RUST_QR_INT_KEYS = {
    "buildCount", "jobsetCount", "stepCount", "runnableCount", "queueChecksStarted",
    "queueBuildLoads", "queueStepsCreated", "queueChecksEarlyExits", "queueChecksFinished",
    "dispatcherTimeSpentRunning", "dispatcherTimeSpentWaiting", "queueMonitorTimeSpentRunning",
    "queueMonitorTimeSpentWaiting", "nrBuildsRead", "buildReadTimeMs", "nrBuildsUnfinished",
    "nrBuildsDone", "nrBuildsSucceeded", "nrBuildsFailed", "nrStepsStarted", "nrStepsDone",
    "nrStepsBuilding", "nrStepsWaiting", "nrStepsRunnable", "nrStepsUnfinished",
    "nrUnsupportedSteps", "nrUnsupportedStepsAborted", "nrSubstitutesStarted",
    "nrSubstitutesFailed", "nrSubstitutesSucceeded", "nrRetries", "maxNrRetries",
    "avgStepTimeMs", "avgStepImportTimeMs", "avgStepBuildTimeMs", "avgStepUploadTimeMs",
    "totalStepTimeMs", "totalStepImportTimeMs", "totalStepBuildTimeMs", "totalStepUploadTimeMs",
    "nrQueueWakeups", "nrDispatcherWakeups", "dispatchTimeMs", "machinesTotal", "machinesInUse",
    "s3UploadsPending",
}  # fmt: skip

CXX_METRIC_NAMES = [
    "hydraqueuerunner_queue_checks_started_total",
    "hydraqueuerunner_queue_build_loads_total",
    "hydraqueuerunner_queue_steps_created_total",
    "hydraqueuerunner_queue_checks_early_exits_total",
    "hydraqueuerunner_queue_checks_finished_total",
    "hydraqueuerunner_dispatcher_time_spent_running",
    "hydraqueuerunner_dispatcher_time_spent_waiting",
    "hydraqueuerunner_queue_monitor_time_spent_running",
    "hydraqueuerunner_queue_monitor_time_spent_waiting",
]
RUST_US_COUNTERS = [
    "hydraqueuerunner_dispatcher_time_spent_running_total",
    "hydraqueuerunner_dispatcher_time_spent_waiting_total",
    "hydraqueuerunner_monitor_time_spent_running_total",
    "hydraqueuerunner_monitor_time_spent_waiting_total",
]


def f32(value: float) -> float:
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def make_state() -> RunnerState:
    busy = MachineState(
        hostname="builder-1",
        systems=["x86_64-linux", "i686-linux"],
        max_jobs=4,
        supported_features=["kvm", "big-parallel"],
        mandatory_features=["benchmark"],
        speed_factor=1.5,
        cpu_count=8,
        current_jobs=2,
        nr_steps_done=7,
        total_step_seconds=523,
        total_step_build_seconds=301,
        total_step_ms=523_412,
        total_step_import_ms=12_345,
        total_step_build_ms=301_006,
        total_step_upload_ms=190_061,
        idle_since=STARTED + 10.0,
        joined_at=STARTED + 1.0,
        last_failure=STARTED + 500.9,
        disabled_until=STARTED + 560.9,
        consecutive_failures=6,
        succeeded_builds=6,
        failed_builds=1,
        uploading_paths=3,
        downloading_paths=5,
        jobs=[DRV_A, DRV_B],
    )
    idle = MachineState(
        hostname="builder-2",
        systems=["aarch64-linux"],
        max_jobs=2,
        idle_since=STARTED + 1800.7,
        joined_at=STARTED + 2.0,
    )
    return RunnerState(
        generation="cxx",
        started_at=STARTED,
        pid=4242,
        machines=[busy, idle],
        nr_queued_builds=12,
        nr_builds_read=30,
        build_read_time_ms=4_567,
        nr_builds_done=18,
        nr_builds_succeeded=16,
        nr_builds_failed=2,
        nr_steps_started=10,
        nr_steps_done=7,
        nr_retries=1,
        max_nr_retries=2,
        nr_unfinished_steps=40,
        nr_runnable_steps=6,
        nr_unsupported_steps=1,
        nr_active_steps=3,
        nr_steps_building=2,
        nr_steps_copying_to=1,
        nr_steps_waiting_for_download_slot=1,
        nr_steps_copying_from=3,
        nr_active_db_updates=1,
        nr_db_connections=4,
        nr_queue_wakeups=9,
        nr_dispatcher_wakeups=41,
        dispatch_time_ms=333,
        dispatcher_running_us=1_234_567,
        dispatcher_waiting_us=9_876_543,
        monitor_running_us=2_345_678,
        monitor_waiting_us=8_765_432,
        queue_checks_started=9,
        queue_checks_finished=8,
        queue_build_loads=30,
        queue_steps_created=47,
        bytes_sent=123_456_789,
        bytes_received=987_654_321,
        total_step_seconds=523,
        total_step_build_seconds=301,
        total_step_ms=523_412,
        total_step_import_ms=12_345,
        total_step_build_ms=301_006,
        total_step_upload_ms=190_061,
        jobsets={"nixpkgs:trunk": (3_601, 100), "nixos:release-25.05": (77, 3)},
        machine_types={"x86_64-linux": (4, 2), "x86_64-linux:kvm": (1, 0), "riscv64-linux": (1, 0)},
        wait_time_ms={"x86_64-linux": 98_765},
        store=StoreStats(
            nar_info_read=50,
            nar_info_read_averted=20,
            nar_info_missing=5,
            nar_info_write=14,
            nar_info_cache_size=70,
            nar_read=3,
            nar_read_bytes=30_000_000,
            nar_read_compressed_bytes=9_000_000,
            nar_write=12,
            nar_write_averted=2,
            nar_write_bytes=1_500_000_000,
            nar_write_compressed_bytes=400_000_000,
            nar_write_compression_time_ms=61_000,
        ),
        s3=S3Stats(
            put=26,
            put_bytes=400_100_000,
            put_time_ms=8_000,
            get=3,
            get_bytes=9_000_000,
            get_time_ms=450,
            head=64,
        ),
        s3_bucket="testbed-cache",
    )


def engine_steps() -> list[dict[str, Any]]:
    return [
        {"drvPath": DRV_A, "runnable": True, "finished": False, "created": int(STARTED) + 60,
         "tries": 0, "lowestBuildId": 101, "system": "x86_64-linux"},
        {"drvPath": DRV_B, "runnable": False, "finished": False, "created": int(STARTED) + 61,
         "tries": 1, "lowestBuildId": 102, "system": "x86_64-linux"},
        {"drvPath": DRV_C, "runnable": True, "finished": False, "created": int(STARTED) + 62,
         "tries": 0, "lowestBuildId": 103, "system": "riscv64-linux"},
        {"drvPath": "/nix/store/dddddddddddddddddddddddddddddddd-done.drv", "runnable": False,
         "finished": True, "created": int(STARTED) + 5, "tries": 0, "lowestBuildId": 100,
         "system": "x86_64-linux"},
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------
# C++ status JSON


def test_cxx_top_level_keys_types_and_units() -> None:
    state = make_state()
    doc = cxx_status(state, NOW, max_local_worker_threads=8)
    assert set(doc) == CXX_TOP_KEYS
    assert doc["status"] == "up"
    for key, value in doc.items():
        if key in CXX_FLOATS:
            assert type(value) is float, key
        elif key in CXX_OBJECTS:
            assert isinstance(value, dict), key
        elif key != "status":
            assert type(value) is int, key
    assert doc["time"] == int(NOW)
    assert doc["uptime"] == int(NOW) - int(STARTED)
    assert doc["pid"] == 4242
    assert doc["nrStepsWaiting"] == 0
    # step totals are whole seconds, not ms
    assert doc["totalStepTime"] == state.total_step_seconds
    assert doc["totalStepBuildTime"] == state.total_step_build_seconds
    assert doc["avgStepTime"] == pytest.approx(523 / 7, rel=1e-6)
    assert doc["buildReadTimeAvgMs"] == pytest.approx(4_567 / 30, rel=1e-6)
    assert doc["dispatchTimeAvgMs"] == pytest.approx(333 / 41, rel=1e-6)
    json.dumps(doc, allow_nan=False)


def test_cxx_float_fields_are_single_precision() -> None:
    doc = cxx_status(make_state(), NOW, max_local_worker_threads=8)
    machine = doc["machines"]["ssh://build@builder-1"]
    for value in (
        doc["avgStepTime"],
        doc["avgStepBuildTime"],
        doc["buildReadTimeAvgMs"],
        doc["dispatchTimeAvgMs"],
        machine["avgStepTime"],
        machine["avgStepBuildTime"],
    ):
        assert value == f32(value)
    # visibly not the double quotient
    assert doc["avgStepTime"] != 523 / 7
    assert doc["avgStepTime"] == f32(f32(523.0) / 7.0)


def test_cxx_no_step_totals_before_the_first_step() -> None:
    state = make_state()
    state.nr_steps_done = 0
    state.nr_builds_read = 0
    state.nr_dispatcher_wakeups = 0
    doc = cxx_status(state, NOW, max_local_worker_threads=8)
    for key in ("totalStepTime", "totalStepBuildTime", "avgStepTime", "avgStepBuildTime"):
        assert key not in doc
    assert doc["buildReadTimeAvgMs"] == 0.0
    assert doc["dispatchTimeAvgMs"] == 0.0


def test_cxx_machines() -> None:
    state = make_state()
    machines = cxx_status(state, NOW, max_local_worker_threads=8)["machines"]
    assert set(machines) == {"ssh://build@builder-1", "ssh://build@builder-2"}
    busy, idle = machines["ssh://build@builder-1"], machines["ssh://build@builder-2"]
    assert "idleSince" not in busy
    assert idle["idleSince"] == int(STARTED + 1800.7)
    assert busy["consecutiveFailures"] == 4  # capped
    assert busy["currentJobs"] == 2
    assert busy["enabled"] is True
    assert busy["systemTypes"] == ["i686-linux", "x86_64-linux"]
    assert busy["supportedFeatures"] == ["benchmark", "big-parallel", "kvm"]
    assert busy["mandatoryFeatures"] == ["benchmark"]
    assert busy["lastFailure"] == int(STARTED + 500.9)
    assert busy["disabledUntil"] == int(STARTED + 560.9)
    assert busy["totalStepTime"] == 523
    assert busy["totalStepBuildTime"] == 301
    assert busy["avgStepBuildTime"] == f32(f32(301.0) / 7.0)
    assert not {"totalStepTime", "avgStepTime"} & set(idle)
    assert idle["disabledUntil"] == 0
    assert idle["lastFailure"] == 0


def test_cxx_jobsets_machine_types_store_s3() -> None:
    state = make_state()
    doc = cxx_status(state, NOW, max_local_worker_threads=8)
    assert doc["jobsets"]["nixpkgs:trunk"] == {"shareUsed": 36.01, "seconds": 3_601}
    assert doc["jobsets"]["nixos:release-25.05"]["shareUsed"] == 77 / 3
    assert doc["machineTypes"]["x86_64-linux"] == {"runnable": 4, "running": 2}
    assert all(set(v) == {"runnable", "running"} for v in doc["machineTypes"].values())
    store = doc["store"]
    assert len(store) == 15
    assert store["narCompressionSavings"] == pytest.approx(1 - 400 / 1500)
    assert store["narCompressionSpeed"] == pytest.approx(1_500_000_000 / 61.0 / 1024 / 1024)
    assert store["narWriteCompressionTimeMs"] == 61_000
    s3 = doc["s3"]
    assert set(s3) == {
        "put", "putBytes", "putTimeMs", "putSpeed", "get", "getBytes", "getTimeMs",
        "getSpeed", "head", "costDollarApprox",
    }  # fmt: skip
    assert s3["putSpeed"] == pytest.approx(400_100_000 / 8.0 / 1024 / 1024)
    assert s3["getSpeed"] == pytest.approx(9_000_000 / 0.45 / 1024 / 1024)
    cost = (3 + 64) / 10_000 * 0.004 + 26 / 1000 * 0.005 + 9_000_000 / 1024**3 * 0.09
    assert s3["costDollarApprox"] == pytest.approx(cost)
    assert "s3" not in cxx_status(state, NOW, 8, include_s3=False)


def test_cxx_derived_store_values_without_writes() -> None:
    state = make_state()
    state.store = StoreStats()
    state.s3 = S3Stats()
    doc = cxx_status(state, NOW, max_local_worker_threads=8)
    assert doc["store"]["narCompressionSavings"] == 0.0
    assert doc["store"]["narCompressionSpeed"] == 0.0
    assert doc["s3"]["putSpeed"] == 0.0
    assert doc["s3"]["costDollarApprox"] == 0.0


def test_cxx_copying_from_is_bounded_by_local_worker_threads() -> None:
    state = make_state()
    doc = cxx_status(state, NOW, max_local_worker_threads=2)
    assert doc["nrStepsCopyingFrom"] == 2
    assert doc["nrStepsWaitingForDownloadSlot"] == 2
    doc = cxx_status(state, NOW, max_local_worker_threads=8)
    assert (doc["nrStepsCopyingFrom"], doc["nrStepsWaitingForDownloadSlot"]) == (3, 1)
    with pytest.raises(ValueError, match="max_local_worker_threads"):
        cxx_status(state, NOW, max_local_worker_threads=0)


# ------------------------------------------------------------------------------------------
# C++ status text


def perl_numbers(value: Any) -> Any:
    """What Perl's JSON decode + encode does to numbers: doubles become ``%.15g``."""
    if isinstance(value, dict):
        return {k: perl_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [perl_numbers(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.15g}")
    return value


def test_status_text_compact_is_one_sorted_line() -> None:
    doc = cxx_status(make_state(), NOW, max_local_worker_threads=8)
    text = cxx_status_text(doc, pretty=False)
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert " " not in text  # no string in the fixture has spaces
    assert json.loads(text) == doc
    assert text == json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"


def test_status_text_compact_doubles_as_nlohmann() -> None:
    doc = {"a": 5.0, "b": 1e-05, "c": 0.0001, "d": 1e15, "e": 123.5, "f": 2103510, "g": -0.0}
    text = cxx_status_text(doc, pretty=False)
    assert text == '{"a":5.0,"b":1e-05,"c":0.0001,"d":1e+15,"e":123.5,"f":2103510,"g":-0.0}\n'


def test_status_text_pretty_is_perl_canonical() -> None:
    doc = cxx_status(make_state(), NOW, max_local_worker_threads=8)
    text = cxx_status_text(doc, pretty=True)
    lines = text.splitlines()
    assert lines[0] == "{"
    assert lines[-1] == "}"
    assert text.endswith("}\n")
    assert lines[1].startswith('   "avgStepBuildTime" : ')
    assert '   "machines" : {' in lines
    assert '      "ssh://build@builder-1" : {' in lines
    assert '         "mandatoryFeatures" : [' in lines
    assert '            "benchmark"' in lines
    assert '         "idleSince" : ' + str(int(STARTED + 1800.7)) + "," in lines
    # indentation is a multiple of three spaces
    for line in lines:
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 3 == 0, line
    # keys are sorted at every level
    top = [m.group(1) for m in re.finditer(r'^   "([^"]+)" : ', text, re.MULTILINE)]
    assert top == sorted(doc)
    loaded = json.loads(text)
    assert loaded == perl_numbers(doc)
    assert loaded["avgStepTime"] == pytest.approx(doc["avgStepTime"], rel=1e-14)


def test_status_text_pretty_number_forms() -> None:
    doc = {"avgStepBuildTime": f32(32.97263), "empty": {}, "list": [], "x": 36.0, "y": True}
    text = cxx_status_text(doc, pretty=True)
    assert '"avgStepBuildTime" : 32.9726295471191,' in text  # as shown by Perl
    assert '"empty" : {},' in text
    assert '"list" : [],' in text
    assert '"x" : 36,' in text
    assert '"y" : true\n' in text


# ------------------------------------------------------------------------------------------
# Rust status JSON


def test_rust_status_shape_and_units() -> None:
    state = make_state()
    doc = rust_status(state, NOW, uploads=["/nix/store/x-out"])
    assert set(doc) == {"queueRunner", "machines", "jobsets", "store", "s3"}
    assert doc["store"] is None
    qr = doc["queueRunner"]
    assert qr["status"] == "up"
    assert isinstance(qr["time"], str)
    assert qr["time"].endswith("Z")
    assert datetime.fromisoformat(qr["time"]).timestamp() == pytest.approx(NOW, abs=1e-6)
    assert type(qr["uptime"]) is float
    assert qr["uptime"] == pytest.approx(NOW - STARTED)
    for key in RUST_QR_INT_KEYS:
        assert type(qr[key]) is int, key
    assert qr["totalStepTimeMs"] == state.total_step_ms
    assert qr["totalStepUploadTimeMs"] == state.total_step_upload_ms
    assert qr["avgStepTimeMs"] == state.total_step_ms // state.nr_steps_done
    assert qr["dispatcherTimeSpentRunning"] == state.dispatcher_running_us
    assert qr["queueMonitorTimeSpentWaiting"] == state.monitor_waiting_us
    assert qr["machinesTotal"] == 2
    assert qr["machinesInUse"] == 1
    assert qr["s3UploadsPending"] == 1
    assert qr["supportedFeatures"] == ["benchmark", "big-parallel", "kvm"]
    proc = qr["proc"]
    assert proc["pid"] == 4242
    assert proc["rssBytes"] > 0
    assert set(proc["cgroup"]) == {"memory", "io", "cpu"}
    assert set(proc["cgroup"]["memory"]) == {
        "currentBytes", "peakBytes", "swapCurrentBytes", "zswapCurrentBytes",
    }  # fmt: skip
    assert set(proc["cgroup"]["cpu"]) == {"usageUsec", "userUsec", "systemUsec"}
    json.dumps(doc, allow_nan=False)


def test_rust_queue_stats() -> None:
    queues = rust_status(make_state(), NOW)["queueRunner"]["queueStats"]
    assert set(queues) == {"x86_64-linux", "riscv64-linux"}
    assert queues["x86_64-linux"] == {
        "activeRunnable": 2,
        "totalRunnable": 7,
        "nrRunnableWaiting": 5,
        "nrRunnableDisabled": 0,
        "avgRunnableTime": 0,
        "waitTimeMs": 98_765,
    }
    # no machine offers riscv64-linux
    assert queues["riscv64-linux"]["nrRunnableDisabled"] == 1
    assert queues["riscv64-linux"]["nrRunnableWaiting"] == 0


def test_rust_machines_and_jobsets() -> None:
    doc = rust_status(make_state(), NOW)
    assert set(doc["machines"]) == {"builder-1", "builder-2"}
    busy = doc["machines"]["builder-1"]
    assert busy["hostname"] == "builder-1"
    assert busy["jobs"] == [DRV_A, DRV_B]
    assert busy["speedFactor"] == 1.5
    assert busy["hasStaticCapacity"] is True
    assert busy["uptime"] == pytest.approx(NOW - STARTED - 1.0)
    stats = busy["stats"]
    assert stats["totalStepTimeMs"] == 523_412
    assert stats["avgStepBuildTimeMs"] == 301_006 // 7
    assert stats["idleSince"] == 0
    assert stats["consecutiveFailures"] == 6
    assert stats["currentUploadingPathCount"] == 3
    assert 0 <= stats["sinceLastPing"] < 10
    assert set(stats["pressure"]) == {"cpuSome", "memSome", "memFull", "ioSome", "ioFull",
                                      "irqFull"}  # fmt: skip
    for psi in stats["pressure"].values():
        assert set(psi) == {"avg10", "avg60", "avg300", "total"}
        assert type(psi["total"]) is int
    idle = doc["machines"]["builder-2"]["stats"]
    assert idle["idleSince"] == int(STARTED + 1800.7)
    assert idle["avgStepTimeMs"] == 0
    assert doc["jobsets"]["nixpkgs:trunk"] == {
        "id": 2, "projectName": "nixpkgs", "name": "trunk", "seconds": 3_601, "shares": 100,
    }  # fmt: skip
    assert doc["s3"] == {
        "testbed-cache": cxx_status(make_state(), NOW, max_local_worker_threads=8)["s3"]
    }


def test_rust_endpoints() -> None:
    state = make_state()
    steps = engine_steps()
    machines = rust_endpoint(state, NOW, "/status/machines", steps)
    assert machines is not None
    assert machines["machinesCount"] == 2
    assert set(machines["machines"]) == {"builder-1", "builder-2"}
    jobsets = rust_endpoint(state, NOW, "/status/jobsets/")
    assert jobsets is not None
    assert jobsets["jobsetCount"] == 2
    assert rust_endpoint(state, NOW, "/status/builds") == {"builds": [], "buildCount": 0}
    all_steps = rust_endpoint(state, NOW, "/status/steps", steps)
    assert all_steps is not None
    assert all_steps["stepCount"] == 4
    assert all_steps["steps"][0] == {
        "drvPath": DRV_A, "runnable": True, "finished": False, "previousFailure": False,
        "created": True, "tries": 0, "highestGlobalPriority": 0, "highestLocalPriority": 0,
        "lowestBuildId": 101, "depsCount": 0,
    }  # fmt: skip
    runnable = rust_endpoint(state, NOW, "/status/runnable", steps)
    assert runnable is not None
    assert [s["drvPath"] for s in runnable["steps"]] == [DRV_A, DRV_C]
    jobs = rust_endpoint(state, NOW, "/status/queues/jobs", steps)
    assert jobs is not None
    assert [s["drvPath"] for s in jobs["steps"]] == [DRV_A, DRV_B, DRV_C]
    info = jobs["steps"][0]
    assert set(info) == {
        "drvPath", "alreadyScheduled", "runnable", "finished", "cancelled", "runnableSince",
        "tries", "lowestShareUsed", "highestGlobalPriority", "highestLocalPriority",
        "lowestBuildId",
    }  # fmt: skip
    assert info["alreadyScheduled"] is True
    assert info["lowestShareUsed"] == 0.0
    assert datetime.fromisoformat(info["runnableSince"]).timestamp() == int(STARTED) + 60
    scheduled = rust_endpoint(state, NOW, "/status/queues/scheduled", steps)
    assert scheduled is not None
    assert [s["drvPath"] for s in scheduled["steps"]] == [DRV_A, DRV_B]
    queues = rust_endpoint(state, NOW, "/status/queues", steps)
    assert queues is not None
    assert {k: len(v) for k, v in queues["queues"].items()} == {
        "x86_64-linux": 2,
        "riscv64-linux": 1,
    }
    uploads = rust_endpoint(state, NOW, "/status/uploads", uploads=["/nix/store/x-out"])
    assert uploads == {"paths": ["/nix/store/x-out"], "pathCount": 1}
    assert rust_endpoint(state, NOW, "/status/build/101/active", steps) == {"active": True}
    assert rust_endpoint(state, NOW, "/status/build/100/active", steps) == {"active": False}
    full = rust_endpoint(state, NOW, "/status", steps)
    assert full is not None
    assert full["store"] is None
    assert rust_endpoint(state, NOW, "/status/nope", steps) is None
    assert rust_endpoint(state, NOW, "/metrics") is None


# ------------------------------------------------------------------------------------------
# Rust host facts, exactly: the checked-in tree tests/data/proc (see test_testbed_host.py)

PROC_TREE = Path(__file__).resolve().parents[1] / "data" / "proc"
PSI_DOC = {
    "cpuSome": {"avg10": 1.23, "avg60": 0.87, "avg300": 0.5, "total": 123_456_789},
    "memSome": {"avg10": 0.3, "avg60": 0.1, "avg300": 0.02, "total": 2_345_678},
    "memFull": {"avg10": 0.2, "avg60": 0.05, "avg300": 0.01, "total": 1_234_567},
    "ioSome": {"avg10": 4.51, "avg60": 3.02, "avg300": 1.7, "total": 98_765_432},
    "ioFull": {"avg10": 2.25, "avg60": 1.5, "avg300": 0.85, "total": 45_678_901},
    "irqFull": {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total": 4_567},
}


def tree_host() -> HostFacts:
    """The facts of tests/data/proc, with 4 KiB pages and every file system 25% free."""
    free = os.statvfs_result((4096, 4096, 1000, 250, 250, 0, 0, 0, 0, 255))
    return read_host(
        str(PROC_TREE / "proc"),
        str(PROC_TREE / "sys" / "fs" / "cgroup"),
        build_dir="/build",
        store_dir="/nix/store",
        page_size=4096,
        statvfs=lambda path: free,
    )


def test_rust_proc_document_is_exact() -> None:
    doc = rust_status(make_state(), NOW, host=tree_host())
    assert doc["queueRunner"]["proc"] == {
        "pid": 4242,
        "vsizeBytes": 262_144 * 4096,
        "rssBytes": 12_800 * 4096,
        "sharedBytes": 3_200 * 4096,
        "cgroup": {
            "memory": {
                "currentBytes": 734_003_200,
                "peakBytes": 1_073_741_824,
                "swapCurrentBytes": 0,
                "zswapCurrentBytes": 4_096,
            },
            "io": {"totalReadBytes": 1_052_672, "totalWriteBytes": 2_105_344},
            "cpu": {"usageUsec": 9_876_543, "userUsec": 7_654_321, "systemUsec": 2_222_222},
        },
    }


def test_rust_machine_document_is_exact() -> None:
    state = make_state()
    doc = rust_status(state, NOW, host=tree_host())
    assert doc["machines"]["builder-1"] == {
        "systems": ["x86_64-linux", "i686-linux"],
        "hostname": "builder-1",
        "uptime": NOW - (STARTED + 1.0),
        "cpuCount": 8,
        "bogomips": 4799.99,
        "speedFactor": 1.5,
        "maxJobs": 4,
        "buildDirAvailThreshold": 10.0,
        "storeAvailThreshold": 10.0,
        "load1Threshold": 8.0,
        "cpuPsiThreshold": 75.0,
        "memPsiThreshold": 80.0,
        "ioPsiThreshold": None,
        "score": 57599.883,  # f32(f32(1.5 * f32(4799.99)) * 8), printed as serde's f32
        "totalMem": 16_303_664 * 1024,
        "supportedFeatures": ["kvm", "big-parallel"],
        "mandatoryFeatures": ["benchmark"],
        "cgroups": False,
        "substituters": [],
        "useSubstitutes": False,
        "nixVersion": "2.34.0",
        "stats": {
            "currentJobs": 2,
            "nrStepsDone": 7,
            "avgStepTimeMs": 523_412 // 7,
            "avgStepImportTimeMs": 12_345 // 7,
            "avgStepBuildTimeMs": 301_006 // 7,
            "avgStepUploadTimeMs": 190_061 // 7,
            "totalStepTimeMs": 523_412,
            "totalStepImportTimeMs": 12_345,
            "totalStepBuildTimeMs": 301_006,
            "totalStepUploadTimeMs": 190_061,
            "idleSince": 0,
            "lastFailure": int(STARTED + 500.9),
            "disabledUntil": int(STARTED + 560.9),
            "consecutiveFailures": 6,
            "lastPing": 1_750_003_721,  # every 10 s since it joined at STARTED + 1
            "sinceLastPing": 2,
            "load1": 0.52,
            "load5": 0.71,
            "load15": 0.8,
            "memUsage": (16_303_664 - 11_010_024) * 1024,
            "pressure": PSI_DOC,
            "buildDirFreePercent": 25.0,
            "storeFreePercent": 25.0,
            "currentUploadingPathCount": 3,
            "currentDownloadingPathCount": 5,
            "jobsInLast30sStart": 0,
            "jobsInLast30sCount": 0,
            "failedBuilds": 1,
            "succeededBuilds": 6,
        },
        "jobs": [DRV_A, DRV_B],
        "hasCapacity": True,
        "hasDynamicCapacity": True,
        "hasStaticCapacity": True,
    }
    machines = rust_endpoint(state, NOW, "/status/machines", host=tree_host())
    assert machines == {"machines": doc["machines"], "machinesCount": 2}


def test_rust_emulated_cpu_pressure_replaces_the_host_avg10() -> None:
    state = make_state()
    state.machines[1].cpu_pressure_avg10 = 80.0
    state.machines[1].free_fn = "Dynamic"
    idle = rust_status(state, NOW, host=tree_host())["machines"]["builder-2"]
    assert idle["stats"]["pressure"] == {
        **PSI_DOC,
        "cpuSome": {**PSI_DOC["cpuSome"], "avg10": 80.0},
    }
    assert (idle["hasCapacity"], idle["hasDynamicCapacity"], idle["hasStaticCapacity"]) == (
        False,
        False,
        True,
    )
    assert idle["score"] == 9599.98  # f32(f32(1.0 * f32(4799.99)) * 2)


def test_rust_status_without_host_facts_is_all_zeros() -> None:
    doc = rust_status(make_state(), NOW, host=HostFacts())
    proc = doc["queueRunner"]["proc"]
    assert (proc["vsizeBytes"], proc["rssBytes"], proc["sharedBytes"]) == (0, 0, 0)
    assert proc["cgroup"]["cpu"] == {"usageUsec": 0, "userUsec": 0, "systemUsec": 0}
    stats = doc["machines"]["builder-2"]["stats"]
    assert stats["pressure"]["ioFull"] == {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total": 0}
    assert (stats["load1"], stats["memUsage"], stats["storeFreePercent"]) == (0.0, 0, 0.0)
    assert doc["machines"]["builder-2"]["bogomips"] == 0.0


# ------------------------------------------------------------------------------------------
# Prometheus text


def parse(text: str) -> dict[str, Any]:
    return {fam.name: fam for fam in text_string_to_metric_families(text)}


def sample_values(family: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def test_cxx_metrics_names_types_values() -> None:
    state = make_state()
    text = cxx_metrics(state)
    families = list(text_string_to_metric_families(text))
    # the parser strips "_total" from counter family names
    expected = [n.removesuffix("_total") for n in CXX_METRIC_NAMES]
    assert [f.name for f in families] == expected
    assert all(f.type == "counter" for f in families)
    assert all(f.documentation for f in families)
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    values = dict(line.split(" ") for line in lines)
    assert list(values) == CXX_METRIC_NAMES
    assert float(values["hydraqueuerunner_dispatcher_time_spent_running"]) == 1_234_567
    assert float(values["hydraqueuerunner_queue_monitor_time_spent_waiting"]) == 8_765_432
    assert float(values["hydraqueuerunner_queue_checks_started_total"]) == 9
    assert float(values["hydraqueuerunner_queue_steps_created_total"]) == 47
    assert float(values["hydraqueuerunner_queue_checks_early_exits_total"]) == 0
    # the µs counters carry no _total suffix in C++; the removed gauge is gone
    assert "time_spent_running_total" not in text
    assert "time_spent_waiting_total" not in text
    assert "queue_max_build_id_info" not in text
    assert "# TYPE hydraqueuerunner_dispatcher_time_spent_running counter\n" in text


def test_cxx_metrics_exposer_families() -> None:
    text = cxx_metrics(make_state(), exposer_latencies_us=[], exposer_bytes=0)
    assert text.startswith("# HELP exposer_transferred_bytes_total ")
    assert 'exposer_request_latencies{quantile="0.5"} Nan\n' in text
    fams = parse(text)
    assert fams["exposer_request_latencies"].type == "summary"
    text = cxx_metrics(make_state(), exposer_latencies_us=[120.0, 80.0], exposer_bytes=4096)
    values = sample_values(parse(text)["exposer_scrapes"])
    assert values[("exposer_scrapes_total", ())] == 2


def test_rust_metrics_names_types_values() -> None:
    state = make_state()
    text = rust_metrics(state, NOW, [0.5, 30.0, 4000.0], uploads=["/nix/store/x-out"])
    fams = parse(text)
    names = [f.name for f in text_string_to_metric_families(text)]
    assert names == sorted(names, key=lambda n: n)  # rust-prometheus sorts by full name

    def value(family: str, sample: str | None = None, **labels: str) -> float:
        vals = sample_values(fams[family])
        return vals[(sample or family, tuple(sorted(labels.items())))]

    for name in RUST_US_COUNTERS:
        assert fams[name.removesuffix("_total")].type == "counter"
        assert f"\n{name} " in text
    assert value("hydraqueuerunner_dispatcher_time_spent_running",
                 "hydraqueuerunner_dispatcher_time_spent_running_total") == 1_234_567  # fmt: skip
    assert value("hydraqueuerunner_steps_total_time_ms",
                 "hydraqueuerunner_steps_total_time_ms_total") == state.total_step_ms  # fmt: skip
    assert fams["hydraqueuerunner_steps_avg_total_time_ms"].type == "gauge"
    assert value("hydraqueuerunner_steps_avg_total_time_ms") == 523_412 // 7
    assert value("hydraqueuerunner_builds_unfinished") == 12
    assert value("hydraqueuerunner_steps_copying_to") == 3
    assert value("hydraqueuerunner_steps_copying_from") == 5
    assert value("hydraqueuerunner_machines_in_use") == 1
    assert value("hydraqueuerunner_s3_uploads_pending") == 1
    assert value("hydraqueuerunner_current_time_seconds") == int(NOW)
    assert value("hydraqueuerunner_uptime_seconds") == int(NOW - STARTED)
    assert value("hydraqueuerunner_store_nar_write_bytes") == 0
    assert value("hydraqueuerunner_machine_type_runnable", machine_type="x86_64-linux") == 7
    assert value("hydraqueuerunner_machine_type_wait_time", machine_type="x86_64-linux") == 98_765
    assert value("hydraqueuerunner_machine_total_step_time_ms", hostname="builder-1") == 523_412
    assert value("hydraqueuerunner_machine_idle_since_timestamp", hostname="builder-1") == 0
    assert value("hydraqueuerunner_machine_idle_since_timestamp", hostname="builder-2") == int(
        STARTED + 1800.7
    )
    assert value("hydraqueuerunner_s3_put_bytes", remote_store="testbed-cache") == 400_100_000
    assert value("hydraqueuerunner_s3_put_speed", remote_store="testbed-cache") == pytest.approx(
        400_100_000 / 8.0 / 1024 / 1024
    )
    assert value("hydraqueuerunner_jobset_share_used", jobset_name="nixpkgs:trunk") == 100
    assert value("hydraqueuerunner_jobset_seconds", jobset_name="nixpkgs:trunk") == 3_601
    for name in ("overflow_copies_queued", "sort_duration_ms", "aborted_jobs"):
        assert fams[f"hydraqueuerunner_{name}"].type == "counter"


def test_rust_metrics_histograms() -> None:
    text = rust_metrics(make_state(), NOW, [0.5, 30.0, 4000.0])
    fams = parse(text)
    wait = fams["hydraqueuerunner_job_wait_time_seconds"]
    assert wait.type == "histogram"
    buckets = {
        s.labels["le"]: s.value
        for s in wait.samples
        if s.name.endswith("_bucket") and s.labels["machine_type"] == "x86_64-linux"
    }
    assert list(buckets) == ["1", "10", "60", "300", "900", "3600", "7200", "86400", "+Inf"]
    assert buckets["1"] == 1
    assert buckets["60"] == 2
    assert buckets["3600"] == 2
    assert buckets["7200"] == 3
    assert buckets["+Inf"] == 3
    drvs = fams["hydraqueuerunner_build_input_drvs_seconds"]
    les = [s.labels["le"] for s in drvs.samples if s.name.endswith("_bucket")][:10]
    assert les == ["0", "1", "5", "10", "25", "50", "100", "250", "500", "+Inf"]
    closure = fams["hydraqueuerunner_build_closure_size_bytes"]
    les = [s.labels["le"] for s in closure.samples if s.name.endswith("_bucket")][:8]
    assert les[0] == "1000"
    assert les[-2:] == ["1000000000", "+Inf"]
    assert all(math.isfinite(s.value) for s in closure.samples)
    empty = {s.labels["machine_type"]: s.value for s in wait.samples if s.name.endswith("_count")}
    assert empty == {"riscv64-linux": 0, "x86_64-linux": 3}
    by_type = rust_metrics(make_state(), NOW, {"riscv64-linux": [5.0]})
    counts = sample_values(parse(by_type)["hydraqueuerunner_job_wait_time_seconds"])
    key = ("hydraqueuerunner_job_wait_time_seconds_count", (("machine_type", "riscv64-linux"),))
    assert counts[key] == 1


def metric_lines(text: str) -> dict[str, float]:
    """Sample lines of an exposition: ``name{labels}`` -> value."""
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in pairs}


def test_metrics_report_the_numbers_of_the_status_fields_they_are_keyed_by() -> None:
    """One counter table: each family is declared with the status field whose number it
    reports, and reports exactly that number (both generations)."""
    state = make_state()
    uploads = ["/nix/store/x-out", "/nix/store/y-out"]
    doc = rust_status(state, NOW, host=HostFacts(), uploads=uploads)
    qr = doc["queueRunner"]
    # the two path gauges sum the machines' stats; everything else is a queueRunner field
    assert set(RUST_FAMILIES) - set(qr) == {
        "currentUploadingPathCount",
        "currentDownloadingPathCount",
    }
    lines = metric_lines(rust_metrics(state, NOW, uploads=uploads))
    for key, fam in RUST_FAMILIES.items():
        if key in qr and type(qr[key]) is int:
            assert lines[PREFIX + fam.name] == qr[key], key
    assert lines[PREFIX + "uptime_seconds"] == int(qr["uptime"])
    objects = {
        "machine_type": qr["queueStats"],
        "hostname": {host: m["stats"] for host, m in doc["machines"].items()},
        "remote_store": doc["s3"],
        "jobset_name": doc["jobsets"],
    }
    for label, families in RUST_LABELLED.items():
        assert objects[label], label
        for key, fam in families.items():
            for value, obj in objects[label].items():
                sample = f'{PREFIX}{fam.name}{{{label}="{value}"}}'
                assert lines[sample] == pytest.approx(obj[key], rel=1e-15), sample
    cxx_lines = metric_lines(cxx_metrics(state))
    assert [PREFIX + fam.name for fam in CXX_FAMILIES.values()] == list(cxx_lines)
    for key, fam in CXX_FAMILIES.items():
        assert cxx_lines[PREFIX + fam.name] == qr[key], key
