"""Errors a user can cause. The CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input: an unknown name, a bad suite key, missing data. The message names the fix."""


class Diverged(Exception):
    """A method's loss or weights became NaN or infinite."""
