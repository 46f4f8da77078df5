"""The classification policy and rules on stacks as perf prints them (frames root to leaf;
many captured from the integration tests' runs on Debian 12)."""

from __future__ import annotations

import re

import pytest

from profiler.collect.cpu.classify import Frame, classify, frame_class
from profiler.collect.cpu.rules import CLASSES, RULES

K = "[kernel.kallsyms]"
LZMA = "/usr/lib/x86_64-linux-gnu/liblzma.so.5.4.1"
CRYPTO = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"
SSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
NIXUTIL = "/usr/lib/nix/libnixutil.so"
ZSTD_PY = "/site-packages/zstandard/backend_c.cpython-311-x86_64-linux-gnu.so"
PY = "/root/.pyenv/versions/3.11.7/bin/python3.11"
RUNNER = "/nix/store/x-hydra-queue-runner/bin/hydra-queue-runner"


def stack(*frames: tuple[str | None, str]) -> tuple[Frame, ...]:
    return tuple(Frame(s, d) for s, d in frames)


PAGE_FAULT = ((("asm_exc_page_fault", K)), ("exc_page_fault", K), ("do_anonymous_page", K))


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        # a stripped library: the file decides
        (stack((None, LZMA)), "compression"),
        # a page fault inside liblzma is compression (the domain frame is innermost)
        (stack((None, LZMA), *PAGE_FAULT), "compression"),
        # CPython's _lzma tells the direction of a stripped liblzma (DWARF stacks)
        (stack(("_lzma_LZMADecompressor_decompress_impl", "/_lzma.cpython-311.so"),
               ("decompress_buf", "/_lzma.cpython-311.so"), ("lzma_code", LZMA), (None, LZMA)),
         "decompression"),
        (stack(("_lzma_LZMACompressor_compress_impl", "/_lzma.cpython-311.so"),
               ("compress", "/_lzma.cpython-311.so"), ("lzma_code", LZMA), (None, LZMA)),
         "compression"),
        # a helper both directions share yields to the direction further out
        (stack(("ZSTD_decompressFrame", ZSTD_PY), ("ZSTD_execSequence", ZSTD_PY),
               ("ZSTD_wildcopy", ZSTD_PY)), "decompression"),
        (stack(("ZSTD_compressBlock_lazy2_row", ZSTD_PY), ("ZSTD_count", ZSTD_PY)), "compression"),
        (stack(("ZSTD_wildcopy", ZSTD_PY),), "compression"),  # alone: a writer's default
        # libcrypto: hashing alone, network under libssl (weak, outermost decides)
        (stack((None, CRYPTO)), "hashing"),
        (stack(("SSL_write", SSL), (None, CRYPTO)), "network"),
        (stack((None, SSL), (None, CRYPTO)), "network"),
        (stack(("sha256_block_data_order_avx2", CRYPTO),), "hashing"),
        # Nix: the innermost domain decides
        (stack(("nix::dumpPath(...)", NIXUTIL),
               ("nix::HashSink::writeUnbuffered(std::basic_string_view<char>)", NIXUTIL),
               ("SHA256_Update", CRYPTO)), "hashing"),
        (stack(("nix::dumpPath(...)", NIXUTIL), ("read", LIBC), ("ksys_read", K)), "nar"),
        (stack(("nix::dumpPath(...)", NIXUTIL), ("nix::CompressionSink::write", NIXUTIL),
               (None, LZMA)), "compression"),
        (stack(("nix::makeDecompressionSink(...)", NIXUTIL), (None, LZMA)), "decompression"),
        # Rust crates as perf demangles them
        (stack(("<zstd::stream::zio::writer::Writer<W,D> as std::io::Write>::write", RUNNER),),
         "compression"),
        (stack(("tokio::runtime::scheduler::multi_thread::worker::run", RUNNER),
               ("<hyper::proto::h1::conn::Conn<I,B,T>>::poll_read", RUNNER)), "network"),
        (stack(("tokio::runtime::task::harness::poll", RUNNER),
               ("sqlx_postgres::connection::executor::run", RUNNER)), "database"),
        (stack(("tokio::runtime::park::Inner::park", RUNNER), ("syscall", LIBC)), "runtime"),
        (stack(("<sha2::core_api::Sha256VarCore as digest::core_api::UpdateCore>::update_blocks",
                RUNNER),), "hashing"),
        # mechanisms: innermost decides when no domain names the sample
        (stack(("_PyEval_EvalFrameDefault", PY), ("_PyObject_Malloc", PY)), "allocation"),
        (stack(("_PyEval_EvalFrameDefault", PY), ("malloc", LIBC)), "allocation"),
        (stack(("_PyEval_EvalFrameDefault", PY),), "runtime"),
        (stack(("main", RUNNER), ("write", LIBC), ("ksys_write", K),
               ("ext4_buffered_write_iter", K)), "filesystem"),
        (stack(("main", RUNNER), ("fsync", LIBC)), "filesystem"),
        (stack(("main", RUNNER), ("PQexec", "/usr/lib/libpq.so.5")), "database"),
        (stack(("main", RUNNER), ("send", LIBC), ("tcp_sendmsg", K)), "network"),
        # nothing names it
        (stack(("main", RUNNER), ("nix::State::doBuildStep", RUNNER)), "other"),
        ((), "other"),
    ],
)  # fmt: skip
def test_policy(frames: tuple[Frame, ...], expected: str) -> None:
    assert classify(frames) == expected


def test_unsymbolised_frames_print_as_their_library() -> None:
    assert Frame(None, LZMA).text() == "[liblzma.so.5.4.1]"
    assert Frame(None, "[unknown]").text() == "[unknown]"
    assert Frame("SHA256_Update", CRYPTO).text() == "SHA256_Update"


def test_every_rule_compiles_names_a_class_and_cites_a_source() -> None:
    for rule in RULES:
        assert rule.cls in CLASSES and rule.cls != "other", rule
        assert rule.source.strip(), rule
        assert rule.symbol is not None or rule.dso is not None, rule
        for pattern in (rule.symbol, rule.dso):
            if pattern is not None:
                re.compile(pattern)


def test_crate_rules_cite_hydras_cargo_lock_lines() -> None:
    crates = [r for r in RULES if r.symbol and r.symbol.startswith("<?")]
    assert crates
    for rule in crates:
        assert "Cargo.lock:" in rule.source or "hydra@" in rule.source or "std" in rule.source, rule
        lines = rule.source.partition("Cargo.lock:")[2]
        for number in re.findall(r"\d+", lines.split(" ")[0]):
            assert int(number) > 0


def test_each_class_but_other_has_a_rule_and_a_frame_reaches_it() -> None:
    named = {frame_class(Frame(s, d)) for s, d in [(None, LZMA), ("ZSTD_decompressFrame", ZSTD_PY)]}
    assert named == {"compression", "decompression"}
    assert {r.cls for r in RULES} == set(CLASSES) - {"other"}
