"""payloads.resolve.method_for_path: the one walk of the NAR file suffix table."""

from __future__ import annotations

import pytest

from profiler.errors import PayloadError
from profiler.payloads.resolve import method_for_path, nar_file


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("cache/nar/0abc.nar", "none"),
        ("cache/nar/0abc.nar.xz", "xz"),
        ("x.nar.zst", "zstd"),
        ("x.nar.bz2", "bzip2"),
        ("x.nar.br", "br"),
        ("x.nar.gz", "gzip"),
        ("x.nar.lz", None),
        ("x.xz", None),
        ("-", None),
    ],
)
def test_method_for_path(path: str, method: str | None) -> None:
    assert method_for_path(path) == method


def test_nar_file_takes_its_name_and_method_from_the_same_suffix() -> None:
    p = nar_file("/c/nar/0abc.nar.xz")
    assert (p.name, p.compression, p.path, p.klass) == (
        "0abc",
        "xz",
        "/c/nar/0abc.nar.xz",
        "nar-file",
    )
    assert nar_file("/c/.nar").name == ".nar"  # nothing before the suffix: the whole name
    with pytest.raises(PayloadError, match=r"x\.xz: not a NAR file \(expected one of \.nar, "):
        nar_file("x.xz")
