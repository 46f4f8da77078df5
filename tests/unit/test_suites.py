"""The suite definitions in benchmarks/suites are valid and shipped with the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler.bench.suites import SUITES_DIR, load_suite
from profiler.codecs import parse_spec
from profiler.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["quick", "hydra", "full"])
def test_suite_parses_and_every_codec_is_valid(name: str) -> None:
    suite = load_suite(name)
    labels = [parse_spec(c).label for c in suite["codecs"]]
    assert labels and suite["payloads"]
    assert suite["min_runs"] >= 1
    assert len(set(labels)) == len(labels)  # the harness would measure a repeat only once


def test_benchmarks_dir_holds_the_packaged_suites() -> None:
    assert (ROOT / "benchmarks" / "suites").resolve() == Path(SUITES_DIR).resolve()


def test_hydra_suite_covers_what_hydra_ran() -> None:
    labels = {parse_spec(c).label for c in load_suite("hydra")["codecs"]}
    assert {"xz:6", "zstd:19", "zstd:3", "zstd:19:long=27", "xz:5:threads=4"} <= labels


def test_unknown_suite_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="known: full, hydra, quick"):
        load_suite("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('payloads = ["default"]\n')
    with pytest.raises(UsageError, match="non-empty list 'codecs'"):
        load_suite(str(bad))
