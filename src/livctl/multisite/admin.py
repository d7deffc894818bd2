"""Setting up a study server: stations, coordinators, and the subjects the coordinator registers.

`add_station` and `add_coordinator` create login roles without a password (set one with psql's
`\\password`, or use client certificates): livctl never handles a credential. They need CREATEROLE
(the administrator who ran `livctl server init`), never a superuser.
"""

from __future__ import annotations

import json
import re

from livctl.errors import UsageError
from livctl.multisite.migrations import COORDINATOR_GROUP, STATION_GROUP

__all__ = ["add_station", "add_coordinator", "add_study_subject"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def _checked_name(what: str, name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(f"{what} {name!r} must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def _ensure_role(conn, role: str, group: str) -> bool:
    """Create the login role (no password) in `group`, or add an existing role to it. True: created."""
    from psycopg import sql

    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None
    if not exists:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(role)))
    return not exists


def add_station(conn, station: str, role: str | None = None) -> str:
    """Register a station and its login role (default: the station's name). Returns the role."""
    role = _checked_name("role", role or station)
    _checked_name("station", station)
    with conn.transaction():
        known = conn.execute("SELECT role FROM livctl.stations WHERE station = %s", (station,)).fetchone()
        if known is not None:
            raise UsageError(f"station {station} is already registered (role {known[0]})")
        taken = conn.execute("SELECT station FROM livctl.stations WHERE role = %s", (role,)).fetchone()
        if taken is not None:
            raise UsageError(f"role {role} already belongs to station {taken[0]}; give each station its own role")
        if conn.execute("SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                        "JOIN pg_roles r ON r.oid = m.member WHERE g.rolname = %s AND r.rolname = %s",
                        (COORDINATOR_GROUP, role)).fetchone():
            raise UsageError(f"role {role} is a coordinator; a station needs a role of its own")
        _ensure_role(conn, role, STATION_GROUP)
        conn.execute("INSERT INTO livctl.stations (station, role) VALUES (%s, %s)", (station, role))
    return role


def add_coordinator(conn, role: str) -> None:
    _checked_name("role", role)
    with conn.transaction():
        if conn.execute("SELECT station FROM livctl.stations WHERE role = %s", (role,)).fetchone():
            raise UsageError(f"role {role} is a station's; a coordinator needs a role of its own")
        _ensure_role(conn, role, COORDINATOR_GROUP)


def add_study_subject(conn, subject_id: str, kind: str, *, note: str | None, operator: str | None,
                      regimen: tuple[str, dict, str] | None, now_utc: str) -> None:
    """The coordinator registers a subject (and its regimen: name, resolved regimen, source) for
    every station to pull."""
    from livctl.records.doselog import SUBJECT_KINDS

    if kind not in SUBJECT_KINDS:
        raise UsageError(f"unknown subject kind {kind!r}; choose one of: {', '.join(SUBJECT_KINDS)}")
    if not subject_id.strip() or subject_id != subject_id.strip():
        raise UsageError(f"subject id {subject_id!r} must be non-empty, without leading or trailing spaces")
    with conn.transaction():
        if conn.execute("SELECT 1 FROM livctl.study_subjects WHERE subject_id = %s", (subject_id,)).fetchone():
            raise UsageError(f"subject {subject_id} is already registered on the study server")
        conn.execute("INSERT INTO livctl.study_subjects (subject_id, kind, note, added_utc, operator) "
                     "VALUES (%s, %s, %s, %s, %s)", (subject_id, kind, note, now_utc, operator))
        if regimen is not None:
            name, resolved, source = regimen
            conn.execute("INSERT INTO livctl.study_assignments (subject_id, assigned_utc, operator, regimen_name, "
                         "regimen, source) VALUES (%s, %s, %s, %s, %s, %s)",
                         (subject_id, now_utc, operator, name, json.dumps(resolved, sort_keys=True), source))
