"""A small SCPI (IEEE 488.2) command interpreter, as a controller board's firmware would hold it.

Bytes from the host are cut into lines (program messages) at LF; a line holds program units
separated by `;`. A unit is a header (mnemonics joined by `:`; `*XXX` for the IEEE 488.2 common
commands), an optional `?` for a query, and parameters separated by `,`:

    SOURce:FREQuency 30;AMPLitude 0.3;:OUTPut ON;*OPC?

Mnemonics match in their short form (the upper-case part, `FREQ`) or long form (`FREQUENCY`),
in any case; `[...]` marks an optional node. After a unit, the next one in the same line is
resolved relative to the previous header's parent node (SCPI's path rule), else below the
previous header, else from the root; a leading `:` means the root. The answers to the queries of one line are joined by `;` and end with LF.

Errors go to a queue read by `SYSTem:ERRor?` (oldest first, at most 16; the last entry becomes
-350 "Queue overflow" when it is full). A command error (-1xx) discards the rest of its line; an
execution error (-2xx) skips only its own unit. Nothing a host sends can raise out of `feed`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

ERROR_MESSAGES: dict[int, str] = {
    0: "No error",
    -101: "Invalid character",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -350: "Queue overflow",
    -363: "Input buffer overrun",
}

MAX_LINE_BYTES = 256
ERROR_QUEUE_LENGTH = 16

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_MNEMONIC = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_SPEC_NODE = re.compile(r"\[:?([A-Za-z]+):?\]|([A-Za-z]+)")


class ScpiError(Exception):
    """An error for the queue: `code` from ERROR_MESSAGES (or the device's own), optional detail."""

    def __init__(self, code: int, detail: str = ""):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    @property
    def command_error(self) -> bool:
        return -199 <= self.code <= -100


@dataclass(frozen=True)
class Node:
    short: str
    long: str
    optional: bool

    def matches(self, word: str) -> bool:
        upper = word.upper()
        return upper == self.short or upper == self.long


def parse_spec(spec: str) -> tuple[Node, ...]:
    """`[SOURce:]FREQuency` -> nodes; the short form is the upper-case part of each mnemonic."""
    nodes = []
    for m in _SPEC_NODE.finditer(spec):
        word = m.group(1) or m.group(2)
        short = "".join(c for c in word if c.isupper())
        nodes.append(Node(short=short, long=word.upper(), optional=m.group(1) is not None))
    return tuple(nodes)


@dataclass(frozen=True)
class Command:
    """One header: `write(params)` runs the command form, `read(params) -> str|bytes` the query."""

    spec: str
    write: Callable[[list[str]], None] | None = None
    read: Callable[[list[str]], str | bytes] | None = None

    @property
    def nodes(self) -> tuple[Node, ...]:
        return parse_spec(self.spec)


def _match(nodes: tuple[Node, ...], words: list[str]) -> bool:
    if not nodes:
        return not words
    head = nodes[0]
    if words and head.matches(words[0]) and _match(nodes[1:], words[1:]):
        return True
    return head.optional and _match(nodes[1:], words)


# -- parameters ------------------------------------------------------------------------------


def number(params: list[str], low: float, high: float) -> float:
    """The one decimal parameter (NR1/NR2/NR3), checked against [low, high]."""
    text = single(params)
    if not _NUMBER.match(text):
        raise ScpiError(-104, f"expected a number, got {text[:20]}")
    value = float(text)
    if not low <= value <= high:
        raise ScpiError(-222, f"{text[:20]} outside {low:g} to {high:g}")
    return value


def integer(params: list[str], low: int, high: int) -> int:
    value = number(params, low, high)
    if value != int(value):
        raise ScpiError(-104, "expected a whole number")
    return int(value)


def boolean(params: list[str]) -> bool:
    text = single(params).upper()
    if text in ("ON", "1"):
        return True
    if text in ("OFF", "0"):
        return False
    raise ScpiError(-224, f"expected ON or OFF, got {text[:20]}")


def single(params: list[str]) -> str:
    if not params:
        raise ScpiError(-109)
    if len(params) > 1:
        raise ScpiError(-108)
    return params[0]


def no_params(params: list[str]) -> None:
    if params:
        raise ScpiError(-108)


def optional_integer(params: list[str], low: int, high: int, default: int) -> int:
    return integer(params, low, high) if params else default


def format_number(value: float) -> str:
    """A decimal that reads back as the same float (NR1 for whole numbers, else NR2/NR3)."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


# -- the interpreter -------------------------------------------------------------------------


def _split(text: str, separator: str) -> list[str]:
    """Split at `separator` outside double-quoted strings ("" inside a string is a quote)."""
    parts, current, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise ScpiError(-102, "unterminated string")
    parts.append("".join(current))
    return parts


class Interpreter:
    """Turns the bytes a host sends into command calls and answer lines; keeps the error queue."""

    def __init__(self, commands: Iterable[Command], device_errors: dict[int, str] | None = None):
        self._messages = {**ERROR_MESSAGES, **(device_errors or {})}
        self._common: dict[str, Command] = {}
        self._tree: list[tuple[tuple[Node, ...], Command]] = []
        for command in commands:
            if command.spec.startswith("*"):
                self._common[command.spec.upper()] = command
            else:
                self._tree.append((command.nodes, command))
        self.errors: deque[tuple[int, str]] = deque()
        self._line = bytearray()
        self._overrun = False

    # -- errors --------------------------------------------------------------------------------

    def push_error(self, code: int, detail: str = "") -> None:
        message = self._messages.get(code, "Device-specific error")
        if detail:
            message = f"{message};{detail}"
        entry = (code, message.replace('"', "'"))
        if len(self.errors) >= ERROR_QUEUE_LENGTH:
            self.errors[-1] = (-350, ERROR_MESSAGES[-350])
            return
        self.errors.append(entry)

    def next_error(self) -> str:
        code, message = self.errors.popleft() if self.errors else (0, ERROR_MESSAGES[0])
        return f'{code},"{message}"'

    def clear(self) -> None:
        self.errors.clear()

    def reset_input(self) -> None:
        """Forget a partly received line (power-on)."""
        self._line.clear()
        self._overrun = False

    # -- input ---------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[bytes]:
        """Take bytes from the host; return the answer messages (each ends with LF)."""
        answers = []
        for byte in data:
            if byte == 0x0A:
                if self._overrun:
                    self._overrun = False
                    self.push_error(-363, f"line longer than {MAX_LINE_BYTES} bytes")
                else:
                    answer = self.execute(bytes(self._line))
                    if answer is not None:
                        answers.append(answer)
                self._line.clear()
            elif self._overrun:
                continue
            elif len(self._line) >= MAX_LINE_BYTES:
                self._overrun = True
                self._line.clear()
            else:
                self._line.append(byte)
        return answers

    def execute(self, line: bytes) -> bytes | None:
        """Run one program message; return its answer line, or None when it asked nothing."""
        line = line.rstrip(b"\r")
        if not line.strip():
            return None
        if any(b < 0x20 or b > 0x7E for b in line if b != 0x09):
            self.push_error(-101, "control or non-ASCII byte in the line")
            return None
        answers: list[str | bytes] = []
        try:
            units = _split(line.decode("ascii"), ";")
        except ScpiError as exc:
            self.push_error(exc.code, exc.detail)
            return None
        previous: list[str] = []
        for unit in units:
            try:
                previous = self._run_unit(unit.strip(), previous, answers)
            except ScpiError as exc:
                self.push_error(exc.code, exc.detail)
                if exc.command_error:
                    break
        if not answers:
            return None
        out = bytearray()
        for i, answer in enumerate(answers):
            if i:
                out += b";"
            out += answer if isinstance(answer, bytes) else answer.encode("ascii")
        return bytes(out) + b"\n"

    def _run_unit(self, unit: str, previous: list[str], answers: list[str | bytes]) -> list[str]:
        """Run one unit; return its header as resolved (the next unit's path starts from it)."""
        if not unit:
            raise ScpiError(-102, "empty command")
        header, _, rest = unit.replace("\t", " ").partition(" ")
        params = [p.strip() for p in _split(rest, ",")] if rest.strip() else []
        if any(not p for p in params):
            raise ScpiError(-102, "empty parameter")
        query = header.endswith("?")
        if query:
            header = header[:-1]
        if header.startswith("*"):
            command = self._common.get(header.upper())
            if command is None:
                raise ScpiError(-113, header[:20])
            self._call(command, query, params, answers)
            return previous  # common commands do not move the path
        absolute = header.startswith(":")
        words = header[1:].split(":") if absolute else header.split(":")
        if not all(_MNEMONIC.match(w) for w in words):
            raise ScpiError(-102, f"bad header {header[:20]}")
        # SCPI's path rule (below the previous header's parent); then, leniently, below the previous
        # header itself (`OUTP ON;LEV?`) and from the root (`SOUR:FREQ 30;OUTP ON`)
        candidates = [words] if absolute else [previous[:-1] + words, previous + words, words]
        for candidate in candidates:
            for nodes, command in self._tree:
                if _match(nodes, candidate):
                    self._call(command, query, params, answers)
                    return candidate
        raise ScpiError(-113, header[:20])

    @staticmethod
    def _call(command: Command, query: bool, params: list[str], answers: list[str | bytes]) -> None:
        handler = command.read if query else command.write
        if handler is None:
            raise ScpiError(-113, f"{command.spec} is {'not a query' if query else 'a query only'}")
        result = handler(params)
        if query:
            answers.append(result)
