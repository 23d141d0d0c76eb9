"""The one error type of the publish commands, and the one way a cause becomes its line."""


class PublishError(Exception):
    """A problem the user can act on; the command prints ``error: <message>`` and exits 1."""


def one_line(error: object) -> str:
    """The first non-blank line of an error's text (its type's name when it has none)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
