"""Nix's NAR compression methods behind one small interface, run the way Nix and Hydra run them.

- :mod:`~profiler.codecs.spec`: what a codec spec means (``xz:6``, ``zstd:19:long=27``, a
  store-URI query string; whose writer semantics apply). :func:`parse_spec` gives a
  :class:`CodecSpec`.
- :mod:`~profiler.codecs.run`: :func:`make_codec` turns a spec into a :class:`Codec` that
  compresses and decompresses whole buffers over the real libraries.
- :mod:`~profiler.codecs.streams`: reading compressed files, by method name
  (:func:`open_decompressed`) or by magic bytes (:func:`sniff`, :func:`open_text`), with one
  policy for truncated or corrupt input.
"""

from __future__ import annotations

from profiler.codecs.run import Codec, make_codec
from profiler.codecs.spec import CodecSpec, parse_spec
from profiler.codecs.streams import (
    Guarded,
    TruncatedInput,
    decode_errors,
    open_decompressed,
    open_sniffed,
    open_text,
    sniff,
)

__all__ = [
    "Codec",
    "CodecSpec",
    "Guarded",
    "TruncatedInput",
    "decode_errors",
    "make_codec",
    "open_decompressed",
    "open_sniffed",
    "open_text",
    "parse_spec",
    "sniff",
]
