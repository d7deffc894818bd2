"""A private, throwaway PostgreSQL instance for tests and benchmarks.

`PrivateServer` runs initdb and postgres (the distribution's binaries, the newest under
/usr/lib/postgresql unless $LIVCTL_PG_BIN says otherwise) in a temporary directory, listening only on a Unix socket in
that directory (no TCP at all), and removes it when stopped. As root, the server runs as the
unprivileged `postgres` user (`runuser`), since initdb and postgres refuse to run as root. Never a
shared server: each instance is its own cluster.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

def _server_binaries() -> Path:
    """$LIVCTL_PG_BIN, else the newest of the distribution's PostgreSQL versions installed (Debian
    12 ships 15, Debian 13 ships 17), else where Debian 12 puts them."""
    if os.environ.get("LIVCTL_PG_BIN"):
        return Path(os.environ["LIVCTL_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _server_binaries()
PORT = 5432  # names the socket file only: the server listens on no TCP address


def available() -> str | None:
    """None when a private server can be started here, else why not (one line)."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL server binaries not found in {PG_BIN} (scripts/setup.sh installs them)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no unprivileged `postgres` user to run the server as"
    return None


class PrivateServer:
    """initdb + postgres in a temporary directory; `url(role, db)` names it for libpq."""

    def __init__(self, *, settings: dict[str, str] | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="livctl-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.settings = {"listen_addresses": "''", "fsync": "off", "full_page_writes": "off",
                         "synchronous_commit": "off", "shared_buffers": "128MB", "max_connections": "60"}
        self.settings.update(settings or {})
        self._as = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=120)

    def start(self) -> "PrivateServer":
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-instructions", "-E", "UTF8", "--locale", "C")
        options = " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o",
                  f"-p {PORT} -k {self.socket_dir} {options}", "-l", str(self.root / "server.log"), "-w", "start")
        return self

    def url(self, role: str = "postgres", database: str = "postgres") -> str:
        return f"postgresql://{role}@/{database}?host={self.socket_dir}&port={PORT}"

    def psql(self, sql: str, *, role: str = "postgres", database: str = "postgres") -> str:
        """Run SQL with psql as `role` (the superuser by default); returns its output."""
        done = subprocess.run([str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                               "-h", str(self.socket_dir), "-p", str(PORT), "-U", role, "-d", database, "-c", sql],
                              capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(done.stderr.strip())
        return done.stdout.strip()

    def stop(self) -> None:
        try:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PrivateServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
