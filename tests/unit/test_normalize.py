"""Normalising status JSON (every C++ era, Rust), Prometheus text and journals to samples."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from profiler.collect import samples as model
from profiler.collect.samples import SAMPLE_KEYS
from profiler.collect.status.metrics_map import PROM_MAPPING
from profiler.collect.status.normalize import (
    detect,
    from_cxx_status,
    from_rust_endpoint,
    from_rust_status,
    from_status,
    mapping_table,
    status_from_journal_line,
)
from profiler.collect.status.prometheus import from_prometheus
from profiler.collect.status.status_map import (
    CXX_STATUS_MAPPING,
    RUST_ENDPOINT_MAPPING,
    RUST_STATUS_MAPPING,
)
from profiler.errors import CollectorError

DATA = Path(__file__).resolve().parents[1] / "data" / "status"
TS = 1_790_000_000.5
STATUS_FIXTURES = sorted(p.name for p in DATA.glob("*.json") if p.name != "rust-machines.json")
PROM_FIXTURES = ["metrics-cxx.prom", "metrics-rust.prom"]
ELATED = "ssh://build@elated-minsky.builder.nixos.org"
Samples = list[dict[str, Any]]


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def status(name: str) -> model.Samples:
    return from_status(load(name), TS, name)


def prom(name: str, generation: str | None = None) -> model.Samples:
    return from_prometheus((DATA / name).read_text(encoding="utf-8"), TS, name, generation)


def pick(samples: Samples, metric: str, **labels: str | None) -> list[dict[str, Any]]:
    return [
        s for s in samples if s["metric"] == metric and all(s[k] == v for k, v in labels.items())
    ]


def value(samples: Samples, metric: str, **labels: str | None) -> float:
    found = pick(samples, metric, **labels)
    assert len(found) == 1, (metric, labels, found)
    result: float = found[0]["value"]
    return result


def metrics(samples: Samples) -> set[str]:
    return {s["metric"] for s in samples}


def samples_of(name: str) -> model.Samples:
    """Samples of any fixture, by file name."""
    if name.endswith(".prom"):
        return prom(name)
    if name == "rust-machines.json":
        return from_rust_endpoint("/status/machines", load(name), TS, name)
    return status(name)


# --------------------------------------------------------------------------------------------
# shape of every sample


@pytest.mark.parametrize("name", [*STATUS_FIXTURES, "rust-machines.json", *PROM_FIXTURES])
def test_every_sample_has_every_key_with_the_right_type(name: str) -> None:
    samples = samples_of(name)
    assert samples, name
    for s in samples:
        assert tuple(s) == SAMPLE_KEYS
        assert type(s["ts"]) is float and s["ts"] == TS
        assert type(s["value"]) is float
        assert s["source"] == name and isinstance(s["unit"], str)
        assert s["generation"] in ("cxx", "rust")
        assert s["kind"] in ("counter", "gauge")
        assert re.fullmatch(r"[a-z][a-z0-9_]*", s["metric"]), s["metric"]
        for label in ("machine", "machine_type", "jobset", "bucket"):
            assert s[label] is None or isinstance(s[label], str)
    assert samples.unknown == [] or name == "metrics-cxx.prom"


def test_names_follow_the_rules_in_every_mapping() -> None:
    seen: dict[str, tuple[str, str]] = {}
    tables = (CXX_STATUS_MAPPING, RUST_STATUS_MAPPING, RUST_ENDPOINT_MAPPING, PROM_MAPPING)
    histograms = {"build_input_drvs", "build_closure_size_bytes", "job_wait_seconds"}
    for table in tables:
        for path, field in table.items():
            name = field.metric
            # one name, one kind and one unit, whichever generation or source it comes from
            assert seen.setdefault(name, (field.kind, field.unit)) == (field.kind, field.unit)
            if name in histograms:
                continue
            assert name.endswith("_total") == (field.kind == "counter"), path
            if field.unit in ("seconds", "bytes"):
                assert field.unit in name.split("_"), path  # unit-suffixed (bytes_sent_total)


# --------------------------------------------------------------------------------------------
# C++ eras


def test_cxx_2018_old_fields_and_s3_nested_in_store() -> None:
    samples = status("cxx-2018.json")
    assert {s["generation"] for s in samples} == {"cxx"}
    assert value(samples, "up") == 1.0
    assert value(samples, "memory_tokens_in_use_bytes") == 134217728.0
    assert value(samples, "notifications_done_total") == 14050.0
    assert value(samples, "notifications_pending") == 4.0
    assert value(samples, "notification_seconds_total") == 2345.678  # ms -> s
    assert value(samples, "s3_put_total") == 31245.0  # found inside store
    assert value(samples, "s3_put_seconds_total") == 9876.543
    assert value(samples, "step_seconds_total") == 1836504.0  # seconds already
    assert value(samples, "build_read_seconds_total") == 4012.345
    # machines keyed by sshName, label kept as given
    assert value(samples, "machine_step_seconds_total", machine="localhost") == 1601234.0
    assert pick(samples, "machine_current_jobs", machine="nix@aarch64-builder.example.org")
    # waitTime / lastActive only where the runner wrote them
    assert value(samples, "machine_type_wait_seconds", machine_type="x86_64-linux") == 865432.0
    assert not pick(samples, "machine_type_wait_seconds", machine_type="i686-linux")
    assert pick(samples, "machine_type_last_active_timestamp_seconds", machine_type="i686-linux")
    last_active = "machine_type_last_active_timestamp_seconds"
    assert not pick(samples, last_active, machine_type="x86_64-linux")
    assert "steps_waiting_for_download_slot" not in metrics(samples)
    # derived values are not stored
    assert not {m for m in metrics(samples) if "avg" in m or "speed" in m or "cost" in m}


def test_cxx_2022_12_s3_top_level_and_empty_sections() -> None:
    samples = status("cxx-2022-12.json")
    assert value(samples, "s3_put_total") == 1212345.0
    assert value(samples, "s3_put_seconds_total") == 198765.432
    assert value(samples, "steps_unsupported") == 23.0
    assert not [s for s in samples if s["machine"] or s["jobset"] or s["machine_type"]]
    assert "memory_tokens_in_use_bytes" not in metrics(samples)


def test_cxx_2025_final_shape() -> None:
    samples = status("cxx-2025.json")
    # NixOS/hydra#1477's production numbers: totals in seconds, kept as they are
    assert value(samples, "machine_step_seconds_total", machine=ELATED) == 2103510.0
    assert value(samples, "machine_step_build_seconds_total", machine=ELATED) == 1319202.0
    assert value(samples, "machine_steps_done_total", machine=ELATED) == 40009.0
    assert value(samples, "step_seconds_total") == 4124744.0
    assert value(samples, "steps_waiting_for_download_slot") == 37.0
    assert value(samples, "steps_copying_from") == 144.0
    assert value(samples, "nar_write_compression_seconds_total") == 6552825.123
    assert value(samples, "nar_write_bytes_total") == 21987654321098.0
    assert value(samples, "s3_put_total") == 1876543.0
    assert pick(samples, "s3_put_total")[0]["bucket"] is None
    assert value(samples, "jobset_seconds", jobset="nixpkgs:trunk") == 1234567.0
    assert pick(samples, "jobset_seconds")[0]["kind"] == "gauge"  # 24 h window
    assert value(samples, "jobset_share_used", jobset="nixpkgs:staging-next") == 10864.2
    kvm = {"machine_type": "aarch64-linux:kvm,nixos-test"}
    assert value(samples, "machine_type_runnable", **kvm) == 11.0
    assert "machine_type_wait_seconds" not in metrics(samples)
    # a machine that has done no step has no totals (absent, not zero)
    rivest = "ssh://build@hopeful-rivest.builder.nixos.org"
    assert value(samples, "machine_steps_done_total", machine=rivest) == 0.0
    assert not pick(samples, "machine_step_seconds_total", machine=rivest)
    assert value(samples, "machine_consecutive_failures", machine=rivest) == 3.0
    # idleSince only for idle machines
    assert pick(samples, "machine_idle_since_timestamp_seconds", machine=rivest)
    assert not pick(samples, "machine_idle_since_timestamp_seconds", machine=ELATED)


def test_pretty_form_is_the_same_document_and_the_same_samples() -> None:
    text = (DATA / "cxx-pretty.json").read_text(encoding="utf-8")
    assert text.startswith('{\n   "avgStepBuildTime" : 41.3017578125,')
    assert load("cxx-pretty.json") == load("cxx-2025.json")
    pretty = from_cxx_status(load("cxx-pretty.json"), TS, "x")
    assert pretty == from_cxx_status(load("cxx-2025.json"), TS, "x")
    # float32-looking values are read as they are (and averages are not stored)
    assert load("cxx-pretty.json")["machines"][ELATED]["avgStepBuildTime"] == 32.9726295471191


def test_cxx_without_s3_gives_no_s3_samples() -> None:
    samples = status("cxx-2026-noS3.json")
    assert not {m for m in metrics(samples) if m.startswith("s3_")}
    assert "nar_write_bytes_total" in metrics(samples)
    assert value(samples, "up") == 1.0


def test_machines_null_and_no_step_totals_before_the_first_step() -> None:
    samples = status("cxx-machines-null.json")
    assert not [s for s in samples if s["machine"] is not None]
    assert value(samples, "steps_done_total") == 0.0
    assert "step_seconds_total" not in metrics(samples)
    assert "step_build_seconds_total" not in metrics(samples)
    assert value(samples, "machine_type_runnable", machine_type="x86_64-linux") == 5.0
    assert value(samples, "s3_head_total") == 12.0
    missing = {k: v for k, v in load("cxx-machines-null.json").items() if k != "machines"}
    assert from_cxx_status(missing, TS, "cxx-machines-null.json") == samples


@pytest.mark.parametrize("name", ["cxx-down.json", "cxx-unknown.json", "cxx-unreachable.json"])
def test_runner_not_up_gives_only_up_zero(name: str) -> None:
    samples = status(name)
    assert [(s["metric"], s["value"], s["kind"]) for s in samples] == [("up", 0.0, "gauge")]
    assert samples[0]["generation"] == "cxx"
    rust = from_rust_status(load(name), TS, "web")
    assert [(s["metric"], s["value"], s["generation"]) for s in rust] == [("up", 0.0, "rust")]


# --------------------------------------------------------------------------------------------
# Rust


def test_rust_status() -> None:
    doc = load("rust-2026.json")
    assert detect(doc) == "rust"
    samples = from_rust_status(doc, TS, "rust")
    assert {s["generation"] for s in samples} == {"rust"}
    assert {s["ts"] for s in samples} == {TS}
    assert value(samples, "status_time_seconds") == pytest.approx(1787217267.123456, abs=1e-6)
    assert value(samples, "up") == 1.0
    assert value(samples, "step_seconds_total") == 2830859.444  # ms -> s
    assert value(samples, "step_import_seconds_total") == 144444.733
    assert value(samples, "step_upload_seconds_total") == 1272831.366
    assert value(samples, "dispatcher_running_seconds_total") == 123456.789012  # µs -> s
    assert value(samples, "queue_monitor_waiting_seconds_total") == 171234.56789
    assert value(samples, "cgroup_cpu_seconds_total") == 345678.901234
    # a builder that did one 5 s step: totalStepTimeMs 5000 -> 5.0
    rivest = {"machine": "hopeful-rivest"}
    assert value(samples, "machine_step_seconds_total", **rivest) == 5.0
    assert value(samples, "machine_step_import_seconds_total", **rivest) == 0.4
    assert value(samples, "machine_step_build_seconds_total", **rivest) == 3.1
    assert value(samples, "machine_step_upload_seconds_total", **rivest) == 1.5
    psi = {"machine": "elated-minsky"}
    assert value(samples, "machine_pressure_cpu_some_avg10", **psi) == 34.12
    assert value(samples, "machine_pressure_io_full_seconds_total", **psi) == 45678.901234
    assert value(samples, "machine_uploading_paths", **psi) == 27.0
    assert not pick(samples, "machine_io_psi_threshold_percent")  # null in the document
    # s3 keyed by bucket; store is null
    assert value(samples, "s3_put_total", bucket="nix-cache") == 923456.0
    assert value(samples, "s3_put_seconds_total", bucket="nix-cache") == 145678.901
    assert not {m for m in metrics(samples) if m.startswith("nar")}
    x86 = {"machine_type": "x86_64-linux"}
    assert value(samples, "machine_type_queue_insert_wait_seconds_total", **x86) == 987654321.012
    assert value(samples, "machine_type_queued", **x86) == 4043.0
    assert value(samples, "jobset_shares", jobset="nixpkgs:staging-next") == 50.0
    assert value(samples, "jobset_seconds", jobset="nixpkgs:trunk") == 734567.0
    assert not {m for m in metrics(samples) if "avg" in m and "pressure" not in m}


def test_rust_machines_endpoint_gives_the_same_machine_samples() -> None:
    whole = [s for s in status("rust-2026.json") if s["machine"] is not None]
    doc = load("rust-machines.json")
    machines = from_rust_endpoint("/status/machines", doc, TS, "rust-2026.json")
    assert [s for s in machines if s["machine"] is not None] == whole
    assert value(machines, "machines_known") == 3.0


def test_rust_other_endpoints() -> None:
    queues = {"queues": {"x86_64-linux": [{"drvPath": "/nix/store/a.drv"}] * 3, "i686-linux": []}}
    x86 = {"machine_type": "x86_64-linux"}
    samples = from_rust_endpoint("/status/queues", queues, TS, "q")
    assert value(samples, "machine_type_queued", machine_type="x86_64-linux") == 3.0
    assert value(samples, "machine_type_queued", machine_type="i686-linux") == 0.0
    stats = {"queues": {"x86_64-linux": {"totalRunnable": 7, "waitTimeMs": 1500}}}
    samples = from_rust_endpoint("/status/queues", stats, TS, "q")
    assert value(samples, "machine_type_queue_insert_wait_seconds_total") == 1.5
    jobsets = {"jobsets": {"p:j": {"id": 1, "seconds": 30, "shares": 100}}, "jobsetCount": 1}
    assert value(from_rust_endpoint("/status/jobsets", jobsets, TS, "j"), "jobset_seconds") == 30
    steps = {"steps": [{"drvPath": "/nix/store/a.drv", "tries": 2}], "stepCount": 1}
    assert from_rust_endpoint("/status/steps", steps, TS, "s") == []
    assert from_rust_endpoint("/status/uploads", {"paths": [], "pathCount": 0}, TS, "u") == []
    url = "http://[::1]:8080/status/queues?x=1"
    assert value(from_rust_endpoint(url, queues, TS, "q"), "machine_type_queued", **x86) == 3.0
    whole = from_rust_endpoint("/status", load("rust-2026.json"), TS, "rust-2026.json")
    assert whole == status("rust-2026.json")[:]


# --------------------------------------------------------------------------------------------
# both generations


SHARED = {
    "up", "uptime_seconds", "process_id", "status_time_seconds", "steps_started_total",
    "steps_done_total", "step_seconds_total", "step_build_seconds_total", "builds_read_total",
    "build_read_seconds_total", "builds_done_total", "builds_queued", "retries_total",
    "max_retries", "dispatcher_wakeups_total", "dispatch_seconds_total", "queue_wakeups_total",
    "steps_building", "steps_runnable", "steps_unfinished", "steps_unsupported",
    "s3_put_total", "s3_put_bytes_total", "s3_put_seconds_total", "s3_get_total",
    "machine_current_jobs", "machine_steps_done_total", "machine_step_seconds_total",
    "machine_step_build_seconds_total", "machine_consecutive_failures",
    "machine_idle_since_timestamp_seconds", "machine_type_running", "jobset_seconds",
}  # fmt: skip


def test_shared_quantities_have_the_same_names_kinds_and_units() -> None:
    cxx, rust = status("cxx-2025.json"), status("rust-2026.json")
    assert metrics(cxx) & metrics(rust) >= SHARED
    for name in SHARED:
        assert {(s["kind"], s["unit"]) for s in pick(cxx + rust, name)} == {
            (pick(cxx, name)[0]["kind"], pick(cxx, name)[0]["unit"])
        }
    # where the meanings differ the names do too
    assert "steps_copying_from" not in metrics(rust) | metrics(prom("metrics-rust.prom"))
    assert "uploading_paths" in metrics(prom("metrics-rust.prom"))


def test_rust_prometheus_agrees_with_rust_status() -> None:
    """The two fixtures come from one runner state: the same names carry the same values."""
    text, doc = prom("metrics-rust.prom"), status("rust-2026.json")
    keys = ("metric", "machine", "machine_type", "jobset", "bucket")
    by_key = {tuple(s[k] for k in keys): s["value"] for s in doc}
    checked = 0
    for s in text:
        key = tuple(s[k] for k in keys)
        if key in by_key and s["metric"] not in ("status_time_seconds", "uptime_seconds"):
            assert s["value"] == by_key[key], key
            checked += 1
    assert checked >= 40


# --------------------------------------------------------------------------------------------
# Prometheus


def test_cxx_prometheus() -> None:
    samples = prom("metrics-cxx.prom")
    assert {s["generation"] for s in samples} == {"cxx"}
    assert value(samples, "dispatcher_running_seconds_total") == 98765.432101
    assert value(samples, "queue_monitor_waiting_seconds_total") == 309876.54321
    assert value(samples, "queue_checks_started_total") == 34567.0
    # prometheus-cpp's own families are unknown: kept as prom_*, and reported
    assert value(samples, "prom_exposer_scrapes_total") == 4.0
    assert pick(samples, "prom_exposer_scrapes_total")[0]["kind"] == "counter"
    assert value(samples, "prom_exposer_request_latencies", bucket="0.5") == 954.0
    assert "exposer_scrapes" in samples.unknown
    assert from_prometheus((DATA / "metrics-cxx.prom").read_text(), TS, "x", "rust")[0][
        "generation"
    ] == "rust"  # fmt: skip


def test_rust_prometheus_and_histograms() -> None:
    samples = prom("metrics-rust.prom")
    assert {s["generation"] for s in samples} == {"rust"}
    assert value(samples, "step_seconds_total") == 2830859.444
    assert value(samples, "machine_step_seconds_total", machine="hopeful-rivest") == 5.0
    assert value(samples, "s3_put_total", bucket="nix-cache") == 923456.0
    assert value(samples, "jobset_shares", jobset="nixpkgs:trunk") == 100.0  # sic in Rust
    x86 = {"machine_type": "x86_64-linux"}
    assert value(samples, "job_wait_seconds_bucket", bucket="+Inf", **x86) == 8.0
    assert value(samples, "job_wait_seconds_bucket", bucket="60.0", **x86) == 3.0
    assert value(samples, "job_wait_seconds_count", **x86) == 8.0
    assert value(samples, "job_wait_seconds_sum", **x86) == pytest.approx(98268.4)
    buckets = pick(samples, "job_wait_seconds_bucket", **x86)
    assert [s["bucket"] for s in buckets][-2:] == ["86400.0", "+Inf"]
    assert {s["kind"] for s in buckets} == {"counter"}
    assert pick(samples, "build_closure_size_bytes_bucket", bucket="1000000000.0")
    # never-updated store gauges and derived averages are not stored
    assert not {m for m in metrics(samples) if m.startswith(("nar", "prom_")) or "avg" in m}


RENAMED = [
    (
        "hydraqueuerunner_queue_monitor_time_spent_running",
        "hydraqueuerunner_monitor_time_spent_running_total",
        "queue_monitor_running_seconds_total",
    ),
    (
        "hydraqueuerunner_dispatcher_time_spent_waiting",
        "hydraqueuerunner_dispatcher_time_spent_waiting_total",
        "dispatcher_waiting_seconds_total",
    ),
]


@pytest.mark.parametrize(("cxx_name", "rust_name", "ours"), RENAMED)
def test_renamed_families_map_to_one_name(cxx_name: str, rust_name: str, ours: str) -> None:
    cxx = f"# TYPE {cxx_name} counter\n{cxx_name} 2500000\n"
    rust = f"# TYPE {rust_name} counter\n{rust_name} 2500000\n"
    assert [(s["metric"], s["value"]) for s in from_prometheus(cxx, TS, "c")] == [(ours, 2.5)]
    assert [(s["metric"], s["value"]) for s in from_prometheus(rust, TS, "r")] == [(ours, 2.5)]


def test_prometheus_generation_detection() -> None:
    cxx = "hydraqueuerunner_dispatcher_time_spent_running 10\n"
    family = "hydraqueuerunner_steps_total_time_ms"
    rust = f"# TYPE {family} counter\n{family} 3000\n"
    only_shared = "hydraqueuerunner_queue_checks_started_total 3\n"
    assert from_prometheus(cxx, TS, "c")[0]["generation"] == "cxx"
    assert from_prometheus(rust, TS, "r")[0]["generation"] == "rust"
    assert value(from_prometheus(rust, TS, "r"), "step_seconds_total") == 3.0
    assert from_prometheus(only_shared, TS, "s")[0]["generation"] == "cxx"


def test_unknown_prometheus_family_is_kept_and_reported() -> None:
    family = "hydraqueuerunner_brand_new_total"
    text = f'# TYPE {family} counter\n{family}{{hostname="b1",shard="2"}} 7\n'
    samples = from_prometheus(text, TS, "x", "rust")
    assert [(s["metric"], s["value"], s["kind"], s["machine"]) for s in samples] == [
        ("prom_hydraqueuerunner_brand_new_total", 7.0, "counter", "b1")
    ]
    assert samples.unknown == ["hydraqueuerunner_brand_new", "hydraqueuerunner_brand_new{shard}"]


# --------------------------------------------------------------------------------------------
# unknown fields, bad input, journal, documentation


def test_unknown_status_fields_are_ignored_but_counted() -> None:
    doc = copy.deepcopy(load("cxx-2025.json"))
    doc["nrBrandNewThing"] = 5
    doc["machines"][ELATED]["fancyNewCounter"] = 1
    doc["store"]["narWriteBytes"] = "lots"
    samples = from_cxx_status(doc, TS, "x")
    assert samples.unknown == [
        "machines.*.fancyNewCounter", "store.narWriteBytes (not a number)", "nrBrandNewThing",
    ]  # fmt: skip
    assert len(samples) == len(status("cxx-2025.json")) - 1
    rust = copy.deepcopy(load("rust-2026.json"))
    rust["queueRunner"]["brandNew"] = {"x": 1}
    rust["machines"]["elated-minsky"]["stats"]["pressure"]["gpuSome"] = {"avg10": 1.0}
    assert from_rust_status(rust, TS, "r").unknown == [
        "queueRunner.brandNew", "machines.*.stats.pressure.gpuSome",
    ]  # fmt: skip


BAD = [
    ([], "array"),
    ("up", "string"),
    (3, "number"),
    (None, "null"),
    ({}, "neither 'status' nor 'queueRunner'"),
    ({"queue": {}, "machines": {}}, "neither 'status' nor 'queueRunner'"),
]


@pytest.mark.parametrize(("doc", "message"), BAD)
def test_bad_documents_raise_a_one_line_collector_error(doc: Any, message: str) -> None:
    with pytest.raises(CollectorError, match=re.escape(message)) as info:
        detect(doc)
    assert "\n" not in str(info.value)
    with pytest.raises(CollectorError, match=re.escape(message)):
        from_status(doc, TS, "x")
    with pytest.raises(CollectorError):
        from_cxx_status(doc, TS, "x")
    with pytest.raises(CollectorError):
        from_rust_status(doc, TS, "x")


def test_generation_mismatch_and_bad_metrics_text() -> None:
    with pytest.raises(CollectorError, match="Rust"):
        from_cxx_status(load("rust-2026.json"), TS, "x")
    with pytest.raises(CollectorError, match="C\\+\\+"):
        from_rust_status(load("cxx-2025.json"), TS, "x")
    with pytest.raises(CollectorError, match="not Prometheus text") as info:
        from_prometheus("this is { not prometheus\nat all", TS, "scrape")
    assert "\n" not in str(info.value)
    with pytest.raises(CollectorError, match="generation"):
        from_prometheus("", TS, "x", "java")


def test_status_from_journal_lines() -> None:
    lines = (DATA / "journal-status-2018.txt").read_text(encoding="utf-8").splitlines()
    docs = [status_from_journal_line(line) for line in lines]
    found = [d for d in docs if d is not None]
    assert len(found) == 2
    assert found[0] == load("cxx-2018.json")
    assert found[1]["time"] - found[0]["time"] == 300
    later = from_cxx_status(found[1], TS, "journal")
    assert value(later, "steps_done_total") == 9020.0
    assert value(later, "memory_tokens_in_use_bytes") == 134217728.0
    record = json.dumps({"MESSAGE": "status: " + json.dumps(found[0]), "_PID": "1096"})
    assert status_from_journal_line(record) == found[0]
    for other in ("", "status: {", lines[0], '{"MESSAGE": "loading build 1"}', "x: status: [1]"):
        assert status_from_journal_line(other) is None


def test_mapping_table_documents_every_field() -> None:
    table = mapping_table()
    for mapping in (CXX_STATUS_MAPPING, RUST_STATUS_MAPPING, PROM_MAPPING):
        for path, field in mapping.items():
            assert f"| `{path}` | `{field.metric}` |" in table
    for derived in ("avgStepTime", "buildReadTimeAvgMs", "narCompressionSavings", "putSpeed"):
        assert f"`store.{derived}`" in table or f"`{derived}`" in table or derived in table
    assert "| `machines.*.totalStepTime` | `machine_step_seconds_total` | counter | 1 |" in table
    assert "1/1000 (ms -> s)" in table and "1/1000000 (µs -> s)" in table


def test_rust_runner_process_metrics_are_kept() -> None:
    """rust-prometheus's default registry (hydra-queue-runner enables the "process" feature)
    adds the runner's own CPU and memory: v0.14.0 src/process_collector.rs."""
    text = (
        "# HELP hydraqueuerunner_steps_runnable Number of runnable steps\n"
        "# TYPE hydraqueuerunner_steps_runnable gauge\n"
        "hydraqueuerunner_steps_runnable 4\n"
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
        "# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total 12345\n"
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
        "process_resident_memory_bytes 734003200\n"
        "# HELP process_threads Number of OS threads in the process.\n"
        "# TYPE process_threads gauge\n"
        "process_threads 41\n"
    )
    samples = from_prometheus(text, TS, "m")
    assert value(samples, "process_cpu_seconds_total") == 12345.0
    assert value(samples, "process_resident_memory_bytes") == 734003200.0
    assert value(samples, "process_threads") == 41.0
    only_process = text.split("# HELP process_cpu", 1)[1]
    assert from_prometheus("# HELP process_cpu" + only_process, TS, "m")[0]["generation"] == "cxx"
