"""The commands' help, fitted to the terminal (standard library only: `livctl --help` stays instant)."""

from __future__ import annotations

import argparse
import textwrap


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written, fitted to the terminal: a run of prose lines that fill
    the source's width (80 characters or more, none indented) is one paragraph, refilled; any
    other line that is too long wraps at a space (indented under itself), never mid-word."""

    FULL_LINE = 80

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        width = max(20, width)
        out: list[str] = []
        run: list[str] = []

        def flush() -> None:
            if run:
                out.extend(textwrap.wrap(" ".join(line.strip() for line in run), width, initial_indent=indent,
                                         subsequent_indent=indent, break_long_words=False, break_on_hyphens=False))
                run.clear()

        for line in text.splitlines():
            prose = bool(line) and not line[0].isspace()
            if prose and (run or len(line) >= self.FULL_LINE):
                run.append(line)
                if len(line) < self.FULL_LINE:  # a short line ends the paragraph
                    flush()
                continue
            flush()
            if len(indent) + len(line) <= width:
                out.append(indent + line)
            else:
                lead = line[: len(line) - len(line.lstrip())]
                out.extend(textwrap.wrap(line.strip(), width, initial_indent=indent + lead,
                                         subsequent_indent=indent + lead + ("    " if lead else ""),
                                         break_long_words=False, break_on_hyphens=False))
        flush()
        return "\n".join(out)
