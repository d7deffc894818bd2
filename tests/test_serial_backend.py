"""`serial://` against `python -m firmware_sim --pty`: real sessions, every injected fault, bad ports.

Each fault must end with the platform stopped (the simulator's own account of its output) and a
dose log that tells the truth: the session's end, its reason, the delivered seconds equal to the
logged delivery windows, and no damaged or missing data read as acceleration.
"""

import json
import os
import random
import re
import threading
import time

import numpy as np
import pytest
from serial.tools.list_ports_common import ListPortInfo

from conftest import run_livctl
from firmware_sim.board import pattern_counts
from fwsim import FirmwareSim
from livctl.platforms import open_platform
from livctl.records.doselog import DoseLog
from livctl.errors import DeviceOpenError, DeviceTripped, DeviceURLError, PlatformError
from livctl.units import g_to_mps2

# ADXL355: a quiet sensor, so the pre-check needs one step and the sessions stay a few seconds long
SESSION = ["--minutes", "0.05", "--ramp", "0.5", "--window", "0.5", "--json", "--quiet"]
FAULT_AT_S = "3.85"
"""Seconds after the output first came on: pre-check 2.5 s (five steps from the safe first drive),
ramp 0.5 s, then 0.85 s of delivery."""


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory):
    """A calibration of the board behind a pty (platform FWSIM-0001, ADXL355), made over the serial
    link like any real platform's: a platform that is not simulated accepts no other."""
    directory = tmp_path_factory.mktemp("calibration")
    sim = FirmwareSim(directory / "board", "--sensor", "adxl355")
    try:
        result = run_livctl("calibrate", "--device", sim.url(), "--steps", "4", "--no-plot", "--quiet",
                            "--calibration-dir", str(directory), timeout=120)
    finally:
        sim.stop()
    assert result.returncode == 0, result.stderr
    return directory


@pytest.fixture
def firmware(tmp_path):
    started = []

    def start(*args: str) -> FirmwareSim:
        sim = FirmwareSim(tmp_path / f"sim{len(started)}", *args)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        if sim.proc.poll() is None:
            sim.stop()


def _session(sim: FirmwareSim, log_path, calibration_dir, *extra: str):
    result = run_livctl("session", "--yes", "--device", sim.url(), *SESSION, "--log", str(log_path),
                        "--calibration-dir", str(calibration_dir), *extra, timeout=60)
    summary = json.loads(result.stdout) if result.stdout.strip() else None
    return result, summary


def _logged(log_path, summary):
    with DoseLog(log_path, create=False) as log:
        return log.find_session(summary["session_id"]), log.windows(summary["session_id"])


def _assert_log_true(log_path, summary):
    record, windows = _logged(log_path, summary)
    assert record["status"] == summary["status"] and record["reason"] == summary["reason"]
    delivery = [w for w in windows if w["phase"] == "deliver"]
    assert record["delivered_s"] == pytest.approx(sum(w["duration_s"] for w in delivery))
    for w in delivery:  # every delivery window was measured right, or says it could not be
        if w["peak_g"] is None:
            assert w["reasons"][0].startswith("no measurement")
        else:
            assert w["frequency_hz"] == pytest.approx(30.0, abs=0.05) and w["peak_g"] == pytest.approx(0.3, rel=0.05)
    assert windows
    if any(w["drive"] > 0 for w in windows):  # driven: ramped down to zero before the cut
        assert windows[-1]["phase"] == "ramp_down" and windows[-1]["drive"] == 0.0
    else:  # the fault showed at rest (a noisy link can): nothing moved, so nothing to ramp down
        assert all(w["phase"] == "precheck" for w in windows)
    return record, windows


def _assert_stopped(stats):
    assert stats["output_on"] is False and stats["output_level"] == 0.0


def test_a_real_session_over_a_pty_delivers_and_logs_the_dose(firmware, log_path, calibration_dir):
    sim = firmware("--sensor", "adxl355")
    result, summary = _session(sim, log_path, calibration_dir)
    assert result.returncode == 0, result.stderr
    assert summary["status"] == "completed" and summary["in_spec"] is True
    assert summary["delivered_s"] == pytest.approx(3.0)
    assert summary["mean_frequency_hz"] == pytest.approx(30.0, abs=0.02)
    assert summary["mean_peak_g"] == pytest.approx(0.3, rel=0.03)
    assert summary["platform_id"] == "FWSIM-0001" and summary["simulated"] is False
    assert summary["time_base"] == "real time" and summary["device"] == sim.url()
    _, windows = _assert_log_true(log_path, summary)
    assert [w["phase"] for w in windows].count("deliver") == 6  # 0.5 s windows
    stats = sim.stop()
    _assert_stopped(stats)
    assert stats["watchdog_trips"] == 0 and stats["frames_damaged"] == 0


def test_a_tone_on_a_board_obeys_its_calibration(firmware, calibration_dir):
    # the board's platform id (FWSIM-0001) is known only once the port is open: the tone must look
    # its calibration up then, or it plays uncapped
    from livctl.records.calibration import load_calibration

    calibration = load_calibration(calibration_dir / "FWSIM-0001.toml")
    sim = firmware("--sensor", "adxl355")
    result = run_livctl("tone", "--device", sim.url(), "--level", "1", "--seconds", "1", "--ramp", "0.2",
                        "--calibration-dir", str(calibration_dir), "--json", "--quiet", timeout=60)
    assert result.returncode == 0, result.stderr
    played = json.loads(result.stdout)
    assert played["calibration_id"] == calibration.calibration_id
    assert played["level"] == pytest.approx(calibration.max_safe_drive) and played["level"] < 1.0
    assert played["measured"]["peak_g"] < 1.0
    _assert_stopped(sim.stop())


@pytest.mark.parametrize(
    "fault, reason",
    [
        (["--stall-at", FAULT_AT_S], r"the platform's accelerometer stalled: no samples for 0\.[23]\d s$"),
        (["--reboot-at", FAULT_AT_S], r"the platform restarted \(power-on reset\) during the session"),
        (["--interlock-at", FAULT_AT_S], r"the platform's interlock opened and cut the output$"),
        (["--corrupt-bytes", "3e-4", "--drop-bytes", "1e-4"], r"the serial link is (losing|corrupting) data: "),
    ],
    ids=["stalled-sensor", "reboot", "interlock", "noisy-link"],
)
def test_a_fault_stops_the_platform_and_the_log_says_why(firmware, log_path, calibration_dir, fault, reason):
    sim = firmware("--sensor", "adxl355", *fault)
    result, summary = _session(sim, log_path, calibration_dir)
    assert result.returncode == 1, result.stderr
    assert summary["status"] == "aborted" and summary["in_spec"] is False
    assert re.match(f"platform failure: {reason}", summary["reason"]), summary["reason"]
    assert "ramp-down incomplete" not in summary["reason"]  # the link lived: the ramp-down ran
    _assert_log_true(log_path, summary)
    stats = sim.stop()
    _assert_stopped(stats)
    if "--corrupt-bytes" in fault:
        assert stats["frames_damaged"] > 0 and stats["bytes_corrupted"] > 0 and stats["bytes_dropped"] > 0


def test_an_unplugged_port_ends_the_session_and_the_board_stops_itself(firmware, log_path, calibration_dir):
    sim = firmware("--sensor", "adxl355", "--unplug-at", FAULT_AT_S)
    result, summary = _session(sim, log_path, calibration_dir)
    assert result.returncode == 1, result.stderr
    assert summary["status"] == "aborted"
    assert summary["reason"].startswith(f"platform failure: serial link lost: {sim.path} failed (unplugged?)")
    assert summary["reason"].endswith("; ramp-down incomplete: serial link lost")
    record, windows = _logged(log_path, summary)
    assert record["delivered_s"] == pytest.approx(sum(w["duration_s"] for w in windows if w["phase"] == "deliver"))
    assert 0.4 <= record["delivered_s"] <= 1.6
    # without its host the board's watchdog ramped the output down; then the simulator ended
    stats = sim.wait_exit(timeout_s=10)
    _assert_stopped(stats)
    assert stats["watchdog_trips"] == 1
    assert "watchdog: no heartbeat" in sim.log and "unplugged and the output is at zero" in sim.log


def test_a_hung_board_is_a_silent_platform_and_its_hardware_watchdog_resets_it(firmware, log_path, calibration_dir):
    sim = firmware("--sensor", "adxl355", "--hang-at", FAULT_AT_S)
    result, summary = _session(sim, log_path, calibration_dir)
    assert result.returncode == 1, result.stderr
    assert summary["reason"].startswith(
        "platform failure: the platform went silent: no samples and no answer for"
    ), summary["reason"]
    record, windows = _logged(log_path, summary)
    assert record["status"] == "aborted"
    assert record["delivered_s"] == pytest.approx(sum(w["duration_s"] for w in windows if w["phase"] == "deliver"))
    stats = sim.stop()
    _assert_stopped(stats)
    assert stats["boot_id"] == 2 and "the hardware watchdog resets the hung board" in sim.log


def test_a_host_that_stops_heartbeating_is_stopped_by_the_watchdog(firmware):
    sim = firmware()
    platform = open_platform(sim.url("watchdog_s=0.3"))
    with platform:
        platform.set_frequency(30.0)
        platform.set_drive(0.2, 0.2)
        assert platform.read(0.5).n == 1600
        time.sleep(0.8)  # the host hangs: no reads, no heartbeats
        with pytest.raises(PlatformError, match="watchdog stopped the output"):
            platform.read(1.0)
        # the stream goes on, so the ramp-down can still be measured: the drive is already down,
        # leaving sensor noise (ADXL345 z: 0.24 m/s^2 RMS) where 0.2 drive shook about 2 m/s^2 RMS
        tail = platform.read(1.0).accel_mps2[-800:, 2]
        assert np.isfinite(tail).all() and np.std(tail) < 0.5
    stats = sim.stop()
    _assert_stopped(stats)
    assert stats["watchdog_trips"] == 1


def test_gaps_are_nan_of_their_exact_length_and_every_sample_received_is_exact(firmware):
    """The link test pattern through the real backend: nothing lost goes unnoticed, nothing damaged is read."""
    sim = firmware("--test-pattern", "--corrupt-bytes", "1e-4", "--drop-bytes", "5e-5")
    platform = open_platform(sim.url())
    blocks = []
    with platform:
        with pytest.raises(PlatformError, match="the serial link is losing data"):
            for _ in range(20):
                blocks.append(platform.read(0.25))
        assembler = platform.assembler
        first_u32 = None
        received = lost = 0
        for block in blocks:
            counts = np.rint(block.accel_mps2 / platform._scale)
            good = ~np.isnan(block.accel_mps2[:, 0])
            index = np.arange(block.n) + int(round(block.t0_s * block.rate_hz))
            if first_u32 is None:
                first_u32 = int(counts[0, 0])  # x of the pattern is the sample index itself
            expected = pattern_counts(first_u32, index[-1] + 1)[index]
            assert np.array_equal(counts[good], expected[good])
            assert np.isnan(block.accel_mps2[~good]).all()
            received += int(good.sum())
            lost += int((~good).sum())
        assert lost > 0 and received > 10 * lost
    stats = sim.stop()
    # every frame the simulator damaged or dropped is a frame the host found missing, and no other
    observed = range(assembler.stats.first_seq, assembler.stats.last_seq + 1)
    spoiled = {s for s in stats["damaged_seqs"] + stats["dropped_seqs"] if s in observed}
    assert set(assembler.stats.missing_seqs) == spoiled and spoiled


# -- opening ---------------------------------------------------------------------------------------


def _usage_error(result, *fragments):
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_a_port_held_by_another_livctl_is_refused_naming_the_holder(firmware, log_path):
    sim = firmware()
    holder = open_platform(sim.url())
    with holder:
        result = run_livctl("session", "--yes", "--device", sim.url(), "--minutes", "1", "--log", str(log_path))
        _usage_error(result, f"serial port {sim.path} is in use by process {os.getpid()} (", "stop it first")
        holder.read(0.1)  # the first session is undisturbed
    assert not log_path.exists() or not DoseLog(log_path).sessions()


def test_a_platform_of_another_protocol_version_is_refused(firmware, cli, log_path):
    sim = firmware("--protocol", "2.0")
    result = cli("session", "--yes", "--device", sim.url(), "--minutes", "1", "--log", str(log_path))
    assert result.code == 2 and result.err.count("\n") == 1
    assert "speaks livctl platform protocol 2.0; this livctl speaks 1.x" in result.err


def test_a_board_that_cannot_enforce_limits_of_its_own_is_refused(firmware, cli, log_path):
    sim = firmware("--protocol", "1.0")
    result = cli("session", "--yes", "--device", sim.url(), "--minutes", "1", "--log", str(log_path))
    assert result.code == 2 and result.err.count("\n") == 1
    assert "speaks protocol 1.0, which cannot enforce a drive limit or cut its own output" in result.err
    assert sim.stop()["output_ever_on"] is False


def test_the_board_enforces_the_ceiling_livctl_sets_even_against_livctl(firmware):
    # the host's clamp bypassed on purpose (the backend's own _set_drive): the board refuses
    sim = firmware()
    with open_platform(sim.url()) as platform:
        assert platform.limit_drive(0.2) == 0.2
        assert platform.arm_trip(g_to_mps2(1.15))
        assert platform.link.query("SOUR:LIM?;:SENS:TRIP?", str) == "0.2;1.15"
        platform.set_frequency(30.0)
        with pytest.raises(PlatformError, match="refused .*above the drive limit 0.2"):
            platform._set_drive(0.5, 0.1)
        platform.set_drive(0.5, 0.1)  # through the front door: clamped to the ceiling
        assert platform.commanded_drive == 0.2
        platform.read(0.4)
        assert float(platform.link.query("OUTP:LEV?", str)) == pytest.approx(0.2)
    stats = sim.stop()
    assert stats["output_on"] is False and stats["output_level"] == 0.0


def test_the_boards_own_trip_cuts_and_livctl_reports_it(firmware):
    # a trip set far under what the drive gives: the board cuts within two cycles, the host is told
    sim = firmware()
    with open_platform(sim.url()) as platform:
        platform.arm_trip(g_to_mps2(0.05))
        platform.set_frequency(30.0)
        platform.set_drive(0.2, 0.0)  # about 0.3 g on this plate
        with pytest.raises(DeviceTripped, match="own over-acceleration trip"):
            for _ in range(20):
                platform.read(0.1)
    stats = sim.stop()
    assert stats["over_acceleration_trips"] == 1 and stats["output_level"] == 0.0
    assert "over-acceleration: samples past the 0.05 g trip; output cut" in sim.log


def test_a_tone_on_an_uncalibrated_board_is_refused_and_nothing_moves(firmware, cli, tmp_path):
    sim = firmware()
    result = cli("tone", "--device", sim.url(), "--level", "1", "--calibration-dir", str(tmp_path / "none"))
    assert result.code == 2 and result.err.count("\n") == 1
    assert result.err.startswith("livctl: error: platform 'FWSIM-0001' has no calibration in ")
    assert sim.stop()["output_ever_on"] is False


def test_a_tone_on_a_board_with_a_calibration_made_on_the_simulator_is_refused(firmware, cli, tmp_path):
    made_on_sim = cli("calibrate", "--device", "sim://?id=FWSIM-0001", "--speed", "max", "--no-plot", "--quiet",
                      "--calibration-dir", str(tmp_path))
    assert made_on_sim.code == 0, made_on_sim
    sim = firmware()
    result = cli("tone", "--device", sim.url(), "--level", "0.1", "--calibration-dir", str(tmp_path))
    assert result.code == 2 and "was made on a simulated platform" in result.err
    assert sim.stop()["output_ever_on"] is False


def _fake_port(answer):
    """A real pty whose other end answers each line with `answer(line)` (None: stays silent)."""
    master, slave = os.openpty()
    stop = threading.Event()

    def serve():
        buf = b""
        while not stop.is_set():
            try:
                data = os.read(master, 1024)
            except OSError:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                reply = answer(line.decode(errors="replace").strip())
                if reply is not None:
                    os.write(master, reply.encode("latin-1") + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    path = os.ttyname(slave)

    def close():
        stop.set()
        os.close(slave)
        os.close(master)
        thread.join(2)

    return path, close


def test_another_instrument_is_refused_as_not_a_livctl_platform(cli, log_path):
    path, close = _fake_port(lambda line: "KEITHLEY INSTRUMENTS INC.,MODEL 2000,1234567,A19" if line == "*IDN?" else None)
    try:
        result = cli("session", "--yes", "--device", f"serial://{path}", "--minutes", "1", "--log", str(log_path))
    finally:
        close()
    assert result.code == 2 and result.err.count("\n") == 1
    assert "is not a livctl platform: it identifies as 'KEITHLEY INSTRUMENTS INC.,MODEL 2000" in result.err


def test_a_port_that_answers_random_bytes_is_refused_cleanly(cli, log_path):
    rng = random.Random(3)
    path, close = _fake_port(lambda line: bytes(rng.getrandbits(8) for _ in range(300)).decode("latin-1"))
    try:
        result = cli("session", "--yes", "--device", f"serial://{path}", "--minutes", "1", "--log", str(log_path))
    finally:
        close()
    assert result.code == 2 and result.err.count("\n") == 1 and "no answer to *IDN? from" in result.err


def test_a_silent_port_is_refused_after_its_timeouts(cli, log_path):
    path, close = _fake_port(lambda line: None)
    started = time.monotonic()
    try:
        result = cli("session", "--yes", "--device", f"serial://{path}", "--minutes", "1", "--log", str(log_path))
    finally:
        close()
    assert result.code == 2 and "no answer to *IDN? from" in result.err and "921600 baud" in result.err
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("serial:///dev/ttyNOPE0", "no serial port /dev/ttyNOPE0; `livctl devices` lists the ports"),
        ("serial://", "serial:// needs a port"),
        ("serial:///dev/ttyS0?baud=fast", "baud='fast'"),
        ("serial:///dev/ttyS0?watchdog_s=30", "it must be a positive number of s (0.1 to 10)"),
        ("serial:///dev/ttyS0?stall_s=0", "must be a positive number"),
        ("serial:///dev/ttyS0?parity=E", "no option parity; known options: baud, stall_s, watchdog_s"),
    ],
)
def test_bad_serial_urls_are_one_line_usage_errors(cli, log_path, url, fragment):
    result = cli("session", "--yes", "--device", url, "--minutes", "1", "--log", str(log_path))
    assert result.code == 2 and result.err.count("\n") == 1 and fragment in result.err, result


def test_a_baud_rate_too_slow_for_the_stream_is_refused(firmware):
    sim = firmware()
    with pytest.raises(DeviceOpenError, match=r"more than 115200 baud carries .* use baud=921600"):
        open_platform(sim.url("baud=115200")).open()


def test_speed_is_refused_for_serial_platforms(cli, log_path):
    result = cli("session", "--yes", "--device", "serial:///dev/ttyS0", "--speed", "max", "--log", str(log_path))
    assert result.code == 2 and "simulator (sim://) only" in result.err
    with pytest.raises(DeviceURLError, match="run in real time"):
        open_platform("serial:///dev/ttyS0", speed=10.0)
    with pytest.raises(DeviceURLError, match="run in real time"):  # every real platform, checked in one place
        open_platform("audio://system?max_level=0.1", speed=10.0)


# -- livctl devices ---------------------------------------------------------------------------------


def test_devices_lists_the_simulator_and_serial_ports_as_json(cli):
    result = cli("devices", "--json")
    assert result.code == 0
    listing = json.loads(result.out)
    urls = [d["url"] for d in listing["devices"]]
    assert urls[0] == "sim://" and listing["devices"][0]["backend"] == "sim"
    from serial.tools import list_ports

    assert {f"serial://{p.device}" for p in list_ports.comports()} <= set(urls)


def test_devices_probe_tells_a_platform_from_a_held_port(firmware, cli, monkeypatch):
    free = firmware("--serial", "42")
    held = firmware()
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [ListPortInfo(free.path), ListPortInfo(held.path)])
    with open_platform(held.url()):
        result = cli("devices", "--probe", "--json")
        table = cli("devices", "--probe")
    rows = {d["url"]: d for d in json.loads(result.out)["devices"]}
    assert rows[free.url()]["identity"] == "LIVCTL,FWSIM,42,1.2" and rows[free.url()]["status"] == "livctl platform"
    assert rows[free.url()]["protocol"] == "1.2"
    assert f"in use by process {os.getpid()}" in rows[held.url()]["status"]
    assert "livctl platform, LIVCTL,FWSIM,42,1.2" in table.out


def test_devices_reports_a_backend_that_cannot_load_as_a_note(cli, monkeypatch):
    from livctl import platforms

    monkeypatch.setitem(platforms.BACKENDS, "audio", "livctl.platforms.no_such_audio_backend")
    result = cli("devices")
    assert result.code == 0
    assert "sim://" in result.out
    assert "note: audio:// is not available: No module named 'livctl.platforms.no_such_audio_backend'" in result.out


def test_devices_has_help_with_examples(cli):
    result = cli("devices", "--help")
    assert result.code == 0 and "--probe" in result.out and "examples:" in result.out


def test_a_board_whose_frames_arrive_cut_short_is_a_corrupting_link_not_a_restart(log_path):
    # a real pty to a real board whose frames lose all but their first 3 bytes on the way
    from firmware_sim.board import Board
    from firmware_sim.device import SimConfig, SimulatedPlatform
    from firmware_sim.server import Server

    class CutShort(Server):
        def _send(self, chunk, *, is_frame):
            super()._send(chunk[:3] if is_frame else chunk, is_frame=is_frame)

    server = CutShort(Board(SimulatedPlatform(SimConfig())))
    path = server.open()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        with open_platform(f"serial://{path}") as platform, pytest.raises(PlatformError) as failed:
            for _ in range(20):
                platform.read(0.1)
    finally:
        server.stopping = True
        thread.join(5)
        server.close()
    assert str(failed.value).startswith("the serial link is corrupting data: ")
    assert "restarted" not in str(failed.value)


def test_an_instrument_that_claims_the_protocol_but_is_not_a_livctl_platform_is_refused(cli, log_path):
    answers = {"*IDN?": "ACME CORP,SHAKER 9,42,2.0", "SYST:PROT?": "1.1"}
    path, close = _fake_port(lambda line: answers.get(line))
    try:
        result = cli("session", "--device", f"serial://{path}", "--minutes", "1", "--log", str(log_path))
    finally:
        close()
    assert result.code == 2 and result.err.count("\n") == 1
    assert "is not a livctl platform: it identifies as 'ACME CORP,SHAKER 9,42,2.0'" in result.err
