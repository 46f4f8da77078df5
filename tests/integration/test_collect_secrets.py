"""Planted secrets never reach a run directory, stdout or stderr.

Distinct secrets in every form a collector is given credentials (URL user alone, user and
password with ``@`` or ``/``, credential query parameters, ``--header``, ``-u``/``--user``,
``-H``, ``PGPASSWORD=`` inside ``--command``, a file path) go through the real collectors
(HTTP on 127.0.0.1 with basic auth that works, 401s, refused connections, usage errors,
``--command``, ``--file``, ``collect metrics``); then every file of the run (Parquet read as
bytes and through pandas), the export and all output are searched for each of them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.faultserver import FaultServer

CMD = [sys.executable, "-m", "profiler"]
SECRETS = {
    "user_alone": "tokUSERa1b2c3d4",
    "password_at": "pwAT@secret9x",
    "password_slash": "pwSL/ASHsecret7",
    "password_401": "wrongPW401z",
    "password_refused": "refusedPW15q",
    "query_token": "qTOKEN1a",
    "query_pass": "qPASS2b",
    "query_pwd": "qPWD3c",
    "query_sig": "qSIG4d",
    "query_api_key": "qKEY5e",
    "query_access_token": "qACC6f",
    "query_space": "spTOK18g",
    "header_bearer": "hdrBEARER7h",
    "header_api_key": "hdrKEY8i",
    "command_user": "cmdUSER9j",
    "command_user_long": "cmdUSER10k",
    "command_bearer": "cmdBEARER11l",
    "command_token_header": "cmdTOKEN12m",
    "command_pgpassword": "cmdPG13n",
    "file_password": "filePW14o",
}


def _needles() -> list[str]:
    """Each secret, and each part of it around an @ or / (a half-masked secret leaks too)."""
    out = set(SECRETS.values())
    for secret in SECRETS.values():
        out.update(p for p in secret.replace("@", "/").split("/") if len(p) >= 5)
    return sorted(out)


def _run(argv: list[str], outputs: list[str], expect: int) -> None:
    done = subprocess.run([*CMD, *argv], capture_output=True, text=True, timeout=60)
    outputs += [done.stdout, done.stderr]
    assert done.returncode == expect, done.stderr


def test_planted_secrets_reach_no_file_and_no_output(tmp_path: Path) -> None:
    s = SECRETS
    out = tmp_path / "run"
    outputs: list[str] = []
    query = (
        f"?token={s['query_token']}&pass={s['query_pass']}&pwd={s['query_pwd']}"
        f"&sig={s['query_sig']}&api_key={s['query_api_key']}"
        f"&access_token={s['query_access_token']}"
    )
    status = tmp_path / f"password={s['file_password']}" / "status.json"
    status.parent.mkdir()
    status.write_text('{"status": "up", "uptime": 5, "pid": 7, "nrStepsDone": 3}')
    with FaultServer() as server:
        alone = server.url("valid", auth=f"{s['user_alone']}:", userinfo=s["user_alone"])
        at_sign = server.url(
            "valid", auth=f"hydra:{s['password_at']}", userinfo=f"hydra:{s['password_at']}"
        )
        refused = f"http://hydra:{s['password_refused']}@127.0.0.1:9/x{query}"
        wrong = server.url("valid", auth="hydra:right", userinfo=f"hydra:{s['password_401']}")
        _run(
            [
                *("collect", "status", "--url", alone + query, "--url", at_sign, "--url", wrong),
                *("--url", refused, "--header", f"X-Api-Key: {s['header_api_key']}"),
                *("--timeout", "1s", "--interval", "0.5s", "--duration", "1.2s", "--out", str(out)),
            ],
            outputs,
            expect=0,
        )
        # the credentials were really sent (and the server saw them, not the run)
        assert server.route(alone).headers[0]["authorization"].startswith("Basic ")
        assert server.route(alone).headers[0]["x-api-key"] == s["header_api_key"]
        command = (
            f"env PGPASSWORD={s['command_pgpassword']} sh -c 'cat {status}' -u "
            f"admin:{s['command_user']} --user=x:{s['command_user_long']} "
            f"-H 'Authorization: Bearer {s['command_bearer']}' "
            f"-H 'Private-Token: {s['command_token_header']}'"
        )
        _run(
            [
                "collect",
                "status",
                "--command",
                command,
                "--file",
                str(status),
                "--once",
                "--out",
                str(out),
            ],
            outputs,
            expect=0,
        )
        metrics = server.url("valid", kind="metrics") + query
        bearer = f"Authorization: Bearer {s['header_bearer']}"
        _run(
            [
                "collect",
                "metrics",
                "--url",
                metrics,
                "--header",
                bearer,
                "--once",
                "--out",
                str(out),
            ],
            outputs,
            expect=0,
        )
        assert server.route(metrics).headers[0]["authorization"] == bearer.split(": ", 1)[1]
        slash = f"http://hydra:{s['password_slash']}@127.0.0.1:{server.port}/x"
        space = f"http://127.0.0.1:{server.port}/ok?token={s['query_space']} x"
        for url in (slash, space):
            _run(["collect", "status", "--url", url, "--once", "--out", str(out)], outputs, 2)
        for table in ("samples", "events"):
            _run(["export", str(out), table, "--format", "csv"], outputs, expect=0)

    samples = pd.read_csv(pd.io.common.StringIO(outputs[-4]))
    assert samples["source"].nunique() >= 5  # url alone, url with @, command, file, metrics
    events = pd.read_csv(pd.io.common.StringIO(outputs[-2]))
    details = " ".join(events["detail"])
    assert "HTTP 401" in details and "unreachable" in details  # the failure paths ran too
    texts = {"output": "\n".join(outputs)}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        texts[str(path)] = path.read_bytes().decode("latin-1")
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            texts[f"{path} (pandas)"] = frame.astype(str).to_csv() + " ".join(frame.columns)
    assert any(p.endswith(".parquet") for p in texts) and len(texts) > 5
    leaks = [(n, where) for where, text in texts.items() for n in _needles() if n in text]
    assert leaks == []


BAD_URLS = [
    "http://{}@127.0.0.1:9/x",
    "http://user:ab/{}@127.0.0.1:9/",
    "http://127.0.0.1:9/ok?token={} x",
    "http://127.0.0.1:9/ok?pwd={}",
    "https://user:{}@[::1/x",
]


ONCE = ("collect", "status", "--once", "--timeout", "1s")


def test_secrets_in_bad_or_unreachable_urls_never_reach_stderr(tmp_path: Path) -> None:
    secret = "s3cr3tNEEDLE"
    runs = [  # at once: each unreachable one spends 1.5 s in its retries' backoff
        subprocess.Popen(
            [*CMD, *ONCE, "--url", url.format(secret), "--out", str(tmp_path / f"run{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, url in enumerate(BAD_URLS)
    ]
    for url, proc in zip(BAD_URLS, runs, strict=True):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode in (1, 2) and "Traceback" not in err, (url, err)
        assert "NEEDLE" not in out + err, (url, err)
    assert [p.returncode for p in runs] == [1, 2, 2, 1, 2]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"NEEDLE" not in path.read_bytes(), path


def test_argument_errors_that_echo_a_secret_are_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from profiler.cli import main

    argv = ["collect", "status", "--url", "http://h/", "--out", "r"]
    argv += ["--bogus", "http://t0k3nNEEDLE@h/?pwd=x"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --bogus http://***@h/?pwd=***" in err
    assert "NEEDLE" not in err
