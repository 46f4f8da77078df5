"""Hash values as Nix writes and reads them (``sha256:<nix32>``, base16, base64, SRI)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from profiler.nar import base32

DIGEST_BYTES = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}


@dataclass(frozen=True)
class Hash:
    """A digest with its algorithm; ``str()`` gives Nix's ``sha256:<nix32>`` form."""

    algo: str
    digest: bytes

    @property
    def nix32(self) -> str:
        return base32.encode(self.digest)

    @property
    def hex(self) -> str:
        return self.digest.hex()

    def __str__(self) -> str:
        return f"{self.algo}:{self.nix32}"


def parse_hash(text: str) -> Hash:
    """Parse ``algo:<nix32|base16|base64>`` or SRI ``algo-<base64>``, as Nix's narinfo parser does.

    Raises ``ValueError`` with the offending text on anything else.
    """
    text = text.strip()
    sri = False
    if ":" in text:
        algo, _, body = text.partition(":")
    elif "-" in text:
        algo, _, body = text.partition("-")
        sri = True
    else:
        raise ValueError(f"hash {text!r} has no 'algo:' or SRI 'algo-' prefix")
    size = DIGEST_BYTES.get(algo)
    if size is None:
        raise ValueError(f"unknown hash algorithm {algo!r} in {text!r}")
    return Hash(algo, _decode_body(body, size, sri, text))


def _decode_body(body: str, size: int, sri: bool, text: str) -> bytes:
    try:
        if not sri and len(body) == 2 * size:
            return bytes.fromhex(body)
        if not sri and len(body) == base32.encoded_length(size):
            return base32.decode(body, size)
        digest = base64.b64decode(body, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"malformed hash {text!r}: {exc}") from None
    if len(digest) != size:
        raise ValueError(f"hash {text!r} has {len(digest)} bytes, expected {size}")
    return digest
