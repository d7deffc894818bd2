"""The study server's URL and connections to it.

The server is named by a libpq URL (`postgresql://station-3@study.example.org/livctl?sslmode=verify-full`)
or a libpq service (`postgresql:///?service=livctl`). A password is never part of it: a URL holding
one is refused before anything connects, since command lines and configuration files are read by
others and end up in shell histories and logs. Passwords come from ~/.pgpass (or $PGPASSFILE), a
service file, or $PGPASSWORD; client certificates need none.
"""

from __future__ import annotations

from livctl.errors import UsageError

__all__ = ["ServerError", "check_url", "connect", "is_server_url"]

SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT_S = 10
"""How long a connection may take before the command gives up (libpq's connect_timeout)."""
STATEMENT_TIMEOUT_S = 600
"""Longest single statement (a study-wide query, a batch's COPY): a server that stops answering
ends the command instead of hanging it (with TCP keepalives, which find a vanished server or
network within about a minute)."""


class ServerError(UsageError):
    """The study server cannot be reached or used as asked (exit 2)."""


def is_server_url(text: str | None) -> bool:
    return text is not None and str(text).startswith(SCHEMES)


def check_url(url: str) -> str:
    """The URL, when it is a libpq URL without a password; else ServerError (one line)."""
    if not is_server_url(url):
        raise ServerError(f"not a study server URL: {url!r}; give postgresql://ROLE@HOST/DATABASE")
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise ServerError("the study server needs psycopg: pip install 'livctl[server]'") from None
    try:
        params = conninfo_to_dict(url)
    except Exception as exc:  # noqa: BLE001 - psycopg's ProgrammingError: a malformed URL
        raise ServerError(f"bad study server URL: {_one_line(exc)}") from None
    if params.get("password"):
        raise ServerError("the study server URL holds a password; remove it and put the password in ~/.pgpass "
                          "(or $PGPASSWORD, or a libpq service file)")
    return url


def connect(url: str, *, autocommit: bool = True):
    """A psycopg connection to the study server, or ServerError (one line) within
    CONNECT_TIMEOUT_S: a bad URL, a server that is down or unreachable, a refused login."""
    import psycopg

    check_url(url)
    try:
        conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=autocommit,
                               application_name="livctl", keepalives=1, keepalives_idle=30,
                               keepalives_interval=10, keepalives_count=3,
                               options=f"-c statement_timeout={STATEMENT_TIMEOUT_S * 1000}")
    except psycopg.Error as exc:
        raise ServerError(f"cannot connect to the study server {url}: {_one_line(exc)}") from None
    return conn


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
