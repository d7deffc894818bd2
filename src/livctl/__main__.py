"""`python -m livctl` (and the `livctl` command) runs the command-line interface.

Until `run()` takes over, livctl/__init__.py's start-up guard ends the process on Ctrl-C; nothing
else is imported here before `run()` guards against it itself."""

import sys

EXIT_INTERRUPTED = 130


def _deliver_again(unraisable) -> None:
    """A Ctrl-C that lands in a callback Python cannot raise from (importlib's module-lock cleanup
    during an import) would be printed as "Exception ignored" and lost; deliver it again, so that it
    ends the command as any interrupt does."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        import _thread

        # from another thread, so that it lands after this hook has returned, not inside it
        _thread.start_new_thread(_thread.interrupt_main, ())
    else:
        sys.__unraisablehook__(unraisable)


def run() -> int:
    """The command line, with Ctrl-C during start-up (while Python loads livctl's modules) ending
    as any other interrupt does: one line, exit 130, no traceback."""
    sys.unraisablehook = _deliver_again
    code = EXIT_INTERRUPTED
    try:
        try:
            import signal

            # from here on a Ctrl-C is a KeyboardInterrupt again (livctl/__init__.py guarded until now)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            from livctl.cli import main

            code = main()
        except Exception as exc:
            if not _interrupt_in(exc):
                raise
            # Python wraps an interrupt that lands in a class's __set_name__ in a RuntimeError
            code = EXIT_INTERRUPTED
            print("livctl: interrupted", file=sys.stderr)
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
            print("livctl: interrupted", file=sys.stderr)
    except KeyboardInterrupt:  # a second Ctrl-C while saying so changes nothing
        code = EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED:
        _leave_interrupted()
    return code


def _interrupt_in(exc: BaseException) -> bool:
    """Whether `exc` was caused by a Ctrl-C (KeyboardInterrupt among its causes)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _leave_interrupted() -> None:
    """Exit 130 now. A Ctrl-C still pending (one delivered again) must not turn the exit status
    into a death by signal on the way out, and CPython marks an interrupt that landed in code run
    by exec() (dataclasses build their methods so) as unhandled even when it was handled, then
    ends the process by SIGINT instead of with our status: leave directly, after flushing."""
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    sys.exit(run())
