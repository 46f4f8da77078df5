"""Codec and upload mode from evidence, each with its source (analyze/evidence.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from profiler.analyze.evidence import choose_codec
from profiler.codecs import parse_spec

NAR = "s3://nix-cache/nar/1b9p07z77phvv2hf6gm9f28syp39f1ag1vbhhh1gyb2b7a9b8bxk"


def logs(*rows: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def test_nothing_in_the_run_falls_back_to_xz_for_both_generations_and_says_so() -> None:
    for generation in ("cxx", "rust"):
        choice = choose_codec(None, generation)
        assert choice.spec == "xz:6"
        assert choice.source.startswith("assumed")
        assert "hydra" in choice.source or "nix" in choice.source.lower()


def test_nar_object_names_in_the_journal_give_the_method() -> None:
    rows = [
        {"event": "s3_upload", "url": f"{NAR}.nar.zst"},
        {"event": "s3_upload", "url": f"{NAR}.nar.zst"},
        {"event": "s3_upload", "url": "s3://nix-cache/1b9p07z77phvv2hf6gm9f28syp39f1ag.narinfo"},
        {"event": "s3_upload", "url": "s3://nix-cache/log/abc-hello.drv"},
    ]
    choice = choose_codec(logs(*rows), "cxx")
    assert choice.spec == "zstd:3"
    assert "journal" in choice.source and ".zst" in choice.source
    assert choice.methods_seen == {"zstd": 2}


def test_the_operators_codec_wins_and_a_contradiction_is_noted() -> None:
    rows = [{"event": "s3_upload", "url": f"{NAR}.nar.xz"}]
    choice = choose_codec(logs(*rows), "cxx", "zstd:19")
    assert choice.spec == "zstd:19"
    assert "operator" in choice.source
    assert any("journal" in n and "xz" in n for n in choice.notes)


def test_presigned_mode_from_the_builders_lines_maps_the_level() -> None:
    rows: list[dict[str, Any]] = [
        {"event": "upload_started", "mode": "presigned"},
        {"event": "upload_finished", "mode": "presigned", "elapsed": 3.0},
        {"event": "upload_finished", "mode": "direct", "elapsed": 1.0},
    ]
    choice = choose_codec(logs(*rows), "rust", "compression=zstd&compression-level=19")
    assert choice.mode == "presigned"
    assert "2 presigned" in choice.mode_source and "1 direct" in choice.mode_source
    spec = parse_spec(choice.spec)
    assert (spec.method, spec.level, spec.writer) == ("zstd", 3, "rust-presigned")
    assert any("presigned.rs" in n for n in choice.notes)
    # direct mode: the runner compresses with the configured level
    direct = choose_codec(logs({"event": "upload_started", "mode": "direct"}), "rust", "zstd:19")
    assert direct.mode == "direct" and parse_spec(direct.spec).level == 19


def test_narinfos_of_the_cache_beat_the_journal(tmp_path: Path) -> None:
    h = "0" * 52
    for i, method in enumerate(["zstd", "zstd", "xz"]):
        (tmp_path / f"{i:032d}.narinfo").write_text(
            f"StorePath: /nix/store/{i:032d}-x\nURL: nar/{i}.nar.{method}\n"
            f"Compression: {method}\nNarHash: sha256:{h}\nNarSize: 10\n"
        )
    rows = [{"event": "s3_upload", "url": f"{NAR}.nar.xz"}]
    choice = choose_codec(logs(*rows), "cxx", None, str(tmp_path))
    assert choice.spec == "zstd:3"
    assert "narinfo Compression:" in choice.source and "2 of 3" in choice.source
