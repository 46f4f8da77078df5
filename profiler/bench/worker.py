"""The measuring process: one (payload, codec) cell per process, so cells cannot disturb
each other (heap growth, freed-but-resident memory, thread pools).

Run as ``python -m profiler.bench.worker`` with a JSON request on stdin; it prints one JSON
object on stdout. Two jobs:

``measure``
    Load the NAR into memory, compress once (warm-up), decompress and check the result
    against the NAR's sha256 (a mismatch is an error, never a number), then time both
    directions until ``min_runs`` and ``min_time_seconds`` are met. Writes the compressed
    blob to ``blob_path`` for the memory probe.
``peak``
    In a fresh process, load the input and measure the peak working memory of a streaming
    compress or decompress (see :mod:`profiler.bench.memory`).
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
from dataclasses import asdict
from typing import Any

from profiler.bench import memory, timing
from profiler.codecs import make_codec, parse_spec


def measure(req: dict[str, Any]) -> dict[str, Any]:
    with open(req["nar_path"], "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != req["nar_sha256"]:
        return {"error": "NAR changed on disk before measuring"}
    codec = make_codec(parse_spec(req["spec"]))
    first_c, blob = timing.time_once(lambda: codec.compress(data))
    assert isinstance(blob, bytes)
    first_d, back = timing.time_once(lambda: codec.decompress(blob))
    if not isinstance(back, bytes) or hashlib.sha256(back).hexdigest() != req["nar_sha256"]:
        return {
            "error": f"round trip failed: {codec.spec.label} output does not decompress to "
            "the NAR (hash mismatch); no figures recorded"
        }
    del back
    gc.collect()
    with open(req["blob_path"], "wb") as f:
        f.write(blob)
    runs, min_time = int(req["min_runs"]), float(req["min_time_seconds"])
    comp = timing.repeat(lambda: codec.compress(data), first_c, runs, min_time)
    decomp = timing.repeat(lambda: codec.decompress(blob), first_d, runs, min_time)
    return {
        "compressed_bytes": len(blob),
        "compress": [asdict(s) for s in comp],
        "decompress": [asdict(s) for s in decomp],
    }


def peak(req: dict[str, Any]) -> dict[str, Any]:
    with open(req["input_path"], "rb") as f:
        data = f.read()
    codec = make_codec(parse_spec(req["spec"]))
    run = memory.stream_compress if req["phase"] == "compress" else memory.stream_decompress
    gc.collect()
    return {"peak_bytes": memory.peak_bytes(lambda: run(codec, data))}


def main() -> int:
    req = json.load(sys.stdin)
    try:
        result = measure(req) if req["job"] == "measure" else peak(req)
    except Exception as exc:  # reported to the harness as a failed cell, with its reason
        result = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
