"""Errors the user can fix. The app prints their message as one paragraph, without a traceback."""


class UserError(Exception):
    """Bad input: a config value, a corpus file, a checkpoint. Nothing has been written."""


class CorpusError(UserError):
    """A corpus is missing, corrupt, empty or unreadable."""


class ChecksumError(CorpusError):
    """A file's sha256 is not the one its corpus declares."""
