"""The project-wide error for bad input: every stage raises it, the CLI turns it into one line and exit 1."""
from __future__ import annotations


class DataError(ValueError):
    """Bad input data or options; the message names the file or option and the problem."""


class DataWarning(UserWarning):
    """Something in the input that was skipped or ignored; the CLI prints it as a one-line note."""
