"""Sessions on the simulated platform, in process: phases, pre-check refusals, stopping."""

import dataclasses
import json
import math
import threading

import pytest

from livctl.platforms import open_platform
from livctl.platforms.sim import SimPlatform
from livctl.records.doselog import DoseLog
from livctl.errors import UsageError
from livctl.prescription import Prescription, Tolerance
from livctl.procedures.prepare import SessionRequest, prepare_session
from livctl.procedures.safety import SafetyLimits
from livctl.procedures.session import DELIVER, PRECHECK, RAMP_DOWN, RAMP_UP, Session

REQUEST_FIELDS = {"subject", "operator", "limits", "window_s", "override_reason", "calibration_dir", "load_kg"}


def _session(platform, log, rx: Prescription, **kwargs) -> Session:
    """A session prepared as every caller's is (livctl.procedures.prepare), then built with the rest."""
    request = SessionRequest(prescription=rx, **{k: kwargs.pop(k) for k in list(kwargs) if k in REQUEST_FIELDS})
    return Session(prepare_session(platform, log, request), platform, log, **kwargs)


def _run(url: str, rx: Prescription, log_path, **kwargs):
    platform = open_platform(url, speed=math.inf)
    with DoseLog(log_path) as log, platform:
        session = _session(platform, log, rx, **kwargs)
        result = session.run()
        return result, log.find_session(result.session_id), log.windows(result.session_id), session, platform


def test_a_short_session_runs_every_phase_and_logs_every_window(log_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=30.0)
    result, record, windows, session, platform = _run("sim://?seed=2", rx, log_path, subject="P-9", operator="ana")
    assert result.status == "completed" and result.in_spec
    assert result.delivered_s == pytest.approx(30.0)
    assert result.mean_frequency_hz == pytest.approx(30.0, abs=0.01)
    assert result.mean_peak_g == pytest.approx(0.3, rel=0.02)
    phases = [w["phase"] for w in windows]
    assert phases[0] == PRECHECK
    assert phases.count(DELIVER) == 30
    assert phases.index(RAMP_UP) < phases.index(DELIVER) < phases.index(RAMP_DOWN)
    assert all(p == RAMP_DOWN for p in phases[phases.index(RAMP_DOWN):])
    assert record["window_count"] == len(windows) == result.window_count
    assert record["subject"] == "P-9" and record["operator"] == "ana" and record["simulated"]
    # the platform is left still
    assert platform.device.drive_level == 0.0


def test_precheck_never_drives_past_sixty_percent_of_the_prescription(log_path):
    rx = Prescription(frequency_hz=90.0, peak_g=0.3, duration_s=5.0)
    _, _, windows, _, _ = _run("sim://?load_kg=0.5", rx, log_path)  # a light, lively mouse platform
    precheck = [w for w in windows if w["phase"] == PRECHECK]
    measured = [w["peak_g"] for w in precheck if w["peak_g"] is not None]
    assert measured and max(measured) <= 0.6 * 0.3
    assert precheck[0]["peak_g"] is None  # the sensor check listens at rest first


def test_drive_follows_the_load_so_the_dose_stays_put(log_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.4, duration_s=10.0)
    light, _, light_windows, *_ = _run("sim://?load_kg=50", rx, log_path)
    heavy, _, heavy_windows, *_ = _run("sim://?load_kg=120", rx, log_path)
    assert light.mean_peak_g == pytest.approx(0.4, rel=0.01)
    assert heavy.mean_peak_g == pytest.approx(0.4, rel=0.01)

    def drive(windows):
        return [w["drive"] for w in windows if w["phase"] == DELIVER][-1]

    assert drive(heavy_windows) > 1.5 * drive(light_windows)


def test_a_platform_that_does_not_move_is_refused_before_any_dose(log_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=60.0)
    result, record, windows, _, platform = _run("sim://?actuator_n=0.01", rx, log_path)
    assert result.status == "aborted"
    assert "no measurable 30 Hz response" in result.reason
    assert result.delivered_s == 0.0 and not result.in_spec
    assert record["status"] == "aborted" and record["reason"] == result.reason
    assert not [w for w in windows if w["phase"] == DELIVER]
    assert platform.device.drive_level == 0.0


def test_a_prescription_beyond_the_platform_is_refused(log_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.9, duration_s=60.0)
    result, *_ = _run("sim://?load_kg=200&actuator_n=300", rx, log_path)
    assert result.status == "aborted"
    assert "cannot reach 0.9 g" in result.reason
    assert result.delivered_s == 0.0


def test_a_prescription_beyond_the_calibrated_largest_safe_drive_says_so(log_path):
    # a calibration's largest safe drive lowers the platform's maximum: the refusal names it,
    # or "it would need 25 % of full drive" reads as if the platform could give it
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=60.0)
    platform = open_platform("sim://", speed=math.inf)
    platform.limit_drive(0.1)
    with DoseLog(log_path) as log, platform:
        result = _session(platform, log, rx).run()
    assert result.status == "aborted" and result.delivered_s == 0.0
    assert "cannot reach 0.3 g" in result.reason and result.reason.endswith("of full drive (it may use 10 %)")


def test_stop_request_ramps_down_and_logs_the_partial_dose(log_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=600.0)
    stop = threading.Event()
    seen = []

    def observer(progress):
        seen.append(progress)
        if progress.phase == DELIVER and progress.delivered_s >= 42:
            stop.set()

    result, record, windows, _, platform = _run("sim://", rx, log_path, stop=stop, observer=observer)
    assert result.status == "interrupted"
    assert result.delivered_s == pytest.approx(42.0)
    assert record["delivered_s"] == pytest.approx(42.0)
    assert sum(w["duration_s"] for w in windows if w["phase"] == DELIVER) == pytest.approx(42.0)
    assert windows[-1]["phase"] == RAMP_DOWN and windows[-1]["drive"] == 0.0
    assert platform.device.drive_level == 0.0


def test_a_stop_during_the_last_delivery_window_leaves_a_complete_dose_completed(log_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=20.0)
    stop = threading.Event()

    def observer(progress):
        if progress.phase == DELIVER and progress.delivered_s >= 20.0 - 1e-9:
            stop.set()  # Ctrl-C while the last second of the dose was being delivered

    result, record, windows, _, platform = _run("sim://", rx, log_path, stop=stop, observer=observer)
    assert result.status == "completed" and result.in_spec and record["status"] == "completed"
    assert result.delivered_s == pytest.approx(20.0)
    assert windows[-1]["phase"] == RAMP_DOWN and platform.device.drive_level == 0.0


def test_a_stop_during_the_precheck_ends_it_after_the_step_in_progress(log_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=600.0)
    stop = threading.Event()

    def observer(progress):
        if progress.phase == PRECHECK and progress.window.drive > 0:
            stop.set()  # Ctrl-C while the first pre-check step is measured (not while listening at rest)

    result, record, windows, _, platform = _run("sim://", rx, log_path, stop=stop, observer=observer)
    assert result.status == "interrupted" and record["status"] == "interrupted"
    assert result.delivered_s == 0.0
    phases = [w["phase"] for w in windows]
    driven = [w for w in windows if w["phase"] == PRECHECK and w["drive"] > 0]
    # the sensor check at rest, one measured step (the default plate needs four), then straight down
    assert len(driven) == 1 and phases[-1] == RAMP_DOWN
    assert phases == [PRECHECK] * phases.index(RAMP_DOWN) + [RAMP_DOWN] * (len(phases) - phases.index(RAMP_DOWN))
    assert platform.device.drive_level == 0.0


def test_out_of_spec_delivery_completes_but_is_not_in_spec(log_path):
    # a distortion limit no real window meets: 0.1 % THD (the actuator makes about 0.8 %)
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=10.0, tolerance=Tolerance(max_thd_fraction=0.001))
    result, record, *_ = _run("sim://", rx, log_path)
    assert result.status == "completed" and not result.in_spec
    assert "in spec" in result.reason and record["in_spec"] is False


def test_a_tolerance_the_sensor_cannot_verify_is_refused_before_driving(log_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=10.0, tolerance=Tolerance(accel_fraction=1e-5))
    result, _, windows, _, platform = _run("sim://", rx, log_path)
    assert result.status == "aborted" and "too high to verify" in result.reason
    assert all(w["drive"] == 0.0 for w in windows)


def test_prescriptions_above_the_cap_never_start(log_path):
    rx = Prescription(frequency_hz=30.0, peak_g=1.2, duration_s=60.0)
    with pytest.raises(UsageError, match="safety cap"), open_platform("sim://", speed=math.inf) as platform:
        _session(platform, None, rx)


def test_a_short_tail_joins_the_last_window(log_path):
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=5.3)
    result, _, windows, *_ = _run("sim://", rx, log_path)
    lengths = [w["duration_s"] for w in windows if w["phase"] == DELIVER]
    assert lengths == pytest.approx([1.0, 1.0, 1.0, 1.0, 1.3])
    assert result.delivered_s == pytest.approx(5.3)


class _LateSamples(SimPlatform):
    """sim:// with sample times that run 0.37 s behind its clock, as a serial board's and a sound
    card's do (their samples are counted from when the stream started, after the clock did)."""

    def read(self, duration_s):
        block = super().read(duration_s)
        return dataclasses.replace(block, t0_s=block.t0_s - 0.37)


def test_the_loop_judges_blocks_after_a_correction_ramp_whatever_the_time_base(log_path):
    # a sudden resonance (gain x3, the response-rose interlock off to watch the loop): the block
    # after the correction must be judged on its part after the correction's ramp, or the loop
    # corrects again for a level still in transition and undershoots
    rx = Prescription(frequency_hz=30.0, peak_g=0.3, duration_s=20.0)
    url = "sim://?fault=resonance&fault_at_s=12&fault_value=3"
    limits = SafetyLimits(max_response_rise_ratio=10.0, response_moved_s=60.0)
    drives = []
    for late in (False, True):
        platform = open_platform(url, speed=math.inf)
        if late:
            platform.__class__ = _LateSamples
        with DoseLog(log_path) as log, platform:
            result = _session(platform, log, rx, limits=limits).run()
            assert result.status == "completed"
            drives.append([w["drive"] for w in log.windows(result.session_id) if w["phase"] == DELIVER])
    assert drives[1] == drives[0]


def test_a_disk_limit_mid_session_stops_it_with_exit_1_and_the_record_is_closed(log_path):
    """A file-size limit stands in for a full disk. The raw signal grows fastest: its archive stops
    while there is room to close it and to log the session's end, and the session stops with the
    reason; never a traceback, never a crash (HDF5 cannot close a file whose write failed)."""
    import resource
    import signal
    import subprocess
    import sys

    from conftest import livctl_env

    def limit():  # room for about half the session's raw signal (2.5 MB for 5 min), whatever the machine's pace
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, 1_500_000))

    result = subprocess.run(
        [sys.executable, "-m", "livctl", "session", "--device", "sim://", "--minutes", "5", "--speed", "max",
         "--log", str(log_path), "--json", "--quiet"],
        preexec_fn=limit, capture_output=True, text=True, env=livctl_env(), timeout=120,
    )
    assert result.returncode == 1, result.stderr  # it drove: never 2
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert result.stdout.strip(), result.stderr  # the session's summary, whatever stopped it
    summary = json.loads(result.stdout)
    assert summary["status"] == "aborted" and "the raw signal could not be written" in summary["reason"]
    with DoseLog(log_path, create=False) as log:
        record = log.find_session(summary["session_id"])
        windows = log.windows(summary["session_id"])
    delivered = sum(w["duration_s"] for w in windows if w["phase"] == DELIVER)
    assert record["status"] == "aborted" and record["delivered_s"] == pytest.approx(delivered) and 0 < delivered < 300


def test_a_dose_log_that_fills_mid_session_stops_it_with_exit_1_and_the_record_is_closed(log_path):
    """Without the raw signal (a script may go without it), the log itself fills: the session stops
    safely with SessionNotRecorded, and the next livctl closes the record from its logged windows."""
    import subprocess
    import sys

    from conftest import livctl_env, run_livctl

    script = (
        "import math, resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))\n"
        "from livctl.platforms import open_platform\n"
        "from livctl.records.doselog import DoseLog\n"
        "from livctl.errors import SessionNotRecorded\n"
        "from livctl.procedures.prepare import SessionRequest, prepare_session\n"
        "from livctl.prescription import Prescription\n"
        "from livctl.procedures.session import Session\n"
        "with DoseLog(sys.argv[1]) as log, open_platform('sim://', speed=math.inf) as p:\n"
        "    plan = prepare_session(p, log, SessionRequest(Prescription(30.0, 0.3, 300.0)))\n"
        "    try:\n"
        "        Session(plan, p, log, keep_signal=False).run()\n"
        "    except SessionNotRecorded as exc:\n"
        "        print(exc)\n"
        "        sys.exit(1)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(log_path)], capture_output=True, text=True,
                            env=livctl_env(), timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("the platform was stopped (aborted: the dose log could not be written: ")
    assert result.stdout.strip().endswith("the next livctl closes it as interrupted")
    # with room again, the next livctl closes the session from its logged windows
    listing = run_livctl("log", "--log", str(log_path), "--json")
    (session,) = json.loads(listing.stdout)
    with DoseLog(log_path, create=False) as log:
        windows = log.windows(session["session_id"])
    delivered = sum(w["duration_s"] for w in windows if w["phase"] == DELIVER)
    assert session["status"] == "interrupted" and session["delivered_s"] == pytest.approx(delivered)
    assert 0 < delivered < 300
