"""One error type for a user's mistake or a broken input or server: the CLI and the UI show its
message as one line, without a traceback. Every layer's own error (ingest, engine, database)
is one of these, so a caller catches one class."""


class UserError(Exception):
    """A user-facing failure: the message says what went wrong and the way out."""
