"""The fuzz harness's fast part: a few hundred cases of every kind per test run (tests/fuzzing.py
says what a case is and what it must satisfy; scripts/fuzz.py runs a long campaign). Every kind
runs strictly: a traceback, a warning, a hang, a false pass or a log left untrue fails the test."""

import pytest
from hypothesis import HealthCheck, given, settings

import fuzzing


@pytest.fixture(scope="module")
def sandbox():
    fuzzing.warm_up()
    box = fuzzing.new_sandbox()
    yield box
    fuzzing.shutil.rmtree(box.root, ignore_errors=True)


def _check(case, sandbox):
    outcome, found = fuzzing.run_case(case, sandbox)
    assert not found, f"{found}: {case.reproducer()}\nstderr: {outcome.err[-2000:]}"


def _fuzz(strategy, examples):
    def decorate(test):
        return settings(max_examples=examples, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck))(given(case=strategy)(test))

    return decorate


@_fuzz(fuzzing.cli_cases(heavy=False), 150)
def test_command_lines_with_hostile_values(sandbox, case):
    _check(case, sandbox)


def _no_fault(case) -> bool:
    return not any("fault" in arg for arg in case.argv)


@_fuzz(fuzzing.cli_cases(heavy=True).filter(lambda c: c.argv[0] in ("session", "calibrate", "tone")).filter(_no_fault), 8)
def test_command_lines_that_drive(sandbox, case):
    _check(case, sandbox)


@_fuzz(fuzzing.recording_cases(), 40)
def test_recordings(sandbox, case):
    _check(case, sandbox)


@_fuzz(fuzzing.toml_cases().filter(lambda c: c.argv[0] != "session"), 40)
def test_calibration_regimen_and_profile_files(sandbox, case):
    _check(case, sandbox)


@_fuzz(fuzzing.damaged_log_cases().filter(lambda c: c.argv[0] != "session"), 40)
def test_damaged_dose_logs(sandbox, case):
    _check(case, sandbox)


@_fuzz(fuzzing.serial_cases(), 60)
def test_serial_byte_streams(case):
    _check(case, None)


@_fuzz(fuzzing.url_cases().filter(_no_fault), 6)
def test_device_urls(sandbox, case):
    _check(case, sandbox)


@_fuzz(fuzzing.url_cases().filter(lambda c: not _no_fault(c)), 6)
def test_device_urls_with_faults(sandbox, case):
    _check(case, sandbox)
