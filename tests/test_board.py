"""The simulated controller board in virtual time: the same model as sim://, the watchdog, faults.

The board's frames are read back with livctl's own decoder, so these tests also pin the two
sides of the protocol to each other.
"""

import numpy as np
import pytest

from firmware_sim import SimConfig, SimulatedPlatform
from firmware_sim.board import (
    INTERLOCK_OPEN,
    OUTPUT_ON,
    OVERRUN,
    POWER_ON,
    SENSOR_FAULT,
    STREAMING,
    TEST_PATTERN,
    WATCHDOG,
    Board,
    pattern_counts,
)
from livctl.platforms.serial.protocol import Frame, SampleAssembler, StreamDecoder

RATE = 3200.0


class Bench:
    """A board, a clock, and the host's decoder on the board's output."""

    def __init__(self, **kwargs):
        self.log = []
        self.board = Board(SimulatedPlatform(SimConfig(seed=1)), log=self.log.append, **kwargs)
        self.t = 0.0
        self.decoder = StreamDecoder()
        self.frames: list[Frame] = []
        self.lines: list[str] = []

    def send(self, line: str) -> list[str]:
        self._take(self.board.receive(line.encode() + b"\n", self.t))
        lines, self.lines = self.lines, []
        return lines

    def run(self, seconds: float, *, heartbeat_s: float | None = None, step_s: float = 0.005) -> None:
        end = self.t + seconds
        next_beat = self.t
        while self.t < end - 1e-12:
            self.t = min(end, self.t + step_s)
            if heartbeat_s is not None and self.t >= next_beat:
                self.send("SYST:HEAR")
                next_beat += heartbeat_s
            for frame in self.board.tick(self.t):
                self._take(frame)

    def _take(self, data: bytes) -> None:
        for item in self.decoder.feed(data):
            (self.lines if isinstance(item, str) else self.frames).append(item)

    def samples(self) -> np.ndarray:
        assembler = SampleAssembler(RATE, self.board.scale_mps2)
        chunks = [s.accel_mps2 for f in self.frames for s in assembler.feed(f)]
        return np.concatenate(chunks)


def test_streamed_samples_are_the_same_model_as_sim():
    """The board runs SimulatedPlatform: with the same seed and commands, the same samples."""
    bench = Bench()
    bench.send("*CLS;:SOUR:FREQ 30;RAMP 0.5;AMPL 0.2;:STR ON;:OUTP ON")
    bench.run(2.0, heartbeat_s=0.1)
    got = bench.samples()
    assert got.shape == (int(2.0 * RATE), 3)
    reference = SimulatedPlatform(SimConfig(seed=1))
    reference.set_frequency(30.0)
    reference.set_drive(0.2, 0.5)
    # the board advanced the model every 5 ms (16 samples), and noise draws follow the block sizes
    expected = np.concatenate([reference.advance(16) for _ in range(got.shape[0] // 16)])
    # bit for bit: the board sends whole counts of the sensor's LSB, as the sensor produces them
    assert np.array_equal(got, expected)
    assert all(f.n == 32 and f.rate_hz == RATE for f in bench.frames)
    assert [f.seq for f in bench.frames] == list(range(len(bench.frames)))


def test_watchdog_ramps_the_output_to_zero_when_heartbeats_stop():
    bench = Bench()
    bench.send("*CLS;:SOUR:RAMP 2;AMPL 0.3;:SYST:WATC 0.5;:OUTP ON;:STR ON")
    bench.run(3.0, heartbeat_s=0.1)
    assert bench.board.platform.drive_level == pytest.approx(0.3)
    bench.send("SYST:HEAR")
    bench.run(0.45)  # silence, but not yet long enough
    assert bench.board.output and bench.board.watchdog_trips == 0
    bench.run(0.1)
    assert not bench.board.output and bench.board.watchdog_trips == 1
    assert "watchdog" in bench.log[-1]
    assert 0.0 < bench.board.platform.drive_level < 0.3  # ramping down, not cut
    bench.run(0.5)  # the watchdog ramp is the ramp time, at most 0.5 s
    assert bench.board.platform.drive_level == 0.0
    status = int(bench.send("STAT:COND?")[0])
    assert status & WATCHDOG and not status & OUTPUT_ON
    assert bench.send("SYST:ERR?") == ['201,"Watchdog expired; output ramped to zero"']
    assert bench.frames[-1].status & WATCHDOG and bench.frames[-1].drive == 0.0
    # the latched bit clears with *CLS; the output stays off until switched on again
    assert int(bench.send("*CLS;STAT:COND?")[0]) & WATCHDOG == 0
    assert bench.send("OUTP?") == ["0"]


def test_heartbeats_keep_the_output_on():
    bench = Bench()
    bench.send("SOUR:AMPL 0.1;:OUTP ON")
    bench.run(5.0, heartbeat_s=0.4)
    assert bench.board.output and bench.board.watchdog_trips == 0


def test_interlock_cuts_at_once_and_refuses_output():
    bench = Bench()
    bench.send("SOUR:RAMP 0;AMPL 0.3;:OUTP ON")
    bench.run(0.2, heartbeat_s=0.1)
    bench.board.open_interlock()
    assert bench.board.platform.drive_level == 0.0
    assert bench.send("SYST:INT?;:OUTP ON;:OUTP?") == ["OPEN;0"]
    status = int(bench.send("STAT:COND?")[0])
    assert status & INTERLOCK_OPEN
    errors = [bench.send("SYST:ERR?")[0] for _ in range(2)]
    assert errors == ['202,"Interlock open; output cut"', '-221,"Settings conflict;interlock open"']


def test_a_stalled_sensor_sends_no_frames_and_says_so():
    bench = Bench()
    bench.send("STR ON")
    bench.run(0.5)
    count = len(bench.frames)
    bench.board.stall_sensor()
    bench.run(0.5)
    assert len(bench.frames) == count
    assert int(bench.send("STAT:COND?")[0]) & SENSOR_FAULT


def test_unread_samples_make_room_and_the_next_frame_shows_the_jump():
    bench = Bench()
    bench.send("*CLS")
    bench.run(1.5)  # nobody fetches: the FIFO keeps the newest second
    bench.send("FETC? 100")
    (frame,) = bench.frames
    assert frame.n == 100 and frame.first_index == int(1.5 * RATE) - int(RATE)
    assert bench.send("SYST:ERR?") == ['0,"No error"']


def test_frames_the_serial_output_cannot_take_are_reported_as_overrun():
    bench = Bench()
    bench.send("*CLS")
    bench.board.note_overrun()
    bench.board.note_overrun()
    assert int(bench.send("STAT:COND?")[0]) & OVERRUN
    assert bench.send("SYST:ERR?;ERR?") == ['204,"Frames dropped; host not reading";0,"No error"']
    bench.send("STR ON")  # a new stream starts clean
    assert not int(bench.send("STAT:COND?")[0]) & OVERRUN


def test_fetch_returns_the_oldest_samples_and_is_refused_while_streaming():
    bench = Bench()
    bench.send("*CLS")
    bench.run(0.1)
    bench.send("FETC?")
    bench.send("FETC?")
    first, second = bench.frames
    assert first.n == int(0.1 * RATE) and first.first_index == 0
    assert second.n == 0 and second.seq == first.seq + 1
    bench.send("STR ON")
    assert bench.send("FETC?") == []
    assert bench.send("SYST:ERR?") == ['-221,"Settings conflict;streaming is on"']


def test_the_test_pattern_is_what_the_protocol_says():
    bench = Bench(test_pattern_default=True)
    bench.send("*CLS;STR ON")
    bench.run(0.3)
    assembler = SampleAssembler(RATE, bench.board.scale_mps2)
    counts = np.concatenate([f.counts for f in bench.frames])
    assert bench.frames[0].status & TEST_PATTERN
    first = bench.frames[0].first_index
    assert np.array_equal(counts, pattern_counts(first, counts.shape[0]))
    assert counts[5].tolist() == [first + 5, -(first + 5), ((first + 5) * 40503) % 2**31]
    assert assembler.feed(bench.frames[0])[0].accel_mps2.shape == (32, 3)


def test_reboot_cuts_the_output_resets_everything_and_changes_the_boot_id():
    bench = Bench()
    bench.send("*CLS;:SOUR:FREQ 45;AMPL 0.2;:STR ON;:OUTP ON")
    bench.run(0.5, heartbeat_s=0.1)
    boot = bench.frames[-1].boot_id
    bench.board.power_on(bench.t)
    assert bench.board.platform.drive_level == 0.0
    assert bench.send("SOUR:FREQ?;AMPL?;:OUTP?;:STR?") == ["30;0;0;0"]
    status = int(bench.send("STAT:COND?")[0])
    assert status & POWER_ON and not status & STREAMING
    bench.send("STR ON")
    bench.run(0.1)
    assert bench.frames[-1].boot_id != boot and bench.frames[-1].first_index < 1000


def test_rst_restores_defaults_and_stops_the_output_at_once():
    bench = Bench()
    bench.send("SOUR:FREQ 90;RAMP 3;AMPL 0.4;:SYST:WATC 2;:STR:BLOC 64;:STR ON;:OUTP ON")
    bench.run(1.0, heartbeat_s=0.1)
    bench.send("*RST")
    assert bench.board.platform.drive_level == 0.0
    assert bench.send("FREQ?;RAMP?;AMPL?;:SYST:WATC?;:STR:BLOC?;:STR?;:OUTP?") == ["30;1;0;0.5;32;0;0"]


@pytest.mark.parametrize("seed", ["-1", "x"])
def test_the_simulator_command_refuses_a_seed_numpy_cannot_take(capsys, seed):
    from firmware_sim.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["--pty", "--seed", seed])
    assert exited.value.code == 2
    assert f"argument --seed: '{seed}' is not a seed (a whole number >= 0)" in capsys.readouterr().err


def test_a_fault_on_a_frames_trailing_lf_loses_nothing_and_is_not_counted_as_damage():
    """The LF after a definite-length block is outside its length and CRC: the host skips a damaged
    one as noise and decodes the frame whole, so the simulator's accounting of spoiled frames (what
    the host must find missing) leaves it out."""
    from firmware_sim.server import ByteFaults, LinkStats

    board = Board(SimulatedPlatform(SimConfig(seed=1)), log=lambda *_: None)
    frame = board._frame(8) + b"\n"  # a frame as the board streams it
    every_byte = ByteFaults(0.0, 1.0, np.random.default_rng(0), LinkStats())
    _, damaged = every_byte.apply(b"\n", checked=0)
    assert not damaged and every_byte.stats.bytes_corrupted == 1
    _, damaged = every_byte.apply(frame, checked=len(frame) - 1)
    assert damaged  # its block was hit too
    lf_only = ByteFaults(1.0, 0.0, np.random.default_rng(0), LinkStats())
    sent, damaged = lf_only.apply(b"\n", checked=0)
    assert sent == b"" and not damaged and lf_only.stats.bytes_dropped == 1
    # the host decodes a whole frame whose LF was altered, and counts the byte as noise
    decoder = StreamDecoder()
    out = decoder.feed(frame[:-1] + b"\x7f" + frame)
    assert [type(x) for x in out] == [Frame, Frame] and decoder.stats.noise_bytes == 1
