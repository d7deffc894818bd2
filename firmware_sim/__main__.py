"""`python -m firmware_sim --pty`: a simulated platform controller on a real serial port.

Prints the port's path on stdout (one line), logs what happens on stderr, and serves the
livctl platform protocol (docs/protocol.md) until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from pathlib import Path

from firmware_sim.board import MODEL, PROTOCOL_VERSION, Board
from firmware_sim.device import SimConfig, SimulatedPlatform
from firmware_sim.faults import FAULTS, Fault
from firmware_sim.plant import PlantParams
from firmware_sim.sensor import SENSORS
from firmware_sim.server import Faults, Server

EPILOG = """\
examples:
  python -m firmware_sim --pty                      serve on a new pty; its path is printed
  python -m firmware_sim --link /tmp/ttyLIV0        the same, reachable as /tmp/ttyLIV0
  livctl session --device serial:///tmp/ttyLIV0     drive it
  python -m firmware_sim --pty --corrupt-bytes 1e-5 --unplug-at 30
                                                    a noisy cable, unplugged 30 s after the output starts
  python -m firmware_sim --pty --fault resonance --fault-at-s 8 --fault-value 3 --truth truth.csv
                                                    the plant's gain triples 8 s after the output starts;
                                                    what the plate did goes to truth.csv

Fault times (--fault-at-s, --stall-at, --unplug-at, --reboot-at, --interlock-at, --hang-at) are seconds
after the output was first switched on. Byte faults apply to both directions from the start. --fault
takes the names sim://?fault= takes (the same faults of the simulated platform)."""


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability in [0, 1)")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a time in seconds >= 0")
    return value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _positive(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _seed(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed (a whole number >= 0)")
    return int(text)


def _version(text: str) -> tuple[int, int]:
    major, dot, minor = text.partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a version MAJOR.MINOR")
    return int(major), int(minor)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m firmware_sim",
        description="A simulated LIV platform controller (plate, load, actuator, accelerometer) that speaks "
        "the livctl platform protocol on a real serial port, in real time.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    port = p.add_argument_group("port")
    port.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal; print its path")
    port.add_argument("--link", type=Path, metavar="PATH", help="also make PATH a symbolic link to it (implies --pty)")
    plat = p.add_argument_group("platform")
    plat.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    plat.add_argument("--load-kg", type=float, default=70.0, help="load on the plate, kg (default 70)")
    plat.add_argument("--sensor", choices=sorted(SENSORS), default="adxl345", help="accelerometer (default adxl345)")
    plat.add_argument("--actuator-n", type=float, default=800.0, help="peak actuator force at full drive, N (default 800)")
    plat.add_argument("--serial", default="0001", help="serial number in *IDN? (default 0001)")
    plat.add_argument("--sensors", type=int, choices=(1, 2), default=1,
                      help="accelerometers on the plate: 2 adds a second, independent one (default 1)")
    plat.add_argument("--sensor-scale", type=_positive, default=1.0, metavar="F",
                      help="the first accelerometer reads F times the truth, gravity included (default 1)")
    plat.add_argument("--clock-ppm", type=_finite, default=0.0, metavar="N",
                      help="the board's crystal runs N ppm fast (negative: slow): its sine and its samples (default 0)")
    plat.add_argument("--load-cell", action="store_true", help="a load cell under the plate (SENSe:LOAD?, frames)")
    plat.add_argument("--test-pattern", action="store_true",
                      help="send the link test pattern instead of accelerometer samples (SENSe:TEST ON by default)")
    faults = p.add_argument_group("faults")
    faults.add_argument("--drop-bytes", type=_probability, default=0.0, metavar="P", help="lose each byte with probability P")
    faults.add_argument("--corrupt-bytes", type=_probability, default=0.0, metavar="P", help="alter each byte with probability P")
    faults.add_argument("--stall-at", type=_seconds, metavar="S", help="the accelerometer stops producing samples")
    faults.add_argument("--unplug-at", type=_seconds, metavar="S", help="the port vanishes")
    faults.add_argument("--reboot-at", type=_seconds, metavar="S", help="the board resets")
    faults.add_argument("--interlock-at", type=_seconds, metavar="S", help="the interlock opens")
    faults.add_argument("--hang-at", type=_seconds, metavar="S",
                        help="the firmware freezes; its hardware watchdog resets it 2 s later")
    faults.add_argument("--fault", choices=list(FAULTS), metavar="NAME",
                        help="a fault of the simulated platform: " + ", ".join(FAULTS))
    faults.add_argument("--fault-at-s", type=_seconds, default=0.0, metavar="S", help="when --fault strikes (default 0)")
    faults.add_argument("--fault-value", type=_finite, metavar="V", help="the fault's size, where it has one")
    faults.add_argument("--fault-duration-s", type=_positive, metavar="S", help="the fault's length, where it has one")
    faults.add_argument("--fault-sensor", type=int, choices=(1, 2), default=1,
                        help="the accelerometer a sensor fault hits (default 1)")
    faults.add_argument("--protocol", type=_version, default=PROTOCOL_VERSION, metavar="MAJOR.MINOR",
                        help=f"claim this protocol version (default {PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1]})")
    out = p.add_argument_group("output")
    out.add_argument("--truth", type=Path, metavar="FILE",
                     help="write the plate's true motion, a row per 0.1 s (see firmware_sim/truth.py)")
    out.add_argument("--stats", type=Path, metavar="PATH", help="write a JSON summary of the link here when stopping")
    out.add_argument("--quiet", action="store_true", help="no event log on stderr")
    return p


class _Log:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.clock = lambda: 0.0

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"firmware_sim: {self.clock():8.3f} s: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.pty or args.link):
        parser.error("choose --pty (or --link PATH) to serve on a pseudo-terminal")
    try:
        plant = PlantParams(load_kg=args.load_kg, actuator_n=args.actuator_n).check()
    except ValueError as exc:
        parser.error(str(exc))
    if args.fault is None and any(v is not None for v in (args.fault_value, args.fault_duration_s)):
        parser.error("--fault-value and --fault-duration-s need --fault NAME")
    try:
        device_fault = None if args.fault is None else Fault(args.fault, args.fault_at_s, args.fault_value,
                                                              args.fault_duration_s)
    except ValueError as exc:
        parser.error(str(exc))
    if not (-1e5 <= args.clock_ppm <= 1e5 and 0.1 <= args.sensor_scale <= 10):
        parser.error("--clock-ppm takes -100000 to 100000, --sensor-scale 0.1 to 10")
    if args.fault_sensor > args.sensors:
        parser.error("--fault-sensor 2 needs --sensors 2")
    platform = SimulatedPlatform(SimConfig(
        seed=args.seed, plant=plant, sensor=SENSORS[args.sensor].with_changes(sensitivity=args.sensor_scale),
        clock_ppm=args.clock_ppm, sensors=args.sensors, fault_sensor=args.fault_sensor, load_cell=args.load_cell,
    ))
    platform.prepare_for(device_fault)  # struck later (counted from the first OUTPut ON): ready now
    if args.truth is not None:
        try:
            platform.record_truth_to(args.truth)
        except OSError as exc:
            parser.error(f"--truth {args.truth}: {exc.strerror or exc}")
    log = _Log(args.quiet)
    board = Board(platform, serial=args.serial, protocol=args.protocol, test_pattern_default=args.test_pattern, log=log)
    faults = Faults(
        drop_bytes=args.drop_bytes, corrupt_bytes=args.corrupt_bytes, stall_at_s=args.stall_at,
        unplug_at_s=args.unplug_at, reboot_at_s=args.reboot_at, interlock_at_s=args.interlock_at,
        hang_at_s=args.hang_at, seed=args.seed, device_fault=device_fault,
    )
    server = Server(board, faults, link=args.link, log=log)
    try:
        path = server.open()
    except OSError as exc:
        print(f"firmware_sim: error: {exc}", file=sys.stderr)
        return 2
    log.clock = server.now
    print(path, flush=True)
    log(f"serving {MODEL} {args.serial} ({platform.sensor.params.name} at {platform.rate_hz:g} Hz, "
        f"{plant.load_kg:g} kg load, protocol {args.protocol[0]}.{args.protocol[1]}) on {server.path}")

    def stop(signum: int, frame: object) -> None:
        server.stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve()
    finally:
        server.close()
        platform.close_truth()
        summary = server.summary()
        brief = {k: v for k, v in summary.items() if not k.endswith("_seqs")}
        log(f"stopped: {json.dumps(brief)}")
        if args.stats:
            args.stats.write_text(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
