"""Every command of docs/protocol.md, sent to `python -m firmware_sim --pty` over a real pty.

These talk SCPI the way generic instrument software does (pyserial, line by line), not through
livctl, so they pin the protocol itself. The last test checks that the document's command table
and the commands covered here are the same set.
"""

import random
import re
import time
from pathlib import Path

import numpy as np
import pytest

from firmware_sim.board import pattern_counts
from fwsim import FirmwareSim, Scpi
from livctl.platforms.serial.protocol import (
    OUTPUT_ON,
    POWER_ON,
    STREAMING,
    TEST_PATTERN,
    TRIPPED,
    WATCHDOG,
    Frame,
    StreamDecoder,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
COVERED: set[str] = set()


def covers(*commands):
    COVERED.update(commands)
    return lambda test: test


@pytest.fixture(scope="module")
def board_path(tmp_path_factory):
    sim = FirmwareSim(tmp_path_factory.mktemp("conformance"), "--serial", "7")
    yield sim.path
    sim.stop()


@pytest.fixture
def scpi(board_path):
    conn = Scpi(board_path)
    conn.write("")
    conn.settle(0.05)
    conn.write("*RST;*CLS")
    yield conn
    conn.write("*RST;*CLS")
    conn.close()


def _errors(scpi) -> list[int]:
    codes = []
    while (code := scpi.error()[0]) != 0:
        codes.append(code)
    return codes


def _frames(data: bytes) -> list[Frame]:
    return [i for i in StreamDecoder().feed(data) if isinstance(i, Frame)]


@covers("*IDN?")
def test_idn(scpi):
    assert scpi.query("*IDN?") == "LIVCTL,FWSIM,7,1.2"
    assert scpi.query("*idn?") == "LIVCTL,FWSIM,7,1.2"


@covers("*RST")
def test_rst_restores_the_defaults(scpi):
    scpi.write("SOUR:FREQ 90;RAMP 5;AMPL 0.05;:SYST:WATC 3;:STR:BLOC 10;:SENS:TEST ON;:OUTP ON")
    assert scpi.query("OUTP?") == "1"
    scpi.write("*RST")
    assert scpi.query("FREQ?;RAMP?;AMPL?;:OUTP?;LEV?;:SYST:WATC?;:STR:BLOC?;:STR?;:SENS:TEST?") == "30;1;0;0;0;0.5;32;0;0"
    assert _errors(scpi) == []


@covers("*CLS", "STATus:CONDition?")
def test_cls_and_status(scpi):
    scpi.write("BOGUS")
    scpi.write("*CLS")
    assert _errors(scpi) == []
    assert int(scpi.query("STAT:COND?")) & POWER_ON == 0
    scpi.write("SOUR:AMPL 0.01;:OUTP ON;:SYST:HEAR")
    status = int(scpi.query("STATus:CONDition?"))
    assert status & OUTPUT_ON and not status & STREAMING


@covers("*OPC?")
def test_opc(scpi):
    assert scpi.query("SOUR:FREQ 40;*OPC?") == "1"
    assert scpi.query("FREQ?") == "40"


@covers("SYSTem:ERRor[:NEXT]?")
def test_error_queue(scpi):
    scpi.write("BOGUS")
    scpi.write("FREQ 5000")
    assert scpi.query("SYST:ERR?") == '-113,"Undefined header;BOGUS"'
    assert scpi.query("SYSTem:ERRor:NEXT?").startswith('-222,"Data out of range')
    assert scpi.query("SYST:ERR?") == '0,"No error"'


@covers("SYSTem:PROTocol?")
def test_protocol_version(scpi):
    assert re.fullmatch(r"1\.\d+", scpi.query("SYST:PROT?"))


@covers("SYSTem:WATChdog[:TIMeout]", "SYSTem:HEARtbeat")
def test_watchdog_and_heartbeat_in_real_time(scpi):
    assert scpi.query("SYST:WATC 2;WATC?") == "2"
    scpi.write("SYST:WATC 0.05")
    scpi.write("SYST:WATC:TIM 11")
    assert _errors(scpi) == [-222, -222]
    scpi.write("SYST:WATC 0.3;:SOUR:RAMP 0.2;AMPL 0.1;:OUTP ON")
    for _ in range(8):  # 0.8 s of heartbeats every 0.1 s: the output stays on
        time.sleep(0.1)
        scpi.write("SYST:HEAR")
    assert scpi.query("OUTP?;LEV?") == "1;0.1"
    time.sleep(0.3 + 0.2 + 0.15)  # silence: the timeout, then the ramp
    assert scpi.query("OUTP?;LEV?") == "0;0"
    assert int(scpi.query("STAT:COND?")) & WATCHDOG
    assert scpi.query("SYST:ERR?") == '201,"Watchdog expired; output ramped to zero"'
    scpi.write("SYST:HEAR?")
    assert _errors(scpi) == [-113]


@covers("SYSTem:INTerlock?")
def test_interlock(scpi):
    assert scpi.query("SYST:INT?") == "CLOSED"


@covers("[SOURce:]FREQuency")
def test_frequency(scpi):
    for value in ("1", "1000", "30", "42.5", "9e1"):
        assert float(scpi.query(f"SOUR:FREQ {value};FREQ?")) == float(value)
    assert scpi.query("SOURCE:FREQUENCY 35;:FREQ?") == "35"
    for bad in ("0.5", "1001", "-30", "ON", "", "1,2"):
        scpi.write(f"FREQ {bad}".strip())
    assert _errors(scpi) == [-222, -222, -222, -104, -109, -108]
    assert scpi.query("FREQ?") == "35"


@covers("[SOURce:]AMPLitude")
def test_amplitude(scpi):
    for value in ("0", "1", "0.125"):
        assert float(scpi.query(f"SOUR:AMPL {value};AMPL?")) == float(value)
    scpi.write("AMPL 1.01")
    scpi.write("AMPL -0.1")
    assert _errors(scpi) == [-222, -222]


@covers("[SOURce:]LIMit")
def test_the_drive_limit_is_enforced_by_the_board(scpi):
    assert scpi.query("SOUR:LIM 0.4;LIM?") == "0.4"
    assert scpi.query("SOUR:AMPL 0.3;AMPL?") == "0.3"
    scpi.write("SOUR:AMPL 0.5")  # above the limit: refused, the level stays
    assert scpi.query("AMPL?") == "0.3"
    assert scpi.error()[0] == -222
    scpi.write("SOUR:RAMP 0;:OUTP ON;:SYST:HEAR")
    scpi.write("SOUR:LIM 0.1;:SYST:HEAR")  # lowered under the level: the drive comes down to it
    time.sleep(0.2)
    assert scpi.query("SYST:HEAR;:SOUR:LIM?;AMPL?;:OUTP:LEV?") == "0.1;0.1;0.1"
    scpi.write("SOUR:LIM 0.5")  # never raised while the output is on
    assert scpi.query("SOUR:LIM?") == "0.1"
    assert _errors(scpi) == [-221]
    scpi.write("OUTP OFF;:SOUR:LIM 0.5")  # with the output off it may be
    assert scpi.query("SOUR:LIM?") == "0.5"
    scpi.write("SOUR:LIM 1.5")
    assert _errors(scpi) == [-222]
    scpi.write("*RST")
    assert scpi.query("SOUR:LIM?") == "1"


@covers("SENSe:TRIP")
def test_the_board_cuts_its_own_output_over_the_trip_threshold(scpi):
    assert scpi.query("SENS:TRIP 1.15;TRIP?") == "1.15"
    scpi.write("SENS:TRIP 0.01")
    scpi.write("SENS:TRIP 17")
    assert _errors(scpi) == [-222, -222]
    assert scpi.query("SENS:TRIP 0;TRIP?") == "0"
    # 0.2 of full scale gives about 0.3 g on this plate: a 0.1 g trip cuts it within two cycles
    scpi.write("SENS:TRIP 0.1;:SOUR:FREQ 30;RAMP 0;AMPL 0.2;:OUTP ON")
    time.sleep(0.3)
    assert scpi.query("OUTP?;LEV?") == "0;0"
    assert int(scpi.query("STAT:COND?")) & TRIPPED
    assert scpi.query("SYST:ERR?") == '205,"Over-acceleration; output cut"'
    scpi.write("*CLS")
    assert not int(scpi.query("STAT:COND?")) & TRIPPED
    scpi.write("*RST")
    assert scpi.query("SENS:TRIP?") == "0"


@covers("[SOURce:]RAMP")
def test_ramp(scpi):
    for value in ("0", "60", "2.5"):
        assert float(scpi.query(f"SOUR:RAMP {value};RAMP?")) == float(value)
    scpi.write("RAMP 61")
    assert _errors(scpi) == [-222]


@covers("OUTPut[:STATe]", "OUTPut:LEVel?")
def test_output_ramps_up_and_cuts_at_once(scpi):
    scpi.write("SOUR:RAMP 0.3;AMPL 0.5;:OUTP ON")
    scpi.write("SYST:HEAR")
    assert 0.0 <= float(scpi.query("OUTP:LEV?")) < 0.5
    time.sleep(0.4)
    scpi.write("SYST:HEAR")
    assert scpi.query("OUTPut:STATe?;:OUTP:LEV?") == "1;0.5"
    assert scpi.query("OUTP OFF;OUTP?;LEV?") == "0;0"
    assert scpi.query("OUTP 1;OUTP?;OUTP 0;OUTP?") == "1;0"
    scpi.write("OUTP MAYBE")
    assert _errors(scpi) == [-224]


@covers("SENSe:RATE?", "SENSe:SCALe?", "SENSe:MODel?", "SENSe:RANGe?")
def test_sensor_description(scpi):
    assert scpi.query("SENS:RATE?;SCAL?;MOD?;RANG?") == "3200;0.038245934999999995;ADXL345;16"
    assert float(scpi.query("SENS:SCAL?")) == 0.0039 * 9.80665


@covers("FETCh?")
def test_fetch(scpi):
    time.sleep(0.1)
    scpi.write("FETC? 100")
    payload = scpi.read_block()
    (frame,) = _frames(b"#" + str(len(str(len(payload)))).encode() + str(len(payload)).encode() + payload)
    assert frame.n == 100 and frame.rate_hz == 3200.0
    z_g = frame.counts[:, 2] * frame.scale_mps2 / 9.80665
    assert abs(z_g.mean() - 1.0) < 0.05  # gravity on z, platform at rest
    scpi.write("STR ON")
    scpi.write("FETC?")
    scpi.write("STR OFF")
    scpi.settle(0.1)
    assert _errors(scpi) == [-221]


@covers("SENSe:TEST[:STATe]")
def test_test_pattern(scpi):
    assert scpi.query("SENS:TEST ON;TEST?") == "1"
    time.sleep(0.05)
    scpi.write("FETC? 50")
    (frame,) = _frames(b"#" + b"%d%d" % (len(str(len(p := scpi.read_block()))), len(p)) + p)
    assert frame.status & TEST_PATTERN
    assert np.array_equal(frame.counts, pattern_counts(frame.first_index, 50))


@covers("STReam[:STATe]", "STReam:BLOCk")
def test_streaming(scpi):
    assert scpi.query("STR:BLOC 64;BLOC?") == "64"
    scpi.write("STR:BLOC 0")
    scpi.write("STR:BLOC 1025")
    scpi.write("STR:BLOC 1.5")
    assert _errors(scpi) == [-222, -222, -104]
    scpi.write("*CLS;STR ON")
    data = bytearray()
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        data += scpi.port.read(max(1, scpi.port.in_waiting))
    scpi.write("STR OFF")
    scpi.settle(0.1)  # frames already on their way
    frames = _frames(bytes(data))
    assert 20 <= len(frames) <= 30  # 0.5 s at 3200 Hz, 64 samples a frame: 25
    assert all(f.n == 64 and f.status & STREAMING for f in frames)
    assert [f.first_index for f in frames] == [frames[0].first_index + 64 * i for i in range(len(frames))]
    assert [f.seq for f in frames] == list(range(frames[0].seq, frames[0].seq + len(frames)))
    assert scpi.query("STR?") == "0"


@covers("SENSe:SENSors?", "SENSe:CHANnels", "SENSe:LOAD?")
def test_a_second_accelerometer_and_the_load_cell(scpi, tmp_path):
    assert scpi.query("SENS:SENS?;CHAN?;LOAD?") == "1;1;-1"  # this board has one sensor, no load cell
    scpi.write("SENS:CHAN 2")
    assert _errors(scpi) == [-222]
    sim = FirmwareSim(tmp_path / "two", "--serial", "8", "--sensors", "2", "--load-cell")
    two = Scpi(sim.path)
    try:
        two.write("")
        two.settle(0.05)
        assert two.query("*CLS;SENS:SENS?;CHAN?") == "2;1"
        assert abs(float(two.query("SENS:LOAD?")) - 70.0) < 0.5
        time.sleep(0.05)
        two.write("FETC? 20")
        (one,) = _frames(b"#" + b"%d%d" % (len(str(len(p := two.read_block()))), len(p)) + p)
        assert one.counts.shape == (20, 3) and abs(one.load_kg - 70.0) < 0.5
        assert two.query("SENS:CHAN 2;CHAN?") == "2"
        time.sleep(0.05)
        two.write("FETC? 20")
        (both,) = _frames(b"#" + b"%d%d" % (len(str(len(p := two.read_block()))), len(p)) + p)
        assert both.counts.shape == (20, 6)
        z_g = both.counts[:, [2, 5]] * both.scale_mps2 / 9.80665
        assert np.all(np.abs(z_g.mean(axis=0) - 1.0) < 0.05)  # each sensor reads gravity on its own
        assert not np.array_equal(both.counts[:, :3], both.counts[:, 3:])  # its own noise: independent
        two.write("SENS:CHAN 3")
        assert two.error()[0] == -222
    finally:
        two.close()
        sim.stop()


def test_random_bytes_over_the_port_never_stop_the_board(scpi):
    rng = random.Random(7)
    for _ in range(50):
        scpi.port.write(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600))))
    scpi.write("")
    scpi.settle(0.2)
    assert scpi.query("*IDN?") == "LIVCTL,FWSIM,7,1.2"
    assert scpi.query("STR?;:OUTP?") in ("0;0", "1;0", "0;1", "1;1")  # whatever the noise set, it answers


def test_the_documented_commands_are_the_tested_ones():
    table = DOCS.read_text().split("## Commands")[1].split("\n## ")[0]
    documented = set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.M))
    assert documented == COVERED
