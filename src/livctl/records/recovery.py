"""Closing the records of sessions whose livctl process died (killed, crashed, power lost).

Such a session has a start and windows in the dose log but no end. The next livctl that opens the
log on the same host finds it, sees that the process that ran it is gone, and appends the end the
process could not write: status `interrupted`, the seconds delivered as its logged windows show,
and the last measured window. Its raw-signal archive (the signal up to its writer's last flush,
less than a second before the process died) is sealed as found and chained before that end.
Sessions of other hosts are left alone (their processes cannot be checked from here); a session
whose process still runs is left alone.
"""

from __future__ import annotations

import os
import socket

from livctl.records import archive as raw
from livctl.records.doselog import DoseLog

__all__ = ["close_orphans"]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def close_orphans(log: DoseLog) -> list[str]:
    """Append an `interrupted` end to every unfinished session of a dead process on this host.

    Returns the ids of the sessions it closed.
    """
    if log.read_only:
        return []  # a log that cannot be written here is only read: its orphans wait for a writer
    host = socket.gethostname()
    closed = []
    for session in log.sessions():
        if session["status"] != "running" or session["host"] != host:
            continue
        pid = session["pid"]
        if pid == os.getpid() or _process_alive(pid):
            continue
        end = _end_from_windows(session, log.windows(session["session_id"]))
        archive = raw.archive_dir(log.path) / f"{session['session_id']}.h5"
        seal = raw.seal_left_behind(archive, log.path.parent)
        # another livctl starting on this host may be closing it too: one of them does
        if log.end_session(session["session_id"], end, unless_ended=True, archive=seal.record() if seal else None):
            closed.append(session["session_id"])
    return closed


def _end_from_windows(session: dict, windows: list[dict]) -> dict:
    delivery = [w for w in windows if w["phase"] == "deliver"]
    measured = [w for w in delivery if w["peak_g"] is not None]
    delivered_s = sum(w["duration_s"] for w in delivery)
    in_spec_s = sum(w["duration_s"] for w in delivery if w["in_spec"])
    measured_s = sum(w["duration_s"] for w in measured)

    def mean(key: str) -> float | None:
        return sum(w[key] * w["duration_s"] for w in measured) / measured_s if measured_s else None

    last = windows[-1] if windows else None
    where = (
        f"; last logged window #{last['idx']} ({last['phase']}) at {last['t_s']:.1f} s"
        if last
        else "; no window was logged"
    )
    return {
        "status": "interrupted",
        "reason": f"the livctl process (pid {session['pid']}) ended without closing the session (killed or crashed)"
        + where,
        "delivered_s": delivered_s,
        "in_spec_s": in_spec_s,
        "in_spec_fraction": in_spec_s / delivered_s if delivered_s else None,
        "mean_frequency_hz": mean("frequency_hz"),
        "mean_peak_g": mean("peak_g"),
        "mean_thd_percent": mean("thd_percent"),
        "in_spec": False,
        "window_count": len(windows),
    }
