"""The study server's schema, as numbered migrations, and its roles.

Everything lives in the schema `livctl`. Record tables mirror the dose log's chained tables
(`livctl.records.doselog`), each row keyed by (station, seq) and carrying the station's prev_hash
and hash, so every record can be hashed again exactly as the station hashed it. Rows are only ever
inserted: UPDATE, DELETE and TRUNCATE are not granted to anyone and a trigger refuses them even for
the tables' owner. A statement-level trigger refuses records that do not continue their station's
chain (a gap, a fork, a record already held, a broken link). Row-level security lets a station's
role insert and read its own station's records only; the coordinator reads everything and adds
subjects and regimen assignments only.

Roles: `livctl_station` and `livctl_coordinator` are group roles without login; each station
logs in with its own role, a member of `livctl_station`, mapped to its station's name in
`livctl.stations`; coordinators are members of `livctl_coordinator`. The role that runs
`livctl server init` owns the schema (a superuser, or the database's owner with CREATEROLE):
nothing after that needs a superuser.

A migration is applied once, in its own transaction, and recorded in `livctl.schema_version`; a
livctl refuses a server whose schema is older (run `livctl server init` to migrate) or newer
(upgrade livctl) than SCHEMA_VERSION.
"""

from __future__ import annotations

from livctl.records.doselog import (
    ARCHIVE_COLUMNS,
    ASSIGNMENT_COLUMNS,
    END_COLUMNS,
    SESSION_COLUMNS,
    SUBJECT_COLUMNS,
    WINDOW_COLUMNS,
)

__all__ = ["SCHEMA_VERSION", "RECORD_COLUMNS", "STATION_GROUP", "COORDINATOR_GROUP", "check_version", "migrate"]

STATION_GROUP = "livctl_station"
COORDINATOR_GROUP = "livctl_coordinator"

RECORD_COLUMNS: dict[str, tuple[str, ...]] = {
    "sessions": SESSION_COLUMNS,
    "windows": WINDOW_COLUMNS,
    "session_ends": END_COLUMNS,
    "archives": ARCHIVE_COLUMNS,
    "subjects": SUBJECT_COLUMNS,
    "assignments": ASSIGNMENT_COLUMNS,
}
"""The chained tables and their columns in hashing order (the dose log's)."""

_TEXT, _REAL, _INT = "text", "double precision", "bigint"
_SERVER_TYPES: dict[str, tuple[tuple[str, str], ...]] = {
    "sessions": (
        ("session_id", _TEXT), ("started_utc", _TEXT), ("device", _TEXT), ("platform_id", _TEXT),
        ("simulated", _INT), ("time_base", _TEXT), ("subject", _TEXT), ("operator", _TEXT),
        ("calibration_id", _TEXT), ("preset", _TEXT), ("frequency_hz", _REAL), ("peak_g", _REAL),
        ("duration_s", _REAL), ("ramp_s", _REAL), ("tol_frequency_hz", _REAL), ("tol_accel_fraction", _REAL),
        ("max_thd_fraction", _REAL), ("min_in_spec_fraction", _REAL), ("window_s", _REAL),
        ("livctl_version", _TEXT), ("host", _TEXT), ("pid", _INT), ("regimen", _TEXT), ("deviation", _TEXT),
        ("override_reason", _TEXT), ("practice", _INT),
    ),
    "windows": (
        ("session_id", _TEXT), ("idx", _INT), ("phase", _TEXT), ("t_s", _REAL), ("duration_s", _REAL),
        ("drive", _REAL), ("frequency_hz", _REAL), ("peak_g", _REAL), ("rms_g", _REAL), ("thd_percent", _REAL),
        ("snr_db", _REAL), ("sinad_db", _REAL), ("dc_g", _REAL), ("axis", _TEXT), ("off_axis_percent", _REAL),
        ("in_spec", _INT), ("reasons", _TEXT),
    ),
    "session_ends": (
        ("session_id", _TEXT), ("ended_utc", _TEXT), ("status", _TEXT), ("reason", _TEXT), ("delivered_s", _REAL),
        ("in_spec_s", _REAL), ("in_spec_fraction", _REAL), ("mean_frequency_hz", _REAL), ("mean_peak_g", _REAL),
        ("mean_thd_percent", _REAL), ("in_spec", _INT), ("window_count", _INT),
    ),
    "archives": (
        ("session_id", _TEXT), ("file", _TEXT), ("sha256", _TEXT), ("bytes", _INT), ("samples", _INT),
        ("complete", _INT), ("note", _TEXT),
    ),
    "subjects": (
        ("subject_id", _TEXT), ("kind", _TEXT), ("note", _TEXT), ("added_utc", _TEXT), ("operator", _TEXT),
    ),
    "assignments": (
        ("subject_id", _TEXT), ("assigned_utc", _TEXT), ("operator", _TEXT), ("regimen_name", _TEXT),
        ("regimen", _TEXT), ("source", _TEXT),
    ),
}
"""Schema 1's record columns with their server types (frozen: a later column is a new migration).
The dose log's REAL is float8 (exact round trip), its INTEGER bigint, its TEXT text."""


def _record_table(table: str) -> str:
    body = ",\n  ".join(f"{name} {kind}" for name, kind in _SERVER_TYPES[table])
    return f"""
CREATE TABLE livctl.{table} (
  station text NOT NULL,
  seq bigint NOT NULL CHECK (seq > 0),
  prev_hash bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
  hash bytea NOT NULL CHECK (octet_length(hash) = 32),
  {body},
  PRIMARY KEY (station, seq)
);
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON livctl.{table}
  FOR EACH ROW EXECUTE FUNCTION livctl.refuse_change();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON livctl.{table}
  FOR EACH STATEMENT EXECUTE FUNCTION livctl.refuse_change();
CREATE TRIGGER {table}_continues_chain AFTER INSERT ON livctl.{table}
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION livctl.check_chain();
ALTER TABLE livctl.{table} ENABLE ROW LEVEL SECURITY;
CREATE POLICY station_reads_own ON livctl.{table} FOR SELECT TO {STATION_GROUP}
  USING (station = (SELECT livctl.my_station()));
CREATE POLICY station_inserts_own ON livctl.{table} FOR INSERT TO {STATION_GROUP}
  WITH CHECK (station = (SELECT livctl.my_station()));
CREATE POLICY coordinator_reads_all ON livctl.{table} FOR SELECT TO {COORDINATOR_GROUP} USING (true);
REVOKE ALL ON livctl.{table} FROM PUBLIC;
GRANT SELECT, INSERT ON livctl.{table} TO {STATION_GROUP};
GRANT SELECT ON livctl.{table} TO {COORDINATOR_GROUP};
"""


def _append_only(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON livctl.{table}
  FOR EACH ROW EXECUTE FUNCTION livctl.refuse_change();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON livctl.{table}
  FOR EACH STATEMENT EXECUTE FUNCTION livctl.refuse_change();
REVOKE ALL ON livctl.{table} FROM PUBLIC;
"""


_CHAIN_VIEW = "\n  UNION ALL ".join(
    f"SELECT station, seq, prev_hash, hash, '{table}'::text AS kind FROM livctl.{table}" for table in _SERVER_TYPES
)

_SCHEMA_1 = f"""
CREATE FUNCTION livctl.refuse_change() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'livctl.% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TABLE livctl.stations (
  station text PRIMARY KEY CHECK (station ~ '^[A-Za-z0-9][A-Za-z0-9._-]{{0,62}}$'),
  role name NOT NULL UNIQUE,
  added_utc timestamptz NOT NULL DEFAULT now()
);
{_append_only("stations")}
ALTER TABLE livctl.stations ENABLE ROW LEVEL SECURITY;
CREATE POLICY station_reads_own ON livctl.stations FOR SELECT TO {STATION_GROUP} USING (role = current_user);
CREATE POLICY coordinator_reads_all ON livctl.stations FOR SELECT TO {COORDINATOR_GROUP} USING (true);
GRANT SELECT ON livctl.stations TO {STATION_GROUP}, {COORDINATOR_GROUP};

CREATE FUNCTION livctl.my_station() RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
  AS $$ SELECT station FROM livctl.stations WHERE role = current_user $$;

CREATE FUNCTION livctl.check_chain() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  st text;
  first_seq bigint;
  n bigint;
  first_prev bytea;
  expected bytea;
  held bigint;
  bad bigint;
BEGIN
  FOR st IN SELECT DISTINCT station FROM new_rows LOOP
    -- one writer per station at a time: a second one sees the first one's records
    PERFORM pg_advisory_xact_lock(hashtextextended('livctl.chain:' || st, 0));
    SELECT min(seq), count(*) INTO first_seq, n FROM new_rows WHERE station = st;
    SELECT x.seq INTO bad FROM (
        SELECT seq, prev_hash, lag(seq) OVER w AS before_seq, lag(hash) OVER w AS before_hash
        FROM new_rows WHERE station = st WINDOW w AS (ORDER BY seq)) x
      WHERE x.before_seq IS NOT NULL AND (x.before_seq <> x.seq - 1 OR x.before_hash <> x.prev_hash)
      ORDER BY x.seq LIMIT 1;
    IF bad IS NOT NULL THEN
      RAISE EXCEPTION 'station %: record % does not follow record %: refused', st, bad, bad - 1
        USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    SELECT prev_hash INTO first_prev FROM new_rows WHERE station = st AND seq = first_seq;
    IF first_seq = 1 THEN
      expected := '\\x{'00' * 32}'::bytea;
    ELSE
      SELECT c.hash INTO expected FROM livctl.chain c WHERE c.station = st AND c.seq = first_seq - 1;
      IF expected IS NULL THEN
        RAISE EXCEPTION 'station %: record % sent before record %: refused', st, first_seq, first_seq - 1
          USING ERRCODE = 'integrity_constraint_violation';
      END IF;
    END IF;
    IF expected <> first_prev THEN
      RAISE EXCEPTION 'station %: record % does not follow record % held by the server (a rewritten or forked log): refused',
        st, first_seq, first_seq - 1 USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    SELECT count(*) INTO held FROM livctl.chain c WHERE c.station = st AND c.seq >= first_seq;
    IF held <> n THEN
      RAISE EXCEPTION 'station %: the server already holds a record at or after %: refused', st, first_seq
        USING ERRCODE = 'integrity_constraint_violation';
    END IF;
  END LOOP;
  RETURN NULL;
END $$;

{''.join(_record_table(t) for t in _SERVER_TYPES)}

CREATE VIEW livctl.chain WITH (security_invoker = true) AS
  {_CHAIN_VIEW};
GRANT SELECT ON livctl.chain TO {STATION_GROUP}, {COORDINATOR_GROUP};

CREATE TABLE livctl.syncs (
  station text NOT NULL,
  head_seq bigint NOT NULL,
  head_hash bytea NOT NULL,
  records bigint NOT NULL,
  synced_utc timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (station, head_seq)
);
{_append_only("syncs")}
ALTER TABLE livctl.syncs ENABLE ROW LEVEL SECURITY;
CREATE POLICY station_reads_own ON livctl.syncs FOR SELECT TO {STATION_GROUP}
  USING (station = (SELECT livctl.my_station()));
CREATE POLICY station_inserts_own ON livctl.syncs FOR INSERT TO {STATION_GROUP}
  WITH CHECK (station = (SELECT livctl.my_station()));
CREATE POLICY coordinator_reads_all ON livctl.syncs FOR SELECT TO {COORDINATOR_GROUP} USING (true);
GRANT SELECT, INSERT ON livctl.syncs TO {STATION_GROUP};
GRANT SELECT ON livctl.syncs TO {COORDINATOR_GROUP};

CREATE TABLE livctl.study_subjects (
  subject_id text PRIMARY KEY CHECK (subject_id <> '' AND subject_id = btrim(subject_id)),
  kind text NOT NULL CHECK (kind IN ('human', 'animal', 'cells')),
  note text,
  added_utc text NOT NULL,
  operator text,
  added_by name NOT NULL DEFAULT current_user
);
{_append_only("study_subjects")}
CREATE TABLE livctl.study_assignments (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subject_id text NOT NULL REFERENCES livctl.study_subjects,
  assigned_utc text NOT NULL,
  operator text,
  regimen_name text NOT NULL,
  regimen text NOT NULL,
  source text NOT NULL,
  added_by name NOT NULL DEFAULT current_user
);
{_append_only("study_assignments")}
GRANT SELECT ON livctl.study_subjects, livctl.study_assignments TO {STATION_GROUP};
GRANT SELECT, INSERT ON livctl.study_subjects, livctl.study_assignments TO {COORDINATOR_GROUP};
GRANT SELECT ON livctl.schema_version TO {STATION_GROUP}, {COORDINATOR_GROUP};
GRANT USAGE ON SCHEMA livctl TO {STATION_GROUP}, {COORDINATOR_GROUP};
"""

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "stations, chained records, syncs, study subjects and regimens; roles' privileges and policies", _SCHEMA_1),
)
"""(version, what it does, SQL), in order. Never edit an applied migration: add the next one."""
SCHEMA_VERSION = MIGRATIONS[-1][0]

_BOOTSTRAP = f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{STATION_GROUP}') THEN CREATE ROLE {STATION_GROUP} NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{COORDINATOR_GROUP}') THEN CREATE ROLE {COORDINATOR_GROUP} NOLOGIN; END IF;
END $$;
CREATE SCHEMA IF NOT EXISTS livctl;
REVOKE ALL ON SCHEMA livctl FROM PUBLIC;
CREATE TABLE IF NOT EXISTS livctl.schema_version (
  version integer PRIMARY KEY,
  description text NOT NULL,
  applied_utc timestamptz NOT NULL DEFAULT now()
);
"""


def applied_version(conn) -> int:
    """The server's schema version (0: livctl's schema is not there)."""
    row = conn.execute("SELECT to_regclass('livctl.schema_version') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM livctl.schema_version").fetchone()[0]


def migrate(conn) -> list[tuple[int, str]]:
    """Create the group roles and the schema if missing, then apply the migrations the server
    lacks, each in its own transaction. Returns the migrations applied (none: already current)."""
    from livctl.multisite.connect import ServerError

    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('livctl.migrate', 0))")
        conn.execute(_BOOTSTRAP)
    current = applied_version(conn)
    if current > SCHEMA_VERSION:
        raise ServerError(f"the study server's schema is {current}, newer than this livctl's ({SCHEMA_VERSION}); "
                          "upgrade livctl")
    applied = []
    for version, description, sql in MIGRATIONS:
        if version <= current:
            continue
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('livctl.migrate', 0))")
            if applied_version(conn) >= version:
                continue  # another `server init` applied it meanwhile
            conn.execute(sql)
            conn.execute("INSERT INTO livctl.schema_version (version, description) VALUES (%s, %s)",
                         (version, description))
        applied.append((version, description))
    return applied


def check_version(conn, url: str) -> None:
    """ServerError (one line) unless the server holds exactly this livctl's schema."""
    from livctl.multisite.connect import ServerError

    version = applied_version(conn)
    if version == SCHEMA_VERSION:
        return
    if version == 0:
        raise ServerError(f"{url} holds no livctl study (no livctl.schema_version); an administrator runs "
                          "`livctl server init` first")
    if version > SCHEMA_VERSION:
        raise ServerError(f"the study server's schema is {version}, newer than this livctl's ({SCHEMA_VERSION}); "
                          "upgrade livctl")
    raise ServerError(f"the study server's schema is {version}, older than this livctl's ({SCHEMA_VERSION}); "
                      "an administrator runs `livctl server init` to migrate it")
