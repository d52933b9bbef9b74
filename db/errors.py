"""The project's base error and the storage errors. Every named exception of
the project derives from `SketchError` and carries the HTTP status a web
boundary answers with; each boundary translates them once (the CLIs print the
message and exit 2, the demo shows it, the labeler renders an error page)."""


class SketchError(Exception):
    """Base class: the message is written for the person who caused it."""
    status = 400


class InvalidLabel(SketchError):
    """A class name that is empty, too long or otherwise unusable."""


class NotFound(SketchError):
    """A class, image, correction or version that does not exist."""
    status = 404


class ClassConflict(SketchError):
    """A class operation that the current classes do not allow (e.g. a rename onto an existing name)."""
    status = 409


class RateLimited(SketchError):
    """A sender passed the number of corrections allowed per minute or per day."""
    status = 429


class StorageError(SketchError):
    """The database cannot be written: read-only, disk full, or busy too long."""
    status = 503
