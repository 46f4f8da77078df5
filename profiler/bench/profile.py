"""``bench --profile``: run the bench under py-spy and say where the time went.

py-spy samples the harness and its worker processes with native frames into a speedscope
file (open it at speedscope.app or in any speedscope viewer). The summary counts the
samples whose stack is inside a codec library (liblzma, libzstd, libbrotli, zlib, libbz2)
against those in our own Python code, which is how to check that the measured time is the
codec's and not the harness's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

from profiler.errors import BenchmarkError, ToolMissing

CODEC_FRAME = re.compile(
    r"lzma_|lz_encoder|ZSTD_|HUF_|FSE_|Brotli|deflate|inflate|BZ2_|"
    r"bz2|longest_match|_tr_|crc64|crc32|sha256",
    re.IGNORECASE,
)
SPEEDSCOPE = "profile.speedscope.json"


def run_profiled(argv: list[str], out: str) -> int:
    """Re-run ``hydra-profiler`` with ``argv`` (less ``--profile``) under py-spy."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise ToolMissing("--profile needs py-spy (pip install py-spy)")
    args = [a for a in argv if a != "--profile"]
    if "--out" not in args and not any(a.startswith("--out=") for a in args):
        args += ["--out", out]
    os.makedirs(out, exist_ok=True)
    target = os.path.join(out, SPEEDSCOPE)
    cmd = [
        py_spy,
        "record",
        "--native",
        "--subprocesses",
        "--rate",
        "97",
        "--format",
        "speedscope",
        "--output",
        target,
        "--",
        sys.executable,
        "-m",
        "profiler",
        *args,
    ]
    print(f"profiling with py-spy -> {target}", file=sys.stderr, flush=True)
    code = subprocess.call(cmd)
    if not os.path.exists(target):
        raise BenchmarkError(
            f"py-spy wrote no profile (exit code {code}); it needs ptrace "
            "permission (root, or kernel.yama.ptrace_scope=0)"
        )
    print(summarise(target), file=sys.stderr)
    return code


def shares(path: str) -> dict[str, float]:
    """Shares of the measuring workers' samples: in codec native code, in profiler/ Python
    code, and elsewhere (interpreter start, loading the NAR). The parent process only
    orchestrates (imports, plots) outside any timed region and is left out."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    frames = doc["shared"]["frames"]
    is_codec = [bool(CODEC_FRAME.search(fr.get("name", ""))) for fr in frames]
    is_ours = ["/profiler/" in (fr.get("file") or "") for fr in frames]
    is_worker = ["profiler.bench.worker" in fr.get("name", "") for fr in frames]
    counts = {"codec": 0.0, "profiler": 0.0, "other": 0.0}
    for prof in doc["profiles"]:
        weights = prof.get("weights") or [1] * len(prof["samples"])
        for stack, w in zip(prof["samples"], weights, strict=True):
            if not any(is_worker[i] for i in stack[:2]):
                continue
            if any(is_codec[i] for i in stack):
                counts["codec"] += w
            elif is_ours[stack[-1]]:
                counts["profiler"] += w
            else:
                counts["other"] += w
    total = sum(counts.values()) or 1.0
    return {k: v / total for k, v in counts.items()}


def summarise(path: str) -> str:
    s = shares(path)
    return (
        f"py-spy: of the measuring workers' samples, {s['codec']:.1%} are in codec "
        f"libraries, {s['profiler']:.1%} in hydra-profiler's own Python code and "
        f"{s['other']:.1%} elsewhere (interpreter start, loading the NAR); open {path} "
        "in speedscope"
    )
