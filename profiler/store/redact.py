"""Hide secrets in text that is about to be stored or shown: URLs, DSNs, headers, argv.

Everything a run records about where data came from (source targets, the command line,
notes, error messages) passes through :func:`redact` first, so a run directory can be
shared without leaking the farm's credentials. The rules replace the secret part with
``***`` and keep the rest, so the text still says what was contacted and how:

* URL userinfo passwords: ``https://user:secret@host`` -> ``https://user:***@host``
  (this also covers PostgreSQL URLs, ``postgresql://u:pw@h/db``);
* query parameters whose name contains token, key, secret, password, passwd, auth,
  signature or credential: ``?access_token=abc`` -> ``?access_token=***``;
* ``key=value`` settings whose key contains password or passwd (libpq DSNs, ``PGPASSWORD``),
  quoted or not: ``host=h password='p w'`` -> ``host=h password=***``;
* the value of a command-line option whose name contains one of those words:
  ``--db-password pw``, ``--api-token=abc`` -> ``--db-password ***``, ``--api-token=***``;
* HTTP ``Authorization:`` / ``Proxy-Authorization:`` header values and ``Bearer <token>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MASK = "***"

_SECRET_WORDS = "token|key|secret|password|passwd|auth|signature|credential"

_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):(?P<pw>[^/?#\s]*)@")
_QUERY = re.compile(
    rf"(?P<head>[?&](?P<name>[^=&#\s]*(?:{_SECRET_WORDS})[^=&#\s]*)=)(?P<value>[^&#\s'\"]+)",
    re.IGNORECASE,
)
_KEY_VALUE = re.compile(
    r"(?<![\w.?&-])(?P<head>[\w.-]*(?:password|passwd)\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s'\"]+)",
    re.IGNORECASE,
)
_AUTHORIZATION = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)(?P<value>[^\r\n'\"]+)",
    re.IGNORECASE,
)
_OPTION_VALUE = re.compile(
    rf"(?P<head>(?<![\w-])--?[\w-]*(?:{_SECRET_WORDS})[\w-]*(?:=|\s+)(?!-))"
    r"(?P<value>'[^']*'?|\"[^\"]*\"?|[^\s'\"]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<head>\bbearer\s+)(?P<value>[A-Za-z0-9\-._~+/]{8,}=*)", re.IGNORECASE)
# an argv option whose *next* element is a secret: --password X, --api-token X, -p is not
_SECRET_OPTION = re.compile(rf"--?[\w-]*(?:{_SECRET_WORDS})[\w-]*", re.IGNORECASE)


def _mask_userinfo(match: re.Match[str]) -> str:
    return f"{match['head']}:{MASK}@"


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
    text = _QUERY.sub(_mask_value, text)
    text = _KEY_VALUE.sub(_mask_value, text)
    text = _OPTION_VALUE.sub(_mask_value, text)
    text = _AUTHORIZATION.sub(_mask_value, text)
    return _BEARER.sub(_mask_value, text)


def redact_argv(argv: Sequence[str]) -> str:
    """Return a command line (one shell-quoted string) with its secrets masked.

    Each argument is redacted on its own (so shell quoting cannot hide a secret from the
    rules), and the value of an option such as ``--password`` or ``--api-token`` (the next
    argument, or the part after ``=``) is masked entirely.

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
    hide_next = False
    for arg in argv:
        option, equals, _ = arg.partition("=")
        if hide_next:
            out.append(MASK)
        elif equals and _SECRET_OPTION.fullmatch(option):
            out.append(f"{option}={MASK}")
        else:
            out.append(redact(arg))
        hide_next = not equals and _SECRET_OPTION.fullmatch(arg) is not None
    return shlex.join(out)
