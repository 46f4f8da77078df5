from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiler.nar import base32
from profiler.nar.hashes import Hash, parse_hash

# reference §1.6: the worked example's NAR hash in hex and in nix32
HEX = "ad218977882c1cdadf9cc80a62742da3c7734b24b250ee213322c87ad5b585f5"
NIX32 = "1xc5npapmj126chywl5j4i5p7ix35ms642n8kkgxl71ci1vqj8dd"
SRI = "sha256-rSGJd4gsHNrfnMgKYnQto8dzSySyUO4hMyLIetW1hfU="


def test_encode_matches_reference_vector() -> None:
    assert base32.encode(bytes.fromhex(HEX)) == NIX32


@pytest.mark.parametrize(("n_bytes", "chars"), [(16, 26), (20, 32), (32, 52), (64, 103)])
def test_encoded_length(n_bytes: int, chars: int) -> None:
    assert base32.encoded_length(n_bytes) == chars
    assert len(base32.encode(bytes(n_bytes))) == chars


@given(st.binary(min_size=1, max_size=64))
def test_roundtrip(data: bytes) -> None:
    assert base32.decode(base32.encode(data), len(data)) == data


def test_decode_rejects_letters_outside_alphabet() -> None:
    bad = NIX32[:10] + "e" + NIX32[11:]
    with pytest.raises(ValueError, match="invalid nix32 character 'e' at position 10"):
        base32.decode(bad)


def test_decode_rejects_bits_beyond_digest() -> None:
    # the first character carries only 1 bit of a 32-byte digest: 'z' sets more
    with pytest.raises(ValueError, match="non-zero bits"):
        base32.decode("z" + NIX32[1:])


@pytest.mark.parametrize(
    "text",
    [
        f"sha256:{NIX32}",
        f"sha256:{HEX}",
        SRI,
        "sha256:rSGJd4gsHNrfnMgKYnQto8dzSySyUO4hMyLIetW1hfU=",
    ],
)
def test_parse_hash_accepts_every_nix_form(text: str) -> None:
    h = parse_hash(text)
    assert h == Hash("sha256", bytes.fromhex(HEX))
    assert str(h) == f"sha256:{NIX32}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("md4:abc", "unknown hash algorithm"),
        ("sha256:xyz", "malformed hash"),
        (NIX32, "no 'algo:'"),
        ("sha1:" + hashlib.sha256().hexdigest(), "malformed hash|expected 20"),
    ],
)
def test_parse_hash_rejects_with_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_hash(text)
