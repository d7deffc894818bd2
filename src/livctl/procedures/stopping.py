"""Asking a procedure that moves a platform to stop: light enough for the command line to hold."""

from __future__ import annotations

import threading

__all__ = ["StopSignal"]


class StopSignal(threading.Event):
    """A request to stop moving, with the reason it was made (the first reason wins).

    `request` asks for a ramp-down; `request_cut` (a second Ctrl-C, say) for the drive to be cut at
    once. Any thread, or a signal handler, may call them."""

    reason: str | None = None
    cut_reason: str | None = None

    def request(self, reason: str) -> None:
        if not self.is_set():
            self.reason = reason
            self.set()

    def request_cut(self, reason: str) -> None:
        if self.cut_reason is None:
            self.cut_reason = reason
        self.request(reason)

    @property
    def cut_requested(self) -> bool:
        return self.cut_reason is not None
