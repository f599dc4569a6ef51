"""Exceptions whose message is shown to the user as-is (no traceback) by the CLI."""


class SciMLError(Exception):
    """A user-facing error: the message must name the file, frame or variable at fault."""


class DataError(SciMLError):
    """Bad or unreadable input data."""


class ConfigError(SciMLError):
    """Invalid configuration (unknown key, wrong type, bad value)."""
