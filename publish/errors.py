"""The one error type of the publish commands, and the one way a cause becomes its line."""

import re

#: A URL's query (``?key=value...``): a presigned upload URL's holds its signature, a secret
#: for as long as it is valid.
_URL_QUERY = re.compile(r"\?[\w.~%+-]+=[^\s'\"]*")


class PublishError(Exception):
    """A problem the user can act on; the command prints ``error: <message>`` and exits 1."""


def one_line(error: object) -> str:
    """The first non-blank line of an error's text (its type's name when it has none)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def without_url_queries(text: str) -> str:
    """``text`` without the queries of the URLs it names: what an error or log line may show."""
    return _URL_QUERY.sub("", text)
