"""`livctl sync`: send this station's dose records to the study server, and pull the study's subjects."""

from __future__ import annotations

import argparse
import sys

from livctl.cli.helpformat import HelpFormatter
from livctl.cli.common import add_json_option, add_log_option, print_json

EPILOG = """\
The study server is a PostgreSQL database set up with `livctl server init` (docs/multisite.md).
Name it with --server or `server` in the configuration ($LIVCTL_SERVER), as a libpq URL without
a password: postgresql://station-3@study.example.org/livctl?sslmode=verify-full. The password
comes from ~/.pgpass or $PGPASSWORD (or use a client certificate); a URL holding one is refused.
The role you connect as is the station: the server lets it add its own station's records only.

Each run first adds the subjects and regimens the coordinator registered on the server that this
log lacks, then sends every record of the log the server does not hold yet (sessions, windows,
archive seals, ends, subjects, assignments), in chain order, a batch per transaction. Each record
is hashed again before it goes. Run it as often as you like (a cron job, after each session): a
sync that is interrupted or killed sends the rest next time, and never a record twice. Sessions
never wait for the server: a station works offline and catches up later.

Exit 0 when the server holds the whole log; 1 when it refuses the log (a record changed after it
was written, or a log that forks from what the server holds: the first such record is named, and
nothing from it on is sent); 2 when the server cannot be used (unreachable, not set up, another
schema version, a URL with a password).

examples:
  livctl sync --server postgresql://station-3@study.example.org/livctl
  livctl sync                    the configuration's server
  livctl sync --no-pull --json"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sync",
        help="send this station's dose records to the study server (PostgreSQL)",
        description="Send the dose log's records that the study server does not hold yet, in chain order, "
        "each exactly once; pull the study's subjects and regimens first.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--server", metavar="URL", help="the study server (default: `server` in the configuration, "
                   "$LIVCTL_SERVER)")
    p.add_argument("--no-pull", action="store_true", help="do not add the coordinator's subjects and regimens to "
                   "this log")
    add_log_option(p)
    add_json_option(p, "what was sent and pulled")
    p.set_defaults(run=run)


def server_url(args: argparse.Namespace, option: str = "--server") -> str:
    """--server, else the configuration's `server`; ServerError (one line) when neither names one."""
    from livctl.cli.common import station
    from livctl.multisite.connect import ServerError, check_url

    url = station().given("server", getattr(args, "server", None), option)
    if not url:
        raise ServerError("no study server: give --server postgresql://ROLE@HOST/DATABASE, or set `server` in the "
                          "configuration (`livctl config show`)")
    return check_url(url)


def run(args: argparse.Namespace) -> int:
    from livctl.cli.common import log_path
    from livctl.multisite.connect import connect
    from livctl.multisite.migrations import check_version
    from livctl.multisite.push import SyncResult, my_station, pull, push
    from livctl.records.doselog import DoseLog

    import psycopg

    from livctl.multisite.connect import ServerError

    url = server_url(args)
    path = log_path(args)
    with DoseLog(path, create=False) as log, connect(url) as conn:
        try:
            check_version(conn, url)
            result = SyncResult(station=my_station(conn, url))
            if not args.no_pull and not log.read_only:  # a read-only copy of a log is sent, not added to
                pull(conn, log, result)
            pushed = push(conn, url, log, progress=_progress())
        except psycopg.Error as exc:  # the server went away, refused a privilege, timed out
            raise ServerError(f"the sync to {url} stopped: {' '.join(str(exc).split())}; the batches sent before "
                              "stay on the server, and the next `livctl sync` sends the rest") from None
        pushed.pulled_subjects, pushed.pulled_assignments = result.pulled_subjects, result.pulled_assignments
    if pushed.note:
        print(f"livctl: {pushed.note}", file=sys.stderr)
    if args.json:
        print_json(dict(pushed.to_dict(), log=str(path), server=url))
        return 0
    if pushed.pulled_subjects or pushed.pulled_assignments:
        print(f"pulled {len(pushed.pulled_subjects)} subjects and {pushed.pulled_assignments} regimen assignments "
              "from the study server")
    print(f"station {pushed.station}: sent {pushed.sent:,} records in {pushed.batches} batches; the server holds "
          f"records 1-{pushed.server_head_seq:,}, head {pushed.server_head_hash}")
    return 0


def _progress():
    stream = sys.stderr
    if not stream.isatty():
        return None

    def show(done: int, total: int) -> None:
        text = "" if done >= total else f"sending to the study server: {done:,} of {total:,} records"
        stream.write(f"\r\033[K{text}")
        stream.flush()

    return show
