"""SIGINT and SIGTERM: the run stops cleanly, its finished cells stored, and says so in one line.

`handled()` turns both signals into `Interrupted`, a KeyboardInterrupt, so every `finally` that
frees claims or stops worker processes runs as it does for Ctrl-C; the command line prints one
line and exits with the conventional 128 + the signal's number (130 for SIGINT, 143 for
SIGTERM). The console script installs it before it imports anything else (`regbench.__main__`).

Two places need more than raising at once:

- `deferred()`: a signal that arrives while TensorFlow is being imported is only recorded and
  acts when the import is done (an import cut short can crash the interpreter on its way out).
- `check()`: Python drops an exception raised in a garbage-collector callback or a `__del__`
  (through `sys.unraisablehook`, which prints it as a traceback), so a signal that lands there
  would be lost; its hook stays silent for it here, and loops that train call `check()` to act
  on it.

Nothing here imports more than `signal`: it must be cheap enough to run first.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state = {"installed": False, "deferring": 0, "pending": None}


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM received; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handle(signum, frame) -> None:
    _state["pending"] = signum
    if not _state["deferring"]:
        raise Interrupted(signum)


@contextlib.contextmanager
def handled():
    """SIGINT and SIGTERM raise `Interrupted` in the block (main thread only; re-entrant)."""
    if _state["installed"] or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:  # started ignoring it (nohup, `cmd &`): keep so
            signal.signal(signum, _handle)
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: _unraisable(unraisable, hook)
    _state.update(installed=True, pending=None)
    try:
        yield
    finally:
        if not _state.get("exiting"):
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        sys.unraisablehook = hook
        _state.update(installed=False, pending=None)


def exiting() -> None:
    """The process is about to exit with its status: a second Ctrl-C or SIGTERM now would
    kill it by that signal instead, so both are ignored from here on (console script only)."""
    _state["exiting"] = True
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _unraisable(unraisable, hook) -> None:
    """Silent for an `Interrupted` Python had to drop (it stays pending for `check()`)."""
    if not isinstance(unraisable.exc_value, Interrupted):
        hook(unraisable)


@contextlib.contextmanager
def deferred():
    """A signal received in the block acts when the block ends."""
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1
    check()


def received() -> int | None:
    """The signal received since the handlers were installed, if any."""
    return _state["pending"]


def cause(error: BaseException) -> Interrupted | None:
    """The interrupt behind `error`, if a signal caused it: Python may wrap the `Interrupted` a
    signal raised (a class body cut short surfaces as "RuntimeError: Error calling
    __set_name__", an import as an ImportError), or lose it while a signal is pending."""
    seen = error
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen if isinstance(seen, Interrupted) else Interrupted(signal.SIGINT)
        seen = seen.__cause__ or seen.__context__
    return Interrupted(received()) if received() is not None else None


def reraise(error: Exception) -> None:
    """Raise the interrupt behind `error`, if any: a handler that turns errors into a failed
    cell or a corrupt file must not turn a Ctrl-C into one."""
    interrupt = cause(error)
    if interrupt is not None:
        raise interrupt from error


def check() -> None:
    """Raise `Interrupted` for a signal that was received but has not stopped the run."""
    signum = _state["pending"]
    if signum is not None and not _state["deferring"]:
        _state["pending"] = None
        raise Interrupted(signum)


@contextlib.contextmanager
def blocked():
    """SIGINT and SIGTERM held back in the block; processes started in it inherit the mask,
    so worker processes never see a Ctrl-C meant for the run: their driver stops them."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def status(interrupt: BaseException) -> int:
    """The exit status for an interrupt: 128 + the signal's number."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


def report(interrupt: BaseException) -> int:
    """Print the one line for an interrupt and return its exit status. Further signals are
    ignored from here on: the process is on its way out and must not print a traceback."""
    if _state["installed"]:
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
    signum = getattr(interrupt, "signum", signal.SIGINT)
    what = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
    print(f"regbench: {what}; finished cells are stored, rerun to resume", file=sys.stderr,
          flush=True)
    return status(interrupt)


def console(command) -> int:
    """Run `command()` as a process's whole life: its exit status, or the interrupt's line
    and status; a second signal on the way out must not replace that status by its own."""
    with handled():
        try:
            return command()
        except (Exception, KeyboardInterrupt) as error:  # outside the command's own handling
            interrupt = cause(error)
            if interrupt is None:
                raise
            return report(interrupt)
        finally:
            exiting()
