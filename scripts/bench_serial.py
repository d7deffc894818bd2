#!/usr/bin/env python3
"""Stream 3200 Hz x 3 axes through a real pty from firmware_sim, and account for every sample.

    python scripts/bench_serial.py [--seconds 60] [--fault-seconds 60] [--corrupt 2e-5] [--drop 2e-5]

Two runs against `python -m firmware_sim --pty` (ADXL345 at 3200 Hz, 32 samples a frame):

1. clean link, accelerometer samples, through the `serial://` backend exactly as a session reads
   them (0.1 s reads, more often than the session's 0.25 s control blocks; heartbeats): samples received, gaps, and the host's CPU time per second of
   data: the reader thread's decoding, the whole reader thread (system calls included), and the
   whole host process. Baselines measured in the same run, on the same bytes: the decoder alone
   offline, and the floor of any checked decoding (zlib.crc32 + numpy.frombuffer).
2. faulty link (bytes dropped and altered at random in both directions), link test pattern:
   every received sample is checked against the pattern, and the frames the host found missing
   are compared with the frames the simulator damaged or dropped. Undetected loss must be zero.

Target (docs/benchmarks.md): zero undetected loss; decoding at most 5 % of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

import numpy as np  # noqa: E402

from firmware_sim import SimulatedPlatform  # noqa: E402
from firmware_sim.board import Board, pattern_counts  # noqa: E402
from livctl.platforms import open_platform  # noqa: E402
from livctl.platforms.serial.link import SerialLink, open_port  # noqa: E402
from livctl.platforms.serial.protocol import Frame, SampleAssembler, Samples, StreamDecoder  # noqa: E402


def start_sim(tmp: Path, name: str, *args: str) -> tuple[subprocess.Popen, str, Path]:
    stats = tmp / f"{name}.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim", "--pty", "--quiet", "--stats", str(stats), *args],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    return proc, proc.stdout.readline().strip(), stats


def stop_sim(proc: subprocess.Popen, stats: Path) -> dict:
    proc.terminate()
    proc.wait(timeout=10)
    return json.loads(stats.read_text())


def clean_run(tmp: Path, seconds: int) -> dict:
    proc, path, stats_path = start_sim(tmp, "clean", "--seed", "0")
    platform = open_platform(f"serial://{path}")
    cpu0 = time.process_time()
    with platform:
        platform.set_frequency(30.0)
        platform.set_drive(0.2, 1.0)
        cpu0 = time.process_time()
        blocks = [platform.read(0.1) for _ in range(10 * seconds)]  # more often than the session's 0.25 s blocks
        process_cpu_s = time.process_time() - cpu0
        link = platform.link
        decoder, assembler = link.decoder.stats, platform.assembler.stats
        decode_cpu_s, reader_cpu_s = link.decode_cpu_s, link.reader_cpu_s
    sim = stop_sim(proc, stats_path)
    data = np.concatenate([b.accel_mps2 for b in blocks])
    return {
        "seconds": seconds, "samples": int(np.isfinite(data[:, 0]).sum()), "nan": int(np.isnan(data[:, 0]).sum()),
        "gaps": assembler.gaps, "frames": decoder.frames, "bad_frames": decoder.bad_frames,
        "decode_cpu_s": decode_cpu_s, "reader_cpu_s": reader_cpu_s, "process_cpu_s": process_cpu_s,
        "sim_frames": sim["frames_sent"], "sim_dropped": sim["frames_dropped"],
    }


def offline_stream(seconds: int) -> list[bytes]:
    """The same stream as bytes, made by the board's own encoder in virtual time (10 ms deliveries)."""
    board = Board(SimulatedPlatform())
    board.receive(b"*CLS;:SOUR:AMPL 0.2;:OUTP ON;:STR ON\n", 0.0)
    chunks = []
    for i in range(1, seconds * 100 + 1):
        board.receive(b"SYST:HEAR\n", i / 100)
        chunks.append(b"".join(board.tick(i / 100)))
    return chunks


def offline_costs(chunks: list[bytes], scale: float) -> tuple[float, float]:
    decoder, assembler = StreamDecoder(), SampleAssembler(3200.0, scale)
    t = time.process_time()
    for chunk in chunks:
        for item in decoder.feed(chunk):
            assembler.feed(item)
    decode_s = time.process_time() - t
    t = time.process_time()
    for chunk in chunks:  # the floor: check and view every byte once, nothing else
        zlib.crc32(chunk)
        np.frombuffer(chunk[: len(chunk) // 4 * 4], dtype="<i4")
    return decode_s, time.process_time() - t


def faulty_run(tmp: Path, seconds: int, corrupt: float, drop: float) -> dict:
    proc, path, stats_path = start_sim(tmp, "faulty", "--seed", "1", "--test-pattern",
                                       "--corrupt-bytes", str(corrupt), "--drop-bytes", str(drop))
    events: list[Samples] = []
    state = {}

    def on_frame(frame: Frame) -> None:
        if "assembler" not in state:
            state["assembler"] = SampleAssembler(frame.rate_hz, frame.scale_mps2)
            state["first_u32"] = frame.first_index
        events.extend(e for e in state["assembler"].feed(frame) if isinstance(e, Samples))

    link = SerialLink(open_port(path, 921600))
    link.send("")
    time.sleep(0.2)
    link.on_frame = on_frame
    link.query("*CLS;:STR ON;:STR?", lambda line: int(line) if line == "1" else int("x"), attempts=5)
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # the sim has no watchdog to feed: its output stays off
        time.sleep(0.1)
    link.close()
    sim = stop_sim(proc, stats_path)
    assembler = state["assembler"]
    counts = np.concatenate([np.rint(e.accel_mps2 / assembler.scale_mps2) for e in events])
    good = ~np.isnan(counts[:, 0])
    expected = pattern_counts(state["first_u32"], counts.shape[0])
    wrong = int((counts[good] != expected[good]).any(axis=1).sum())
    observed = range(assembler.stats.first_seq, assembler.stats.last_seq + 1)
    spoiled = {s for s in sim["damaged_seqs"] + sim["dropped_seqs"] if s in observed}
    missing = set(assembler.stats.missing_seqs)
    return {
        "seconds": seconds, "samples": int(good.sum()), "nan": int((~good).sum()), "gaps": assembler.stats.gaps,
        "wrong_samples": wrong, "spoiled_frames": len(spoiled), "missing_frames": len(missing),
        "undetected_frames": len(spoiled - missing), "phantom_frames": len(missing - spoiled),
        "bad_frames": link.decoder.stats.bad_frames, "bytes_corrupted": sim["bytes_corrupted"],
        "bytes_dropped": sim["bytes_dropped"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60, help="clean run, seconds (default 60)")
    parser.add_argument("--fault-seconds", type=int, default=60, help="faulty run, seconds (default 60)")
    parser.add_argument("--corrupt", type=float, default=2e-5, help="probability a byte is altered (default 2e-5)")
    parser.add_argument("--drop", type=float, default=2e-5, help="probability a byte is lost (default 2e-5)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        clean = clean_run(Path(tmp), args.seconds)
        faulty = faulty_run(Path(tmp), args.fault_seconds, args.corrupt, args.drop)
    chunks = offline_stream(args.seconds)
    offline_s, floor_s = offline_costs(chunks, 0.0039 * 9.80665)

    s = clean["seconds"]
    print(f"serial stream: ADXL345 3200 Hz x 3 axes, 32 samples a frame, through a pty; {os.cpu_count()} CPUs")
    print(f"clean link, {s} s through serial:// (0.1 s reads, heartbeats):")
    print(f"  samples received {clean['samples']} of {s * 3200} expected; NaN {clean['nan']}; gaps {clean['gaps']}; "
          f"frames {clean['frames']} good, {clean['bad_frames']} damaged; simulator sent {clean['sim_frames']}, "
          f"dropped {clean['sim_dropped']}")

    def per_s(cpu_s: float) -> str:
        return f"{1000 * cpu_s / s:6.2f} ms CPU per s of data ({100 * cpu_s / s:5.2f} % of one core)"

    print(f"  host decode (reader thread, decoding)   {per_s(clean['decode_cpu_s'])}")
    print(f"  host reader thread, system calls too    {per_s(clean['reader_cpu_s'])}")
    print(f"  host process, everything                {per_s(clean['process_cpu_s'])}")
    print(f"  baseline: the decoder offline, same data {per_s(offline_s)}  live / offline = "
          f"{clean['decode_cpu_s'] / offline_s:.2f}")
    print(f"  baseline: crc32 + frombuffer only        {per_s(floor_s)}  offline decode / floor = "
          f"{offline_s / floor_s:.1f}")
    f = faulty
    print(f"faulty link, {f['seconds']} s, bytes altered with p={args.corrupt:g} and lost with p={args.drop:g} "
          f"both ways, test pattern:")
    print(f"  samples received {f['samples']}, every one checked: {f['wrong_samples']} wrong; NaN (detected loss) "
          f"{f['nan']} in {f['gaps']} gaps")
    print(f"  frames the simulator spoiled {f['spoiled_frames']} ({f['bytes_corrupted']} bytes altered, "
          f"{f['bytes_dropped']} lost); frames the host found missing {f['missing_frames']}; "
          f"undetected {f['undetected_frames']}; phantom {f['phantom_frames']}; {f['bad_frames']} damaged frames rejected")
    undetected = f["undetected_frames"] + f["wrong_samples"] + f["phantom_frames"] + (s * 3200 - clean["samples"] - clean["nan"])
    met = undetected == 0 and clean["decode_cpu_s"] / s <= 0.05
    print(f"target: zero undetected loss ({undetected}), decode <= 5 % of one core: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
