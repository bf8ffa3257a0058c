"""The one exception type the CLI turns into a single clear error line."""


class NSTError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""
