"""A test that needs a missing tool skips on a laptop but fails under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
from tests.conftest import require_tool

def test_needs_a_tool_nobody_has():
    require_tool("no-such-tool-xyzzy", "no-such-package")
"""


@pytest.mark.parametrize(("ci", "outcome"), [("", "1 skipped"), ("true", "1 failed")])
def test_missing_resource_skips_or_fails(tmp_path: Path, ci: str, outcome: str) -> None:
    root = Path(__file__).resolve().parents[2]
    probe = root / "tests" / f"test_probe_{os.getpid()}_{ci or 'dev'}.py"
    probe.write_text(PROBE)
    try:
        env = {**os.environ, "CI": ci}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
            capture_output=True,
            text=True,
            cwd=root,
            env=env,
            timeout=120,
        )
    finally:
        probe.unlink()
    assert outcome in done.stdout, done.stdout
    assert "no-such-tool-xyzzy not installed" in done.stdout or ci == ""
