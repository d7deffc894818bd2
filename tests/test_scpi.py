"""The firmware's SCPI interpreter: mnemonics, paths, parameters, the error queue, and garbage."""

import random

import pytest

from firmware_sim.scpi import (
    ERROR_QUEUE_LENGTH,
    MAX_LINE_BYTES,
    Command,
    Interpreter,
    boolean,
    format_number,
    no_params,
    number,
    parse_spec,
)


class Box:
    """A toy instrument: a frequency and an output switch."""

    def __init__(self):
        self.frequency = 30.0
        self.output = False
        self.scpi = Interpreter([
            Command("*IDN", read=lambda p: (no_params(p), "ACME,BOX,1,1")[1]),
            Command("[SOURce:]FREQuency", write=self.set_frequency, read=lambda p: format_number(self.frequency)),
            Command("[SOURce:]AMPLitude", read=lambda p: "0"),
            Command("OUTPut[:STATe]", write=self.set_output, read=lambda p: str(int(self.output))),
            Command("SYSTem:ERRor[:NEXT]", read=lambda p: self.scpi.next_error()),
        ])

    def set_frequency(self, params):
        self.frequency = number(params, 1.0, 1000.0)

    def set_output(self, params):
        self.output = boolean(params)

    def ask(self, line: str) -> str | None:
        answers = self.scpi.feed(line.encode() + b"\n")
        assert len(answers) <= 1
        return answers[0].decode().rstrip("\n") if answers else None

    def errors(self) -> list[int]:
        codes = []
        while (entry := self.scpi.next_error()) != '0,"No error"':
            codes.append(int(entry.split(",")[0]))
        return codes


def test_short_and_long_forms_in_any_case_but_nothing_in_between():
    box = Box()
    for header in ("SOUR:FREQ", "source:frequency", "Sour:Frequency", "FREQ", "frequency"):
        assert box.ask(f"{header} 45;{header}?") == "45"
    assert box.errors() == []
    assert box.ask("SOUR:FREQU 50") is None and box.ask("SOURC:FREQ 50") is None
    assert box.errors() == [-113, -113] and box.frequency == 45


def test_compound_lines_follow_the_path_rule_and_join_answers():
    box = Box()
    assert box.ask("SOUR:FREQ 40;AMPL?;FREQ?") == "0;40"
    assert box.ask("SOUR:FREQ 41;:OUTP ON;:OUTP?;*IDN?;OUTP?") == "1;ACME,BOX,1,1;1"
    assert box.ask("SOUR:FREQ 42;OUTP OFF;OUTP?") == "0"  # unknown relative header: tried from the root
    assert box.errors() == [] and box.frequency == 42


def test_parameters_are_checked_and_errors_queue_oldest_first():
    box = Box()
    assert box.ask("FREQ") is None
    assert box.ask("FREQ 1,2") is None
    assert box.ask("FREQ ON") is None
    assert box.ask("FREQ 5000") is None
    assert box.ask("FREQ nan") is None
    assert box.ask("FREQ inf") is None
    assert box.ask("OUTP MAYBE") is None
    assert box.ask("*IDN? 3") is None
    assert box.errors() == [-109, -108, -104, -222, -104, -104, -224, -108]
    assert box.frequency == 30.0 and not box.output


def test_a_command_error_drops_the_rest_of_the_line_an_execution_error_only_its_command():
    box = Box()
    assert box.ask("FREQ 5000;FREQ?") == "30"  # -222: execution error, the query still runs
    assert box.ask("BOGUS;FREQ?") is None  # -113: command error, the rest is dropped
    assert box.errors() == [-222, -113]


def test_queries_of_command_only_headers_and_commands_of_query_only_ones_are_undefined():
    box = Box()
    assert box.ask("AMPL 0.5") is None and box.ask("SYST:ERR") is None
    assert box.errors() == [-113, -113]


def test_the_error_queue_is_bounded_and_says_it_overflowed():
    box = Box()
    for _ in range(ERROR_QUEUE_LENGTH + 5):
        box.ask("BOGUS")
    codes = box.errors()
    assert len(codes) == ERROR_QUEUE_LENGTH and codes[-1] == -350 and set(codes[:-1]) == {-113}


def test_overlong_lines_and_control_bytes_are_refused_and_the_next_line_works():
    box = Box()
    assert box.scpi.feed(b"FREQ " + b"1" * (2 * MAX_LINE_BYTES) + b"\n") == []
    assert box.scpi.feed(b"FREQ \x0150\n") == []
    assert box.scpi.feed(b"\xff\xfe\n") == []
    assert box.ask("FREQ 55;FREQ?") == "55"
    assert box.errors() == [-363, -101, -101]


def test_cr_lf_blank_lines_and_split_deliveries():
    box = Box()
    assert box.scpi.feed(b"\r\n\n   \n") == []
    assert box.scpi.feed(b"FRE") == [] and box.scpi.feed(b"Q 60;FR") == []
    assert box.scpi.feed(b"EQ?\r\n") == [b"60\n"]
    assert box.errors() == []


def test_numbers_read_back_exactly():
    for value in (30.0, 0.1, 0.038245934999999995, 1e-5, 1234.5):
        assert float(format_number(value)) == value
    assert format_number(30.0) == "30"


def test_spec_parsing():
    nodes = parse_spec("[SOURce:]FREQuency")
    assert [(n.short, n.long, n.optional) for n in nodes] == [("SOUR", "SOURCE", True), ("FREQ", "FREQUENCY", False)]
    assert [n.long for n in parse_spec("OUTPut[:STATe]")] == ["OUTPUT", "STATE"]


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_random_bytes_never_raise_and_the_interpreter_recovers(seed):
    rng = random.Random(seed)
    box = Box()
    alphabet = b"SOURCE:FREQ?;*IDN 0123456789.,-+eE\"\r\n\t #\x00\xff"
    for _ in range(2000):
        if rng.random() < 0.5:
            chunk = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 80)))
        else:
            chunk = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 80)))
        box.scpi.feed(chunk)
    box.scpi.feed(b"\n")
    box.errors()
    assert box.ask("FREQ 77;FREQ?") == "77"
    assert box.errors() == []
