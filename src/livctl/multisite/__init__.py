"""Multi-site studies: every station's hash-chained dose log gathered on one PostgreSQL server.

- `connect`: the study server's URL (never with a password in it) and a connection that fails in
  one line, within a timeout;
- `migrations`: the server's schema, roles' privileges and policies as numbered migrations, and
  the station and coordinator roles (`livctl server ...`);
- `push`: a station's records sent in chain order, a batch per transaction, each record checked
  against its hash before it goes; the coordinator's subjects and regimens pulled (`livctl sync`);
- `study`: the server read as one study-wide log (`--log postgresql://...` for `report`, `due`,
  `log`, `log verify`, `log export`), with each station's summary.

See docs/multisite.md.
"""
