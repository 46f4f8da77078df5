"""The samplers' text: ``perf script`` (Debian linux-perf 6.1) and py-spy 0.4 raw output,
and the one-line errors for perf's failures. Excerpts are real output, trimmed."""

from __future__ import annotations

import pytest

from profiler.collect.cpu import perf, pyspy
from profiler.collect.cpu.classify import Frame, classify
from profiler.errors import CollectorError

# perf record -e cpu-clock -F 499 -g -k realtime -p PID; perf script -F comm,pid,tid,time,...
CALLCHAIN = """\
python3 19940/19986 1796415701.057419:    2004008 
\t           17314 [unknown] (/usr/lib/x86_64-linux-gnu/liblzma.so.5.4.1)

xz 19679/19679 88658.623318:    2004008 
\tffffffff8134bc18 flush_tlb_mm_range ([kernel.kallsyms])
\tffffffff81000c82 asm_exc_page_fault ([kernel.kallsyms])
\t           16932 [unknown] (/usr/lib/x86_64-linux-gnu/liblzma.so.5.4.1)
\t               0 [unknown] ([unknown])

tokio-runtime-w 4242/4250 1796415701.100000:   10101010 
\t          2f00aa nix::HashSink::writeUnbuffered(std::basic_string_view<char, std::char_traits<char> >) (/usr/lib/nix/libnixutil.so)
\t          1f00aa nix::dumpPath(std::string const&, nix::Sink&, std::function<bool (std::string const&)>&) (/usr/lib/nix/libnixutil.so)

"""  # noqa: E501

# perf record without -g: the one frame is on the header line
LEAF = """\
              xz 20881/20881 1796415803.007723:    2004008  ffffffff82252cd7 exc_page_fault ([kernel.kallsyms])
     Web Content 77/78 1796415803.009716:    2004008            16932 [unknown] (/usr/lib/x86_64-linux-gnu/liblzma.so.5.4.1)
"""  # noqa: E501


def test_callchains_become_root_to_leaf_frames_with_periods() -> None:
    samples = list(perf.parse_script(CALLCHAIN.splitlines(keepends=True)))
    assert [(s.pid, s.tid, s.thread) for s in samples] == [
        (19940, 19986, "python3"),
        (19679, 19679, "xz"),
        (4242, 4250, "tokio-runtime-w"),
    ]
    assert samples[0].cpu_seconds == pytest.approx(0.002004008)
    assert samples[0].ts == pytest.approx(1796415701.057419)
    assert samples[0].frames == (Frame(None, "/usr/lib/x86_64-linux-gnu/liblzma.so.5.4.1"),)
    assert [f.text() for f in samples[1].frames] == [
        "[unknown]",
        "[liblzma.so.5.4.1]",
        "asm_exc_page_fault",
        "flush_tlb_mm_range",
    ]
    nix = samples[2].frames
    assert nix[0].symbol is not None and nix[0].symbol.startswith("nix::dumpPath(std::string")
    assert nix[1].symbol == (
        "nix::HashSink::writeUnbuffered(std::basic_string_view<char, std::char_traits<char> >)"
    )
    assert nix[1].dso == "/usr/lib/nix/libnixutil.so"


def test_leaf_only_samples_and_comms_with_spaces() -> None:
    samples = list(perf.parse_script(LEAF.splitlines()))
    assert [s.thread for s in samples] == ["xz", "Web Content"]
    assert samples[0].frames == (Frame("exc_page_fault", "[kernel.kallsyms]"),)
    assert samples[1].frames[0].dso.endswith("liblzma.so.5.4.1")


def test_offset_is_added_to_perf_times() -> None:
    (s,) = list(perf.parse_script(LEAF.splitlines()[:1], offset_seconds=10.0))
    assert s.ts == pytest.approx(1796415813.007723)


def test_record_argv_follows_the_call_graph_choice() -> None:
    argv = perf.record_argv("perf", [1, 2], frequency_hz=99, call_graph="fp", out="o")
    assert argv[argv.index("-p") + 1] == "1,2"
    assert ["-e", "cpu-clock"] == argv[argv.index("-e") : argv.index("-e") + 2]
    assert "fp" in argv and "-k" in argv
    assert "--call-graph" not in perf.record_argv(
        "perf", [1], frequency_hz=9, call_graph="leaf", out="o"
    )
    assert "dwarf,16384" in perf.record_argv(
        "perf", [1], frequency_hz=9, call_graph="dwarf", out="o"
    )


# py-spy record --format raw --threads --native (py-spy 0.4.3)
RAW = """\
thread (20496);<module> (thr.py:2) 1
thread (20502): w1;Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982);work (thr.py:6);compress (lzma.py:328) 180
thread (20501): w0;Thread._bootstrap (threading.py:1002);work (thr.py:6) 5
thread (15063): MainThread;0x7f844d04524a (libc.so.6);<module> (hs.py:4);_hashlib_openssl_sha256 (_hashopenssl.c.h:427);EVP_hash (_hashopenssl.c:442);SHA256_Update (libcrypto.so.3);0x7f844c89c2be (libcrypto.so.3) 8
garbage line
"""  # noqa: E501


def test_pyspy_raw_lines_are_samples_per_thread() -> None:
    samples = list(pyspy.parse_raw(RAW.splitlines(), pid=20496, ts=100.0, frequency_hz=100))
    assert [(s.tid, s.thread, s.samples) for s in samples] == [
        (20496, "", 1),
        (20502, "w1", 180),
        (20501, "w0", 5),
        (15063, "MainThread", 8),
    ]
    assert samples[1].cpu_seconds == pytest.approx(1.8)
    assert samples[1].frames[-1] == Frame("compress", "lzma.py")
    assert all(s.ts == 100.0 for s in samples)
    native = samples[3].frames
    assert native[0] == Frame(None, "libc.so.6")  # an address py-spy could not name
    assert native[-1] == Frame(None, "libcrypto.so.3")
    assert native[-2] == Frame("SHA256_Update", "libcrypto.so.3")
    assert classify(native) == "hashing"
    assert classify(samples[1].frames) == "compression"  # lzma.py's compress


def test_pyspy_argv_samples_threads_with_native_frames() -> None:
    argv = pyspy.record_argv("py-spy", 7, frequency_hz=50, duration_seconds=2.4, out="x")
    assert argv[argv.index("--pid") + 1] == "7"
    assert {"--threads", "--native", "raw"} <= set(argv)
    assert argv[argv.index("--duration") + 1] == "2"
    assert "--duration" not in pyspy.record_argv(
        "py-spy", 7, frequency_hz=5, duration_seconds=None, out="x"
    )


@pytest.mark.parametrize(
    ("stderr", "words"),
    [
        ("Error:\nNo permission to enable cpu-clock event.\n\nYou may not have permission to "
         "collect stats.\nConsider tweaking /proc/sys/kernel/perf_event_paranoid",
         ["paranoid=2", "CAP_PERFMON", "container"]),
        ("perf_event_open(..., PERF_FLAG_FD_CLOEXEC) failed with unexpected error 38 "
         "(Function not implemented)", ["not available", "seccomp"]),
        ("Error: The sys_perf_event_open() syscall returned with 3 (No such process)", ["exited"]),
        ("something else", ["perf record failed", "something else"]),
    ],
)  # fmt: skip
def test_perf_failures_are_one_line_with_the_remedy(stderr: str, words: list[str]) -> None:
    err = perf.explain_failure(stderr, paranoid=2, uid=1000)
    assert isinstance(err, CollectorError)
    assert "\n" not in str(err)
    for w in words:
        assert w in str(err)


def test_missing_perf_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Exception, match="linux-perf"):
        perf.find_perf()
    with pytest.raises(Exception, match="pip install py-spy"):
        pyspy.find_pyspy()
