"""One exception type for every problem a user can fix (bad config, bad data)."""


class SSGANError(ValueError):
    """A user-facing error: the message names the offending value, file or field and what was expected."""
