"""Every named exception of the project. Each boundary translates them once:
the CLIs print the message and exit 2, the demo raises gr.Error, the labeler
answers with a 4xx page."""


class SketchError(Exception):
    """Base class: the message is written for the person who caused it."""


class BadImage(SketchError):
    """The bytes are not an image we accept (corrupt, unknown format, too large)."""


class BlankSketch(SketchError):
    """The image has no ink: there is nothing to classify."""


class InvalidLabel(SketchError):
    """A class name that is empty, too long or otherwise unusable."""


class WeightsMissing(SketchError):
    """The ImageNet backbone weights are neither cached nor downloadable.
    `path` is where Keras looks for them first."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class NoLiveModel(SketchError):
    """No model version has been trained yet."""


class NotEnoughData(SketchError):
    """Training needs more labeled images than the database holds."""


class RateLimited(SketchError):
    """A sender passed the number of corrections allowed per minute or per day."""


class StorageError(SketchError):
    """The database cannot be written: read-only, disk full, or busy too long."""


class NotFound(SketchError):
    """A class, image, correction or version that does not exist."""


class ClassConflict(SketchError):
    """A class operation that the current classes do not allow (e.g. a rename onto an existing name)."""


class UnknownOption(SketchError):
    """A config option that does not exist (a typo must not be silently ignored)."""
