"""The one error type of the publish commands: its message is the one line a user sees."""


class PublishError(Exception):
    """A problem the user can act on; the command prints ``error: <message>`` and exits 1."""
