"""Errors a user can cause. The CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input: an unknown name, a bad suite key, missing data. The message names the fix.

    Always one line: a newline in something the user typed is shown escaped."""

    def __init__(self, message: str):
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))


class Diverged(Exception):
    """A method's loss or weights became NaN or infinite."""
