"""`livctl server`: set up a study server (PostgreSQL) and its stations, coordinators and subjects."""

from __future__ import annotations

import argparse

from livctl.cli.helpformat import HelpFormatter
from livctl.cli.common import add_json_option, date_arg, positive_int, print_json, table

EPILOG = """\
A study server is one PostgreSQL database (docs/multisite.md). An administrator (a superuser, or
the database's owner with CREATEROLE) runs `init` once, and again after upgrading livctl (it
applies the schema migrations the server lacks); then adds each station and each coordinator.
Roles are created without a password: set one with psql's \\password ROLE, or use client
certificates; livctl never takes a password on its command line.

What each role may do: a station's role adds and reads its own station's records only (row-level
security); a coordinator reads every station's records and adds subjects and regimens; nobody can
change or delete a record (not granted, and refused by a trigger).

examples:
  livctl server init --server postgresql://admin@study.example.org/livctl
  livctl server add-station ward-3 --server postgresql://admin@study.example.org/livctl
  livctl server add-coordinator alice --server ...
  livctl server add-subject P-017 --kind human --regimen daily-2x10min --server postgresql://alice@.../livctl
  livctl server status --server postgresql://alice@study.example.org/livctl"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "server",
        help="set up a study server (PostgreSQL): schema, stations, coordinators, subjects",
        description="Set up and inspect the study server that stations sync their dose logs to.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.set_defaults(run=lambda args: _usage(p))
    actions = p.add_subparsers(title="actions", metavar="ACTION")

    def action(name: str, help_text: str, run) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        a.add_argument("--server", metavar="URL", help="the study server (default: `server` in the configuration)")
        a.set_defaults(run=run)
        return a

    action("init", "create or migrate the schema, roles' privileges and policies (run by an administrator)", run_init)
    st = action("add-station", "register a station and its login role (an administrator)", run_add_station)
    st.add_argument("station", metavar="NAME", help="the station's name (letters, digits, . _ -)")
    st.add_argument("--role", help="its login role (default: the station's name)")
    co = action("add-coordinator", "give a login role the coordinator's rights (an administrator)",
                run_add_coordinator)
    co.add_argument("role", metavar="ROLE")
    su = action("add-subject", "register a subject (and its regimen) for every station to pull (a coordinator)",
                run_add_subject)
    su.add_argument("subject_id", metavar="ID")
    su.add_argument("--kind", required=True, choices=("human", "animal", "cells"))
    su.add_argument("--regimen", metavar="NAME|FILE", help="a regimen preset or TOML file (`livctl regimen list`)")
    su.add_argument("--start", type=date_arg, metavar="DATE", help="the regimen's first day (default: today)")
    length = su.add_mutually_exclusive_group()
    length.add_argument("--weeks", type=positive_int, metavar="N", help="the regimen's length in weeks")
    length.add_argument("--days", type=positive_int, metavar="N", help="the regimen's length in days")
    su.add_argument("--tz", metavar="ZONE", help="the regimen's time zone (default: the configuration's lab zone)")
    su.add_argument("--note")
    su.add_argument("--operator", help="who registers it (default: the configuration's, else the login name)")
    status = action("status", "each station's last sync, records and chain head", run_status)
    add_json_option(status, "one object per station")


def _usage(parser: argparse.ArgumentParser) -> int:
    from livctl.errors import UsageError

    raise UsageError("choose an action: init, add-station, add-coordinator, add-subject, status "
                     "(see `livctl server --help`)")


def _connect(args: argparse.Namespace, *, checked: bool = True):
    from livctl.cli.sync import server_url
    from livctl.multisite.connect import connect
    from livctl.multisite.migrations import check_version

    url = server_url(args)
    conn = connect(url)
    if checked:
        try:
            check_version(conn, url)
        except BaseException:
            conn.close()
            raise
    return url, conn


def _server_errors(call):
    """Run `call`; a refusal by the server (privileges, a missing role) is a one-line error."""
    import psycopg

    from livctl.multisite.connect import ServerError

    try:
        return call()
    except psycopg.Error as exc:
        raise ServerError(f"the study server refused: {' '.join(str(exc).split())}") from None


def run_init(args: argparse.Namespace) -> int:
    from livctl.multisite.migrations import SCHEMA_VERSION, migrate

    url, conn = _connect(args, checked=False)
    with conn:
        applied = _server_errors(lambda: migrate(conn))
    for version, description in applied:
        print(f"applied migration {version}: {description}")
    print(f"{url}: livctl study schema {SCHEMA_VERSION}" + ("" if applied else " (already current)"))
    return 0


def run_add_station(args: argparse.Namespace) -> int:
    from livctl.multisite.admin import add_station

    url, conn = _connect(args)
    with conn:
        role = _server_errors(lambda: add_station(conn, args.station, args.role))
    print(f"station {args.station} added, role {role}: give it a password (psql: \\password {role}) or a client "
          f"certificate, then on the station: livctl sync --server postgresql://{role}@HOST/DATABASE")
    return 0


def run_add_coordinator(args: argparse.Namespace) -> int:
    from livctl.multisite.admin import add_coordinator

    url, conn = _connect(args)
    with conn:
        _server_errors(lambda: add_coordinator(conn, args.role))
    print(f"{args.role} is a coordinator of the study on {url}")
    return 0


def run_add_subject(args: argparse.Namespace) -> int:
    from livctl.cli.common import operator_name
    from livctl.clock import utc_now
    from livctl.multisite.admin import add_study_subject
    from livctl.records.doselog import iso_utc

    regimen = None
    if args.regimen is not None:
        from livctl.cli.common import station
        from livctl.study.regimen import resolve_regimen

        resolved, source = resolve_regimen(args.regimen, start=args.start, weeks=args.weeks, days=args.days, timezone=args.tz,
                                           default_timezone=station().timezone()[0])
        regimen = (resolved.name, resolved.to_dict(), source)
    url, conn = _connect(args)
    with conn:
        _server_errors(lambda: add_study_subject(conn, args.subject_id, args.kind, note=args.note,
                                                 operator=operator_name(args.operator), regimen=regimen,
                                                 now_utc=iso_utc(utc_now())))
    print(f"subject {args.subject_id} registered on the study server; stations get it with their next `livctl sync`")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from livctl.multisite.study import StudyLog

    from livctl.cli.sync import server_url

    with StudyLog(server_url(args)) as study:
        stations = study.stations()
    if args.json:
        print_json(stations)
        return 0
    print(station_table(stations))
    return 0


def station_table(stations: list[dict]) -> str:
    """The per-station summary: records, chain head, last sync."""
    if not stations:
        return "no stations registered yet (`livctl server add-station NAME`)"
    rows = [[s["station"], f"{s['records']:,}", s["head_hash"][:16] + "...", s["last_sync_utc"] or "never"]
            for s in stations]
    return table(rows, ["station", "records", "chain head", "last sync (UTC)"])


def study_log_url(args: argparse.Namespace) -> str | None:
    """The study server named by `--log` (a postgresql:// URL, or `server`: the configuration's),
    else None (a dose log file)."""
    from livctl.multisite.connect import check_url, is_server_url

    given = getattr(args, "log", None)
    if given == "server":
        from livctl.cli.sync import server_url

        return server_url(argparse.Namespace(), "--log server")
    return check_url(given) if is_server_url(given) else None


def run_study_verify(args: argparse.Namespace) -> int:
    """`livctl log verify --log postgresql://...`: every station's chain on the server."""
    import sys

    from livctl.cli.common import verify_progress
    from livctl.errors import LivctlError
    from livctl.multisite.study import StudyLog

    with StudyLog(study_log_url(args)) as study:
        checks = study.verify_stations(verify_progress())
        stations = {s["station"]: s for s in study.stations()}
    bad = [c for c in checks if not c.ok]
    if args.json:
        print_json({"ok": not bad, "log": study_log_url(args), "records": sum(c.records for c in checks),
                    "stations": [dict(c.to_dict(), role=stations[c.station]["role"]) for c in checks]})
    else:
        rows = [[c.station, f"{c.records:,}", f"{c.head_seq:,}", c.head_hash[:16] + "...", c.last_sync_utc or "never",
                 "intact" if c.ok else f"BROKEN at record {c.bad_seq}"] for c in checks]
        print(table(rows, ["station", "records", "head", "head hash", "last sync (UTC)", "chain"])
              if rows else "no stations registered yet")
    for c in bad[1:]:
        print(f"livctl: also: {c.problem}", file=sys.stderr)
    if bad:
        raise LivctlError(f"{study_log_url(args)} fails verification: {bad[0].problem}; nothing was repaired")
    if not args.json:
        print(f"{study_log_url(args)}: {len(checks)} station chains intact, {sum(c.records for c in checks):,} records")
    return 0
