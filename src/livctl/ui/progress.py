"""A session's progress on stderr: one live line that fits the terminal, or plain lines.

On a terminal the line is drawn by rich (`rich.live.Live`: it knows the terminal's width, redraws
in place and keeps notes above the line). Whatever the width, the line never wraps: the fields are
chosen to fit (a bar, elapsed and prescribed time, time left, the clock time the session ends, the
measured Hz and g, THD, the share in spec), the least useful dropped first; at 60 columns it still
shows the phase, the time left, the end, the measured g and the share in spec. When stderr is not
a terminal (a log file, a pipe, CI) it writes a plain line at each phase change and each delivered
minute.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

from livctl.ui.text import fit_line, fmt, minutes_seconds

PHASE_LABELS = {
    "precheck": "pre-check",
    "ramp_up": "ramping up",
    "deliver": "delivering",
    "ramp_down": "ramping down",
}
MIN_BAR = 6
"""A bar narrower than this says nothing: it is left out."""


class ProgressDisplay:
    """Live progress on a terminal (one line, redrawn at most ten times a second), or a plain line
    at each phase change and each delivered minute when `stream` is not a terminal."""

    REDRAW_S = 0.1

    def __init__(self, stream, *, width: int | None = None, wall_clock=time.time):
        self.stream = stream
        self.tty = stream.isatty()
        self._monotonic = time.monotonic
        self._wall_clock = wall_clock
        self._last_draw = -math.inf
        self._last_phase = None
        self._next_minute_s = 60.0
        self._speed = 1.0
        self._ramp_s = 0.0
        self._live = None
        self._console = None
        if self.tty:
            from rich.console import Console

            self._console = Console(file=stream, width=width, highlight=False, soft_wrap=False, emoji=False,
                                    markup=False)

    # -- what the session calls -----------------------------------------------------------------

    def start(self, prescription, platform) -> None:
        rx = prescription
        clock = getattr(platform, "clock", None)
        self._speed = getattr(clock, "speed", 1.0) if getattr(clock, "virtual", False) else 1.0
        self._ramp_s = rx.ramp_s
        self._line(
            f"{rx.frequency_hz:g} Hz, {rx.peak_g:g} g peak, {minutes_seconds(rx.duration_s)} on {platform.description}"
        )

    def note(self, text: str) -> None:
        self._line(text)

    def update(self, progress) -> None:
        phase_changed = progress.phase != self._last_phase
        self._last_phase = progress.phase
        if self.tty:
            now = self._monotonic()
            if phase_changed or now - self._last_draw >= self.REDRAW_S:
                self._last_draw = now
                self._draw(progress)
        elif phase_changed or progress.delivered_s >= self._next_minute_s - 1e-9:
            if progress.delivered_s >= self._next_minute_s - 1e-9:
                self._next_minute_s += 60.0
            self._line(self.plain(progress))

    def finish(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- what it shows ----------------------------------------------------------------------------

    def fields(self, progress) -> dict[str, str]:
        w = progress.window
        m = w.measurement
        left_s = max(0.0, progress.duration_s - progress.delivered_s)
        share = None if progress.in_spec_fraction is None else 100 * progress.in_spec_fraction
        out = {
            "phase": PHASE_LABELS.get(progress.phase, progress.phase),
            "elapsed": f"{minutes_seconds(progress.delivered_s)}/{minutes_seconds(progress.duration_s)}",
            "left": f"{minutes_seconds(left_s)} left",
            "ends": "",
            "hz": f"{m.frequency_hz:.2f} Hz" if m else "",
            "g": f"{m.peak_g:.3f} g pk" if m else "",
            "thd": f"THD {m.thd_percent:.1f} %" if m else "",
            "spec": f"in spec {fmt(share, '.0f')} %",
            "problem": "" if m else (w.reasons[0] if w.reasons else "no measurement"),
        }
        if math.isfinite(self._speed) and progress.phase != "ramp_down":
            # what is left of the delivery and the ramp-down, in real seconds at this clock's speed
            remaining_s = (left_s + self._ramp_s) / self._speed
            ends = dt.datetime.fromtimestamp(self._wall_clock() + remaining_s).astimezone()
            out["ends"] = f"ends {ends:%H:%M}"
        return out

    def plain(self, progress) -> str:
        """The line written when stderr is not a terminal (no width limit)."""
        f = self.fields(progress)
        measured = f"{f['hz']}  {f['g']}  {f['thd']}" if f["hz"] else f["problem"]
        ends = f", {f['ends']}" if f["ends"] else ""
        return f"{f['phase']:<12} {f['elapsed']}  {f['left']}{ends}  {measured}  {f['spec']}"

    def line(self, progress, width: int):
        """The live line as a rich renderable exactly `width` columns wide or less: the widest
        set of fields that fits, with a bar in the room that is left."""
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        f = self.fields(progress)
        left_end = f"{f['left']}, {f['ends']}" if f["ends"] else f["left"]
        if f["hz"]:
            hz_g, g = f"{f['hz']} {f['g']}", f["g"]
        else:
            hz_g = g = f["problem"]
        tiers = [  # (with a bar, fields), most to least: the first that fits is shown
            (True, [f["elapsed"], left_end, hz_g, f["thd"], f["spec"]]),
            (True, [left_end, hz_g, f["thd"], f["spec"]]),
            (True, [left_end, hz_g, f["spec"]]),
            (False, [left_end, hz_g, f["spec"]]),
            (False, [left_end, g, f["spec"]]),
            (False, [f["left"], g]),
            (False, [f["left"]]),
        ]
        label = f["phase"]
        for with_bar, fields in tiers:
            details = "  ".join(x for x in fields if x)
            if with_bar:
                phase, bar = f"{label:<12}", width - 12 - len(details) - 2
                if bar >= MIN_BAR:
                    break
            else:
                phase, bar = label, 0
                if len(phase) + 1 + len(details) <= width:
                    break
        grid = Table.grid(padding=(0, 1), expand=False)
        grid.add_column(no_wrap=True, width=len(phase))
        cells = [Text(phase, no_wrap=True)]
        if bar >= MIN_BAR:
            fraction = progress.delivered_s / progress.duration_s if progress.duration_s > 0 else 0.0
            grid.add_column(no_wrap=True, width=bar)
            cells.append(ProgressBar(total=1.0, completed=min(1.0, fraction), width=bar))
        grid.add_column(no_wrap=True, overflow="ellipsis", max_width=max(1, width - len(phase) - 1))
        cells.append(Text(details, no_wrap=True, overflow="ellipsis"))
        grid.add_row(*cells)
        return grid

    # -- drawing ----------------------------------------------------------------------------------

    def _draw(self, progress) -> None:
        from rich.live import Live

        width = self._console.size.width - 1  # the last column makes some terminals wrap
        renderable = self.line(progress, width)
        if self._live is None:
            self._live = Live(renderable, console=self._console, auto_refresh=False, transient=False,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start(refresh=True)
        else:
            self._live.update(renderable, refresh=True)

    def _line(self, text: str) -> None:
        if self._console is None:
            self.stream.write(text + "\n")
            self.stream.flush()
            return
        from rich.text import Text

        self._console.print(Text(text))  # a note wraps at words, above the live line


class PrintStatus:
    """A calibration's progress as status lines on a text stream (stderr for the command): an
    `livctl.events.Observer` that implements `on_status`. A warning prints even when quiet, as
    `note` does."""

    def __init__(self, stream: Any, *, quiet: bool = False):
        self.stream = stream
        self.quiet = quiet

    def on_status(self, text: str) -> None:
        if text.startswith("warning: "):
            self.note(fit_line(f"livctl: {text}"))
        elif not self.quiet:
            self.note(fit_line(text))

    def note(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
