"""The pinned sources every Hydra fact in this package was read from.

A fact cites ``Source(repo, commit, path, line)``; the commits are the ones named here, so a
reader can open exactly the lines the code relies on (``git show COMMIT:PATH``).
"""

from __future__ import annotations

from dataclasses import dataclass

HYDRA = "NixOS/hydra"
# the Rust queue runner and builder (master, 2026-08-21)
HYDRA_RUST = "14332fbf55470184984bf76488960741510971d0"
# the last C++ queue runner: first parent of the queue-runner-v2 merge d92a6b69 (2026-03-17)
HYDRA_CXX = "a40d42862da88cce78a27dd594e1484a034aac4d"
NIX = "NixOS/nix"
TRACING = "tokio-rs/tracing"
# tracing-subscriber 0.3.23, the version in Hydra's Cargo.lock at HYDRA_RUST
TRACING_SUBSCRIBER = "54ede4d5d85a536aed5485c5213011d9ec961935"
HARMONIA = "nix-community/harmonia"
# the harmonia commit Hydra's Cargo.lock pins at HYDRA_RUST
HARMONIA_PIN = "b438172545da3af37998d0995b6440f1412ae14d"
RUST_PROMETHEUS = "tikv/rust-prometheus"
SYSTEMD = "systemd/systemd"


@dataclass(frozen=True)
class Source:
    """Where a fact was read: repository, commit, file and line."""

    repo: str
    commit: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.repo}@{self.commit[:10]}:{self.path}:{self.line}"


def rust(path: str, line: int) -> Source:
    """A line of the Rust queue runner or builder (``subprojects/`` prefix omitted)."""
    return Source(HYDRA, HYDRA_RUST, f"subprojects/{path}", line)


def cxx(path: str, line: int, commit: str = HYDRA_CXX) -> Source:
    """A line of the C++ queue runner (``subprojects/hydra/hydra-queue-runner/`` at the last
    commit; give ``commit`` and the full path for older eras, when it lived in ``src/``)."""
    full = path if "/" in path else f"subprojects/hydra/hydra-queue-runner/{path}"
    return Source(HYDRA, commit, full, line)
