"""The one error type of the publish commands (its line is made by ``ultrafeedback_kto.one_line``
and shown through ``ultrafeedback_kto.scrub_urls``, the helpers the builder uses too)."""


class PublishError(Exception):
    """A problem the user can act on; the command prints ``error: <message>`` and exits 1."""
