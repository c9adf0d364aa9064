"""The one exception the commands raise for anything the user can fix: printed as one line, exit 1."""


class AwscError(Exception):
    """A problem stated in one line that says what to do about it."""
