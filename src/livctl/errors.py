"""Exceptions that carry a message meant for the person running livctl.

Each one maps to an exit code in the command-line interface: bad input is 2, a failed or
out-of-spec dose is 1. The message is one line that says what is wrong and how to fix it.
"""

__all__ = [
    "LivctlError", "UsageError", "Refusal", "PlatformError", "DeviceOpenError", "DeviceTripped", "DeviceURLError",
    "DriveRequestError", "LogError", "SessionNotRecorded",
]


class LivctlError(Exception):
    """Base class of every error livctl reports to a user without a traceback."""

    exit_code = 1


class UsageError(LivctlError):
    """Bad arguments, files or configuration: nothing was driven or logged as delivered."""

    exit_code = 2


class Refusal(UsageError):
    """A usage error whose remedy names something the caller can set: the core says it with the
    parameter's own name (`speed`, `force`), the command line with its option (`worded(options)`),
    so only the command line knows option names. `template` marks each of `fields` as `{field}`."""

    def __init__(self, template: str, *fields: str):
        self.template, self.fields = template, fields
        super().__init__(self.worded({}))

    def worded(self, options: dict[str, str]) -> str:
        """The message with each field said as `options` says it (its own name otherwise)."""
        text = self.template
        for field in self.fields:
            text = text.replace("{" + field + "}", options.get(field, field))
        return text


class DeviceURLError(UsageError):
    """A device URL that names no backend or carries bad options."""


class LogError(UsageError):
    """The dose log cannot be opened, is from a newer livctl, or is damaged."""


class PlatformError(LivctlError):
    """The platform (real or simulated) failed while in use: link lost, sensor silent, ..."""


class DeviceOpenError(UsageError):
    """A device that cannot be opened as named: no such port, held by another program, not a
    livctl platform, or speaking another protocol version. Nothing was driven."""


class DriveRequestError(PlatformError):
    """A drive command that is not a finite level >= 0 (a bug upstream): refused, and the drive cut."""


class DeviceTripped(PlatformError):
    """The platform's own over-acceleration trip cut its output: the drive was cut at once."""


class SessionNotRecorded(LivctlError):
    """A session that drove stopped safely, but the dose log could not take its end (a full disk):
    the next livctl that opens the log closes it as interrupted."""
