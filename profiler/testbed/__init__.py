"""The testbed: a local emulator of a Hydra queue runner (C++ or Rust generation).

It does real work (real NARs, real compression, a real ``file://`` binary cache, real
loopback transfers, optional real PostgreSQL rows) and speaks Hydra's interfaces (status
JSON, Prometheus metrics, journal lines), while recording the true phase times in
``truth.json``. It is an emulator for testing and teaching, never Hydra itself.
"""
