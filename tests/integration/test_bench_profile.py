"""``bench --profile``: py-spy really samples the workers, and the time is in the codec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from profiler.bench.profile import shares
from tests.conftest import require_tool


def test_profile_shows_time_in_the_codec(tmp_path: Path) -> None:
    require_tool("py-spy", "py-spy (PyPI)")
    payload = tmp_path / "p"
    payload.mkdir()
    words = b" ".join(os.urandom(3).hex().encode() for _ in range(400_000))
    (payload / "text").write_bytes(words)  # ~2.8 MB that xz-6 needs a few seconds for
    out = tmp_path / "res"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "profiler",
            "bench",
            str(payload),
            "--codec",
            "xz:6",
            "--repeat",
            "1",
            "--min-time",
            "0",
            "--out",
            str(out),
            "--profile",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    profile = out / "profile.speedscope.json"
    doc = json.loads(profile.read_text())
    assert doc["profiles"] and doc["shared"]["frames"]
    s = shares(str(profile))
    assert s["codec"] > 0.5, s
    assert s["codec"] > 10 * s["profiler"], s
    assert "in codec libraries" in done.stderr
    assert (out / "results.parquet").exists()


def test_shares_classify_worker_stacks(tmp_path: Path) -> None:
    frames = [
        {"name": 'process 1:"python -m profiler bench"'},
        {"name": 'process 2:"python -m profiler.bench.worker"'},
        {"name": "lzma_code"},
        {"name": "measure", "file": "/x/profiler/bench/worker.py"},
        {"name": "_find_and_load"},
    ]
    doc = {
        "shared": {"frames": frames},
        "profiles": [
            {
                "samples": [[0, 1, 3, 2], [0, 1, 3, 2], [0, 1, 3], [0, 1, 4], [0, 4]],
                "weights": [1, 1, 1, 1, 5],
            }
        ],
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    assert shares(str(path)) == {"codec": 0.5, "profiler": 0.25, "other": 0.25}
