"""Errors meant for the user: one clear line, no traceback."""


class PipelineError(Exception):
    """A problem the user can act on. `run.py` prints it as one line and exits with `exit_code`."""

    exit_code = 1

    def __init__(self, message, exit_code=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BadInputError(PipelineError):
    """An input file is malformed; the message names the file, line and problem."""

    exit_code = 2


class MissingInputError(PipelineError):
    """A stage's input is missing; the message names the command to run first."""
