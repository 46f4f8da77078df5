"""Nix's NAR compression methods behind one small interface, run the way Nix and Hydra run them.

- :mod:`~profiler.codecs.spec`: what a codec spec means (``xz:6``, ``zstd:19:long=27``, a
  store-URI query string; whose writer semantics apply). :func:`parse_spec` gives a
  :class:`CodecSpec`.
- :mod:`~profiler.codecs.run`: :func:`make_codec` turns a spec into a :class:`Codec` that
  compresses and decompresses whole buffers over the real libraries.
"""

from __future__ import annotations

from profiler.codecs.run import Codec, make_codec
from profiler.codecs.spec import CodecSpec, parse_spec

__all__ = ["Codec", "CodecSpec", "make_codec", "parse_spec"]
