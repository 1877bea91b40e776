"""The one error type users see: a single line, exit status 2 from the CLI."""


class RegbenchError(Exception):
    """Bad input (study file, arguments, data). Its message is one line for the user."""
