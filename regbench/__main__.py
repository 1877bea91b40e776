"""The `regbench` command (and `python -m regbench`).

Signals are handled before anything else is imported: a Ctrl-C or SIGTERM in the first moments
is then the same one line and exit status as later on (`regbench.interrupts`).
"""

import sys

from regbench import interrupts


def main() -> int:
    def run() -> int:
        from regbench.cli import main as command  # imported once the handlers are in place

        return command()
    return interrupts.console(run)

if __name__ == "__main__":
    sys.exit(main())
