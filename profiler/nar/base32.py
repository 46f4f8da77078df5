"""Nix's base-32 ("nix32") encoding of hash digests.

Not RFC 4648: the alphabet drops ``e o t u``, and the digest is read as one little-endian
integer whose 5-bit groups are emitted from the most significant down (see
``reference/nar-and-compression.md`` §2.3). 32 bytes encode to 52 characters.
"""

from __future__ import annotations

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}


def encoded_length(n_bytes: int) -> int:
    """Length of the nix32 text for a digest of ``n_bytes`` bytes: ``ceil(8n / 5)``."""
    return (n_bytes * 8 + 4) // 5


def encode(digest: bytes) -> str:
    """Encode ``digest`` the way ``nix-hash --to-base32`` does."""
    value = int.from_bytes(digest, "little")
    n = encoded_length(len(digest))
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in range(n - 1, -1, -1))


def decode(text: str, n_bytes: int | None = None) -> bytes:
    """Decode nix32 ``text``; raise ``ValueError`` naming the first bad character.

    ``n_bytes`` defaults to the digest size implied by the length (52 chars -> 32 bytes).
    Bits beyond the digest size must be zero, as Nix requires.
    """
    if n_bytes is None:
        n_bytes = len(text) * 5 // 8
    if encoded_length(n_bytes) != len(text):
        raise ValueError(f"nix32 text of {len(text)} characters cannot hold {n_bytes} bytes")
    value = 0
    for pos, char in enumerate(text):
        digit = _INDEX.get(char)
        if digit is None:
            raise ValueError(f"invalid nix32 character {char!r} at position {pos} in {text!r}")
        value = (value << 5) | digit
    if value >> (8 * n_bytes):
        raise ValueError(f"nix32 text {text!r} has non-zero bits beyond {n_bytes} bytes")
    return value.to_bytes(n_bytes, "little")
