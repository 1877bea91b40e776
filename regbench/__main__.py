"""The `regbench` command (and `python -m regbench`).

Signals are handled before anything else is imported: a Ctrl-C or SIGTERM in the first moments
is then the same one line and exit status as later on (`regbench.interrupts`).
"""

import sys

from regbench import interrupts


def main() -> int:
    with interrupts.handled():
        try:
            from regbench.cli import main as run

            return run()
        except KeyboardInterrupt as interrupt:  # landed outside the command's own handling
            return interrupts.report(interrupt)
        finally:  # a second signal from here on must not replace the status by its own
            interrupts.exiting()


if __name__ == "__main__":
    sys.exit(main())
