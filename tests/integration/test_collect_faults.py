"""Every HTTP collector against every misbehaving server (tests/faultserver.py).

``collect status --url`` and ``collect metrics --url`` run as processes against each
behaviour of the fault server: a valid answer first, then the fault for every later request.
Each runs twice, once stopped by ``--duration`` and once by SIGTERM sent while the fault is
being served. Whatever the server does: no traceback, exit code 0 (a sample was taken), one
line per message, an ``error`` or ``gap`` event naming the failure, the first sample whole,
the end within 2 s of ``--duration`` (counted from the first request) and within 1.5 s of
SIGTERM.

The runs go in parallel, once per module; each parametrised test checks one of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faultserver import BEHAVIOURS, Case, Outcome, all_cases, run_matrix

CASES = list(all_cases())
DURATION = 2.0
TIMEOUT = 0.8
# what the events of each fault must say (any of these), besides naming the URL
EXPECTED: dict[str, tuple[str, ...]] = {
    "broken-chunking": ("bad HTTP answer: IncompleteRead",),
    "bad-status-line": ("bad HTTP answer: BadStatusLine: HELLO WORLD",),
    "no-status-line": ("bad HTTP answer: BadStatusLine",),
    "empty-reply": ("connection closed without a response",),
    "bad-content-length": ("invalid Content-Length 'abc'",),
    "negative-content-length": ("invalid Content-Length '-5'",),
    "huge-content-length": ("body larger than 67108864 bytes (Content-Length 1",),
    "many-headers": ("got more than 100 headers",),
    "long-header": ("LineTooLong",),
    "bad-chunk-size": ("bad HTTP answer",),
    "drip-headers": ("cut short",),
    "drip-body": ("cut short",),
    "hang-after-accept": ("cut short",),
    "hang-after-headers": ("cut short",),
    "reset-mid-body": ("Connection reset by peer", "truncated body"),
    "truncated-body": ("truncated body",),
    # the 64 MiB cap, or the deadline on a busy machine
    "huge-body": ("body larger than 67108864 bytes", "cut short", "timed out"),
    "redirect-loop": ("more than 5 redirects",),
    "401": ("HTTP 401 Unauthorized (credentials missing or wrong",),
    "500": ("HTTP 500 Internal Server Error",),
    "503": ("HTTP 503 Service Unavailable",),
    "non-json": ("not JSON", "not Prometheus text"),
}
SLOW = ("drip-headers", "drip-body", "hang-after-accept", "hang-after-headers")


def test_every_behaviour_has_an_expectation() -> None:
    assert set(EXPECTED) | {"valid"} == set(BEHAVIOURS)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    out = tmp_path_factory.mktemp("faults")
    runs = run_matrix(CASES, out, parallel=12, duration=DURATION, timeout=TIMEOUT)
    return {o.case.name: o for o in runs}


def _first_sample_is_whole(o: Outcome) -> None:
    samples = o.table("samples")
    first = samples[samples["ts"] == samples["ts"].min()]
    values = dict(zip(first["metric"], first["value"], strict=False))
    if o.case.kind == "status":  # status_document(0) of tests/faultserver.py, all of it
        assert values == {
            "up": 1.0,
            "status_time_seconds": values["status_time_seconds"],
            "uptime_seconds": 1000.0,
            "process_id": 4242.0,
            "steps_done_total": 0.0,
            "builds_queued": 3.0,
            "machine_enabled": 1.0,
            "machine_current_jobs": 1.0,
            "machine_steps_done_total": 0.0,
        }
    else:
        assert values == {"steps_done_total": 0.0, "uptime_seconds": 1000.0}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_collector_survives_the_fault(outcomes: dict[str, Outcome], case: Case) -> None:
    o = outcomes[case.name]
    assert o.returncode is not None, f"still running {o.seconds:.1f} s after the stop:\n{o.stderr}"
    assert not o.traceback, o.stderr
    assert "internal error" not in o.stderr, o.stderr
    assert o.returncode == 0, o.stderr  # the first sample was taken
    for line in o.stderr.splitlines():
        assert line.startswith("collect"), o.stderr
    _first_sample_is_whole(o)
    events = o.table("events")
    if case.behaviour == "valid":
        assert "error" not in set(events.get("event", [])), o.stderr
    else:
        failures = events[events["event"].isin(["error", "gap"])]["detail"].tolist()
        said = failures + o.stderr.splitlines()
        assert any(any(text in line for text in EXPECTED[case.behaviour]) for line in said), (
            f"{EXPECTED[case.behaviour]} not in {said}"
        )
        assert any("/queue-runner-status" in d or "/metrics" in d for d in failures), failures
    if case.mode == "duration":  # counted from the first request: start-up aside
        assert o.late is not None and o.late <= 2.0, o.stderr
        if case.behaviour in SLOW:  # cut at the request's own deadline first
            assert f"timed out after {TIMEOUT:g} s" in o.stderr, o.stderr
    else:
        assert o.seconds <= 1.5, o.stderr


def test_the_matrix_ran_against_the_faults(outcomes: dict[str, Outcome]) -> None:
    # every route saw its valid request and at least one faulty one
    for o in outcomes.values():
        assert o.requests >= 2, o.case.name
    assert {o.run_dir.parent for o in outcomes.values()} == {
        next(iter(outcomes.values())).run_dir.parent
    }
    assert all(isinstance(o.run_dir, Path) for o in outcomes.values())
