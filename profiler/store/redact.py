"""Hide secrets in text that is about to be stored or shown: URLs, DSNs, headers, argv.

Everything a run records about where data came from (source targets, the command line,
notes, events, the ``source`` column of samples) and everything a collector prints or raises
passes through :func:`redact` first, so a run directory can be shared without leaking the
farm's credentials. The rules replace the secret part with ``***`` and keep the rest, so the
text still says what was contacted and how:

* URL userinfo: ``https://user:secret@host`` -> ``https://user:***@host`` (also PostgreSQL
  URLs, and passwords holding an unencoded ``@``, ``/``, ``?`` or ``#``: everything up to the
  last ``@`` of the URL is taken as userinfo); a user name alone is
  a token (``https://TOKEN@host``, GitHub/GitLab style) -> ``https://***@host``, except for
  schemes whose user is an account name (ssh, PostgreSQL, ...); a user name that looks like
  a token (20 or more token characters), or whose password is empty or GitHub's
  ``x-oauth-basic``, is masked along with the password;
* query parameters whose name contains token, key, secret, pass, pwd, auth, sig, credential,
  session, cookie, jwt, otp or private: ``?access_token=abc`` -> ``?access_token=***``;
* ``key=value`` settings whose key names a password, token, secret or key (libpq DSNs,
  ``PGPASSWORD=``, ``GITHUB_TOKEN=``), quoted or not: ``password='p w'`` -> ``password=***``;
* the value of a command-line option whose name contains one of those words
  (``--db-password pw``, ``--api-token=abc``), and of ``-u``/``--user``/``--proxy-user``
  (``curl -u admin:pw``);
* header values: ``Authorization:`` / ``Proxy-Authorization:`` anywhere, ``Bearer <token>``,
  and ``-H``/``--header`` arguments whose header name contains one of the words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MASK = "***"

# words that make a query parameter, an option or a header name a secret (substring match)
_SECRET_WORDS = (
    "token|key|secret|pass|pwd|auth|sig|credential|session|cookie|jwt|otp|private|bearer"
)
# options: "sig" and "otp" would hit --signal, --output; passwords, tokens and keys suffice
_OPTION_WORDS = "token|key|secret|password|passwd|pass|pwd|auth|signature|credential|bearer"
# key=value settings (libpq, environment variables)
_KEY_WORDS = (
    "password|passwd|pwd|secret|token|api_?key|access_?key|private_?key|auth_?key|credential"
)
# schemes whose user name alone is an account, not a credential
_ACCOUNT_SCHEMES = frozenset(
    ("ssh", "sftp", "scp", "ftp", "git", "postgres", "postgresql", "mysql", "mariadb", "redis")
)

_END = r"\s'\"<>"  # what ends a URL inside text
_USERINFO = re.compile(
    rf"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<user>[^:/?#@{_END}]*)"
    # a password up to the last @ of the URL: it may hold an unencoded @ / ? # (a port and
    # a path with an @ in it are masked too: better too much than a leak)
    rf":(?P<pw>[^{_END}]*)@"
)
_USER_ALONE = re.compile(rf"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<user>[^:/?#@{_END}]+)@")
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_.~+/=-]{20,}")
_QUERY = re.compile(
    rf"(?P<head>[?&;](?P<name>[^=&;#{_END}]*(?:{_SECRET_WORDS})[^=&;#{_END}]*)=)"
    rf"(?P<value>[^&;#{_END}]*[^&;#{_END}:,)])",  # not a colon or comma after the URL
    re.IGNORECASE,
)
_KEY_VALUE = re.compile(
    rf"(?<![\w.?&;-])(?P<head>[\w.-]*(?:{_KEY_WORDS})[\w.-]*\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s'\"]+)",
    re.IGNORECASE,
)
_AUTHORIZATION = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)(?P<value>[^\r\n'\"]+)",
    re.IGNORECASE,
)
_HEADER_OPTION = re.compile(
    rf"(?P<head>(?<![\w-])(?:-H|--header)(?:=|\s*)['\"]?\s*"
    rf"[\w-]*(?:{_SECRET_WORDS})[\w-]*\s*:\s*)(?P<value>[^\r\n'\"]+)",
    re.IGNORECASE,
)
_OPTION_VALUE = re.compile(
    rf"(?P<head>(?<![\w-])--?[\w-]*(?:{_OPTION_WORDS})[\w-]*(?:=|\s+)(?!-))"
    r"(?P<value>'[^']*'?|\"[^\"]*\"?|[^\s'\"]+)",
    re.IGNORECASE,
)
_USER_OPTION = re.compile(
    r"(?P<head>(?<![\w-])(?:-u|--user|--proxy-user)(?:=|\s+|(?=[^\s=-])))"
    r"(?P<value>'[^']*'?|\"[^\"]*\"?|[^\s'\"]+)"
)
_BEARER = re.compile(r"(?P<head>\bbearer\s+)(?P<value>[A-Za-z0-9\-._~+/]{8,}=*)", re.IGNORECASE)
# an argv option whose *next* element is a secret: --password X, --api-token X, -u X
_SECRET_OPTION = re.compile(rf"--?[\w-]*(?:{_OPTION_WORDS})[\w-]*|-u|--user|--proxy-user", re.I)
_HEADER_ARG = re.compile(r"-H|--header", re.IGNORECASE)


def _mask_userinfo(match: re.Match[str]) -> str:
    user = match["user"]
    # GitHub's https://TOKEN:x-oauth-basic@, an empty password: the user is the credential
    if _TOKEN_LIKE.fullmatch(user) or match["pw"] in ("", "x-oauth-basic"):
        user = MASK if user else user
    return f"{match['scheme']}://{user}:{MASK}@"


def _mask_user_alone(match: re.Match[str]) -> str:
    if match["scheme"].lower() in _ACCOUNT_SCHEMES:
        return match[0]
    return f"{match['scheme']}://{MASK}@"


def _mask_value(match: re.Match[str]) -> str:
    return f"{match['head']}{MASK}"


def redact(text: str) -> str:
    """Return ``text`` with passwords, tokens and credentials replaced by ``***``.

    Parameters
    ----------
    text
        Any text: a URL, a DSN, a command line, an error message, a header dump.

    Returns
    -------
    str
        The same text with every secret it recognises masked; text without secrets is
        returned unchanged, and redacting twice gives the same result as once.
    """
    text = _USERINFO.sub(_mask_userinfo, text)
    text = _USER_ALONE.sub(_mask_user_alone, text)
    text = _QUERY.sub(_mask_value, text)
    text = _KEY_VALUE.sub(_mask_value, text)
    text = _HEADER_OPTION.sub(_mask_value, text)
    text = _OPTION_VALUE.sub(_mask_value, text)
    text = _USER_OPTION.sub(_mask_value, text)
    text = _AUTHORIZATION.sub(_mask_value, text)
    return _BEARER.sub(_mask_value, text)


def redact_header(line: str) -> str:
    """A ``Name: value`` header given on a command line, its value masked whatever the name."""
    name, colon, _ = line.partition(":")
    return f"{name}: {MASK}" if colon else redact(line)


def redact_argv(argv: Sequence[str]) -> str:
    """Return a command line (one shell-quoted string) with its secrets masked.

    Each argument is redacted on its own (so shell quoting cannot hide a secret from the
    rules), the value of an option such as ``--password``, ``--api-token`` or ``-u`` (the
    next argument, or the part after ``=``) is masked entirely, and so is the value of every
    ``-H``/``--header`` argument.

    Parameters
    ----------
    argv
        The arguments, e.g. ``sys.argv``.

    Returns
    -------
    str
        ``shlex.join`` of the redacted arguments.
    """
    import shlex

    out: list[str] = []
    hide_next = header_next = False
    for arg in argv:
        option, equals, value = arg.partition("=")
        if hide_next:
            out.append(MASK)
        elif header_next:
            out.append(redact_header(arg))
        elif equals and _HEADER_ARG.fullmatch(option):
            out.append(f"{option}={redact_header(value)}")
        elif equals and _SECRET_OPTION.fullmatch(option):
            out.append(f"{option}={MASK}")
        else:
            out.append(redact(arg))
        hide_next = not equals and _SECRET_OPTION.fullmatch(arg) is not None
        header_next = not equals and _HEADER_ARG.fullmatch(arg) is not None
    return shlex.join(out)
