"""Codec specs and what-if changes: a one-line usage error with the reason, or a spec that
means exactly what its label says; never a traceback (reliability findings D12, D19, D22)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.analyze.whatif import parse_change
from profiler.codecs import CodecSpec, parse_spec
from profiler.codecs.spec import MiB
from profiler.errors import UsageError

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    "text",
    [
        "xz:19:threads=2",
        "xz:10:parallel",
        "xz:-1:threads=2",
        "compression=xz&compression-level=12&parallel-compression=true",
        "compression=xz&compression-level=19&parallel-compression=true&as=nix235",
        "zstd:23:threads=2",
        "zstd:0:frames=1M",
    ],
)
def test_out_of_range_levels_are_refused_before_any_table_lookup(text: str) -> None:
    with pytest.raises(UsageError, match=r"level -?\d+ out of range for (xz|zstd) \(valid: xz 0-9"):
        parse_spec(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zstd:3:frames=-1M", "frames=-1M out of range"),
        ("zstd:3:frames=1", "frames=1 out of range"),
        ("zstd:3:frames=0", "frames=0 out of range"),
        ("zstd:3:frames=63K", "frames=63K out of range"),
        ("zstd:3:frames=5G", "frames=5G out of range"),
        ("xz:6:frames=16M", "frames=SIZE is a zstd option"),
        ("zstd:3:threads=100000", "threads must be at least 1 and at most 256"),
        ("zstd:3:threads=-2", "threads must be at least 1"),
        ("compression=zstd&parallel-compression=maybe", "must be true or false"),
    ],
)
def test_nonsense_options_are_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_spec(text)
    assert message in str(info.value)


def test_distinct_frame_sizes_have_distinct_labels() -> None:
    sizes = ["64K", "512K", "768K", "1M", "1536K", "65537", "2G"]
    labels = [parse_spec(f"zstd:3:frames={s}").label for s in sizes]
    assert len(set(labels)) == len(labels)
    assert labels[:4] == [
        "zstd:3:frames=64K",
        "zstd:3:frames=512K",
        "zstd:3:frames=768K",
        "zstd:3:frames=1M",
    ]
    assert parse_spec("zstd:3:frames=2G").frame_bytes == 2048 * MiB


def _run_parameters(spec: CodecSpec) -> tuple[object, ...]:
    return (spec.method, spec.level, spec.threads, spec.extreme, spec.long_log,
            spec.frame_bytes, spec.block_bytes)  # fmt: skip


def _check(text: str) -> None:
    """A spec parses to what its label parses to (so labels never collide), or is refused."""
    try:
        spec = parse_spec(text)
    except UsageError as exc:
        message = str(exc)
        assert message and "\n" not in message
        return
    again = parse_spec(spec.label)
    assert _run_parameters(again) == _run_parameters(spec), (text, spec.label)
    assert spec.threads >= 1 and (spec.frame_bytes == 0 or spec.frame_bytes >= 64 << 10)


NUMBERS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", "-1", "0", "1", "nan", "inf", "1e3", "-0", "+3", "1_0", "٣", " 5"]),
)
SIZES = st.builds(
    lambda n, unit: f"{n}{unit}",
    NUMBERS,
    st.sampled_from(["", "K", "M", "G", "k", "m", "T"]),
)
OPTIONS = st.one_of(
    st.sampled_from(["parallel", "extreme", "long", "frames", "as=nix235", "as=rust",
                     "as=rust-presigned", "as=lix"]),
    st.builds("threads={}".format, NUMBERS),
    st.builds("long={}".format, NUMBERS),
    st.builds("frames={}".format, SIZES),
)  # fmt: skip
METHODS = st.sampled_from(["xz", "zstd", "zst", "br", "gzip", "bzip2", "bz2", "none", "lz4", ""])
SHORT = st.builds(
    lambda m, level, opts: ":".join([m, *([level] if level is not None else []), *opts]),
    METHODS,
    st.none() | NUMBERS | st.builds("{}e".format, NUMBERS),
    st.lists(OPTIONS, max_size=4),
)
QUERY = st.builds(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs),
    st.lists(
        st.tuples(
            st.sampled_from(["compression", "compression-level", "parallel-compression", "as",
                             "write-nar-listing", "bogus"]),
            st.one_of(METHODS, NUMBERS, st.sampled_from(["true", "false", "yes", "1", "maybe"])),
        ),
        min_size=1,
        max_size=4,
    ),
)  # fmt: skip


@FUZZ
@given(st.one_of(SHORT, QUERY, st.text(max_size=40)))
def test_fuzzed_codec_specs_are_a_usage_error_or_exact(text: str) -> None:
    _check(text)


WHATIF_VALUES = st.one_of(
    NUMBERS,
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-1e-9", "0.0", "+0", "-0", "0x10"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.builds(lambda n, u: f"{n}{u}", NUMBERS, st.sampled_from(["MB/s", "Gbit/s", "Mbit", "B",
                                                                "GiB", "bps", "furlongs"])),
    st.builds(lambda s, n: f"{s}{n}", st.sampled_from(["+", "-", ""]), NUMBERS),
    SHORT,
)  # fmt: skip


@FUZZ
@given(st.sampled_from(["codec", "compress", "workers", "machines", "upload", "bogus"]),
       WHATIF_VALUES)  # fmt: skip
def test_fuzzed_whatifs_are_a_usage_error_or_a_runnable_change(key: str, value: str) -> None:
    try:
        change = parse_change(f"{key}={value}")
    except UsageError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert "\n" not in message and message.startswith("--whatif ")
        return
    if change.kind == "compress":
        assert math.isfinite(change.value) and 0 <= change.value <= 100
    elif change.kind == "workers":
        assert isinstance(change.value, int) and change.value >= 1
    elif change.kind == "machines":
        sign, n = change.value
        assert sign in ("+", "-", "") and 1 <= n <= 10_000
    elif change.kind == "upload":
        assert math.isfinite(change.value) and change.value > 0
    else:
        assert change.kind == "codec" and parse_spec(change.value).label == change.value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("workers=0", "local worker slots must be from 1"),
        ("workers=-3", "needs a whole number"),
        ("workers=2.5", "needs a whole number"),
        ("upload=0", "positive, finite rate"),
        ("upload=0MB/s", "positive, finite rate"),
        ("upload=1e400", "positive, finite rate"),
        ("upload=-5MB/s", "positive, finite rate"),
        ("compress=inf", "from 0 to 100"),
        ("compress=nan", "from 0 to 100"),
        ("compress=-1", "from 0 to 100"),
        ("machines=+0", "adds or removes no machine"),
        ("machines=-0", "adds or removes no machine"),
        ("machines=0", "would leave no machines"),
        ("machines=+100000", "at most 10,000 machines"),
        ("codec=xz:19:threads=2", "level 19 out of range for xz"),
    ],
)
def test_whatif_values_the_simulator_cannot_run_are_usage_errors(text: str, reason: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_change(text)
    assert reason in str(info.value) and str(info.value).startswith(f"--whatif {text!r}")


def test_good_whatifs_still_parse() -> None:
    assert parse_change("workers=8").value == 8
    assert parse_change("machines=+2").value == ("+", 2)
    assert parse_change("machines=4").value == ("", 4)
    assert parse_change("compress=0").value == 0.0
    assert parse_change("upload=1Gbit/s").value == 125e6
    assert parse_change("codec=compression=zstd&compression-level=19").value == "zstd:19"
