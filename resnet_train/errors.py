"""The one exception type that reaches the user as a single line and a non-zero exit."""


class UserError(Exception):
    """A mistake the user can fix (a path, a value, a missing file): printed as one line, exit code 2."""

    exit_code = 2
