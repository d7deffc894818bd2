"""livctl's side of the platform protocol: frames, damage, gaps, status, and random bytes."""

import random
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from livctl.platforms.serial.protocol import (
    HEADER,
    INTERLOCK_OPEN,
    OUTPUT_ON,
    WATCHDOG,
    Fault,
    Frame,
    SampleAssembler,
    Samples,
    StreamDecoder,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
RATE = 3200.0
SCALE = 0.0039 * 9.80665


def frame_bytes(seq=0, first=0, counts=None, *, status=0, boot=1, drive=0.0, rate=RATE, scale=SCALE, header_bytes=40):
    counts = np.zeros((4, 3), dtype="<i4") if counts is None else np.asarray(counts, dtype="<i4")
    n = counts.shape[0]
    header = HEADER.pack(b"LIVS", 1, header_bytes, status, seq, first & 0xFFFFFFFF, n, 3, 1, boot,
                         round(drive * 65535), rate, scale)
    body = header + b"\0" * (header_bytes - HEADER.size) + counts.tobytes()
    payload = body + struct.pack("<I", zlib.crc32(body))
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload + b"\n"


def decode(data: bytes, chunk: int | None = None):
    decoder = StreamDecoder()
    items = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        items += decoder.feed(data[i : i + step])
    return items, decoder.stats


def test_the_documented_example_frame_decodes_to_the_documented_values():
    text = DOCS.read_text()
    dump = text.split("<!-- example-frame -->")[1].split("```")[1]
    data = bytes(int(b, 16) for line in dump.strip().splitlines() for b in line.split()[1:])
    assert data.startswith(b"#268LIVS") and data.endswith(b"\n")
    (frame,), stats = decode(data)
    assert frame.seq == 7 and frame.first_index == 1000 and frame.status == OUTPUT_ON | 0x40
    assert frame.boot_id == 1 and frame.drive == pytest.approx(0.5, abs=1e-4)
    assert frame.rate_hz == 3200.0 and frame.scale_mps2 == pytest.approx(0.038245935, rel=1e-12)
    assert frame.counts.tolist() == [[3, -2, 256], [4, -1, 260]]
    assert "0x0333EC54" in text and struct.unpack("<I", data[-5:-1])[0] == 0x0333EC54
    assert zlib.crc32(b"123456789") == 0xCBF43926  # the check value the document gives
    assert data == frame_bytes(7, 1000, [[3, -2, 256], [4, -1, 260]], status=0x41, drive=32768 / 65535)


def test_frames_and_answer_lines_are_told_apart_in_any_delivery():
    data = b"LIVCTL,FWSIM,0001,1.0\n" + frame_bytes(0) + b"30;0.2\r\n" + frame_bytes(1) + frame_bytes(2) + b"1\n"
    for chunk in (None, 1, 7, 64):
        items, stats = decode(data, chunk)
        assert [type(i).__name__ for i in items] == ["str", "Frame", "str", "Frame", "Frame", "str"]
        assert items[0] == "LIVCTL,FWSIM,0001,1.0" and items[2] == "30;0.2" and items[5] == "1"
        assert stats.noise_bytes == 0 and stats.bad_frames == 0


def test_a_longer_header_from_a_later_minor_version_is_skipped():
    (frame,), _ = decode(frame_bytes(3, 10, [[1, 2, 3]], header_bytes=48))
    assert frame.counts.tolist() == [[1, 2, 3]]


def test_every_single_damaged_or_lost_byte_is_caught_and_the_next_frame_still_found():
    good = frame_bytes(5, 100, np.arange(30).reshape(10, 3))
    follower = frame_bytes(6, 110, np.arange(30, 60).reshape(10, 3))
    payload_start = good.index(b"LIVS")
    for pos in range(1, len(good) - 1):  # every byte but '#' and the LF
        for damaged in (good[:pos] + bytes([good[pos] ^ 0x5A]) + good[pos + 1 :], good[:pos] + good[pos + 1 :]):
            items, stats = decode(damaged + follower)
            frames = [i for i in items if isinstance(i, Frame)]
            assert [f.seq for f in frames] == [6], (pos, damaged[:pos + 2])
            assert frames[0].counts.tolist() == np.arange(30, 60).reshape(10, 3).tolist()
            assert not any(isinstance(i, str) and i for i in items) or pos < payload_start


def test_truncated_blocks_wait_then_give_way_to_the_next_frame():
    decoder = StreamDecoder()
    assert decoder.feed(frame_bytes(1, 0)[:20]) == []  # incomplete: waiting for the rest
    assert decoder.stats.bad_frames == 0
    items = decoder.feed(frame_bytes(2, 4)) + decoder.feed(frame_bytes(3, 8))
    assert [i.seq for i in items if isinstance(i, Frame)] == [2, 3]
    assert decoder.stats.bad_frames == 1


def test_wrong_checksum_length_magic_or_format_is_never_decoded():
    good = frame_bytes(9, 0)
    bad_crc = good[:-5] + bytes([good[-5] ^ 1]) + good[-4:]
    bad_len = good.replace(b"#292", b"#293", 1)
    bad_magic = good.replace(b"LIVS", b"LIVX", 1)
    assert good.startswith(b"#292")
    for bad in (bad_crc, bad_len, bad_magic, b"#0" + good[2:], b"#9" + good[2:], b"#3abcLIVS"):
        items, stats = decode(bad + frame_bytes(10, 4))
        assert [i.seq for i in items if isinstance(i, Frame)] == [10]


@pytest.mark.parametrize("seed", range(3))
def test_fuzz_random_bytes_among_frames_never_raise_and_never_make_frames(seed):
    rng = random.Random(seed)
    data = bytearray()
    sent = []
    for seq in range(200):
        if rng.random() < 0.3:
            data += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
        if rng.random() < 0.2:
            data += b"#" + bytes(rng.choice(b"0123456789#LIVS") for _ in range(rng.randint(1, 50)))
        data += frame_bytes(seq, seq * 4)
        sent.append(seq)
    items, stats = decode(bytes(data), rng.randint(1, 500))
    frames = [i for i in items if isinstance(i, Frame)]
    # every frame arrives once, in order, except one that noise may have swallowed whole
    seqs = [f.seq for f in frames]
    assert seqs == sorted(set(seqs)) and set(seqs) <= set(sent)
    assert len(seqs) >= 0.95 * len(sent)
    assert all(f.counts.shape == (4, 3) and not f.counts.any() for f in frames)
    # pure noise, fed in odd pieces
    noise = bytes(rng.getrandbits(8) for _ in range(200_000))
    items, _ = decode(noise, 333)
    assert not [i for i in items if isinstance(i, Frame)]


def _assemble(frames):
    assembler = SampleAssembler(RATE, SCALE)
    events = [e for f in frames for e in assembler.feed(next(iter(decode(f)[0])))]
    return assembler, events


def test_a_missing_frame_becomes_nan_samples_of_its_exact_length():
    ones = np.ones((4, 3))
    assembler, events = _assemble([frame_bytes(0, 0, ones), frame_bytes(2, 8, ones * 2), frame_bytes(3, 12, ones * 3)])
    samples = np.concatenate([e.accel_mps2 for e in events])
    assert samples.shape == (16, 3)
    assert np.isnan(samples[4:8]).all() and not np.isnan(samples[:4]).any() and not np.isnan(samples[8:]).any()
    assert samples[0, 0] == SCALE and samples[8, 0] == 2 * SCALE
    assert [e.index for e in events] == [0, 4, 8, 12] and events[1].lost
    assert assembler.stats.lost_samples == 4 and assembler.stats.gaps == 1 and assembler.stats.missing_seqs == [1]


def test_counters_wrap_around():
    first = 2**32 - 4
    _, events = _assemble([frame_bytes(2**32 - 1, first), frame_bytes(0, first + 4), frame_bytes(1, first + 8)])
    assert [e.index for e in events] == [0, 4, 8] and not any(e.lost for e in events)


@pytest.mark.parametrize(
    "frames, says",
    [
        ([frame_bytes(0, 0), frame_bytes(1, 2)], "sample counter went back 2 samples"),
        ([frame_bytes(0, 0), frame_bytes(0, 0)], "sent frame 0 again"),
        ([frame_bytes(0, 0), frame_bytes(0, 4)], "sent frame 0 again"),
        ([frame_bytes(5, 0), frame_bytes(3, 4)], "sent frame 3 again, or went back"),
        ([frame_bytes(0, 0), frame_bytes(1, 4, rate=float("nan"))], "sample rate or scale is not a number"),
        ([frame_bytes(0, 0, scale=float("nan"))], "sample rate or scale is not a number"),
    ],
    ids=["counter-back", "duplicate", "stuck-seq", "seq-back", "nan-rate", "nan-scale"],
)
def test_a_stream_that_goes_astray_is_stopped_and_nothing_more_passed_on(frames, says):
    assembler, events = _assemble(frames + [frame_bytes(9, 40)])
    faults = [e for e in events if isinstance(e, Fault)]
    assert len(faults) == 1 and says in faults[0].message and assembler.stopped
    assert sum(e.accel_mps2.shape[0] for e in events if isinstance(e, Samples)) <= 4  # the first frame at most


def test_a_rising_status_bit_is_one_fault_and_a_restart_stops_the_stream():
    assembler, events = _assemble([
        frame_bytes(0, 0, status=OUTPUT_ON),
        frame_bytes(1, 4, status=OUTPUT_ON | INTERLOCK_OPEN),
        frame_bytes(2, 8, status=INTERLOCK_OPEN),
        frame_bytes(3, 12, status=INTERLOCK_OPEN | WATCHDOG),
        frame_bytes(0, 0, boot=2),
        frame_bytes(1, 4, boot=2),
    ])
    faults = [e.message for e in events if isinstance(e, Fault)]
    assert len(faults) == 3
    assert "interlock" in faults[0] and "watchdog" in faults[1] and "restarted" in faults[2]
    assert assembler.stopped and sum(isinstance(e, Samples) for e in events) == 4


@pytest.mark.parametrize("change", [{"rate": 4000.0}, {"scale": SCALE * 2}])
def test_a_changed_rate_or_scale_stops_the_stream(change):
    assembler, events = _assemble([frame_bytes(0, 0), frame_bytes(1, 4, **change)])
    assert isinstance(events[-1], Fault) and "rate or scale" in events[-1].message and assembler.stopped


def test_a_sample_counter_leaping_ahead_is_not_a_gap():
    assembler, events = _assemble([frame_bytes(0, 0), frame_bytes(1, 4 + int(11 * RATE))])
    assert isinstance(events[-1], Fault) and "jumped ahead" in events[-1].message
    assert assembler.stats.lost_samples == 0


def test_answer_lines_must_be_whole_and_printable():
    items, stats = decode(b"ok\n\x00\x01bad\n" + b"cut short" + frame_bytes(0) + b"x" * 2000 + b"\nfine\n")
    assert [i for i in items if isinstance(i, str)] == ["ok", "fine"]
    assert stats.noise_bytes >= len("cut short") + 2000
    assert re.fullmatch(r"ok", items[0])


def test_both_sides_of_the_protocol_agree_with_the_document():
    """firmware_sim and livctl implement the protocol separately; the document is the contract."""
    from firmware_sim import board, scpi
    from livctl.platforms.serial import protocol as host

    text = DOCS.read_text()
    status = re.findall(r"^\| (\d+) \| (\d+) \| ([A-Z_]+) \|", text.split("## Status")[1].split("\n## ")[0], flags=re.M)
    assert len(status) == 10
    for bit, value, name in status:
        assert int(value) == 1 << int(bit) == getattr(board, name) == getattr(host, name), name
    assert board.FRAME_HEADER.format == host.HEADER.format + "f" and host.HEADER.size == 40
    assert board.FRAME_HEADER.size == host.HEADER.size + host.LOAD_FIELD.size == 44
    assert board.NO_READING == host.NO_READING
    assert board.FRAME_MAGIC == host.MAGIC and board.SAMPLE_INT32 == host.SAMPLE_INT32
    assert board.PROTOCOL_VERSION == (host.PROTOCOL_MAJOR, host.LOAD_MINOR)  # the newest, which livctl reads
    assert f"# The livctl platform protocol, version {host.PROTOCOL_MAJOR}.{host.LOAD_MINOR}" in text
    errors = re.findall(r"^\| (-?\d+) \| ([^|]+) \|", text.split("## Errors")[1].split("\n## ")[0], flags=re.M)
    assert {int(code): message.strip() for code, message in errors} == {**scpi.ERROR_MESSAGES, **board.DEVICE_ERRORS}
