"""The command line as a user runs it: real processes, real pipes, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NIX_ENV, nix_dump, nix_hash, require_tool

CMD = [sys.executable, "-m", "profiler"]


def run(*args: str | Path, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CMD, *map(str, args)], capture_output=True, input=input, timeout=120)


@pytest.mark.parametrize(
    "argv", [[], ["nar"], ["nar", "dump"], ["nar", "hash"], ["nar", "ls"], ["payloads"]]
)
def test_every_command_has_help_with_an_example(argv: list[str]) -> None:
    done = run(*argv, "--help")
    assert done.returncode == 0
    assert b"example" in done.stdout and b"hydra-profiler" in done.stdout


def test_console_script_is_installed() -> None:
    done = subprocess.run(["hydra-profiler", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("hydra-profiler ")


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["bogus"], 2, "invalid choice: 'bogus'"),
        (["nar", "hash"], 2, "the following arguments are required: path"),
        (["nar", "hash", "/no/such/path"], 1, "/no/such/path: No such file or directory"),
        (["nar", "ls", "/no/such.nar"], 1, "/no/such.nar: No such file or directory"),
        (["payloads", "sample:abc"], 2, "expected sample:N[:SEED]"),
    ],
)
def test_errors_are_one_line_with_the_right_exit_code(
    argv: list[str], code: int, message: str
) -> None:
    done = run(*argv)
    assert done.returncode == code
    err = done.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("hydra-profiler: error: ")
    assert message in err and "Traceback" not in err


def test_special_file_error_names_the_path(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    done = run("nar", "hash", tmp_path)
    assert done.returncode == 1
    assert f"{tmp_path}/fifo: unsupported file type (FIFO)" in done.stderr.decode()


def test_dump_and_hash_match_nix(example_tree: Path) -> None:
    (example_tree / "big").write_bytes(os.urandom(1 << 20))
    done = run("nar", "dump", example_tree)
    assert done.returncode == 0 and done.stdout == nix_dump(example_tree)
    done = run("nar", "hash", "--size", example_tree)
    digest, size = done.stdout.decode().split()
    assert digest == nix_hash(example_tree) and int(size) == len(nix_dump(example_tree))


def test_ls_matches_nix_nar_ls(tmp_path: Path, example_tree: Path) -> None:
    require_tool("nix", "nix-bin")
    nar_file = tmp_path / "d.nar"
    nar_file.write_bytes(nix_dump(example_tree))
    for flags, inner in [("-R", "/"), ("-lR", "/"), ("-l", "/"), ("-R", "/sub"), ("-l", "/a.txt")]:
        ours = run("nar", "ls", flags, nar_file, inner)
        theirs = subprocess.run(
            ["nix", "nar", "ls", flags, nar_file, inner],
            capture_output=True,
            env=NIX_ENV,
            check=True,
        )
        assert ours.returncode == 0
        assert ours.stdout == theirs.stdout, (flags, inner)


def test_ls_reads_stdin_and_compressed_files(tmp_path: Path, example_tree: Path) -> None:
    import lzma

    data = nix_dump(example_tree)
    from_stdin = run("nar", "ls", "-R", "-", input=data)
    (tmp_path / "d.nar.xz").write_bytes(lzma.compress(data))
    from_xz = run("nar", "ls", "-R", tmp_path / "d.nar.xz")
    assert from_stdin.stdout == from_xz.stdout
    assert from_stdin.stdout.splitlines()[-1] == b"./sub/run.sh"


def test_ls_rejects_a_corrupt_nar_with_its_offset(tmp_path: Path, example_tree: Path) -> None:
    data = bytearray(nix_dump(example_tree))
    data[-20] = 1  # inside the closing tokens' padding/length
    (tmp_path / "bad.nar").write_bytes(bytes(data))
    done = run("nar", "ls", "-R", tmp_path / "bad.nar")
    assert done.returncode == 1
    assert b"bad.nar: corrupt NAR at byte " in done.stderr and b"Traceback" not in done.stderr


def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(os.urandom(4 << 20))
    proc = subprocess.Popen(
        [*CMD, "nar", "dump", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    proc.wait(timeout=60)
    assert err == b""


def test_ls_into_a_closed_pipe_is_quiet(tmp_path: Path, example_tree: Path) -> None:
    for i in range(3000):
        (example_tree / f"f{i}").write_bytes(b"x")
    proc = subprocess.Popen(
        [*CMD, "nar", "ls", "-R", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(nix_dump(example_tree), timeout=60)
    assert err == b""


def test_payloads_lists_a_cache_and_writes_a_manifest(tmp_path: Path, example_tree: Path) -> None:
    manifest = tmp_path / "m.json"
    done = run("payloads", example_tree, "--format", "json", "--manifest", manifest)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc == json.loads(manifest.read_text())
    [row] = doc["payloads"]
    assert row["nar_hash"] == nix_hash(example_tree) and row["nar_size_bytes"] == 1240
    assert b"[1/1] reading d" in done.stderr
