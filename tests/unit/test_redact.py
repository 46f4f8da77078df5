"""The one redaction function: every credential form masked, harmless text untouched."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.store import redact, redact_argv

# {s} is the secret; each template is a way a credential reaches a URL, a command or a message
TEMPLATES = [
    "https://{s}@hydra.example.org/queue-runner-status",
    "collect: http://{s}@127.0.0.1:9/x: unreachable: [Errno 111] Connection refused",
    "https://{s}:x-oauth-basic@github.com/o/r",
    "https://hydra:{s}@hydra.example.org/",
    "https://hydra:ab/{s}@hydra.example.org/",
    "https://hydra:{s}/x@hydra.example.org:3000/queue-runner-status",
    "http://hydra:p@{s}@127.0.0.1:3000/",
    "postgresql://hydra:{s}@db/hydra",
    "https://h/s?token={s}",
    "https://h/s?x=1&access_token={s}&y=2",
    "https://h/s?pass={s}",
    "https://h/s?pwd={s}",
    "https://h/s?sig={s}",
    "https://h/s?X-Amz-Signature={s}",
    "https://h/s?api_key={s}",
    "https://h/s?apiKey={s}",
    "https://h/s?client_secret={s}",
    "https://h/s?session_id={s}",
    "https://h/s?password={s}: HTTP 500",
    "/ok?token={s} x",
    "curl -s -u admin:{s} http://h/",
    "curl -u {s} http://h/",
    "curl -uadmin:{s} http://h/",
    "curl --user={s} http://h/",
    "curl --user 'admin:{s}' http://h/",
    "curl --proxy-user p:{s} http://h/",
    "curl -H 'Authorization: Bearer {s}' http://h/",
    'curl -H "Authorization: Basic {s}" http://h/',
    "curl -H 'X-Api-Key: {s}' http://h/",
    "curl --header 'Private-Token: {s}' http://h/",
    "curl -H 'Cookie: session={s}' http://h/",
    "Authorization: token {s}",
    "PGPASSWORD={s} psql -h db",
    "env GITHUB_TOKEN={s} ssh hydra hydra-queue-runner --status",
    "host=db password={s} dbname=hydra",
    "host=db password='{s}' dbname=hydra",
    "hydra-profiler collect status --db-password {s} --once",
    "hydra-profiler collect status --api-token={s}",
]
SECRET = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._~+=-]{5,30}", fullmatch=True)


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_credential_form_is_masked(template: str) -> None:
    text = template.format(s="S3cr3tValue")
    masked = redact(text)
    assert "S3cr3tValue" not in masked and "***" in masked
    assert redact(masked) == masked


@settings(max_examples=60, deadline=None)
@given(secret=SECRET)
def test_no_secret_survives_any_template(secret: str) -> None:
    for template in TEMPLATES:
        masked = redact(template.format(s=secret))
        assert secret not in masked, (template, masked)
        assert redact(masked) == masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://s3cr3t@127.0.0.1:9/x", "http://***@127.0.0.1:9/x"),
        ("http://user:ab/s3cr3t@host/", "http://user:***@host/"),
        ("http://u:a@b/c@host/q", "http://u:***@host/q"),
        ("curl -s -u admin:s3cr3t http://h/x", "curl -s -u *** http://h/x"),
        ("http://h/?pass=a&pwd=b&sig=c&code=1", "http://h/?pass=***&pwd=***&sig=***&code=1"),
        ("http://h/x?token=abc: HTTP 500", "http://h/x?token=***: HTTP 500"),
        ("curl -H 'Accept: application/json' -H 'X-Api-Key: k'", None),
        ("ssh://root@builder-1", "ssh://root@builder-1"),  # an account, not a credential
        ("postgresql://hydra@db/hydra", "postgresql://hydra@db/hydra"),
    ],
)
def test_redaction_examples(text: str, expected: str | None) -> None:
    if expected is None:
        expected = "curl -H 'Accept: application/json' -H 'X-Api-Key: ***'"
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "http://hydra.example.org:3000/queue-runner-status",
        "https://hydra.nixos.org/build/123456/nixlog/1",
        "http://127.0.0.1:8080/status/machines",
        "http://[::1]:8080/metrics?format=json&x=1",
        "ssh://root@builder-1.example.org",
        "hydra-profiler collect status --url http://h:3000/ --interval 30s --timeout 10s --out r",
        "collect: http://h:3000/x: bad HTTP answer: BadStatusLine: HELLO WORLD",
        "collect: http://h:3000/x: unreachable: [Errno -2] Name or service not known",
        "queue runner restarted (pid 7 -> 8, uptime 100 -> 5); counters reset",
        "copying path '/nix/store/abc-hello-2.12' (1637928 bytes, compressed 25.9% in 582 ms)",
        "keys: 3, tokens: 4; the password is wrong",
        "hydra-queue-runner --status",
    ],
)
def test_harmless_text_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_argv_header_values_are_masked_whatever_the_name() -> None:
    argv = ["hydra-profiler", "collect", "status", "--url", "http://t0k3n@h/"]
    argv += ["--header", "X-Custom: abc", "--header=Authorization: Bearer xyz"]
    argv += ["--command", "curl -u admin:pw http://h/", "-u", "me:pw2"]
    joined = redact_argv(argv)
    for secret in ("t0k3n", "abc", "xyz", "admin:pw", "me:pw2"):
        assert secret not in joined
    assert len(shlex.split(joined)) == len(argv)
    assert "--header 'X-Custom: ***'" in joined
